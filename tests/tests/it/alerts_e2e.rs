//! Alerts end to end: the test pipeline binary, a local HTTP server standing in for Slack and
//! PagerDuty, and the server misbehaving on purpose. Secrets must never show in any output.

use std::time::{Duration, Instant};

use pipeline_tests::http_stub::{Reply, StubServer};
use pipeline_tests::{Output, Sandbox};

const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");
const DATE: &str = "2026-11-26";
const WEBHOOK_SECRET: &str = "T000/B000/XXXXsecretwebhookpart";
const ROUTING_KEY: &str = "routing-key-secret-0123";

struct Setup {
    sandbox: Sandbox,
    server: StubServer,
}

impl Setup {
    fn new(name: &str) -> Setup {
        Setup {
            sandbox: Sandbox::new(name),
            server: StubServer::start(),
        }
    }

    fn run(&self, extra: &[&str]) -> Output {
        let webhook = self
            .server
            .url(&format!("/slack/services/{WEBHOOK_SECRET}"));
        let pager = self.server.url("/pagerduty/v2/enqueue");
        let env = [
            ("PIPELINE_SLACK_WEBHOOK", webhook.as_str()),
            ("PIPELINE_PAGERDUTY_ROUTING_KEY", ROUTING_KEY),
            ("PIPELINE_PAGERDUTY_URL", pager.as_str()),
            ("PIPELINE_ALERT_TIMEOUT_SECS", "1"),
        ];
        let mut args = vec!["run", "--date", DATE, "--json"];
        args.extend_from_slice(extra);
        let output = self.sandbox.run(PIPELINE, &args, &env);
        output.assert_lacks(WEBHOOK_SECRET);
        output.assert_lacks(ROUTING_KEY);
        output
    }

    fn slack(&self) -> Vec<String> {
        self.server.slack_texts("/slack/")
    }

    fn pager(&self) -> Vec<serde_json::Value> {
        self.server
            .requests_to("/pagerduty/")
            .iter()
            .map(|r| r.json())
            .collect()
    }
}

#[test]
fn a_failing_non_critical_task_posts_once_to_slack_and_the_run_succeeds() {
    let setup = Setup::new("alert_noncritical");
    setup.sandbox.write("fail-enrich", "");
    let output = setup.run(&[]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(output.task_status("enrich"), "failed");
    let slack = setup.slack();
    assert_eq!(
        slack.len(),
        1,
        "one alert after the last attempt, none per retry: {slack:?}"
    );
    assert!(
        slack[0].contains("non-critical task `enrich` failed after 2 attempts")
            && slack[0].contains("enrich failed on purpose"),
        "{}",
        slack[0]
    );
    assert!(setup.pager().is_empty());
}

#[test]
fn a_failing_critical_task_pages_once_and_a_later_success_resolves_it() {
    let setup = Setup::new("alert_critical");
    setup.sandbox.write("fail-transform", "");
    let failed = setup.run(&[]);
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    let pages = setup.pager();
    assert_eq!(
        pages.len(),
        1,
        "the root cause pages; its dependents do not: {pages:?}"
    );
    let page = &pages[0];
    assert_eq!(page["event_action"], "trigger");
    assert_eq!(page["routing_key"], ROUTING_KEY);
    assert_eq!(
        page["dedup_key"],
        format!("pipeline/e2e-pipeline/{DATE}/transform")
    );
    assert_eq!(page["payload"]["severity"], "critical");
    assert_eq!(page["payload"]["custom_details"]["task"], "transform");
    assert!(
        setup.slack().is_empty(),
        "critical failures go to the pager when one is configured"
    );

    setup.sandbox.remove("fail-transform");
    let fixed = setup.run(&[]);
    assert_eq!(fixed.code, Some(0), "{}", fixed.stderr);
    let pages = setup.pager();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert_eq!(pages[1]["event_action"], "resolve");
    assert_eq!(pages[1]["dedup_key"], pages[0]["dedup_key"]);

    // Nothing is open any more: another success sends nothing.
    let again = setup.run(&["--force", "transform"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(setup.pager().len(), 2);
}

#[test]
fn a_critical_task_blocked_by_a_non_critical_failure_is_named_and_paged() {
    let setup = Setup::new("alert_blocked");
    setup.sandbox.write("fail-optional_feed", "");
    let output = setup.run(&[]);
    assert_eq!(output.code, Some(1), "{}", output.stderr);
    let json = output.json();
    assert_eq!(
        json["blocked"],
        serde_json::json!([{ "task": "publish", "by": "optional_feed" }])
    );
    assert_eq!(output.task_status("publish"), "upstream_failed");
    assert_eq!(
        setup.slack().len(),
        1,
        "the non-critical failure itself is gentle"
    );
    let pages = setup.pager();
    assert_eq!(pages.len(), 1, "{pages:?}");
    assert!(
        pages[0]["payload"]["summary"]
            .as_str()
            .unwrap_or("")
            .contains(
                "critical task `publish` could not run because non-critical `optional_feed` failed"
            )
    );

    let human = setup.sandbox.run(PIPELINE, &["run", "--date", DATE], &[]);
    assert!(
        human.stdout.contains(
            "critical task `publish` did not run because non-critical `optional_feed` failed"
        ),
        "{}",
        human.stdout
    );
}

#[test]
fn an_alert_endpoint_that_fails_does_not_change_the_run() {
    let setup = Setup::new("alert_down");
    setup.server.otherwise(Reply::status(500));
    setup.sandbox.write("fail-enrich", "");
    let output = setup.run(&[]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(output.task_status("enrich"), "failed");
    assert_eq!(setup.slack().len(), 3, "a few bounded retries");
    output.assert_stderr_has("could not deliver an alert about `enrich` to slack");
}

#[test]
fn an_alert_endpoint_that_hangs_delays_the_run_only_briefly() {
    let setup = Setup::new("alert_hang");
    setup.server.otherwise(Reply::Hang);
    setup.sandbox.write("fail-enrich", "");
    let started = Instant::now();
    let output = setup.run(&[]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    output.assert_stderr_has("could not deliver an alert about `enrich` to slack");
}

#[test]
fn rate_limiting_is_honoured() {
    let setup = Setup::new("alert_429");
    setup.server.script([Reply::retry_after(1), Reply::ok()]);
    setup.sandbox.write("fail-enrich", "");
    let output = setup.run(&[]);
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let requests = setup.server.requests_to("/slack/");
    assert_eq!(requests.len(), 2);
    assert!(
        requests[1].at - requests[0].at >= Duration::from_millis(950),
        "waited as told"
    );
    output.assert_lacks("could not deliver");

    let setup = Setup::new("alert_429_long");
    setup.server.otherwise(Reply::retry_after(3600));
    setup.sandbox.write("fail-enrich", "");
    let output = setup.run(&[]);
    assert_eq!(
        setup.server.requests_to("/slack/").len(),
        1,
        "an hour is not waited for"
    );
    output.assert_stderr_has("rate limiting");
}

#[test]
fn test_mode_alerts_only_the_log() {
    let setup = Setup::new("alert_test_mode");
    setup.sandbox.write("fail-enrich", "");
    setup.sandbox.write("fail-transform", "");
    let output = setup.run(&["--test"]);
    assert_eq!(output.code, Some(1));
    assert!(setup.server.requests().is_empty());
    output.assert_stderr_has("ALERT");
    output.assert_stderr_has("alert:");
}

#[test]
fn a_fatal_error_is_not_retried() {
    let setup = Setup::new("fatal");
    setup.sandbox.write("fatal-validate", "");
    let output = setup.run(&["validate"]);
    assert_eq!(output.code, Some(1));
    let json = output.json();
    let validate = json["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "validate"))
        .cloned()
        .expect("validate");
    assert_eq!(validate["attempts"], 1);
    assert_eq!(
        validate["error"],
        "validate cannot go on (fatal: not retried)"
    );
}

#[test]
fn a_stale_table_fails_its_check_pages_and_blocks_dependents() {
    let setup = Setup::new("check_stale");
    setup.sandbox.write("age-stamp", "7200");
    let stale = setup.run(&["publish_events", "events_are_fresh", "events_exist"]);
    assert_eq!(stale.code, Some(1), "{}", stale.stderr);
    assert_eq!(stale.task_status("events_are_fresh"), "failed");
    assert_eq!(stale.task_status("events_exist"), "succeeded");
    assert_eq!(
        stale.task_status("publish_events"),
        "upstream_failed",
        "a blocking check stops the target's dependents"
    );
    let json = stale.json();
    let check = json["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "events_are_fresh"))
        .cloned()
        .expect("check");
    let age = check["value"]
        .as_f64()
        .expect("the measured age, as a number");
    assert!((7150.0..7300.0).contains(&age), "{check}");
    let error = check["error"].as_str().unwrap_or("");
    assert!(
        error.starts_with("check failed: newest events.at is 2h00m old (limit 1h00m)"),
        "{error}"
    );
    let pages = setup.pager();
    assert_eq!(pages.len(), 1, "severity error pages: {pages:?}");
    assert_eq!(
        pages[0]["payload"]["custom_details"]["task"],
        "events_are_fresh"
    );

    let status = setup
        .sandbox
        .run(PIPELINE, &["status", "--date", DATE], &[]);
    assert!(
        status.stdout.contains("check failed: newest events.at"),
        "{}",
        status.stdout
    );
    assert!(
        status
            .stdout
            .contains("passed: events has 1 row (at least 1 expected) [measured 1]"),
        "{}",
        status.stdout
    );

    setup.sandbox.write("age-stamp", "60");
    let fresh = setup.run(&["stamp", "publish_events", "--force"]);
    assert_eq!(fresh.code, Some(0), "{}", fresh.stderr);
    assert_eq!(fresh.task_status("publish_events"), "succeeded");
    let pages = setup.pager();
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[1]["event_action"], "resolve");
}

#[test]
fn a_gentle_blocking_check_holds_dependents_back_with_one_message_and_no_page() {
    let setup = Setup::new("check_gentle");
    setup.sandbox.write("insane-collect", "");
    let held = setup.run(&["summarize", "present"]);
    assert_eq!(
        held.code,
        Some(0),
        "a warn check never fails the run: {}",
        held.stderr
    );
    assert_eq!(held.json()["status"], "succeeded");
    assert_eq!(held.task_status("collect_looks_sane"), "failed");
    let json = held.json();
    for name in ["summarize", "present"] {
        let task = json["tasks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == name))
            .cloned()
            .expect("task");
        assert_eq!(task["status"], "upstream_failed", "{task}");
        assert_eq!(task["cause"], "collect_looks_sane", "{task}");
        assert_eq!(
            task["error"],
            "held back by the blocking check `collect_looks_sane`, which did not pass"
        );
    }
    assert_eq!(json["blocked"], serde_json::json!([]), "{json}");
    assert_eq!(setup.pager().len(), 0, "a warn check never pages");
    let slack = setup.slack();
    assert_eq!(
        slack.len(),
        1,
        "one message for one failed check: {slack:?}"
    );
    assert!(slack[0].contains("collect_looks_sane"), "{slack:?}");
}

#[test]
fn without_a_pager_critical_failures_go_to_slack() {
    let setup = Setup::new("alert_no_pager");
    setup.sandbox.write("fail-transform", "");
    let webhook = setup
        .server
        .url(&format!("/slack/services/{WEBHOOK_SECRET}"));
    let env = [
        ("PIPELINE_SLACK_WEBHOOK", webhook.as_str()),
        ("PIPELINE_ALERT_TIMEOUT_SECS", "1"),
    ];
    let output = setup
        .sandbox
        .run(PIPELINE, &["run", "--date", DATE, "--json"], &env);
    assert_eq!(output.code, Some(1), "{}", output.stderr);
    output.assert_lacks(WEBHOOK_SECRET);
    let slack = setup.slack();
    assert_eq!(slack.len(), 1, "{slack:?}");
    assert!(
        slack[0].starts_with(":rotating_light:")
            && slack[0].contains("critical task `transform` failed"),
        "{}",
        slack[0]
    );
    assert!(setup.pager().is_empty());
}
