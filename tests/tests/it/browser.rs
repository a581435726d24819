//! The web view in a real browser (Debian's Chromium under chromedriver) against `daily serve`
//! of the real binaries: the runs of the example, a failed task in red with its error and log
//! one click away, a running run's page recolouring itself, and injected markup shown as text.
//! A screenshot of each page is kept under the target directory's `web-view-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use pipeline_tests::Sandbox;
use pipeline_tests::web::{Browser, get, serve};

const DAILY: &str = env!("CARGO_BIN_EXE_e2e-daily");
const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");
const XSS: &str = "<script>alert(1)</script> broke";
const LOGGED: &str = "log line <img src=x onerror=alert(2)>";

fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-view-screenshots")
}

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_examples_run_is_listed_and_every_page_renders() {
    let sandbox = Sandbox::new("browser-example");
    let ran = sandbox.run(DAILY, &["run", "--date", "2026-11-26"], &[]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let (_server, base) = serve(&sandbox, DAILY, &[], &[]);
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/")).await;
    let link = browser.wait_for("a[href='/runs/1']", WAIT).await;
    let text = browser.page_text().await;
    assert!(
        text.contains("2026-11-26") && text.contains("succeeded"),
        "{text}"
    );
    browser.screenshot(&screenshots(), "runs").await;
    browser.click(&link).await;
    browser
        .wait_for("svg.graph a[data-family='load']", WAIT)
        .await;
    let report = browser
        .wait_for("svg.graph a[data-task='make_management_report']", WAIT)
        .await;
    assert!(browser.css(&report, "cursor").await.contains("pointer"));
    browser.screenshot(&screenshots(), "run").await;
    // A family opens with one click.
    let family = browser
        .wait_for("svg.graph a[data-family='load']", WAIT)
        .await;
    browser.click(&family).await;
    browser
        .wait_for("svg.graph a[data-task='load[orders]']", WAIT)
        .await;
    browser.screenshot(&screenshots(), "run-expanded").await;
    for (path, name, expect) in [
        (
            "/runs/1/tasks/load%5Borders%5D",
            "task-in-run",
            "orders: first load",
        ),
        ("/tasks/make_management_report", "task", "revenue in EUR"),
        ("/schedules", "schedules", "nightly"),
        ("/workers", "workers", "PostgreSQL"),
        ("/lineage", "tables", "by make_order_model, 2026-11-"),
    ] {
        browser.goto(&format!("{base}{path}")).await;
        browser.wait_for("main h1", WAIT).await;
        let text = browser.page_text().await;
        assert!(text.contains(expect), "{path}: {text}");
        browser.screenshot(&screenshots(), name).await;
    }
    browser.quit().await;
}

#[tokio::test]
async fn a_failed_task_is_red_its_error_and_log_one_click_away_and_markup_stays_text() {
    let sandbox = Sandbox::new("browser-failed");
    sandbox.write("error-transform", XSS);
    sandbox.write("log-transform", LOGGED);
    let ran = sandbox.run(PIPELINE, &["run", "--date", "2026-11-26", "report"], &[]);
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    let (_server, base) = serve(&sandbox, PIPELINE, &[], &[]);
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/runs/1")).await;
    let failed = browser
        .wait_for("svg.graph a[data-task='transform'] rect", WAIT)
        .await;
    assert_eq!(
        browser.css(&failed, "fill").await,
        "rgb(239, 154, 154)",
        "red"
    );
    let waited = browser
        .wait_for("svg.graph a[data-task='report'] rect", WAIT)
        .await;
    assert_eq!(
        browser.css(&waited, "fill").await,
        "rgb(255, 204, 128)",
        "upstream_failed: orange"
    );
    browser.screenshot(&screenshots(), "run-failed").await;
    // One click on the red node: the error and the log, as the task wrote them.
    browser.click(&failed).await;
    browser.wait_for("pre.log", WAIT).await;
    let text = browser.page_text().await;
    assert!(text.contains(XSS), "the error as text: {text}");
    assert!(text.contains(LOGGED), "the log as text: {text}");
    assert!(!browser.alert_open().await, "no injected script ran");
    let scripts = browser
        .execute("return document.querySelectorAll('script').length + document.querySelectorAll('img').length;")
        .await;
    assert_eq!(
        scripts, 1,
        "only the view's own script, no injected element"
    );
    browser.screenshot(&screenshots(), "task-failed").await;
    browser.quit().await;
}

#[tokio::test]
async fn a_running_runs_page_recolours_itself_as_tasks_change() {
    let sandbox = Sandbox::new("browser-live");
    // Each task is held until the page has shown its state: the test does not race the run.
    sandbox.write("gate-extract", "");
    sandbox.write("gate-transform", "");
    let (_server, base) = serve(&sandbox, PIPELINE, &[], &[]);
    let run = sandbox.spawn(PIPELINE, &["run", "--date", "2026-11-26", "transform"], &[]);
    sandbox.wait_for("ran.log", "extract started");
    let id = get(&format!("{base}/api/runs?status=running")).await.json()[0]["id"]
        .as_i64()
        .expect("a running run");
    let browser = Browser::start().await;
    browser.goto(&format!("{base}/runs/{id}")).await;
    browser
        .wait_for("svg.graph a[data-task='transform'].s-waiting", WAIT)
        .await;
    browser.execute("window.sameDocument = true;").await;
    sandbox.write("open-extract", "");
    // Without a reload: the same document turns the node blue, then green.
    let running = browser
        .wait_for("svg.graph a[data-task='transform'].s-running rect", WAIT)
        .await;
    assert_eq!(browser.css(&running, "fill").await, "rgb(144, 202, 249)");
    assert_eq!(
        browser
            .execute("return window.sameDocument === true;")
            .await,
        true,
        "updated in place"
    );
    browser.screenshot(&screenshots(), "live-running").await;
    sandbox.write("open-transform", "");
    browser
        .wait_for("svg.graph a[data-task='transform'].s-succeeded", WAIT)
        .await;
    browser.wait_for("h1 .badge.s-succeeded", WAIT).await;
    browser.screenshot(&screenshots(), "live-done").await;
    let ran = pipeline_tests::finish(run);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    browser.quit().await;
}
