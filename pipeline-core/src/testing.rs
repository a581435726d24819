//! Hooks for the project's own tests and benchmarks: the runner, the state store, the scheduler,
//! the web server and the worker, which a pipeline reaches only through its binary's commands.
//! Not part of the API: hidden from the docs, and free to change.

pub use crate::distributed::{WorkerOptions, worker};
pub use crate::run::lock::LockHeld;
pub use crate::run::report::Blocked;
pub use crate::run::{Quiet, RunOptions, RunReport, Runner, TaskReport, open_store};
pub use crate::schedule::clock::Clock;
pub use crate::schedule::scheduler::{BASELINE, Scheduler, SchedulerOptions, due_ticks};
#[cfg(feature = "web")]
pub use crate::serve::{ServeOptions, serve};
pub use crate::state::{
    AttemptRecord, Heartbeat, LockAttempt, LockHolder, MarkerRecord, Namespace, NewRun,
    PartitionKey, StateStore, TickRecord,
};
