//! Metrics and probes as an operator scrapes them: a `daily worker` and a `daily schedule`
//! with `--metrics-addr`, and `daily serve` on its own address, during and after a real
//! distributed run. `promtool check metrics` (Debian's prometheus package) checks the text.

use pipeline_tests::prometheus::{promtool, sample};
use pipeline_tests::web::{free_port, get, request, wait_for_port};
use pipeline_tests::{PgDatabase, Sandbox, finish, signal};

const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");

#[tokio::test]
async fn a_worker_a_scheduler_and_the_view_serve_metrics_and_probes_during_a_distributed_run() {
    let sandbox = Sandbox::new("metrics");
    let db = PgDatabase::create();
    sandbox.write("pipeline.toml", &format!("[state]\nurl = \"{}\"\n", db.url));
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let worker = sandbox.spawn(
        PIPELINE,
        &[
            "worker",
            "--slots",
            "4",
            "--lease-secs",
            "2",
            "--metrics-addr",
            &addr,
        ],
        &[],
    );
    wait_for_port(port);
    let base = format!("http://{addr}");
    let health = get(&format!("{base}/healthz")).await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = get(&format!("{base}/readyz")).await;
    assert_eq!(ready.status, 200, "{}", ready.body);

    // Slow keeps an attempt running while the queue is scraped.
    sandbox.write("sleep-slow", "1500");
    let run = sandbox.spawn(PIPELINE, &["run", "--distributed", "--json"], &[]);
    sandbox.wait_for("ran.log", "slow started");
    let during = get(&format!("{base}/metrics")).await;
    assert_eq!(during.status, 200);
    assert!(
        during
            .header("content-type")
            .starts_with("text/plain; version=0.0.4"),
        "{:?}",
        during.header("content-type")
    );
    promtool(&during.body);
    assert!(
        sample(&during.body, "pipeline_queue_tasks{state=\"running\"}").is_some_and(|n| n >= 1.0),
        "{}",
        during.body
    );
    let _ = finish(run);
    let after = get(&format!("{base}/metrics")).await.body;
    promtool(&after);
    let succeeded = sample(
        &after,
        "pipeline_task_attempts_total{outcome=\"succeeded\"}",
    );
    assert!(succeeded.is_some_and(|n| n >= 5.0), "{after}");
    assert!(
        sample(&after, "pipeline_task_attempt_duration_seconds_count").is_some_and(|n| n >= 6.0),
        "{after}"
    );
    assert!(
        sample(&after, "pipeline_lease_renewals_total{outcome=\"renewed\"}")
            .is_some_and(|n| n >= 1.0),
        "{after}"
    );
    assert_eq!(
        sample(&after, "pipeline_queue_tasks{state=\"running\"}"),
        Some(0.0),
        "{after}"
    );
    signal(&worker, "TERM");
    let stopped = finish(worker);
    assert_eq!(stopped.code, Some(0), "{}", stopped.stderr);

    // The scheduler: its ticks and missed deadlines, from its start.
    let port = free_port();
    let scheduler = sandbox.spawn(
        PIPELINE,
        &["schedule", "--metrics-addr", &format!("127.0.0.1:{port}")],
        &[],
    );
    wait_for_port(port);
    let text = get(&format!("http://127.0.0.1:{port}/metrics")).await.body;
    promtool(&text);
    assert!(
        sample(&text, "pipeline_scheduler_ticks_total").is_some(),
        "{text}"
    );
    assert!(
        sample(&text, "pipeline_deadline_misses_total").is_some(),
        "{text}"
    );
    let ready = get(&format!("http://127.0.0.1:{port}/readyz")).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    signal(&scheduler, "TERM");
    let _ = finish(scheduler);

    // The view: probes without its token, metrics with it.
    let port = free_port();
    let token = "metrics-token-for-the-test";
    let server = sandbox.spawn(
        PIPELINE,
        &["serve", "--addr", &format!("0.0.0.0:{port}")],
        &[("PIPELINE_SERVE_TOKEN", token)],
    );
    wait_for_port(port);
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(get(&format!("{base}/healthz")).await.status, 200);
    assert_eq!(get(&format!("{base}/readyz")).await.status, 200);
    assert_eq!(get(&format!("{base}/metrics")).await.status, 401);
    let bearer = format!("Bearer {token}");
    let scraped = request(
        reqwest::Method::GET,
        &format!("{base}/metrics"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(scraped.status, 200, "{}", scraped.body);
    promtool(&scraped.body);
    assert!(
        sample(&scraped.body, "pipeline_queue_tasks{state=\"ready\"}") == Some(0.0),
        "{}",
        scraped.body
    );
    signal(&server, "TERM");
    let _ = finish(server);
}
