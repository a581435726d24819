//! Hooks for the project's own tests and benchmarks: the runner, the state store, the scheduler,
//! the web server and the worker, which a pipeline reaches only through its binary's commands.
//! Not part of the API: hidden from the docs, and free to change. The graph's internals, the
//! registries of pools and schedules and the fixed status sets are here too, for tests that
//! look inside what a pipeline author only declares.

pub use crate::config::{AlertConfig, Config, DEFAULT_DIR, NatsConfig, Secret, Setting};
pub use crate::dag::{GraphFormat, LineageFormat, TaskId};
pub use crate::date::now_millis;
pub use crate::distributed::{WorkerOptions, worker};
#[cfg(feature = "events")]
pub use crate::event::dead_letter_table;
#[cfg(feature = "events")]
pub use crate::event::{BusEvent, StreamState, nats::Nats};
pub use crate::load::staging_name;
pub use crate::pool::{Pools, registered as pools};
pub use crate::run::lock::LockHeld;
pub use crate::run::report::Blocked;
pub use crate::run::{
    Quiet, RunOptions, RunReport, Runner, TaskReport, open_store, open_store_with,
};
pub use crate::schedule::clock::Clock;
pub use crate::schedule::scheduler::{BASELINE, Scheduler, SchedulerOptions, due_ticks};
pub use crate::schedule::{Catchup, Overlap, Partitioning, Schedule, registered as schedules};
pub use crate::secrets::redact;
#[cfg(feature = "web")]
pub use crate::serve::{ServeOptions, serve};
pub use crate::state::{
    AttemptRecord, ClaimRequest, ClaimedWork, Completion, Heartbeat, LockAttempt, LockHolder,
    MarkerRecord, Namespace, NewRun, NewWork, PartitionKey, STORE_CONNECTIONS, StateStore,
    TickRecord, WorkOutcome,
};
pub use crate::status::{RunStatus, TaskStatus};
pub use crate::task::TaskFuture;
