//! Delivery of one JSON request to an alert endpoint, expecting it to misbehave: a timeout on
//! every request, a few retries with backoff on network errors and 5xx, `Retry-After` honoured
//! on 429 (up to a cap). Errors never contain the URL: webhook URLs are secrets.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::{Client, StatusCode};

/// Limit of one request, connection included, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// A longer `Retry-After` is not waited for: the alert is given up.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15);

pub fn client(timeout: Duration) -> anyhow::Result<Client> {
    crate::http::client(timeout, timeout, timeout).context("alerts")
}

/// POSTs `body` to `url`; `what` names the endpoint in errors (never the URL).
pub async fn post_json(
    client: &Client,
    url: &str,
    body: &serde_json::Value,
    what: &str,
) -> anyhow::Result<()> {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let last = attempt == ATTEMPTS;
        let response = client.post(url).json(body).send().await;
        let wait = match response {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = crate::http::retry_after(response.headers()).unwrap_or(backoff);
                if retry_after > MAX_RETRY_AFTER {
                    bail!(
                        "{what} is rate limiting (Retry-After {}); alert dropped",
                        crate::date::format_duration(retry_after)
                    );
                }
                if last {
                    bail!("{what} is still rate limiting after {ATTEMPTS} attempts");
                }
                retry_after
            }
            Ok(response) if response.status().is_server_error() => {
                if last {
                    bail!("{what} answered {} {ATTEMPTS} times", response.status());
                }
                backoff
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let text: String = text.chars().take(200).collect();
                bail!("{what} refused the alert: {status} {text}");
            }
            Err(err) => {
                let err = err.without_url();
                if last {
                    return Err(err).with_context(|| {
                        format!("{what} could not be reached after {ATTEMPTS} attempts")
                    });
                }
                tracing::debug!("{what} attempt {attempt} failed: {err}");
                backoff
            }
        };
        tokio::time::sleep(wait).await;
        backoff *= 2;
    }
    bail!("{what}: no attempt left")
}
