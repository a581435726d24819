//! The threads attempts run on. Like tokio's blocking pool (threads made on demand, idle ones
//! kept for a while), with one difference that matters for many short tasks: a thread counts
//! itself idle *before* it hands its result back. The next attempt, started the moment that
//! result arrives, then finds it instead of making another thread, so a run of short tasks
//! keeps a few warm threads (and a few malloc arenas) instead of growing dozens.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::sync::LockUnpoisoned as _;

/// An idle thread this long ends.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// How long a thread that just handed its result back yields before it sleeps: the next
/// attempt is usually started by that result, within microseconds, and a thread that is still
/// awake takes it without the wake-up of a sleeping one (a futex call and a context switch on
/// each side, which were a third of a 100,000-task run). Bounded by time, not by count: on a
/// core busy with task code, one yield can last a whole time slice.
const SPIN: Duration = Duration::from_micros(100);

/// Whether threads yield for [`SPIN`] before they sleep; see [`stop_spinning`].
static SPINNING: AtomicBool = AtomicBool::new(true);

/// Threads of this process sleep at once when idle, without yielding first. For a distributed
/// worker: every result it gets goes to the state store in a round trip that dwarfs a
/// wake-up, and the CPU its threads would spend yielding belongs to its other slots and, on a
/// shared host, to the database (4 workers and PostgreSQL on 2 cores: a run 7-8% faster, and
/// as much less CPU, without).
pub(crate) fn stop_spinning() {
    SPINNING.store(false, Ordering::Relaxed);
}

/// Yields until `ready` says so or [`SPIN`] has passed: whether it did.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    if !SPINNING.load(Ordering::Relaxed) {
        return ready();
    }
    let until = std::time::Instant::now() + SPIN;
    loop {
        if ready() {
            return true;
        }
        if std::time::Instant::now() >= until {
            return false;
        }
        std::thread::yield_now();
    }
}

/// Jobs submitted and not yet handed back, in every pool of the process.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Results handed back so far, in every pool of the process.
static ENDED: AtomicUsize = AtomicUsize::new(0);

/// For the control plane's runtime, just before its thread sleeps: while attempts run, it
/// yields for a moment first, as the threads of the pool do, since a result is usually
/// microseconds away and a thread that is awake takes it without being woken.
pub(crate) fn before_park() {
    if IN_FLIGHT.load(Ordering::Acquire) == 0 {
        return;
    }
    let seen = ENDED.load(Ordering::Acquire);
    spin_until(|| ENDED.load(Ordering::Acquire) != seen);
}

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
    /// Idle threads asleep on the condition variable (the others are still yielding).
    sleeping: usize,
}

pub(super) struct Pool<T> {
    state: Mutex<State<T>>,
    wake: Condvar,
    /// The queue's length, for threads that look without taking the lock.
    queued: AtomicUsize,
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
                sleeping: 0,
            }),
            wake: Condvar::new(),
            queued: AtomicUsize::new(0),
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
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        let mut state = self.lock();
        if state.idle > state.queue.len() {
            state.queue.push_back(queued);
            self.queued.store(state.queue.len(), Ordering::Release);
            let asleep = state.sleeping > 0;
            drop(state);
            // A thread still yielding finds the job by itself.
            if asleep {
                self.wake.notify_one();
            }
        } else {
            drop(state);
            let spawned = std::thread::Builder::new()
                .name("pipeline-task".into())
                .spawn(move || self.work(queued));
            if let Err(err) = spawned {
                IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
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
            IN_FLIGHT.fetch_sub(1, Ordering::AcqRel);
            ENDED.fetch_add(1, Ordering::AcqRel);
            next = self.wait_for_job();
        }
    }

    /// The first queued job, if any, counted off the idle threads.
    fn take(&self, state: &mut State<T>) -> Option<Queued<T>> {
        let job = state.queue.pop_front()?;
        self.queued.store(state.queue.len(), Ordering::Release);
        state.idle -= 1;
        Some(job)
    }

    /// The next queued job; `None` after [`KEEP_ALIVE`] without.
    fn wait_for_job(&self) -> Option<Queued<T>> {
        if spin_until(|| self.queued.load(Ordering::Acquire) > 0)
            && let Some(job) = self.take(&mut self.lock())
        {
            return Some(job);
        }
        let mut state = self.lock();
        loop {
            if let Some(job) = self.take(&mut state) {
                return Some(job);
            }
            state.sleeping += 1;
            let (guard, waited) = self
                .wake
                .wait_timeout(state, KEEP_ALIVE)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state = guard;
            state.sleeping -= 1;
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
