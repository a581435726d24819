//! The run's control plane against task code that does what ETL code does: blocks its thread
//! (a synchronous client, a subprocess) or burns CPU (a transform) before or between awaits.
//! Scheduling, timeouts, retries and cancellation must hold whatever the tasks do.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline_core::date::Date;
use pipeline_core::testing::{Quiet, RunOptions, RunReport, Runner};
use pipeline_core::testing::{RunStatus, TaskStatus};
use pipeline_core::{Policy, TaskSpec};
use pipeline_tests::Sandbox;
use tokio::sync::watch;

/// How many attempts run at once, and the most that ever did.
#[derive(Default)]
struct Concurrency {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Concurrency {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// What happened, in order.
#[derive(Default, Clone)]
struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    fn note(&self, line: impl Into<String>) {
        self.0.lock().expect("journal").push(line.into());
    }

    fn position(&self, line: &str) -> usize {
        let lines = self.0.lock().expect("journal");
        lines
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line:?} never happened: {lines:?}"))
    }
}

/// A task that blocks its thread for `block` before its first await, counted in `running`.
fn blocking(name: &str, block: Duration, running: &Arc<Concurrency>) -> TaskSpec {
    let running = Arc::clone(running);
    TaskSpec::new(name, move |_ctx| {
        let running = Arc::clone(&running);
        Box::pin(async move {
            running.enter();
            std::thread::sleep(block);
            running.leave();
            Ok(())
        })
    })
}

/// A task that burns CPU for `spin` before its first await.
fn spinning(name: &str, spin: Duration, running: &Arc<Concurrency>) -> TaskSpec {
    let running = Arc::clone(running);
    TaskSpec::new(name, move |_ctx| {
        let running = Arc::clone(&running);
        Box::pin(async move {
            running.enter();
            let until = Instant::now() + spin;
            let mut x: u64 = 1;
            while Instant::now() < until {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(x);
            running.leave();
            Ok(())
        })
    })
}

/// A task that notes when it ends, after an async sleep.
fn noting(name: &str, journal: &Journal) -> TaskSpec {
    let journal = journal.clone();
    let task = name.to_string();
    TaskSpec::new(name, move |_ctx| {
        let (journal, task) = (journal.clone(), task.clone());
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            journal.note(format!("{task} done"));
            Ok(())
        })
    })
}

fn policy(retries: u32, retry_delay_ms: u64, timeout_ms: Option<u64>) -> Policy {
    Policy {
        retries,
        retry_delay: Duration::from_millis(retry_delay_ms),
        timeout: timeout_ms.map(Duration::from_millis),
        critical: true,
    }
}

struct Harness {
    runner: Runner,
    _sandbox: Sandbox,
}

async fn harness(specs: Vec<TaskSpec>) -> Harness {
    let sandbox = Sandbox::new("control");
    let runner = pipeline_tests::runner_for(&sandbox.config(&[]), "control", specs).await;
    Harness {
        runner,
        _sandbox: sandbox,
    }
}

impl Harness {
    async fn run(&self, workers: usize, cancel: watch::Receiver<bool>) -> RunReport {
        let mut options = RunOptions::new(Date::from_ymd(2026, 11, 26).expect("a date"));
        options.workers = workers;
        options.force = true;
        self.runner
            .run(&options, &Quiet, cancel)
            .await
            .expect("the run")
    }

    async fn run_with(&self, workers: usize) -> RunReport {
        let (_tx, cancel) = watch::channel(false);
        self.run(workers, cancel).await
    }
}

fn task<'a>(report: &'a RunReport, name: &str) -> &'a pipeline_core::testing::TaskReport {
    report.task(name).unwrap_or_else(|| panic!("no {name}"))
}

#[tokio::test]
async fn blocking_tasks_run_in_parallel_up_to_workers() {
    let running = Arc::new(Concurrency::default());
    let specs = (0..4)
        .map(|i| blocking(&format!("block_{i}"), Duration::from_millis(400), &running))
        .collect();
    let h = harness(specs).await;
    let report = h.run_with(4).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(running.most(), 4, "four blocking tasks, four workers");

    let running_two = Arc::new(Concurrency::default());
    let specs = (0..4)
        .map(|i| {
            blocking(
                &format!("block_{i}"),
                Duration::from_millis(200),
                &running_two,
            )
        })
        .collect();
    let h = harness(specs).await;
    h.run_with(2).await;
    assert_eq!(running_two.most(), 2, "never more than --workers at once");
}

#[tokio::test]
async fn cpu_bound_tasks_run_in_parallel_up_to_workers() {
    let running = Arc::new(Concurrency::default());
    let specs = (0..4)
        .map(|i| spinning(&format!("spin_{i}"), Duration::from_millis(300), &running))
        .collect();
    let h = harness(specs).await;
    let report = h.run_with(4).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(running.most(), 4, "four spinning tasks, four workers");
}

#[tokio::test]
async fn a_blocking_task_does_not_hold_up_an_independent_one() {
    let journal = Journal::default();
    let running = Arc::new(Concurrency::default());
    let ended = journal.clone();
    let block = blocking("blocker", Duration::from_millis(1500), &running);
    let h = harness(vec![
        block,
        noting("quick_a", &journal),
        noting("quick_b", &journal).requires(["quick_a"]),
        noting("quick_c", &journal).requires(["quick_b"]),
        TaskSpec::new("after_blocker", move |_ctx| {
            let ended = ended.clone();
            Box::pin(async move {
                ended.note("blocker done");
                Ok(())
            })
        })
        .requires(["blocker"]),
    ])
    .await;
    let report = h.run_with(2).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(
        journal.position("quick_c done") < journal.position("blocker done"),
        "a chain of quick tasks finished while the other slot was blocked"
    );
}

#[tokio::test]
async fn a_timeout_stops_a_blocking_attempt_at_its_limit_and_the_run_goes_on() {
    let running = Arc::new(Concurrency::default());
    let journal = Journal::default();
    let h = harness(vec![
        blocking("stuck", Duration::from_millis(3000), &running).policy(policy(0, 10, Some(300))),
        noting("audit", &journal).after(["stuck"]),
    ])
    .await;
    let started = Instant::now();
    let report = h.run_with(2).await;
    let stuck = task(&report, "stuck");
    assert_eq!(stuck.status, TaskStatus::TimedOut, "{stuck:?}");
    assert_eq!(stuck.error.as_deref(), Some("timed out after 300ms"));
    assert_eq!(task(&report, "audit").status, TaskStatus::Succeeded);
    assert_eq!(report.status, RunStatus::Failed);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "recorded at its limit, not when the blocking call returned: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_retry_never_runs_beside_a_stuck_attempt() {
    let running = Arc::new(Concurrency::default());
    let counted = Arc::clone(&running);
    let flaky = TaskSpec::new("flaky", move |ctx| {
        let running = Arc::clone(&counted);
        let first = ctx.attempt() == 1;
        Box::pin(async move {
            running.enter();
            if first {
                // Past its timeout, inside a blocking call.
                std::thread::sleep(Duration::from_millis(1200));
            }
            running.leave();
            Ok(())
        })
    })
    .policy(policy(1, 10, Some(200)));
    let h = harness(vec![flaky]).await;
    let report = h.run_with(2).await;
    let flaky = task(&report, "flaky");
    assert_eq!((flaky.status, flaky.attempts), (TaskStatus::Succeeded, 2));
    assert_eq!(running.most(), 1, "two attempts of one task never overlap");
}

#[tokio::test]
async fn a_task_waiting_to_retry_gives_its_worker_slot_back() {
    let journal = Journal::default();
    let noted = journal.clone();
    let flaky = TaskSpec::new("flaky", move |ctx| {
        let journal = noted.clone();
        let attempt = ctx.attempt();
        Box::pin(async move {
            journal.note(format!("flaky attempt {attempt}"));
            anyhow::ensure!(attempt > 1, "first attempt fails");
            Ok(())
        })
    })
    .policy(policy(1, 1500, None));
    let h = harness(vec![flaky, noting("other", &journal)]).await;
    let report = h.run_with(1).await;
    assert_eq!(report.status, RunStatus::Succeeded);
    assert!(
        journal.position("other done") < journal.position("flaky attempt 2"),
        "one worker: the other task ran while flaky waited to retry"
    );
}

#[tokio::test]
async fn a_signal_ends_the_run_while_a_task_blocks() {
    let running = Arc::new(Concurrency::default());
    let h = harness(vec![
        blocking("stuck", Duration::from_secs(30), &running),
        blocking("later", Duration::ZERO, &running).requires(["stuck"]),
    ])
    .await;
    let (tx, cancel) = watch::channel(false);
    let started = Instant::now();
    let signal = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = tx.send(true);
        tx
    });
    let report = h.run(2, cancel).await;
    assert_eq!(report.status, RunStatus::Cancelled);
    assert_eq!(task(&report, "stuck").status, TaskStatus::Cancelled);
    assert_eq!(task(&report, "later").status, TaskStatus::Cancelled);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "a bounded grace, not the 30 s of the blocking call: {:?}",
        started.elapsed()
    );
    drop(signal);
}

#[tokio::test]
async fn errors_no_retry_can_fix_are_not_retried() {
    let unknown_db = TaskSpec::new("unknown_db", |ctx| {
        Box::pin(async move {
            ctx.db("no_such_db").await?;
            Ok(())
        })
    });
    let unknown_table = TaskSpec::new("unknown_table", |ctx| {
        Box::pin(async move {
            ctx.warehouse()
                .await?
                .execute_script("INSERT INTO no_such_table VALUES (1)")
                .await
        })
    });
    let hostile_name = TaskSpec::new("hostile_name", |ctx| {
        Box::pin(async move {
            ctx.load_table("users").as_table("bad\0name").run().await?;
            Ok(())
        })
    });
    let minutes = |spec: TaskSpec| spec.policy(policy(5, 60_000, None));
    let h = harness(vec![
        minutes(unknown_db),
        minutes(unknown_table),
        minutes(hostile_name),
    ])
    .await;
    let started = Instant::now();
    let report = h.run_with(3).await;
    for name in ["unknown_db", "unknown_table", "hostile_name"] {
        let t = task(&report, name);
        assert_eq!((t.status, t.attempts), (TaskStatus::Failed, 1), "{t:?}");
        assert!(
            t.error
                .as_deref()
                .is_some_and(|e| e.ends_with("(fatal: not retried)")),
            "{t:?}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn a_task_whose_code_never_comes_back_is_not_retried_forever() {
    let running = Arc::new(Concurrency::default());
    let h = harness(vec![
        blocking("hung", Duration::from_secs(60), &running).policy(policy(3, 10, Some(200))),
    ])
    .await;
    let started = Instant::now();
    let report = h.run_with(2).await;
    let hung = task(&report, "hung");
    assert_eq!((hung.status, hung.attempts), (TaskStatus::TimedOut, 1));
    assert!(
        hung.error
            .as_deref()
            .is_some_and(|e| e.contains("not retried, as two attempts of a task never run at once")),
        "{hung:?}"
    );
    assert_eq!(running.most(), 1);
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn task_code_may_use_tokio_as_it_would_anywhere() {
    let h = harness(vec![
        TaskSpec::new("block_in_place", |_ctx| {
            Box::pin(async move {
                let value = tokio::task::block_in_place(|| {
                    std::thread::sleep(Duration::from_millis(20));
                    7
                });
                anyhow::ensure!(value == 7);
                Ok(())
            })
        }),
        TaskSpec::new("spawns", |_ctx| {
            Box::pin(async move {
                let spawned = tokio::spawn(async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    3
                });
                let blocking = tokio::task::spawn_blocking(|| 4);
                anyhow::ensure!(spawned.await? + blocking.await? == 7);
                Ok(())
            })
        }),
        TaskSpec::new("panics", |_ctx| {
            Box::pin(async move {
                tokio::task::yield_now().await;
                panic!("a bug in the task");
            })
        }),
    ])
    .await;
    let report = h.run_with(3).await;
    assert_eq!(
        task(&report, "block_in_place").status,
        TaskStatus::Succeeded,
        "{report:?}"
    );
    assert_eq!(
        task(&report, "spawns").status,
        TaskStatus::Succeeded,
        "{report:?}"
    );
    let panicked = task(&report, "panics");
    assert_eq!(panicked.status, TaskStatus::Failed);
    assert_eq!(
        panicked.error.as_deref(),
        Some("panicked: a bug in the task")
    );
}
