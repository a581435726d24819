//! Server-sent events for a run's page: every few hundred milliseconds the run is read again,
//! and the tasks whose status changed are sent as one `tasks` event; an `end` event follows
//! the run's end. A comment every 15 s keeps proxies from closing a quiet stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::{Bytes, Frame};
use hyper::header::{self, HeaderValue};
use serde_json::json;
use tokio::sync::watch;

use super::Body;
use super::view;
use crate::run::Runner;
use crate::status::RunStatus;

/// How often a stream reads the run again: a change shows within this and a page's paint.
const POLL: Duration = Duration::from_millis(300);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What a stream knows between two looks.
struct Watch {
    runner: Arc<Runner>,
    run: i64,
    /// The status each task and family had at the last look.
    seen: HashMap<String, String>,
    last_sent: Instant,
    ended: bool,
    first: bool,
    cancel: watch::Receiver<bool>,
}

/// The event stream of run `run`.
pub fn events(runner: Arc<Runner>, run: i64, cancel: watch::Receiver<bool>) -> Response<Body> {
    let state = Watch {
        runner,
        run,
        seen: HashMap::new(),
        last_sent: Instant::now(),
        ended: false,
        first: true,
        cancel,
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        if state.ended || *state.cancel.borrow() {
            return None;
        }
        loop {
            if !state.first {
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = state.cancel.changed() => return None,
                }
            }
            state.first = false;
            let chunk = look(&mut state).await;
            if !chunk.is_empty() {
                state.last_sent = Instant::now();
                return Some((chunk, state));
            }
            if state.last_sent.elapsed() >= KEEP_ALIVE {
                state.last_sent = Instant::now();
                return Some((": still here\n\n".to_string(), state));
            }
        }
    });
    let frames = stream.map(|chunk| Ok(Frame::data(Bytes::from(chunk))));
    let body = BodyExt::boxed_unsync(StreamBody::new(frames));
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// Reads the run: the events to send now (empty when nothing changed).
async fn look(state: &mut Watch) -> String {
    let view = match view::run(&state.runner, state.run).await {
        Ok(Some(view)) => view,
        Ok(None) => {
            state.ended = true;
            return format!("event: end\ndata: {}\n\n", json!({"error": "no such run"}));
        }
        Err(err) => {
            // A store that fails now may answer at the next look.
            tracing::warn!(
                "web view: cannot read run {}: {}",
                state.run,
                crate::message::error_text(&err)
            );
            return String::new();
        }
    };
    let mut now: HashMap<String, String> = HashMap::new();
    let mut families: HashMap<String, Vec<&str>> = HashMap::new();
    for task in &view.tasks {
        now.insert(task.name.clone(), task.status.to_string());
        if let Some(family) = &task.family {
            families
                .entry(family.clone())
                .or_default()
                .push(task.status);
        }
    }
    let changed: Vec<serde_json::Value> = now
        .iter()
        .filter(|(name, status)| state.seen.get(*name) != Some(status))
        .map(|(name, status)| json!({"name": name, "status": status}))
        .collect();
    let family_status: Vec<serde_json::Value> = families
        .iter()
        .map(|(family, statuses)| json!({"name": family, "status": super::svg::worst(statuses)}))
        .collect();
    state.seen = now;
    let mut out = String::new();
    if !changed.is_empty() {
        let data = json!({
            "run": {"status": view.run.status, "duration_ms": view.run.duration_ms},
            "tasks": changed,
            "families": family_status,
        });
        out.push_str(&format!("event: tasks\ndata: {data}\n\n"));
    }
    if view.run.status != RunStatus::Running {
        state.ended = true;
        out.push_str(&format!(
            "event: end\ndata: {}\n\n",
            json!({"status": view.run.status})
        ));
    }
    out
}
