//! The example's `load_order_events` from the real `daily` binary against the real NATS
//! server: killed with -9 in the middle of a load, a rerun loads every event exactly once; a
//! load stops at the stream's last sequence as of its start, and events published meanwhile
//! wait for the next run.

use std::time::{Duration, Instant};

use pipeline_core::testing::Nats;
use pipeline_example::events::publish_demo_orders;
use pipeline_tests::{Sandbox, finish, signal, sqlite_rows, unique_name};
use serde_json::json;

const DAILY: &str = env!("CARGO_BIN_EXE_e2e-daily");
const NATS: &str = "nats://127.0.0.1:4222";

struct Bus {
    nats: Nats,
    stream: String,
    subject: String,
}

impl Bus {
    async fn new(prefix: &str) -> Bus {
        let nats = Nats::connect_url(NATS)
            .await
            .expect("NATS with JetStream on 127.0.0.1:4222 (.ci/run starts it)");
        let stream = unique_name(prefix).to_uppercase().replace(['-', '.'], "_");
        let subject = format!("{}.placed", stream.to_lowercase());
        Bus {
            nats,
            stream,
            subject,
        }
    }

    async fn publish(&self, count: u64) -> u64 {
        publish_demo_orders(&self.nats, &self.stream, &self.subject, count)
            .await
            .expect("published")
    }

    fn env(&self) -> [(&'static str, String); 3] {
        [
            ("PIPELINE_NATS_URL", NATS.to_string()),
            ("DAILY_EVENTS_STREAM", self.stream.clone()),
            ("DAILY_EVENTS_SUBJECT", self.subject.clone()),
        ]
    }

    async fn delete(&self) {
        let _ = self
            .nats
            .jetstream(&format!("STREAM.DELETE.{}", self.stream), &json!({}))
            .await;
    }
}

const LOAD: &[&str] = &[
    "run",
    "--date",
    "2026-11-26",
    "--only",
    "--force",
    "load_order_events",
];

/// Rows in `order_events` so far: total and distinct sequences (0 before the table exists).
async fn loaded(sandbox: &Sandbox) -> (u64, u64) {
    let path = sandbox.path(".pipeline/warehouse.db");
    if !path.exists()
        || sqlite_rows(
            &path,
            "SELECT name FROM sqlite_master WHERE name = 'order_events'",
        )
        .await
        .is_empty()
    {
        return (0, 0);
    }
    let row = sqlite_rows(
        &path,
        "SELECT count(*), count(DISTINCT _seq) FROM order_events",
    )
    .await;
    let (total, distinct) = row[0].split_once('|').unwrap_or(("0", "0"));
    (total.parse().unwrap_or(0), distinct.parse().unwrap_or(0))
}

/// Waits until some but not all of `total` events are loaded; the count then.
async fn wait_for_some(sandbox: &Sandbox, total: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (count, _) = loaded(sandbox).await;
        if count > 0 {
            assert!(
                count < total,
                "the load ended before it could be interrupted"
            );
            return count;
        }
        assert!(
            Instant::now() < deadline,
            "nothing was loaded within a minute"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn killed_in_the_middle_a_rerun_loads_every_event_exactly_once() {
    let sandbox = Sandbox::new("events-kill");
    let bus = Bus::new("events-kill").await;
    let total = 100_000;
    let last = bus.publish(total).await;
    let env = bus.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let first = sandbox.spawn(DAILY, LOAD, &env);
    let at_kill = wait_for_some(&sandbox, total).await;
    signal(&first, "KILL");
    finish(first);
    let (after_kill, _) = loaded(&sandbox).await;
    assert!(
        after_kill < total,
        "killed half way: {after_kill} of {total}"
    );
    let rerun = sandbox.run(DAILY, LOAD, &env);
    assert_eq!(rerun.code, Some(0), "{}", rerun.stderr);
    assert_eq!(
        loaded(&sandbox).await,
        (total, total),
        "killed at {at_kill}"
    );
    let meta = sqlite_rows(
        &sandbox.path(".pipeline/warehouse.db"),
        "SELECT watermark, row_count FROM pipeline_event_loads WHERE table_name = 'order_events'",
    )
    .await;
    assert_eq!(meta, [format!("{last}|{total}")]);
    bus.delete().await;
}

#[tokio::test]
async fn a_load_stops_at_the_streams_end_as_of_its_start() {
    let sandbox = Sandbox::new("events-bounded");
    let bus = Bus::new("events-bounded").await;
    let first_batch = 60_000;
    let last = bus.publish(first_batch).await;
    let env = bus.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let load = sandbox.spawn(DAILY, LOAD, &env);
    wait_for_some(&sandbox, first_batch).await;
    // Published while it loads: left for the next run.
    bus.publish(500).await;
    let load = finish(load);
    assert_eq!(load.code, Some(0), "{}", load.stderr);
    assert_eq!(loaded(&sandbox).await, (first_batch, first_batch));
    let meta = sqlite_rows(
        &sandbox.path(".pipeline/warehouse.db"),
        "SELECT watermark FROM pipeline_event_loads WHERE table_name = 'order_events'",
    )
    .await;
    assert_eq!(meta, [last.to_string()]);
    let next = sandbox.run(DAILY, LOAD, &env);
    assert_eq!(next.code, Some(0), "{}", next.stderr);
    assert_eq!(
        loaded(&sandbox).await,
        (first_batch + 500, first_batch + 500)
    );
    bus.delete().await;
}

/// A subject with a line break would forge a log line (and a protocol line): it is refused
/// before it is used anywhere, shown escaped, and no line of the output starts with what it
/// carried.
#[test]
fn a_subject_with_control_characters_is_refused_and_never_logged_raw() {
    let sandbox = Sandbox::new("events-forged");
    let forged = "orders.placed\r\nERROR forged line";
    let output = sandbox.run(
        DAILY,
        &["run", "load_order_events", "--date", "2026-11-20", "--json"],
        &[
            ("PIPELINE_NATS_URL", NATS),
            ("DAILY_EVENTS_SUBJECT", forged),
        ],
    );
    assert_eq!(output.code, Some(0), "non-critical: {}", output.stderr);
    let error = output.json()["tasks"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        error.contains("\"orders.placed\\r\\nERROR forged line\" is not a valid NATS subject"),
        "{error}"
    );
    for text in [&output.stdout, &output.stderr] {
        assert!(
            !text.lines().any(|line| line.starts_with("ERROR forged")),
            "{text}"
        );
    }
    assert_eq!(
        output.json()["tasks"][0]["attempts"],
        1,
        "refused, not retried"
    );
}
