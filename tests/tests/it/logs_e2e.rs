//! `daily logs`: each attempt's own log lines, kept in the state store with the attempt,
//! bounded, with secrets redacted, for in-process and distributed runs alike.

use pipeline_tests::Sandbox;

const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");

#[test]
fn an_attempts_log_is_kept_with_it_and_printed_by_daily_logs() {
    let sandbox = Sandbox::new("logs");
    sandbox.write("log-validate", "checked 12 rows");
    sandbox.write("fail-validate-once", "");
    let run = sandbox.run(PIPELINE, &["run", "validate", "--date", "2026-11-26"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // On stderr, each attempt's lines say whose they are.
    for attempt in [1, 2] {
        run.assert_stderr_has(&format!(
            "task{{task=validate attempt={attempt} run=1}}: checked 12 rows"
        ));
    }

    let latest = sandbox.run(PIPELINE, &["logs", "validate", "--date", "2026-11-26"], &[]);
    assert_eq!(latest.code, Some(0), "{}", latest.stderr);
    assert!(
        latest
            .stdout
            .starts_with("== validate, attempt 2 of run 1: succeeded"),
        "{}",
        latest.stdout
    );
    assert!(
        latest.stdout.contains("INFO checked 12 rows"),
        "{}",
        latest.stdout
    );

    let first = sandbox.run(
        PIPELINE,
        &["logs", "validate", "--date", "2026-11-26", "--attempt", "1"],
        &[],
    );
    assert!(
        first.stdout.contains("attempt 1 of run 1: failed"),
        "{}",
        first.stdout
    );
    assert!(first.stdout.contains("checked 12 rows"), "{}", first.stdout);

    let missing = sandbox.run(
        PIPELINE,
        &["logs", "validate", "--date", "2026-11-26", "--attempt", "9"],
        &[],
    );
    assert_eq!(missing.code, Some(2), "{}", missing.stderr);
    missing.assert_stderr_has("`validate` has no attempt 9 for 2026-11-26");
    // The hint names this binary, not the example's `daily`.
    missing.assert_stderr_has("`e2e-pipeline status --date 2026-11-26` shows what ran");
    let typo = sandbox.run(PIPELINE, &["logs", "validat"], &[]);
    assert_eq!(typo.code, Some(2), "{}", typo.stderr);
    typo.assert_stderr_has("did you mean `validate`?");
    let family = sandbox.run(PIPELINE, &["logs", "narrow"], &[]);
    assert_eq!(family.code, Some(2), "{}", family.stderr);
    family.assert_stderr_has("`narrow` is a family: name one of its members, e.g. `narrow[a]`");
}

#[test]
fn at_the_warn_level_an_attempts_warnings_are_still_kept_with_it() {
    // WARN is the level of a run on a terminal, whose progress bar stands for its INFO lines.
    let sandbox = Sandbox::new("logs-warn");
    sandbox.write("log-validate", "checked 12 rows");
    sandbox.write("warn-validate", "3 rows have no country");
    let run = sandbox.run(
        PIPELINE,
        &["run", "validate", "--date", "2026-11-26"],
        &[("PIPELINE_LOG", "warn")],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let logs = sandbox.run(PIPELINE, &["logs", "validate", "--date", "2026-11-26"], &[]);
    assert_eq!(logs.code, Some(0), "{}", logs.stderr);
    assert!(
        logs.stdout.contains("WARN 3 rows have no country"),
        "{}",
        logs.stdout
    );
    assert!(!logs.stdout.contains("checked 12 rows"), "{}", logs.stdout);
}

#[test]
fn a_log_is_bounded_and_holds_no_secret() {
    let sandbox = Sandbox::new("logs-bounded");
    let webhook = "https://hooks.slack.com/services/T0000/B0000/s3cretT0ken";
    // One huge line, then the secret near its end: the start and the end are kept.
    sandbox.write(
        "log-extract",
        &format!("{} the webhook is {webhook}", "x".repeat(200_000)),
    );
    let run = sandbox.run(
        PIPELINE,
        &["run", "extract"],
        &[("PIPELINE_SLACK_WEBHOOK", webhook)],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let logs = sandbox.run(PIPELINE, &["logs", "extract"], &[]);
    assert_eq!(logs.code, Some(0), "{}", logs.stderr);
    assert!(
        logs.stdout.len() < 40_000,
        "bounded: {} bytes",
        logs.stdout.len()
    );
    assert!(
        logs.stdout.contains("bytes of log left out"),
        "{}",
        &logs.stdout[..200]
    );
    assert!(logs.stdout.contains("the webhook is"), "the end is kept");
    assert!(
        !logs.stdout.contains("s3cretT0ken"),
        "the secret is redacted"
    );
}

#[test]
fn follow_prints_a_running_attempts_lines_as_they_come_and_stops_when_it_ends() {
    use std::io::BufRead as _;
    let sandbox = Sandbox::new("logs-follow");
    sandbox.write("log-slow", "slow begins");
    sandbox.write("gate-slow", "");
    let run = sandbox.spawn(PIPELINE, &["run", "slow"], &[]);
    sandbox.wait_for("ran.log", "slow started");
    let mut follow = sandbox.spawn(PIPELINE, &["logs", "slow", "--follow"], &[]);
    let stdout = follow.stdout.take().expect("its output");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first_lines: Vec<String> = lines.by_ref().take(2).map_while(Result::ok).collect();
    assert!(
        first_lines[0].contains("attempt 1 of run 1: running"),
        "{first_lines:?}"
    );
    assert!(
        first_lines[1].contains("INFO slow begins"),
        "{first_lines:?}"
    );
    assert!(
        !sandbox.read("ran.log").contains("slow done"),
        "the line came while the attempt was still running"
    );
    sandbox.write("open-slow", "");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(
        rest.last().map(String::as_str),
        Some("== the attempt ended: succeeded =="),
        "{rest:?}"
    );
    assert_eq!(follow.wait().expect("logs --follow ends").code(), Some(0));
    let run = pipeline_tests::finish(run);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
}
