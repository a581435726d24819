//! One task in one run: its attempts, each under the task's timeout, retried with backoff
//! while attempts remain and the error is not fatal; cancelled by the run's signal.

use std::future::Future as _;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument as _;

use super::backoff;
use super::recorder::Recorder;
use super::report::TaskReport;
use crate::ctx::{Ctx, RunInfo};
use crate::dag::{Action, Policy};
use crate::date::{format_duration, now_millis};
use crate::state::AttemptRecord;
use crate::status::TaskStatus;
use crate::task::{Fatal, TaskFuture};

pub(super) struct AttemptLoop {
    pub name: String,
    pub policy: Policy,
    pub action: Action,
    pub info: Arc<RunInfo>,
    pub recorder: Recorder,
    pub cancel: watch::Receiver<bool>,
    /// Notes the attempts left (`Ctx::detail`), for the report.
    pub notes: Vec<String>,
}

/// How one attempt ended.
struct Outcome {
    status: TaskStatus,
    error: Option<String>,
    fatal: bool,
}

impl AttemptLoop {
    pub async fn run(mut self) -> TaskReport {
        let started = Instant::now();
        let max_attempts = self.policy.retries.saturating_add(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (outcome, record) = self.attempt(attempt).await;
            if outcome.status == TaskStatus::Succeeded {
                // The task's work has committed: only now is it complete.
                self.recorder.completed(record).await;
            } else {
                self.recorder.attempt(record).await;
            }
            let retryable = matches!(outcome.status, TaskStatus::Failed | TaskStatus::TimedOut)
                && !outcome.fatal;
            if retryable && attempt < max_attempts {
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
            let error = match (outcome.fatal, outcome.error) {
                (true, Some(error)) if max_attempts > attempt => {
                    Some(format!("{error} (fatal: not retried)"))
                }
                (_, error) => error,
            };
            return self.report(outcome.status, attempt, started, error);
        }
    }

    /// Runs one attempt; its outcome and the record of it (written by the caller).
    async fn attempt(&mut self, attempt: u32) -> (Outcome, AttemptRecord) {
        let record = AttemptRecord {
            run_id: self.info.run_id,
            task: self.name.clone(),
            attempt,
            status: TaskStatus::Running,
            started_at: now_millis(),
            finished_at: None,
            error: None,
            note: None,
        };
        let ctx = Ctx::new(Arc::clone(&self.info), self.name.clone(), attempt);
        let span = tracing::info_span!("task", task = %self.name, attempt);
        // A timeout or cancellation drops the attempt's future, which cancels it at its
        // current await point; a panic inside it is caught and counts as a failure.
        let work = catch_panic(self.action.start(&ctx)).instrument(span);
        let mut work = std::pin::pin!(work);
        // An attempt that finishes at its first poll needs no "running" record; one that waits
        // gets it before waiting, so that a crash leaves a trace of what was running.
        let first = std::future::poll_fn(|cx| Poll::Ready(work.as_mut().poll(cx))).await;
        if let Poll::Ready(result) = first {
            return self.finish(record, outcome_of(result));
        }
        self.recorder.attempt(record.clone()).await;
        let timeout = self.policy.timeout.unwrap_or(Duration::MAX);
        let outcome = tokio::select! {
            result = work.as_mut() => outcome_of(result),
            () = sleep_or_forever(timeout) => Outcome {
                status: TaskStatus::TimedOut,
                error: Some(format!("timed out after {}", format_duration(timeout))),
                fatal: false,
            },
            () = cancelled(&mut self.cancel) => Outcome {
                status: TaskStatus::Cancelled,
                error: Some("cancelled by a signal".into()),
                fatal: false,
            },
        };
        self.finish(record, outcome)
    }

    fn finish(&mut self, mut record: AttemptRecord, outcome: Outcome) -> (Outcome, AttemptRecord) {
        record.status = outcome.status;
        record.finished_at = Some(now_millis());
        record.error = outcome.error.clone();
        let notes = self.info.take_details(&self.name);
        record.note = (!notes.is_empty()).then(|| notes.join("; "));
        self.notes.extend(notes);
        (outcome, record)
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
            cause: None,
            details: self.notes.clone(),
        }
    }
}

fn outcome_of(result: Result<anyhow::Result<()>, Box<dyn std::any::Any + Send>>) -> Outcome {
    match result {
        Ok(Ok(())) => Outcome {
            status: TaskStatus::Succeeded,
            error: None,
            fatal: false,
        },
        Ok(Err(err)) => Outcome {
            status: TaskStatus::Failed,
            fatal: Fatal::is_fatal(&err),
            error: Some(crate::config::redact_text(&format!("{err:#}"))),
        },
        Err(panic) => Outcome {
            status: TaskStatus::Failed,
            error: Some(format!("panicked: {}", panic_message(panic))),
            fatal: false,
        },
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
pub(super) async fn cancelled(cancel: &mut watch::Receiver<bool>) {
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
