//! Run history and completion markers. [`StateStore`] keeps them in SQLite (the embedded
//! default: a file under `./.pipeline/`, WAL) or PostgreSQL (shared by many processes), chosen
//! by the URL's scheme. Each backend has its own versioned migrations
//! (`migrations/<backend>/NNNN_name.sql`), applied when the store is opened.

mod sql;

use std::collections::{HashMap, HashSet};
use std::fmt;

#[cfg(feature = "web")]
pub use sql::RunFilter;
pub use sql::{LeaseLine, STORE_CONNECTIONS, StateStore, StoreLine, WORKER_CONNECTIONS};

use crate::status::{RunStatus, TaskStatus};

/// Where a run's markers live: the pipeline, its partition (a day or an hour) and production or
/// test.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartitionKey {
    /// The pipeline's name (`main!("daily")`).
    pub pipeline: String,
    /// The partition: `YYYY-MM-DD` for a day, `YYYY-MM-DDTHH` for an hour.
    pub partition: String,
    /// Production or test.
    pub namespace: Namespace,
}

/// Test-mode runs keep their own markers and locks: they never make production work look done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// Ordinary runs.
    Production,
    /// Runs with `--test`.
    Test,
}

impl Namespace {
    /// As stored: `prod` or `test`.
    pub fn as_str(self) -> &'static str {
        match self {
            Namespace::Production => "prod",
            Namespace::Test => "test",
        }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who holds (or wants) the run lock of a partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockHolder {
    /// Unique per run attempt of a process.
    pub token: String,
    /// The holder's host name.
    pub host: String,
    /// The holder's process id.
    pub pid: i64,
    /// The process ID space `pid` belongs to (see `run::lock`); empty where unknown.
    pub pid_space: String,
    /// When the holder took the lock, in Unix milliseconds.
    pub started_at: i64,
    /// The last heartbeat, by the state store's clock (set by the store, not the holder).
    pub heartbeat_at: i64,
    /// How long ago that was, by the store's clock, when the lock was read.
    pub heartbeat_age_ms: i64,
}

/// What trying to take a run lock found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockAttempt {
    /// The lock is the caller's now.
    Acquired,
    /// Someone else holds it.
    Held(LockHolder),
}

/// What a run lock's heartbeat found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lock is still the run's.
    Held,
    /// Another process took the lock over.
    Lost,
    /// `daily cancel` asked the run to stop.
    CancelRequested,
}

/// What asking a run to cancel found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelRequest {
    /// Asked: the run stops at its lock's next heartbeat.
    Requested {
        /// Its partition.
        partition: String,
    },
    /// The run had ended, with this status.
    Ended(String),
    /// There is no run of that id.
    NoSuchRun,
}

/// A run about to start.
#[derive(Clone, Debug)]
pub struct NewRun {
    /// The partition it runs.
    pub key: PartitionKey,
    /// The targets as given (empty: all tasks).
    pub targets: Vec<String>,
    /// Started with `--only`.
    pub unit_mode: bool,
    /// The host running it.
    pub host: String,
    /// The process running it.
    pub pid: i64,
    /// Unix milliseconds.
    pub started_at: i64,
}

/// One attempt of one task; written when it starts and again when it ends.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptRecord {
    /// The run it belongs to.
    pub run_id: i64,
    /// The task's name (`load[orders]` for a family member).
    pub task: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// `running` until it ends.
    pub status: TaskStatus,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Unix milliseconds; `None` while it runs.
    pub finished_at: Option<i64>,
    /// Why it failed, redacted.
    pub error: Option<String>,
    /// What the attempt reported besides errors (a load's rows, a check's finding).
    pub note: Option<String>,
    /// What a check measured.
    pub value: Option<f64>,
    /// What the attempt logged (so far, while it runs). Written with the record, never read
    /// back with it: [`StateStore::attempt_log`] reads it.
    pub log: Option<String>,
}

/// A task that completed for the partition, in a given run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerRecord {
    /// The task's name.
    pub task: String,
    /// The run that completed it.
    pub run_id: i64,
    /// Unix milliseconds.
    pub completed_at: i64,
    /// The databases the task wrote to: `name=identity` pairs joined by `;` (see
    /// `Config::identity`); `None` when it wrote through none.
    pub targets: Option<String>,
}

/// What a partition's markers say, as a run reads them before it starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    /// The tasks marked complete.
    pub complete: HashSet<String>,
    /// Of those, the ones that wrote to databases: [`MarkerRecord::targets`] by task.
    pub targets: HashMap<String, String>,
}

/// A run as `daily history` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    /// The run's id.
    pub id: i64,
    /// Its partition (a day or an hour).
    pub partition: String,
    /// `prod` or `test`.
    pub namespace: String,
    /// `running` until it ends.
    pub status: RunStatus,
    /// The targets as given (empty: all tasks).
    pub targets: Vec<String>,
    /// Started with `--only`.
    pub unit_mode: bool,
    /// The host that ran it.
    pub host: String,
    /// The process that ran it.
    pub pid: i64,
    /// Unix milliseconds.
    pub started_at: i64,
    /// Unix milliseconds; `None` while it runs.
    pub finished_at: Option<i64>,
    /// Tasks planned, once it ended.
    pub tasks_total: Option<i64>,
    /// Tasks that did not succeed, once it ended.
    pub tasks_failed: Option<i64>,
}

/// A tick of a schedule, as the scheduler recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TickRecord {
    /// The pipeline's name.
    pub pipeline: String,
    /// The schedule's name.
    pub schedule: String,
    /// When it was due, Unix milliseconds.
    pub tick_at: i64,
    /// The partition it runs.
    pub partition: String,
    /// When it was recorded, by the store's clock.
    pub fired_at: i64,
    /// `fired`, `skipped` (its previous run still going), or its run's outcome.
    pub status: String,
    /// Its run, once started.
    pub run_id: Option<i64>,
    /// Whether its deadline alert is open.
    pub deadline_alerted: bool,
}

/// Notified (payload: nothing) when work is queued: idle workers wake up.
pub const QUEUED_CHANNEL: &str = "pipeline_work_queued";
/// Notified when attempts of a run end on a worker; payload: `run_id:id,id,..`, each id
/// followed by [`PLAIN_SUCCESS`] when its attempt succeeded with nothing more to say (no
/// error, note, value, targets or log): its coordinator has no row to read for it.
pub const FINISHED_CHANNEL: &str = "pipeline_work_finished";
/// Marks an attempt in a [`FINISHED_CHANNEL`] payload as a plain success.
pub const PLAIN_SUCCESS: &str = "+";

/// A live `daily worker` process, as it registers itself and as `daily workers` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerRecord {
    /// Unique per process: host, pid and a random part (two workers on hosts of one name, or
    /// a pid reused after a restart, are never taken for each other).
    pub id: String,
    /// The pipeline it works for.
    pub pipeline: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: i64,
    /// The fingerprint of its task graph: it claims only runs of the same graph.
    pub fingerprint: String,
    /// How many attempts it runs at once.
    pub slots: usize,
    /// When it started, by the store's clock (Unix milliseconds).
    pub started_at: i64,
    /// Its last heartbeat, by the store's clock.
    pub heartbeat_at: i64,
    /// How long ago that was, when it was read.
    pub heartbeat_age_ms: i64,
    /// Stopping: it claims nothing more.
    pub stopping: bool,
    /// The tasks it runs now.
    pub running: Vec<String>,
}

/// An attempt a distributed run queues for the workers.
#[derive(Clone, Debug)]
pub struct NewWork {
    /// The run it belongs to.
    pub run_id: i64,
    /// Its pipeline, partition and namespace.
    pub key: PartitionKey,
    /// Unit mode (`--only`).
    pub unit_mode: bool,
    /// The task's name.
    pub task: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// The fingerprint of the run's graph.
    pub fingerprint: String,
    /// Claimed before attempts of lower priority.
    pub priority: i32,
    /// The task's resource pool and its size, which claims by every worker respect.
    pub pool: Option<(String, usize)>,
}

/// An attempt a worker claimed, with the lease token that its every write names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedWork {
    /// The queue's row.
    pub id: i64,
    /// The run it belongs to.
    pub run_id: i64,
    /// The partition.
    pub partition: String,
    /// Test mode.
    pub test: bool,
    /// Unit mode.
    pub unit_mode: bool,
    /// The task's name.
    pub task: String,
    /// Its attempt number.
    pub attempt: u32,
    /// The lease's token.
    pub token: String,
}

/// What a worker asks of the queue: up to `limit` attempts of `pipeline`'s graph
/// `fingerprint`, each under a lease of `lease_ms` with a token of `token_prefix` and its id.
#[derive(Clone, Copy, Debug)]
pub struct ClaimRequest<'a> {
    /// The pipeline whose attempts to claim.
    pub pipeline: &'a str,
    /// The worker's graph: attempts of runs of another graph are left alone.
    pub fingerprint: &'a str,
    /// The worker's id.
    pub worker: &'a str,
    /// What each claimed attempt's lease token starts with.
    pub token_prefix: &'a str,
    /// Attempts to claim at most (the worker's free slots).
    pub limit: usize,
    /// How long the leases run.
    pub lease_ms: i64,
}

/// What one claim took, and whether it left the queue drained for the worker that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The attempts claimed, the most urgent first.
    pub work: Vec<ClaimedWork>,
    /// Nothing was left that the worker could take: fewer attempts than asked for, and none
    /// waiting for room in a resource pool. Attempts reach the queue only with a notification,
    /// so until one arrives, another claim would come back empty.
    pub drained: bool,
}

/// How an attempt ended on its worker.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkOutcome {
    /// The attempt's outcome.
    pub status: TaskStatus,
    /// Why it failed, redacted.
    pub error: Option<String>,
    /// Its error is one that no retry fixes.
    pub fatal: bool,
    /// What it reported (`Ctx::detail`), one note a line.
    pub note: Option<String>,
    /// What a check measured.
    pub value: Option<f64>,
    /// The databases it wrote to, for its completion marker.
    pub targets: Option<String>,
    /// Its worker stopped before it ended: another worker runs it again.
    pub handed_back: bool,
    /// What it logged.
    pub log: Option<String>,
}

/// An attempt of a distributed run that ended, as its coordinator reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedWork {
    /// The queue's row.
    pub id: i64,
    /// `done`, `lost` (its lease ran out), `handed_back` or `cancelled`.
    pub state: String,
    /// For `done`: the attempt's outcome.
    pub status: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Its error is one that no retry fixes.
    pub fatal: bool,
    /// What it reported.
    pub note: Option<String>,
    /// What a check measured.
    pub value: Option<f64>,
    /// The databases it wrote to.
    pub targets: Option<String>,
    /// The worker that held it last.
    pub worker: Option<String>,
    /// What it logged there.
    pub log: Option<String>,
}

impl FinishedWork {
    /// Attempt `id` succeeded with nothing more to say, as its notification announced.
    pub fn plain_success(id: i64) -> FinishedWork {
        FinishedWork {
            id,
            state: "done".into(),
            status: Some(crate::status::TaskStatus::Succeeded.as_str().into()),
            error: None,
            fatal: false,
            note: None,
            value: None,
            targets: None,
            worker: None,
            log: None,
        }
    }
}
