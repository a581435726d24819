//! `daily worker`: claims queued attempts of distributed runs and runs them, each under a lease
//! on the state store's clock that it renews a third of a lease period at a time.
//!
//! - An attempt whose renewal comes back without it (its run cancelled it, or it was rescued
//!   after its lease ran out while this process was frozen) is stopped, and nothing more is
//!   written for it: every write names the lease token, so a late write changes no row.
//! - A worker that cannot renew for two thirds of a lease period stops its attempts itself,
//!   before any other worker can have been given them.
//! - SIGTERM stops claiming and gives running attempts `grace` to end; what is left is handed
//!   back for another worker. A second signal ends the process at once.
//! - It claims only attempts of runs whose graph has its own fingerprint; of other runs it
//!   says why it leaves them alone.
//! - It also takes on the coordination of detached runs (`run --distributed --detach`), under
//!   a lease like an attempt's: a worker that loses it cancels that run, and another worker
//!   takes the run on and resumes it (what completed is skipped).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};

use super::runs::Runs;
use crate::ctx::Ctx;
use crate::date::{Partition, format_duration};
use crate::host::hostname;
use crate::run::{Quiet, RunOptions, Runner};
use crate::state::{
    ClaimRequest, Claimed, ClaimedWork, LeaseLine, QUEUED_CHANNEL, StoreLine, WORKER_CONNECTIONS,
    WorkOutcome, WorkerRecord,
};
use crate::status::{RunStatus, TaskStatus};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Attempts it runs at once.
    pub slots: usize,
    /// How long a claimed attempt stays this worker's without a renewal.
    pub lease: Duration,
    /// After SIGTERM: how long running attempts may take to end before they are handed back.
    pub grace: Duration,
}

/// How long a worker idles between looks at the queue when no notification wakes it, at the
/// least (see [`idle_look`]).
const IDLE_LOOK: Duration = Duration::from_millis(2000);

/// How often a worker looks for a detached run whose coordinator was lost, at least.
const SUBMISSION_LOOK: Duration = Duration::from_secs(5);

/// Detached runs one worker coordinates at once, at most.
const MAX_COORDINATING: usize = 2;

/// Connections of a worker's pool to the state store, at most (opened as needed): what it needs
/// at least ([`WORKER_CONNECTIONS`]), one more for its other statements, and four for each
/// detached run it coordinates (its notifications, held; the statements of its queue, its
/// state writer and its lock, through the pool).
pub const STORE_CONNECTIONS: u32 = WORKER_CONNECTIONS + 1 + 4 * MAX_COORDINATING as u32;

/// Outcomes written in one statement, at most.
const FINISH_MAX: usize = 500;

/// A claim that takes longer than this share of a lease (a tenth) is followed by a renewal.
const SLOW_CLAIM: u32 = 10;

/// How often a worker woken for work it could not claim looks for runs of other graphs to
/// warn of, at most.
const WOKEN_FOREIGN_LOOK: Duration = Duration::from_secs(1);

/// How often an idle worker looks for runs of other graphs to warn of.
const FOREIGN_LOOK: Duration = Duration::from_secs(30);

/// One attempt running here.
struct Held {
    work: ClaimedWork,
    /// Turned true to stop the attempt.
    stop: watch::Sender<bool>,
    /// Set when the attempt is no longer this worker's: its outcome is not written.
    lost: Arc<AtomicBool>,
    /// Set when the worker hands the attempt back at shutdown.
    handed_back: Arc<AtomicBool>,
    /// Set when the attempt (or coordination) has ended here, before its outcome is written:
    /// its lease is still renewed, and an answer without it means nothing.
    ended: Arc<AtomicBool>,
}

/// Runs a worker until `stop` turns true and its attempts ended (or were handed back). A
/// second signal is the caller's to handle (the CLI exits at once). The runner's state store
/// is opened with a pool of [`STORE_CONNECTIONS`] (`open_store_with`); one of fewer than
/// [`WORKER_CONNECTIONS`] is refused.
pub async fn run(
    runner: Runner,
    options: WorkerOptions,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let store = Arc::clone(&runner.store);
    let pool = store.postgres(crate::message::Command("worker"))?.clone();
    crate::run::stop_spinning();
    let fingerprint = runner.dag.fingerprint();
    let record = WorkerRecord {
        id: format!("{}:{}:{:08x}", hostname(), std::process::id(), rand_u32()),
        pipeline: runner.pipeline.clone(),
        host: hostname(),
        pid: i64::from(std::process::id()),
        fingerprint: fingerprint.clone(),
        slots: options.slots,
        started_at: 0,
        heartbeat_at: 0,
        heartbeat_age_ms: 0,
        stopping: false,
        running: Vec::new(),
    };
    store
        .heartbeat_worker(&record, false)
        .await
        .context("cannot register the worker in the state store")?;
    let line = store.lease_line().await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(QUEUED_CHANNEL).await?;
    tracing::info!(
        "worker {} started: {} slots, lease {}, graph {fingerprint}",
        record.id,
        options.slots,
        format_duration(options.lease)
    );
    let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX);
    let runner = Arc::new(runner);
    let (ended_tx, mut ended) = mpsc::unbounded_channel::<String>();
    let (finished_tx, finished) = mpsc::unbounded_channel::<Ended>();
    // Claims and outcomes each hold a connection of their own (see `StoreLine`).
    let mut claims = store.line("a worker")?;
    let outcomes = store.line("a worker")?;
    let finisher = tokio::spawn(finish(
        Arc::clone(&runner),
        outcomes,
        finished,
        ended_tx.clone(),
    ));
    let holdings: Holdings = Arc::default();
    let runs = Arc::new(Runs::new(options.slots));
    let announced_stop = Arc::new(AtomicBool::new(false));
    let claimed_now = Arc::new(tokio::sync::Notify::new());
    let (stop_renewals, renewals_stop) = tokio::sync::oneshot::channel();
    let mut renewals = tokio::spawn(keep_leases(
        line,
        renewals_stop,
        record.clone(),
        Arc::clone(&holdings),
        options.lease,
        Arc::clone(&announced_stop),
        Arc::clone(&claimed_now),
    ));
    // Notified when an attempt's code ends, which frees its slot.
    let freed = Arc::new(tokio::sync::Notify::new());
    let mut stopping: Option<tokio::time::Instant> = None;
    let mut warned_foreign: HashSet<i64> = HashSet::new();
    let mut handed_back = false;
    let mut unstoppable = false;
    // Whether to claim at the top of the loop: after a wake-up, a look, or a freed slot.
    let mut look = true;
    // The last claim left nothing to take: a freed slot waits for the queue's next
    // notification (or the idle look) instead of claiming from an empty queue.
    let mut drained = false;
    let mut woken = true;
    let mut woken_for_runs = true;
    let mut last_submission_look = Instant::now() - SUBMISSION_LOOK;
    let mut next_idle_look = tokio::time::Instant::now() + idle_look();
    let mut last_foreign_look = Instant::now() - WOKEN_FOREIGN_LOOK;
    loop {
        // A slot is free once its attempt's code has ended: the outcome is written meanwhile
        // (its lease renewed until then), while the next attempt starts.
        let (attempts, coordinating) = {
            let held = hold(&holdings);
            let attempts = held.values().filter(|held| held.work.attempt > 0);
            let running = attempts
                .clone()
                .filter(|held| !held.ended.load(Ordering::SeqCst))
                .count();
            (running, held.len() - attempts.count())
        };
        // Detached runs are few: looked for when woken (at most once a second), and now and
        // then for one whose coordinator was lost (no notification says so).
        let since = last_submission_look.elapsed();
        let submissions_due =
            (woken_for_runs && since >= WOKEN_FOREIGN_LOOK) || since >= SUBMISSION_LOOK;
        if stopping.is_none() && look && submissions_due && coordinating < MAX_COORDINATING {
            woken_for_runs = false;
            last_submission_look = Instant::now();
            let prefix = format!("{}:{:08x}", record.id, rand_u32());
            match store
                .claim_submission(
                    &runner.pipeline,
                    &fingerprint,
                    &record.id,
                    &prefix,
                    lease_ms,
                )
                .await
            {
                Ok(Some((id, submitted, token))) => {
                    let coordination =
                        coordinate(&runner, id, submitted, token.clone(), ended_tx.clone());
                    hold(&holdings).insert(token, coordination);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!("cannot look for detached runs: {err:#}"),
            }
        }
        if stopping.is_none() && look && attempts < options.slots {
            let free = options.slots - attempts;
            let prefix = format!("{}:{:08x}", record.id, rand_u32());
            let claiming = Instant::now();
            let request = ClaimRequest {
                pipeline: &runner.pipeline,
                fingerprint: &fingerprint,
                worker: &record.id,
                token_prefix: &prefix,
                limit: free,
                lease_ms,
            };
            match store.claim_work(&mut claims, &request).await {
                Ok(Claimed {
                    work: claimed,
                    drained: now,
                }) => {
                    // A full claim may have left more behind: look again at once.
                    look = claimed.len() == free;
                    drained = now;
                    let mut held = hold(&holdings);
                    let any = !claimed.is_empty();
                    for work in claimed {
                        let token = work.token.clone();
                        let freed = Arc::clone(&freed);
                        held.insert(
                            token,
                            start(&runner, &runs, work, finished_tx.clone(), freed),
                        );
                    }
                    // Their leases ran from the claim's first row: after a slow claim they
                    // are renewed at once, to run a whole lease from its end.
                    if any && claiming.elapsed() >= options.lease / SLOW_CLAIM {
                        claimed_now.notify_one();
                    }
                }
                Err(err) => {
                    look = false;
                    drained = false;
                    tracing::warn!("cannot claim from the queue: {err:#}");
                }
            }
            // Woken for work it could not claim, or long idle: perhaps a run of another graph.
            let since = last_foreign_look.elapsed();
            if hold(&holdings).is_empty()
                && ((woken && since >= WOKEN_FOREIGN_LOOK) || since >= FOREIGN_LOOK)
            {
                woken = false;
                last_foreign_look = Instant::now();
                warn_of_foreign_runs(&runner, &fingerprint, &mut warned_foreign).await;
            }
            if look {
                continue;
            }
        }
        if stopping.is_some() && hold(&holdings).is_empty() {
            break;
        }
        tokio::select! {
            notification = listener.recv() => {
                if let Err(err) = notification {
                    tracing::debug!("queue notifications paused: {err}");
                    tokio::time::sleep(IDLE_LOOK).await;
                }
                // Every wake-up already here is answered by the one claim; what is queued
                // while it runs wakes the next (a pause to gather more only added latency).
                while listener.next_buffered().is_some() {}
                look = true;
                woken = true;
                woken_for_runs = true;
            }
            // A deadline of its own: other wake-ups (renewals) must not put it off.
            () = tokio::time::sleep_until(next_idle_look) => {
                next_idle_look = tokio::time::Instant::now() + idle_look();
                look = true;
            }
            () = freed.notified() => {
                // Attempts whose code ended together are replaced by one claim.
                tokio::task::yield_now().await;
                look |= !drained;
            }
            Some(token) = ended.recv() => {
                // An attempt's slot was freed when its code ended; a coordination's place is
                // free now, and the next look may take another detached run.
                let mut held = hold(&holdings);
                let mut tokens = vec![token];
                while let Ok(token) = ended.try_recv() {
                    tokens.push(token);
                }
                for token in tokens {
                    if held.remove(&token).is_some_and(|ended| ended.work.attempt == 0) {
                        look = true;
                    }
                }
            }
            signalled = signalled(&mut stop), if stopping.is_none() && !unstoppable => {
                if !signalled {
                    // Whoever could stop the worker is gone: nothing will.
                    unstoppable = true;
                } else {
                    tracing::info!(
                        "stopping: no more claims; {} running attempt(s) get {} to end",
                        hold(&holdings).len(),
                        format_duration(options.grace)
                    );
                    stopping = Some(tokio::time::Instant::now() + options.grace);
                    announced_stop.store(true, Ordering::SeqCst);
                    let _ = store.heartbeat_worker(&record, true).await;
                }
            }
            () = sleep_until_some(stopping), if !handed_back => {
                handed_back = true;
                for attempt in hold(&holdings).values() {
                    tracing::warn!(
                        task = %attempt.work.task,
                        "did not end within the grace period: handed back for another worker"
                    );
                    attempt.handed_back.store(true, Ordering::SeqCst);
                    let _ = attempt.stop.send(true);
                }
            }
        }
    }
    // Every attempt has ended and its outcome was written (its slot freed after): done.
    finisher.abort();
    // The lease line says goodbye to the server; a renewal stuck on a dead one is dropped.
    let _ = stop_renewals.send(());
    if tokio::time::timeout(LINE_CLOSE_WITHIN, &mut renewals)
        .await
        .is_err()
    {
        renewals.abort();
    }
    runs.close_all().await;
    if let Err(err) = store.remove_worker(&record.id).await {
        tracing::warn!("cannot remove the worker's record: {err:#}");
    }
    tracing::info!("worker {} stopped", record.id);
    Ok(())
}

/// What the worker holds now, by lease token: shared by its loop, which claims and frees, and
/// its lease renewals, which stop what is no longer its own.
type Holdings = Arc<std::sync::Mutex<HashMap<String, Held>>>;

fn hold(holdings: &Holdings) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
    // A panic while the map was held left it whole (every change is one insert or remove).
    holdings
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How soon a renewal that failed is tried again (on a fresh connection): a worker is back
/// within about this long after its state store is.
const RENEWAL_RETRY: Duration = Duration::from_millis(250);
/// How long the lease line gets to close when the worker stops.
const LINE_CLOSE_WITHIN: Duration = Duration::from_secs(1);

/// Renews the worker's heartbeat and its leases a third of a lease period at a time, and at
/// once after a claim, on a connection and a task of their own, so that neither claims,
/// outcomes nor the worker's own loop ever hold a renewal up. Stops the attempts that are not
/// the worker's any more, and all of them when it cannot reach the store for two thirds of a
/// lease.
async fn keep_leases(
    mut line: LeaseLine,
    mut done: tokio::sync::oneshot::Receiver<()>,
    record: WorkerRecord,
    holdings: Holdings,
    lease: Duration,
    stopping: Arc<AtomicBool>,
    claimed_now: Arc<tokio::sync::Notify>,
) {
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let every = lease / 3;
    let mut last_renewal = Instant::now();
    let mut next = tokio::time::Instant::now() + every;
    loop {
        tokio::select! {
            biased;
            _ = &mut done => break,
            () = tokio::time::sleep_until(next) => {}
            () = claimed_now.notified() => {}
        }
        let sent = Instant::now();
        // What ended here keeps its lease until its outcome is written: a slow write must not
        // let it run out.
        let tokens: Vec<String> = hold(&holdings).keys().cloned().collect();
        let stopping_now = stopping.load(Ordering::SeqCst);
        let renewed = line.renew(&record, stopping_now, &tokens, lease_ms, every);
        let failed = match renewed.await {
            Ok(kept) => {
                crate::metrics::lease_renewal(true, last_renewal.elapsed());
                last_renewal = sent;
                let kept: HashSet<String> = kept.into_iter().collect();
                let held = hold(&holdings);
                // Those sent and not renewed; one that has ended here is no loss.
                let lost = tokens.iter().filter(|token| !kept.contains(*token));
                for attempt in lost.filter_map(|token| held.get(token)) {
                    if !attempt.ended.load(Ordering::SeqCst) {
                        tracing::warn!(
                            task = %attempt.work.task,
                            "attempt {} of run {} is no longer this worker's (cancelled by its \
                             run, or its lease ran out): stopped, and its outcome will not be \
                             written",
                            attempt.work.attempt,
                            attempt.work.run_id
                        );
                        stop_lost(attempt);
                    }
                }
                None
            }
            Err(err) => {
                crate::metrics::lease_renewal(false, last_renewal.elapsed());
                Some(format!("{err:#}"))
            }
        };
        let Some(why) = failed else {
            next = tokio::time::Instant::now() + every;
            continue;
        };
        next = tokio::time::Instant::now() + RENEWAL_RETRY.min(every);
        // The store extended the leases after the last renewal was sent: stopping two thirds
        // of a lease after it, the worker is done before any lease can run out.
        if last_renewal.elapsed() >= lease * 2 / 3 {
            let held = hold(&holdings);
            if !held.is_empty() {
                tracing::error!(
                    "cannot renew leases for {} ({why}): stopping {} attempt(s), which another \
                     worker may be given",
                    format_duration(last_renewal.elapsed()),
                    held.len()
                );
            }
            for attempt in held.values() {
                stop_lost(attempt);
            }
        } else {
            tracing::warn!("cannot renew leases: {why}");
        }
    }
    line.close().await;
}

fn stop_lost(attempt: &Held) {
    attempt.lost.store(true, Ordering::SeqCst);
    let _ = attempt.stop.send(true);
}

/// Says once per run why runs of another graph are left alone.
async fn warn_of_foreign_runs(runner: &Runner, fingerprint: &str, warned: &mut HashSet<i64>) {
    let Ok(foreign) = runner
        .store
        .foreign_runs(&runner.pipeline, fingerprint)
        .await
    else {
        return;
    };
    for (run_id, theirs) in foreign {
        if warned.insert(run_id) {
            tracing::warn!(
                "run {run_id} was planned with another task graph (fingerprint {theirs}; this \
                 worker has {fingerprint}): its tasks are left to workers of that version; \
                 deploy one binary to every worker"
            );
        }
    }
}

/// An attempt that ended here, on its way to the store.
struct Ended {
    work: ClaimedWork,
    outcome: WorkOutcome,
    /// It was no longer the worker's when it ended: nothing is written for it.
    lost: bool,
}

/// Starts a claimed attempt; its outcome goes to `finished` when it is done.
fn start(
    runner: &Arc<Runner>,
    runs: &Arc<Runs>,
    work: ClaimedWork,
    finished: mpsc::UnboundedSender<Ended>,
    freed: Arc<tokio::sync::Notify>,
) -> Held {
    let (stop, stopped) = watch::channel(false);
    let lost = Arc::new(AtomicBool::new(false));
    let handed_back = Arc::new(AtomicBool::new(false));
    let ended = Arc::new(AtomicBool::new(false));
    let held = Held {
        work: work.clone(),
        stop,
        lost: Arc::clone(&lost),
        handed_back: Arc::clone(&handed_back),
        ended: Arc::clone(&ended),
    };
    let runner = Arc::clone(runner);
    let runs = Arc::clone(runs);
    tokio::spawn(async move {
        let outcome = run_one(&runner, &runs, &work, stopped, &handed_back).await;
        ended.store(true, Ordering::SeqCst);
        freed.notify_one();
        let lost = lost.load(Ordering::SeqCst);
        let _ = finished.send(Ended {
            work,
            outcome,
            lost,
        });
    });
    held
}

/// Writes what ended within a few milliseconds of each other in one statement, then frees
/// their slots (their tokens go to `ended`).
async fn finish(
    runner: Arc<Runner>,
    mut line: StoreLine,
    mut finished: mpsc::UnboundedReceiver<Ended>,
    ended: mpsc::UnboundedSender<String>,
) {
    while let Some(first) = finished.recv().await {
        // What ended meanwhile, and while the last write ran, goes in with it.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        while batch.len() < FINISH_MAX {
            match finished.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (lost, kept): (Vec<Ended>, Vec<Ended>) =
            batch.into_iter().partition(|ended| ended.lost);
        for ended in &lost {
            tracing::info!(task = %ended.work.task, "outcome of a lost attempt discarded");
        }
        let outcomes: Vec<(i64, String, WorkOutcome)> = kept
            .iter()
            .map(|ended| {
                (
                    ended.work.id,
                    ended.work.token.clone(),
                    ended.outcome.clone(),
                )
            })
            .collect();
        match runner.store.finish_works(&mut line, &outcomes).await {
            Ok(accepted) => {
                for ended in kept
                    .iter()
                    .filter(|ended| !accepted.contains(&ended.work.id))
                {
                    tracing::warn!(
                        task = %ended.work.task,
                        "the attempt ended after its lease was lost: its outcome is discarded, \
                         and the run keeps what it decided instead"
                    );
                }
            }
            Err(err) => {
                for ended in &kept {
                    tracing::error!(
                        task = %ended.work.task,
                        "cannot record the attempt's outcome: {err:#}; the run will take it as \
                         a lost worker once its lease runs out"
                    );
                }
            }
        }
        for done in lost.iter().chain(&kept) {
            let _ = ended.send(done.work.token.clone());
        }
    }
}

/// Coordinates a detached run here: runs it as `run --distributed` would, until it ends or
/// the coordination is no longer this worker's. Its token comes back on `ended`.
fn coordinate(
    runner: &Arc<Runner>,
    id: i64,
    submitted: String,
    token: String,
    ended: mpsc::UnboundedSender<String>,
) -> Held {
    let (stop, stopped) = watch::channel(false);
    let lost = Arc::new(AtomicBool::new(false));
    let handed_back = Arc::new(AtomicBool::new(false));
    let work = ClaimedWork {
        id,
        run_id: 0,
        partition: String::new(),
        test: false,
        unit_mode: false,
        task: format!("(coordination of detached run {id})"),
        attempt: 0,
        token: token.clone(),
    };
    let done = Arc::new(AtomicBool::new(false));
    let held = Held {
        work,
        stop,
        lost: Arc::clone(&lost),
        handed_back: Arc::clone(&handed_back),
        ended: Arc::clone(&done),
    };
    let runner = Arc::clone(runner);
    tokio::spawn(async move {
        tracing::info!("coordinating detached run {id}");
        let outcome = match serde_json::from_str::<RunOptions>(&submitted)
            .map(RunOptions::coordinated)
            .map_err(anyhow::Error::from)
        {
            Ok(options) => match runner.run(&options, &Quiet, stopped).await {
                Ok(report) => {
                    tracing::info!(
                        "detached run {id} ended: run {} {}",
                        report.run_id,
                        report.status
                    );
                    WorkOutcome {
                        status: match report.status {
                            RunStatus::Succeeded => TaskStatus::Succeeded,
                            RunStatus::Cancelled => TaskStatus::Cancelled,
                            _ => TaskStatus::Failed,
                        },
                        error: None,
                        fatal: false,
                        note: Some(format!("run {}", report.run_id)),
                        value: None,
                        targets: None,
                        handed_back: false,
                        log: None,
                    }
                }
                Err(err) => failed(format!("{err:#}")),
            },
            Err(err) => failed(format!("unreadable options of detached run {id}: {err:#}")),
        };
        done.store(true, Ordering::SeqCst);
        if lost.load(Ordering::SeqCst) {
            tracing::warn!("detached run {id} was taken on by another worker: this one stopped");
        } else if handed_back.load(Ordering::SeqCst) {
            if let Err(err) = runner.store.release_submission(id, &token).await {
                tracing::warn!("cannot give detached run {id} back: {err:#}");
            }
        } else if let Err(err) = runner.store.finish_work(id, &token, &outcome).await {
            tracing::warn!("cannot record the end of detached run {id}: {err:#}");
        }
        let _ = ended.send(token);
    });
    held
}

/// An outcome that no retry changes: the attempt (or run) could not start here.
fn failed(error: String) -> WorkOutcome {
    WorkOutcome {
        status: TaskStatus::Failed,
        error: Some(error),
        fatal: true,
        note: None,
        value: None,
        targets: None,
        handed_back: false,
        log: None,
    }
}

/// Runs one claimed attempt here, as the run's own executor would.
async fn run_one(
    runner: &Runner,
    runs: &Runs,
    work: &ClaimedWork,
    mut stopped: watch::Receiver<bool>,
    handed_back: &AtomicBool,
) -> WorkOutcome {
    let Some(id) = runner.dag.id(&work.task) else {
        return failed(format!("this worker's graph has no task `{}`", work.task));
    };
    let Ok(partition) = work.partition.parse::<Partition>() else {
        return failed(format!("bad partition `{}` in the queue", work.partition));
    };
    let task = runner.dag.task(id);
    let info = runs.context(runner, work, partition);
    let ctx = Ctx::new(Arc::clone(&info), work.task.clone(), work.attempt);
    let ran =
        // Its log reaches the run with its outcome, not as it goes.
        crate::run::run_attempt(task.action.clone(), ctx, task.policy.timeout, &mut stopped, None)
            .await;
    let notes = info.take_details(&work.task);
    WorkOutcome {
        status: ran.outcome.status,
        error: ran.outcome.error,
        fatal: ran.outcome.fatal,
        note: (!notes.is_empty()).then(|| notes.join("\n")),
        value: info.take_measured(&work.task),
        targets: info.take_written(&work.task),
        handed_back: handed_back.load(Ordering::SeqCst),
        log: crate::task_log::take(work.run_id, &work.task, work.attempt),
    }
}

/// The wait before an idle worker's next look at the queue: [`IDLE_LOOK`] and a random part
/// up to as much again, so that workers do not look together.
fn idle_look() -> Duration {
    IDLE_LOOK + Duration::from_millis(u64::from(rand_u32() % 1000))
}

/// Whether `stop` turned true (`false`: whoever could stop the worker is gone).
async fn signalled(stop: &mut watch::Receiver<bool>) -> bool {
    stop.wait_for(|stop| *stop).await.is_ok()
}

/// Sleeps until `deadline`; forever without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A random number from the standard library's randomly seeded hasher: enough to tell
/// workers and leases apart, without a dependency.
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}
