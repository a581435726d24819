//! One suite, run against both state-store backends: SQLite (a real file) and PostgreSQL (a
//! database of its own per test).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pipeline_core::testing::Setting;
use pipeline_core::testing::{
    AttemptRecord, Completion, Heartbeat, LockAttempt, LockHolder, MarkerRecord, Namespace, NewRun,
    PartitionKey, StateStore, TickRecord,
};
use pipeline_core::testing::{RunStatus, TaskStatus};
use pipeline_tests::{PgDatabase, Sandbox, psql};

/// Keeps the backing file or database alive for the test.
enum Backing {
    File(#[allow(dead_code)] Sandbox),
    Database(#[allow(dead_code)] PgDatabase),
}

async fn open(url: String) -> Arc<StateStore> {
    let setting = Setting {
        url,
        source: "the test".into(),
    };
    Arc::new(
        StateStore::open(&setting)
            .await
            .expect("open the state store"),
    )
}

async fn sqlite() -> (Arc<StateStore>, Backing) {
    let sandbox = Sandbox::new("state");
    let url = format!("sqlite://{}", sandbox.path("state.db").display());
    (open(url).await, Backing::File(sandbox))
}

async fn postgres() -> (Arc<StateStore>, Backing) {
    let database = PgDatabase::create();
    (
        open(database.url.clone()).await,
        Backing::Database(database),
    )
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _backing) = super::sqlite().await;
                    assert_eq!(store.backend(), "sqlite");
                    super::$test(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    let (store, _backing) = super::postgres().await;
                    assert_eq!(store.backend(), "postgres");
                    super::$test(store).await;
                }
            )*
        }
    };
}

on_both_backends!(
    runs_attempts_and_markers_round_trip,
    markers_are_per_partition_and_namespace,
    one_batch_may_hold_a_start_and_its_end,
    finishing_a_run_leaves_nothing_running,
    the_lock_is_exclusive_and_breakable,
    many_rows_in_one_batch,
    scheduler_lease_and_ticks,
    awkward_text_and_large_numbers_are_written_as_given,
    one_tasks_attempts_of_a_partition,
    each_tasks_last_success_in_production,
);

fn key(partition: &str, namespace: Namespace) -> PartitionKey {
    PartitionKey {
        pipeline: "daily".into(),
        partition: partition.into(),
        namespace,
    }
}

async fn start(store: &Arc<StateStore>, key: &PartitionKey) -> i64 {
    store
        .start_run(&NewRun {
            key: key.clone(),
            targets: vec!["report".into()],
            unit_mode: false,
            host: "test-host".into(),
            pid: 42,
            started_at: 1_000,
        })
        .await
        .expect("start a run")
}

fn attempt(run_id: i64, task: &str, attempt: u32, status: TaskStatus) -> AttemptRecord {
    AttemptRecord {
        run_id,
        task: task.into(),
        attempt,
        status,
        started_at: 2_000 + i64::from(attempt),
        finished_at: (status != TaskStatus::Running).then_some(3_000),
        error: (status == TaskStatus::Failed).then(|| "boom".to_string()),
        note: (status == TaskStatus::Succeeded).then(|| "1 row".to_string()),
        value: (status == TaskStatus::Succeeded).then_some(1.5),
        log: None,
    }
}

async fn runs_attempts_and_markers_round_trip(store: Arc<StateStore>) {
    let key = key("2026-11-26", Namespace::Production);
    let run = start(&store, &key).await;
    store
        .record(
            &key,
            &[attempt(run, "extract", 1, TaskStatus::Running)],
            &[],
        )
        .await
        .expect("record a start");
    store
        .record(
            &key,
            &[
                attempt(run, "extract", 1, TaskStatus::Failed),
                attempt(run, "extract", 2, TaskStatus::Succeeded),
            ],
            &[MarkerRecord {
                task: "extract".into(),
                run_id: run,
                completed_at: 3_000,
                targets: None,
            }],
        )
        .await
        .expect("record the ends");
    store
        .finish_run(run, RunStatus::Succeeded, (1, 0), 4_000)
        .await
        .expect("finish");

    let attempts = store.attempts(&key).await.expect("attempts");
    assert_eq!(
        attempts,
        vec![
            attempt(run, "extract", 1, TaskStatus::Failed),
            attempt(run, "extract", 2, TaskStatus::Succeeded)
        ]
    );
    assert_eq!(
        store
            .completed(&key)
            .await
            .expect("markers")
            .into_iter()
            .collect::<Vec<_>>(),
        ["extract"]
    );
    let runs = store.runs("daily", 10).await.expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0].status, runs[0].finished_at, runs[0].tasks_total),
        (RunStatus::Succeeded, Some(4_000), Some(1))
    );
    assert_eq!(runs[0].targets, ["report"]);
    assert!(store.runs("other", 10).await.expect("runs").is_empty());
}

/// A batch goes to the database as one JSON parameter that SQL takes apart: text that JSON
/// escapes, integers past a double's 53 bits and fractions come back exactly as written.
async fn awkward_text_and_large_numbers_are_written_as_given(store: Arc<StateStore>) {
    let key = key("2026-11-26", Namespace::Production);
    let run = start(&store, &key).await;
    let task = "load[ordérs \"eu\\west\"] 📦";
    let text =
        "quote \" backslash \\ slash / newline\n tab\t {\"json\": [1]} '); DROP TABLE x; -- ünï";
    let record = AttemptRecord {
        run_id: run,
        task: task.into(),
        attempt: 1,
        status: TaskStatus::Succeeded,
        started_at: 9_007_199_254_740_993,
        finished_at: Some(i64::MAX),
        error: Some(text.into()),
        note: Some(format!("{text} (note)")),
        value: Some(0.1),
        log: Some(format!("{text}\nsecond line")),
    };
    let marker = MarkerRecord {
        task: task.into(),
        run_id: run,
        completed_at: -9_007_199_254_740_993,
        targets: Some(format!("warehouse={text}")),
    };
    store
        .record(
            &key,
            std::slice::from_ref(&record),
            std::slice::from_ref(&marker),
        )
        .await
        .expect("record");
    let mut without_log = record.clone();
    without_log.log = None;
    assert_eq!(store.attempts(&key).await.expect("attempts"), [without_log]);
    assert_eq!(
        store.attempt_log(run, task, 1).await.expect("the log"),
        Some((TaskStatus::Succeeded, record.log.clone()))
    );
    let completion = store.completion(&key).await.expect("markers");
    assert_eq!(completion.complete.into_iter().collect::<Vec<_>>(), [task]);
    assert_eq!(completion.targets.get(task), marker.targets.as_ref());
    // Numbers at the ends of a float's range come back as they went (the rows travel as JSON).
    let extremes = [f64::MAX, f64::MIN_POSITIVE, 5e-324, -1.0 / 3.0];
    let records: Vec<AttemptRecord> = (2..)
        .zip(extremes)
        .map(|(attempt, value)| AttemptRecord {
            attempt,
            value: Some(value),
            log: None,
            ..record.clone()
        })
        .collect();
    store.record(&key, &records, &[]).await.expect("record");
    let values: Vec<Option<f64>> = store
        .attempts(&key)
        .await
        .expect("attempts")
        .iter()
        .skip(1)
        .map(|attempt| attempt.value)
        .collect();
    assert_eq!(values, extremes.map(Some));
}

/// `daily logs` reads one task's attempts of a partition, not the whole run's.
async fn one_tasks_attempts_of_a_partition(store: Arc<StateStore>) {
    let other_day = key("2026-11-27", Namespace::Production);
    let key = key("2026-11-26", Namespace::Production);
    let run = start(&store, &key).await;
    let other_run = start(&store, &other_day).await;
    let written = [
        attempt(run, "extract", 1, TaskStatus::Failed),
        attempt(run, "load", 1, TaskStatus::Succeeded),
        attempt(run, "extract", 2, TaskStatus::Succeeded),
    ];
    store.record(&key, &written, &[]).await.expect("record");
    store
        .record(
            &other_day,
            &[attempt(other_run, "extract", 1, TaskStatus::Succeeded)],
            &[],
        )
        .await
        .expect("record another day");
    assert_eq!(
        store
            .partition_task_attempts(&key, "extract")
            .await
            .expect("extract's attempts"),
        [written[0].clone(), written[2].clone()]
    );
    assert!(
        store
            .partition_task_attempts(&key, "report")
            .await
            .expect("none")
            .is_empty()
    );
}

/// The tables page's last loads: each task's newest succeeded attempt in production, asked
/// for many tasks at once; test runs, failures and attempts still running do not count.
async fn each_tasks_last_success_in_production(store: Arc<StateStore>) {
    let (first, second) = (
        key("2026-11-26", Namespace::Production),
        key("2026-11-27", Namespace::Production),
    );
    let test = key("2026-11-28", Namespace::Test);
    let (a, b, t) = (
        start(&store, &first).await,
        start(&store, &second).await,
        start(&store, &test).await,
    );
    let odd = "load[o'rders \"x\"]";
    let records = [
        (&first, a, "extract", 1, TaskStatus::Failed),
        (&first, a, "extract", 2, TaskStatus::Succeeded),
        (&first, a, "load", 1, TaskStatus::Succeeded),
        (&first, a, odd, 1, TaskStatus::Succeeded),
        (&second, b, "extract", 1, TaskStatus::Succeeded),
        (&second, b, "load", 1, TaskStatus::Failed),
        (&second, b, "report", 1, TaskStatus::Running),
        (&test, t, "load", 1, TaskStatus::Succeeded),
    ];
    for (key, run, task, number, status) in records {
        store
            .record(key, &[attempt(run, task, number, status)], &[])
            .await
            .expect("record");
    }
    let asked: Vec<String> = ["extract", "load", odd, "report", "never"]
        .map(String::from)
        .to_vec();
    let successes = store
        .last_successes("daily", &asked)
        .await
        .expect("last successes");
    let mut found: Vec<(String, i64, String)> = successes
        .into_iter()
        .map(|(task, (run, partition, finished_at))| {
            assert_eq!(finished_at, 3_000);
            (task, run, partition)
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("extract".to_string(), b, "2026-11-27".to_string()),
            ("load".to_string(), a, "2026-11-26".to_string()),
            (odd.to_string(), a, "2026-11-26".to_string()),
        ]
    );
    assert!(
        store
            .last_successes("another", &asked)
            .await
            .expect("another pipeline's")
            .is_empty()
    );
}

async fn markers_are_per_partition_and_namespace(store: Arc<StateStore>) {
    let production = key("2026-11-26", Namespace::Production);
    let run = start(&store, &production).await;
    let marker = MarkerRecord {
        task: "load".into(),
        run_id: run,
        completed_at: 1,
        targets: None,
    };
    store
        .record(&production, &[], std::slice::from_ref(&marker))
        .await
        .expect("mark");
    // Marking twice (a forced re-run) is not an error.
    store
        .record(&production, &[], &[marker])
        .await
        .expect("mark again");
    // A task that wrote to a database, beside one that did not, and the same task in test.
    let wrote = |task: &str, warehouse: &str| MarkerRecord {
        task: task.into(),
        run_id: run,
        completed_at: 2,
        targets: Some(format!("warehouse={warehouse}")),
    };
    store
        .record(&production, &[], &[wrote("report", "w1")])
        .await
        .expect("mark with targets");
    let test = key("2026-11-26", Namespace::Test);
    store
        .record(&test, &[], &[wrote("report", "test")])
        .await
        .expect("mark in test");
    let completion = store.completion(&production).await.expect("markers");
    assert_eq!(
        completion.complete,
        HashSet::from(["load".to_string(), "report".to_string()])
    );
    assert_eq!(
        completion.targets,
        HashMap::from([("report".to_string(), "warehouse=w1".to_string())])
    );
    assert_eq!(
        store
            .completion(&key("2026-11-25", Namespace::Production))
            .await
            .expect("markers"),
        Completion::default()
    );
    let completion = store.completion(&test).await.expect("markers");
    assert_eq!(completion.complete, HashSet::from(["report".to_string()]));
    assert_eq!(
        completion.targets,
        HashMap::from([("report".to_string(), "warehouse=test".to_string())])
    );
}

async fn one_batch_may_hold_a_start_and_its_end(store: Arc<StateStore>) {
    // The recorder coalesces, but the store must also accept an update without a prior insert.
    let key = key("2026-11-26", Namespace::Production);
    let run = start(&store, &key).await;
    store
        .record(&key, &[attempt(run, "t", 1, TaskStatus::Succeeded)], &[])
        .await
        .expect("record");
    let attempts = store.attempts(&key).await.expect("attempts");
    assert_eq!(attempts[0].status, TaskStatus::Succeeded);
}

async fn finishing_a_run_leaves_nothing_running(store: Arc<StateStore>) {
    // Another run's attempt still running is not this run's to end.
    let other_key = key("2026-11-25", Namespace::Production);
    let key = key("2026-11-26", Namespace::Production);
    let run = start(&store, &key).await;
    let other = start(&store, &other_key).await;
    store
        .record(
            &other_key,
            &[attempt(other, "slow", 1, TaskStatus::Running)],
            &[],
        )
        .await
        .expect("record the other run's");
    store
        .record(
            &key,
            &[
                attempt(run, "slow", 1, TaskStatus::Running),
                attempt(run, "fast", 1, TaskStatus::Succeeded),
            ],
            &[],
        )
        .await
        .expect("record");
    store
        .finish_run(run, RunStatus::Cancelled, (2, 1), 9_000)
        .await
        .expect("finish");
    let ended: Vec<(String, TaskStatus, Option<i64>)> = store
        .attempts(&key)
        .await
        .expect("attempts")
        .into_iter()
        .map(|a| (a.task, a.status, a.finished_at))
        .collect();
    assert!(
        ended.contains(&("slow".into(), TaskStatus::Cancelled, Some(9_000)))
            && ended.contains(&("fast".into(), TaskStatus::Succeeded, Some(3_000)))
            && ended.len() == 2,
        "{ended:?}"
    );
    let others = store.attempts(&other_key).await.expect("the other run's");
    assert_eq!(others[0].status, TaskStatus::Running);
}

/// A run lock's holder: process `pid` of host `host-a`, as it asks for the lock.
fn holder(token: &str, pid: i64) -> LockHolder {
    LockHolder {
        token: token.into(),
        host: "host-a".into(),
        pid,
        pid_space: "space-a".into(),
        started_at: 10,
        heartbeat_at: 0,
        heartbeat_age_ms: 0,
    }
}

async fn the_lock_is_exclusive_and_breakable(store: Arc<StateStore>) {
    let key = key("2026-11-26", Namespace::Production);
    let held_by = |attempt: LockAttempt| match attempt {
        LockAttempt::Held(holder) => holder,
        LockAttempt::Acquired => panic!("the lock should be held"),
    };
    assert_eq!(
        store
            .try_lock(&key, &holder("first", 1))
            .await
            .expect("lock"),
        LockAttempt::Acquired
    );
    // A test-mode run of the same date has its own lock.
    assert_eq!(
        store
            .try_lock(
                &PartitionKey {
                    namespace: Namespace::Test,
                    ..key.clone()
                },
                &holder("t", 3)
            )
            .await
            .expect("lock"),
        LockAttempt::Acquired
    );
    let first = held_by(
        store
            .try_lock(&key, &holder("second", 2))
            .await
            .expect("lock"),
    );
    assert_eq!(
        (first.token.as_str(), first.pid, first.pid_space.as_str()),
        ("first", 1, "space-a")
    );
    // Heartbeats are written and aged by the store's clock, not the holders'.
    let wall = pipeline_core::testing::now_millis();
    assert!(
        (first.heartbeat_at - wall).abs() < 5_000,
        "{} vs {wall}",
        first.heartbeat_at
    );
    assert!((0..5_000).contains(&first.heartbeat_age_ms), "{first:?}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(
        store.heartbeat(&key, "first").await.expect("heartbeat"),
        Heartbeat::Held
    );
    assert_eq!(
        store.heartbeat(&key, "nobody").await.expect("heartbeat"),
        Heartbeat::Lost,
        "a heartbeat of a lock one does not hold says so"
    );
    let beaten = held_by(
        store
            .try_lock(&key, &holder("second", 2))
            .await
            .expect("lock"),
    );
    assert!(beaten.heartbeat_at > first.heartbeat_at, "{beaten:?}");

    // A lock judged on an older heartbeat is not broken: its holder has beaten since.
    assert!(!store.break_lock(&key, &first, 4_000).await.expect("break"));

    // The holder died mid-run: breaking its lock cancels what it left running.
    let run = start(&store, &key).await;
    store
        .record(&key, &[attempt(run, "slow", 1, TaskStatus::Running)], &[])
        .await
        .expect("record");
    assert!(store.break_lock(&key, &beaten, 5_000).await.expect("break"));
    assert_eq!(
        store
            .try_lock(&key, &holder("second", 2))
            .await
            .expect("lock"),
        LockAttempt::Acquired
    );
    assert_eq!(
        store.attempts(&key).await.expect("attempts")[0].status,
        TaskStatus::Cancelled
    );
    assert_eq!(
        store.runs("daily", 1).await.expect("runs")[0].status,
        RunStatus::Abandoned
    );

    // Breaking with a stale token does not remove the new holder's lock.
    assert!(!store.break_lock(&key, &beaten, 6_000).await.expect("break"));
    store.unlock(&key, "first").await.expect("unlock");
    assert!(matches!(
        store
            .try_lock(&key, &holder("third", 4))
            .await
            .expect("lock"),
        LockAttempt::Held(_)
    ));
    store.unlock(&key, "second").await.expect("unlock");
    assert_eq!(
        store
            .try_lock(&key, &holder("third", 4))
            .await
            .expect("lock"),
        LockAttempt::Acquired
    );
}

async fn many_rows_in_one_batch(store: Arc<StateStore>) {
    let key = key("2026-11-26", Namespace::Production);
    let run = start(&store, &key).await;
    let attempts: Vec<AttemptRecord> = (0..2_500)
        .map(|i| attempt(run, &format!("t{i}"), 1, TaskStatus::Succeeded))
        .collect();
    let markers: Vec<MarkerRecord> = (0..2_500)
        .map(|i| MarkerRecord {
            task: format!("t{i}"),
            run_id: run,
            completed_at: 1,
            targets: None,
        })
        .collect();
    store
        .record(&key, &attempts, &markers)
        .await
        .expect("record a large batch");
    assert_eq!(store.completed(&key).await.expect("markers").len(), 2_500);
    assert_eq!(store.attempts(&key).await.expect("attempts").len(), 2_500);
}

#[tokio::test]
async fn opening_twice_migrates_once() {
    let sandbox = Sandbox::new("migrate");
    let url = format!("sqlite://{}", sandbox.path("nested/dir/state.db").display());
    let first = open(url.clone()).await;
    first.close().await;
    let second = open(url).await;
    assert!(
        second
            .completed(&key("2026-11-26", Namespace::Production))
            .await
            .expect("query")
            .is_empty()
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_without_the_password() {
    let setting = Setting {
        url: "postgres://etl:hunter2@127.0.0.1:1/state".into(),
        source: "PIPELINE_STATE_URL".into(),
    };
    let err = StateStore::open(&setting)
        .await
        .expect_err("nothing listens on port 1");
    let message = format!("{err:#}");
    assert!(
        message.contains("PIPELINE_STATE_URL") && message.contains("etl:***@127.0.0.1:1"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

fn tick(schedule: &str, tick_at: i64, status: &str) -> TickRecord {
    TickRecord {
        pipeline: "p".into(),
        schedule: schedule.into(),
        tick_at,
        partition: "2026-11-25".into(),
        fired_at: 0,
        status: status.into(),
        run_id: None,
        deadline_alerted: false,
    }
}

/// A scheduler process as the ticks it holds name it.
fn scheduler(token: &str) -> LockHolder {
    LockHolder {
        token: token.into(),
        host: format!("host-{token}"),
        pid: 1,
        pid_space: String::new(),
        started_at: 0,
        heartbeat_at: 0,
        heartbeat_age_ms: 0,
    }
}

/// Whether `holder` takes (or renews) the scheduler lease of pipeline `p` for a minute, as the
/// holder found gone in `gone`.
async fn takes_lease(store: &StateStore, holder: &LockHolder, gone: Option<&str>) -> bool {
    store
        .take_scheduler_lease("p", holder, 60_000, gone)
        .await
        .expect("lease")
}

/// The scheduler's lease, its tick claims, and what a scheduler taking over reads.
async fn scheduler_lease_and_ticks(store: Arc<StateStore>) {
    let (a, b) = (scheduler("a"), scheduler("b"));
    let mut a_holder = a.clone();
    a_holder.pid_space = "boot/pid:[1]".into();
    assert!(takes_lease(&store, &a_holder, None).await);
    assert!(!takes_lease(&store, &b, None).await);
    // A live lease goes to another only as its holder's, found gone: not another's.
    assert!(!takes_lease(&store, &b, Some("x")).await);
    let holder = store.scheduler_lease("p").await.expect("holder");
    assert_eq!(
        holder.map(|h| (h.token, h.host, h.pid, h.pid_space)),
        Some(("a".into(), "host-a".into(), 1, "boot/pid:[1]".into()))
    );
    // Only the holder records ticks, each once.
    assert!(
        !store
            .claim_tick(&b, &tick("dense", 1_000, "fired"))
            .await
            .expect("claim")
    );
    for (at, status) in [
        (1_000, "fired"),
        (2_000, "fired"),
        (3_000, "fired"),
        (4_000, "skipped"),
    ] {
        assert!(
            store
                .claim_tick(&a, &tick("dense", at, status))
                .await
                .expect("claim")
        );
    }
    assert!(
        !store
            .claim_tick(&a, &tick("dense", 1_000, "fired"))
            .await
            .expect("claim")
    );
    for at in [500, 1_500] {
        let nightly = tick("nightly", at, "fired");
        assert!(store.claim_tick(&a, &nightly).await.expect("claim"));
    }
    let mut done = tick("dense", 1_000, "succeeded");
    done.run_id = Some(7);
    assert!(
        store
            .record_tick_outcome("a", &done)
            .await
            .expect("outcome")
    );
    // Only the holder writes a tick's outcome.
    assert!(
        !store
            .record_tick_outcome("b", &tick("dense", 3_000, "failed"))
            .await
            .expect("outcome")
    );
    let mut alerted = tick("dense", 2_000, "fired");
    alerted.deadline_alerted = true;
    store.record_deadline_alert(&alerted).await.expect("alert");
    store
        .record_tick_outcome("a", &tick("dense", 2_000, "failed"))
        .await
        .expect("outcome");
    for at in [500, 1_500] {
        let nightly = tick("nightly", at, "succeeded");
        store
            .record_tick_outcome("a", &nightly)
            .await
            .expect("outcome");
    }

    let at = |ticks: Vec<TickRecord>| -> Vec<(String, i64, String)> {
        ticks
            .into_iter()
            .map(|t| (t.schedule, t.tick_at, t.status))
            .collect()
    };
    let all = store.ticks("p", 0).await.expect("ticks");
    assert_eq!(all.len(), 6);
    assert_eq!(all[1].run_id, Some(7), "{all:?}");
    // The newest of each schedule, whatever `since` says.
    assert_eq!(
        at(store.ticks("p", i64::MAX).await.expect("ticks")),
        [
            ("nightly".into(), 1_500, "succeeded".into()),
            ("dense".into(), 4_000, "skipped".into())
        ]
    );
    // Taking over: the open ones (never ended, or alerted) and the newest; settled ticks only
    // of schedules with a deadline (`dense` at 1,000 and `nightly` at 500 are settled).
    assert_eq!(
        at(store.open_ticks("p", 0, &[]).await.expect("open ticks")),
        [
            ("nightly".into(), 1_500, "succeeded".into()),
            ("dense".into(), 2_000, "failed".into()),
            ("dense".into(), 3_000, "fired".into()),
            ("dense".into(), 4_000, "skipped".into())
        ]
    );
    assert_eq!(
        at(store
            .open_ticks("p", 0, &["nightly".into()])
            .await
            .expect("open ticks")),
        [
            ("nightly".into(), 500, "succeeded".into()),
            ("nightly".into(), 1_500, "succeeded".into()),
            ("dense".into(), 2_000, "failed".into()),
            ("dense".into(), 3_000, "fired".into()),
            ("dense".into(), 4_000, "skipped".into())
        ]
    );

    // The one tick fired and not ended, with the process that holds it, alive just now.
    store.renew_ticks("p", "a").await.expect("renew");
    let fired = store.fired_ticks("p").await.expect("fired ticks");
    assert_eq!(fired.len(), 1, "{fired:?}");
    let (open, holder) = &fired[0];
    assert_eq!(
        (open.tick_at, holder.token.as_str(), holder.host.as_str()),
        (3_000, "a", "host-a")
    );
    assert!(holder.heartbeat_age_ms < 10_000, "{holder:?}");
    // Without the lease, nobody takes it over.
    assert!(!store.adopt_tick(&b, open, "a").await.expect("adopt"));

    store
        .release_scheduler_lease("p", "a")
        .await
        .expect("release");
    assert_eq!(store.scheduler_lease("p").await.expect("holder"), None);
    assert!(takes_lease(&store, &b, None).await);
    // With it, once; then the tick and its outcome are the new holder's.
    assert!(store.adopt_tick(&b, open, "a").await.expect("adopt"));
    assert!(!store.adopt_tick(&b, open, "a").await.expect("adopt"));
    let mut done = open.clone();
    done.status = "succeeded".into();
    assert!(
        !store
            .record_tick_outcome("a", &done)
            .await
            .expect("outcome")
    );
    assert!(
        store
            .record_tick_outcome("b", &done)
            .await
            .expect("outcome")
    );
    assert!(
        store
            .fired_ticks("p")
            .await
            .expect("fired ticks")
            .is_empty()
    );
    // Taken over from b, found gone: b's renewal fails, and nobody takes it as b's again.
    let c = scheduler("c");
    assert!(takes_lease(&store, &c, Some("b")).await);
    assert!(!takes_lease(&store, &b, None).await);
    assert!(!takes_lease(&store, &a, Some("b")).await);
    let holder = store.scheduler_lease("p").await.expect("holder");
    assert_eq!(holder.map(|h| h.token), Some("c".into()));
}

/// A worker's outcome of an attempt that simply succeeded.
fn succeeded() -> pipeline_core::testing::WorkOutcome {
    pipeline_core::testing::WorkOutcome {
        status: TaskStatus::Succeeded,
        error: None,
        fatal: false,
        note: None,
        value: None,
        targets: None,
        handed_back: false,
        log: None,
    }
}

/// A PostgreSQL store with a started run of pipeline `daily`, whose attempts it queues, and
/// claims as worker `worker-1` of graph `graph`.
struct Queue {
    database: PgDatabase,
    store: Arc<StateStore>,
    key: PartitionKey,
    run_id: i64,
}

impl Queue {
    async fn new(partition: &str) -> Queue {
        let database = PgDatabase::create();
        let store = open(database.url.clone()).await;
        let key = key(partition, Namespace::Production);
        let run_id = start(&store, &key).await;
        Queue {
            database,
            store,
            key,
            run_id,
        }
    }

    /// The first attempt of `task`, in `pool` if any.
    fn work(&self, task: &str, pool: Option<(String, usize)>) -> pipeline_core::testing::NewWork {
        pipeline_core::testing::NewWork {
            run_id: self.run_id,
            key: self.key.clone(),
            unit_mode: false,
            task: task.into(),
            attempt: 1,
            fingerprint: "graph".into(),
            priority: 0,
            pool,
        }
    }

    /// Queues an attempt of each of `tasks` and claims them all, as worker `worker-1`.
    async fn claimed(&self, tasks: &[&str]) -> Vec<pipeline_core::testing::ClaimedWork> {
        let mut line = self.store.line("a worker").expect("a line");
        let work: Vec<_> = tasks.iter().map(|task| self.work(task, None)).collect();
        self.store
            .queue_work(&work)
            .await
            .expect("queue the attempts");
        let claimed = self
            .store
            .claim_work(&mut line, &Queue::request(tasks.len()))
            .await
            .expect("claim them")
            .work;
        assert_eq!(claimed.len(), tasks.len());
        claimed
    }

    /// A claim of up to `limit` attempts.
    fn request(limit: usize) -> pipeline_core::testing::ClaimRequest<'static> {
        pipeline_core::testing::ClaimRequest {
            pipeline: "daily",
            fingerprint: "graph",
            worker: "worker-1",
            token_prefix: "worker-1:0",
            limit,
            lease_ms: 30_000,
        }
    }
}

/// An outcome write that PostgreSQL aborts for a deadlock (another session, such as the worker's
/// lease renewal, holds one of its rows while it waits for another that the write holds) is
/// written again, not lost. Lost, its attempts were rescued as lost workers once their lease
/// ran out, and a distributed run under load failed.
#[tokio::test]
async fn postgres_an_outcome_write_aborted_by_a_deadlock_is_written_again() {
    use pipeline_core::sqlx::{self, Connection as _, PgConnection};
    use pipeline_core::testing::WorkOutcome;

    let queue = Queue::new("2026-12-05").await;
    let (database, store) = (&queue.database, &queue.store);
    let outcome = succeeded();
    // Another session holds one row, then, once the write holds the other and waits for it,
    // asks for the other: whichever of the two rows the write takes first, one of the two
    // orders deadlocks. Both orders are tried.
    for held_first in [0, 1] {
        let claimed = queue.claimed(&["a", "b"]).await;
        let outcomes: Vec<(i64, String, WorkOutcome)> = claimed
            .iter()
            .map(|work| (work.id, work.token.clone(), outcome.clone()))
            .collect();
        let mut other = PgConnection::connect(&database.url).await.expect("connect");
        sqlx::query("BEGIN")
            .execute(&mut other)
            .await
            .expect("begin");
        let touch = "UPDATE pipeline_work SET claimed_at = claimed_at WHERE id = $1";
        sqlx::query(touch)
            .bind(claimed[held_first].id)
            .execute(&mut other)
            .await
            .expect("hold a row");
        let writer = Arc::clone(store);
        let written = outcomes.clone();
        let finishing = tokio::spawn(async move {
            let mut line = writer.line("a worker").expect("a line");
            writer.finish_works(&mut line, &written).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        // Waits for the write, or is chosen by PostgreSQL to end the deadlock: either way,
        // this session then ends and lets the write through.
        let _ = sqlx::query(touch)
            .bind(claimed[1 - held_first].id)
            .execute(&mut other)
            .await;
        let _ = sqlx::query("ROLLBACK").execute(&mut other).await;
        let accepted = finishing
            .await
            .expect("the write's task")
            .expect("the outcomes are written, not lost to the deadlock");
        let mut accepted = accepted;
        accepted.sort_unstable();
        assert_eq!(accepted, [claimed[0].id, claimed[1].id]);
    }
}

/// A claim that took attempts in no pool and then fails to claim one in a resource pool
/// hands over what it took: those attempts are the worker's under their leases, and dropped
/// with the error they would have run out their lease unrun and been reported lost.
#[tokio::test]
async fn postgres_a_failed_claim_in_a_pool_keeps_the_attempts_already_claimed() {
    let queue = Queue::new("2026-12-07").await;
    let (database, store, work) = (&queue.database, &queue.store, |task, pool| {
        queue.work(task, pool)
    });
    let mut line = store.line("a worker").expect("a line");
    store
        .queue_work(&[work("free", None), work("pooled", Some(("api".into(), 2)))])
        .await
        .expect("queue two attempts");
    // The database refuses to start any attempt in a pool.
    psql(
        &database.url,
        "CREATE FUNCTION refuse_pooled() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           RAISE EXCEPTION 'pooled claims refused'; END $$; \
         CREATE TRIGGER refuse_pooled BEFORE UPDATE ON pipeline_work FOR EACH ROW \
           WHEN (NEW.pool IS NOT NULL AND NEW.state = 'running') EXECUTE FUNCTION refuse_pooled()",
    );
    let claimed = store
        .claim_work(&mut line, &Queue::request(2))
        .await
        .expect("the claim hands over what it took")
        .work;
    let tasks: Vec<&str> = claimed.iter().map(|work| work.task.as_str()).collect();
    assert_eq!(tasks, ["free"]);
    assert_eq!(
        psql(
            &database.url,
            "SELECT string_agg(task || '=' || state || ':' || coalesce(lease_token, ''), ',' \
             ORDER BY task) FROM pipeline_work"
        ),
        format!("free=running:{},pooled=queued:", claimed[0].token)
    );
}

/// A worker's claims keep their connection between statements: when the database drops it
/// (a restart, a terminated backend), the next claim is tried again on a fresh connection
/// instead of failing.
#[tokio::test]
async fn postgres_a_claim_whose_held_connection_was_dropped_is_tried_again_on_a_fresh_one() {
    let queue = Queue::new("2026-12-07").await;
    let (database, store) = (&queue.database, &queue.store);
    let request = Queue::request(1);
    let mut line = store.line("a worker").expect("a line");
    store
        .queue_work(&[queue.work("first", None), queue.work("second", None)])
        .await
        .expect("queue two attempts");
    let first = store
        .claim_work(&mut line, &request)
        .await
        .expect("the first claim")
        .work;
    assert_eq!(first[0].task, "first");
    let dropped = psql(
        &database.url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert_ne!(dropped, "0", "the line's connection was dropped");
    let second = store
        .claim_work(&mut line, &request)
        .await
        .expect("the claim after the connection was dropped")
        .work;
    assert_eq!(second[0].task, "second");
}

/// A claim says when it left the queue drained for its worker (fewer attempts than it asked
/// for, and none waiting for room in a pool): the worker then waits for the queue's next
/// notification instead of claiming again each time a slot frees. An attempt waiting in a
/// pool keeps the queue undrained: it may get room whenever another ends, anywhere.
#[tokio::test]
async fn postgres_a_claim_says_whether_it_left_the_queue_drained() {
    let fixture = Queue::new("2026-12-07").await;
    let (store, work) = (&fixture.store, |task, pool| fixture.work(task, pool));
    let request = Queue::request(2);
    let mut line = store.line("a worker").expect("a line");
    store
        .queue_work(&[work("a", None), work("b", None), work("c", None)])
        .await
        .expect("queue three attempts");
    let mut claim = async || {
        let claimed = store
            .claim_work(&mut line, &request)
            .await
            .expect("a claim");
        (claimed.work.len(), claimed.drained)
    };
    assert_eq!(claim().await, (2, false), "a full claim may have left more");
    assert_eq!(claim().await, (1, true), "the last one");
    assert_eq!(claim().await, (0, true), "nothing left");
    // A pool of no room: its attempt waits, and the queue is not drained.
    store
        .queue_work(&[work("d", Some(("api".into(), 0)))])
        .await
        .expect("queue a pooled attempt");
    assert_eq!(
        claim().await,
        (0, false),
        "an attempt waits for room in its pool"
    );
}

/// An outcome write reads only its own attempts' rows, whatever the statistics say. With the
/// statistics taken while little ran (here: the queue's history of 20,000 attempts and 2
/// running at the `ANALYZE`, 800 more running for other workers since), the planner read every
/// running attempt of the store for each write: by a scan of the table or of the lease tokens'
/// index, or a hash of all of them.
#[tokio::test]
async fn postgres_an_outcome_write_reads_only_its_own_rows_whatever_the_statistics() {
    use pipeline_core::sqlx::{self, Connection as _, PgConnection, Row as _};

    let queue = Queue::new("2026-12-07").await;
    let (database, store) = (&queue.database, &queue.store);
    let claimed = queue.claimed(&["a", "b"]).await;
    psql(
        &database.url,
        "ALTER TABLE pipeline_work SET (autovacuum_enabled = false); \
         INSERT INTO pipeline_work (run_id, pipeline, partition, namespace, unit_mode, task, \
         attempt, fingerprint, priority, state, queued_at, finished_at) \
         SELECT 0, 'daily', 'p', 'prod', FALSE, 'old' || n, 1, 'graph', 0, 'done', 0, 0 \
         FROM generate_series(1, 20000) AS n; ANALYZE pipeline_work; \
         INSERT INTO pipeline_work (run_id, pipeline, partition, namespace, unit_mode, task, \
         attempt, fingerprint, priority, state, queued_at, worker_id, lease_token, lease_until, \
         claimed_at) SELECT 0, 'daily', 'p', 'prod', FALSE, 'other' || n, 1, 'graph', 0, \
         'running', 0, 'worker-2', 'worker-2:0:' || n, 9000000000000, 0 \
         FROM generate_series(1, 800) AS n",
    );
    let ids: Vec<String> = claimed.iter().map(|work| work.id.to_string()).collect();
    let tokens: Vec<String> = claimed
        .iter()
        .map(|work| format!("'{}'", work.token))
        .collect();
    let execute = format!(
        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE outcome(ARRAY[{}], ARRAY[{}], \
         ARRAY['done', 'done'], ARRAY['succeeded', 'succeeded'], ARRAY[NULL, NULL]::TEXT[], \
         ARRAY[FALSE, FALSE], ARRAY[NULL, NULL]::TEXT[], ARRAY[NULL, NULL]::FLOAT8[], \
         ARRAY[NULL, NULL]::TEXT[], ARRAY[NULL, NULL]::TEXT[])",
        ids.join(", "),
        tokens.join(", ")
    );
    let mut conn = PgConnection::connect(&database.url).await.expect("connect");
    let prepare = format!("PREPARE outcome AS {}", store.outcome_write_sql());
    sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
        .execute(&mut conn)
        .await
        .expect("prepare the outcome write");
    // sqlx's statements are prepared: PostgreSQL plans the first five executions for their
    // values, and may keep a generic plan after.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let plan_for = format!("BEGIN; SET LOCAL plan_cache_mode = {mode}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(plan_for))
            .execute(&mut conn)
            .await
            .expect("a transaction");
        let plan: serde_json::Value = serde_json::from_str(
            &sqlx::raw_sql(sqlx::AssertSqlSafe(execute.as_str()))
                .fetch_one(&mut conn)
                .await
                .expect("the write's plan")
                .try_get_unchecked::<String, _>(0)
                .expect("the plan as JSON text"),
        )
        .expect("JSON");
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut conn)
            .await
            .expect("roll back");
        let read = rows_read(&plan[0]["Plan"], "pipeline_work");
        assert!(
            read <= 2 * claimed.len() as u64,
            "{mode}: the write of {} outcomes read {read} rows of the queue: {plan:#}",
            claimed.len()
        );
    }
}

/// The rows the scans of `table` in a plan (`EXPLAIN (ANALYZE, FORMAT JSON)`) read: those they
/// returned and those their filters removed, over every loop.
fn rows_read(node: &serde_json::Value, table: &str) -> u64 {
    let own = if node["Relation Name"] == table
        && node["Node Type"]
            .as_str()
            .is_some_and(|t| t.contains("Scan"))
    {
        let loops = node["Actual Loops"].as_u64().unwrap_or(1);
        let returned = node["Actual Rows"].as_u64().unwrap_or(0);
        let removed = node["Rows Removed by Filter"].as_u64().unwrap_or(0);
        (returned + removed) * loops
    } else {
        0
    };
    let children = node["Plans"].as_array().into_iter().flatten();
    own + children.map(|child| rows_read(child, table)).sum::<u64>()
}

/// An attempt in a pool holds its slot while its lease lives: one whose lease ran out has
/// stopped on its worker, and with no coordinator left to mark it lost (a worker killed while
/// it coordinated a detached run), it kept the slot for good and the pool's next attempts
/// were never claimed.
#[tokio::test]
async fn postgres_a_pooled_attempt_whose_lease_ran_out_frees_its_pool_slot() {
    let queue = Queue::new("2026-12-07").await;
    let store = &queue.store;
    let mut line = store.line("a worker").expect("a line");
    let api = || Some(("api".to_string(), 1));
    store
        .queue_work(&[queue.work("first", api())])
        .await
        .expect("queue a pooled attempt");
    let short = pipeline_core::testing::ClaimRequest {
        lease_ms: 1_000,
        ..Queue::request(1)
    };
    let first = store
        .claim_work(&mut line, &short)
        .await
        .expect("a claim")
        .work;
    assert_eq!(first.len(), 1, "the pool's one slot");
    store
        .queue_work(&[queue.work("second", api())])
        .await
        .expect("queue another");
    let held = store
        .claim_work(&mut line, &Queue::request(1))
        .await
        .expect("a claim")
        .work;
    assert!(
        held.is_empty(),
        "the first holds the slot while its lease lives"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let second = store
        .claim_work(&mut line, &Queue::request(1))
        .await
        .expect("a claim")
        .work;
    let tasks: Vec<&str> = second.iter().map(|work| work.task.as_str()).collect();
    assert_eq!(tasks, ["second"], "the lapsed lease holds no slot");
}

/// Breaking a dead coordinator's lock cancels its run's attempts in the work queue: left
/// queued, a worker would run them for a run that nobody coordinates, beside the next run's
/// own attempts of the same tasks; left running, they would go on to the end of their task.
/// Another partition's queue is left alone.
#[tokio::test]
async fn postgres_breaking_a_dead_runs_lock_cancels_its_queued_and_running_work() {
    let queue = Queue::new("2026-12-07").await;
    let store = &queue.store;
    let mut line = store.line("a worker").expect("a line");
    let other_key = key("2026-12-08", Namespace::Production);
    let other = pipeline_core::testing::NewWork {
        run_id: start(store, &other_key).await,
        key: other_key,
        ..queue.work("other", None)
    };
    let running = queue.claimed(&["running"]).await;
    store
        .queue_work(&[queue.work("queued", None)])
        .await
        .expect("queue another");
    store
        .queue_work(&[other])
        .await
        .expect("queue the other partition's");

    store
        .try_lock(&queue.key, &holder("dead", 1))
        .await
        .expect("lock");
    let LockAttempt::Held(dead) = store
        .try_lock(&queue.key, &holder("next", 2))
        .await
        .expect("lock")
    else {
        panic!("the dead coordinator holds the lock");
    };
    assert!(
        store
            .break_lock(&queue.key, &dead, 5_000)
            .await
            .expect("break")
    );

    let left = store
        .claim_work(&mut line, &Queue::request(10))
        .await
        .expect("a claim")
        .work;
    let tasks: Vec<&str> = left.iter().map(|work| work.task.as_str()).collect();
    assert_eq!(
        tasks,
        ["other"],
        "only the other partition's attempt is left"
    );
    let outcome = succeeded();
    assert!(
        !store
            .finish_work(running[0].id, &running[0].token, &outcome)
            .await
            .expect("an outcome write"),
        "the running attempt was cancelled: its outcome is not taken"
    );
    // The queue's times are the store's clock, not the caller's (5 s after the epoch here).
    assert_eq!(
        psql(
            &queue.database.url,
            "SELECT count(*) || ' ' || bool_and(abs(finished_at - \
             CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)) < 60000) \
             FROM pipeline_work WHERE state = 'cancelled'"
        ),
        "2 true"
    );
}
