//! The executor: runs the selected part of a [`Dag`] for one partition. A task starts as soon
//! as its own dependencies are done (no layer barriers), at most `workers` at a time; complete
//! tasks are skipped; every attempt is recorded; Ctrl-C cancels what runs and records it.

mod backoff;
mod lock;
mod recorder;
mod report;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::config::Config;
use crate::ctx::{Ctx, RunInfo};
use crate::dag::{Action, Dag, DagError, Policy, TaskId};
use crate::date::{Date, now_millis};
use crate::db::{Databases, Target};
use crate::state::{AttemptRecord, MarkerRecord, Namespace, NewRun, PartitionKey, StateStore};
use crate::status::{RunStatus, TaskStatus};
use crate::task::TaskFuture;

pub use backoff::{MAX_RETRY_DELAY, ceiling as retry_delay_ceiling};
pub use lock::{LockHeld, hostname};
pub use recorder::Recorder;
pub use report::{RunReport, TaskReport};

/// The schema that test-mode writes go to in PostgreSQL databases.
pub const TEST_SCHEMA: &str = "pipeline_test";

/// What to run and how.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Task or family names; empty means every task.
    pub targets: Vec<String>,
    pub date: Date,
    /// Unit mode: run exactly the targets; their dependencies count as done.
    pub only: bool,
    /// Test mode: writes go to the test schema; markers are kept apart.
    pub test: bool,
    /// Run the targets (all tasks when none are named) even if complete.
    pub force: bool,
    /// How many tasks may run at once.
    pub workers: usize,
    /// Wait for a concurrent run of the same partition instead of refusing.
    pub wait: bool,
}

impl RunOptions {
    pub fn new(date: Date) -> Self {
        RunOptions {
            targets: Vec::new(),
            date,
            only: false,
            test: false,
            force: false,
            workers: std::thread::available_parallelism().map_or(4, |n| n.get()),
            wait: false,
        }
    }
}

/// Hears about progress (the CLI's progress bar or log lines).
pub trait Observer: Send + Sync {
    fn planned(&self, _tasks: usize, _skipped: usize) {}
    fn started(&self, _task: &str, _attempt: u32) {}
    fn retrying(&self, _task: &str, _attempt: u32, _delay: Duration, _error: &str) {}
    fn finished(&self, _task: &TaskReport) {}
}

/// An observer that ignores everything.
#[derive(Debug)]
pub struct Quiet;
impl Observer for Quiet {}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A bad target name or configuration: the user must change the command or settings.
    #[error(transparent)]
    Usage(anyhow::Error),
    /// Another run of the partition holds the lock.
    #[error(transparent)]
    Locked(anyhow::Error),
    /// The state store or a database failed.
    #[error(transparent)]
    Failed(anyhow::Error),
}

/// Runs pipelines of one DAG against one state store.
#[derive(Debug, Clone)]
pub struct Runner {
    pub dag: Arc<Dag>,
    pub store: Arc<dyn StateStore>,
    pub config: Config,
    pub pipeline: String,
}

/// What the executor needs to know about the selection.
struct Plan {
    /// Tasks that take part, in id order.
    selected: Vec<TaskId>,
    in_plan: Vec<bool>,
    skip: Vec<bool>,
}

impl Runner {
    /// The targets as task ids (a family name selects every member).
    pub fn resolve(&self, targets: &[String]) -> Result<Vec<TaskId>, DagError> {
        let mut ids = Vec::new();
        for name in targets {
            ids.extend(self.dag.select(name)?);
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Runs one partition. `cancel` turning true cancels the run.
    pub async fn run(
        &self,
        options: &RunOptions,
        observer: &dyn Observer,
        cancel: watch::Receiver<bool>,
    ) -> Result<RunReport, RunError> {
        let started = Instant::now();
        let targets = self
            .resolve(&options.targets)
            .map_err(|e| RunError::Usage(e.into()))?;
        let key = PartitionKey {
            pipeline: self.pipeline.clone(),
            partition: options.date.to_string(),
            namespace: if options.test {
                Namespace::Test
            } else {
                Namespace::Production
            },
        };
        let lock = lock::acquire(Arc::clone(&self.store), &key, options.wait)
            .await
            .map_err(|err| {
                if err.is::<LockHeld>() {
                    RunError::Locked(err)
                } else {
                    RunError::Failed(err)
                }
            })?;
        let result = self
            .run_locked(options, &targets, &key, observer, cancel, started)
            .await;
        let released = lock.release().await;
        let report = result?;
        released.map_err(|err| RunError::Failed(err.context("cannot release the run lock")))?;
        Ok(report)
    }

    async fn run_locked(
        &self,
        options: &RunOptions,
        targets: &[TaskId],
        key: &PartitionKey,
        observer: &dyn Observer,
        cancel: watch::Receiver<bool>,
        started: Instant,
    ) -> Result<RunReport, RunError> {
        let failed = RunError::Failed;
        let complete = self.store.completed(key).await.map_err(failed)?;
        let plan = self.plan(options, targets, &complete);
        let run_id = self
            .store
            .start_run(&NewRun {
                key: key.clone(),
                targets: options.targets.clone(),
                unit_mode: options.only,
                host: hostname(),
                pid: i64::from(std::process::id()),
                started_at: now_millis(),
            })
            .await
            .map_err(RunError::Failed)?;
        let target = if options.test {
            Target::Test {
                schema: TEST_SCHEMA.into(),
            }
        } else {
            Target::Production
        };
        let info = Arc::new(RunInfo {
            run_id,
            pipeline: self.pipeline.clone(),
            date: options.date,
            test: options.test,
            unit: options.only,
            databases: Databases::new(self.config.clone(), target),
        });
        let (recorder, writer) = recorder::start(Arc::clone(&self.store), key.clone());
        observer.planned(
            plan.selected.len(),
            plan.skip.iter().filter(|s| **s).count(),
        );
        let tasks = self
            .execute(
                &plan,
                &info,
                &recorder,
                observer,
                cancel,
                options.workers.max(1),
            )
            .await;
        let written = writer.finish(recorder).await;
        info.databases.close().await;

        let cancelled = tasks.iter().any(|t| t.status == TaskStatus::Cancelled);
        let critical_failed = tasks.iter().any(|t| t.critical && !t.status.is_success());
        let status = if cancelled {
            RunStatus::Cancelled
        } else if critical_failed || written.is_err() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let failures = tasks.iter().filter(|t| !t.status.is_success()).count();
        let totals = (tasks.len() as i64, failures as i64);
        self.store
            .finish_run(run_id, status, totals, now_millis())
            .await
            .map_err(RunError::Failed)?;
        written.map_err(RunError::Failed)?;
        Ok(RunReport {
            run_id,
            pipeline: self.pipeline.clone(),
            date: options.date.to_string(),
            test: options.test,
            unit: options.only,
            status,
            duration_ms: started.elapsed().as_millis() as u64,
            tasks,
        })
    }

    fn plan(&self, options: &RunOptions, targets: &[TaskId], complete: &HashSet<String>) -> Plan {
        let dag = &self.dag;
        let all: Vec<TaskId>;
        let roots = if targets.is_empty() {
            all = dag.ids().collect();
            &all
        } else {
            targets
        };
        let selected = if options.only {
            roots.to_vec()
        } else {
            dag.upstream(roots)
        };
        let mut in_plan = vec![false; dag.len()];
        for id in &selected {
            in_plan[id.index()] = true;
        }
        let mut forced = vec![false; dag.len()];
        if options.force {
            for id in roots {
                forced[id.index()] = true;
            }
        }
        let skip = dag
            .tasks()
            .map(|(id, task)| {
                in_plan[id.index()] && !forced[id.index()] && complete.contains(&task.name)
            })
            .collect();
        Plan {
            selected,
            in_plan,
            skip,
        }
    }

    async fn execute(
        &self,
        plan: &Plan,
        info: &Arc<RunInfo>,
        recorder: &Recorder,
        observer: &dyn Observer,
        mut cancel: watch::Receiver<bool>,
        workers: usize,
    ) -> Vec<TaskReport> {
        let dag = &self.dag;
        let dependents = dag.dependents();
        // Dependencies outside the plan (unit mode) count as done.
        let mut waiting: Vec<usize> = dag
            .tasks()
            .map(|(_, t)| {
                t.requires
                    .iter()
                    .chain(&t.after)
                    .filter(|d| plan.in_plan[d.index()])
                    .count()
            })
            .collect();
        let mut blocked_by: Vec<Option<TaskId>> = vec![None; dag.len()];
        let mut reports: Vec<Option<TaskReport>> = vec![None; dag.len()];
        let mut ready: VecDeque<TaskId> = plan
            .selected
            .iter()
            .copied()
            .filter(|id| waiting[id.index()] == 0)
            .collect();
        let mut running: JoinSet<(TaskId, TaskReport)> = JoinSet::new();
        let mut cancelled = *cancel.borrow();
        let mut inline_streak: u64 = 0;

        loop {
            while let Some(id) = ready.pop_front() {
                // Read the signal afresh: a task cancelled by it may finish before this loop
                // has seen the change, and its dependents are cancelled, not upstream_failed.
                cancelled = cancelled || *cancel.borrow();
                let task = dag.task(id);
                let immediate = if cancelled {
                    Some(not_run(
                        task,
                        TaskStatus::Cancelled,
                        "the run was cancelled before it started".into(),
                    ))
                } else if plan.skip[id.index()] {
                    Some(not_run(task, TaskStatus::Skipped, String::new()))
                } else if let Some(dep) = blocked_by[id.index()] {
                    let dep = &dag.task(dep).name;
                    Some(not_run(
                        task,
                        TaskStatus::UpstreamFailed,
                        format!("requires `{dep}`, which did not succeed"),
                    ))
                } else {
                    None
                };
                if let Some(report) = immediate {
                    self.finished(
                        id,
                        report,
                        &dependents,
                        &plan.in_plan,
                        &mut waiting,
                        &mut blocked_by,
                        &mut ready,
                        &mut reports,
                        observer,
                    );
                    continue;
                }
                if running.len() >= workers {
                    ready.push_front(id);
                    break;
                }
                let attempt = AttemptLoop {
                    name: task.name.clone(),
                    policy: task.policy,
                    action: task.action.clone(),
                    info: Arc::clone(info),
                    recorder: recorder.clone(),
                    cancel: cancel.clone(),
                };
                observer.started(&task.name, 1);
                // The first poll happens here: a task that finishes without waiting (a no-op,
                // a cheap check) costs no spawn and no thread hand-off. Anything that waits is
                // spawned and polled again with a real waker, so it runs in parallel.
                let mut future = Box::pin(attempt.run());
                match future
                    .as_mut()
                    .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
                {
                    std::task::Poll::Ready(report) => {
                        self.finished(
                            id,
                            report,
                            &dependents,
                            &plan.in_plan,
                            &mut waiting,
                            &mut blocked_by,
                            &mut ready,
                            &mut reports,
                            observer,
                        );
                    }
                    std::task::Poll::Pending => {
                        running.spawn(async move { (id, future.await) });
                    }
                }
                inline_streak += 1;
                if inline_streak.is_multiple_of(512) {
                    // Long runs of instant tasks must not starve the state writer.
                    tokio::task::yield_now().await;
                }
            }
            if running.is_empty() {
                break;
            }
            tokio::select! {
                joined = running.join_next() => {
                    let Some(joined) = joined else { continue };
                    match joined {
                        Ok((id, report)) => self.finished(id, report, &dependents, &plan.in_plan, &mut waiting, &mut blocked_by, &mut ready, &mut reports, observer),
                        Err(err) => tracing::error!("a task's supervisor stopped unexpectedly: {err}"),
                    }
                }
                changed = cancel.changed(), if !cancelled => {
                    // Running tasks see the same signal and record themselves as cancelled.
                    cancelled = changed.is_err() || *cancel.borrow();
                }
            }
        }
        // Dependencies before dependents: the order a reader follows.
        dag.topological_order()
            .into_iter()
            .filter_map(|id| reports[id.index()].take())
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn finished(
        &self,
        id: TaskId,
        report: TaskReport,
        dependents: &[Vec<TaskId>],
        in_plan: &[bool],
        waiting: &mut [usize],
        blocked_by: &mut [Option<TaskId>],
        ready: &mut VecDeque<TaskId>,
        reports: &mut [Option<TaskReport>],
        observer: &dyn Observer,
    ) {
        observer.finished(&report);
        let success = report.status.is_success();
        reports[id.index()] = Some(report);
        for &dependent in &dependents[id.index()] {
            if !in_plan[dependent.index()] {
                continue;
            }
            if !success
                && blocked_by[dependent.index()].is_none()
                && self.dag.task(dependent).requires.contains(&id)
            {
                blocked_by[dependent.index()] = Some(id);
            }
            waiting[dependent.index()] -= 1;
            if waiting[dependent.index()] == 0 {
                ready.push_back(dependent);
            }
        }
    }
}

fn not_run(task: &crate::dag::TaskNode, status: TaskStatus, error: String) -> TaskReport {
    TaskReport {
        name: task.name.clone(),
        status,
        attempts: 0,
        duration_ms: 0,
        error: (!error.is_empty()).then_some(error),
        critical: task.policy.critical,
    }
}

/// Runs one task: attempts, timeouts, retries with backoff, and cancellation.
struct AttemptLoop {
    name: String,
    policy: Policy,
    action: Action,
    info: Arc<RunInfo>,
    recorder: Recorder,
    cancel: watch::Receiver<bool>,
}

impl AttemptLoop {
    async fn run(mut self) -> TaskReport {
        let started = Instant::now();
        let max_attempts = self.policy.retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (status, error) = self.attempt(attempt).await;
            let retry = matches!(status, TaskStatus::Failed | TaskStatus::TimedOut)
                && attempt < max_attempts;
            if status == TaskStatus::Succeeded {
                self.recorder.marker(MarkerRecord {
                    task: self.name.clone(),
                    run_id: self.info.run_id,
                    completed_at: now_millis(),
                });
            }
            if retry {
                let delay = backoff::delay(self.policy.retry_delay, attempt);
                tracing::warn!(task = %self.name, attempt, "attempt {attempt} {status}; retrying in {delay:?}: {}", error.as_deref().unwrap_or(""));
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = cancelled(&mut self.cancel) => {
                        return self.report(TaskStatus::Cancelled, attempt, started, Some("the run was cancelled while waiting to retry".into()));
                    }
                }
            }
            return self.report(status, attempt, started, error);
        }
    }

    async fn attempt(&mut self, attempt: u32) -> (TaskStatus, Option<String>) {
        let started_at = now_millis();
        let mut record = AttemptRecord {
            run_id: self.info.run_id,
            task: self.name.clone(),
            attempt,
            status: TaskStatus::Running,
            started_at,
            finished_at: None,
            error: None,
        };
        self.recorder.attempt(record.clone());
        let ctx = Ctx::new(Arc::clone(&self.info), self.name.clone(), attempt);
        let span = tracing::info_span!("task", task = %self.name, attempt);
        // A timeout or cancellation drops the attempt's future, which cancels it at its
        // current await point; a panic inside it is caught and counts as a failure.
        let work = catch_panic(self.action.start(&ctx)).instrument(span);
        let timeout = self.policy.timeout.unwrap_or(Duration::MAX);
        let (status, error) = tokio::select! {
            outcome = work => match outcome {
                Ok(Ok(())) => (TaskStatus::Succeeded, None),
                Ok(Err(err)) => (TaskStatus::Failed, Some(format!("{err:#}"))),
                Err(panic) => (TaskStatus::Failed, Some(format!("panicked: {}", panic_message(panic)))),
            },
            () = sleep_or_forever(timeout) => {
                (TaskStatus::TimedOut, Some(format!("timed out after {}", crate::date::format_duration(timeout))))
            }
            () = cancelled(&mut self.cancel) => (TaskStatus::Cancelled, Some("cancelled by a signal".into())),
        };
        record.status = status;
        record.finished_at = Some(now_millis());
        record.error = error.clone();
        self.recorder.attempt(record);
        (status, error)
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
            error,
            critical: self.policy.critical,
        }
    }
}

/// Runs a task's future, turning a panic into an error value instead of unwinding further.
async fn catch_panic(
    mut future: TaskFuture<'_>,
) -> Result<anyhow::Result<()>, Box<dyn std::any::Any + Send>> {
    std::future::poll_fn(move |cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(std::task::Poll::Ready(result)) => std::task::Poll::Ready(Ok(result)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    })
    .await
}

async fn sleep_or_forever(duration: Duration) {
    match tokio::time::Instant::now().checked_add(duration) {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves when the run is cancelled (or whoever could cancel it is gone: never, then).
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    if cancel.wait_for(|c| *c).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}

/// Opens the configured state store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn StateStore>> {
    let store = crate::state::SqlStateStore::open(&config.state)
        .await
        .with_context(|| format!("state store (set by {})", config.state.source))?;
    Ok(Arc::new(store))
}
