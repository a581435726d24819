//! Resource pools through the real executor and a real SQLite state store: a pool bounds its
//! tasks across runs of one runner, waiting tasks hold no worker, free slots go by priority,
//! retries give their slot back, and a signal cancels tasks that wait for one. The tasks block
//! their threads (`std::thread::sleep`), as synchronous ETL code does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline_core::date::Date;
use pipeline_core::testing::Pools;
use pipeline_core::testing::{Quiet, RunOptions, RunReport, Runner};
use pipeline_core::testing::{RunStatus, TaskStatus};
use pipeline_core::{Policy, TaskSpec};
use pipeline_tests::Sandbox;
use tokio::sync::watch;

/// What ran when, in the tasks' own words.
#[derive(Default)]
struct Log {
    /// Task names in the order they started.
    started: Vec<String>,
    /// When each task started and ended.
    spans: Vec<(String, Instant, Instant)>,
    /// Tasks of the pool running now, and the most seen at once.
    in_pool: usize,
    most_in_pool: usize,
}

type Shared = Arc<Mutex<Log>>;

/// A task that holds its thread for `ms` (blocking, not at an await), logging itself; `pooled`
/// counts it as one of the pool's tasks.
fn blocking(log: &Shared, name: &str, ms: u64, pooled: bool) -> TaskSpec {
    let log = Arc::clone(log);
    TaskSpec::new(name, move |ctx| {
        let log = Arc::clone(&log);
        let name = ctx.task().to_string();
        Box::pin(async move {
            let start = Instant::now();
            {
                let mut log = log.lock().expect("the log");
                log.started.push(name.clone());
                if pooled {
                    log.in_pool += 1;
                    log.most_in_pool = log.most_in_pool.max(log.in_pool);
                }
            }
            std::thread::sleep(Duration::from_millis(ms));
            let mut log = log.lock().expect("the log");
            if pooled {
                log.in_pool -= 1;
            }
            log.spans.push((name, start, Instant::now()));
            Ok(())
        })
    })
}

struct Harness {
    runner: Runner,
    _sandbox: Sandbox,
}

async fn harness(specs: Vec<TaskSpec>, pools: &[(&str, usize)]) -> Harness {
    let sandbox = Sandbox::new("pools");
    let mut runner = pipeline_tests::runner_for(&sandbox.config(&[]), "test", specs).await;
    runner.pools = Arc::new(Pools::new(pools.iter().copied()));
    Harness {
        runner,
        _sandbox: sandbox,
    }
}

fn day(day: u32) -> Date {
    Date::from_ymd(2026, 11, day).expect("a date")
}

impl Harness {
    async fn run_on(&self, date: Date, workers: usize, cancel: watch::Receiver<bool>) -> RunReport {
        let mut options = RunOptions::new(date);
        options.workers = workers;
        self.runner
            .run(&options, &Quiet, cancel)
            .await
            .expect("the run")
    }

    async fn run(&self, workers: usize) -> RunReport {
        let (_tx, cancel) = watch::channel(false);
        self.run_on(day(26), workers, cancel).await
    }
}

fn task<'a>(report: &'a RunReport, name: &str) -> &'a pipeline_core::testing::TaskReport {
    report.task(name).unwrap_or_else(|| panic!("no {name}"))
}

fn span(log: &Shared, name: &str) -> (Instant, Instant) {
    let log = log.lock().expect("the log");
    log.spans
        .iter()
        .find(|(task, ..)| task == name)
        .map(|(_, start, end)| (*start, *end))
        .unwrap_or_else(|| panic!("{name} did not run"))
}

#[tokio::test]
async fn a_pool_bounds_its_tasks_and_the_others_run_meanwhile() {
    let log = Shared::default();
    let mut specs: Vec<TaskSpec> = (0..6)
        .map(|i| blocking(&log, &format!("load_{i}"), 150, true).pool("replica"))
        .collect();
    specs.push(blocking(&log, "fetch_rates", 50, false));
    specs.push(blocking(&log, "model", 10, false).requires(["fetch_rates"]));
    let h = harness(specs, &[("replica", 2)]).await;
    let report = h.run(4).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let log_now = log.lock().expect("the log").most_in_pool;
    assert_eq!(
        log_now, 2,
        "at most the pool's size at once, and it was used"
    );
    // Four loads waited for the pool without holding workers: the other branch ran at once.
    let (_, model_end) = span(&log, "model");
    let last_load_start = (0..6)
        .map(|i| span(&log, &format!("load_{i}")).0)
        .max()
        .expect("loads");
    assert!(
        model_end < last_load_start,
        "the branch outside the pool finished while loads still waited for it"
    );
    let waited: Vec<u64> = (0..6)
        .map(|i| task(&report, &format!("load_{i}")).waited_ms)
        .collect();
    assert_eq!(
        waited.iter().filter(|ms| **ms >= 100).count(),
        4,
        "four loads waited about a load's length or more: {waited:?}"
    );
    assert_eq!(task(&report, "fetch_rates").waited_ms, 0);
}

#[tokio::test]
async fn a_freed_slot_goes_to_the_highest_priority_then_the_first_ready() {
    let log = Shared::default();
    let specs = vec![
        blocking(&log, "first", 100, true)
            .pool("replica")
            .priority(100),
        blocking(&log, "low", 10, true).pool("replica"),
        blocking(&log, "high", 10, true)
            .pool("replica")
            .priority(10),
        blocking(&log, "negative", 10, true)
            .pool("replica")
            .priority(-1),
        blocking(&log, "low_too", 10, true).pool("replica"),
        blocking(&log, "mid", 10, true).pool("replica").priority(5),
    ];
    let h = harness(specs, &[("replica", 1)]).await;
    let report = h.run(8).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    let started = log.lock().expect("the log").started.clone();
    assert_eq!(
        started,
        ["first", "high", "mid", "low", "low_too", "negative"],
        "by priority, then in the order they became ready (the graph's order)"
    );
}

#[tokio::test]
async fn runs_of_one_runner_share_its_pools() {
    let log = Shared::default();
    let specs: Vec<TaskSpec> = (0..3)
        .map(|i| blocking(&log, &format!("load_{i}"), 100, true).pool("replica"))
        .collect();
    let h = harness(specs, &[("replica", 2)]).await;
    let (_tx, cancel) = watch::channel(false);
    let (a, b) = tokio::join!(
        h.run_on(day(25), 4, cancel.clone()),
        h.run_on(day(26), 4, cancel)
    );
    assert_eq!(a.status, RunStatus::Succeeded);
    assert_eq!(b.status, RunStatus::Succeeded);
    assert_eq!(
        log.lock().expect("the log").most_in_pool,
        2,
        "two runs of three loads each, never more than two loads at once"
    );
}

#[tokio::test]
async fn a_task_waiting_to_retry_gives_its_pool_slot_back() {
    let log = Shared::default();
    let attempts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let flaky = {
        let attempts = Arc::clone(&attempts);
        TaskSpec::new("flaky", move |_ctx| {
            let attempts = Arc::clone(&attempts);
            Box::pin(async move {
                let mut attempts = attempts.lock().expect("attempts");
                attempts.push(Instant::now());
                if attempts.len() == 1 {
                    anyhow::bail!("the replica is busy");
                }
                Ok(())
            })
        })
        .pool("replica")
        .priority(1)
        .policy(Policy {
            retries: 1,
            retry_delay: Duration::from_millis(400),
            ..Policy::default()
        })
    };
    let other = blocking(&log, "other", 50, true).pool("replica");
    let h = harness(vec![flaky, other], &[("replica", 1)]).await;
    let report = h.run(4).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(task(&report, "flaky").attempts, 2);
    let (other_start, _) = span(&log, "other");
    let attempts = attempts.lock().expect("attempts").clone();
    assert!(
        attempts[0] < other_start && other_start < attempts[1],
        "the other task of the pool ran while the first waited to retry"
    );
}

#[tokio::test]
async fn a_signal_cancels_the_tasks_that_wait_for_a_pool() {
    let log = Shared::default();
    let specs: Vec<TaskSpec> = (0..3)
        .map(|i| blocking(&log, &format!("load_{i}"), 300, true).pool("replica"))
        .collect();
    let h = harness(specs, &[("replica", 1)]).await;
    let (tx, cancel) = watch::channel(false);
    let started = Instant::now();
    let signal = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tx.send(true);
    };
    let (report, ()) = tokio::join!(h.run_on(day(26), 4, cancel), signal);
    assert_eq!(report.status, RunStatus::Cancelled);
    let cancelled = report
        .tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Cancelled)
        .count();
    assert_eq!(
        cancelled, 3,
        "the running load and both that waited: {report:?}"
    );
    assert_eq!(
        log.lock().expect("the log").started.len(),
        1,
        "no waiting load started after the signal"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the run ended without waiting for the pool"
    );
}

#[tokio::test]
async fn a_task_in_a_pool_the_runner_lacks_is_refused_before_the_run() {
    let log = Shared::default();
    let h = harness(
        vec![blocking(&log, "load", 1, true).pool("replcia")],
        &[("replica", 1)],
    )
    .await;
    let mut options = RunOptions::new(day(26));
    options.workers = 1;
    let (_tx, cancel) = watch::channel(false);
    let err = h
        .runner
        .run(&options, &Quiet, cancel)
        .await
        .expect_err("an unknown pool");
    let message = format!("{err:#}");
    assert!(
        message.contains("task `load` is in the pool `replcia`"),
        "{message}"
    );
}
