//! Loads from external HTTP APIs, written as if the service wants to hurt you: every request
//! has connect, read and request timeouts, and the whole load a total one (see [`Limits`]);
//! redirects to another origin are refused; network errors, 5xx, 408 and 429 are retried with
//! backoff and jitter; `Retry-After` is honoured in both forms up to a cap (beyond it the
//! load fails instead of sleeping for hours); a response over the size cap, a truncated body,
//! malformed JSON or a field of the wrong type is an error that names the page, the row and
//! the JSON path; a cursor seen twice or too many pages stops an endless pagination. Rows are
//! deserialized into your `serde` type (which validates them), de-duplicated by key, and
//! written in one transaction after the last page: all pages or nothing.
//!
//! ```no_run
//! # use pipeline_core::prelude::*;
//! #[derive(serde::Deserialize, serde::Serialize)]
//! struct Rate { date: String, currency: String, eur_rate: f64 }
//!
//! # async fn load(ctx: &Ctx) -> Result<()> {
//! ctx.load_api::<Rate>("https://rates.example.com/v1/rates")
//!     .rows_at("/data")
//!     .cursor("cursor", "/next_cursor")
//!     .into_table("currency_rates", &["date", "currency"])
//!     .run()
//!     .await?;
//! # Ok(()) }
//! ```

mod fetch;
mod write;

use std::marker::PhantomData;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ctx::Ctx;

/// How the API pages its results.
#[derive(Clone, Debug)]
pub enum Pagination {
    /// One response holds everything.
    None,
    /// Each response names the next cursor at a JSON pointer; it is sent back as `param`.
    Cursor {
        /// The query parameter that carries the cursor.
        param: String,
        /// The JSON pointer of the next cursor in a response (`/meta/next`).
        next_at: String,
    },
    /// Pages numbered from `first`, sent as `param`, until an empty page.
    Page {
        /// The query parameter that carries the page number.
        param: String,
        /// The first page's number.
        first: u64,
    },
}

/// Limits of one load. The defaults suit a nightly load of a service that may hang: a stalled
/// or trickling response is given up within a minute and retried, and the whole load never
/// takes more than ten minutes.
#[derive(Clone, Debug)]
pub struct Limits {
    /// To connect to the service. Default: 10 s.
    pub connect_timeout: Duration,
    /// Between two reads of a response: a response that stalls this long is given up.
    /// Default: 30 s.
    pub read_timeout: Duration,
    /// One request, its whole response included (a response that trickles in slowly is
    /// given up too). Default: 60 s.
    pub request_timeout: Duration,
    /// The whole load: every page, retry and wait. Default: 10 min.
    pub total_timeout: Duration,
    /// Attempts per request, the first included. Default: 4.
    pub attempts: u32,
    /// The first delay between attempts, doubling with jitter. Default: 1 s.
    pub retry_delay: Duration,
    /// The longest `Retry-After` waited for; a longer one fails the load. Default: 120 s.
    pub max_retry_after: Duration,
    /// The largest response accepted. Default: 20 MB.
    pub max_body_bytes: usize,
    /// More pages than this is taken for an endless pagination. Default: 1,000.
    pub max_pages: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            total_timeout: Duration::from_secs(600),
            attempts: 4,
            retry_delay: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(120),
            max_body_bytes: 20 * 1024 * 1024,
            max_pages: 1000,
        }
    }
}

/// What an API load did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ApiReport {
    /// The warehouse table written.
    pub table: String,
    /// Responses read, one per page.
    pub pages: u32,
    /// Rows written, after de-duplication by key.
    pub rows: u64,
    /// How long the load took, every page, retry and wait included.
    pub duration_ms: u64,
}

impl std::fmt::Display for ApiReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let duration = crate::date::format_duration(Duration::from_millis(self.duration_ms));
        write!(
            f,
            "{}: {} rows from {} pages in {duration}",
            self.table, self.rows, self.pages
        )
    }
}

/// An API load being set up; see [`Ctx::load_api`].
#[must_use = "a load does nothing until `.run().await`"]
pub struct ApiLoad<'c, T> {
    ctx: &'c Ctx,
    url: String,
    rows_at: String,
    pagination: Pagination,
    headers: Vec<(String, String)>,
    table: Option<(String, Vec<String>)>,
    target_db: String,
    limits: Limits,
    row: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for ApiLoad<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiLoad")
            .field("url", &crate::secrets::redact_query(&self.url))
            .field("rows_at", &self.rows_at)
            .field("pagination", &self.pagination)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    /// Fetches rows of type `T` from a JSON API with GET requests (safe to retry).
    pub fn load_api<T>(&self, url: &str) -> ApiLoad<'_, T> {
        ApiLoad {
            ctx: self,
            url: url.to_string(),
            rows_at: String::new(),
            pagination: Pagination::None,
            headers: Vec::new(),
            table: None,
            target_db: "warehouse".into(),
            limits: Limits::default(),
            row: PhantomData,
        }
    }
}

impl<T: DeserializeOwned + Serialize> ApiLoad<'_, T> {
    /// Where the array of rows is in each response, as a JSON pointer (`/data`). Default: the
    /// response itself.
    pub fn rows_at(mut self, pointer: &str) -> Self {
        self.rows_at = pointer.into();
        self
    }

    /// Cursor pagination: the next cursor is at `next_at` (a JSON pointer) and is sent as the
    /// query parameter `param`; a missing, null or empty cursor ends the pages.
    pub fn cursor(mut self, param: &str, next_at: &str) -> Self {
        self.pagination = Pagination::Cursor {
            param: param.into(),
            next_at: next_at.into(),
        };
        self
    }

    /// Page-number pagination from 1, sent as the query parameter `param`, until an empty page.
    pub fn pages(mut self, param: &str) -> Self {
        self.pagination = Pagination::Page {
            param: param.into(),
            first: 1,
        };
        self
    }

    /// A request header (an API key, say). Its value never shows in a message, even when the
    /// service echoes it back, and it is never sent to another origin (a redirect there is
    /// refused).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        const PLAIN: &[&str] = &["accept", "accept-language", "content-type", "user-agent"];
        if !PLAIN.contains(&name.to_ascii_lowercase().as_str()) {
            crate::secrets::register(value);
        }
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The warehouse table to write and the key that de-duplicates rows (its primary key).
    pub fn into_table(mut self, table: &str, key: &[&str]) -> Self {
        self.table = Some((table.into(), key.iter().map(|k| k.to_string()).collect()));
        self
    }

    /// The configured database to write to. Default: `warehouse`.
    pub fn into_db(mut self, name: &str) -> Self {
        self.target_db = name.into();
        self
    }

    /// All limits at once; see [`Limits`] for each and its default.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Fetches every page, then writes all rows in one transaction.
    pub async fn run(self) -> anyhow::Result<ApiReport> {
        let started = Instant::now();
        let Some((table, key)) = self.table.clone() else {
            bail!("an API load needs `.into_table(name, key)`");
        };
        crate::load::check_identifier(&table).with_context(|| format!("table {table:?}"))?;
        if key.is_empty() {
            bail!(
                "an API load needs a key to de-duplicate rows: `.into_table({table:?}, &[\"id\"])`"
            );
        }
        for column in &key {
            crate::load::check_identifier(column)
                .with_context(|| format!("key column {column:?}"))?;
        }
        let shown_url = crate::secrets::redact_query(&self.url);
        let fetching = fetch::fetch_all::<T>(
            &self.url,
            &self.rows_at,
            &self.pagination,
            &self.headers,
            &self.limits,
        );
        let fetched = match tokio::time::timeout(self.limits.total_timeout, fetching).await {
            Ok(fetched) => fetched,
            Err(_) => Err(anyhow::anyhow!(
                "the load took longer than its total limit of {} (Limits::total_timeout)",
                crate::date::format_duration(self.limits.total_timeout)
            )),
        }
        .with_context(|| format!("loading {shown_url} into `{table}` (nothing was written)"))?;
        let db = self.ctx.db(&self.target_db).await?;
        db.check_load(&[&table])?;
        let rows = write::upsert(&db, &table, &key, fetched.rows)
            .await
            .with_context(|| format!("writing the rows of {shown_url} into `{table}`"))?;
        let report = ApiReport {
            table,
            pages: fetched.pages,
            rows,
            duration_ms: started.elapsed().as_millis() as u64,
        };
        self.ctx.detail(report.to_string());
        tracing::info!("{report}");
        Ok(report)
    }
}
