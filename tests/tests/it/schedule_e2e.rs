//! `daily schedule` for real: a per-second schedule fires from the binary, a stand-by takes
//! over when the active scheduler is killed, and `daily schedules` shows what happened.

use std::time::{Duration, Instant};

use pipeline_tests::web::{free_port, get, wait_for_port};
use pipeline_tests::{PgDatabase, Sandbox, finish, signal, sqlite_rows};

const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");

/// Waits until `done` holds for the recorded ticks of `every_second`, or panics after 30 s.
fn wait_for_last_tick(sandbox: &Sandbox, mut done: impl FnMut(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = sandbox.run(PIPELINE, &["schedules", "--json"], &[]);
        // Until a scheduler has made the state store, there is nothing to list.
        let last = match serde_json::from_str::<serde_json::Value>(&listed.stdout) {
            Ok(schedules) => schedules
                .as_array()
                .and_then(|all| all.iter().find(|s| s["name"] == "every_second"))
                .map(|every_second| every_second["last"].clone())
                .expect("the every_second schedule"),
            Err(_) => serde_json::Value::String(listed.stderr),
        };
        if done(&last) {
            return;
        }
        assert!(Instant::now() < deadline, "last tick: {last}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The UTC time of the newest recorded tick.
fn last_tick_utc(sandbox: &Sandbox) -> String {
    let mut utc = String::new();
    // A tick, not a listing that failed: an empty time would make any later tick newer.
    wait_for_last_tick(sandbox, |last| match last["utc"].as_str() {
        Some(time) => {
            utc = time.to_string();
            true
        }
        None => false,
    });
    utc
}

#[test]
fn the_binary_fires_ticks_and_a_stand_by_takes_over_after_kill_9() {
    let sandbox = Sandbox::new("schedule-e2e");
    let first = sandbox.spawn(PIPELINE, &["schedule", "--lease-secs", "2"], &[]);
    sandbox.wait_for("ran.log", "extract done");
    wait_for_last_tick(&sandbox, |last| last["status"] == "succeeded");
    let second = sandbox.spawn(PIPELINE, &["schedule", "--lease-secs", "2"], &[]);
    std::thread::sleep(Duration::from_millis(500));
    signal(&first, "KILL");
    let first = finish(first);
    assert!(
        first.stderr.contains("scheduler active"),
        "{}",
        first.stderr
    );
    // The stand-by takes the lease once it expires, and fires ticks from then on.
    let before = last_tick_utc(&sandbox);
    std::thread::sleep(Duration::from_secs(3));
    wait_for_last_tick(&sandbox, |last| {
        last["status"] == "succeeded" && last["utc"].as_str().unwrap_or_default() > before.as_str()
    });
    signal(&second, "TERM");
    let second = finish(second);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(second.stderr.contains("standing by"), "{}", second.stderr);
    assert!(
        second.stderr.contains("scheduler active"),
        "{}",
        second.stderr
    );
    // The partition ran once: later ticks found `extract` complete.
    let extracts = sandbox
        .read("ran.log")
        .lines()
        .filter(|line| *line == "extract started")
        .count();
    assert_eq!(extracts, 1, "{}", sandbox.read("ran.log"));
}

/// A scheduler killed with -9 on this host is taken over as soon as a stand-by finds its
/// process gone, not when its lease (a minute here) runs out: a crashed scheduler that its
/// service manager restarts is active again within seconds.
#[test]
fn a_stand_by_on_the_same_host_takes_over_a_killed_scheduler_before_its_lease_runs_out() {
    let sandbox = Sandbox::new("schedule-takeover");
    let first = sandbox.spawn(PIPELINE, &["schedule", "--lease-secs", "60"], &[]);
    wait_for_last_tick(&sandbox, |last| last["status"] == "succeeded");
    let second = sandbox.spawn(PIPELINE, &["schedule", "--lease-secs", "60"], &[]);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&first, "KILL");
    let killed = Instant::now();
    finish(first);
    let before = last_tick_utc(&sandbox);
    wait_for_last_tick(&sandbox, |last| {
        last["utc"].as_str().unwrap_or_default() > before.as_str()
    });
    let taken_over = killed.elapsed();
    signal(&second, "TERM");
    let second = finish(second);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(second.stderr.contains("standing by"), "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains("is gone (the process is gone): taking its lease over"),
        "{}",
        second.stderr
    );
    assert!(
        taken_over < Duration::from_secs(20),
        "ticks resumed {taken_over:?} after the kill; the lease runs a minute"
    );
}

#[test]
fn a_tick_whose_scheduler_is_killed_mid_run_runs_again_once_on_the_stand_by() {
    let sandbox = Sandbox::new("schedule-orphan");
    sandbox.write("sleep-extract", "60000");
    let first = sandbox.spawn(PIPELINE, &["schedule", "--lease-secs", "2"], &[]);
    sandbox.wait_for("ran.log", "extract started");
    let second = sandbox.spawn(PIPELINE, &["schedule", "--lease-secs", "2"], &[]);
    std::thread::sleep(Duration::from_millis(500));
    signal(&first, "KILL");
    finish(first);
    // The stand-by takes over, finds the fired tick's scheduler gone and runs the tick again;
    // the killed run's lock is broken and `extract` runs to the end, once.
    sandbox.write("sleep-extract", "0");
    sandbox.wait_for("ran.log", "extract done");
    wait_for_last_tick(&sandbox, |last| last["status"] == "succeeded");
    signal(&second, "TERM");
    let second = finish(second);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(
        second.stderr.contains("never ended") && second.stderr.contains("running it again"),
        "{}",
        second.stderr
    );
    assert_eq!(
        second.stderr.matches("running it again").count(),
        1,
        "{}",
        second.stderr
    );
    let ran = sandbox.read("ran.log");
    let count = |line: &str| ran.lines().filter(|l| *l == line).count();
    assert_eq!(
        (count("extract started"), count("extract done")),
        (2, 1),
        "{ran}"
    );
    // No tick is left fired: the orphan's outcome was written by the one that adopted it.
    let fired = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(sqlite_rows(
            &sandbox.path(".pipeline/state.db"),
            "SELECT count(*) FROM pipeline_schedule_ticks WHERE status = 'fired'",
        ));
    assert_eq!(fired, ["0"]);
}

#[test]
fn a_distributed_scheduler_queues_ticks_for_workers_and_its_stop_leaves_the_run_alone() {
    let sandbox = Sandbox::new("schedule-distributed");
    let refused = sandbox.run(PIPELINE, &["schedule", "--distributed"], &[]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("PostgreSQL"), "{}", refused.stderr);

    let db = PgDatabase::create();
    sandbox.write("pipeline.toml", &format!("[state]\nurl = \"{}\"\n", db.url));
    sandbox.write("sleep-extract", "3000");
    let worker = sandbox.spawn(PIPELINE, &["worker", "--grace-secs", "10"], &[]);
    let scheduler = sandbox.spawn(
        PIPELINE,
        &["schedule", "--distributed", "--lease-secs", "2"],
        &[],
    );
    sandbox.wait_for("ran.log", "extract started");
    wait_for_last_tick(&sandbox, |last| last["status"] == "submitted");
    // A rolling deploy stops the scheduler mid-run: the run is the workers', and goes on.
    signal(&scheduler, "TERM");
    let scheduler = finish(scheduler);
    assert_eq!(scheduler.code, Some(0), "{}", scheduler.stderr);
    assert!(
        scheduler.stderr.contains("queued for the workers"),
        "{}",
        scheduler.stderr
    );
    sandbox.wait_for("ran.log", "extract done");
    signal(&worker, "TERM");
    let worker = finish(worker);
    assert_eq!(worker.code, Some(0), "{}", worker.stderr);
    let ran = sandbox.read("ran.log");
    assert_eq!(
        ran.lines().filter(|line| *line == "extract done").count(),
        1,
        "the later ticks' runs found `extract` complete: {ran}"
    );
    let history = sandbox.run(PIPELINE, &["history"], &[]);
    assert!(history.stdout.contains("succeeded"), "{}", history.stdout);
}

/// `daily dev`: the schedules fire and the view serves from one process, on the embedded
/// default, until Ctrl-C; a second one on the same address refuses and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_fires_the_schedules_and_serves_the_view_in_one_process_until_ctrl_c() {
    let sandbox = Sandbox::new("dev");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let dev = sandbox.spawn(PIPELINE, &["dev", "--addr", &addr], &[]);
    wait_for_port(port);
    let page = get(&format!("http://{addr}/")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    sandbox.wait_for("ran.log", "extract done");
    wait_for_last_tick(&sandbox, |last| last["status"] == "succeeded");
    let runs = get(&format!("http://{addr}/api/runs")).await;
    assert!(runs.body.contains("succeeded"), "{}", runs.body);

    let second = sandbox.run(PIPELINE, &["dev", "--addr", &addr], &[]);
    assert_eq!(second.code, Some(2), "{}", second.stderr);
    assert!(
        second.stderr.contains("cannot listen on"),
        "{}",
        second.stderr
    );

    signal(&dev, "INT");
    let dev = finish(dev);
    assert_eq!(dev.code, Some(0), "{}", dev.stderr);
    for said in [
        "dev`: the schedules' runs and the web view in this process (1 schedule)",
        &format!("http://{addr}/"),
        "scheduler active",
    ] {
        assert!(dev.stderr.contains(said), "{said}: {}", dev.stderr);
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the view stopped with the process"
    );
}

#[test]
fn schedules_lists_ticks_and_a_crontab() {
    let sandbox = Sandbox::new("schedules-list");
    let listed = sandbox.run(PIPELINE, &["schedules"], &[]);
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert!(listed.stdout.contains("every_second"), "{}", listed.stdout);
    assert_eq!(
        listed.stdout.matches("  next  ").count(),
        5,
        "{}",
        listed.stdout
    );
    assert!(listed.stdout.contains("never fired"), "{}", listed.stdout);
    let crontab = sandbox.run(PIPELINE, &["schedules", "--crontab"], &[]);
    assert_eq!(crontab.code, Some(0), "{}", crontab.stderr);
    assert!(
        crontab
            .stdout
            .contains("has a seconds field, which cron cannot express"),
        "{}",
        crontab.stdout
    );
}
