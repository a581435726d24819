//! Live workers as `daily workers --json` prints them and `daily serve` answers.

use crate::date::format_timestamp;

/// Workers whose heartbeat is younger than this count as live.
pub(crate) const LIVE_WORKER_MS: i64 = 120_000;

/// The workers as JSON.
pub(crate) fn workers_json(workers: &[crate::state::WorkerRecord]) -> serde_json::Value {
    let items: Vec<serde_json::Value> = workers
        .iter()
        .map(|worker| {
            serde_json::json!({
                "id": worker.id,
                "host": worker.host,
                "pid": worker.pid,
                "slots": worker.slots,
                "fingerprint": worker.fingerprint,
                "started_at": format_timestamp(worker.started_at),
                "heartbeat_at": format_timestamp(worker.heartbeat_at),
                "heartbeat_age_ms": worker.heartbeat_age_ms,
                "stopping": worker.stopping,
                "running": worker.running,
            })
        })
        .collect();
    serde_json::Value::Array(items)
}
