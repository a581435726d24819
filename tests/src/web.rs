//! The web view from outside: `daily serve` started on a free port, plain HTTP requests to
//! it, and a real Chromium driven over WebDriver (chromedriver), with no client crate: the
//! protocol is JSON over HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Sandbox;

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until something listens on `port`, or panics after 30 s.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `daily serve` of `binary` in the sandbox, listening: the process and its base URL.
pub fn serve(
    sandbox: &Sandbox,
    binary: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Child, String) {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut all = vec!["serve", "--addr", addr.as_str()];
    all.extend_from_slice(args);
    let child = sandbox.spawn(binary, &all, env);
    wait_for_port(port);
    (child, format!("http://{addr}"))
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }
}

/// A request to the view, with extra headers, answered whole.
pub async fn request(method: reqwest::Method, url: &str, headers: &[(&str, &str)]) -> Answer {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let mut request = client.request(method, url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("{url}: {err}"));
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.expect("the body"),
    }
}

pub async fn get(url: &str) -> Answer {
    request(reqwest::Method::GET, url, &[]).await
}

/// A headless Chromium under chromedriver, one session.
#[derive(Debug)]
pub struct Browser {
    client: reqwest::Client,
    session: String,
    driver: Child,
}

/// What WebDriver calls an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver and a session; panics with what to install when they are missing.
    pub async fn start() -> Browser {
        let driver_path =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chrome = std::env::var("CHROME").unwrap_or_else(|_| "/usr/bin/chromium".into());
        assert!(
            std::path::Path::new(&driver_path).exists() && std::path::Path::new(&chrome).exists(),
            "browser tests need Debian's chromium and chromium-driver ({chrome}, {driver_path}): \
             `apt-get install chromium chromium-driver`, as .ci/run does"
        );
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        wait_for_port(port);
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let created: Value = client
            .post(format!("{base}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chrome,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1400,1000"],
                },
            }}}))
            .send()
            .await
            .expect("create a browser session")
            .json()
            .await
            .expect("the session");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            client,
            session: format!("{base}/session/{session}"),
            driver,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("webdriver {path}: {err}"))
            .json()
            .await
            .expect("a webdriver answer");
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        let answer = self
            .call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
        assert!(answer.get("error").is_none(), "{url}: {answer}");
    }

    /// The first element that matches a CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let answer = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        answer[ELEMENT].as_str().map(String::from)
    }

    /// Waits up to `within` for an element to match.
    pub async fn wait_for(&self, css: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(
                Instant::now() < deadline,
                "nothing matched {css} within {within:?}; the page says: {}",
                self.page_text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// A computed style of an element (`fill`, `color`, ...).
    pub async fn css(&self, element: &str, property: &str) -> String {
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/css/{property}"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The visible text of the page.
    pub async fn page_text(&self) -> String {
        let Some(body) = self.find("body").await else {
            return String::new();
        };
        self.call(reqwest::Method::GET, &format!("/element/{body}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs a script in the page: what it returns.
    pub async fn execute(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Whether a JavaScript alert is open (what an injected script would show).
    pub async fn alert_open(&self) -> bool {
        let answer = self.call(reqwest::Method::GET, "/alert/text", None).await;
        answer.get("error").is_none()
    }

    /// Saves a screenshot of the page as `dir/name.png`, a test artifact: its path.
    pub async fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let answer = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = decode_base64(answer.as_str().expect("a screenshot"));
        std::fs::create_dir_all(dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let _ = self.client.delete(&self.session).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// Standard base64, as WebDriver sends screenshots.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for c in text.bytes().filter_map(value) {
        bits = (bits << 6) | c;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    out
}
