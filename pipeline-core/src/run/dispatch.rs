//! The coordinating side of a distributed run: the run's executor decides as in one process
//! (dependencies, retries and backoff, pools, alerts), but each attempt is queued in the state
//! store for a worker instead of run here. Attempts that become ready together are queued in
//! one statement. One watcher per run hears of finished attempts (`LISTEN`), rescues attempts
//! whose lease ran out every second, and reads every attempt it waits for now and then, should
//! a notification have gone astray.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::state::{
    FINISHED_CHANNEL, FinishedWork, NewWork, PLAIN_SUCCESS, PartitionKey, StateStore,
};
use crate::sync::LockUnpoisoned as _;

/// How often the watcher rescues attempts whose lease ran out: the bound on noticing a lost
/// worker after that.
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// How often the watcher reads every attempt it waits for: the fallback for a notification
/// missed other than by a lost connection (after which it reads them all at once). Read at
/// every look, once a second, it looked each queued attempt up by its primary key: 4,000
/// waiting, 4,000 lookups a second.
const READ_ALL_EVERY: Duration = Duration::from_secs(10);
/// Attempts per statement, at most.
const BATCH_MAX: usize = 1000;

/// What an attempt waits on: its id in the queue and its outcome, or why it was not queued.
type Queued = Result<(i64, oneshot::Receiver<FinishedWork>), String>;

/// The tasks of a distributed run: its watcher and the writer of its queue.
#[derive(Debug)]
pub(crate) struct Watchers {
    watcher: JoinHandle<()>,
    writer: JoinHandle<()>,
}

/// A distributed run's queue: what its attempts wait on.
#[derive(Debug)]
pub(crate) struct Dispatch {
    store: Arc<StateStore>,
    run_id: i64,
    key: PartitionKey,
    unit_mode: bool,
    fingerprint: String,
    waiting: Mutex<HashMap<i64, oneshot::Sender<FinishedWork>>>,
    /// Attempts announced as ended before their waiter was registered (a worker can claim and
    /// finish an attempt between its insert and that): read again once it is. Locked after
    /// `waiting`.
    early: Mutex<Early>,
    /// To the queue's writer.
    to_queue: mpsc::UnboundedSender<(NewWork, oneshot::Sender<Queued>)>,
}

/// Ended attempts that have no waiter yet, and the highest id with one so far. The queue's
/// writer registers a batch's waiters together after its insert, batches go in one after
/// another and ids come from one sequence, so an unknown id at or below that highest one is no
/// waiter's to come (its waiter already had it, from a look or a repeated notification): it is
/// not kept, and the set holds only what is in flight.
#[derive(Debug, Default)]
struct Early {
    ids: HashSet<i64>,
    registered_up_to: i64,
}

impl Early {
    /// Keeps the ended ids that have no waiter yet and may still get one.
    fn keep(&mut self, unknown: impl IntoIterator<Item = i64>) {
        let up_to = self.registered_up_to;
        self.ids
            .extend(unknown.into_iter().filter(|id| *id > up_to));
    }

    /// `id` has its waiter now: whether it was announced as ended before.
    fn registered(&mut self, id: i64) -> bool {
        self.registered_up_to = self.registered_up_to.max(id);
        self.ids.remove(&id)
    }
}

/// The listener's notifications as they arrive (`None`: it lost its connection, and may have
/// missed some), from a task of their own: a receive is never cancelled midway, and the
/// watcher takes everything that arrived at once.
fn forward(mut listener: PgListener) -> (mpsc::UnboundedReceiver<Option<String>>, JoinHandle<()>) {
    let (heard, hearing) = mpsc::unbounded_channel();
    let forwarder = tokio::spawn(async move {
        loop {
            // `try_recv`, not `recv`: `recv` reconnects without a word, and what was announced
            // meanwhile would wait for the next look.
            let notification = match listener.try_recv().await {
                Ok(Some(notification)) => Some(notification.payload().to_string()),
                Ok(None) => None,
                Err(err) => {
                    tracing::debug!("the queue's notifications paused: {err}");
                    tokio::time::sleep(LOOK_EVERY).await;
                    None
                }
            };
            if heard.send(notification).is_err() {
                return;
            }
        }
    });
    (hearing, forwarder)
}

/// Aborts a task when dropped: the forwarder ends with its watcher.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a batch of notifications of ended attempts says of this run's: which ended, which of
/// those simply succeeded (nothing to read), or that some did without saying which (a worker
/// of a version before ids were sent).
#[derive(Debug, Default)]
struct Ended {
    ids: Vec<i64>,
    plain: Vec<i64>,
    all: bool,
}

impl Ended {
    /// Takes one notification's payload: `run_id:attempt_id,attempt_id,..` (one outcome
    /// write's attempts of the run, a plain success marked), or `run_id` alone (read every
    /// attempt waited for).
    fn add(&mut self, run_id: i64, payload: &str) {
        let (run, attempts) = match payload.split_once(':') {
            Some((run, attempts)) => (run, Some(attempts)),
            None => (payload, None),
        };
        if run.parse::<i64>().ok() != Some(run_id) {
            return;
        }
        let Some(attempts) = attempts else {
            self.all = true;
            return;
        };
        for attempt in attempts.split(',') {
            let (attempt, plain) = match attempt.strip_suffix(PLAIN_SUCCESS) {
                Some(attempt) => (attempt, true),
                None => (attempt, false),
            };
            match attempt.parse::<i64>() {
                Ok(id) if plain => self.plain.push(id),
                Ok(id) => self.ids.push(id),
                Err(_) => self.all = true,
            }
        }
    }
}

impl Dispatch {
    /// The queue of run `run_id`, and its tasks (stopped by [`Dispatch::stop`]).
    pub async fn start(
        store: Arc<StateStore>,
        run_id: i64,
        key: PartitionKey,
        unit_mode: bool,
        fingerprint: String,
    ) -> anyhow::Result<(Arc<Dispatch>, Watchers)> {
        let pool = store
            .postgres(crate::message::Command("run --distributed"))?
            .clone();
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(FINISHED_CHANNEL).await?;
        let (to_queue, queued) = mpsc::unbounded_channel();
        let dispatch = Arc::new(Dispatch {
            store,
            run_id,
            key,
            unit_mode,
            fingerprint,
            waiting: Mutex::new(HashMap::new()),
            early: Mutex::new(Early::default()),
            to_queue,
        });
        let watched = Arc::clone(&dispatch);
        let watcher = tokio::spawn(async move { watched.watch(listener).await });
        let writing = Arc::clone(&dispatch);
        let writer = tokio::spawn(async move { writing.write_queue(queued).await });
        Ok((dispatch, Watchers { watcher, writer }))
    }

    /// Queues attempt `attempt` of `task`: what its worker's outcome arrives on.
    pub async fn queue(
        &self,
        task: &str,
        attempt: u32,
        priority: i32,
        pool: Option<(String, usize)>,
    ) -> anyhow::Result<(i64, oneshot::Receiver<FinishedWork>)> {
        let work = NewWork {
            run_id: self.run_id,
            key: self.key.clone(),
            unit_mode: self.unit_mode,
            task: task.to_string(),
            attempt,
            fingerprint: self.fingerprint.clone(),
            priority,
            pool,
        };
        let (reply, queued) = oneshot::channel();
        self.to_queue
            .send((work, reply))
            .map_err(|_| anyhow::anyhow!("the run's queue has stopped"))?;
        match queued.await {
            Ok(Ok(queued)) => Ok(queued),
            Ok(Err(why)) => Err(anyhow::anyhow!(why)),
            Err(_) => Err(anyhow::anyhow!("the run's queue has stopped")),
        }
    }

    /// Queues what arrives together in one statement, and registers each attempt's waiter
    /// before its caller hears of its id.
    async fn write_queue(
        &self,
        mut queued: mpsc::UnboundedReceiver<(NewWork, oneshot::Sender<Queued>)>,
    ) {
        while let Some(first) = queued.recv().await {
            // What the executor queues in the same turn, and while the last statement ran,
            // goes in with it.
            tokio::task::yield_now().await;
            let mut batch = vec![first];
            while batch.len() < BATCH_MAX {
                match queued.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let (work, replies): (Vec<NewWork>, Vec<oneshot::Sender<Queued>>) =
                batch.into_iter().unzip();
            match self.store.queue_work(&work).await {
                Ok(ids) => {
                    let ended_already: Vec<i64> = {
                        let mut waiting = self.waiting.lock_unpoisoned();
                        let mut early = self.early.lock_unpoisoned();
                        ids.into_iter()
                            .zip(replies)
                            .filter_map(|(id, reply)| {
                                let (done, finished) = oneshot::channel();
                                waiting.insert(id, done);
                                let _ = reply.send(Ok((id, finished)));
                                early.registered(id).then_some(id)
                            })
                            .collect()
                    };
                    if !ended_already.is_empty() {
                        self.deliver(Some(ended_already)).await;
                    }
                }
                Err(err) => {
                    let why = format!("{err:#}");
                    for reply in replies {
                        let _ = reply.send(Err(why.clone()));
                    }
                }
            }
        }
    }

    /// Cancels one attempt: its worker stops it at its next renewal.
    pub async fn cancel(&self, id: i64) {
        self.waiting.lock_unpoisoned().remove(&id);
        if let Err(err) = self.store.cancel_work(self.run_id, Some(&[id])).await {
            tracing::warn!("cannot cancel attempt {id} in the queue: {err:#}");
        }
    }

    /// Cancels whatever of the run is queued or running, and stops its tasks.
    pub async fn stop(&self, watchers: Watchers) {
        watchers.writer.abort();
        watchers.watcher.abort();
        if let Err(err) = self.store.cancel_work(self.run_id, None).await {
            tracing::warn!("cannot cancel the run's queued attempts: {err:#}");
        }
    }

    async fn watch(&self, listener: PgListener) {
        let (mut heard, forwarder) = forward(listener);
        let _forwarder = AbortOnDrop(forwarder);
        let mut next_look = tokio::time::Instant::now() + LOOK_EVERY;
        let mut next_read_all = tokio::time::Instant::now() + READ_ALL_EVERY;
        loop {
            let wanted = tokio::select! {
                notification = heard.recv() => match notification {
                    Some(Some(payload)) => {
                        // Every notification that already arrived is answered by one read;
                        // those that arrive while it runs, by the next.
                        tokio::task::yield_now().await;
                        let mut ended = Ended::default();
                        ended.add(self.run_id, &payload);
                        while let Ok(more) = heard.try_recv() {
                            match more {
                                Some(payload) => ended.add(self.run_id, &payload),
                                None => ended.all = true,
                            }
                        }
                        ended
                    }
                    // The listener reconnects on its own; what it missed, a read of all.
                    Some(None) => Ended { all: true, ..Ended::default() },
                    None => return,
                },
                () = tokio::time::sleep_until(next_look) => {
                    let now = tokio::time::Instant::now();
                    next_look = now + LOOK_EVERY;
                    self.rescue().await;
                    if now >= next_read_all {
                        next_read_all = now + READ_ALL_EVERY;
                        self.deliver(None).await;
                    }
                    continue;
                }
            };
            self.succeeded(wanted.plain);
            match wanted {
                Ended { all: true, .. } => self.deliver(None).await,
                Ended { ids, .. } if !ids.is_empty() => self.deliver(Some(ids)).await,
                Ended { .. } => {}
            }
        }
    }

    /// Hands each attempt announced as a plain success to its waiter, with no read. One with
    /// no waiter yet is kept as announced early: its row is read once it has one.
    fn succeeded(&self, plain: Vec<i64>) {
        if plain.is_empty() {
            return;
        }
        let mut waiting = self.waiting.lock_unpoisoned();
        let mut early = self.early.lock_unpoisoned();
        for id in plain {
            match waiting.remove(&id) {
                Some(waiter) => {
                    let _ = waiter.send(FinishedWork::plain_success(id));
                }
                None => early.keep([id]),
            }
        }
    }

    /// Rescues the run's attempts whose lease ran out (their worker was lost), and hands them
    /// to their waiters (one cancelled meanwhile has none, and is dropped).
    async fn rescue(&self) {
        if self.waiting.lock_unpoisoned().is_empty() {
            return;
        }
        match self.store.rescue_lost(self.run_id).await {
            Ok(lost) => self.hand_over(lost),
            Err(err) => tracing::warn!("cannot rescue the run's lost attempts: {err:#}"),
        }
    }

    /// Hands each attempt that ended to its waiter: of those announced (`ended`), or of every
    /// attempt waited for (`None`). Reading only the announced ones keeps the cost to what
    /// ended, not to what the run has outstanding.
    async fn deliver(&self, ended: Option<Vec<i64>>) {
        let ids: Vec<i64> = {
            let waiting = self.waiting.lock_unpoisoned();
            let mut early = self.early.lock_unpoisoned();
            match ended {
                Some(ended) => {
                    let (known, unknown): (Vec<i64>, Vec<i64>) =
                        ended.into_iter().partition(|id| waiting.contains_key(id));
                    early.keep(unknown);
                    known
                }
                None => {
                    // Reads every attempt waited for, those announced early among them.
                    early.ids.retain(|id| !waiting.contains_key(id));
                    waiting.keys().copied().collect()
                }
            }
        };
        if ids.is_empty() {
            return;
        }
        match self.store.finished_work(self.run_id, &ids).await {
            Ok(finished) => self.hand_over(finished),
            Err(err) => tracing::warn!("cannot read the run's finished attempts: {err:#}"),
        }
    }

    /// Gives each ended attempt to its waiter, if it still has one.
    fn hand_over(&self, ended: Vec<FinishedWork>) {
        let mut waiting = self.waiting.lock_unpoisoned();
        for work in ended {
            if let Some(waiter) = waiting.remove(&work.id) {
                let _ = waiter.send(work);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Early, Ended};

    #[test]
    fn an_attempt_announced_before_its_waiter_is_kept_until_then_and_no_longer() {
        let mut early = Early::default();
        assert!(!early.registered(5));
        // 3 had its waiter (and its outcome) already; 7 and 9 are not registered yet.
        early.keep([3, 7, 9]);
        assert!(early.registered(7));
        assert!(!early.registered(8));
        early.keep([7, 8]);
        assert!(early.ids.len() == 1 && early.ids.contains(&9));
    }

    #[test]
    fn notifications_name_this_runs_ended_attempts_or_say_some_ended() {
        let mut ended = Ended::default();
        for payload in ["7:41", "8:42", "7:43,45+,46", "77:44", "", "7:48+"] {
            ended.add(7, payload);
        }
        assert_eq!(ended.ids, [41, 43, 46]);
        assert_eq!(ended.plain, [45, 48]);
        assert!(!ended.all);
        ended.add(7, "7:47,x");
        assert_eq!(ended.ids, [41, 43, 46, 47]);
        assert!(ended.all, "`x` names no attempt: read them all");
        let mut old_worker = Ended::default();
        old_worker.add(7, "7");
        old_worker.add(7, "8");
        assert!(old_worker.ids.is_empty() && old_worker.all);
        let mut others = Ended::default();
        others.add(7, "8");
        assert!(others.ids.is_empty() && !others.all);
    }
}
