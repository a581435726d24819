//! The image as an operator runs it, built here with podman from the Dockerfile (its
//! `prebuilt` target around this build's binary, on a Debian base made with debootstrap):
//! `daily --version` as a non-root user; a worker container and a scheduler container on the
//! host's PostgreSQL complete a scheduled distributed run and serve their probes and metrics;
//! `podman stop` hands a running attempt back and exits 0 within the grace period.

use std::time::{Duration, Instant};

use pipeline_tests::container::{Container, Image, data_volume};
use pipeline_tests::prometheus::{promtool, sample};
use pipeline_tests::web::{free_port, get, wait_for_port};
use pipeline_tests::{PgDatabase, Sandbox, finish, psql, signal};

const DAILY: &str = env!("CARGO_BIN_EXE_e2e-daily");
const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");

/// Polls `done` every 200 ms for up to `secs`; panics with `what` and the last `context()`.
fn wait_until(secs: u64, what: &str, mut done: impl FnMut() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: {}", context());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_image_runs_daily_as_a_non_root_user() {
    let image = Image::prebuilt(DAILY);
    eprintln!(
        "image {}: {:.1} MB, built in {:.1} s",
        image.tag,
        image.size as f64 / 1e6,
        image.build_time.as_secs_f64()
    );
    let version = image.run(&[], &["--version"]);
    assert_eq!(version.code, Some(0), "{}", version.stderr);
    assert!(
        version.stdout.starts_with("daily ") && version.stdout.contains("(graph "),
        "{}",
        version.stdout
    );
    let user = image.run(&["--entrypoint", "id"], &["-u"]);
    assert_eq!(user.stdout.trim(), "10001", "{}", user.stderr);
    // The entrypoint is `daily` itself: PID 1 gets podman's SIGTERM.
    let pid = image.run(&["--entrypoint", "sh"], &["-c", "echo $$"]);
    assert_eq!(pid.stdout.trim(), "1", "{}", pid.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_and_a_scheduler_container_complete_a_scheduled_distributed_run() {
    let image = Image::prebuilt(DAILY);
    let sandbox = Sandbox::new("container-run");
    let db = PgDatabase::create();
    let volume = data_volume(&sandbox.path(""));
    let state = format!("PIPELINE_STATE_URL={}", db.url);
    // As the manifests run it: nothing is written outside the mounted /data.
    let options = [
        "--read-only",
        "--volume",
        volume.as_str(),
        "--env",
        state.as_str(),
    ];
    let worker_port = free_port();
    let worker_addr = format!("127.0.0.1:{worker_port}");
    let worker = Container::start(
        &image,
        &options,
        &[
            "worker",
            "--slots",
            "2",
            "--grace-secs",
            "5",
            "--metrics-addr",
            &worker_addr,
        ],
    );
    // The first scheduler marks where each schedule starts; it is then replaced, as a
    // rolling deploy does, by one that finds the hourly tick two hours back missed.
    let first = Container::start(&image, &options, &["schedule", "--distributed"]);
    let baseline = "SELECT count(*) FROM pipeline_schedule_ticks \
                    WHERE schedule = 'hourly_orders' AND status = 'baseline'";
    wait_until(
        60,
        "the first scheduler never became active",
        || {
            std::process::Command::new("psql")
                .args([db.url.as_str(), "-qAtc", baseline])
                .output()
                .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "1")
        },
        || first.logs(),
    );
    let (_, code) = first.stop(Duration::from_secs(20));
    assert_eq!(code, 0, "{}", first.logs());
    psql(
        &db.url,
        "UPDATE pipeline_schedule_ticks SET tick_at = tick_at - 7200000, \
         fired_at = fired_at - 7200000 WHERE status = 'baseline'",
    );
    let scheduler_port = free_port();
    let scheduler_addr = format!("127.0.0.1:{scheduler_port}");
    let scheduler = Container::start(
        &image,
        &options,
        &[
            "schedule",
            "--distributed",
            "--metrics-addr",
            &scheduler_addr,
        ],
    );
    wait_for_port(scheduler_port);
    wait_for_port(worker_port);
    let history = || image.run(&["--env", &state], &["history"]).stdout;
    wait_until(
        120,
        "the scheduled run never succeeded",
        || history().contains("succeeded"),
        || format!("{}\n{}\n{}", history(), scheduler.logs(), worker.logs()),
    );
    let logs = scheduler.logs();
    assert!(
        logs.contains("schedule `hourly_orders`") && logs.contains("queued for the workers"),
        "{logs}"
    );
    for addr in [&worker_addr, &scheduler_addr] {
        let ready = get(&format!("http://{addr}/readyz")).await;
        assert_eq!(ready.status, 200, "{addr}: {}", ready.body);
        let metrics = get(&format!("http://{addr}/metrics")).await;
        assert_eq!(metrics.status, 200, "{addr}");
        promtool(&metrics.body);
    }
    // The health check of the ECS task definition and the compose file, from inside.
    let ecs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(pipeline_tests::workspace().join("deploy/ecs/worker.json"))
            .expect("worker.json"),
    )
    .expect("worker.json is JSON");
    let check: Vec<String> = ecs["containerDefinitions"][0]["healthCheck"]["command"]
        .as_array()
        .expect("a health check")
        .iter()
        .skip(1)
        .filter_map(|arg| arg.as_str())
        .map(|arg| arg.replace("9464", &worker_port.to_string()))
        .collect();
    let check: Vec<&str> = check.iter().map(String::as_str).collect();
    let healthy = worker.exec(&check);
    assert_eq!(healthy.code, Some(0), "{check:?}: {}", healthy.stderr);
    let worker_metrics = get(&format!("http://{worker_addr}/metrics")).await.body;
    let succeeded = sample(
        &worker_metrics,
        "pipeline_task_attempts_total{outcome=\"succeeded\"}",
    );
    assert!(succeeded.is_some_and(|n| n >= 1.0), "{worker_metrics}");

    let (took, code) = worker.stop(Duration::from_secs(30));
    eprintln!(
        "an idle worker container stopped in {:.2} s",
        took.as_secs_f64()
    );
    assert_eq!(code, 0, "{}", worker.logs());
    assert!(
        took < Duration::from_secs(10),
        "{:?}: {}",
        took,
        worker.logs()
    );
    let (_, code) = scheduler.stop(Duration::from_secs(30));
    assert_eq!(code, 0, "{}", scheduler.logs());
}

#[test]
fn podman_stop_hands_a_running_attempt_back_and_exits_0_within_the_grace_period() {
    let image = Image::prebuilt(PIPELINE);
    let sandbox = Sandbox::new("container-stop");
    let db = PgDatabase::create();
    // The container's /data is this directory: it reads the same pipeline.toml.
    sandbox.write("pipeline.toml", &format!("[state]\nurl = \"{}\"\n", db.url));
    sandbox.write("sleep-extract", "60000");
    let volume = data_volume(&sandbox.path(""));
    let worker = Container::start(
        &image,
        &["--volume", &volume],
        &["worker", "--lease-secs", "2", "--grace-secs", "2"],
    );
    let run = sandbox.spawn(
        PIPELINE,
        &["run", "--distributed", "--json", "extract"],
        &[],
    );
    wait_until(
        60,
        "the container never started `extract`",
        || sandbox.read("ran.log").contains("extract started"),
        || worker.logs(),
    );
    let (took, code) = worker.stop(Duration::from_secs(20));
    eprintln!(
        "a worker container with a running attempt stopped in {:.2} s (grace 2 s)",
        took.as_secs_f64()
    );
    let logs = worker.logs();
    assert_eq!(code, 0, "{logs}");
    assert!(took < Duration::from_secs(15), "{took:?}: {logs}");
    assert!(logs.contains("handed back"), "{logs}");
    // Another worker takes the attempt on and the run ends well.
    sandbox.write("sleep-extract", "0");
    let rescuer = sandbox.spawn(PIPELINE, &["worker", "--grace-secs", "1"], &[]);
    let run = finish(run);
    signal(&rescuer, "TERM");
    finish(rescuer);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.task_status("extract"), "succeeded");
    let ran = sandbox.read("ran.log");
    assert_eq!(ran.matches("extract done").count(), 1, "{ran}");
}

/// A rolling deploy of workers whose graph changed (the data pipeline's graph comes from its
/// `tables.txt`: the new version loads `payments` too) while a run of the old graph is in
/// flight: the new worker leaves the old run's tasks alone and says which run; the old
/// worker's `podman stop` hands its attempt back; the operator cancels the old run and runs
/// again, and only what the old run left undone runs, on the new graph.
#[test]
fn a_rolling_deploy_with_a_changed_graph_loses_nothing_and_runs_nothing_twice() {
    const DATA_PIPELINE: &str = env!("CARGO_BIN_EXE_data-pipeline");
    let image = Image::prebuilt(DATA_PIPELINE);
    let db = PgDatabase::create();
    let config = format!("[state]\nurl = \"{}\"\n", db.url);
    let old = Sandbox::new("rolling-old");
    old.write("pipeline.toml", &config);
    old.write("tables.txt", "users\norders\n");
    old.write("sleep-load[orders]", "60000");
    let new = Sandbox::new("rolling-new");
    new.write("pipeline.toml", &config);
    new.write("tables.txt", "users\norders\npayments\n");
    let old_volume = data_volume(&old.path(""));
    let new_volume = data_volume(&new.path(""));
    let worker_args = ["worker", "--lease-secs", "2", "--grace-secs", "2"];
    let old_worker = Container::start(&image, &["--volume", &old_volume], &worker_args);
    let run = old.spawn(DATA_PIPELINE, &["run", "--distributed", "--json"], &[]);
    wait_until(
        60,
        "the old worker never started load[orders]",
        || old.read("ran.log").contains("load[orders] started"),
        || old_worker.logs(),
    );
    // The new version comes up beside the old one, then the old one is stopped.
    let new_worker = Container::start(&image, &["--volume", &new_volume], &worker_args);
    let (took, code) = old_worker.stop(Duration::from_secs(20));
    assert_eq!(code, 0, "{}", old_worker.logs());
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(
        old_worker.logs().contains("handed back"),
        "{}",
        old_worker.logs()
    );
    let mut run_id = String::new();
    wait_until(
        30,
        "the new worker never said why it leaves the old run alone",
        || {
            let logs = new_worker.logs();
            let Some(at) = logs.find(" was planned with another task graph") else {
                return false;
            };
            run_id = logs[..at]
                .rsplit(' ')
                .next()
                .unwrap_or_default()
                .to_string();
            true
        },
        || new_worker.logs(),
    );
    assert_eq!(
        new.read("ran.log"),
        "",
        "the new graph ran nothing of the old run"
    );
    let cancelled = new.run(DATA_PIPELINE, &["cancel", &run_id], &[]);
    assert_eq!(cancelled.code, Some(0), "{}", cancelled.stderr);
    let run = finish(run);
    assert_ne!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(run.json()["status"], "cancelled", "{}", run.stdout);
    // Run again with the new graph: what the old run finished is skipped.
    let again = new.run(DATA_PIPELINE, &["run", "--distributed", "--json"], &[]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.task_status("load[users]"), "skipped");
    let ran_new = new.read("ran.log");
    for task in ["load[orders]", "load[payments]", "report"] {
        assert!(ran_new.contains(&format!("{task} ran")), "{ran_new}");
    }
    assert!(!ran_new.contains("load[users]"), "{ran_new}");
    assert!(old.read("ran.log").contains("load[users] ran"));
    let (_, code) = new_worker.stop(Duration::from_secs(20));
    assert_eq!(code, 0, "{}", new_worker.logs());
}
