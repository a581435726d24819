//! Delivery of one JSON document to an endpoint that is expected to misbehave (an alert to
//! Slack or PagerDuty, a lineage event): a timeout on every request, a few retries with backoff
//! on network errors and 5xx, `Retry-After` honoured on 429 (up to a cap). Errors never contain
//! the URL: webhook URLs are secrets.

use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::{Client, StatusCode};

/// Limit of one request, connection included, unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts of one delivery, unless the caller asks for fewer.
pub const ATTEMPTS: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// A longer `Retry-After` is not waited for: the document is given up.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15);

/// Where a document goes and how errors name it.
pub struct Endpoint<'a> {
    pub url: &'a str,
    /// The service, for errors (never the URL): `Slack`, `the OpenLineage endpoint`.
    pub what: &'a str,
    /// What is sent, for errors: `alert`, `event`.
    pub item: &'a str,
    /// Sent as `Authorization: Bearer ..` when set.
    pub bearer: Option<&'a str>,
}

/// A client for such deliveries: `timeout` for one whole request.
pub fn client(timeout: Duration) -> anyhow::Result<Client> {
    super::client(timeout, timeout, timeout)
}

/// POSTs `body` to `endpoint`, trying at most `attempts` times (at least once).
pub async fn post_json(
    client: &Client,
    endpoint: &Endpoint<'_>,
    body: &serde_json::Value,
    attempts: u32,
) -> anyhow::Result<()> {
    let Endpoint {
        url, what, item, ..
    } = *endpoint;
    let attempts = attempts.max(1);
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=attempts {
        let last = attempt == attempts;
        let mut request = client.post(url).json(body);
        if let Some(token) = endpoint.bearer {
            request = request.bearer_auth(token);
        }
        let wait = match request.send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                let retry_after = super::retry_after(response.headers()).unwrap_or(backoff);
                if retry_after > MAX_RETRY_AFTER {
                    bail!(
                        "{what} is rate limiting (Retry-After {}); {item} dropped",
                        crate::date::format_duration(retry_after)
                    );
                }
                if last {
                    bail!("{what} is still rate limiting after {attempts} attempts");
                }
                retry_after
            }
            Ok(response) if response.status().is_server_error() => {
                if last {
                    bail!("{what} answered {} {attempts} times", response.status());
                }
                backoff
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let text: String = text.chars().take(200).collect();
                bail!("{what} refused the {item}: {status} {text}");
            }
            Err(err) => {
                let err = err.without_url();
                if last {
                    return Err(err).with_context(|| {
                        format!("{what} could not be reached after {attempts} attempts")
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
