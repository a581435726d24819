//! The metrics listener of `daily worker` and `daily schedule`: `GET /metrics`, `/healthz`
//! and `/readyz` over plain HTTP/1.1, a request per connection. Small on purpose: it needs no
//! web server in a pipeline built without the web view.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::state::StateStore;

/// How long a probe waits for the state store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of a request read: a request line and a few headers.
const MAX_REQUEST: usize = 8 * 1024;
/// Connections answered at once; more wait to be accepted. Scrapers and probes are few: a
/// flood of idle connections must not grow the process.
const MAX_CONNECTIONS: usize = 32;
/// How long one connection may take, its request read and its answer written.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// What the endpoints read: the state store, and for a worker how old its leases' last
/// renewal may be while it is ready.
pub(crate) struct Health {
    pub store: Arc<StateStore>,
    pub pipeline: String,
    pub lease_within: Option<Duration>,
}

impl Health {
    /// The text of `/metrics`, with the queue read from the store now.
    pub async fn metrics(&self) -> String {
        match tokio::time::timeout(PROBE_TIMEOUT, self.store.queue_counts(&self.pipeline)).await {
            Ok(Ok((ready, running, waiting))) => super::queue(ready, running, waiting),
            Ok(Err(err)) => tracing::debug!("metrics: cannot read the queue: {err:#}"),
            Err(_) => tracing::debug!("metrics: the state store did not answer in time"),
        }
        super::text()
    }

    /// The answer to an orchestrator's probe, `/healthz` (the process answers) or `/readyz`:
    /// whether it is well, and the text to send; `None` for any other path. One answer for
    /// both listeners, this one and `daily serve`'s.
    pub async fn probe(&self, path: &str) -> Option<(bool, String)> {
        match path {
            "/healthz" => Some((true, "ok\n".to_string())),
            "/readyz" => Some(match self.not_ready().await {
                None => (true, "ready\n".to_string()),
                Some(why) => (false, format!("not ready: {why}\n")),
            }),
            _ => None,
        }
    }

    /// Why it is not ready, if it is not.
    async fn not_ready(&self) -> Option<String> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.store.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                return Some(format!(
                    "the state store: {}",
                    crate::message::error_text(&err)
                ));
            }
            Err(_) => {
                return Some(format!(
                    "the state store did not answer within {PROBE_TIMEOUT:?}"
                ));
            }
        }
        let ago = self.lease_within.zip(super::leases_renewed_ago());
        match ago {
            Some((within, ago)) if ago > within => Some(format!(
                "its leases were last renewed {} ago",
                crate::date::format_duration(ago)
            )),
            _ => None,
        }
    }
}

/// Listens on `addr` and answers in the background; fails if it cannot listen.
pub(crate) async fn serve(addr: SocketAddr, health: Arc<Health>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics: is it in use?"))?;
    let bound = listener.local_addr().unwrap_or(addr);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                return;
            };
            let Ok((socket, _)) = listener.accept().await else {
                // Out of file descriptors, say: wait instead of spinning.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let health = Arc::clone(&health);
            tokio::spawn(async move {
                let _ = tokio::time::timeout(CONNECTION_TIMEOUT, answer(socket, &health)).await;
                drop(slot);
            });
        }
    });
    Ok(bound)
}

async fn answer(mut socket: TcpStream, health: &Health) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => ("200 OK", super::CONTENT_TYPE, health.metrics().await),
        ("GET", _) => match health.probe(path).await {
            Some((true, text)) => ("200 OK", "text/plain", text),
            Some((false, text)) => ("503 Service Unavailable", "text/plain", text),
            None => (
                "404 Not Found",
                "text/plain",
                "/metrics, /healthz, /readyz\n".into(),
            ),
        },
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body.as_bytes()).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut socket = TcpStream::connect(addr).await.expect("connected");
        socket.write_all(request).await.expect("sent");
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn odd_requests_get_short_answers_and_a_flood_of_idle_connections_does_not_stop_it() {
        let dir = std::env::temp_dir().join(format!("pipeline-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory");
        let setting = crate::config::Setting {
            url: format!("sqlite://{}/state.db", dir.display()),
            source: "the test".into(),
        };
        let store = Arc::new(StateStore::open(&setting).await.expect("a state store"));
        let health = Arc::new(Health {
            store,
            pipeline: "p".into(),
            lease_within: None,
        });
        let addr = serve("127.0.0.1:0".parse().expect("an address"), health)
            .await
            .expect("listening");
        let healthz = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n").await;
        assert!(healthz.ends_with("\r\n\r\nok\n"), "{healthz}");
        let post = exchange(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        let elsewhere = exchange(addr, b"GET /../etc HTTP/1.1\r\n\r\n").await;
        assert!(elsewhere.starts_with("HTTP/1.1 404"), "{elsewhere}");
        // A request that never ends its headers is read no further than 8 KB.
        let endless = exchange(addr, &vec![b'a'; 64 * 1024]).await;
        assert!(endless.starts_with("HTTP/1.1 405"), "{endless}");
        // Idle connections beyond the limit wait; the probe after them is answered once
        // they go.
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS * 2 {
            idle.push(TcpStream::connect(addr).await.expect("connected"));
        }
        drop(idle);
        let ready = tokio::time::timeout(
            Duration::from_secs(5),
            exchange(addr, b"GET /readyz HTTP/1.1\r\n\r\n"),
        )
        .await
        .expect("answered once the idle connections went");
        assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
        let metrics = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(
            metrics.contains("pipeline_queue_tasks{state=\"ready\"} 0"),
            "{metrics}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
