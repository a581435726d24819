//! `daily schedule`: fires each schedule's runs at their ticks, in this process.
//!
//! Many scheduler processes may run against one state store; a lease on the store's clock
//! makes one of them active and the others stand by, taking over within a lease period when
//! the active one dies. A tick fires only after it is recorded under the live lease, and a
//! tick's record is unique, so no tick fires twice. The process that fired a tick holds it
//! until its run's outcome is written, lease or no lease; a tick whose holder is gone (killed,
//! its host lost) before that is taken over by the active scheduler and run again, and runs
//! are idempotent (complete tasks are skipped), so none is lost.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{Catchup, Clock, MAX_CATCHUP, Overlap, Schedule};
use crate::alert::{AlertEvent, Alerts, Severity, Subject};
use crate::date::{Partition, now_millis};
use crate::run::{Quiet, RunError, RunOptions, Runner};
use crate::state::{LockHolder, TickRecord};
use crate::status::TaskStatus;

/// The status of the mark a scheduler leaves for a schedule that never fired: where it
/// started watching.
pub const BASELINE: &str = "baseline";
/// The outcome of a tick whose run was queued for the workers (`schedule --distributed`):
/// the run's own outcome is in its history.
const SUBMITTED: &str = "submitted";
/// A tick is on time while the scheduler is within this of it; older ones count as missed.
const ON_TIME_MS: i64 = 60_000;
/// Fired ticks older than this are no longer watched for their deadline.
const WATCH_MS: i64 = 2 * 86_400_000;
/// How often a stand-by looks at the lease, at most: it takes over within this of the lease
/// running out, or of its holder's process ending on this host.
const STANDBY_LOOK: Duration = Duration::from_secs(1);

/// How the scheduler runs.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// How long the lease lasts without renewal: a stand-by takes over within it.
    pub lease: Duration,
    /// Tasks each run may run at once.
    pub workers: usize,
    /// Where the time comes from.
    pub clock: Clock,
    /// Queue each tick's run for `daily worker` processes (a worker coordinates it) instead of
    /// running it here: the run goes on when this scheduler is stopped or replaced.
    pub distributed: bool,
}

/// Which ticks of a schedule are due at `now`, given the last one recorded, by its catch-up
/// rule: oldest first; and whether missed ones were left out.
pub fn due_ticks(schedule: &Schedule, last: i64, now: i64) -> (Vec<i64>, bool) {
    match schedule.catchup {
        Catchup::Latest => schedule.ticks_between(last, now, 1),
        Catchup::All => schedule.ticks_between(last, now, MAX_CATCHUP),
        Catchup::None => {
            let (mut ticks, older) = schedule.ticks_between(last, now, 1);
            let missed = ticks.iter().any(|tick| now - tick > ON_TIME_MS);
            ticks.retain(|tick| now - tick <= ON_TIME_MS);
            (ticks, older || missed)
        }
    }
}

/// Fires the schedules' runs until `cancel` turns true.
pub struct Scheduler {
    runner: Arc<Runner>,
    /// Shared, so that a pass walks them while it changes the scheduler's own state.
    schedules: Arc<[Schedule]>,
    options: SchedulerOptions,
    /// This process, as the lease and the ticks it holds name it.
    me: LockHolder,
    alerts: Alerts,
    /// The newest tick recorded, by schedule.
    last: HashMap<String, i64>,
    /// Fired ticks whose deadline is watched.
    watched: Vec<TickRecord>,
    /// Runs under way: the schedule and tick of each.
    running: JoinSet<(String, i64)>,
    running_ticks: HashMap<String, i64>,
    /// When this scheduler was made: where a schedule that never fired starts.
    started_at: i64,
    /// The tick each schedule last said it holds back (`overlap = "wait"`), to say it once.
    announced_wait: HashMap<String, i64>,
    /// When deadlines were last checked. A deadline is checked at its own instant; past it,
    /// the overdue ticks are checked again once a renewal period (each check reads the store
    /// for every one of them), and at once when an alerted tick's run ends, to resolve
    /// without waiting.
    deadlines_checked_at: i64,
    /// When ticks whose holder is gone were last looked for: once a renewal period.
    orphans_checked_at: i64,
    /// The run of an alerted tick ended: its alert may resolve, so the next pass checks.
    resolve_pending: bool,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("schedules", &self.schedules.len())
            .field("host", &self.me.host)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler of these schedules over the runner's graph and store.
    pub fn new(
        runner: Runner,
        schedules: Vec<Schedule>,
        options: SchedulerOptions,
    ) -> anyhow::Result<Scheduler> {
        for schedule in &schedules {
            runner.resolve(&schedule.targets).map_err(|err| {
                anyhow::anyhow!(
                    "schedule `{}` has a target this graph lacks: {err}",
                    schedule.name
                )
            })?;
        }
        let alerts = Alerts::from_config(&runner.config.alerts, false)?;
        let started_at = options.clock.now_ms();
        let token = format!(
            "{}-{}-{}",
            crate::host::hostname(),
            std::process::id(),
            now_millis()
        );
        Ok(Scheduler {
            runner: Arc::new(runner),
            schedules: schedules.into(),
            options,
            me: crate::run::this_process(token, now_millis()),
            alerts,
            last: HashMap::new(),
            watched: Vec::new(),
            running: JoinSet::new(),
            running_ticks: HashMap::new(),
            started_at,
            announced_wait: HashMap::new(),
            deadlines_checked_at: i64::MIN,
            orphans_checked_at: i64::MIN,
            resolve_pending: false,
        })
    }

    /// Runs until `cancel` turns true: then stops the runs under way, waits for them (they
    /// record themselves cancelled) and gives the lease up.
    pub async fn run(mut self, mut cancel: watch::Receiver<bool>) -> anyhow::Result<()> {
        // Often enough for the lease, and for the ticks it runs to count as alive as long as
        // a run lock's holder does.
        let renew = (self.options.lease / 3).min(crate::run::HEARTBEAT_EVERY);
        let mut active = false;
        let mut announced_standby = false;
        while !*cancel.borrow() {
            let leader = self.take_lease(active).await;
            // A stand-by asks often; the active scheduler renews, and one that cannot reach
            // the store tries again (and says so) at the renewal's pace.
            let next_look = match leader {
                Ok(false) => renew.min(STANDBY_LOOK),
                _ => renew,
            };
            match (leader, active) {
                (Ok(true), false) => match self.become_active(&cancel).await {
                    Ok(()) => {
                        tracing::info!(
                            "scheduler active: {} schedule(s) of `{}`",
                            self.schedules.len(),
                            self.runner.pipeline
                        );
                        active = true;
                    }
                    Err(err) => tracing::warn!(
                        "cannot read what earlier schedulers recorded: {}; trying again",
                        crate::message::error_text(&err)
                    ),
                },
                (Ok(false), _) => {
                    if active {
                        tracing::warn!(
                            "scheduler lease lost to another process: standing by (runs under way go on)"
                        );
                        active = false;
                    }
                    if !announced_standby {
                        let holder = self
                            .runner
                            .store
                            .scheduler_lease(&self.runner.pipeline)
                            .await
                            .unwrap_or_default();
                        if let Some(holder) = holder {
                            tracing::info!(
                                "standing by: the scheduler on {} (pid {}) is active",
                                holder.host,
                                holder.pid
                            );
                        }
                        announced_standby = true;
                    }
                }
                (Err(err), _) => {
                    tracing::warn!(
                        "cannot reach the state store to renew the scheduler lease: {}",
                        crate::message::error_text(&err)
                    );
                    active = false;
                }
                (Ok(true), true) => {}
            }
            self.collect_finished().await;
            self.renew_ticks().await;
            // The next tick or deadline, on the scheduler's clock; the lease is renewed on
            // real time whatever that clock says.
            let mut wake = None;
            if active {
                announced_standby = false;
                // A store that fails now (a restart, a network blip) is tried again at the
                // next renewal; the scheduler itself keeps going.
                match self.pass(&cancel).await {
                    Ok(next) => wake = next,
                    Err(err) => tracing::warn!(
                        "scheduler pass failed: {}; trying again",
                        crate::message::error_text(&err)
                    ),
                }
            }
            let clock = self.options.clock.clone();
            tokio::select! {
                _ = clock.sleep_until(wake.unwrap_or(i64::MAX)) => {}
                _ = tokio::time::sleep(next_look) => {}
                _ = cancel.changed() => {}
                Some(done) = self.running.join_next(), if !self.running.is_empty() => {
                    self.finished(done).await;
                }
            }
        }
        tracing::info!("scheduler stopping: waiting for runs under way");
        while let Some(done) = self.running.join_next().await {
            self.finished(done).await;
        }
        if active {
            self.runner
                .store
                .release_scheduler_lease(&self.runner.pipeline, &self.me.token)
                .await?;
        }
        self.alerts.finish(crate::alert::DELIVERY_DEADLINE).await;
        Ok(())
    }

    /// Renews the scheduler lease (`active`) or asks for it: whether this process holds it
    /// now. A live lease whose holder is surely gone (killed with -9 on this host or in this
    /// container, as a crashed scheduler that its service manager restarts) is taken over at
    /// once, not when it runs out: its token is taken only while it is still the dead holder's.
    async fn take_lease(&self, active: bool) -> anyhow::Result<bool> {
        let store = &self.runner.store;
        let pipeline = &self.runner.pipeline;
        let ttl_ms = self.options.lease.as_millis() as i64;
        if active {
            return store
                .take_scheduler_lease(pipeline, &self.me, ttl_ms, None)
                .await;
        }
        // A stand-by reads who holds the lease before it asks: asking locks the lease's row
        // even when it takes nothing, and a stand-by asks every second.
        let holder = match store.scheduler_lease(pipeline).await? {
            Some(holder) if holder.token != self.me.token => holder,
            // Free, run out, or this process's own.
            _ => {
                return store
                    .take_scheduler_lease(pipeline, &self.me, ttl_ms, None)
                    .await;
            }
        };
        // Judged by its pid alone (the lease's expiry stands for a heartbeat): only a process
        // of the holder's PID space can, and only the holder's token is taken.
        if holder.pid_space.is_empty() || !crate::run::is_gone(&holder) {
            return Ok(false);
        }
        let taken = store
            .take_scheduler_lease(pipeline, &self.me, ttl_ms, Some(&holder.token))
            .await?;
        if taken {
            tracing::info!(
                "the scheduler on {} (pid {}) is gone ({}): taking its lease over",
                holder.host,
                holder.pid,
                crate::run::why_gone(&holder)
            );
        }
        Ok(taken)
    }

    /// Says that the ticks this process runs are still its own, lease or no lease.
    async fn renew_ticks(&self) {
        if self.running_ticks.is_empty() {
            return;
        }
        if let Err(err) = self
            .runner
            .store
            .renew_ticks(&self.runner.pipeline, &self.me.token)
            .await
        {
            tracing::warn!(
                "cannot tell the state store that this scheduler still runs its ticks: {}",
                crate::message::error_text(&err)
            );
        }
    }

    /// Reads what earlier schedulers recorded, and runs again ticks whose run never ended.
    async fn become_active(&mut self, cancel: &watch::Receiver<bool>) -> anyhow::Result<()> {
        let now = self.options.clock.now_ms();
        let with_deadlines: Vec<String> = self
            .schedules
            .iter()
            .filter(|schedule| schedule.deadline.is_some())
            .map(|schedule| schedule.name.clone())
            .collect();
        let ticks = self
            .runner
            .store
            .open_ticks(&self.runner.pipeline, now - WATCH_MS, &with_deadlines)
            .await?;
        self.watched.clear();
        for tick in ticks {
            let last = self
                .last
                .entry(tick.schedule.clone())
                .or_insert(tick.tick_at);
            *last = (*last).max(tick.tick_at);
            let Some(schedule) = self.schedule(&tick.schedule) else {
                continue;
            };
            if schedule.deadline.is_some() && tick.status != "skipped" && tick.status != BASELINE {
                self.watched.push(tick);
            }
        }
        // A schedule never fired starts from this scheduler's start, and says so in the store:
        // a scheduler that dies before the first tick leaves the next one something to catch
        // up from. Ticks fall on whole seconds; the mark never does (a start on a whole second
        // is marked 1 ms later), so it can neither take a tick's place nor let one through.
        let baseline = if self.started_at.rem_euclid(1000) == 0 {
            self.started_at + 1
        } else {
            self.started_at
        };
        for schedule in Arc::clone(&self.schedules).iter() {
            if self.last.contains_key(&schedule.name) {
                continue;
            }
            let mark = TickRecord {
                pipeline: self.runner.pipeline.clone(),
                schedule: schedule.name.clone(),
                tick_at: baseline,
                partition: String::new(),
                fired_at: baseline,
                status: BASELINE.to_string(),
                run_id: None,
                deadline_alerted: false,
            };
            self.runner.store.claim_tick(&self.me, &mark).await?;
            self.last.insert(schedule.name.clone(), baseline);
        }
        self.adopt_orphans(cancel).await
    }

    /// Runs again the fired ticks whose holder is gone before their run ended. Runs whose
    /// process is gone are closed first (their locks broken, `abandoned`), so that the run
    /// again takes the partition at once.
    async fn adopt_orphans(&mut self, cancel: &watch::Receiver<bool>) -> anyhow::Result<()> {
        let fired = self.runner.store.fired_ticks(&self.runner.pipeline).await?;
        let mut reaped = false;
        for (tick, holder) in fired {
            if holder.token == self.me.token
                || self.running_ticks.contains_key(&tick.schedule)
                || !crate::run::is_gone(&holder)
            {
                continue;
            }
            let Some(schedule) = self.schedule(&tick.schedule) else {
                continue;
            };
            let when = schedule.local_time(tick.tick_at);
            if !reaped {
                self.runner.reap_abandoned().await?;
                reaped = true;
            }
            if !self
                .runner
                .store
                .adopt_tick(&self.me, &tick, &holder.token)
                .await?
            {
                continue;
            }
            tracing::warn!(
                "schedule `{}`: the run of tick {when} never ended: the scheduler that fired \
                 it (pid {} on {}) is gone ({}); running it again",
                tick.schedule,
                holder.pid,
                holder.host,
                crate::run::why_gone(&holder)
            );
            self.start(tick, cancel);
        }
        Ok(())
    }

    /// Fires what is due and checks deadlines; when the next tick is due.
    async fn pass(&mut self, cancel: &watch::Receiver<bool>) -> anyhow::Result<Option<i64>> {
        let now = self.options.clock.now_ms();
        let mut next_wake: Option<i64> = None;
        for schedule in Arc::clone(&self.schedules).iter() {
            let last = self.last.get(&schedule.name).copied().unwrap_or(now);
            let (due, left_out) = due_ticks(schedule, last, now);
            let mut newest = last;
            if left_out {
                tracing::warn!(
                    "schedule `{}`: missed ticks not run (catchup = {:?})",
                    schedule.name,
                    schedule.catchup
                );
                // They are passed over for good, said once.
                if due.is_empty()
                    && let Some(&latest) = schedule.ticks_between(last, now, 1).0.last()
                {
                    newest = latest;
                }
            }
            // Missed ticks run one after the other; a tick that comes while a run goes on
            // follows the schedule's overlap rule.
            let catching_up = due.len() > 1;
            for tick in due {
                if self.running_ticks.contains_key(&schedule.name) {
                    let overlap = if catching_up {
                        Overlap::Wait
                    } else {
                        schedule.overlap
                    };
                    match overlap {
                        Overlap::Wait => {
                            if self.announced_wait.insert(schedule.name.clone(), tick) != Some(tick)
                            {
                                tracing::info!(
                                    "schedule `{}`: tick {} waits for the previous run to end",
                                    schedule.name,
                                    schedule.local_time(tick)
                                );
                            }
                            break;
                        }
                        Overlap::Skip => {
                            tracing::warn!(
                                "schedule `{}`: tick {} skipped: the previous run is still going",
                                schedule.name,
                                schedule.local_time(tick)
                            );
                            self.claim(schedule, tick, "skipped").await?;
                            newest = tick;
                            continue;
                        }
                    }
                }
                if let Some(record) = self.claim(schedule, tick, "fired").await? {
                    tracing::info!(
                        "schedule `{}`: tick {} runs {} for {}",
                        schedule.name,
                        schedule.local_time(tick),
                        schedule.targets.join(", "),
                        record.partition
                    );
                    if schedule.deadline.is_some() {
                        self.watched.push(record.clone());
                    }
                    self.start(record, cancel);
                }
                newest = tick;
            }
            if newest != last {
                self.last.insert(schedule.name.clone(), newest);
            }
            let from = if self.running_ticks.contains_key(&schedule.name)
                && (schedule.overlap == Overlap::Wait || catching_up)
            {
                None
            } else {
                schedule.next_after(newest.max(now))
            };
            if let Some(next) = from {
                next_wake = Some(next_wake.map_or(next, |wake| wake.min(next)));
            }
        }
        let period = (self.options.lease / 3).as_millis() as i64;
        let periodic = now.saturating_sub(self.orphans_checked_at) >= period;
        if periodic {
            self.adopt_orphans(cancel).await?;
            self.orphans_checked_at = now;
        }
        let checked = self.deadlines_checked_at;
        let newly_due = self
            .watched
            .iter()
            .map(|tick| self.deadline_of(tick))
            .any(|due| checked < due && due <= now);
        if periodic || newly_due || self.resolve_pending {
            self.check_deadlines(now).await?;
            self.deadlines_checked_at = now;
            self.resolve_pending = false;
        }
        for tick in &self.watched {
            let due = self.deadline_of(tick);
            if due > now {
                next_wake = Some(next_wake.map_or(due, |wake| wake.min(due)));
            }
        }
        Ok(next_wake)
    }

    /// The instant a fired tick's targets are due, on the scheduler's clock.
    fn deadline_of(&self, tick: &TickRecord) -> i64 {
        let deadline = self
            .schedule(&tick.schedule)
            .and_then(|schedule| schedule.deadline)
            .map_or(0, |deadline| deadline.as_millis() as i64);
        tick.tick_at + deadline
    }

    /// Records a tick under the lease: the record when this process may fire it, `None` when
    /// another one recorded it or the lease is gone.
    async fn claim(
        &self,
        schedule: &Schedule,
        tick: i64,
        status: &str,
    ) -> anyhow::Result<Option<TickRecord>> {
        let record = TickRecord {
            pipeline: self.runner.pipeline.clone(),
            schedule: schedule.name.clone(),
            tick_at: tick,
            partition: schedule.partition(tick).to_string(),
            fired_at: self.options.clock.now_ms(),
            status: status.to_string(),
            run_id: None,
            deadline_alerted: false,
        };
        if self.runner.store.claim_tick(&self.me, &record).await? {
            crate::metrics::scheduler_tick();
            Ok(Some(record))
        } else {
            tracing::warn!(
                "schedule `{}`: tick {} was not fired here: another scheduler recorded it, or \
                 this one lost its lease",
                schedule.name,
                schedule.local_time(tick)
            );
            Ok(None)
        }
    }

    /// Starts the run of a recorded tick.
    fn start(&mut self, tick: TickRecord, cancel: &watch::Receiver<bool>) {
        let Some(schedule) = self.schedule(&tick.schedule).cloned() else {
            return;
        };
        let Ok(date) = tick.partition.parse::<Partition>() else {
            tracing::error!(
                "schedule `{}`: bad partition `{}`",
                tick.schedule,
                tick.partition
            );
            return;
        };
        let mut options = RunOptions::new(date);
        options.targets = schedule.targets.clone();
        options.workers = self.options.workers;
        // A manual run of the same date finishes first; this one then skips what it did.
        options.wait = true;
        let runner = Arc::clone(&self.runner);
        let token = self.me.token.clone();
        let cancel = cancel.clone();
        let distributed = self.options.distributed;
        self.running_ticks
            .insert(tick.schedule.clone(), tick.tick_at);
        self.running.spawn(async move {
            let mut record = tick;
            if let Err(err) = run_tick(&runner, options, distributed, &mut record, cancel).await {
                tracing::error!(
                    "schedule `{}`: the run for {} could not start: {}",
                    record.schedule,
                    record.partition,
                    crate::message::error_text(&anyhow::Error::from(err))
                );
                record.status = "failed".to_string();
            }
            match runner.store.record_tick_outcome(&token, &record).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(
                    "schedule `{}`: tick {} was taken over by another scheduler (this one's \
                     word did not reach the state store in time); its outcome is left to it",
                    record.schedule,
                    record.tick_at
                ),
                Err(err) => tracing::warn!(
                    "schedule `{}`: cannot record the outcome of tick {}: {}",
                    record.schedule,
                    record.tick_at,
                    crate::message::error_text(&err)
                ),
            }
            (record.schedule, record.tick_at)
        });
    }

    async fn collect_finished(&mut self) {
        while let Some(done) = self.running.try_join_next() {
            self.finished(done).await;
        }
    }

    async fn finished(&mut self, done: Result<(String, i64), tokio::task::JoinError>) {
        match done {
            Ok((schedule, tick)) => {
                if self.running_ticks.get(&schedule) == Some(&tick) {
                    self.running_ticks.remove(&schedule);
                }
                // Only a tick that alerted has anything to resolve; other overdue ticks wait
                // for the periodic check, which reads the store for each.
                self.resolve_pending |= self.watched.iter().any(|watched| {
                    watched.schedule == schedule
                        && watched.tick_at == tick
                        && watched.deadline_alerted
                });
            }
            Err(err) => tracing::error!("a scheduled run ended abnormally: {err}"),
        }
    }

    /// Alerts once when a tick's targets are not complete by its deadline, naming each one and
    /// why; resolves when they are.
    async fn check_deadlines(&mut self, now: i64) -> anyhow::Result<()> {
        let mut index = 0;
        while index < self.watched.len() {
            let tick = self.watched[index].clone();
            let Some(schedule) = self.schedule(&tick.schedule).cloned() else {
                self.watched.remove(index);
                continue;
            };
            if now < self.deadline_of(&tick) {
                index += 1;
                continue;
            }
            let deadline = schedule.deadline.map_or(0, |d| d.as_millis() as i64);
            let missing = self.missing_targets(&schedule, &tick).await?;
            let subject = Subject {
                pipeline: self.runner.pipeline.clone(),
                partition: tick.partition.clone(),
                task: format!("schedule {}", schedule.name),
                run_id: tick.run_id.unwrap_or(0),
                host: self.me.host.clone(),
            };
            let mut record = tick.clone();
            if !missing.is_empty() && !tick.deadline_alerted {
                self.alerts.send(AlertEvent::Trigger {
                    subject,
                    severity: Severity::High,
                    summary: format!(
                        "{} {}: schedule `{}` (tick {}) missed its {} deadline",
                        self.runner.pipeline,
                        tick.partition,
                        schedule.name,
                        schedule.local_time(tick.tick_at),
                        crate::date::format_duration(Duration::from_millis(deadline as u64))
                    ),
                    details: format!("not complete: {}", missing.join(", ")),
                });
                record.deadline_alerted = true;
                self.runner.store.record_deadline_alert(&record).await?;
                crate::metrics::deadline_missed();
            } else if missing.is_empty() && tick.deadline_alerted {
                self.alerts.send(AlertEvent::Resolve {
                    subject,
                    severity: Severity::High,
                });
                record.deadline_alerted = false;
                self.runner.store.record_deadline_alert(&record).await?;
            }
            if missing.is_empty() || now - tick.tick_at > WATCH_MS {
                self.watched.remove(index);
            } else {
                self.watched[index] = record;
                index += 1;
            }
        }
        Ok(())
    }

    /// The targets of a tick not complete for its partition, each with why: `failed`,
    /// `upstream_failed`, `running`, `never started`, ...
    async fn missing_targets(
        &self,
        schedule: &Schedule,
        tick: &TickRecord,
    ) -> anyhow::Result<Vec<String>> {
        let Ok(date) = tick.partition.parse::<Partition>() else {
            return Ok(Vec::new());
        };
        let key = self.runner.partition_key(date, false);
        let complete = self.runner.complete(&key).await?;
        let ids = self.runner.resolve(&schedule.targets)?;
        let attempts = self.runner.store.attempts(&key).await?;
        let mut last_status: HashMap<&str, TaskStatus> = HashMap::new();
        for attempt in &attempts {
            last_status.insert(attempt.task.as_str(), attempt.status);
        }
        Ok(ids
            .into_iter()
            .map(|id| self.runner.dag.task(id).name.as_str())
            .filter(|name| !complete.contains(*name))
            .map(|name| match last_status.get(name) {
                Some(status) => format!("{name} ({status})"),
                None => format!("{name} (never started)"),
            })
            .collect())
    }

    fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|schedule| schedule.name == name)
    }
}

/// Runs a tick's run here, or queues it for the workers (`distributed`: a worker coordinates
/// it, so this scheduler's stop, in a rolling deploy, leaves the run alone; deadlines are
/// still watched here), and notes the outcome on its record.
async fn run_tick(
    runner: &Runner,
    options: RunOptions,
    distributed: bool,
    record: &mut TickRecord,
    cancel: watch::Receiver<bool>,
) -> Result<(), RunError> {
    if distributed {
        let submission = runner.submit(&options.distributed()).await?;
        tracing::info!(
            "schedule `{}`: the run for {} is queued for the workers (submission {submission})",
            record.schedule,
            record.partition,
        );
        record.status = SUBMITTED.to_string();
    } else {
        let report = runner.run(&options, &Quiet, cancel).await?;
        tracing::info!(
            "schedule `{}`: run {} for {} {}",
            record.schedule,
            report.run_id,
            record.partition,
            report.status
        );
        record.status = report.status.to_string();
        record.run_id = Some(report.run_id);
    }
    Ok(())
}
