//! The coordinating side of a distributed run: the run's executor decides as in one process
//! (dependencies, retries and backoff, pools, alerts), but each attempt is queued in the state
//! store for a worker instead of run here. One watcher per run hears of finished attempts
//! (`LISTEN`), looks every second as well, and rescues attempts whose lease ran out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use crate::LockUnpoisoned as _;
use crate::state::{FINISHED_CHANNEL, FinishedWork, NewWork, PartitionKey, StateStore};

/// How often the watcher looks without being woken: the bound on noticing a lost worker
/// after its lease ran out, and the fallback when a notification is missed.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A distributed run's queue: what its attempts wait on.
#[derive(Debug)]
pub(crate) struct Dispatch {
    store: Arc<StateStore>,
    run_id: i64,
    key: PartitionKey,
    unit_mode: bool,
    fingerprint: String,
    waiting: Mutex<HashMap<i64, oneshot::Sender<FinishedWork>>>,
    /// Wakes the watcher when the run cancels.
    changed: Notify,
}

impl Dispatch {
    /// The queue of run `run_id`, and its watcher (stopped by [`Dispatch::stop`]).
    pub async fn start(
        store: Arc<StateStore>,
        run_id: i64,
        key: PartitionKey,
        unit_mode: bool,
        fingerprint: String,
    ) -> anyhow::Result<(Arc<Dispatch>, JoinHandle<()>)> {
        let pool = store.postgres("`daily run --distributed`")?.clone();
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(FINISHED_CHANNEL).await?;
        let dispatch = Arc::new(Dispatch {
            store,
            run_id,
            key,
            unit_mode,
            fingerprint,
            waiting: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        });
        let watched = Arc::clone(&dispatch);
        let watcher = tokio::spawn(async move { watched.watch(listener).await });
        Ok((dispatch, watcher))
    }

    /// Queues attempt `attempt` of `task`: what its worker's outcome arrives on.
    pub async fn queue(
        &self,
        task: &str,
        attempt: u32,
        priority: i32,
    ) -> anyhow::Result<(i64, oneshot::Receiver<FinishedWork>)> {
        let (tx, rx) = oneshot::channel();
        let work = NewWork {
            run_id: self.run_id,
            key: self.key.clone(),
            unit_mode: self.unit_mode,
            task: task.to_string(),
            attempt,
            fingerprint: self.fingerprint.clone(),
            priority,
        };
        let id = self.store.queue_work(&work).await?;
        self.waiting.lock_unpoisoned().insert(id, tx);
        Ok((id, rx))
    }

    /// Cancels one attempt: its worker stops it at its next renewal.
    pub async fn cancel(&self, id: i64) {
        self.waiting.lock_unpoisoned().remove(&id);
        if let Err(err) = self.store.cancel_work(self.run_id, Some(&[id])).await {
            tracing::warn!("cannot cancel attempt {id} in the queue: {err:#}");
        }
    }

    /// Cancels whatever of the run is queued or running, and stops the watcher.
    pub async fn stop(&self, watcher: JoinHandle<()>) {
        if let Err(err) = self.store.cancel_work(self.run_id, None).await {
            tracing::warn!("cannot cancel the run's queued attempts: {err:#}");
        }
        watcher.abort();
        self.changed.notify_one();
    }

    async fn watch(&self, mut listener: PgListener) {
        let ours = self.run_id.to_string();
        let mut next_look = tokio::time::Instant::now() + LOOK_EVERY;
        loop {
            let look = tokio::select! {
                notification = listener.recv() => match notification {
                    Ok(notification) => {
                        // Every notification that already arrived is answered by one read.
                        let mut mine = notification.payload() == ours;
                        while let Some(more) = listener.next_buffered() {
                            mine |= more.payload() == ours;
                        }
                        if !mine {
                            continue;
                        }
                        false
                    }
                    Err(err) => {
                        // The listener reconnects on its own; until then, the looks.
                        tracing::debug!("the queue's notifications paused: {err}");
                        tokio::time::sleep(LOOK_EVERY).await;
                        continue;
                    }
                },
                () = tokio::time::sleep_until(next_look) => true,
                () = self.changed.notified() => false,
            };
            if look {
                next_look = tokio::time::Instant::now() + LOOK_EVERY;
            }
            self.deliver(look).await;
        }
    }

    /// Hands each attempt that ended to its waiter; on a `look`, first rescues the attempts
    /// whose lease ran out.
    async fn deliver(&self, look: bool) {
        let ids: Vec<i64> = self.waiting.lock_unpoisoned().keys().copied().collect();
        if ids.is_empty() {
            return;
        }
        match self.store.finished_work(self.run_id, &ids, look).await {
            Ok(finished) => {
                let mut waiting = self.waiting.lock_unpoisoned();
                for work in finished {
                    if let Some(waiter) = waiting.remove(&work.id) {
                        let _ = waiter.send(work);
                    }
                }
            }
            Err(err) => tracing::warn!("cannot read the run's finished attempts: {err:#}"),
        }
    }
}
