//! Writes attempts and markers to the state store in the background, in batches: what arrives
//! within a few milliseconds of a first write (or while the previous batch was written) goes
//! in one transaction. This keeps durable state cheap when thousands of short tasks finish at
//! once; a crash loses at most that window, which only causes a harmless re-run.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::state::{AttemptRecord, MarkerRecord, PartitionKey, StateStore};
use crate::status::Severity;

/// Writes waiting at most: when the store falls behind, tasks wait for room (and the executor
/// with them) instead of memory growing with the backlog.
const QUEUE: usize = 4096;

/// How long to gather writes before committing them together.
const BATCH_WINDOW: Duration = Duration::from_millis(5);

enum Write {
    Attempt(AttemptRecord),
    /// A successful attempt: its row and the task's completion marker, with the databases
    /// it wrote to.
    Completed(AttemptRecord, Option<String>),
    /// An alert opened (with its severity) or resolved (`None`) for a task.
    Alert(String, Option<Severity>),
}

/// The sending side; cheap to clone into every running task.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<Write>,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Write::Attempt(a) => a.fmt(f),
            Write::Completed(a, _) => write!(f, "completed {a:?}"),
            Write::Alert(task, severity) => write!(f, "alert {task}: {severity:?}"),
        }
    }
}

/// The writing side: [`RecorderTask::finish`] waits until everything sent is written.
#[derive(Debug)]
pub struct RecorderTask {
    handle: JoinHandle<anyhow::Result<()>>,
}

pub fn start(store: Arc<StateStore>, key: PartitionKey) -> (Recorder, RecorderTask) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let handle = tokio::spawn(write_batches(store, key, rx));
    (Recorder { tx }, RecorderTask { handle })
}

impl Recorder {
    pub async fn attempt(&self, record: AttemptRecord) {
        self.send(Write::Attempt(record)).await;
    }

    /// The last attempt of a task that succeeded: recorded, and the task marked complete.
    pub async fn completed(&self, record: AttemptRecord, targets: Option<String>) {
        self.send(Write::Completed(record, targets)).await;
    }

    /// Queues a write; waits only while the queue is full. The wait is boxed: a channel's send
    /// future holds the write, and inline it made every task's future (which the executor
    /// allocates and moves once per task) 1.4 KB larger for a wait that rarely happens.
    async fn send(&self, write: Write) {
        match self.tx.try_send(write) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(write)) => {
                // Fails only after the writer stopped on an error, which `finish` reports.
                let _ = Box::pin(self.tx.send(write)).await;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    pub fn alert(&self, task: String, severity: Option<Severity>) {
        // Called where nothing can wait; alerts are rare, so a full queue just gets a helper.
        if let Err(mpsc::error::TrySendError::Full(write)) =
            self.tx.try_send(Write::Alert(task, severity))
        {
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(write).await;
            });
        }
    }
}

impl RecorderTask {
    /// Waits for every write sent before `recorder` was dropped. All clones must be dropped.
    pub async fn finish(self, recorder: Recorder) -> anyhow::Result<()> {
        drop(recorder);
        self.handle
            .await
            .map_err(|err| anyhow::anyhow!("the state writer crashed: {err}"))?
    }
}

async fn write_batches(
    store: Arc<StateStore>,
    key: PartitionKey,
    mut rx: mpsc::Receiver<Write>,
) -> anyhow::Result<()> {
    while let Some(first) = rx.recv().await {
        let mut attempts: Vec<AttemptRecord> = Vec::new();
        let mut index: HashMap<(String, u32), usize> = HashMap::new();
        let mut markers = Vec::new();
        let mut alerts: Vec<(String, Option<Severity>)> = Vec::new();
        // The latest state of an attempt wins: one row per attempt and batch.
        let mut add_attempt =
            |record: AttemptRecord| match index.entry((record.task.clone(), record.attempt)) {
                Entry::Occupied(at) => attempts[*at.get()] = record,
                Entry::Vacant(slot) => {
                    slot.insert(attempts.len());
                    attempts.push(record);
                }
            };
        let mut add = |write: Write| match write {
            Write::Attempt(record) => add_attempt(record),
            Write::Completed(record, targets) => {
                markers.push(MarkerRecord {
                    task: record.task.clone(),
                    run_id: record.run_id,
                    completed_at: record.finished_at.unwrap_or(record.started_at),
                    targets,
                });
                add_attempt(record);
            }
            Write::Alert(task, severity) => alerts.push((task, severity)),
        };
        add(first);
        tokio::time::sleep(BATCH_WINDOW).await;
        while let Ok(write) = rx.try_recv() {
            add(write);
        }
        store
            .record(&key, &attempts, &markers)
            .await
            .map_err(|err| err.context("cannot write task results to the state store"))?;
        if !alerts.is_empty() {
            store
                .set_alerts(&key, &alerts, crate::date::now_millis())
                .await
                .map_err(|err| err.context("cannot record alerts in the state store"))?;
        }
    }
    Ok(())
}
