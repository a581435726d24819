//! One run per (pipeline, partition) at a time. The holder proves it is alive with a heartbeat;
//! a lock whose holder is gone (killed with -9, machine lost) is broken instead of blocking
//! the next run forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::date::{format_timestamp, now_millis};
use crate::state::{LockAttempt, LockHolder, PartitionKey, StateStore};

/// How often the holder refreshes its heartbeat.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// A lock whose heartbeat is older than this belongs to a process that is gone.
const STALE_AFTER_MS: i64 = 60_000;
/// How often `--wait` asks again.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// A held run lock; [`RunLock::release`] frees it (a crash leaves it to go stale).
#[derive(Debug)]
pub struct RunLock {
    store: Arc<dyn StateStore>,
    key: PartitionKey,
    token: String,
    heartbeat: JoinHandle<()>,
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

/// Takes the run lock of `key`; with `wait`, polls until the holder is done.
pub async fn acquire(
    store: Arc<dyn StateStore>,
    key: &PartitionKey,
    wait: bool,
) -> anyhow::Result<RunLock> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let host = hostname();
    let pid = i64::from(std::process::id());
    let started_at = now_millis();
    let token = format!(
        "{host}:{pid}:{started_at}:{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    loop {
        let now = now_millis();
        let me = LockHolder {
            token: token.clone(),
            host: host.clone(),
            pid,
            started_at,
            heartbeat_at: now,
        };
        match store.try_lock(key, &me).await? {
            LockAttempt::Acquired => break,
            LockAttempt::Held(holder) if is_stale(&holder, &host, now) => {
                tracing::warn!(
                    "breaking the run lock of {} {} left by pid {} on {} (no sign of life since {} UTC); \
                     its unfinished tasks are recorded as cancelled",
                    key.pipeline,
                    key.partition,
                    holder.pid,
                    holder.host,
                    format_timestamp(holder.heartbeat_at)
                );
                store.break_lock(key, &holder.token, now).await?;
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
    let heartbeat = tokio::spawn({
        let (store, key, token) = (Arc::clone(&store), key.clone(), token.clone());
        async move {
            loop {
                tokio::time::sleep(HEARTBEAT_EVERY).await;
                if let Err(err) = store.heartbeat(&key, &token, now_millis()).await {
                    tracing::warn!("cannot refresh the run lock's heartbeat: {err:#}");
                }
            }
        }
    });
    Ok(RunLock {
        store,
        key: key.clone(),
        token,
        heartbeat,
    })
}

impl RunLock {
    pub async fn release(self) -> anyhow::Result<()> {
        self.heartbeat.abort();
        self.store.unlock(&self.key, &self.token).await
    }
}

fn is_stale(holder: &LockHolder, my_host: &str, now: i64) -> bool {
    now - holder.heartbeat_at > STALE_AFTER_MS
        || (holder.host == my_host && !process_alive(holder.pid))
}

/// Whether a process of this machine is alive. Where this cannot be known, assume it is and
/// rely on the heartbeat.
fn process_alive(pid: i64) -> bool {
    if cfg!(target_os = "linux") {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // A zombie ("Z") has exited; only its exit status is left to collect.
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    } else {
        true
    }
}

/// This machine's name, for lock holders and run history.
pub fn hostname() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(read_hostname).clone()
}

fn read_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_is_stale_when_its_holder_is_gone() {
        let holder = |host: &str, pid: i64, heartbeat_at: i64| LockHolder {
            token: "t".into(),
            host: host.into(),
            pid,
            started_at: 0,
            heartbeat_at,
        };
        let me = i64::from(std::process::id());
        let now = 1_000_000;
        assert!(!is_stale(&holder("here", me, now - 1000), "here", now));
        assert!(is_stale(
            &holder("here", me, now - STALE_AFTER_MS - 1),
            "here",
            now
        ));
        assert!(is_stale(
            &holder("here", i64::from(i32::MAX), now),
            "here",
            now
        ));
        assert!(!is_stale(
            &holder("elsewhere", i64::from(i32::MAX), now),
            "here",
            now
        ));
    }
}
