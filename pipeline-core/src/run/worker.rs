//! Where task code runs: each attempt on a thread of its own, never on the threads of the run's
//! control plane (scheduling, the lock's heartbeat, signals, timeouts, state writes).
//!
//! ETL code blocks (a synchronous client, a subprocess) and burns CPU (a transform) before or
//! between its awaits. An attempt therefore runs on a thread of its own ([`pool`]), where
//! `Handle::block_on` polls it; its sockets and timers are driven by the task runtime's own I/O
//! threads. Blocking code holds up only its own attempt's thread.
//!
//! Such code cannot be interrupted where it is: a timeout or a signal takes effect at the
//! attempt's next await. Until then the control plane goes on without it (the attempt is
//! recorded at its limit), and [`Running::busy_for`] tells the watchdog how long the attempt has
//! held its thread without returning to an await, so that the log names it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, Runtime};
use tokio::sync::oneshot;
use tracing::Instrument as _;

mod pool;

pub(crate) use pool::{before_park, stop_spinning};

use crate::ctx::Ctx;
use crate::dag::Action;

/// How an attempt's work ended: its own result, or a panic (with its message).
pub(super) type WorkResult = Result<anyhow::Result<()>, String>;

/// The runtime whose I/O threads drive task code's sockets and timers. Shared by every run of
/// the process.
fn task_runtime() -> &'static Handle {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("pipeline-task-io")
                .enable_all()
                .build()
                // Without threads there is nothing to run tasks on; no caller can recover.
                .unwrap_or_else(|err| panic!("cannot start the task runtime: {err}"))
        })
        .handle()
}

/// An attempt running on its own thread.
#[derive(Debug)]
pub(crate) struct Running {
    /// Dropped (or sent) to ask the work to stop at its next await.
    stop: Option<oneshot::Sender<()>>,
    /// The work's result, until it has been taken.
    result: Option<oneshot::Receiver<Option<WorkResult>>>,
    /// Set by the attempt's thread once it is done with the work.
    done: Arc<std::sync::atomic::AtomicBool>,
    /// When the work's current poll started, in ms since `epoch`; 0 while it waits.
    polling_since: Arc<AtomicU64>,
    epoch: Instant,
}

/// Starts an attempt of `action` on a thread of its own.
pub(super) fn start(action: Action, ctx: Ctx) -> Running {
    let (stop, stopped) = oneshot::channel::<()>();
    let epoch = Instant::now();
    let polling_since = Arc::new(AtomicU64::new(0));
    let watched = Arc::clone(&polling_since);
    let handle = task_runtime().clone();
    static POOL: OnceLock<pool::Pool<Option<WorkResult>>> = OnceLock::new();
    let submitted = pool::shared(&POOL).submit(Box::new(move || {
        let span = crate::task_log::attempt_span(ctx.run_id(), ctx.task(), ctx.attempt());
        handle.block_on(
            async move {
                let work = Watched {
                    inner: action.start(&ctx),
                    polling_since: watched,
                    epoch,
                };
                tokio::select! {
                    // A stop request wins over work that is ready at the same time.
                    biased;
                    _ = stopped => None,
                    result = work => Some(result),
                }
            }
            .instrument(span),
        )
    }));
    Running {
        stop: Some(stop),
        result: Some(submitted.result),
        done: submitted.done,
        polling_since,
        epoch,
    }
}

impl Running {
    /// Waits for the work's result; `None` when it was stopped or its thread died.
    pub async fn result(&mut self) -> Option<WorkResult> {
        let receiver = self.result.as_mut()?;
        let result = match receiver.await {
            Ok(result) => result,
            Err(_) => Some(Err("its thread ended unexpectedly".into())),
        };
        self.result = None;
        result
    }

    /// Asks the work to stop at its next await (it is dropped there, which cancels it) and
    /// waits up to `grace` for its thread to be done with it. Whether it was.
    pub async fn stop_within(&mut self, grace: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // The thread marks itself done before it hands the result back.
        self.is_finished() || tokio::time::timeout(grace, self.result()).await.is_ok()
    }

    /// Whether the attempt's thread is done.
    pub fn is_finished(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::Acquire)
    }

    /// How long the work has been inside one poll: blocking or computing without reaching an
    /// await. Zero while it waits at an await.
    pub fn busy_for(&self) -> Duration {
        match self.polling_since.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => self
                .epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(since - 1)),
        }
    }
}

/// A task's future that records when each poll starts and catches panics.
struct Watched<F> {
    inner: F,
    polling_since: Arc<AtomicU64>,
    epoch: Instant,
}

impl<F: Future<Output = anyhow::Result<()>> + Unpin> Future for Watched<F> {
    type Output = WorkResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WorkResult> {
        // Stored +1 so that 0 keeps meaning "not polling".
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.polling_since.store(now, Ordering::Relaxed);
        let this = &mut *self;
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Pin::new(&mut this.inner).poll(cx)
        }));
        self.polling_since.store(0, Ordering::Relaxed);
        match polled {
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(panic))),
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}
