//! Scheduling one run: a task becomes ready when its own dependencies in the plan are done, and
//! starts at once if fewer than `workers` tasks run and, for a task in a resource pool, a slot
//! of the pool is free; ready tasks of higher priority start first. A task waiting for its
//! pool holds no worker slot, so other tasks run meanwhile. Outcomes flow to dependents: a
//! failed `requires` makes them `upstream_failed`; an `after` does not. Each final outcome goes
//! to `alerts::decide`, which says whether it alerts.

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use super::alerts::{RunSubject, decide, warning};
use super::attempt::AttemptLoop;
use super::dispatch::Dispatch;
use super::recorder::Recorder;
use super::report::{Blocked, Outcome, TaskReport};
use super::{Observer, Plan};
use crate::alert::{AlertEvent, Alerts, Severity};
use crate::ctx::RunInfo;
use crate::dag::{Dag, Dependents, TaskId, TaskNode};
use crate::openlineage::{RunLineage, TaskEnd, TaskTables};
use crate::pool::{Pools, Queued, Slot};
use crate::status::TaskStatus;

pub(super) struct Execution<'r> {
    pub dag: &'r Dag,
    pub plan: &'r Plan,
    pub info: &'r Arc<RunInfo>,
    pub recorder: &'r Recorder,
    pub observer: &'r dyn Observer,
    pub alerts: &'r mut Alerts,
    /// Tasks of the partition with an alert still open, and its severity.
    pub open_alerts: HashMap<String, Severity>,
    /// Where the run's OpenLineage events go, if anywhere.
    pub lineage: Option<&'r RunLineage>,
    pub workers: usize,
    /// The process's resource pools, which every task's pool is one of.
    pub pools: &'r Pools,
    /// In a distributed run: the queue that attempts go to.
    pub dispatch: Option<Arc<Dispatch>>,
    /// Stop starting tasks after the first critical failure.
    pub fail_fast: bool,
}

/// Per-run scheduling state.
struct Schedule {
    dependents: Dependents,
    /// Dependencies in the plan not finished yet.
    waiting: Vec<u32>,
    /// The first failed `requires` dependency of a task.
    blocked_by: Vec<Option<TaskId>>,
    /// The task at the root of a failure: itself when it failed, else its blocker's cause.
    cause: Vec<Option<TaskId>>,
    outcomes: Vec<Option<Outcome>>,
    ready: BinaryHeap<Ready>,
    /// Tells ready tasks of equal priority apart: the first ready goes first.
    readied: u64,
    /// When each task started waiting for its pool's slot, while it waits.
    /// (Few tasks wait for a pool: these are maps, not a slot per task.)
    waiting_since: HashMap<TaskId, Instant>,
    /// Time each task waited for its pool's slot before it started.
    waited: HashMap<TaskId, Duration>,
    /// Set by `--fail-fast`: the critical task whose failure stops new starts.
    stopped_by: Option<TaskId>,
    /// Critical tasks kept from running by a non-critical failure.
    blocked: Vec<Blocked>,
    /// Whether a task's outcome fails the run.
    run_failed: bool,
}

/// A task ready to start (highest priority first, then the first ready), with the slot of
/// its pool that it won while it waited.
type Ready = Queued<(TaskId, Option<Slot>)>;

impl Schedule {
    fn make_ready(&mut self, dag: &Dag, id: TaskId, pool_slot: Option<Slot>) {
        self.readied += 1;
        let priority = dag.task(id).priority;
        self.ready
            .push(Queued::new(priority, self.readied, (id, pool_slot)));
    }
}

/// What a run did.
pub(super) struct Executed {
    /// Every task, dependencies before dependents.
    pub order: Vec<TaskId>,
    /// By task id: what the run's tasks did.
    pub outcomes: Vec<Option<Outcome>>,
    pub blocked: Vec<Blocked>,
    /// Whether a task's outcome fails the run (see `fails_run`).
    pub failed: bool,
    /// Whether a signal cancelled the run.
    pub signalled: bool,
}

impl<'r> Execution<'r> {
    /// Runs the plan.
    pub async fn run(mut self, mut cancel: watch::Receiver<bool>) -> Executed {
        let dag = self.dag;
        let in_plan = &self.plan.in_plan;
        // Dependencies outside the plan (unit mode) count as done.
        let waiting: Vec<u32> = dag
            .tasks()
            .map(|(_, t)| {
                t.requires
                    .iter()
                    .chain(&t.after)
                    .filter(|d| in_plan[d.index()])
                    .count() as u32
            })
            .collect();
        let mut schedule = Schedule {
            dependents: dag.dependents(),
            waiting,
            blocked_by: vec![None; dag.len()],
            cause: vec![None; dag.len()],
            outcomes: vec![None; dag.len()],
            ready: BinaryHeap::new(),
            readied: 0,
            waiting_since: HashMap::new(),
            waited: HashMap::new(),
            stopped_by: None,
            blocked: Vec::new(),
            run_failed: false,
        };
        for &id in &self.plan.selected {
            if schedule.waiting[id.index()] == 0 {
                schedule.make_ready(dag, id, None);
            }
        }
        // The attempt loops are polled here, by this one control task: they only wait (task
        // code runs on threads of its own), and a wake-up reaches the scheduler directly.
        let mut running = FuturesUnordered::new();
        let slots = Arc::new(Semaphore::new(self.workers));
        // A slot won while waiting, kept for the next ready task.
        let mut won: Option<OwnedSemaphorePermit> = None;
        // Tasks waiting for a slot of their pool, which another task (of this run or another
        // in the process) holds; each becomes ready again with the slot it won.
        let mut parked = FuturesUnordered::new();
        let mut parked_ids: Vec<TaskId> = Vec::new();
        let mut signalled = *cancel.borrow();
        let mut uncancellable = false;

        loop {
            while let Some(mut ready) = schedule.ready.pop() {
                let id = ready.value.0;
                // Read the signal afresh: a task cancelled by it may finish before this loop
                // has seen the change, and its dependents are cancelled, not upstream_failed.
                signalled = signalled || *cancel.borrow();
                if let Some(report) = self.without_running(id, &schedule, signalled) {
                    self.finished(id, report, &mut schedule);
                    continue;
                }
                let task = dag.task(id);
                let pool = task.pool.as_deref().and_then(|name| self.pools.get(name));
                let mut pool_slot = ready.value.1.take();
                if let (Some(pool), None) = (pool, &pool_slot) {
                    pool_slot = pool.try_acquire();
                    if pool_slot.is_none() {
                        self.observer.waiting(&task.name, pool.name());
                        schedule.waiting_since.insert(id, Instant::now());
                        let (pool, priority) = (Arc::clone(pool), task.priority);
                        parked.push(async move { (id, pool.acquire(priority).await) });
                        parked_ids.push(id);
                        continue;
                    }
                }
                let Some(slot) = won
                    .take()
                    .or_else(|| Arc::clone(&slots).try_acquire_owned().ok())
                else {
                    ready.value.1 = pool_slot;
                    schedule.ready.push(ready);
                    break;
                };
                self.observer.started(&task.name);
                if let Some(lineage) = self.lineage {
                    lineage.task_started(lineage_tables(task));
                }
                let attempts = AttemptLoop {
                    name: task.name.clone(),
                    policy: task.policy,
                    action: task.action.clone(),
                    info: Arc::clone(self.info),
                    recorder: self.recorder.clone(),
                    cancel: cancel.clone(),
                    slots: Arc::clone(&slots),
                    slot: Some(slot),
                    pool: pool.cloned(),
                    pool_slot,
                    priority: task.priority,
                    waited: schedule.waited.get(&id).copied().unwrap_or_default(),
                    dispatch: self.dispatch.clone(),
                    remote_targets: None,
                    notes: Vec::new(),
                    value: None,
                };
                running.push(async move { (id, attempts.run().await) });
            }
            // A slot won for a task that then did not need it goes back: a retry may want it.
            won = None;
            if running.is_empty() && parked.is_empty() {
                break;
            }
            let waiting_for_slot = !schedule.ready.is_empty();
            tokio::select! {
                Some((id, (report, _slots))) = running.next() => {
                    self.finished(id, report, &mut schedule);
                }
                Some((id, pool_slot)) = parked.next() => {
                    parked_ids.retain(|parked| *parked != id);
                    if let Some(since) = schedule.waiting_since.remove(&id) {
                        *schedule.waited.entry(id).or_default() += since.elapsed();
                    }
                    schedule.make_ready(dag, id, Some(pool_slot));
                }
                changed = cancel.changed(), if !signalled && !uncancellable => match changed {
                    // Running tasks see the same signal and record themselves as cancelled.
                    Ok(()) => signalled = *cancel.borrow(),
                    // Whoever could cancel the run is gone: nothing will.
                    Err(_) => uncancellable = true,
                },
                slot = Arc::clone(&slots).acquire_owned(), if waiting_for_slot => won = slot.ok(),
            }
            // Tasks still waiting for their pool will not start now: they give up their places
            // and come back to be recorded as cancelled.
            if (signalled || schedule.stopped_by.is_some()) && !parked_ids.is_empty() {
                parked = FuturesUnordered::new();
                for id in std::mem::take(&mut parked_ids) {
                    schedule.make_ready(dag, id, None);
                }
            }
        }
        // A signal that came as the last task ended still cancels the run.
        signalled = signalled || *cancel.borrow();
        // Dependencies before dependents: the order a reader follows.
        let order = dag.topological_order_with(&schedule.dependents);
        Executed {
            order,
            outcomes: std::mem::take(&mut schedule.outcomes),
            blocked: schedule.blocked,
            failed: schedule.run_failed,
            signalled,
        }
    }

    /// The outcome of a ready task that must not run, if so.
    fn without_running(
        &self,
        id: TaskId,
        schedule: &Schedule,
        signalled: bool,
    ) -> Option<TaskReport> {
        let task = self.dag.task(id);
        let name_of = |id: TaskId| &self.dag.task(id).name;
        if signalled {
            return Some(not_run(
                task,
                TaskStatus::Cancelled,
                "the run was cancelled before it started".into(),
            ));
        }
        if self.plan.skip[id.index()] {
            return Some(not_run(task, TaskStatus::Skipped, String::new()));
        }
        if let Some(dep) = schedule.blocked_by[id.index()] {
            let error = if self.dag.task(dep).check.is_some() {
                format!(
                    "held back by the blocking check `{}`, which did not pass",
                    name_of(dep)
                )
            } else {
                format!("requires `{}`, which did not succeed", name_of(dep))
            };
            let mut report = not_run(task, TaskStatus::UpstreamFailed, error);
            report.cause = schedule.cause[dep.index()].map(|c| name_of(c).clone());
            return Some(report);
        }
        if let Some(stopper) = schedule.stopped_by {
            let error = format!(
                "not started: --fail-fast after `{}` failed",
                name_of(stopper)
            );
            return Some(not_run(task, TaskStatus::Cancelled, error));
        }
        None
    }

    fn finished(&mut self, id: TaskId, report: TaskReport, schedule: &mut Schedule) {
        self.observer.finished(&report);
        if let Some(lineage) = self.lineage {
            let end = TaskEnd {
                status: report.status,
                attempts: report.attempts,
                error: report.error.as_deref(),
            };
            lineage.task_finished(lineage_tables(self.dag.task(id)), end);
        }
        let success = report.status.is_success();
        let final_failure = matches!(report.status, TaskStatus::Failed | TaskStatus::TimedOut);
        schedule.cause[id.index()] = match report.status {
            _ if final_failure => Some(id),
            TaskStatus::UpstreamFailed => {
                schedule.blocked_by[id.index()].and_then(|dep| schedule.cause[dep.index()])
            }
            _ => None,
        };
        let fails_run = self.fails_run(id, &report, schedule);
        schedule.run_failed |= fails_run;
        if self.fail_fast && fails_run && schedule.stopped_by.is_none() {
            schedule.stopped_by = Some(id);
        }
        let blocker = self.non_critical_blocker(id, &report, schedule);
        if let Some(blocker) = blocker {
            schedule.blocked.push(Blocked {
                task: report.name.clone(),
                by: blocker.name.clone(),
            });
        }
        self.alert(&report, blocker);
        schedule.outcomes[id.index()] = Some(Outcome::from(report));
        // By index: making a dependent ready changes the schedule that lists them.
        for at in 0..schedule.dependents.of(id).len() {
            let dependent = schedule.dependents.of(id)[at];
            if !self.plan.in_plan[dependent.index()] {
                continue;
            }
            if !success
                && schedule.blocked_by[dependent.index()].is_none()
                && self.dag.task(dependent).requires.contains(&id)
            {
                schedule.blocked_by[dependent.index()] = Some(id);
            }
            schedule.waiting[dependent.index()] -= 1;
            if schedule.waiting[dependent.index()] == 0 {
                schedule.make_ready(self.dag, dependent, None);
            }
        }
    }

    /// For a critical task that could not run: the non-critical failed task at the root of it.
    /// Such a dependency does not mean what it says, so the summary names it and it pages.
    fn non_critical_blocker(
        &self,
        id: TaskId,
        report: &TaskReport,
        schedule: &Schedule,
    ) -> Option<&'r TaskNode> {
        if !(report.critical && report.status == TaskStatus::UpstreamFailed) {
            return None;
        }
        let cause = self.dag.task(schedule.cause[id.index()]?);
        // A gentle check that holds tasks back does what it was written for: its own alert
        // says so, and nothing pages.
        (!cause.policy.critical && cause.check.is_none()).then_some(cause)
    }

    /// Whether a task's outcome fails the run: a critical task that did not succeed, unless a
    /// non-critical (warn) check held it back.
    fn fails_run(&self, id: TaskId, report: &TaskReport, schedule: &Schedule) -> bool {
        if !report.critical || report.status.is_success() {
            return false;
        }
        let held_by_gentle_check = report.status == TaskStatus::UpstreamFailed
            && schedule.cause[id.index()].is_some_and(|cause| {
                let cause = self.dag.task(cause);
                cause.check.is_some() && !cause.policy.critical
            });
        !held_by_gentle_check
    }

    /// Raises what `alerts::decide` says the outcome calls for, and records it.
    fn alert(&mut self, report: &TaskReport, blocker: Option<&TaskNode>) {
        // Nothing is built here: most outcomes never alert, which `decide` finds out first.
        let run = RunSubject {
            pipeline: &self.info.pipeline,
            partition: self.info.partition,
            run_id: self.info.run_id,
        };
        let blocked_by = blocker.map(|task| task.name.as_str());
        if let Some(notice) = warning(report, &run) {
            self.alerts.send(notice);
        }
        let Some(event) = decide(report, blocked_by, &mut self.open_alerts, &run) else {
            return;
        };
        let state = match &event {
            AlertEvent::Trigger { severity, .. } => Some(*severity),
            AlertEvent::Resolve { .. } => None,
        };
        self.recorder.alert(report.name.clone(), state);
        self.alerts.send(event);
    }
}

/// A task as its OpenLineage events name it.
fn lineage_tables(task: &TaskNode) -> TaskTables<'_> {
    let (reads, writes) = task.tables.as_deref().map_or((&[][..], &[][..]), |tables| {
        (&tables.reads[..], &tables.writes[..])
    });
    TaskTables {
        name: &task.name,
        reads,
        writes,
    }
}

fn not_run(task: &TaskNode, status: TaskStatus, error: String) -> TaskReport {
    TaskReport {
        name: task.name.clone(),
        status,
        attempts: 0,
        duration_ms: 0,
        waited_ms: 0,
        error: (!error.is_empty()).then_some(error),
        critical: task.policy.critical,
        cause: None,
        details: Vec::new(),
        value: None,
    }
}
