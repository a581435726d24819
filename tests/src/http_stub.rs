//! A local HTTP server that stands in for Slack, PagerDuty or an API: it records every request
//! and answers from a script, misbehaving on purpose (errors, 429 with Retry-After, hangs).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the server answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Status, extra headers, body.
    Status(u16, Vec<(String, String)>, String),
    /// Never answers (until the server stops).
    Hang,
    /// Announces `declared` bytes, sends the body, then closes the connection.
    Truncated(String, usize),
    /// Sends the body a byte at a time, pausing between bytes.
    Trickle(String, Duration),
}

impl Reply {
    pub fn ok() -> Reply {
        Reply::Status(200, Vec::new(), "ok".into())
    }

    pub fn status(code: u16) -> Reply {
        Reply::Status(code, Vec::new(), String::new())
    }

    pub fn json(body: &str) -> Reply {
        Reply::Status(200, Vec::new(), body.into())
    }

    pub fn retry_after(seconds: u64) -> Reply {
        Reply::Status(
            429,
            vec![("Retry-After".into(), seconds.to_string())],
            "slow down".into(),
        )
    }
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case, with their values.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: std::time::Instant,
}

impl Request {
    /// The value of a header (its name in lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[derive(Debug, Default)]
struct Shared {
    script: VecDeque<Reply>,
    /// Once the script is used up.
    otherwise: Option<Reply>,
    requests: Vec<Request>,
}

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct StubServer {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StubServer {
    /// Answers `200 ok` to everything until told otherwise.
    pub fn start() -> StubServer {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind a local port");
                let port = listener.local_addr().expect("local address").port();
                let _ = port_tx.send(port);
                let accept = async {
                    while let Ok((socket, _)) = listener.accept().await {
                        tokio::spawn(serve(socket, Arc::clone(&state)));
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stop_rx => {}
                }
            });
        });
        let port = port_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the stub server started");
        StubServer {
            port,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers the next requests with these replies, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().script.extend(replies);
    }

    /// Answers every request (after the script) with this reply.
    pub fn otherwise(&self, reply: Reply) {
        self.lock().otherwise = Some(reply);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }

    /// The messages posted to a Slack webhook under `prefix`: each request's JSON `text`.
    pub fn slack_texts(&self, prefix: &str) -> Vec<String> {
        self.requests_to(prefix)
            .iter()
            .map(|r| r.json()["text"].as_str().unwrap_or("").to_string())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(mut socket: tokio::net::TcpStream, shared: Arc<Mutex<Shared>>) {
    let mut buffer = Vec::new();
    loop {
        // Read one request: headers, then Content-Length bytes of body.
        let header_end = loop {
            if let Some(end) = find(&buffer, b"\r\n\r\n") {
                break end + 4;
            }
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buffer[..header_end]).into_owned();
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        while buffer.len() < header_end + length {
            let mut chunk = [0u8; 4096];
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body = String::from_utf8_lossy(&buffer[header_end..header_end + length]).into_owned();
        buffer.drain(..header_end + length);
        let mut words = head.split_whitespace();
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                Some((name.trim().to_ascii_lowercase(), value.trim().to_string()))
            })
            .collect();
        let request = Request {
            method: words.next().unwrap_or("").to_string(),
            path: words.next().unwrap_or("").to_string(),
            headers,
            body,
            at: std::time::Instant::now(),
        };
        let reply = {
            let mut shared = shared
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            shared.requests.push(request);
            shared
                .script
                .pop_front()
                .or_else(|| shared.otherwise.clone())
                .unwrap_or_else(Reply::ok)
        };
        match reply {
            Reply::Hang => std::future::pending::<()>().await,
            Reply::Truncated(body, declared) => {
                let head = format!(
                    "HTTP/1.1 200 STUB\r\ncontent-length: {declared}\r\ncontent-type: application/json\r\n\r\n"
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
                return;
            }
            Reply::Trickle(body, pause) => {
                let head = format!(
                    "HTTP/1.1 200 STUB\r\ncontent-length: {}\r\ncontent-type: application/json\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                for byte in body.as_bytes() {
                    if socket.write_all(&[*byte]).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
            }
            Reply::Status(code, headers, body) => {
                let mut response = format!(
                    "HTTP/1.1 {code} STUB\r\ncontent-length: {}\r\ncontent-type: application/json\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    response.push_str(&format!("{name}: {value}\r\n"));
                }
                response.push_str("\r\n");
                response.push_str(&body);
                if socket.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
