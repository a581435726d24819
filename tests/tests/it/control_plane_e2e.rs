//! The control plane through the real binary, with tasks that block their thread before their
//! first await: signals always end a run with 130 and a `cancelled` record, and a live run's
//! lock is never broken, whatever its tasks do.

use std::time::{Duration, Instant};

use pipeline_core::sqlx;
use pipeline_tests::{Sandbox, finish, signal};

const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");
const DATE: &str = "2026-11-26";

/// The newest run's status in `history`.
fn last_run_status(sandbox: &Sandbox) -> String {
    let history = sandbox.run(PIPELINE, &["history"], &[]);
    history
        .stdout
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no run in history: {}", history.stdout))
        .to_string()
}

/// Runs one statement against the run's SQLite state store; the first column of its rows.
fn state_query(sandbox: &Sandbox, sql: &'static str) -> Vec<i64> {
    let url = format!("sqlite://{}", sandbox.path(".pipeline/state.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url)
            .await
            .expect("the state store");
        let rows: Vec<i64> = sqlx::query_scalar(sql)
            .fetch_all(&pool)
            .await
            .expect("the query");
        pool.close().await;
        rows
    })
}

#[test]
fn a_signal_always_exits_130_and_records_the_run_cancelled() {
    // The race showed in one trial in four: a dozen, alternating the signals.
    for trial in 0..12 {
        let name = if trial % 2 == 0 { "INT" } else { "TERM" };
        let sandbox = Sandbox::new("signal_race");
        sandbox.write("sleep-slow", "60000");
        let child = sandbox.spawn(
            PIPELINE,
            &["run", "--date", DATE, "--json", "--only", "slow"],
            &[],
        );
        sandbox.wait_for("ran.log", "slow started");
        signal(&child, name);
        let output = finish(child);
        assert_eq!(
            output.code,
            Some(130),
            "trial {trial}, SIG{name}: {}",
            output.stderr
        );
        assert_eq!(output.json()["status"], "cancelled", "trial {trial}");
        assert_eq!(output.task_status("slow"), "cancelled", "trial {trial}");
        assert!(
            last_run_status(&sandbox).contains("cancelled"),
            "trial {trial}"
        );
    }
}

#[test]
fn a_signal_ends_a_run_whose_task_blocks_before_its_first_await() {
    let sandbox = Sandbox::new("signal_blocked");
    sandbox.write("block-slow", "40000");
    let child = sandbox.spawn(PIPELINE, &["run", "--date", DATE, "--json"], &[]);
    sandbox.wait_for("ran.log", "slow started");
    let signalled = Instant::now();
    signal(&child, "INT");
    let output = finish(child);
    assert_eq!(output.code, Some(130), "{}", output.stderr);
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "a bounded grace, not the 40 s block: {:?}",
        signalled.elapsed()
    );
    assert_eq!(output.json()["status"], "cancelled");
    assert_eq!(output.task_status("slow"), "cancelled");
    assert_eq!(output.task_status("report"), "cancelled");
    output.assert_stderr_has("did not stop within");
    assert!(last_run_status(&sandbox).contains("cancelled"));
}

#[test]
fn a_timeout_is_recorded_at_its_limit_while_the_task_blocks() {
    let sandbox = Sandbox::new("timeout_blocked");
    // `bounded` may take one second; it blocks for four.
    sandbox.write("block-bounded", "4000");
    let started = Instant::now();
    let output = sandbox.run(
        PIPELINE,
        &["run", "--date", DATE, "--json", "--only", "bounded"],
        &[],
    );
    assert_eq!(output.code, Some(1), "{}", output.stderr);
    assert_eq!(output.task_status("bounded"), "timed_out");
    let duration = output.json()["tasks"][0]["duration_ms"]
        .as_u64()
        .expect("a duration");
    assert!(duration < 2500, "recorded at its limit: {duration} ms");
    assert!(started.elapsed() < Duration::from_secs(4) + Duration::from_secs(2));
}

#[test]
fn a_live_run_keeps_its_lock_however_old_its_heartbeat_looks() {
    let sandbox = Sandbox::new("lock_live");
    sandbox.write("block-slow", "3000");
    let first = sandbox.spawn(PIPELINE, &["run", "--date", DATE, "--only", "slow"], &[]);
    sandbox.wait_for("ran.log", "slow started");
    // As if its heartbeat had starved for an hour: the holder's pid is alive on this host,
    // and that is what counts here.
    state_query(
        &sandbox,
        "UPDATE pipeline_locks SET heartbeat_at = heartbeat_at - 3600000 RETURNING 1",
    );
    let second = sandbox.run(PIPELINE, &["run", "--date", DATE, "--only", "slow"], &[]);
    assert_eq!(second.code, Some(1), "{}", second.stderr);
    second.assert_stderr_has("is in progress");
    assert_eq!(finish(first).code, Some(0));
    let starts = sandbox
        .read("ran.log")
        .lines()
        .filter(|l| *l == "slow started")
        .count();
    assert_eq!(starts, 1, "the task never ran twice at once");
}

#[test]
fn the_heartbeat_goes_on_while_every_worker_blocks() {
    let sandbox = Sandbox::new("heartbeat");
    // Both tasks block after their first await, on whatever threads run them then.
    for task in ["slow", "extract"] {
        sandbox.write(&format!("sleep-{task}"), "10");
        sandbox.write(&format!("block-late-{task}"), "12500");
    }
    let child = sandbox.spawn(
        PIPELINE,
        &[
            "run",
            "--date",
            DATE,
            "--only",
            "slow",
            "extract",
            "--workers",
            "2",
        ],
        &[],
    );
    sandbox.wait_for("ran.log", "slow started");
    sandbox.wait_for("ran.log", "extract started");
    let first = state_query(&sandbox, "SELECT heartbeat_at FROM pipeline_locks");
    std::thread::sleep(Duration::from_millis(11_500));
    let later = state_query(&sandbox, "SELECT heartbeat_at FROM pipeline_locks");
    assert_eq!(finish(child).code, Some(0));
    assert!(
        later.first() > first.first(),
        "heartbeat at {first:?}, then {later:?}"
    );
}

#[test]
fn a_timeout_of_code_at_an_await_is_not_reported_stuck() {
    let sandbox = Sandbox::new("timeout_await");
    // `bounded` may take one second; it sleeps (at an await) for three.
    sandbox.write("sleep-bounded", "3000");
    let output = sandbox.run(
        PIPELINE,
        &["run", "--date", DATE, "--json", "--only", "bounded"],
        &[],
    );
    assert_eq!(
        output.task_status("bounded"),
        "timed_out",
        "{}",
        output.stderr
    );
    assert!(
        !output.stderr.contains("still busy"),
        "stopped at its await, it is not stuck: {}",
        output.stderr
    );
}

#[test]
fn a_run_whose_lock_was_taken_over_stops() {
    let sandbox = Sandbox::new("lock_lost");
    sandbox.write("sleep-slow", "60000");
    let child = sandbox.spawn(
        PIPELINE,
        &["run", "--date", DATE, "--json", "--only", "slow"],
        &[],
    );
    sandbox.wait_for("ran.log", "slow started");
    // Another host judged the lock stale and broke it.
    state_query(&sandbox, "DELETE FROM pipeline_locks RETURNING 1");
    let output = finish(child);
    output.assert_stderr_has("was taken over by another process");
    assert_eq!(output.task_status("slow"), "cancelled", "{}", output.stderr);
    assert_eq!(output.json()["status"], "cancelled");
}
