//! Retryable or fatal: every task error is retryable (the task has `retries` left, it runs
//! again) unless it is marked fatal, which ends the task at once. A bad credential or a
//! malformed config will not fix itself; a timeout or a dropped connection may.
//!
//! ```
//! use pipeline_core::prelude::*;
//!
//! fn parse_threshold(text: &str) -> Result<u32> {
//!     let value = text.parse::<u32>().context("threshold is not a number").fatal()?;
//!     Ok(value)
//! }
//! assert!(pipeline_core::Fatal::is_fatal(&parse_threshold("x").unwrap_err()));
//! ```

use std::fmt;

/// Marks an error as fatal: no more retries. Find it with [`Fatal::is_fatal`].
#[derive(Debug)]
pub struct Fatal(anyhow::Error);

impl Fatal {
    /// Whether `error`, or any error it wraps, was marked fatal, or is a database error that
    /// no retry can fix: a statement that is wrong, a missing table or privilege, bad
    /// credentials (PostgreSQL SQLSTATE classes 42, 3D, 3F, 28, 0A; SQLite's SQL errors).
    pub fn is_fatal(error: &anyhow::Error) -> bool {
        error.chain().any(|cause| {
            cause.is::<Fatal>()
                || cause
                    .downcast_ref::<sqlx::Error>()
                    .is_some_and(is_permanent)
        })
    }

    /// `error`, marked fatal.
    pub(crate) fn wrap(error: anyhow::Error) -> anyhow::Error {
        anyhow::Error::new(Fatal(error))
    }
}

/// Whether a database error says the statement or connection is wrong, not that the server had
/// trouble: an unknown database, schema, table or column, a syntax error, a missing privilege,
/// bad credentials. Retrying those only delays the page; a typo must cost seconds, not minutes.
pub(crate) fn is_permanent(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        // PostgreSQL's SQLSTATE classes: 42 syntax or access rule (undefined table or column,
        // insufficient privilege), 3D unknown database, 3F unknown schema, 28 authorization,
        // 0A feature not supported.
        // Except "already exists" (42P04, 42P06, 42P07, 42710): concurrent `CREATE .. IF NOT
        // EXISTS` statements race into it, and the next try finds the object there.
        Some(_) => {
            ["42", "3D", "3F", "28", "0A"]
                .iter()
                .any(|class| code.starts_with(class))
                && !["42P04", "42P06", "42P07", "42710"].contains(&code.as_ref())
        }
        // SQLite's SQLITE_ERROR (1): a statement that cannot run (no such table or column,
        // syntax). Busy, locked, full and I/O errors have other codes and may pass.
        None => db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() && code == "1",
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for Fatal {}

/// `.fatal()` on a `Result`: its error ends the task without retrying.
pub trait ResultExt<T> {
    /// Marks the error as one no retry can fix.
    fn fatal(self) -> Result<T, anyhow::Error>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn fatal(self) -> Result<T, anyhow::Error> {
        self.map_err(|err| anyhow::Error::new(Fatal(err.into())))
    }
}

/// A task that cannot run here because a service it needs is not configured (no bus URL, no
/// API key): reported as `not_configured`, with how to configure it, instead of as a failure.
/// Not retried and never alerted; a critical task that is not configured still fails its
/// run, and what requires it does not run.
#[derive(Debug)]
pub struct NotConfigured(String);

impl NotConfigured {
    /// The error: `how` says what is missing and how to configure it.
    pub fn error(how: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(NotConfigured(how.into()))
    }

    /// Whether `error`, or any error it wraps, says a service is not configured.
    pub fn is(error: &anyhow::Error) -> bool {
        error.chain().any(|cause| cause.is::<NotConfigured>())
    }
}

impl fmt::Display for NotConfigured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotConfigured {}
