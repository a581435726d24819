//! Distributed runs on PostgreSQL: `daily run --distributed` plans and decides as in one process,
//! but queues each attempt in the state store, where `daily worker` processes on any number of
//! hosts claim and run them. See [`worker`] for the worker's side and `Dispatch` for the run's.

mod dispatch;
pub mod worker;

pub(crate) use dispatch::Dispatch;
pub use worker::WorkerOptions;

use serde::{Deserialize, Serialize};

use crate::date::Partition;
use crate::run::RunOptions;

/// What a detached run (`run --distributed --detach`) was asked to do, as it is queued for the
/// worker that coordinates it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Submitted {
    targets: Vec<String>,
    partition: String,
    only: bool,
    test: bool,
    force: bool,
    fail_fast: bool,
}

/// Attempts a coordinated run keeps queued or running at once: the workers' slots bound what
/// runs.
pub(crate) const IN_FLIGHT: usize = 100_000;

impl Submitted {
    pub fn of(options: &RunOptions) -> Submitted {
        Submitted {
            targets: options.targets.clone(),
            partition: options.partition.to_string(),
            only: options.only,
            test: options.test,
            force: options.force,
            fail_fast: options.fail_fast,
        }
    }

    /// The options of the run its coordinator starts: distributed, and waiting for the lock
    /// of a coordinator that was lost until that lock is broken.
    pub fn options(&self) -> anyhow::Result<RunOptions> {
        let partition: Partition = self.partition.parse().map_err(anyhow::Error::msg)?;
        let mut options = RunOptions::new(partition);
        options.targets = self.targets.clone();
        options.only = self.only;
        options.test = self.test;
        options.force = self.force;
        options.fail_fast = self.fail_fast;
        options.distributed = true;
        options.wait = true;
        options.workers = IN_FLIGHT;
        Ok(options)
    }
}
