//! Fetching every page of an API, with the misbehaviour of the service in mind.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context as _, bail};
use reqwest::{Client, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Limits, Pagination};
use crate::date::format_duration;

/// Every row of every page, validated, as JSON objects.
pub(super) struct Fetched {
    pub rows: Vec<Map<String, Value>>,
    pub pages: u32,
}

pub(super) async fn fetch_all<T: DeserializeOwned + Serialize>(
    url: &str,
    rows_at: &str,
    pagination: &Pagination,
    headers: &[(String, String)],
    limits: &Limits,
) -> anyhow::Result<Fetched> {
    let client = crate::http::client(
        limits.connect_timeout,
        limits.read_timeout,
        limits.request_timeout,
    )?;
    let base = Url::parse(url).map_err(|err| anyhow::anyhow!("invalid API URL: {err}"))?;
    let mut rows = Vec::new();
    let mut cursors_seen = HashSet::new();
    let mut next: Option<String> = match pagination {
        Pagination::Page { first, .. } => Some(first.to_string()),
        _ => None,
    };
    for page in 1.. {
        if page > limits.max_pages {
            bail!(
                "more than {} pages: stopping what looks like an endless pagination",
                limits.max_pages
            );
        }
        let mut page_url = base.clone();
        if let (Some(value), Pagination::Cursor { param, .. } | Pagination::Page { param, .. }) =
            (&next, pagination)
        {
            set_query(&mut page_url, param, value);
        }
        let body = get(&client, &page_url, headers, limits)
            .await
            .with_context(|| format!("page {page}"))?;
        let document: Value = serde_json::from_slice(&body).map_err(|err| {
            anyhow::anyhow!("page {page}: the response is not valid JSON (truncated or malformed) at line {}, column {}: {err}", err.line(), err.column())
        })?;
        let Some(Value::Array(page_rows)) = document.pointer(rows_at) else {
            bail!(
                "page {page}: no array of rows at `{}`",
                if rows_at.is_empty() { "/" } else { rows_at }
            );
        };
        for (index, row) in page_rows.iter().enumerate() {
            rows.push(
                validate::<T>(row)
                    .map_err(|err| anyhow::anyhow!("page {page}, row {index}: {err}"))?,
            );
        }
        next = match pagination {
            Pagination::None => None,
            Pagination::Page { .. } if page_rows.is_empty() => None,
            Pagination::Page { first, .. } => Some((first + u64::from(page)).to_string()),
            Pagination::Cursor { next_at, .. } => match document.pointer(next_at) {
                None | Some(Value::Null) => None,
                Some(Value::String(cursor)) if cursor.is_empty() => None,
                Some(Value::String(cursor)) => Some(cursor.clone()),
                Some(Value::Number(cursor)) => Some(cursor.to_string()),
                Some(other) => bail!(
                    "page {page}: the cursor at `{next_at}` is neither a string nor a number: {other}"
                ),
            },
        };
        if let (Some(cursor), Pagination::Cursor { .. }) = (&next, pagination)
            && !cursors_seen.insert(cursor.clone())
        {
            bail!(
                "page {page}: the API returned the cursor {cursor:?} again: stopping an endless pagination"
            );
        }
        if next.is_none() {
            return Ok(Fetched { rows, pages: page });
        }
    }
    unreachable!("the page loop only ends by returning")
}

/// Deserializes a row into `T` (which validates it) and back into a JSON object to write.
fn validate<T: DeserializeOwned + Serialize>(row: &Value) -> anyhow::Result<Map<String, Value>> {
    let typed: T = serde_path_to_error::deserialize(row).map_err(|err| {
        let path = err.path().to_string();
        anyhow::anyhow!(
            "field `{}` does not match: {}",
            if path == "." { "(row)".into() } else { path },
            err.inner()
        )
    })?;
    match serde_json::to_value(&typed)? {
        Value::Object(object) => Ok(object),
        other => bail!("a row must serialize to a JSON object, not {other}"),
    }
}

fn set_query(url: &mut Url, param: &str, value: &str) {
    let others: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != param)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut pairs = url.query_pairs_mut();
    pairs.clear();
    for (k, v) in &others {
        pairs.append_pair(k, v);
    }
    pairs.append_pair(param, value);
}

/// One GET, retried on network errors, 5xx, 408 and 429. Errors never show the URL (it may
/// hold a token): the caller names it, redacted.
async fn get(
    client: &Client,
    url: &Url,
    headers: &[(String, String)],
    limits: &Limits,
) -> anyhow::Result<Vec<u8>> {
    let mut last_error = anyhow::anyhow!("no attempt made");
    for attempt in 1..=limits.attempts.max(1) {
        let mut request = client.get(url.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let started = Instant::now();
        let wait = match request.send().await {
            Ok(response) if response.status().is_success() => {
                match read_body(response, limits, started).await {
                    Ok(body) => return Ok(body),
                    Err(BodyError::TooLarge(error)) => return Err(error),
                    Err(BodyError::Broken(error)) => {
                        last_error = error;
                        None
                    }
                }
            }
            Ok(response) => {
                let status = response.status();
                let retry_after = crate::http::retry_after(response.headers());
                let text: String = response
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect();
                last_error = anyhow::anyhow!("the API answered {status}: {}", text.trim());
                if !is_retryable(status) {
                    return Err(last_error);
                }
                if let Some(wait) = retry_after {
                    if wait > limits.max_retry_after {
                        bail!(
                            "the API answered {status} and asks to wait {} (Retry-After), more than the {} this load allows",
                            format_duration(wait),
                            format_duration(limits.max_retry_after)
                        );
                    }
                    Some(wait)
                } else {
                    None
                }
            }
            Err(err) if err.is_redirect() => {
                // The same request would be redirected the same way: not retried.
                let why = std::error::Error::source(&err)
                    .map_or_else(|| err.to_string(), ToString::to_string);
                bail!("the API {why}");
            }
            Err(err) => {
                last_error = if err.is_timeout() {
                    anyhow::anyhow!("the request {}", which_limit(&err, limits, started))
                } else if err.is_connect() {
                    anyhow::anyhow!("could not connect: {}", err.without_url())
                } else {
                    anyhow::anyhow!("the request failed: {}", err.without_url())
                };
                None
            }
        };
        if attempt == limits.attempts.max(1) {
            break;
        }
        let wait = wait.unwrap_or_else(|| crate::task::backoff::delay(limits.retry_delay, attempt));
        tracing::warn!(
            "attempt {attempt} failed ({last_error}); retrying in {}",
            format_duration(wait)
        );
        tokio::time::sleep(wait).await;
    }
    Err(last_error.context(format!("gave up after {} attempts", limits.attempts.max(1))))
}

fn is_retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

enum BodyError {
    /// Over the cap: not retried, the API will send the same.
    TooLarge(anyhow::Error),
    /// Cut short or stalled: worth another try.
    Broken(anyhow::Error),
}

/// Which of the request's limits a timeout was: the message says it, with its value.
fn which_limit(err: &reqwest::Error, limits: &Limits, started: Instant) -> String {
    let elapsed = started.elapsed();
    if elapsed + std::time::Duration::from_millis(50) >= limits.request_timeout {
        format!(
            "took longer than the request limit of {} (Limits::request_timeout)",
            format_duration(limits.request_timeout)
        )
    } else if err.is_connect() {
        format!(
            "could not connect within {} (Limits::connect_timeout)",
            format_duration(limits.connect_timeout)
        )
    } else {
        format!(
            "stalled: no data for {} (Limits::read_timeout)",
            format_duration(limits.read_timeout)
        )
    }
}

async fn read_body(
    mut response: reqwest::Response,
    limits: &Limits,
    started: Instant,
) -> Result<Vec<u8>, BodyError> {
    let cap = limits.max_body_bytes;
    let too_large = || {
        BodyError::TooLarge(anyhow::anyhow!(
            "the response is larger than the {cap}-byte limit"
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > cap as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) => {
                let what = if err.is_timeout() {
                    which_limit(&err, limits, started)
                } else {
                    format!("was cut short: {}", err.without_url())
                };
                return Err(BodyError::Broken(anyhow::anyhow!(
                    "the response, after {} bytes, {what}",
                    body.len(),
                )));
            }
        }
    }
}
