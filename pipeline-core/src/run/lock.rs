//! One run per (pipeline, partition) at a time. The holder proves it is alive with a heartbeat
//! that runs on the control plane, where no task code can starve it.
//!
//! A lock is broken (its holder killed with -9, its machine lost) only when its holder is
//! surely gone: a holder that shares this process's PID space (the same kernel boot and PID
//! namespace) is gone when its pid is; any other holder when its heartbeat is older than
//! [`STALE_AFTER_MS`] by the state store's clock, so that hosts' clocks never matter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::date::{format_timestamp, now_millis};
use crate::host::hostname;
use crate::state::{Heartbeat, LockAttempt, LockHolder, PartitionKey, StateStore};

/// How often the holder refreshes its heartbeat.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// A lock of another PID space whose heartbeat is older than this belongs to a process that
/// is gone: six heartbeats missed.
const STALE_AFTER_MS: i64 = 60_000;
/// How often `--wait` asks again.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// A held run lock; [`RunLock::release`] frees it (a crash leaves it to go stale).
#[derive(Debug)]
pub struct RunLock {
    store: Arc<StateStore>,
    key: PartitionKey,
    token: String,
    heartbeat: JoinHandle<()>,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// A live run holds it.
    #[error(transparent)]
    Held(#[from] LockHeld),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// The lock is held by a live run.
#[derive(Debug, thiserror::Error)]
#[error(
    "another run of `{pipeline}` for {partition}{test} is in progress: pid {pid} on {host}, \
     started {started} UTC; wait for it to end, or pass --wait"
)]
pub struct LockHeld {
    pipeline: String,
    partition: String,
    test: &'static str,
    pid: i64,
    host: String,
    started: String,
}

/// Takes the run lock of `key`; with `wait`, polls until the holder is done. Should the lock be
/// taken from this process later (its heartbeats did not reach the store for a minute), `lost`
/// is set, so that the run stops instead of running beside another.
pub async fn acquire(
    store: Arc<StateStore>,
    key: &PartitionKey,
    wait: bool,
    lost: watch::Sender<bool>,
) -> Result<RunLock, LockError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let host = hostname();
    let pid = i64::from(std::process::id());
    let started_at = now_millis();
    let token = format!(
        "{host}:{pid}:{started_at}:{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let me = this_process(token.clone(), started_at);
    loop {
        match store.try_lock(key, &me).await? {
            LockAttempt::Acquired => break,
            LockAttempt::Held(holder) if is_gone(&holder) => {
                let broken = store.break_lock(key, &holder, now_millis()).await?;
                if broken {
                    tracing::warn!(
                        "broke the run lock of {} {} left by pid {} on {} ({}); its unfinished \
                         tasks are recorded as cancelled",
                        key.pipeline,
                        key.partition,
                        holder.pid,
                        holder.host,
                        why_gone(&holder)
                    );
                }
            }
            LockAttempt::Held(holder) if !wait => {
                return Err(LockHeld {
                    pipeline: key.pipeline.clone(),
                    partition: key.partition.clone(),
                    test: if key.namespace == crate::state::Namespace::Test {
                        " (test mode)"
                    } else {
                        ""
                    },
                    pid: holder.pid,
                    host: holder.host,
                    started: format_timestamp(holder.started_at),
                }
                .into());
            }
            LockAttempt::Held(_) => tokio::time::sleep(WAIT_POLL).await,
        }
    }
    let heartbeat = tokio::spawn(beat(Arc::clone(&store), key.clone(), token.clone(), lost));
    Ok(RunLock {
        store,
        key: key.clone(),
        token,
        heartbeat,
    })
}

/// Closes what runs whose process is gone left behind (their locks, runs `abandoned`), so
/// that `history` and `status` never show as running what no process runs.
pub async fn reap(store: &StateStore, pipeline: &str) -> anyhow::Result<()> {
    for (key, holder) in store.locks(pipeline).await? {
        if is_gone(&holder) && store.break_lock(&key, &holder, now_millis()).await? {
            tracing::info!(
                "the run of {} {} by pid {} on {} was abandoned ({}); recorded so",
                key.pipeline,
                key.partition,
                holder.pid,
                holder.host,
                why_gone(&holder)
            );
        }
    }
    Ok(())
}

/// Refreshes the heartbeat until aborted; sets `lost` if the lock is no longer this run's.
async fn beat(store: Arc<StateStore>, key: PartitionKey, token: String, lost: watch::Sender<bool>) {
    loop {
        tokio::time::sleep(HEARTBEAT_EVERY).await;
        match store.heartbeat(&key, &token).await {
            Ok(Heartbeat::Held) => {}
            Ok(Heartbeat::CancelRequested) => {
                tracing::warn!(
                    "{} asked this run of {} {} to stop: cancelling",
                    crate::message::Command("cancel"),
                    key.pipeline,
                    key.partition
                );
                let _ = lost.send(true);
                return;
            }
            Ok(Heartbeat::Lost) => {
                tracing::error!(
                    "the run lock of {} {} was taken over by another process (this run's \
                     heartbeats did not reach the state store in time); stopping this run",
                    key.pipeline,
                    key.partition
                );
                let _ = lost.send(true);
                return;
            }
            Err(err) => tracing::warn!("cannot refresh the run lock's heartbeat: {err:#}"),
        }
    }
}

impl RunLock {
    pub async fn release(self) -> anyhow::Result<()> {
        self.heartbeat.abort();
        self.store.unlock(&self.key, &self.token).await
    }
}

/// This process as the holder of `token`, taken at `started_at`.
pub(crate) fn this_process(token: String, started_at: i64) -> LockHolder {
    LockHolder {
        token,
        host: hostname(),
        pid: i64::from(std::process::id()),
        pid_space: pid_space().to_string(),
        started_at,
        heartbeat_at: 0,
        heartbeat_age_ms: 0,
    }
}

/// Whether the holder of a lock (or of a fired tick) is surely gone.
pub(crate) fn is_gone(holder: &LockHolder) -> bool {
    if !holder.pid_space.is_empty() && holder.pid_space == pid_space() {
        !process_alive(holder.pid)
    } else {
        holder.heartbeat_age_ms > STALE_AFTER_MS
    }
}

/// Why [`is_gone`] says so.
pub(crate) fn why_gone(holder: &LockHolder) -> String {
    if holder.pid_space == pid_space() {
        "the process is gone".into()
    } else {
        format!(
            "no heartbeat since {} UTC by the state store's clock",
            format_timestamp(holder.heartbeat_at)
        )
    }
}

/// Which process ID space this process lives in: the kernel's boot and the PID namespace. Two
/// processes with the same value see the same pids; empty where this cannot be known.
fn pid_space() -> &'static str {
    static SPACE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SPACE.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id");
        let namespace = std::fs::read_link("/proc/self/ns/pid");
        match (boot, namespace) {
            (Ok(boot), Ok(namespace)) => format!("{}/{}", boot.trim(), namespace.display()),
            _ => String::new(),
        }
    })
}

/// Whether a process of this PID space is alive (a zombie has exited).
fn process_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => exists_unseen(pid),
    }
}

/// Whether a process that `/proc` does not show exists anyway: where `/proc` hides other
/// users' processes (`hidepid`), the kernel still says that one exists and is not ours to
/// signal. Taking such a holder for gone would break a live run's lock.
fn exists_unseen(pid: i64) -> bool {
    // 0 and negative pids name process groups, or every process.
    let Some(pid) = libc::pid_t::try_from(pid).ok().filter(|pid| *pid > 0) else {
        return false;
    };
    // SAFETY: signal 0 sends nothing; the kernel only checks that the process exists and may
    // be signalled by this one.
    let checked = unsafe { libc::kill(pid, 0) };
    checked == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(pid_space: &str, pid: i64, heartbeat_age_ms: i64) -> LockHolder {
        LockHolder {
            token: "t".into(),
            host: "h".into(),
            pid,
            pid_space: pid_space.into(),
            started_at: 0,
            heartbeat_at: 0,
            heartbeat_age_ms,
        }
    }

    #[test]
    fn a_live_holder_of_this_pid_space_is_never_gone_however_old_its_heartbeat() {
        let me = i64::from(std::process::id());
        assert!(!pid_space().is_empty(), "Linux tells the PID space");
        assert!(!is_gone(&holder(pid_space(), me, 10 * STALE_AFTER_MS)));
        assert!(is_gone(&holder(pid_space(), i64::from(i32::MAX), 0)));
    }

    #[test]
    fn a_process_that_proc_does_not_show_is_asked_of_the_kernel() {
        assert!(exists_unseen(i64::from(std::process::id())));
        assert!(!exists_unseen(i64::from(i32::MAX)));
        // Process groups and every process are never a holder.
        assert!(!exists_unseen(0));
        assert!(!exists_unseen(-1));
        assert!(!exists_unseen(i64::MAX));
    }

    #[test]
    fn a_holder_elsewhere_is_gone_only_when_its_heartbeat_is_stale() {
        let alive_here = i64::from(std::process::id());
        assert!(!is_gone(&holder("other", alive_here, STALE_AFTER_MS)));
        assert!(is_gone(&holder("other", alive_here, STALE_AFTER_MS + 1)));
        assert!(!is_gone(&holder("", i64::from(i32::MAX), 1000)));
    }
}
