//! `daily serve` over HTTP, from the real binary on a real SQLite state store: every JSON
//! endpoint, the escaping of what tasks wrote, the security headers, the token rules for
//! other interfaces and for actions, and the live event stream of a running run.

use std::io::BufRead as _;
use std::time::{Duration, Instant};

use pipeline_tests::web::{Answer, free_port, get, request, serve};
use pipeline_tests::{Sandbox, finish, signal};
use reqwest::Method;
use serde_json::Value;

const PIPELINE: &str = env!("CARGO_BIN_EXE_e2e-pipeline");
const XSS: &str = "<script>alert(1)</script> broke";
const LOGGED: &str = "log line <img src=x onerror=alert(2)>";

/// A sandbox with one failed run of 2026-11-26: `transform` fails with [`XSS`] as its error
/// and logs [`LOGGED`]; `report` is upstream_failed.
fn failed_run(name: &str) -> Sandbox {
    let sandbox = Sandbox::new(name);
    sandbox.write("error-transform", XSS);
    sandbox.write("log-transform", LOGGED);
    let ran = sandbox.run(
        PIPELINE,
        &[
            "run",
            "--date",
            "2026-11-26",
            "extract",
            "transform",
            "report",
        ],
        &[],
    );
    assert_eq!(ran.code, Some(1), "{}", ran.stderr);
    sandbox
}

fn task<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no task {name} in {run}"))
}

#[tokio::test]
async fn every_json_endpoint_answers_with_the_stores_data() {
    let sandbox = failed_run("serve-json");
    let (server, base) = serve(&sandbox, PIPELINE, &[], &[]);

    let index = get(&format!("{base}/api")).await;
    assert_eq!(index.status, 200);
    assert!(
        index.json().as_object().is_some_and(|o| o.len() >= 8),
        "{}",
        index.body
    );

    let runs = get(&format!("{base}/api/runs")).await.json();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    assert_eq!(runs[0]["status"], "failed");
    assert_eq!(runs[0]["partition"], "2026-11-26");
    let id = runs[0]["id"].as_i64().expect("an id");
    for (query, count) in [
        ("status=failed", 1),
        ("status=succeeded", 0),
        ("date=2026-11", 1),
        ("date=2026-12", 0),
        ("date=%25", 0),
        ("before=1", 0),
        ("limit=0", 1),
    ] {
        let found = get(&format!("{base}/api/runs?{query}")).await.json();
        assert_eq!(
            found.as_array().map(Vec::len),
            Some(count),
            "{query}: {found}"
        );
    }

    let run = get(&format!("{base}/api/runs/{id}")).await.json();
    assert_eq!(task(&run, "extract")["status"], "succeeded");
    let transform = task(&run, "transform");
    assert_eq!(transform["status"], "failed");
    assert_eq!(
        transform["attempts"].as_array().map(Vec::len),
        Some(2),
        "retries = 1"
    );
    assert!(
        transform["attempts"][1]["error"]
            .as_str()
            .is_some_and(|e| e.contains(XSS)),
        "{transform}"
    );
    assert_eq!(task(&run, "report")["status"], "upstream_failed");
    assert_eq!(task(&run, "slow")["status"], "succeeded");
    let path: Vec<&str> = run["critical_path"]
        .as_array()
        .map(|p| p.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(path.first(), Some(&"extract"), "{path:?}");
    assert_eq!(get(&format!("{base}/api/runs/999")).await.status, 404);

    let log = get(&format!(
        "{base}/api/runs/{id}/tasks/transform/attempts/2/log"
    ))
    .await
    .json();
    assert_eq!(log["status"], "failed");
    assert!(
        log["log"].as_str().is_some_and(|l| l.contains(LOGGED)),
        "{log}"
    );
    assert_eq!(
        get(&format!(
            "{base}/api/runs/{id}/tasks/transform/attempts/9/log"
        ))
        .await
        .status,
        404
    );

    let graph = get(&format!("{base}/api/tasks")).await.json();
    let transform = graph["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["name"] == "transform"))
        .cloned()
        .expect("transform in the graph");
    assert_eq!(transform["requires"], serde_json::json!(["extract"]));
    assert_eq!(transform["retries"], 1);

    let transform = get(&format!("{base}/api/tasks/transform")).await.json();
    assert_eq!(transform["description"], "Transforms what was extracted.");
    assert!(
        transform["dependents"]
            .as_array()
            .is_some_and(|d| d.iter().any(|t| t == "report")),
        "{transform}"
    );
    assert_eq!(transform["history"].as_array().map(Vec::len), Some(2));
    assert_eq!(transform["history"][0]["attempt"], 2, "newest first");
    assert_eq!(transform["history"][0]["partition"], "2026-11-26");
    assert_eq!(get(&format!("{base}/api/tasks/nope")).await.status, 404);

    let schedules = get(&format!("{base}/api/schedules")).await.json();
    assert_eq!(schedules[0]["name"], "every_second", "{schedules}");
    assert_eq!(schedules[0]["next"].as_array().map(Vec::len), Some(5));
    let workers = get(&format!("{base}/api/workers")).await;
    assert_eq!(
        (workers.status, workers.json()),
        (200, serde_json::json!([]))
    );

    // The events of an ended run: its tasks once, then the end, and the stream closes.
    let events = tokio::time::timeout(
        Duration::from_secs(10),
        get(&format!("{base}/api/runs/{id}/events")),
    )
    .await
    .expect("the stream of an ended run ends");
    assert_eq!(events.header("content-type"), "text/event-stream");
    assert!(events.body.starts_with("event: tasks\n"), "{}", events.body);
    assert!(events.body.contains("event: end\n"), "{}", events.body);
    signal(&server, "TERM");
    assert_eq!(finish(server).code, Some(0));
}

#[tokio::test]
async fn what_tasks_and_users_wrote_is_shown_as_text() {
    let sandbox = failed_run("serve-escape");
    let (_server, base) = serve(&sandbox, PIPELINE, &[], &[]);
    let id = get(&format!("{base}/api/runs")).await.json()[0]["id"]
        .as_i64()
        .expect("an id");
    let pages = [
        format!("{base}/"),
        format!("{base}/runs/{id}"),
        format!("{base}/runs/{id}/tasks/transform"),
        format!("{base}/tasks/transform"),
        format!("{base}/?date=%3Cscript%3Ex%3C/script%3E&status=%22%3E%3Cb%3E"),
        format!("{base}/tasks/%3Cscript%3Ex"),
        format!("{base}/runs/{id}/tasks/%3Cimg%20src=x%3E"),
    ];
    for url in &pages {
        let page = get(url).await;
        assert!(
            !page.body.contains("<script>")
                && !page.body.contains("<img")
                && !page.body.contains("<b>"),
            "{url} holds markup it was given: {}",
            page.body
        );
        assert!(
            page.body.contains("<!doctype html>"),
            "{url}: {}",
            page.body
        );
    }
    let task_page = get(&pages[2]).await.body;
    assert!(
        task_page.contains("&lt;script&gt;alert(1)&lt;/script&gt; broke"),
        "the error, as text: {task_page}"
    );
    assert!(
        task_page.contains("log line &lt;img src=x onerror=alert(2)&gt;"),
        "the log, as text: {task_page}"
    );
    let run_page = get(&pages[1]).await.body;
    assert!(run_page.contains("&lt;script&gt;alert(1)"), "{run_page}");
    assert!(
        node_class(&run_page, "transform").contains("s-failed"),
        "{run_page}"
    );
    assert!(node_class(&run_page, "report").contains("s-upstream_failed"));
    assert!(node_class(&run_page, "extract").contains("s-succeeded"));
}

/// The class of a task's node in a run page's graph.
fn node_class(page: &str, task: &str) -> String {
    let marker = format!("data-task=\"{task}\"");
    let at = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no node of {task}"));
    let tag = &page[page[..at].rfind('<').unwrap_or(0)..at];
    tag.split("class=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_a_foreign_host_is_refused() {
    let sandbox = failed_run("serve-headers");
    let (_server, base) = serve(&sandbox, PIPELINE, &[], &[]);
    for path in [
        "/",
        "/runs/1",
        "/runs/1/tasks/extract",
        "/tasks/extract",
        "/schedules",
        "/workers",
        "/api/runs",
        "/api/runs/1/events",
        "/assets/style.css",
        "/assets/app.js",
        "/nope",
        "/runs/%ff",
    ] {
        let answer = get(&format!("{base}{path}")).await;
        let policy = answer.header("content-security-policy");
        assert!(
            policy.contains("default-src 'none'")
                && policy.contains("script-src 'self'")
                && policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(answer.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(answer.header("x-frame-options"), "DENY", "{path}");
        assert_eq!(answer.header("referrer-policy"), "no-referrer", "{path}");
    }
    // A page elsewhere whose name resolves to 127.0.0.1 (DNS rebinding) is not answered.
    let rebound = request(
        Method::GET,
        &format!("{base}/api/runs"),
        &[("host", "evil.example")],
    )
    .await;
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    assert!(!rebound.body.contains("2026-11-26"));
    let post = request(Method::PUT, &format!("{base}/"), &[]).await;
    assert_eq!(post.status, 405);
}

/// The `Location` of the answer to `GET target`, sent as written: an HTTP client would
/// normalise the backslashes and double slashes away.
fn raw_redirect(port: u16, target: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("the answer");
    assert!(answer.starts_with("HTTP/1.1 303"), "{target}: {answer}");
    answer
        .lines()
        .find_map(|line| line.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("{target}: no location in {answer}"))
        .to_string()
}

#[tokio::test]
async fn beyond_loopback_every_request_needs_the_token() {
    let sandbox = failed_run("serve-token");
    let port = free_port();
    let addr = format!("0.0.0.0:{port}");
    let refused = sandbox.run(PIPELINE, &["serve", "--addr", &addr], &[]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("without a token")
            && refused.stderr.contains("PIPELINE_SERVE_TOKEN"),
        "{}",
        refused.stderr
    );

    let token = "s3cret-token-for-the-test";
    let server = sandbox.spawn(
        PIPELINE,
        &["serve", "--addr", &addr],
        &[("PIPELINE_SERVE_TOKEN", token)],
    );
    pipeline_tests::web::wait_for_port(port);
    let base = format!("http://127.0.0.1:{port}");
    let bare = get(&format!("{base}/api/runs")).await;
    assert_eq!(bare.status, 401, "{}", bare.body);
    assert!(!bare.body.contains("2026-11-26"));
    let bearer = format!("Bearer {token}");
    let with = request(
        Method::GET,
        &format!("{base}/api/runs"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(with.status, 200, "{}", with.body);
    let wrong = request(
        Method::GET,
        &format!("{base}/api/runs"),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(wrong.status, 401);
    // `?token=` once: a cookie that the browser keeps, and the token out of the address.
    let login = get(&format!("{base}/runs/1?token={token}")).await;
    assert_eq!(login.status, 303);
    assert_eq!(login.header("location"), "/runs/1");
    let cookie = login.header("set-cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap_or_default().to_string();
    let page = request(Method::GET, &format!("{base}/runs/1"), &[("cookie", &pair)]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(get(&format!("{base}/?token=wrong")).await.status, 401);
    // The redirect stays on this server, whatever path a link crafted around the token.
    for crafted in [
        "//evil.example/x",
        "/\\evil.example/x",
        "/\\/evil.example/x",
    ] {
        let location = raw_redirect(port, &format!("{crafted}?token={token}"));
        assert_eq!(location, "/", "{crafted} redirected to {location}");
    }
    signal(&server, "TERM");
    let server = finish(server);
    assert!(
        !server.stderr.contains(token),
        "the given token is never printed: {}",
        server.stderr
    );
}

#[tokio::test]
async fn actions_need_allow_actions_and_the_token_and_a_rerun_runs_the_task() {
    let sandbox = failed_run("serve-actions");
    let (_read_only, base) = serve(&sandbox, PIPELINE, &[], &[]);
    let refused = request(
        Method::POST,
        &format!("{base}/runs/1/tasks/transform/rerun"),
        &[],
    )
    .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("--allow-actions"), "{}", refused.body);

    // With --allow-actions and no token given, one is made and printed.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = sandbox.spawn(
        PIPELINE,
        &["serve", "--addr", &addr, "--allow-actions"],
        &[],
    );
    let stderr = server.stderr.take().expect("the server's stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let token = loop {
        let line = lines
            .next()
            .expect("the server prints its token")
            .expect("a line");
        if let Some(rest) = line.strip_prefix("token for actions: ") {
            break rest.split(' ').next().unwrap_or_default().to_string();
        }
    };
    assert_eq!(token.len(), 64, "{token}");
    let base = format!("http://{addr}");
    let rerun = format!("{base}/runs/1/tasks/transform/rerun");
    let bearer = format!("Bearer {token}");
    let without = request(Method::POST, &rerun, &[]).await;
    assert_eq!(without.status, 401, "{}", without.body);
    let foreign = request(
        Method::POST,
        &rerun,
        &[
            ("authorization", &bearer),
            ("origin", "http://evil.example"),
        ],
    )
    .await;
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    // Reads on loopback need no token, but the page offers actions only to those with it.
    let page = get(&format!("{base}/runs/1/tasks/transform")).await;
    assert!(!page.body.contains("rerun"), "{}", page.body);
    let page = request(
        Method::GET,
        &format!("{base}/runs/1/tasks/transform"),
        &[("authorization", &bearer)],
    )
    .await;
    assert!(
        page.body.contains("/runs/1/tasks/transform/rerun"),
        "{}",
        page.body
    );

    sandbox.remove("error-transform");
    let origin = base.clone();
    let done: Answer = request(
        Method::POST,
        &rerun,
        &[("authorization", &bearer), ("origin", &origin)],
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location"), "/runs/2");
    let run = get(&format!("{base}/api/runs/2")).await.json();
    assert_eq!(run["run"]["unit_mode"], true);
    assert_eq!(run["run"]["partition"], "2026-11-26");
    assert_eq!(task(&run, "transform")["status"], "succeeded", "{run}");
    let cancel = request(
        Method::POST,
        &format!("{base}/api/runs/2/cancel"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(cancel.status, 200);
    assert!(cancel.body.contains("has ended"), "{}", cancel.body);
    signal(&server, "TERM");
    assert_eq!(server.wait().expect("the server ends").code(), Some(0));
}

#[tokio::test]
async fn a_running_runs_events_follow_its_tasks_until_it_ends() {
    let sandbox = Sandbox::new("serve-live");
    // The task is held until the stream has shown it running: the test cannot be outrun.
    sandbox.write("gate-slow", "");
    let (_server, base) = serve(&sandbox, PIPELINE, &[], &[]);
    let run = sandbox.spawn(PIPELINE, &["run", "--date", "2026-11-26", "slow"], &[]);
    sandbox.wait_for("ran.log", "slow started");
    let runs = get(&format!("{base}/api/runs?status=running")).await.json();
    let id = runs[0]["id"].as_i64().expect("a running run");

    let client = reqwest::Client::new();
    let mut stream = client
        .get(format!("{base}/api/runs/{id}/events"))
        .send()
        .await
        .expect("the event stream");
    let started = Instant::now();
    let mut seen = String::new();
    let mut running_at = None;
    let mut succeeded_at = None;
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(15), stream.chunk())
        .await
        .expect("events keep coming")
        .expect("a chunk")
    {
        seen.push_str(&String::from_utf8_lossy(&chunk));
        assert!(started.elapsed() < Duration::from_secs(60), "{seen}");
        if running_at.is_none() && seen.contains(r#"{"name":"slow","status":"running"}"#) {
            running_at = Some(started.elapsed());
            sandbox.write("open-slow", "");
        }
        if succeeded_at.is_none() && seen.contains(r#"{"name":"slow","status":"succeeded"}"#) {
            succeeded_at = Some(started.elapsed());
        }
    }
    assert!(running_at.is_some(), "{seen}");
    assert!(
        seen.ends_with("\n\n") && seen.contains("event: end"),
        "{seen}"
    );
    let done = Instant::now();
    let ran = finish(run);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(
        succeeded_at.is_some_and(|at| at > running_at.unwrap_or_default()),
        "{seen}"
    );
    // The stream ended with the run, not long after.
    assert!(done.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_run_whose_process_was_killed_shows_as_abandoned_and_its_stream_ends() {
    let sandbox = Sandbox::new("serve-killed");
    sandbox.write("sleep-slow", "60000");
    let (_server, base) = serve(&sandbox, PIPELINE, &[], &[]);
    let run = sandbox.spawn(PIPELINE, &["run", "--date", "2026-11-26", "slow"], &[]);
    sandbox.wait_for("ran.log", "slow started");
    let id = get(&format!("{base}/api/runs?status=running")).await.json()[0]["id"]
        .as_i64()
        .expect("a running run");
    let client = reqwest::Client::new();
    let mut stream = client
        .get(format!("{base}/api/runs/{id}/events"))
        .send()
        .await
        .expect("the event stream");
    let first = stream
        .chunk()
        .await
        .expect("a chunk")
        .expect("the first event");
    assert!(String::from_utf8_lossy(&first).contains(r#""status":"running""#));
    signal(&run, "KILL");
    finish(run);
    let mut seen = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
        .await
        .expect("the stream ends once the run is closed")
        .expect("a chunk")
    {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        seen.contains(r#"event: end"#) && seen.contains("abandoned"),
        "{seen}"
    );
    let view = get(&format!("{base}/api/runs/{id}")).await.json();
    assert_eq!(view["run"]["status"], "abandoned");
    assert_eq!(task(&view, "slow")["status"], "cancelled", "{view}");
}

/// The tables page and `/api/lineage` of the real `daily`: each declared table between its
/// writers and readers, sources marked, and each table's last load from the state store.
#[tokio::test]
async fn the_tables_page_shows_each_table_with_its_writer_readers_and_last_load() {
    const DAILY: &str = env!("CARGO_BIN_EXE_e2e-daily");
    let sandbox = Sandbox::new("serve-lineage");
    let ran = sandbox.run(DAILY, &["run", "--date", "2026-11-20", "--json"], &[]);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    let run_id = ran.json()["run_id"].as_i64().expect("a run id");
    // A test run loads nothing in production: it changes no last load.
    let test = sandbox.run(DAILY, &["run", "--date", "2026-11-21", "--test"], &[]);
    assert_eq!(test.code, Some(0), "{}", test.stderr);
    let (server, base) = serve(&sandbox, DAILY, &[], &[]);

    let lineage = get(&format!("{base}/api/lineage")).await.json();
    let table = |name: &str| -> Value {
        lineage["tables"]
            .as_array()
            .and_then(|tables| tables.iter().find(|t| t["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no table {name} in {lineage:#}"))
    };
    let model = table("warehouse.order_model");
    assert_eq!(model["writers"], serde_json::json!(["make_order_model"]));
    assert_eq!(
        model["readers"],
        serde_json::json!(["make_management_report"])
    );
    assert_eq!(model["source"], false);
    let load = &model["last_load"];
    assert_eq!(load["task"], "make_order_model");
    assert_eq!(load["run_id"], run_id);
    assert_eq!(load["partition"], "2026-11-20");
    // A family declares its tables as one; the member named after the table loaded it.
    assert_eq!(
        table("warehouse.orders")["last_load"]["task"],
        "load[orders]"
    );
    assert_eq!(table("replica.orders")["source"], true);
    assert_eq!(table("replica.orders")["last_load"], Value::Null);
    // The event load found no bus: its tables were never loaded.
    assert_eq!(table("warehouse.order_events")["last_load"], Value::Null);

    let page = get(&format!("{base}/lineage")).await;
    assert_eq!(page.status, 200);
    let node = |name: &str| -> String {
        let marker = format!("data-table=\"{name}\"");
        let at = page
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no node of {name}"));
        let start = page.body[..at].rfind("<a ").expect("the node's link");
        let end = at + page.body[at..].find("</a>").expect("the node's end");
        page.body[start..end].to_string()
    };
    let model_node = node("warehouse.order_model");
    assert!(
        model_node.contains("class=\"node table s-succeeded\"")
            && model_node.contains(&format!("href=\"/runs/{run_id}\""))
            && model_node.contains("last loaded"),
        "{model_node}"
    );
    assert!(
        node("replica.orders").contains("class=\"node table source\""),
        "{}",
        node("replica.orders")
    );
    assert!(node("warehouse.order_events").contains("s-waiting"));
    // Writer -> table -> reader: the order model's task and its report are nodes too, and
    // the table's row names both.
    assert!(page.body.contains("<title>task make_order_model</title>"));
    assert!(page.body.contains("<title>family load</title>"));
    assert!(
        page.body.contains(
            "<tr data-table=\"warehouse.order_model\"><td>warehouse.order_model</td><td><a href=\"/tasks/make_order_model\">make_order_model</a></td><td><a href=\"/tasks/make_management_report\">make_management_report</a></td>"
        ),
        "{}",
        page.body
    );
    signal(&server, "TERM");
    assert_eq!(finish(server).code, Some(0));
}
