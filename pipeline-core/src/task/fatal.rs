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
    /// Whether `error`, or any error it wraps, was marked fatal.
    pub fn is_fatal(error: &anyhow::Error) -> bool {
        error.chain().any(|cause| cause.is::<Fatal>())
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
    fn fatal(self) -> Result<T, anyhow::Error>;
}

impl<T, E: Into<anyhow::Error>> ResultExt<T> for Result<T, E> {
    fn fatal(self) -> Result<T, anyhow::Error> {
        self.map_err(|err| anyhow::Error::new(Fatal(err.into())))
    }
}
