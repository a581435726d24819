//! The runs a worker runs attempts of, each with one context (`RunInfo`) that its attempts
//! share, as the attempts of a run in one process do: above all its database pools, which
//! each attempt would otherwise open afresh (a connection, a TLS handshake and a login to every
//! database it uses), and in test mode the declared tables of the whole graph, which each
//! attempt would otherwise copy (quadratic in a big run). A run's context closes when the
//! worker stops, or at the start of another attempt once none of its own has run for a minute;
//! meanwhile its pools close connections idle for 10 minutes themselves (sqlx's default).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ctx::RunInfo;
use crate::date::Partition;
use crate::run::Runner;
use crate::state::ClaimedWork;
use crate::sync::LockUnpoisoned as _;

/// A run's context closes (its connections with it) once no attempt of it has started for
/// this long and none runs.
const IDLE: Duration = Duration::from_secs(60);
/// How long closing one run's connections may take.
const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// The contexts of the runs this worker has attempts of, by run id (which names one run, its
/// mode with it).
#[derive(Debug)]
pub(super) struct Runs {
    open: Mutex<HashMap<i64, Open>>,
    /// The worker's slots: attempts of one run that may use a database at once.
    slots: usize,
}

#[derive(Debug)]
struct Open {
    info: Arc<RunInfo>,
    last_started: Instant,
}

impl Runs {
    pub fn new(slots: usize) -> Self {
        Runs {
            open: Mutex::default(),
            slots,
        }
    }

    /// The context of `work`'s run, made on its first attempt here. Closes those idle.
    pub fn context(
        &self,
        runner: &Runner,
        work: &ClaimedWork,
        partition: Partition,
    ) -> Arc<RunInfo> {
        let key = work.run_id;
        let now = Instant::now();
        let mut open = self.open.lock_unpoisoned();
        let mut idle = Vec::new();
        open.retain(|run, open| {
            // Held by the map alone: no attempt of it runs.
            let keep = *run == key
                || Arc::strong_count(&open.info) > 1
                || now.duration_since(open.last_started) < IDLE;
            if !keep {
                idle.push(Arc::clone(&open.info));
            }
            keep
        });
        if !idle.is_empty() {
            tokio::spawn(close(idle));
        }
        let open = open.entry(key).or_insert_with(|| Open {
            info: Arc::new(runner.run_info(
                work.run_id,
                partition,
                work.test,
                work.unit_mode,
                self.slots,
            )),
            last_started: now,
        });
        open.last_started = now;
        Arc::clone(&open.info)
    }

    /// Closes every run's connections: the worker stops.
    pub async fn close_all(&self) {
        let all: Vec<Arc<RunInfo>> = self
            .open
            .lock_unpoisoned()
            .drain()
            .map(|(_, open)| open.info)
            .collect();
        close(all).await;
    }
}

async fn close(runs: Vec<Arc<RunInfo>>) {
    for info in runs {
        if tokio::time::timeout(CLOSE_WITHIN, info.databases.close())
            .await
            .is_err()
        {
            tracing::warn!(
                run = info.run_id,
                "its database connections did not close in {}",
                crate::date::format_duration(CLOSE_WITHIN)
            );
        }
    }
}
