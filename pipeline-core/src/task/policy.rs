//! How a task is run and what its failure means: retries, their delay, a timeout, and whether
//! a failure fails the run.

use std::time::Duration;

/// How long to wait before the first retry when nothing else is said; doubles on each retry.
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(10);

/// How a task is run and what its failure means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Attempts after the first one. Default: 0.
    pub retries: u32,
    /// Delay before the first retry. Default: [`DEFAULT_RETRY_DELAY`].
    pub retry_delay: Duration,
    /// Limit of one attempt. Default: none.
    pub timeout: Option<Duration>,
    /// Whether a failure fails the run. Default: true.
    pub critical: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            retries: 0,
            retry_delay: DEFAULT_RETRY_DELAY,
            timeout: None,
            critical: true,
        }
    }
}
