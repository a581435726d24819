//! `daily serve`: a web view of runs, the graph and each task's log, served by the pipeline's
//! own binary with every asset embedded (no CDN, no internet), and JSON endpoints for the same
//! data.
//!
//! Read-only by default. Actions (rerun a task, cancel a run) exist only with
//! `--allow-actions`, and then only for requests that carry the token printed at start-up.
//! Binding to anything but loopback needs a token for every request: the view shows errors
//! and logs. Every response carries a strict Content-Security-Policy, and everything a user
//! or a task wrote reaches a page escaped (`text::escape`).

mod layout;
mod live;
mod page;
mod svg;
mod text;
mod view;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http_body_util::{BodyExt as _, Full, combinators::UnsyncBoxBody};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::run::Runner;
use crate::schedule::Schedule;

/// The body of every response.
type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The token's cookie, set by visiting any page with `?token=...`.
const TOKEN_COOKIE: &str = "pipeline_token";
/// Headers must arrive within this; a client that trickles them is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How `daily serve` serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen; loopback unless a token is set.
    pub addr: SocketAddr,
    /// Offer reruns and cancellation, to requests with the token.
    pub allow_actions: bool,
    /// The token (`PIPELINE_SERVE_TOKEN`); with `allow_actions` and none given, one is made
    /// and printed.
    pub token: Option<String>,
}

/// What every request handler sees.
struct Server {
    runner: Arc<Runner>,
    schedules: Vec<Schedule>,
    token: Option<String>,
    allow_actions: bool,
    /// Bound to loopback: reads need no token, and the Host header must name this machine
    /// (a page elsewhere that rebinds its DNS name to 127.0.0.1 is refused).
    loopback: bool,
    cancel: watch::Receiver<bool>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("allow_actions", &self.allow_actions)
            .field("loopback", &self.loopback)
            .finish_non_exhaustive()
    }
}

/// Serves until `cancel` turns true.
pub async fn serve(
    runner: Runner,
    schedules: Vec<Schedule>,
    options: ServeOptions,
    cancel: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let loopback = options.addr.ip().is_loopback();
    let mut token = options.token.filter(|token| !token.is_empty());
    let mut made_token = false;
    if token.is_none() && options.allow_actions {
        token = Some(new_token()?);
        made_token = true;
    }
    if !loopback && token.is_none() {
        anyhow::bail!(
            "refusing to serve on {} without a token: the view shows every run's errors and \
             logs to whoever reaches it. Set PIPELINE_SERVE_TOKEN (every request must then \
             carry it), or keep the default 127.0.0.1 and reach it through an SSH tunnel",
            options.addr
        );
    }
    let listener = TcpListener::bind(options.addr).await.with_context(|| {
        format!(
            "cannot listen on {}: is another server there?",
            options.addr
        )
    })?;
    let local = listener.local_addr().context("the listening address")?;
    eprintln!(
        "serving `{}` on http://{local}/ ({}; Ctrl-C stops)",
        runner.pipeline,
        if options.allow_actions {
            "reruns and cancellation allowed with the token"
        } else {
            "read-only"
        }
    );
    if made_token && let Some(token) = &token {
        eprintln!("token for actions: {token} (open http://{local}/?token={token} once)");
    }
    let server = Arc::new(Server {
        runner: Arc::new(runner),
        schedules,
        token,
        allow_actions: options.allow_actions,
        loopback,
        cancel: cancel.clone(),
    });
    let mut cancel = cancel;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = cancel.changed() => break,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, say: wait instead of spinning.
                tracing::warn!("cannot accept a connection: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let server = Arc::clone(&server);
                async move { Ok::<_, Infallible>(server.respond(request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(err) = connection.await {
                tracing::debug!("connection ended: {err}");
            }
        });
    }
    Ok(())
}

/// A random token: 32 bytes from the kernel, in hex.
fn new_token() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("cannot read random bytes for the token: set PIPELINE_SERVE_TOKEN instead")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// What a request asked for, decoded.
#[derive(Debug)]
pub(crate) struct Asked {
    method: Method,
    /// Path segments, percent-decoded.
    segments: Vec<String>,
    query: Vec<(String, String)>,
    authorized: bool,
}

impl Asked {
    /// The first value of a query parameter, if given and not empty.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_str())
    }

    /// Every value of a query parameter.
    pub(crate) fn params(&self, name: &str) -> impl Iterator<Item = &str> {
        self.query
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl Server {
    async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        let mut response = match self.route(request).await {
            Ok(response) => response,
            Err(err) => {
                let text = crate::message::error_text(&err);
                tracing::warn!("web view: {text}");
                page::error(StatusCode::INTERNAL_SERVER_ERROR, &text)
            }
        };
        secure(&mut response);
        response
    }

    /// What the probes and `/metrics` read.
    fn health(&self) -> crate::metrics::Health {
        crate::metrics::Health {
            store: Arc::clone(&self.runner.store),
            pipeline: self.runner.pipeline.clone(),
            lease_within: None,
        }
    }

    async fn route(&self, request: Request<Incoming>) -> anyhow::Result<Response<Body>> {
        // An orchestrator's probes come without a token, to whatever address the pod has.
        if let Some((well, text)) = self.health().probe(request.uri().path()).await {
            let status = if well {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            return Ok(page::plain(status, text));
        }
        if self.loopback && !host_is_local(&request) {
            return Ok(page::error(
                StatusCode::FORBIDDEN,
                "this server answers only to localhost, 127.0.0.1 or [::1] as the host name",
            ));
        }
        let presented = presented_token(&request);
        let authorized = match (&self.token, &presented) {
            (Some(token), Some(presented)) => same(token, presented),
            _ => false,
        };
        let uri = request.uri().clone();
        let query = text::query_pairs(uri.query().unwrap_or(""));
        // `?token=` once: the token goes into a cookie, and out of the address bar.
        if let Some((_, given)) = query.iter().find(|(key, _)| key == "token") {
            return Ok(match &self.token {
                Some(token) if same(token, given) => {
                    let rest: Vec<String> = query
                        .iter()
                        .filter(|(key, _)| key != "token")
                        .map(|(k, v)| format!("{}={}", text::encode(k), text::encode(v)))
                        .collect();
                    let mut location = uri.path().to_string();
                    if !rest.is_empty() {
                        location = format!("{location}?{}", rest.join("&"));
                    }
                    let mut response = page::redirect(&location);
                    let cookie = format!(
                        "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=604800"
                    );
                    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                        response.headers_mut().insert(header::SET_COOKIE, cookie);
                    }
                    response
                }
                _ => page::error(StatusCode::UNAUTHORIZED, "that token is not this server's"),
            });
        }
        if !self.loopback && !authorized {
            return Ok(page::error(
                StatusCode::UNAUTHORIZED,
                "this server needs its token: open any page once with ?token=..., or send \
                 `Authorization: Bearer ...`",
            ));
        }
        // Prometheus scrapes with the token as a bearer token where one is needed.
        if uri.path() == "/metrics" {
            let mut response = page::plain(StatusCode::OK, self.health().metrics().await);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            return Ok(response);
        }
        let Some(segments) = uri
            .path()
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| text::decode(segment, false))
            .collect::<Option<Vec<String>>>()
        else {
            return Ok(page::error(
                StatusCode::BAD_REQUEST,
                "the path is not valid UTF-8",
            ));
        };
        let method = request.method().clone();
        if method == Method::POST && !same_origin(&request) {
            return Ok(page::error(
                StatusCode::FORBIDDEN,
                "a form of another site cannot act on this server",
            ));
        }
        let asked = Asked {
            method,
            segments,
            query,
            authorized,
        };
        self.dispatch(&asked).await
    }

    async fn dispatch(&self, asked: &Asked) -> anyhow::Result<Response<Body>> {
        let runner = &*self.runner;
        let segments: Vec<&str> = asked.segments.iter().map(String::as_str).collect();
        if asked.method == Method::POST {
            return self.act(asked, &segments).await;
        }
        if asked.method != Method::GET && asked.method != Method::HEAD {
            return Ok(page::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET, HEAD and (for actions) POST",
            ));
        }
        let actions = self.allow_actions && asked.authorized;
        Ok(match segments.as_slice() {
            [] => page::runs(runner, asked).await?,
            ["runs", id] => match id.parse() {
                Ok(id) => page::run(runner, id, asked, actions).await?,
                Err(_) => not_found(),
            },
            ["runs", id, "tasks", task] => match id.parse() {
                Ok(id) => page::task_in_run(runner, id, task, actions).await?,
                Err(_) => not_found(),
            },
            ["tasks", task] => page::task(runner, task).await?,
            ["schedules"] => page::schedules(runner, &self.schedules).await?,
            ["workers"] => page::workers(runner).await?,
            ["lineage"] => page::lineage(runner).await?,
            ["assets", "style.css"] => asset("text/css", include_str!("serve/assets/style.css")),
            ["assets", "app.js"] => asset("text/javascript", include_str!("serve/assets/app.js")),
            ["api"] => page::json(&page::endpoints()),
            ["api", "runs"] => {
                page::json(&view::runs(runner, &page::run_filter(asked), page::limit(asked)).await?)
            }
            ["api", "runs", id] => match id.parse() {
                Ok(id) => match view::run(runner, id).await? {
                    Some(run) => page::json(&run),
                    None => not_found(),
                },
                Err(_) => not_found(),
            },
            ["api", "runs", id, "events"] => match id.parse() {
                Ok(id) => live::events(Arc::clone(&self.runner), id, self.cancel.clone()),
                Err(_) => not_found(),
            },
            ["api", "runs", id, "tasks", task, "attempts", attempt, "log"] => {
                match (id.parse(), attempt.parse()) {
                    (Ok(id), Ok(attempt)) => page::log_json(runner, id, task, attempt).await?,
                    _ => not_found(),
                }
            }
            ["api", "tasks"] => page::json(&page::graph_json(runner)),
            ["api", "tasks", task] => match view::task(runner, task, page::limit(asked)).await? {
                Some(task) => page::json(&task),
                None => not_found(),
            },
            ["api", "schedules"] => page::json(
                &crate::schedule::listing::schedules_json(runner, &self.schedules).await?,
            ),
            ["api", "lineage"] => page::json(&view::lineage(runner).await?),
            ["api", "workers"] => page::json(&crate::distributed::listing::workers_json(
                &page::live_workers(runner).await?.unwrap_or_default(),
            )),
            _ => not_found(),
        })
    }

    /// Reruns and cancellation: with `--allow-actions` and the token only.
    async fn act(&self, asked: &Asked, segments: &[&str]) -> anyhow::Result<Response<Body>> {
        if !self.allow_actions {
            return Ok(page::error(
                StatusCode::FORBIDDEN,
                "this server is read-only: start it with --allow-actions to rerun or cancel",
            ));
        }
        if !asked.authorized {
            return Ok(page::error(
                StatusCode::UNAUTHORIZED,
                "actions need the token printed at start-up: open any page once with \
                 ?token=..., or send `Authorization: Bearer ...`",
            ));
        }
        let runner = &self.runner;
        let segments = segments.strip_prefix(&["api"]).unwrap_or(segments);
        match segments {
            ["runs", id, "cancel"] => {
                let Ok(id) = id.parse() else {
                    return Ok(not_found());
                };
                runner.reap_abandoned().await?;
                let asked = runner.store.request_cancel(&runner.pipeline, id).await?;
                Ok(page::acted(
                    &format!("/runs/{id}"),
                    &match asked {
                        crate::state::CancelRequest::Requested { partition } => format!(
                            "asked run {id} ({partition}) to cancel: its running tasks stop \
                             within its next heartbeat"
                        ),
                        crate::state::CancelRequest::Ended(status) => {
                            format!("run {id} has ended ({status}): nothing to cancel")
                        }
                        crate::state::CancelRequest::NoSuchRun => format!("there is no run {id}"),
                    },
                ))
            }
            ["runs", id, "tasks", task, "rerun"] => {
                let Ok(id) = id.parse() else {
                    return Ok(not_found());
                };
                page::rerun(Arc::clone(&self.runner), id, task, self.cancel.clone()).await
            }
            _ => Ok(not_found()),
        }
    }
}

fn not_found() -> Response<Body> {
    page::error(StatusCode::NOT_FOUND, "there is nothing here")
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A body of bytes known in full.
fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

/// The headers every response carries: nothing runs but this server's own script, nothing
/// frames the page, nothing is cached or sniffed.
fn secure(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// The token a request carries: `Authorization: Bearer ...` or the cookie.
fn presented_token(request: &Request<Incoming>) -> Option<String> {
    let headers = request.headers();
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| {
            let (name, value) = cookie.trim().split_once('=')?;
            (name == TOKEN_COOKIE).then(|| value.to_string())
        })
}

/// Compares in time that does not depend on where the texts differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |differ, (x, y)| differ | (x ^ y))
            == 0
}

/// The host name of the request's `Host` header (without its port).
fn host_name(request: &Request<Incoming>) -> Option<String> {
    let host = request.headers().get(header::HOST)?.to_str().ok()?;
    let name = if let Some(rest) = host.strip_prefix('[') {
        format!("[{}]", rest.split(']').next()?)
    } else {
        host.split(':').next()?.to_string()
    };
    Some(name.to_ascii_lowercase())
}

fn host_is_local(request: &Request<Incoming>) -> bool {
    host_name(request).is_some_and(|name| {
        name == "localhost"
            || name == "[::1]"
            || name
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Whether a POST comes from this server's own pages: its `Origin`, when a browser sends
/// one, names the host it was sent to.
fn same_origin(request: &Request<Incoming>) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => {
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                == Some(host)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert!(!same("", "a"));
    }
}
