//! What a process did, for Prometheus (its text format, the `prometheus` crate), and
//! whether it is well, for an orchestrator's probes. `daily worker` and `daily schedule` serve
//! them on `--metrics-addr`, `daily serve` on its own address:
//! - `/metrics`: attempts by outcome and their durations, runs by outcome, lease renewals and
//!   their lag, scheduler ticks and missed deadlines, rows of table loads, event-load lag and
//!   dead letters; from the state store at each scrape, the queue of distributed runs: tasks
//!   ready, running, and waiting for a pool's slot (what to scale workers on);
//! - `/healthz`: the process answers;
//! - `/readyz`: the state store answers within two seconds (and a worker's leases are
//!   current).
//!
//! The counters live in one registry of the process, counted where things happen: a labelled
//! counter is a look-up under a read lock and an atomic add, and a scrape only reads, so
//! nothing on a task's path waits for one.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    exponential_buckets,
};

mod http;

pub(crate) use http::{Health, serve};

/// The process's metrics.
struct Metrics {
    registry: Registry,
    attempts: IntCounterVec,
    attempt_seconds: Histogram,
    runs: IntCounterVec,
    lease_renewals: IntCounterVec,
    lease_renewal_lag: Histogram,
    scheduler_ticks: IntCounter,
    deadline_misses: IntCounter,
    rows_loaded: IntCounterVec,
    // Event loads count these; a pipeline without them shows them at zero.
    #[cfg_attr(not(feature = "events"), allow(dead_code))]
    event_lag: IntGaugeVec,
    #[cfg_attr(not(feature = "events"), allow(dead_code))]
    dead_letters: IntCounterVec,
    queue: IntGaugeVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("pipeline".into()), None).unwrap_or_else(|_| Registry::new());
        // The names and buckets below are fixed and valid: registering them cannot fail but
        // for a name given twice, which the list below does not.
        let counters = |name: &str, help: &str, label: &str| {
            let family = IntCounterVec::new(Opts::new(name, help), &[label])
                .unwrap_or_else(|err| unreachable!("metric {name}: {err}"));
            let _ = registry.register(Box::new(family.clone()));
            family
        };
        let counter = |name: &str, help: &str| {
            let counter = IntCounter::new(name, help)
                .unwrap_or_else(|err| unreachable!("metric {name}: {err}"));
            let _ = registry.register(Box::new(counter.clone()));
            counter
        };
        let gauges = |name: &str, help: &str, label: &str| {
            let family = IntGaugeVec::new(Opts::new(name, help), &[label])
                .unwrap_or_else(|err| unreachable!("metric {name}: {err}"));
            let _ = registry.register(Box::new(family.clone()));
            family
        };
        let histogram = |name: &str, help: &str, start: f64, factor: f64, count: usize| {
            let buckets = exponential_buckets(start, factor, count)
                .unwrap_or_else(|err| unreachable!("buckets of {name}: {err}"));
            let histogram = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .unwrap_or_else(|err| unreachable!("metric {name}: {err}"));
            let _ = registry.register(Box::new(histogram.clone()));
            histogram
        };
        Metrics {
            attempts: counters(
                "task_attempts_total",
                "Task attempts this process ran, by outcome",
                "outcome",
            ),
            // 1 ms to about 4.7 hours.
            attempt_seconds: histogram(
                "task_attempt_duration_seconds",
                "Wall time of the task attempts this process ran",
                0.001,
                4.0,
                13,
            ),
            runs: counters("runs_total", "Runs this process ran, by outcome", "outcome"),
            lease_renewals: counters(
                "lease_renewals_total",
                "Lease renewals of a worker's attempts, by outcome (renewed, failed)",
                "outcome",
            ),
            lease_renewal_lag: histogram(
                "lease_renewal_lag_seconds",
                "Time from one successful lease renewal to the next",
                0.01,
                2.0,
                12,
            ),
            scheduler_ticks: counter(
                "scheduler_ticks_total",
                "Schedule ticks this scheduler fired",
            ),
            deadline_misses: counter(
                "deadline_misses_total",
                "Runs that missed their schedule's deadline, as this scheduler saw",
            ),
            rows_loaded: counters(
                "table_load_rows_total",
                "Rows table loads of this process copied, by target table",
                "table",
            ),
            event_lag: gauges(
                "event_load_lag_events",
                "The stream's last sequence less the table's watermark as its last load ended",
                "table",
            ),
            dead_letters: counters(
                "event_dead_letters_total",
                "Events that did not decode and went to the table's dead letters",
                "table",
            ),
            queue: gauges(
                "queue_tasks",
                "Attempts of distributed runs by state (ready, running, waiting_for_pool), \
                 read from the state store at the scrape",
                "state",
            ),
            registry,
        }
    }
}

/// An attempt ended with `outcome` after `took`.
pub(crate) fn attempt(outcome: &str, took: Duration) {
    METRICS.attempts.with_label_values(&[outcome]).inc();
    METRICS.attempt_seconds.observe(took.as_secs_f64());
}

/// A run ended with `outcome`.
pub(crate) fn run(outcome: &str) {
    METRICS.runs.with_label_values(&[outcome]).inc();
}

/// When this process's leases were last renewed (Unix milliseconds; 0 before the first): what
/// a worker's `/readyz` reads.
static LEASES_RENEWED_AT: AtomicI64 = AtomicI64::new(0);

/// A lease renewal came back (`renewed`) or not; `since_last` is the time since the last one
/// that did.
pub(crate) fn lease_renewal(renewed: bool, since_last: Duration) {
    let outcome = if renewed { "renewed" } else { "failed" };
    METRICS.lease_renewals.with_label_values(&[outcome]).inc();
    if renewed {
        LEASES_RENEWED_AT.store(crate::date::now_millis(), Ordering::Relaxed);
        METRICS.lease_renewal_lag.observe(since_last.as_secs_f64());
    }
}

/// The scheduler fired a tick.
pub(crate) fn scheduler_tick() {
    METRICS.scheduler_ticks.inc();
}

/// A run missed its deadline.
pub(crate) fn deadline_missed() {
    METRICS.deadline_misses.inc();
}

/// A table load copied `rows` into `table`.
pub(crate) fn rows_loaded(table: &str, rows: u64) {
    METRICS.rows_loaded.with_label_values(&[table]).inc_by(rows);
}

/// An event load of `table` ended `lag` events behind its stream (when the stream could be
/// asked: an unknown lag leaves the last known one), with `dead` new dead letters.
#[cfg_attr(not(feature = "events"), allow(dead_code))]
pub(crate) fn event_load(table: &str, lag: Option<u64>, dead: u64) {
    if let Some(lag) = lag {
        METRICS
            .event_lag
            .with_label_values(&[table])
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }
    METRICS
        .dead_letters
        .with_label_values(&[table])
        .inc_by(dead);
}

/// The queue of distributed runs as the state store has it now.
pub(crate) fn queue(ready: i64, running: i64, waiting_for_pool: i64) {
    for (state, count) in [
        ("ready", ready),
        ("running", running),
        ("waiting_for_pool", waiting_for_pool),
    ] {
        METRICS.queue.with_label_values(&[state]).set(count);
    }
}

/// How long ago this process's leases were last renewed, if they ever were.
pub(crate) fn leases_renewed_ago() -> Option<Duration> {
    let at = LEASES_RENEWED_AT.load(Ordering::Relaxed);
    (at > 0)
        .then(|| Duration::from_millis(crate::date::now_millis().saturating_sub(at).max(0) as u64))
}

/// The content type of [`text`]: Prometheus' text format, version 0.0.4.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every metric in Prometheus' text format.
pub(crate) fn text() -> String {
    prometheus::TextEncoder::new()
        .encode_to_string(&METRICS.registry.gather())
        .unwrap_or_else(|err| format!("# cannot encode the metrics: {err}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_count_by_table_and_an_unknown_lag_keeps_the_last_known_one() {
        rows_loaded("metrics_test_orders", 5);
        rows_loaded("metrics_test_orders", 7);
        event_load("metrics_test_events", Some(3), 2);
        event_load("metrics_test_events", None, 1);
        let text = text();
        for line in [
            "pipeline_table_load_rows_total{table=\"metrics_test_orders\"} 12",
            "pipeline_event_load_lag_events{table=\"metrics_test_events\"} 3",
            "pipeline_event_dead_letters_total{table=\"metrics_test_events\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
