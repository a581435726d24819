//! The pages, as HTML built on the server (a script only makes a running run's page live),
//! and the JSON answers. Every text that comes from a task, a user or the store goes through
//! [`escape`]; links to names go through [`encode`].

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::json;
use tokio::sync::watch;

use super::text::{encode, escape};
use super::view::{self, AttemptView, RunSummary};
use super::{Asked, Body, full, svg};
use crate::date::{Partition, format_duration, format_timestamp};
use crate::run::{Quiet, RunOptions, Runner};
use crate::schedule::Schedule;
use crate::state::RunFilter;

/// Runs listed at most, and by default.
const MAX_LIMIT: u32 = 500;
const DEFAULT_LIMIT: u32 = 50;

/// The JSON endpoints, as `GET /api` lists them.
pub fn endpoints() -> serde_json::Value {
    json!({
        "GET /api/runs?status=&date=&before=&limit=": "recent runs, newest first (`date` matches a day and its hours)",
        "GET /api/runs/{id}": "a run: each task's status and attempts, the critical path, blocked critical tasks",
        "GET /api/runs/{id}/events": "server-sent events: `tasks` (statuses that changed), `end`",
        "GET /api/runs/{id}/tasks/{task}/attempts/{n}/log": "an attempt's status and log",
        "GET /api/tasks": "the graph: every task with its dependencies and attributes",
        "GET /api/tasks/{task}?limit=": "a task, its dependencies both ways, its attempts across partitions",
        "GET /api/schedules": "schedules with their next ticks and last outcome",
        "GET /api/workers": "live worker processes",
        "GET /api/lineage": "the tables tasks declare: writers, readers, sources, each table's last load",
        "POST /api/runs/{id}/cancel, POST /runs/{id}/cancel": "with --allow-actions and the token",
        "POST /runs/{id}/tasks/{task}/rerun": "runs the task again for the run's partition, forced; with --allow-actions and the token",
    })
}

/// A plain-text answer with its status.
pub fn plain(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(full(text.into_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A JSON answer.
pub fn json(value: &impl Serialize) -> Response<Body> {
    let body = serde_json::to_vec_pretty(value)
        .unwrap_or_else(|err| format!("{{\"error\": \"cannot write JSON: {err}\"}}").into_bytes());
    let mut response = Response::new(full(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error page (or JSON, for `/api`), with its status.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    let body = layout(
        status.canonical_reason().unwrap_or("error"),
        &format!("<p class=\"error\">{}</p>", escape(message)),
        None,
    );
    let mut response = html(body);
    *response.status_mut() = status;
    response
}

fn no_such_run(id: i64) -> Response<Body> {
    error(StatusCode::NOT_FOUND, &format!("there is no run {id}"))
}

/// A redirect to a path on this server. Anything a browser could read as another host
/// (`//host/x`, `/\\host/x`, a scheme) goes to `/` instead: the path may come from a request.
pub fn redirect(location: &str) -> Response<Body> {
    let location = if is_local_path(location) {
        location
    } else {
        "/"
    };
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(location) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Whether a browser reads `location` as a path on this server: one `/`, then no second
/// `/`, no backslash (browsers read it as a slash) and no control character anywhere.
fn is_local_path(location: &str) -> bool {
    location.starts_with('/')
        && !location[1..].starts_with('/')
        && !location.bytes().any(|b| b == b'\\' || b.is_ascii_control())
}

/// The answer to an action: what happened, and the way back.
pub fn acted(back: &str, message: &str) -> Response<Body> {
    html(layout(
        "done",
        &format!(
            "<p class=\"notice\">{}</p><p><a href=\"{}\">back</a></p>",
            escape(message),
            escape(back)
        ),
        None,
    ))
}

fn html(body: String) -> Response<Body> {
    let mut response = Response::new(full(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// The frame of every page. `live` names the event stream a running run's page follows.
fn layout(title: &str, main: &str, live: Option<&str>) -> String {
    let live = live.map_or(String::new(), |url| {
        format!(" data-live=\"{}\"", escape(url))
    });
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · pipeline</title><link rel=\"stylesheet\" href=\"/assets/style.css\">\
         <script src=\"/assets/app.js\" defer></script></head><body{live}>\
         <header><a class=\"brand\" href=\"/\">pipeline</a><nav><a href=\"/\">Runs</a>\
         <a href=\"/lineage\">Tables</a><a href=\"/schedules\">Schedules</a><a href=\"/workers\">Workers</a>\
         <a href=\"/api\">JSON</a></nav></header><main>{main}</main></body></html>",
        title = escape(title),
    )
}

fn status_badge(status: &str) -> String {
    format!(
        "<span class=\"badge s-{}\">{}</span>",
        escape(status),
        escape(status)
    )
}

fn duration(ms: i64) -> String {
    format_duration(Duration::from_millis(ms.max(0) as u64))
}

/// `?status=&date=&before=` as a filter.
pub fn run_filter(asked: &Asked) -> RunFilter {
    RunFilter {
        status: asked.param("status").map(str::to_string),
        partition: asked.param("date").map(str::to_string),
        before: asked.param("before").and_then(|id| id.parse().ok()),
    }
}

/// `?limit=`, bounded.
pub fn limit(asked: &Asked) -> u32 {
    asked
        .param("limit")
        .and_then(|limit| limit.parse().ok())
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT)
}

/// The runs page: recent runs, filtered by status and date.
pub async fn runs(runner: &Runner, asked: &Asked) -> anyhow::Result<Response<Body>> {
    let filter = run_filter(asked);
    let runs = view::runs(runner, &filter, limit(asked)).await?;
    let mut main = format!("<h1>Runs of {}</h1>", escape(&runner.pipeline));
    main.push_str("<form class=\"filter\" method=\"get\" action=\"/\"><label>status <select name=\"status\"><option value=\"\">any</option>");
    for status in crate::status::RunStatus::ALL {
        let selected = if filter.status.as_deref() == Some(status.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            main,
            "<option{selected}>{}</option>",
            escape(status.as_str())
        );
    }
    let _ = write!(
        main,
        "</select></label> <label>date <input name=\"date\" placeholder=\"2026-11-26\" value=\"{}\"></label> <button>filter</button></form>",
        escape(filter.partition.as_deref().unwrap_or(""))
    );
    if runs.is_empty() {
        main.push_str(&format!(
            "<p class=\"empty\">No runs yet: <code>{} run</code> makes one.</p>",
            escape(crate::message::command_name())
        ));
    } else {
        main.push_str(&runs_table(&runs));
        if let Some(last) = runs.last()
            && runs.len() as u32 == limit(asked)
        {
            let mut next = format!("/?before={}", last.id);
            for key in ["status", "date", "limit"] {
                if let Some(value) = asked.param(key) {
                    let _ = write!(next, "&{key}={}", encode(value));
                }
            }
            let _ = write!(main, "<p><a href=\"{}\">older runs</a></p>", escape(&next));
        }
    }
    Ok(html(layout("Runs", &main, None)))
}

fn runs_table(runs: &[RunSummary]) -> String {
    let mut table = String::from(
        "<table class=\"runs\"><thead><tr><th>run</th><th>partition</th><th>status</th>\
         <th>started (UTC)</th><th>duration</th><th>tasks</th><th>failed</th><th>targets</th>\
         </tr></thead><tbody>",
    );
    for run in runs {
        let mode = match (run.namespace == "test", run.unit_mode) {
            (true, true) => " <small>test, unit</small>",
            (true, false) => " <small>test</small>",
            (false, true) => " <small>unit</small>",
            (false, false) => "",
        };
        let _ = write!(
            table,
            "<tr class=\"run s-{status}\"><td><a href=\"/runs/{id}\">{id}</a></td><td>{partition}{mode}</td>\
             <td>{badge}</td><td>{started}</td><td>{duration}</td><td>{total}</td><td>{failed}</td><td>{targets}</td></tr>",
            status = run.status,
            id = run.id,
            partition = escape(&run.partition),
            badge = status_badge(run.status.as_str()),
            started = escape(&run.started_at),
            duration = duration(run.duration_ms),
            total = run.tasks_total.map_or("-".into(), |n| n.to_string()),
            failed = run.tasks_failed.map_or("-".into(), |n| n.to_string()),
            targets = if run.targets.is_empty() {
                "all".to_string()
            } else {
                escape(&run.targets.join(", "))
            },
        );
    }
    table.push_str("</tbody></table>");
    table
}

/// A run: its graph, its timeline, and each task's outcome.
pub async fn run(
    runner: &Runner,
    id: i64,
    asked: &Asked,
    actions: bool,
) -> anyhow::Result<Response<Body>> {
    let Some(view) = view::run(runner, id).await? else {
        return Ok(no_such_run(id));
    };
    let expanded: HashSet<String> = if asked.param("expand") == Some("*") {
        view.tasks.iter().filter_map(|t| t.family.clone()).collect()
    } else {
        asked.params("expand").map(str::to_string).collect()
    };
    let run = &view.run;
    let mut main = format!(
        "<h1>Run {id} <small>{partition}{test}</small> {badge}</h1>\
         <p class=\"meta\">started {started} UTC on {host} (pid {pid}) · {duration} · targets: {targets}{unit}</p>",
        partition = escape(&run.partition),
        test = if run.namespace == "test" {
            " (test mode)"
        } else {
            ""
        },
        badge = status_badge(run.status.as_str()),
        started = escape(&run.started_at),
        host = escape(&run.host),
        pid = run.pid,
        duration = duration(run.duration_ms),
        targets = if run.targets.is_empty() {
            "all".to_string()
        } else {
            escape(&run.targets.join(", "))
        },
        unit = if run.unit_mode { " (unit mode)" } else { "" },
    );
    if actions && run.status == crate::status::RunStatus::Running {
        let _ = write!(
            main,
            "<form method=\"post\" action=\"/runs/{id}/cancel\"><button class=\"danger\">cancel this run</button></form>"
        );
    }
    for blocked in &view.blocked {
        let _ = write!(
            main,
            "<p class=\"warning blocked\">critical task <a href=\"/runs/{id}/tasks/{}\">{}</a> did not run because non-critical <a href=\"/runs/{id}/tasks/{}\">{}</a> failed: if it can do without it, make that an <code>after</code> dependency; if not, make it critical</p>",
            encode(&blocked.task),
            escape(&blocked.task),
            encode(&blocked.by),
            escape(&blocked.by),
        );
    }
    if !view.critical_path.is_empty() {
        let path: Vec<String> = view.critical_path.iter().map(|t| escape(t)).collect();
        let _ = write!(
            main,
            "<p class=\"meta\">critical path: {}</p>",
            path.join(" → ")
        );
    }
    let families = view.tasks.iter().any(|task| task.family.is_some());
    main.push_str("<h2 id=\"graph\">Graph</h2>");
    if families {
        let _ = write!(
            main,
            "<p class=\"meta\">families are drawn as one node: click one to expand it · <a href=\"/runs/{id}?expand=*#graph\">expand all</a> · <a href=\"/runs/{id}#graph\">collapse all</a></p>"
        );
    }
    let _ = write!(
        main,
        "<div class=\"scroll\">{}</div><p class=\"legend\">",
        svg::run_graph(&view, &expanded)
    );
    for status in [
        "succeeded",
        "failed",
        "upstream_failed",
        "skipped",
        "running",
        view::WAITING,
        "cancelled",
        "timed_out",
        "not_configured",
    ] {
        main.push_str(&status_badge(status));
    }
    main.push_str("<span class=\"badge critical\">critical path</span></p>");
    main.push_str("<h2>Timeline</h2>");
    let attempts: usize = view.tasks.iter().map(|t| t.attempts.len()).sum();
    if attempts == 0 {
        main.push_str(
            "<p class=\"empty\">No attempts: every task was complete, or none started.</p>",
        );
    } else {
        if attempts > svg::TIMELINE_ROWS {
            let _ = write!(
                main,
                "<p class=\"meta\">the first {} of {attempts} attempts</p>",
                svg::TIMELINE_ROWS
            );
        }
        let _ = write!(main, "<div class=\"scroll\">{}</div>", svg::timeline(&view));
    }
    main.push_str(
        "<h2>Tasks</h2><table class=\"tasks\"><thead><tr><th>task</th><th>status</th>\
         <th>attempts</th><th>duration</th><th>error / note</th></tr></thead><tbody>",
    );
    for task in &view.tasks {
        let last = task.attempts.last();
        let note = last
            .and_then(|a| a.error.as_deref().or(a.note.as_deref()))
            .and_then(|text| text.lines().next())
            .unwrap_or("");
        let total: i64 = task.attempts.iter().map(|a| a.duration_ms).sum();
        let _ = write!(
            main,
            "<tr><td><a href=\"/runs/{id}/tasks/{link}\">{name}</a>{noncritical}</td><td data-status-of=\"{name}\">{badge}</td><td>{attempts}</td><td>{duration}</td><td class=\"note\">{note}</td></tr>",
            link = encode(&task.name),
            name = escape(&task.name),
            noncritical = if task.critical {
                ""
            } else {
                " <small>non-critical</small>"
            },
            badge = status_badge(task.status),
            attempts = task.attempts.len(),
            duration = if task.attempts.is_empty() {
                "-".into()
            } else {
                duration(total)
            },
            note = escape(note),
        );
    }
    main.push_str("</tbody></table>");
    let live =
        (run.status == crate::status::RunStatus::Running).then(|| format!("/api/runs/{id}/events"));
    Ok(html(layout(&format!("run {id}"), &main, live.as_deref())))
}

/// One task in one run: each attempt with its error, what it reported, and its log.
pub async fn task_in_run(
    runner: &Runner,
    id: i64,
    name: &str,
    actions: bool,
) -> anyhow::Result<Response<Body>> {
    let Some(view) = view::run(runner, id).await? else {
        return Ok(no_such_run(id));
    };
    let Some(task) = view.task(name) else {
        return Ok(error(
            StatusCode::NOT_FOUND,
            &format!("run {id} has no task `{name}`"),
        ));
    };
    let mut main = format!(
        "<p><a href=\"/runs/{id}\">← run {id}</a> ({partition})</p>\
         <h1>{name} {badge}</h1><p class=\"meta\"><a href=\"/tasks/{link}\">the task: its description, dependencies and history</a></p>",
        partition = escape(&view.run.partition),
        name = escape(&task.name),
        badge = status_badge(task.status),
        link = encode(&task.name),
    );
    if actions && view.run.status != crate::status::RunStatus::Running {
        let _ = write!(
            main,
            "<form method=\"post\" action=\"/runs/{id}/tasks/{}/rerun\"><button>run it again for {} (forced)</button></form>",
            encode(&task.name),
            escape(&view.run.partition)
        );
    }
    if task.attempts.is_empty() {
        let _ = write!(
            main,
            "<p class=\"empty\">No attempt in this run: {}.</p>",
            match task.status {
                "skipped" => "it was complete already",
                "upstream_failed" => "a task it requires did not succeed",
                "waiting" => "it has not started yet",
                _ => "it never started",
            }
        );
    }
    for attempt in task.attempts.iter().rev() {
        main.push_str(&attempt_section(runner, &task.name, attempt).await?);
    }
    let live = (view.run.status == crate::status::RunStatus::Running)
        .then(|| format!("/api/runs/{id}/events"));
    Ok(html(layout(&task.name, &main, live.as_deref())))
}

async fn attempt_section(
    runner: &Runner,
    task: &str,
    attempt: &AttemptView,
) -> anyhow::Result<String> {
    let mut section = format!(
        "<section class=\"attempt\"><h2>attempt {n} {badge}</h2><p class=\"meta\">started {started} UTC · {duration}</p>",
        n = attempt.attempt,
        badge = status_badge(attempt.status.as_str()),
        started = escape(&format_timestamp(attempt.started_at_ms)),
        duration = duration(attempt.duration_ms),
    );
    if let Some(error) = &attempt.error {
        let _ = write!(
            section,
            "<h3>error</h3><pre class=\"error\">{}</pre>",
            escape(error)
        );
    }
    if let Some(note) = &attempt.note {
        let _ = write!(section, "<h3>reported</h3><pre>{}</pre>", escape(note));
    }
    if let Some(value) = attempt.value {
        let _ = write!(section, "<p>measured: <b>{value}</b></p>");
    }
    let log = runner
        .store
        .attempt_log(attempt.run_id, task, attempt.attempt)
        .await?
        .and_then(|(_, log)| log)
        .unwrap_or_default();
    let _ = write!(
        section,
        "<h3>log</h3><pre class=\"log\">{}</pre></section>",
        if log.is_empty() {
            "(nothing logged)".to_string()
        } else {
            escape(&log)
        }
    );
    Ok(section)
}

/// A task of the graph: description, dependencies both ways, attributes, history.
pub async fn task(runner: &Runner, name: &str) -> anyhow::Result<Response<Body>> {
    let Some(task) = view::task(runner, name, DEFAULT_LIMIT).await? else {
        return Ok(error(
            StatusCode::NOT_FOUND,
            &format!("the graph has no task `{name}`"),
        ));
    };
    let links = |names: &[String]| -> String {
        if names.is_empty() {
            return "none".into();
        }
        task_links(names)
    };
    let mut main = format!(
        "<h1>{name}</h1><p class=\"description\">{description}</p><table class=\"attributes\">",
        name = escape(&task.name),
        description = if task.description.is_empty() {
            "(no doc comment)".to_string()
        } else {
            escape(&task.description)
        },
    );
    let mut row = |key: &str, value: String| {
        let _ = write!(main, "<tr><th>{key}</th><td>{value}</td></tr>");
    };
    row("requires", links(&task.requires));
    row("after", links(&task.after));
    row("needed by", links(&task.dependents));
    if let Some(family) = &task.family {
        row("family", escape(family));
    }
    if !task.checks.is_empty() {
        row(
            "checks",
            format!(
                "{}{}",
                links(&task.checks),
                if task.blocking == Some(true) {
                    " (blocking)"
                } else {
                    ""
                }
            ),
        );
    }
    row(
        "retries",
        format!(
            "{} (first after {})",
            task.retries,
            duration(task.retry_delay_ms as i64)
        ),
    );
    row(
        "timeout",
        task.timeout_ms
            .map_or("none".into(), |ms| duration(ms as i64)),
    );
    row(
        "critical",
        if task.critical {
            "yes"
        } else {
            "no: its failure does not fail the run"
        }
        .into(),
    );
    row("pool", task.pool.as_deref().map_or("none".into(), escape));
    row("priority", task.priority.to_string());
    if let Some(origin) = &task.origin {
        row("defined at", escape(origin));
    }
    main.push_str("</table><h2>History</h2>");
    if task.history.is_empty() {
        main.push_str("<p class=\"empty\">It has not run yet.</p>");
    } else {
        main.push_str(
            "<table class=\"history\"><thead><tr><th>partition</th><th>run</th><th>attempt</th>\
             <th>status</th><th>started (UTC)</th><th>duration</th><th>error / note</th></tr></thead><tbody>",
        );
        for entry in &task.history {
            let a = &entry.attempt;
            let note = a
                .error
                .as_deref()
                .or(a.note.as_deref())
                .and_then(|text| text.lines().next())
                .unwrap_or("");
            let _ = write!(
                main,
                "<tr><td>{partition}{test}</td><td><a href=\"/runs/{run}/tasks/{link}\">{run}</a></td><td>{n}</td><td>{badge}</td><td>{started}</td><td>{duration}</td><td class=\"note\">{note}</td></tr>",
                partition = escape(&entry.partition),
                test = if entry.namespace == "test" {
                    " <small>test</small>"
                } else {
                    ""
                },
                run = a.run_id,
                link = encode(&task.name),
                n = a.attempt,
                badge = status_badge(a.status.as_str()),
                started = escape(&format_timestamp(a.started_at_ms)),
                duration = duration(a.duration_ms),
                note = escape(note),
            );
        }
        main.push_str("</tbody></table>");
    }
    Ok(html(layout(&task.name, &main, None)))
}

/// An attempt's status and log, as JSON.
pub async fn log_json(
    runner: &Runner,
    run: i64,
    task: &str,
    attempt: u32,
) -> anyhow::Result<Response<Body>> {
    Ok(match runner.store.attempt_log(run, task, attempt).await? {
        Some((status, log)) => json(&json!({
            "run_id": run,
            "task": task,
            "attempt": attempt,
            "status": status,
            "log": log.unwrap_or_default(),
        })),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("run {run} has no attempt {attempt} of `{task}`"),
        ),
    })
}

/// The graph as data: every task, its dependencies and attributes.
pub fn graph_json(runner: &Runner) -> serde_json::Value {
    let dag = &runner.dag;
    let names = |ids: &[crate::dag::TaskId]| -> Vec<&str> {
        ids.iter().map(|id| dag.task(*id).name.as_str()).collect()
    };
    let tasks: Vec<serde_json::Value> = dag
        .tasks()
        .map(|(_, task)| {
            json!({
                "name": task.name,
                "description": task.description,
                "family": task.family,
                "requires": names(&task.requires),
                "after": names(&task.after),
                "critical": task.policy.critical,
                "retries": task.policy.retries,
                "timeout_ms": task.policy.timeout.map(|t| t.as_millis() as u64),
                "pool": task.pool,
                "priority": task.priority,
                "checks": task.check.as_ref().map(|role| names(&role.targets)),
            })
        })
        .collect();
    json!({"pipeline": runner.pipeline, "fingerprint": dag.fingerprint(), "tasks": tasks})
}

/// Links to the pages of tasks, separated by commas.
fn task_links(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("<a href=\"/tasks/{}\">{}</a>", encode(name), escape(name)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tables page: the lineage graph, then each table with its writers, readers and last
/// load.
pub async fn lineage(runner: &Runner) -> anyhow::Result<Response<Body>> {
    let view = view::lineage(runner).await?;
    let mut main = String::from("<h1>Tables</h1>");
    if view.tables.is_empty() {
        main.push_str(
            "<p class=\"empty\">No task declares tables: name them in <code>tables!</code> and \
             list them in <code>#[task(reads = [..], writes = [..])]</code>.</p>",
        );
        return Ok(html(layout("Tables", &main, None)));
    }
    let _ = write!(
        main,
        "<p class=\"meta\">writer → table → reader; a table links to the run that last loaded \
         it</p><div class=\"scroll\">{}</div><p class=\"legend\">\
         <span class=\"badge s-succeeded\">loaded</span>\
         <span class=\"badge s-waiting\">not loaded yet</span>\
         <span class=\"badge source\">source</span></p>",
        svg::lineage_graph(&view),
    );
    main.push_str(
        "<h2 id=\"tables\">Each table</h2><table class=\"tables\"><thead><tr><th>table</th>\
         <th>written by</th><th>read by</th><th>last load (UTC)</th></tr></thead><tbody>",
    );
    for table in &view.tables {
        let load = match (&table.last_load, table.source) {
            (_, true) => "source: written elsewhere".to_string(),
            (Some(load), _) => format!(
                "{at} ({age} ago) by {task}, {partition}, <a href=\"/runs/{run}\">run {run}</a>",
                at = escape(&load.finished_at),
                age = duration(load.age_ms),
                task = escape(&load.task),
                partition = escape(&load.partition),
                run = load.run_id,
            ),
            (None, _) => "not loaded yet".to_string(),
        };
        let _ = write!(
            main,
            "<tr data-table=\"{name}\"><td>{name}</td><td>{writers}</td><td>{readers}</td><td>{load}</td></tr>",
            name = escape(&table.name),
            writers = task_links(&table.writers),
            readers = task_links(&table.readers),
        );
    }
    main.push_str("</tbody></table>");
    if view.last_loads_cut {
        let _ = write!(
            main,
            "<p class=\"meta\">Last loads are looked up for the first {} tables only.</p>",
            view::LAST_LOADS
        );
    }
    Ok(html(layout("Tables", &main, None)))
}

/// The schedules page.
pub async fn schedules(runner: &Runner, schedules: &[Schedule]) -> anyhow::Result<Response<Body>> {
    let listed = crate::schedule::listing::schedules_json(runner, schedules).await?;
    let mut main = String::from("<h1>Schedules</h1>");
    let items = listed.as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        main.push_str(
            "<p class=\"empty\">No schedules: declare them with <code>schedule!</code>.</p>",
        );
    }
    for item in items {
        let text = |key: &str| escape(item[key].as_str().unwrap_or(""));
        let _ = write!(
            main,
            "<section class=\"schedule\"><h2>{name}</h2><p class=\"description\">{description}</p>\
             <p class=\"meta\"><code>{cron}</code> in {tz} · partition: {partition} · targets: {targets}</p><ul>",
            name = text("name"),
            description = text("description"),
            cron = text("cron"),
            tz = text("time_zone"),
            partition = text("partition"),
            targets = escape(
                &item["targets"]
                    .as_array()
                    .map(|t| t
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(", "))
                    .unwrap_or_default()
            ),
        );
        for next in item["next"].as_array().cloned().unwrap_or_default() {
            let _ = write!(
                main,
                "<li>next {} ({} UTC), partition {}</li>",
                escape(next["local"].as_str().unwrap_or("")),
                escape(next["utc"].as_str().unwrap_or("")),
                escape(next["partition"].as_str().unwrap_or("")),
            );
        }
        main.push_str("</ul>");
        let last = &item["last"];
        if last.is_null() {
            main.push_str("<p>last: never fired</p>");
        } else {
            let status = last["status"].as_str().unwrap_or("");
            let run = last["run_id"].as_i64().map_or(String::new(), |id| {
                format!(" (<a href=\"/runs/{id}\">run {id}</a>)")
            });
            let _ = write!(
                main,
                "<p>last: {} partition {} {}{run}</p>",
                escape(last["local"].as_str().unwrap_or("")),
                escape(last["partition"].as_str().unwrap_or("")),
                status_badge(status),
            );
        }
        main.push_str("</section>");
    }
    Ok(html(layout("Schedules", &main, None)))
}

/// The live workers; `None` on a SQLite state store, which has none.
pub async fn live_workers(
    runner: &Runner,
) -> anyhow::Result<Option<Vec<crate::state::WorkerRecord>>> {
    if runner.store.postgres("workers").is_err() {
        return Ok(None);
    }
    Ok(Some(
        runner
            .store
            .workers(
                &runner.pipeline,
                crate::distributed::listing::LIVE_WORKER_MS,
            )
            .await?,
    ))
}

/// The live workers page.
pub async fn workers(runner: &Runner) -> anyhow::Result<Response<Body>> {
    let mut main = String::from("<h1>Workers</h1>");
    let Some(workers) = live_workers(runner).await? else {
        main.push_str(
            "<p class=\"empty\">Workers need a PostgreSQL state store (PIPELINE_STATE_URL): \
             this one is SQLite, and every run runs in its own process.</p>",
        );
        return Ok(html(layout("Workers", &main, None)));
    };
    if workers.is_empty() {
        main.push_str(&format!(
            "<p class=\"empty\">No live workers: <code>{} worker</code> starts one (PostgreSQL \
             state store).</p>",
            escape(crate::message::command_name())
        ));
    } else {
        main.push_str("<table><thead><tr><th>worker</th><th>slots</th><th>started (UTC)</th><th>heartbeat</th><th>graph</th><th>running</th></tr></thead><tbody>");
        for worker in &workers {
            let _ = write!(
                main,
                "<tr><td>{id}</td><td>{slots}{stopping}</td><td>{started}</td><td>{age} ago</td><td>{graph}</td><td>{running}</td></tr>",
                id = escape(&worker.id),
                slots = worker.slots,
                stopping = if worker.stopping { " (stopping)" } else { "" },
                started = escape(&format_timestamp(worker.started_at)),
                age = duration(worker.heartbeat_age_ms),
                graph = escape(&worker.fingerprint),
                running = escape(&worker.running.join(", ")),
            );
        }
        main.push_str("</tbody></table>");
    }
    Ok(html(layout("Workers", &main, None)))
}

/// Runs a task of a run again, forced, for the run's partition, in this process; answers at
/// once with where to follow it.
pub async fn rerun(
    runner: Arc<Runner>,
    id: i64,
    task: &str,
    cancel: watch::Receiver<bool>,
) -> anyhow::Result<Response<Body>> {
    let Some(run) = runner.store.run(&runner.pipeline, id).await? else {
        return Ok(no_such_run(id));
    };
    if runner.dag.id(task).is_none() {
        return Ok(error(
            StatusCode::NOT_FOUND,
            &format!("the graph has no task `{task}`"),
        ));
    }
    let partition: Partition = run
        .partition
        .parse()
        .map_err(|err| anyhow::anyhow!("run {id} has a bad partition: {err}"))?;
    let mut options = RunOptions::new(partition);
    options.targets = vec![task.to_string()];
    options.only = true;
    options.force = true;
    options.test = run.namespace == "test";
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let task_name = task.to_string();
    tokio::spawn(async move {
        // The lock is taken (or refused) at once; the answer says which.
        let outcome = runner.run(&options, &Quiet, cancel).await;
        match outcome {
            Ok(report) => {
                tracing::info!(
                    "web view: rerun of {task_name} for {}: run {} {}",
                    report.date,
                    report.run_id,
                    report.status
                );
                let _ = started_tx.send(Ok(report.run_id));
            }
            Err(err) => {
                let text = crate::message::error_text(&anyhow::Error::from(err));
                tracing::warn!("web view: rerun of {task_name} did not run: {text}");
                let _ = started_tx.send(Err(text));
            }
        }
    });
    // A short rerun ends within this; a longer one is followed from the runs page.
    match tokio::time::timeout(Duration::from_secs(2), started_rx).await {
        Ok(Ok(Ok(run_id))) => Ok(redirect(&format!("/runs/{run_id}"))),
        Ok(Ok(Err(text))) => Ok(error(StatusCode::CONFLICT, &text)),
        _ => Ok(acted(
            "/",
            &format!(
                "{task} runs again for {}: the runs page shows it",
                run.partition
            ),
        )),
    }
}
