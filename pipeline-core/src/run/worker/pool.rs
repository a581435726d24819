//! The threads attempts run on. Like tokio's blocking pool (threads made on demand, idle ones
//! kept for a while), with one difference that matters for many short tasks: a thread counts
//! itself idle *before* it hands its result back. The next attempt, started the moment that
//! result arrives, then finds it instead of making another thread, so a run of short tasks
//! keeps a few warm threads (and a few malloc arenas) instead of growing dozens.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::sync::LockUnpoisoned as _;

/// An idle thread this long ends.
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Work for a thread, and where its result goes.
type Job<T> = Box<dyn FnOnce() -> T + Send>;

struct Queued<T> {
    job: Job<T>,
    reply: oneshot::Sender<T>,
    done: Arc<AtomicBool>,
}

#[derive(Default)]
struct State<T> {
    queue: VecDeque<Queued<T>>,
    idle: usize,
}

pub(super) struct Pool<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
}

/// A job on its way: its result, and whether its thread is done with it.
pub(super) struct Submitted<T> {
    pub result: oneshot::Receiver<T>,
    pub done: Arc<AtomicBool>,
}

impl<T: Send + 'static> Pool<T> {
    pub fn new() -> Self {
        Pool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                idle: 0,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock_unpoisoned()
    }

    /// Runs `job` on an idle thread, or on a new one when none is idle.
    pub fn submit(&'static self, job: Job<T>) -> Submitted<T> {
        let (reply, result) = oneshot::channel();
        let done = Arc::new(AtomicBool::new(false));
        let queued = Queued {
            job,
            reply,
            done: Arc::clone(&done),
        };
        let mut state = self.lock();
        if state.idle > state.queue.len() {
            state.queue.push_back(queued);
            drop(state);
            self.wake.notify_one();
        } else {
            drop(state);
            let spawned = std::thread::Builder::new()
                .name("pipeline-task".into())
                .spawn(move || self.work(queued));
            if let Err(err) = spawned {
                // Nothing to run it on: the attempt sees its reply dropped and fails with
                // "its thread ended unexpectedly".
                tracing::error!("cannot start a thread for a task attempt: {err}");
            }
        }
        Submitted { result, done }
    }

    /// A thread's life: its first job, then whatever comes while it is idle.
    fn work(&'static self, first: Queued<T>) {
        let mut next = Some(first);
        while let Some(Queued { job, reply, done }) = next.take() {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            done.store(true, Ordering::Release);
            // Idle before the result goes out: whoever starts the next attempt on receiving it
            // finds this thread.
            self.lock().idle += 1;
            if let Ok(value) = outcome {
                let _ = reply.send(value);
            }
            next = self.wait_for_job();
        }
    }

    /// The next queued job, counted off the idle threads; `None` after [`KEEP_ALIVE`] without.
    fn wait_for_job(&self) -> Option<Queued<T>> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.idle -= 1;
                return Some(job);
            }
            let (guard, waited) = self
                .wake
                .wait_timeout(state, KEEP_ALIVE)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = guard;
            if waited.timed_out() && state.queue.is_empty() {
                state.idle -= 1;
                return None;
            }
        }
    }
}

/// The process's pool for one kind of result.
pub(super) fn shared<T: Send + 'static>(cell: &'static OnceLock<Pool<T>>) -> &'static Pool<T> {
    cell.get_or_init(Pool::new)
}
