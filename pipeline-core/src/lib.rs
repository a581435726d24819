//! `pipeline`: data pipelines as annotated async functions, with a dependency graph that the
//! compiler checks.
//!
//! ```no_run
//! use pipeline_core::prelude::*;
//!
//! /// Copies `users` from the read replica.
//! #[task]
//! async fn load_users(ctx: &Ctx) -> Result<()> {
//!     Ok(())
//! }
//!
//! /// The order model: needs the users.
//! #[task(requires = [LoadUsers], retries = 2, timeout = "15m")]
//! async fn make_order_model(ctx: &Ctx) -> Result<()> {
//!     Ok(())
//! }
//!
//! pipeline_core::main!("daily");
//! ```
//!
//! A dependency on a type that is not a task does not compile, nor does a cycle:
//!
//! ```text
//! error[E0080]: evaluation panicked: task dependency cycle: a -> b -> a
//! ```

#![warn(missing_docs)]
// The examples of the docs and the guide are what users copy: they compile without warnings
// (short of what an excerpt cannot avoid: items it shows but does not use, a `main!` inside
// the function a doc test wraps it in).
#![doc(test(attr(
    deny(warnings),
    allow(dead_code, unused_variables, non_local_definitions)
)))]

mod access;
pub(crate) mod alert;
pub mod api;
pub(crate) mod check;
#[doc(hidden)]
pub mod cli;
pub(crate) mod config;
pub(crate) mod ctx;
pub(crate) mod dag;
pub mod date;
pub mod db;
pub(crate) mod distributed;
#[cfg(feature = "events")]
pub mod event;
mod fatal;
mod hash;
mod host;
mod http;
#[cfg(test)]
mod layers;
pub mod load;
mod message;
pub(crate) mod metrics;
mod openlineage;
pub(crate) mod pool;
pub(crate) mod run;
pub(crate) mod schedule;
pub(crate) mod secrets;
#[cfg(feature = "web")]
pub(crate) mod serve;
pub(crate) mod state;
pub(crate) mod status;
mod sync;
pub(crate) mod task;
mod task_log;
#[doc(hidden)]
pub mod testing;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The guide for writing a pipeline (`docs/guide.md`): its snippets are compiled as doc tests
/// (the guide uses event loads).
#[cfg(all(doctest, feature = "events"))]
#[doc = include_str!("../../docs/guide.md")]
mod guide {}

pub use anyhow;
pub use check::Check;
pub use ctx::Ctx;
pub use dag::{Dag, DagBuilder, DagError, Lineage, Policy, TableLineage, TableUse, TaskSpec};
pub use db::{Db, DbPool};
pub use fatal::{Fatal, NotConfigured, ResultExt};
pub use pool::Pool;
/// The SQL toolkit behind [`Db`], for tasks that run their own queries.
pub use sqlx;
pub use task::Task;
/// Structured logs; each task attempt runs in a `task` span.
pub use tracing;

/// Declares a task. See the crate documentation.
///
/// `#[task]` goes on `async fn name(ctx: &Ctx) -> Result<()>` and generates a unit struct named
/// in UpperCamelCase (`load_orders` -> `LoadOrders`) that other tasks name as dependencies.
///
/// | key | meaning | default |
/// |---|---|---|
/// | `requires = [A, B]` | hard dependencies: must succeed first | none |
/// | `after = [C]` | soft dependencies: run first, whatever their outcome | none |
/// | `retries = 3` | attempts after the first | 0 |
/// | `retry_delay = "30s"` | delay before the first retry, doubling after | `"10s"` |
/// | `timeout = "15m"` | limit of one attempt | none |
/// | `critical = false` | a failure alerts but does not fail the run | `true` |
/// | `name = "x"` | the task's name | the fn name |
/// | `for_each = KEYS` | one task per key of a `&'static [&'static str]`: `name[key]` | |
/// | `pool = Replica` | holds a slot of a `pool!` while it runs (waiting holds no worker) | none |
/// | `priority = 10` | takes free worker and pool slots before lower priorities | 0 |
///
/// Durations are a whole number and a unit (`ms`, `s`, `m`, `h`, `d`), combinable: `"1h30m"`.
pub use pipeline_macros::task;

/// Declares a check of another task's outcome: a first-class node that runs after its target.
///
/// `#[check(on = LoadOrders)]` goes on `async fn name(ctx: &Ctx) -> Result<Check>`.
///
/// | key | meaning | default |
/// |---|---|---|
/// | `on = Task` | the task whose outcome is checked (required) | |
/// | `severity = "error"` | a failure pages (`"warn"`: alerts Slack) and fails the run | `"warn"` |
/// | `blocking` | tasks that require the target wait for the check, and do not run if it fails | off |
/// | `timeout = "5m"`, `name = "x"` | as for tasks | |
pub use pipeline_macros::check;

/// Declares a schedule: when which targets run, in which time zone, and by when they must be
/// complete. `daily schedules` lists schedules; `daily schedule` fires them.
///
/// ```no_run
/// use pipeline_core::prelude::*;
///
/// #[task]
/// async fn make_report(_ctx: &Ctx) -> Result<()> {
///     Ok(())
/// }
///
/// schedule! {
///     /// The nightly pipeline: the report, for yesterday in London.
///     nightly, cron = "0 2 * * *", tz = "Europe/London", targets = [MakeReport], deadline = "4h"
/// }
/// # fn main() {}
/// ```
///
/// | key | meaning | default |
/// |---|---|---|
/// | `cron = ".."` | five fields (`min hour day month weekday`), six with seconds first, or `@daily`... | required |
/// | `tz = ".."` | IANA time zone of the cron fields | `"UTC"` |
/// | `targets = [A, B]` | tasks or families to run, with everything they need | required |
/// | `deadline = "4h"` | one critical alert when the targets are not complete this long after a tick | none |
/// | `catchup = ".."` | missed ticks after downtime: `"latest"` (run the newest once), `"all"` (each, oldest first, at most 100), `"none"` | `"latest"` |
/// | `overlap = ".."` | a tick while the last run goes on: `"skip"` it or `"wait"` for the run | `"skip"` |
/// | `partition = hourly` | a tick runs the local hour that just ended (`daily`: the day before) | `daily` |
///
/// A tick runs the partition of the day before its local date, or with `partition = hourly`
/// the local hour that just ended (`2026-11-26T04` for a tick at 05:05; tasks read it with
/// `ctx.partition()`). A malformed cron expression, an unknown time zone, an unknown target, an
/// unknown partition kind or a deadline that is not a duration do not compile.
pub use pipeline_macros::schedule;

/// Declares a resource pool: `pool!(Replica, 2);` lets at most two tasks with
/// `#[task(pool = Replica)]` run at once, across every run in the process (a scheduler's
/// overlapping runs share it). `[pools] replica = 4` in `pipeline.toml` changes the size
/// without a rebuild (the name is the type's in snake case). A task waiting for a slot shows as
/// waiting, holds no worker slot, and the summary shows how long it waited; a freed slot goes
/// to the waiting task of highest `priority`, the longest waiting among equals.
///
/// ```no_run
/// use pipeline_core::prelude::*;
///
/// pool!(
///     /// The production read replica: two loads at a time.
///     pub Replica, 2
/// );
///
/// #[task(pool = Replica, priority = 10)]
/// async fn load_orders(_ctx: &Ctx) -> Result<()> {
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// An unknown pool, or a type that is not one, does not compile.
pub use pipeline_macros::pool;

/// Declares the tables that tasks read and write, one module per database and one type per
/// table, so that the compiler checks what a dependency means: a task that reads a table must
/// require (or run `after`) the task that writes it, a table has one writer, and a `source`
/// database (a replica, a vendor's views) is only read.
///
/// ```no_run
/// use pipeline_core::prelude::*;
///
/// tables! {
///     /// The production read replica.
///     pub source replica { orders }
///     pub warehouse { orders, order_model }
/// }
///
/// #[task(reads = [replica::orders], writes = [warehouse::orders])]
/// async fn load_orders(_ctx: &Ctx) -> Result<()> {
///     Ok(())
/// }
///
/// #[task(requires = [LoadOrders], reads = [warehouse::orders], writes = [warehouse::order_model])]
/// async fn make_order_model(_ctx: &Ctx) -> Result<()> {
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// Without `requires = [LoadOrders]`, `make_order_model` does not compile: the error names the
/// table, its writer and the fix. A second task writing `warehouse::orders`, a write to
/// `replica::orders`, or a read of a table that no task writes and that is no source do not
/// compile either. Names are `database.table`, the database as `pipeline.toml` names it.
pub use pipeline_macros::tables;

/// The result type of tasks (`anyhow::Result`).
pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// What task code usually needs: `use pipeline_core::prelude::*;`.
pub mod prelude {
    pub use crate::{Check, Ctx, Result, ResultExt as _, Task};
    pub use anyhow::{Context as _, anyhow, bail, ensure};
    pub use pipeline_macros::{check, pool, schedule, tables, task};
    pub use std::time::Duration;
}

/// The `main` of a pipeline binary: `pipeline_core::main!("daily");`. The name keys the run
/// history and locks in the state store; without it, the binary's name is used.
///
/// `pipeline_core::main!("daily", tasks = [shop_tasks]);` links the crates that hold the tasks,
/// and refuses to start if one of them registers none.
///
/// `pipeline_core::main!("daily", graph = build_graph);` runs a graph built from data at
/// start-up instead of the `#[task]`s: `fn build_graph() -> anyhow::Result<Dag>`, made with
/// [`Dag::builder`] and [`TaskSpec`]s (families, checks and policies included).
#[macro_export]
macro_rules! main {
    () => {
        $crate::main!(::core::env!("CARGO_BIN_NAME"));
    };
    ($pipeline:expr) => {
        fn main() -> ::std::process::ExitCode {
            $crate::cli::main(
                $pipeline,
                ::core::env!("CARGO_PKG_VERSION"),
                $crate::cli::Graph::Registry,
            )
        }
    };
    ($pipeline:expr, tasks = [$($krate:ident),+ $(,)?]) => {
        $(use $krate as _;)+
        fn main() -> ::std::process::ExitCode {
            $crate::cli::main(
                $pipeline,
                ::core::env!("CARGO_PKG_VERSION"),
                $crate::cli::Graph::Crates(&[$(::core::stringify!($krate)),+]),
            )
        }
    };
    ($pipeline:expr, graph = $graph:path) => {
        fn main() -> ::std::process::ExitCode {
            $crate::cli::main(
                $pipeline,
                ::core::env!("CARGO_PKG_VERSION"),
                $crate::cli::Graph::Built($graph),
            )
        }
    };
}
