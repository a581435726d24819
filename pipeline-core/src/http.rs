//! What the HTTP users (API loads, alerts, lineage events) do the same way: clients that follow
//! redirects only within the origin they were pointed at (API keys and webhook tokens never go
//! to another host), `Retry-After` in both of its forms, and the delivery of one JSON document
//! ([`post`]).

pub(crate) mod post;

use std::time::Duration;

use anyhow::Context as _;
use reqwest::header::HeaderMap;
use reqwest::redirect::{Attempt, Policy};
use reqwest::{Client, Url};

use crate::date::{Date, now_millis};

/// Redirects followed at most, within one origin.
const MAX_REDIRECTS: usize = 5;

/// A client with these limits: `connect` to connect, `read` between two reads of a response,
/// `request` for one whole request (response body included).
pub(crate) fn client(
    connect: Duration,
    read: Duration,
    request: Duration,
) -> anyhow::Result<Client> {
    Client::builder()
        .connect_timeout(connect)
        .read_timeout(read)
        .timeout(request)
        .redirect(Policy::custom(same_origin))
        .user_agent(concat!("pipeline/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the HTTP client")
}

/// Follows a redirect within the origin of the first request; refuses one to another origin
/// (the request's headers, API keys among them, would go along), naming only that origin.
fn same_origin(attempt: Attempt<'_>) -> reqwest::redirect::Action {
    let first = attempt.previous().first().map(Url::origin);
    if first.as_ref() != Some(&attempt.url().origin()) {
        let target = attempt.url().origin().ascii_serialization();
        return attempt.error(format!(
            "redirected to another origin ({target}); refused, so that the request's headers \
             (API keys) stay with the service they were meant for: use the final URL"
        ));
    }
    if attempt.previous().len() > MAX_REDIRECTS {
        return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
    }
    attempt.follow()
}

/// `Retry-After` as seconds or as an HTTP date; a date in the past means now.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(Duration::from_millis(
        u64::try_from(at - now_millis()).unwrap_or(0),
    ))
}

/// An HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`) as milliseconds since the epoch.
fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let (_weekday, day, month, year, time, zone) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if zone != "GMT" || parts.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u32 + 1;
    let date = Date::from_ymd(year.parse().ok()?, month, day.parse().ok()?)?;
    let mut clock = time.split(':').map(|n| n.parse::<i64>().ok());
    let (h, m, s) = (clock.next()??, clock.next()??, clock.next()??);
    Some((date.days_since_epoch() * 86_400 + h * 3600 + m * 60 + s) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_http_dates() {
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:10 GMT"),
            Some(10_000)
        );
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480_000)
        );
        assert_eq!(parse_http_date("Wed, 21 Oct 2015 07:28:00 CET"), None);
        assert_eq!(parse_http_date("tomorrow"), None);
    }

    #[test]
    fn retry_after_in_both_forms() {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().expect("a value"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Thu, 01 Jan 1970 00:00:10 GMT".parse().expect("a value"),
        );
        assert_eq!(
            retry_after(&headers),
            Some(Duration::ZERO),
            "a past date: now"
        );
    }
}
