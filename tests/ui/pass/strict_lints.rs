//! `#[task]` writes its code at the user's tokens (so that an edit above a task does not make
//! rustc check it again), where lints read it as the user's own: a crate with strict lints
//! compiles it (and a schedule's targets, which are the user's tokens too) without a word, and
//! a crate that forbids unsafe code can declare tasks.
#![forbid(unsafe_code)]
#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unused_qualifications,
    unused_results,
    single_use_lifetimes,
    elided_lifetimes_in_paths,
    trivial_casts,
    trivial_numeric_casts,
    unused_lifetimes
)]

use pipeline_core::prelude::*;
// Names a user may import, which the generated code must not then qualify needlessly.
use std::fmt::{Debug, Formatter};
use std::time::Duration as Delay;

/// Tables to load.
pub const TABLES: &[&str] = &["users", "orders"];

pool!(
    /// A pool the tasks below share.
    pub Replica,
    2
);

tables! {
    /// What the loads read.
    pub source replica { users }
    /// A private database: its tables are the crate's.
    warehouse { users, summary }
}

/// A task with every setting that takes a value.
#[task(
    retries = 2,
    retry_delay = "2m",
    timeout = "1h",
    critical = false,
    pool = Replica,
    priority = -3,
    reads = [replica::users],
    writes = [warehouse::users]
)]
pub async fn load_users(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

/// A family.
#[task(for_each = TABLES, requires = [LoadUsers])]
pub async fn load(_ctx: &Ctx, table: &str) -> Result<()> {
    ensure!(!table.is_empty(), "a table");
    Ok(())
}

/// A private task that nothing requires.
#[task(after = [Load], reads = [warehouse::users], writes = [warehouse::summary])]
async fn tidy_up(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

/// A blocking check.
#[check(on = LoadUsers, blocking)]
async fn users_loaded(_ctx: &Ctx) -> Result<Check> {
    Ok(Check::pass("loaded"))
}

/// Uses the imports above.
pub fn describe(value: &dyn Debug, _formatter: Option<&Formatter<'_>>) -> Delay {
    drop(format!("{value:?}"));
    Delay::ZERO
}

fn main() {}

schedule! {
    /// A schedule of the tasks above.
    nightly, cron = "0 2 * * *", tz = "Europe/London", targets = [Load, TidyUp], deadline = "4h",
}
