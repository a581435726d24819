//! The executor end to end, through a test pipeline binary whose tasks fail, sleep or log on
//! demand: resume, unit mode, --force, retries, the run lock (also after kill -9), signals.

use pipeline_tests::{Sandbox, finish, signal};

const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");
const DATE: &str = "2026-11-26";

fn run(sandbox: &Sandbox, extra: &[&str]) -> pipeline_tests::Output {
    let mut args = vec!["run", "--date", DATE, "--json"];
    args.extend_from_slice(extra);
    sandbox.run(PIPELINE, &args, &[])
}

fn started(sandbox: &Sandbox, task: &str) -> usize {
    sandbox
        .read("ran.log")
        .lines()
        .filter(|l| *l == format!("{task} started"))
        .count()
}

#[test]
fn a_failure_stops_dependents_and_the_next_run_resumes() {
    let sandbox = Sandbox::new("resume");
    sandbox.write("fail-transform", "");
    let failed = run(&sandbox, &[]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert_eq!(failed.json()["status"], "failed");
    assert_eq!(failed.task_status("extract"), "succeeded");
    assert_eq!(
        failed.task_status("slow"),
        "succeeded",
        "an independent branch keeps running"
    );
    assert_eq!(failed.task_status("transform"), "failed");
    assert_eq!(failed.task_status("report"), "upstream_failed");
    assert_eq!(started(&sandbox, "transform"), 2, "one retry");
    assert_eq!(started(&sandbox, "report"), 0);

    sandbox.remove("fail-transform");
    let resumed = run(&sandbox, &[]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    assert_eq!(resumed.task_status("extract"), "skipped");
    assert_eq!(resumed.task_status("slow"), "skipped");
    assert_eq!(resumed.task_status("transform"), "succeeded");
    assert_eq!(resumed.task_status("report"), "succeeded");
    assert_eq!(started(&sandbox, "extract"), 1);

    let status = sandbox.run(PIPELINE, &["status", "--date", DATE], &[]);
    // Every task of the pipeline is complete for the date now.
    let states: Vec<&str> = status
        .stdout
        .lines()
        .skip(2)
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert!(
        !states.is_empty() && states.iter().all(|s| *s == "complete"),
        "{}",
        status.stdout
    );
}

#[test]
fn a_retry_that_succeeds_counts_its_attempts() {
    let sandbox = Sandbox::new("retry");
    sandbox.write("fail-transform-once", "");
    let output = run(&sandbox, &["transform"]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let json = output.json();
    let transform = json["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "transform"))
        .cloned();
    assert_eq!(transform.expect("transform")["attempts"], 2);
    assert!(
        !json["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .any(|t| t["name"] == "report"),
        "targets limit the run"
    );
}

#[test]
fn unit_mode_runs_exactly_the_named_task() {
    let sandbox = Sandbox::new("only");
    let output = run(&sandbox, &["--only", "report"]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    output.assert_stderr_has(
        "unit mode: running only report; dependencies treated as done: slow, transform",
    );
    assert_eq!(sandbox.read("ran.log"), "report started\nreport done\n");
    assert_eq!(output.json()["unit"], true);
    assert_eq!(output.json()["tasks"].as_array().expect("tasks").len(), 1);

    let missing = sandbox.run(PIPELINE, &["run", "--only"], &[]);
    assert_eq!(missing.code, Some(2), "--only needs task names");

    // Asked for again, it is complete: it does not run, and the run says so and what to do.
    let again = run(&sandbox, &["--only", "report"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(again.task_status("report"), "skipped");
    again.assert_stderr_has(
        "report was already complete for 2026-11-26 and did not run: add --force to run it again",
    );
    let forced = run(&sandbox, &["--only", "report", "--force"]);
    assert!(
        !forced.stderr.contains("already complete"),
        "{}",
        forced.stderr
    );
}

#[test]
fn force_reruns_the_targets_only() {
    let sandbox = Sandbox::new("force");
    assert_eq!(run(&sandbox, &[]).code, Some(0));
    let forced = run(&sandbox, &["--force", "transform"]);
    assert_eq!(forced.code, Some(0), "{}", forced.stderr);
    assert_eq!(forced.task_status("transform"), "succeeded");
    assert_eq!(forced.task_status("extract"), "skipped");
    assert_eq!(started(&sandbox, "transform"), 2);
    assert_eq!(
        started(&sandbox, "extract"),
        1,
        "{}",
        sandbox.read("ran.log")
    );
}

#[test]
fn workers_bound_how_many_tasks_run_at_once() {
    let sandbox = Sandbox::new("workers");
    sandbox.write("sleep-extract", "300");
    sandbox.write("sleep-slow", "300");
    let output = run(&sandbox, &["--workers", "1"]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    // With one worker, each task finishes before the next one starts.
    let log = sandbox.read("ran.log");
    let lines: Vec<&str> = log.lines().collect();
    for pair in lines.chunks(2) {
        let task = pair[0].trim_end_matches(" started");
        assert_eq!(pair[1], format!("{task} done"), "{log}");
    }
}

#[test]
fn a_second_run_of_the_same_date_is_refused_or_waits() {
    let sandbox = Sandbox::new("lock");
    // The first run holds the date until the test lets its task finish.
    sandbox.write("gate-slow", "");
    let first = sandbox.spawn(PIPELINE, &["run", "--date", DATE, "--json"], &[]);
    sandbox.wait_for("ran.log", "slow started");

    let refused = run(&sandbox, &[]);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    let holder = format!("pid {}", first.id());
    refused.assert_stderr_has("another run of `e2e-pipeline` for 2026-11-26 is in progress");
    refused.assert_stderr_has(&holder);
    refused.assert_stderr_has("--wait");
    let json = refused.json();
    assert_eq!(
        (
            json["status"].as_str(),
            json["kind"].as_str(),
            json["exit_code"].as_u64()
        ),
        (Some("error"), Some("locked"), Some(1)),
        "{json}"
    );

    // Another date is not blocked.
    let other = sandbox.run(
        PIPELINE,
        &["run", "--date", "2026-11-25", "--only", "extract"],
        &[],
    );
    assert_eq!(other.code, Some(0), "{}", other.stderr);

    let waited = sandbox.spawn(PIPELINE, &["run", "--date", DATE, "--json", "--wait"], &[]);
    sandbox.write("open-slow", "");
    let waited = finish(waited);
    assert_eq!(waited.code, Some(0), "{}", waited.stderr);
    assert_eq!(
        waited.task_status("slow"),
        "skipped",
        "the first run finished it"
    );
    assert_eq!(finish(first).code, Some(0));
}

#[test]
fn a_run_killed_with_sigkill_does_not_block_the_next_one() {
    let sandbox = Sandbox::new("kill9");
    sandbox.write("sleep-slow", "60000");
    let mut victim = sandbox.spawn(PIPELINE, &["run", "--date", DATE], &[]);
    sandbox.wait_for("ran.log", "slow started");
    signal(&victim, "KILL");
    let _ = victim.wait();
    // Before any other run of the date, history and status already know it is gone.
    let history = sandbox.run(PIPELINE, &["history"], &[]);
    assert!(
        history
            .stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("abandoned")),
        "{}",
        history.stdout
    );
    history.assert_stderr_has("was abandoned (the process is gone)");
    let status = sandbox.run(PIPELINE, &["status", "--date", DATE], &[]);
    assert!(!status.stdout.contains("running"), "{}", status.stdout);

    sandbox.remove("sleep-slow");
    let next = run(&sandbox, &[]);
    assert_eq!(next.code, Some(0), "{}", next.stderr);
    assert_eq!(next.task_status("slow"), "succeeded");
    assert_eq!(next.task_status("report"), "succeeded");

    let history = sandbox.run(PIPELINE, &["history"], &[]);
    let killed = history
        .stdout
        .lines()
        .find(|l| l.starts_with("1 "))
        .expect("the killed run");
    assert!(killed.contains("abandoned"), "{}", history.stdout);
    let status = sandbox.run(PIPELINE, &["status", "--date", DATE], &[]);
    assert!(!status.stdout.contains("running"), "{}", status.stdout);
}

#[test]
fn a_signal_cancels_running_tasks_and_records_them() {
    for name in ["INT", "TERM"] {
        let sandbox = Sandbox::new("signal");
        sandbox.write("sleep-slow", "60000");
        let child = sandbox.spawn(PIPELINE, &["run", "--date", DATE, "--json"], &[]);
        sandbox.wait_for("ran.log", "slow started");
        sandbox.wait_for("ran.log", "transform done");
        signal(&child, name);
        let output = finish(child);
        assert_eq!(output.code, Some(130), "SIG{name}: {}", output.stderr);
        assert_eq!(output.json()["status"], "cancelled");
        assert_eq!(output.task_status("slow"), "cancelled");
        assert_eq!(output.task_status("report"), "cancelled");
        assert_eq!(output.task_status("transform"), "succeeded");

        let history = sandbox.run(PIPELINE, &["history"], &[]);
        assert!(
            history
                .stdout
                .lines()
                .nth(1)
                .is_some_and(|l| l.contains("cancelled")),
            "{}",
            history.stdout
        );
        let status = sandbox.run(PIPELINE, &["status", "--date", DATE], &[]);
        assert!(
            status.stdout.contains("cancelled") && !status.stdout.contains("running"),
            "{}",
            status.stdout
        );

        sandbox.remove("sleep-slow");
        let resumed = run(&sandbox, &[]);
        assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
        assert_eq!(resumed.task_status("transform"), "skipped");
        assert_eq!(resumed.task_status("slow"), "succeeded");
    }
}

#[test]
fn a_backfill_stops_at_the_first_failing_date_and_resumes_there() {
    let sandbox = Sandbox::new("backfill_stop");
    sandbox.write("fail-transform", "");
    let args = [
        "backfill",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-03",
        "--json",
        "transform",
    ];
    let failed = sandbox.run(PIPELINE, &args, &[]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    let json = failed.json();
    let dates: Vec<&str> = json["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(|r| r["date"].as_str())
        .collect();
    assert_eq!(dates, ["2026-11-01"], "later dates are not started");
    assert_eq!(json["status"], "failed");
    failed.assert_stderr_has("backfill stopped at 2026-11-01");

    sandbox.remove("fail-transform");
    let resumed = sandbox.run(PIPELINE, &args, &[]);
    assert_eq!(resumed.code, Some(0), "{}", resumed.stderr);
    let json = resumed.json();
    let runs = json["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3);
    let first_extract = runs[0]["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "extract"))
        .cloned();
    assert_eq!(
        first_extract.expect("extract")["status"],
        "skipped",
        "what finished before is not redone"
    );
}

#[test]
fn a_task_that_wrote_to_another_warehouse_is_not_complete() {
    let sandbox = Sandbox::new("markers_target");
    let targets = ["stamp", "publish_events"];
    let first = run(&sandbox, &targets);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    assert_eq!(first.task_status("stamp"), "succeeded");
    let again = run(&sandbox, &targets);
    assert_eq!(
        again.task_status("stamp"),
        "skipped",
        "same warehouse: complete"
    );

    let other = format!("sqlite://{}", sandbox.path("other-warehouse.db").display());
    let mut args = vec!["run", "--date", DATE, "--json"];
    args.extend_from_slice(&targets);
    let moved = sandbox.run(PIPELINE, &args, &[("PIPELINE_DB_WAREHOUSE_URL", &other)]);
    assert_eq!(moved.code, Some(0), "{}", moved.stderr);
    assert_eq!(
        moved.task_status("stamp"),
        "succeeded",
        "the new warehouse has no events yet: the load runs there"
    );
    // A task that wrote nowhere stays complete wherever the warehouse points.
    assert_eq!(moved.task_status("publish_events"), "skipped");
    let extract = run(&sandbox, &["extract"]);
    let extract_moved = sandbox.run(
        PIPELINE,
        &["run", "--date", DATE, "--json", "extract"],
        &[("PIPELINE_DB_WAREHOUSE_URL", &other)],
    );
    assert_eq!(extract.code, Some(0), "{}", extract.stderr);
    assert_eq!(extract_moved.task_status("extract"), "skipped");
}

#[test]
fn scripts_get_json_for_every_failure_and_people_get_help_and_a_version() {
    let sandbox = Sandbox::new("cli_edges");
    let bad_date = sandbox.run(PIPELINE, &["run", "--date", "+202-01-01", "--json"], &[]);
    assert_eq!(bad_date.code, Some(2), "{}", bad_date.stderr);
    assert_eq!(bad_date.json()["kind"], "usage");
    let unknown = sandbox.run(PIPELINE, &["run", "no_such_task", "--json"], &[]);
    assert_eq!(unknown.code, Some(2), "{}", unknown.stderr);
    assert_eq!(unknown.json()["status"], "error");
    assert!(
        unknown.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("unknown task `no_such_task`")),
        "{}",
        unknown.stdout
    );
    let broken_store = sandbox.run(
        PIPELINE,
        &["run", "--json"],
        &[("PIPELINE_STATE_URL", "postgres://etl:pw@127.0.0.1:1/etl")],
    );
    assert_eq!(
        broken_store.json()["status"],
        "error",
        "{}",
        broken_store.stderr
    );
    broken_store.assert_stderr_has("connection refused at 127.0.0.1:1");
    broken_store.assert_lacks(":pw@");

    let help = sandbox.run(PIPELINE, &["help"], &[]);
    assert_eq!(help.code, Some(0), "{}", help.stderr);
    assert!(help.stdout.contains("Usage:"), "{}", help.stdout);
    let version = sandbox.run(PIPELINE, &["--version"], &[]);
    assert_eq!(version.code, Some(0), "{}", version.stderr);
    assert!(
        version.stdout.starts_with("e2e-pipeline 0.1.0 (graph ")
            && version.stdout.contains(" tasks;"),
        "{}",
        version.stdout
    );
}

#[test]
fn a_graph_built_from_data_at_start_up_runs_with_families_and_checks() {
    const DATA: &str = env!("CARGO_BIN_EXE_data-pipeline");
    let sandbox = Sandbox::new("data_graph");
    let missing = sandbox.run(DATA, &["list"], &[]);
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    missing.assert_stderr_has("cannot build the task graph: cannot read tables.txt");

    sandbox.write("tables.txt", "users\norders\n");
    let list = sandbox.run(DATA, &["list"], &[]);
    assert!(
        list.stdout
            .contains("orders_is_sane (check, error, blocking)"),
        "{}",
        list.stdout
    );
    let loads = sandbox.run(DATA, &["run", "load", "--date", DATE, "--json"], &[]);
    assert_eq!(loads.code, Some(0), "{}", loads.stderr);
    assert_eq!(loads.task_status("load[users]"), "succeeded");
    assert_eq!(loads.task_status("load[orders]"), "succeeded");

    sandbox.write("bad-orders", "");
    let held = sandbox.run(DATA, &["run", "report", "--date", DATE, "--json"], &[]);
    assert_eq!(held.code, Some(1), "{}", held.stderr);
    assert_eq!(held.task_status("orders_is_sane"), "failed");
    assert_eq!(held.task_status("report"), "upstream_failed");
    sandbox.remove("bad-orders");
    let done = sandbox.run(DATA, &["run", "report", "--date", DATE, "--json"], &[]);
    assert_eq!(done.code, Some(0), "{}", done.stderr);
    assert_eq!(done.task_status("report"), "succeeded");
    assert_eq!(done.task_status("load[users]"), "skipped");

    // A key with spaces is one target, in the history and in the web view's JSON.
    sandbox.write("tables.txt", "users\norders\nbig orders\n");
    let spaced = sandbox.run(
        DATA,
        &["run", "load[big orders]", "report", "--date", DATE],
        &[],
    );
    assert_eq!(spaced.code, Some(0), "{}", spaced.stderr);
    let history = sandbox.run(DATA, &["history"], &[]);
    assert!(
        history.stdout.contains("load[big orders], report"),
        "{}",
        history.stdout
    );
}

#[test]
fn a_binary_that_names_the_wrong_crate_for_its_tasks_says_so() {
    let sandbox = Sandbox::new("wrong_crate");
    let output = sandbox.run(env!("CARGO_BIN_EXE_wrong-crate"), &["list"], &[]);
    assert_eq!(output.code, Some(2), "{}", output.stderr);
    output.assert_stderr_has("the crate `pipeline_tests` named in `main!` registers no task");
}

/// Where `/proc` hides other users' processes (`hidepid=2`), a run of another user on this
/// host is still seen alive: a second run refuses, as anywhere else. It took the hidden holder
/// for gone, broke its lock and ran beside it. Runs as root, as CI does: it mounts a `/proc` of
/// its own and becomes another user.
#[test]
fn a_run_that_proc_hides_keeps_its_lock() {
    use std::os::unix::fs::PermissionsExt as _;

    let sandbox = Sandbox::new("hidepid");
    let database = pipeline_tests::PgDatabase::create();
    let state = [("PIPELINE_STATE_URL", database.url.as_str())];
    sandbox.write("gate-slow", "");
    let first = sandbox.spawn(PIPELINE, &["run", "--date", DATE], &state);
    sandbox.wait_for("ran.log", "slow started");
    // The binary where another user may run it, and the sandbox theirs to write.
    let binary = sandbox.path("pipeline");
    std::fs::copy(PIPELINE, &binary).expect("copy the binary");
    let open = |path: &std::path::Path| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
            .expect("open the sandbox to another user");
    };
    open(&sandbox.path(""));
    for entry in std::fs::read_dir(sandbox.path("")).expect("the sandbox") {
        open(&entry.expect("an entry").path());
    }
    let script = "mount -t proc -o hidepid=2 proc /proc && exec setpriv --reuid=65534 \
                  --regid=65534 --clear-groups \"$0\" run --date 2026-11-26 --only extract --json";
    let binary = binary.display().to_string();
    let mut hidden = sandbox.command("unshare", &["--mount", "sh", "-c", script, &binary]);
    hidden.envs(state).env("HOME", sandbox.path(""));
    let output = hidden.output().expect("start unshare");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("unshare:") && !stderr.contains("mount:") && !stderr.contains("setpriv:"),
        "this test mounts a /proc of its own and runs as another user: run it as root, as CI \
         does\n{stderr}"
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another run of `e2e-pipeline` for 2026-11-26 is in progress")
            && stderr.contains(&format!("pid {}", first.id())),
        "{stderr}"
    );
    sandbox.write("open-slow", "");
    let first = finish(first);
    assert_eq!(
        first.code,
        Some(0),
        "the first run kept its lock\n{}",
        first.stderr
    );
}
