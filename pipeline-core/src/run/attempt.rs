//! One task in one run: its attempts, each under the task's timeout, retried with backoff
//! while attempts remain and the error is not fatal; cancelled by the run's signal.
//!
//! This loop is control plane: it runs beside the attempt (see [`super::worker`]), so its
//! timeout and the signal fire on time whatever the task's code does. An attempt holds a
//! worker slot, and its pool's slot if it has a pool, while it runs, and gives both back while
//! it waits to retry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::dispatch::Dispatch;
use super::recorder::Recorder;
use super::report::TaskReport;
use super::worker::{self, Running, WorkResult};
use crate::ctx::{Ctx, RunInfo};
use crate::dag::{Action, Policy};
use crate::date::{format_duration, now_millis};
use crate::fatal::{Fatal, NotConfigured};
use crate::pool::{Slot, Slots};
use crate::state::AttemptRecord;
use crate::status::TaskStatus;
use crate::task::backoff;

/// How long a cancelled attempt may take to reach an await and stop before the run goes on
/// without it (the process then ends it when it exits).
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long an attempt stopped at its timeout may take to drop before it counts as stuck in
/// blocking code: an attempt at an await drops at once.
const SETTLE: Duration = Duration::from_millis(200);
/// How often the watchdog looks at a running attempt.
const WATCHDOG_EVERY: Duration = Duration::from_secs(1);
/// The watchdog's first look, which records the attempt as running: the state writer's batch
/// window (an attempt that ends sooner is written once, ended).
const FIRST_LOOK: Duration = Duration::from_millis(5);
/// How long an attempt on a worker is out before it is recorded as running: one that ends
/// sooner (most short tasks: a claim, a run and an outcome are a few round trips) is written
/// once, ended, instead of twice.
const REMOTE_RUNNING_AFTER: Duration = Duration::from_millis(250);
/// An attempt that holds its thread this long without reaching an await is named in the log.
const BLOCKING_WARNING_AFTER: Duration = Duration::from_secs(60);

pub(super) struct AttemptLoop {
    pub name: String,
    pub policy: Policy,
    pub action: Action,
    pub info: Arc<RunInfo>,
    pub recorder: Recorder,
    pub cancel: watch::Receiver<bool>,
    /// The run's worker slots; `slot` is the one this task holds while an attempt runs.
    pub slots: Arc<Semaphore>,
    pub slot: Option<OwnedSemaphorePermit>,
    /// The task's resource pool, and the slot of it that an attempt holds.
    pub pool: Option<Arc<Slots>>,
    pub pool_slot: Option<Slot>,
    /// Its claim on free slots.
    pub priority: i32,
    /// Time spent waiting for a pool slot so far.
    pub waited: Duration,
    /// In a distributed run: the queue its attempts go to, to run on a worker.
    pub dispatch: Option<Arc<Dispatch>>,
    /// The databases the last remote attempt wrote to, for its marker.
    pub remote_targets: Option<String>,
    /// Notes the attempts left (`Ctx::detail`), for the report.
    pub notes: Vec<String>,
    /// What the last check attempt measured.
    pub value: Option<f64>,
}

/// How one attempt ended.
pub(crate) struct Outcome {
    pub status: TaskStatus,
    pub error: Option<String>,
    pub fatal: bool,
}

impl Outcome {
    pub(crate) fn cancelled(error: &str) -> Self {
        Outcome {
            status: TaskStatus::Cancelled,
            error: Some(error.into()),
            fatal: false,
        }
    }

    /// The outcome of an attempt that test mode caught touching a table its task did not
    /// declare (`refused` says which): failed for good, whatever the task's code made of
    /// the refusal (it may have ignored the error, or retried). Only a signal's stop stands.
    fn refused(self, refused: String) -> Self {
        if self.status == TaskStatus::Cancelled {
            return self;
        }
        let error = match self.error {
            Some(error) if self.status == TaskStatus::Failed && error.contains(&refused) => error,
            _ => refused,
        };
        Outcome {
            status: TaskStatus::Failed,
            error: Some(error),
            fatal: true,
        }
    }
}

impl AttemptLoop {
    /// Runs the attempts; the task's report, and the slots it holds, which the executor frees
    /// only once it has taken the report in (so that nothing starts on an outdated view).
    pub async fn run(mut self) -> (TaskReport, (Option<OwnedSemaphorePermit>, Option<Slot>)) {
        let report = self.attempts().await;
        (report, (self.slot.take(), self.pool_slot.take()))
    }

    async fn attempts(&mut self) -> TaskReport {
        let started = Instant::now();
        let max_attempts = self.policy.retries.saturating_add(1);
        // An attempt stopped at its timeout whose code had not reached an await yet: the next
        // attempt waits for it, so that two attempts of one task never run at once.
        let mut unfinished: Option<Running> = None;
        let mut attempt = 0;
        loop {
            attempt += 1;
            if attempt > 1 {
                let mut cancel = self.cancel.clone();
                let ready = async {
                    let ended = match unfinished.take() {
                        Some(previous) => self.wait_for_stuck(previous).await,
                        None => true,
                    };
                    // The pool's slot first: waiting for it holds no worker slot.
                    let waiting = Instant::now();
                    let pool_slot = match &self.pool {
                        Some(pool) => Some(pool.acquire(self.priority).await),
                        None => None,
                    };
                    let waited = waiting.elapsed();
                    let slot = Arc::clone(&self.slots).acquire_owned().await.ok();
                    (ended, slot, pool_slot, waited)
                };
                let (ended, slot, pool_slot, waited) = tokio::select! {
                    ready = ready => ready,
                    () = cancelled(&mut cancel) => {
                        let error = Some("cancelled while waiting to retry".to_string());
                        return self.report(TaskStatus::Cancelled, attempt - 1, started, error);
                    }
                };
                self.slot = slot;
                self.pool_slot = pool_slot;
                self.waited += waited;
                if !ended {
                    let error = format!(
                        "timed out after {}, and its code is still blocking its thread (not at \
                         an await); not retried, as two attempts of a task never run at once",
                        format_duration(self.policy.timeout.unwrap_or_default())
                    );
                    return self.report(TaskStatus::TimedOut, attempt - 1, started, Some(error));
                }
            }
            let (outcome, record, still_running) = match self.dispatch.clone() {
                Some(dispatch) => self.remote_attempt(&dispatch, attempt).await,
                None => self.attempt(attempt).await,
            };
            unfinished = still_running;
            if outcome.status == TaskStatus::Succeeded {
                // The task's work has committed: only now is it complete.
                let targets = match self.dispatch {
                    Some(_) => self.remote_targets.take(),
                    None => self.info.take_written(&self.name),
                };
                self.recorder.completed(record, targets).await;
            } else {
                self.recorder.attempt(record).await;
            }
            let retryable = matches!(outcome.status, TaskStatus::Failed | TaskStatus::TimedOut)
                && !outcome.fatal;
            if retryable && attempt < max_attempts {
                // A task waiting to retry holds no worker slot, nor one of its pool.
                self.slot = None;
                self.pool_slot = None;
                let delay = backoff::delay(self.policy.retry_delay, attempt);
                tracing::warn!(
                    task = %self.name,
                    "attempt {attempt} of {max_attempts} {}; retrying in {}: {}",
                    outcome.status,
                    format_duration(delay),
                    outcome.error.as_deref().unwrap_or("")
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = cancelled(&mut self.cancel) => {
                        let error = Some("cancelled while waiting to retry".to_string());
                        return self.report(TaskStatus::Cancelled, attempt, started, error);
                    }
                }
            }
            if unfinished.is_some() {
                tracing::warn!(
                    task = %self.name,
                    "the last attempt {} but its code is still busy on its thread (a synchronous \
                     call or CPU-bound work that has not reached an await); the run goes on \
                     without it, and it stops at its next await or when the process exits",
                    outcome.status
                );
            }
            let error = match (outcome.fatal, outcome.error) {
                (true, Some(error)) if max_attempts > attempt => {
                    Some(format!("{error} (fatal: not retried)"))
                }
                (_, error) => error,
            };
            return self.report(outcome.status, attempt, started, error);
        }
    }

    /// The record of attempt `attempt`, starting now.
    fn running_record(&self, attempt: u32) -> AttemptRecord {
        AttemptRecord {
            run_id: self.info.run_id,
            task: self.name.clone(),
            attempt,
            status: TaskStatus::Running,
            started_at: now_millis(),
            finished_at: None,
            error: None,
            note: None,
            value: None,
            log: None,
        }
    }

    /// Runs one attempt: its outcome, the record of it (written by the caller), and the attempt
    /// itself when it was stopped at its timeout but has not reached an await yet.
    async fn attempt(&mut self, attempt: u32) -> (Outcome, AttemptRecord, Option<Running>) {
        let mut record = self.running_record(attempt);
        let ctx = Ctx::new(Arc::clone(&self.info), self.name.clone(), attempt);
        // The attempt is recorded as running at the watchdog's first look, a state writer's
        // batch window after it started: one that ended sooner would have had only its final
        // state written anyway (one row per attempt and batch).
        let live_log = LiveLog {
            recorder: self.recorder.clone(),
            record: record.clone(),
            recorded: false,
            written: None,
        };
        let Ran {
            outcome,
            timed_out_at,
            running,
        } = run_attempt(
            self.action.clone(),
            ctx,
            self.policy.timeout,
            &mut self.cancel,
            Some(live_log),
        )
        .await;
        record.status = outcome.status;
        record.log = crate::task_log::take(self.info.run_id, &self.name, attempt);
        // A timeout ends the attempt at its limit, however long its code takes to stop.
        record.finished_at = Some(if timed_out_at > 0 {
            timed_out_at
        } else {
            now_millis()
        });
        record.error = outcome.error.clone();
        let notes = self.info.take_details(&self.name);
        record.note = (!notes.is_empty()).then(|| notes.join("; "));
        record.value = self.info.take_measured(&self.name);
        if record.value.is_some() {
            self.value = record.value;
        }
        self.notes.extend(notes);
        let still_running =
            (outcome.status == TaskStatus::TimedOut && !running.is_finished()).then_some(running);
        (outcome, record, still_running)
    }

    /// Runs one attempt on a worker: queues it and waits for its outcome. A worker that
    /// stopped before the attempt ended handed it back: it is queued again, as the same
    /// attempt. A lost worker (its lease ran out) is a failed attempt, under the retry policy,
    /// so a task that takes down every worker it lands on stops after its retries.
    async fn remote_attempt(
        &mut self,
        dispatch: &Dispatch,
        attempt: u32,
    ) -> (Outcome, AttemptRecord, Option<Running>) {
        let mut record = self.running_record(attempt);
        let running_at = tokio::time::Instant::now() + REMOTE_RUNNING_AFTER;
        let mut recorded = false;
        let outcome = loop {
            let pool = self
                .pool
                .as_ref()
                .map(|pool| (pool.name().to_string(), pool.size()));
            let (id, finished) = match dispatch
                .queue(&self.name, attempt, self.priority, pool)
                .await
            {
                Ok(queued) => queued,
                Err(err) => {
                    break Outcome {
                        status: TaskStatus::Failed,
                        error: Some(format!("cannot queue the attempt for a worker: {err:#}")),
                        fatal: false,
                    };
                }
            };
            tokio::pin!(finished);
            let finished = loop {
                tokio::select! {
                    finished = &mut finished => break Some(finished),
                    () = cancelled(&mut self.cancel) => break None,
                    () = tokio::time::sleep_until(running_at), if !recorded => {
                        recorded = true;
                        self.recorder.attempt(record.clone()).await;
                    }
                }
            };
            let Some(finished) = finished else {
                dispatch.cancel(id).await;
                break Outcome::cancelled("cancelled by a signal");
            };
            let Ok(work) = finished else {
                break Outcome::cancelled("the run stopped waiting for its workers");
            };
            let worker = work.worker.clone().unwrap_or_else(|| "?".into());
            match work.state.as_str() {
                "handed_back" => {
                    tracing::info!(
                        task = %self.name,
                        "worker {worker} stopped before attempt {attempt} ended; queued again"
                    );
                    continue;
                }
                "lost" => {
                    break Outcome {
                        status: TaskStatus::Failed,
                        error: Some(format!(
                            "worker lost: {worker} stopped renewing its lease (killed, frozen \
                             or cut off from the state store)"
                        )),
                        fatal: false,
                    };
                }
                "cancelled" => break Outcome::cancelled("cancelled"),
                _ => {}
            }
            let status = work
                .status
                .as_deref()
                .and_then(|status| status.parse().ok())
                .unwrap_or(TaskStatus::Failed);
            let notes: Vec<String> = work
                .note
                .as_deref()
                .map(|note| note.lines().map(str::to_string).collect())
                .unwrap_or_default();
            record.note = (!notes.is_empty()).then(|| notes.join("; "));
            self.notes.extend(notes);
            record.value = work.value;
            if work.value.is_some() {
                self.value = work.value;
            }
            self.remote_targets = work.targets;
            record.log = work.log;
            break Outcome {
                status,
                error: work.error,
                fatal: work.fatal,
            };
        };
        record.status = outcome.status;
        record.finished_at = Some(now_millis());
        record.error = outcome.error.clone();
        (outcome, record, None)
    }

    /// Waits until an attempt that timed out while busy has really ended, for as long again as
    /// its timeout (at least [`STOP_GRACE`]): a retry never runs beside it, and a task whose
    /// code never comes back does not hold the run forever. Whether it ended.
    async fn wait_for_stuck(&self, mut previous: Running) -> bool {
        let patience = self.policy.timeout.unwrap_or_default().max(STOP_GRACE);
        tracing::warn!(
            task = %self.name,
            "the retry waits up to {} for the previous attempt, which timed out but has not \
             reached an await for {} (a synchronous call or CPU-bound work)",
            format_duration(patience),
            format_duration(previous.busy_for())
        );
        let since = Instant::now();
        let ended = previous.stop_within(patience).await;
        if ended {
            tracing::info!(
                task = %self.name,
                "the previous attempt ended after {}; retrying",
                format_duration(since.elapsed())
            );
        }
        ended
    }

    fn report(
        &self,
        status: TaskStatus,
        attempts: u32,
        started: Instant,
        error: Option<String>,
    ) -> TaskReport {
        TaskReport {
            name: self.name.clone(),
            status,
            attempts,
            duration_ms: started.elapsed().as_millis() as u64,
            waited_ms: self.waited.as_millis() as u64,
            error,
            critical: self.policy.critical,
            cause: None,
            details: self.notes.clone(),
            value: self.value,
        }
    }
}

/// One attempt that ran here, on a thread of its own.
pub(crate) struct Ran {
    pub outcome: Outcome,
    /// When it timed out (Unix milliseconds), or 0.
    pub timed_out_at: i64,
    /// The attempt itself: still busy on its thread if it timed out inside blocking code.
    pub running: Running,
}

/// A running attempt's record: written at the watchdog's first look (a crash then leaves a
/// trace of what was running), and again with its log so far at each look after (`daily logs
/// --follow`). It is written from the attempt's own control loop, so the final record, sent
/// after the loop, always comes after it.
pub(crate) struct LiveLog {
    recorder: Recorder,
    record: AttemptRecord,
    /// Whether the running record was sent.
    recorded: bool,
    written: Option<String>,
}

impl LiveLog {
    async fn write(&mut self) {
        let record = &self.record;
        let log = crate::task_log::snapshot(record.run_id, &record.task, record.attempt);
        if !self.recorded || (log.is_some() && log != self.written) {
            self.recorded = true;
            let mut update = record.clone();
            update.log.clone_from(&log);
            self.recorder.attempt(update).await;
            self.written = log;
        }
    }
}

/// Runs one attempt of `action` under `timeout`, stopped by `cancel`, with the watchdog that
/// names code holding its thread (and writes its log so far to `live_log`): what the
/// executor's attempts and a worker's share.
pub(crate) async fn run_attempt(
    action: Action,
    ctx: Ctx,
    timeout: Option<Duration>,
    cancel: &mut watch::Receiver<bool>,
    mut live_log: Option<LiveLog>,
) -> Ran {
    let name = ctx.task().to_string();
    let attempt = ctx.attempt();
    let declared = ctx.declared();
    let started = std::time::Instant::now();
    let mut running = worker::start(action, ctx);
    let deadline = timeout.and_then(|limit| tokio::time::Instant::now().checked_add(limit));
    let mut warned = false;
    let mut timed_out_at = 0;
    let mut look_after = match live_log {
        Some(_) => FIRST_LOOK,
        None => WATCHDOG_EVERY,
    };
    let outcome = loop {
        tokio::select! {
            biased;
            result = running.result() => break outcome_of(result),
            () = cancelled(cancel) => {
                if !running.stop_within(STOP_GRACE).await {
                    tracing::warn!(
                        task = %name,
                        "did not stop within {} of the signal: its code is busy on its \
                         thread (a synchronous call or CPU-bound work); it is recorded as \
                         cancelled and ends with the process",
                        format_duration(STOP_GRACE)
                    );
                }
                break Outcome::cancelled("cancelled by a signal");
            }
            () = sleep_until(deadline) => {
                timed_out_at = now_millis();
                running.stop_within(SETTLE).await;
                let limit = timeout.unwrap_or_default();
                break Outcome {
                    status: TaskStatus::TimedOut,
                    error: Some(format!("timed out after {}", format_duration(limit))),
                    fatal: false,
                };
            }
            () = tokio::time::sleep(look_after) => {
                look_after = WATCHDOG_EVERY;
                if let Some(live_log) = &mut live_log {
                    live_log.write().await;
                }
                let busy = running.busy_for();
                if !warned && busy >= BLOCKING_WARNING_AFTER {
                    warned = true;
                    tracing::warn!(
                        task = %name,
                        "attempt {attempt} has held its thread for {} without reaching an \
                         await (a synchronous call or CPU-bound work); a timeout or Ctrl-C \
                         stops it only at an await",
                        format_duration(busy)
                    );
                }
            }
        }
    };
    let outcome = match declared.and_then(|declared| declared.take_refused()) {
        Some(refused) => outcome.refused(refused),
        None => outcome,
    };
    crate::metrics::attempt(outcome.status.as_str(), started.elapsed());
    Ran {
        outcome,
        timed_out_at,
        running,
    }
}

fn outcome_of(result: Option<WorkResult>) -> Outcome {
    match result {
        Some(Ok(Ok(()))) => Outcome {
            status: TaskStatus::Succeeded,
            error: None,
            fatal: false,
        },
        Some(Ok(Err(err))) if NotConfigured::is(&err) => Outcome {
            status: TaskStatus::NotConfigured,
            fatal: false,
            error: Some(crate::message::error_text(&err)),
        },
        Some(Ok(Err(err))) => Outcome {
            status: TaskStatus::Failed,
            fatal: Fatal::is_fatal(&err),
            error: Some(crate::message::error_text(&err)),
        },
        Some(Err(panic)) => Outcome {
            status: TaskStatus::Failed,
            error: Some(format!("panicked: {panic}")),
            fatal: false,
        },
        // Only a stop request ends the work without a result, and then a branch that asked
        // for it has already decided the outcome.
        None => Outcome::cancelled("stopped"),
    }
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the run is cancelled (or whoever could cancel it is gone: never, then).
pub(super) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}
