//! The executor in-process, on graphs built with the runtime builder and a real SQLite state
//! store: failure propagation, panics, timeouts, retries, non-critical tasks, parallelism.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pipeline_core::date::Date;
use pipeline_core::testing::Setting;
use pipeline_core::testing::TaskFuture;
use pipeline_core::testing::{Namespace, PartitionKey};
use pipeline_core::testing::{Quiet, RunOptions, RunReport, Runner};
use pipeline_core::testing::{RunStatus, TaskStatus};
use pipeline_core::{Policy, TaskSpec};
use pipeline_tests::Sandbox;
use tokio::sync::watch;

fn ok(name: &str) -> TaskSpec {
    TaskSpec::new(name, |_ctx| Box::pin(async { Ok(()) }))
}

fn failing(name: &str) -> TaskSpec {
    TaskSpec::new(name, |ctx| {
        let task = ctx.task().to_string();
        Box::pin(async move { Err(anyhow::anyhow!("{task} broke")) })
    })
}

fn policy(retries: u32, timeout_ms: Option<u64>, critical: bool) -> Policy {
    Policy {
        retries,
        retry_delay: Duration::from_millis(10),
        timeout: timeout_ms.map(Duration::from_millis),
        critical,
    }
}

struct Harness {
    runner: Runner,
    _sandbox: Sandbox,
}

async fn harness(specs: Vec<TaskSpec>) -> Harness {
    let sandbox = Sandbox::new("executor");
    let runner = pipeline_tests::runner_for(&sandbox.config(&[]), "test", specs).await;
    Harness {
        runner,
        _sandbox: sandbox,
    }
}

fn date() -> Date {
    Date::from_ymd(2026, 11, 26).expect("a date")
}

impl Harness {
    async fn run(&self, configure: impl FnOnce(&mut RunOptions)) -> RunReport {
        let mut options = RunOptions::new(date());
        options.workers = 4;
        configure(&mut options);
        let (_tx, cancel) = watch::channel(false);
        self.runner
            .run(&options, &Quiet, cancel)
            .await
            .expect("the run")
    }
}

fn status(report: &RunReport, name: &str) -> TaskStatus {
    task(report, name).status
}

fn task<'a>(report: &'a RunReport, name: &str) -> &'a pipeline_core::testing::TaskReport {
    report.task(name).unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test]
async fn requires_stops_dependents_after_does_not_and_branches_continue() {
    let h = harness(vec![
        failing("extract"),
        ok("transform").requires(["extract"]),
        ok("report").requires(["transform"]),
        ok("audit").after(["extract"]),
        ok("independent"),
    ])
    .await;
    let report = h.run(|_| {}).await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(status(&report, "extract"), TaskStatus::Failed);
    assert_eq!(
        task(&report, "extract").error.as_deref(),
        Some("extract broke")
    );
    assert_eq!(status(&report, "transform"), TaskStatus::UpstreamFailed);
    assert_eq!(
        status(&report, "report"),
        TaskStatus::UpstreamFailed,
        "propagates down the chain"
    );
    assert_eq!(
        task(&report, "report").error.as_deref(),
        Some("requires `transform`, which did not succeed")
    );
    assert_eq!(
        status(&report, "audit"),
        TaskStatus::Succeeded,
        "a soft dependency's failure does not stop it"
    );
    assert_eq!(status(&report, "independent"), TaskStatus::Succeeded);
}

#[tokio::test]
async fn a_panic_is_a_failure_of_that_task_only() {
    let h = harness(vec![
        TaskSpec::new("explodes", |_ctx| Box::pin(async { panic!("boom") })),
        TaskSpec::new("explodes_later", |_ctx| {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                panic!("later boom")
            })
        }),
        ok("fine"),
    ])
    .await;
    let report = h.run(|_| {}).await;
    assert_eq!(
        task(&report, "explodes").error.as_deref(),
        Some("panicked: boom")
    );
    assert_eq!(
        task(&report, "explodes_later").error.as_deref(),
        Some("panicked: later boom")
    );
    assert_eq!(status(&report, "fine"), TaskStatus::Succeeded);
}

#[tokio::test]
async fn a_timeout_cancels_the_attempt_and_retries_it() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&attempts);
    let h = harness(vec![
        TaskSpec::new("hangs", move |_ctx| -> TaskFuture<'_> {
            counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
        })
        .policy(policy(1, Some(50), true)),
    ])
    .await;
    let report = h.run(|_| {}).await;
    let hangs = task(&report, "hangs");
    assert_eq!((hangs.status, hangs.attempts), (TaskStatus::TimedOut, 2));
    assert_eq!(hangs.error.as_deref(), Some("timed out after 50ms"));
    assert_eq!(attempts.load(Ordering::SeqCst), 2);

    let key = PartitionKey {
        pipeline: "test".into(),
        partition: date().to_string(),
        namespace: Namespace::Production,
    };
    let recorded = h.runner.store.attempts(&key).await.expect("attempts");
    let statuses: Vec<TaskStatus> = recorded.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [TaskStatus::TimedOut, TaskStatus::TimedOut]);
}

#[tokio::test]
async fn a_non_critical_failure_does_not_fail_the_run() {
    let h = harness(vec![
        failing("currency").policy(policy(0, None, false)),
        ok("model").after(["currency"]),
    ])
    .await;
    let report = h.run(|_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(status(&report, "currency"), TaskStatus::Failed);
    assert_eq!(status(&report, "model"), TaskStatus::Succeeded);
}

#[tokio::test]
async fn workers_bound_parallelism_and_independent_tasks_overlap() {
    for (workers, expected_max) in [(1, 1), (3, 3)] {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let specs = (0..9)
            .map(|i| {
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                TaskSpec::new(format!("t{i}"), move |_ctx| -> TaskFuture<'_> {
                    let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                    Box::pin(async move {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                })
            })
            .collect();
        let h = harness(specs).await;
        let report = h.run(|o| o.workers = workers).await;
        assert_eq!(report.count(TaskStatus::Succeeded), 9);
        assert_eq!(
            most.load(Ordering::SeqCst),
            expected_max,
            "workers = {workers}"
        );
    }
}

#[tokio::test]
async fn a_task_starts_as_soon_as_its_own_dependencies_are_done() {
    // `quick_child` must not wait for `slow`, which is in the same "layer" as `quick`.
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let logging = |name: &'static str, ms: u64| {
        let order = Arc::clone(&order);
        TaskSpec::new(name, move |_ctx| -> TaskFuture<'_> {
            let order = Arc::clone(&order);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                order
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .push(name);
                Ok(())
            })
        })
    };
    let h = harness(vec![
        logging("slow", 200),
        logging("quick", 1),
        logging("quick_child", 1).requires(["quick"]),
        logging("end", 1).requires(["slow", "quick_child"]),
    ])
    .await;
    let report = h.run(|_| {}).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let order = order.lock().expect("order").clone();
    assert_eq!(order, ["quick", "quick_child", "slow", "end"]);
}

#[tokio::test]
async fn unit_mode_and_resume_in_process() {
    let h = harness(vec![
        ok("a"),
        failing("b").requires(["a"]),
        ok("c").requires(["b"]),
    ])
    .await;
    let first = h.run(|_| {}).await;
    assert_eq!(status(&first, "c"), TaskStatus::UpstreamFailed);
    let only = h
        .run(|o| {
            o.targets = vec!["c".into()];
            o.only = true;
        })
        .await;
    assert_eq!(only.tasks.len(), 1);
    assert_eq!(
        status(&only, "c"),
        TaskStatus::Succeeded,
        "unit mode treats `b` as done"
    );
    let resumed = h.run(|_| {}).await;
    assert_eq!(status(&resumed, "a"), TaskStatus::Skipped);
    assert_eq!(status(&resumed, "b"), TaskStatus::Failed);
    assert_eq!(
        status(&resumed, "c"),
        TaskStatus::Skipped,
        "completed in unit mode"
    );
}

#[tokio::test]
async fn test_mode_on_postgres_writes_only_to_the_test_schema() {
    use pipeline_core::sqlx;
    let warehouse = pipeline_tests::PgDatabase::create();
    let writes = |name: &str| {
        TaskSpec::new(name, |ctx| {
            Box::pin(async move {
                let db = ctx.warehouse().await?;
                db.execute_script(&format!(
                    "CREATE TABLE IF NOT EXISTS orders (id BIGINT, mode TEXT); INSERT INTO orders VALUES ({}, '{}');",
                    ctx.run_id(),
                    if ctx.is_test() { "test" } else { "production" }
                ))
                .await
            })
        })
    };
    let mut h = harness(vec![writes("load_orders")]).await;
    h.runner.config.databases.insert(
        "warehouse".into(),
        Setting {
            url: warehouse.url.clone(),
            source: "the test".into(),
        },
    );
    assert_eq!(h.run(|_| {}).await.status, RunStatus::Succeeded);
    let pool = sqlx::PgPool::connect(&warehouse.url)
        .await
        .expect("connect");
    let production = || async {
        sqlx::query_scalar::<_, String>(
            "SELECT string_agg(id || ':' || mode, ',') FROM public.orders",
        )
        .fetch_one(&pool)
        .await
        .expect("production rows")
    };
    let before = production().await;
    assert_eq!(before, "1:production");

    let test = h.run(|o| o.test = true).await;
    assert_eq!(test.status, RunStatus::Succeeded);
    assert_eq!(
        status(&test, "load_orders"),
        TaskStatus::Succeeded,
        "test markers are separate"
    );
    assert_eq!(production().await, before, "production rows untouched");
    let in_test: String =
        sqlx::query_scalar("SELECT string_agg(mode, ',') FROM pipeline_test.orders")
            .fetch_one(&pool)
            .await
            .expect("test rows");
    assert_eq!(in_test, "test");
    pool.close().await;
}

#[tokio::test]
async fn retries_back_off_with_growing_delays() {
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&starts);
    let h = harness(vec![
        TaskSpec::new("flaky", move |_ctx| -> TaskFuture<'_> {
            seen.lock().expect("lock").push(std::time::Instant::now());
            Box::pin(async { Err(anyhow::anyhow!("still down")) })
        })
        .policy(Policy {
            retries: 3,
            retry_delay: Duration::from_millis(100),
            timeout: None,
            critical: true,
        }),
    ])
    .await;
    let report = h.run(|_| {}).await;
    assert_eq!(task(&report, "flaky").attempts, 4);
    let starts = starts.lock().expect("lock").clone();
    let delays: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Each delay lies between half and all of its exponential bound: 100, 200, 400 ms.
    for (delay, bound_ms) in delays.iter().zip([100u64, 200, 400]) {
        let bound = Duration::from_millis(bound_ms);
        assert!(
            *delay >= bound / 2 && *delay <= bound + Duration::from_millis(400),
            "{delays:?}"
        );
    }
    assert!(delays[2] > delays[0], "{delays:?}");
}

#[tokio::test]
async fn a_fatal_error_ends_the_task_at_once() {
    use pipeline_core::ResultExt as _;
    let h = harness(vec![
        TaskSpec::new("login", |_ctx| {
            Box::pin(async { Err::<(), _>(anyhow::anyhow!("bad password")).fatal() })
        })
        .policy(policy(5, None, true)),
    ])
    .await;
    let report = h.run(|_| {}).await;
    let login = task(&report, "login");
    assert_eq!((login.status, login.attempts), (TaskStatus::Failed, 1));
    assert_eq!(
        login.error.as_deref(),
        Some("bad password (fatal: not retried)")
    );
}

#[tokio::test]
async fn fail_fast_starts_nothing_after_a_critical_failure() {
    let h = harness(vec![
        failing("a_breaks"),
        ok("b_would_run"),
        ok("c_would_run"),
        failing("d_optional").policy(policy(0, None, false)),
    ])
    .await;
    let report = h
        .run(|o| {
            o.fail_fast = true;
            o.workers = 1;
        })
        .await;
    assert_eq!(
        report.status,
        RunStatus::Failed,
        "a failed run, not a cancelled one"
    );
    assert_eq!(status(&report, "a_breaks"), TaskStatus::Failed);
    assert_eq!(status(&report, "b_would_run"), TaskStatus::Cancelled);
    assert_eq!(
        task(&report, "c_would_run").error.as_deref(),
        Some("not started: --fail-fast after `a_breaks` failed")
    );

    let without = h.run(|o| o.workers = 1).await;
    assert_eq!(status(&without, "b_would_run"), TaskStatus::Succeeded);
}
