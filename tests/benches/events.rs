//! Event-load benchmark: 1,000,000 small protobuf events (`shop.OrderPlaced`, 10 fields) on
//! the real NATS JetStream server (127.0.0.1:4222), loaded by the example's task code path
//! into SQLite and into PostgreSQL, against a baseline measured in the same run: a consumer
//! that only reads the events from JetStream and decodes them into structs as prost's
//! generated code does (the fastest plain decoding; a `DynamicMessage` decode is shown too).
//! PostgreSQL is loaded three times: with the TLS the server offers and JSONB columns (the
//! defaults), with JSON columns, and without TLS.
//!
//! `cargo bench -p pipeline-tests --bench events [-- --events N --rounds N --only TEXT]`
//! (`--only` measures the cases whose name holds TEXT, beside the baseline). Each case runs in a child
//! process, so that its peak RSS is its own. Targets: a load at most 2x the baseline, peak
//! RSS under 100 MB.

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use pipeline_core::TaskSpec;
use pipeline_core::event::prost_reflect::DynamicMessage;
use pipeline_core::event::{EventMessage as _, JsonColumns};
use pipeline_core::testing::Nats;
use pipeline_core::testing::NatsConfig;
use pipeline_example::events::{proto::OrderPlaced, publish_demo_orders};
use pipeline_tests::{PgDatabase, Sandbox, run_task};
use prost::Message as _;
use serde_json::json;

const NATS: &str = "nats://127.0.0.1:4222";

fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|arg| arg == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    if let (Some(case), Some(stream)) = (flag("--case"), flag("--stream")) {
        runtime.block_on(run_case(&case, &stream));
        return;
    }
    let events: u64 = flag("--events").map_or(1_000_000, |n| n.parse().expect("--events N"));
    let rounds: usize = flag("--rounds")
        .map_or(5, |n| n.parse().expect("--rounds N"))
        .max(1);
    let stream = format!("BENCH_EVENTS_{}", std::process::id());
    let subject = format!("{}.placed", stream.to_lowercase());
    runtime.block_on(async {
        let nats = Nats::connect_url(NATS)
            .await
            .expect("NATS with JetStream on 127.0.0.1:4222");
        let started = Instant::now();
        publish_demo_orders(&nats, &stream, &subject, events)
            .await
            .expect("published");
        println!(
            "event-load benchmark: {events} events of shop.OrderPlaced published in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    });
    let me = std::env::current_exe().expect("own path");
    let only = flag("--only");
    let all = [
        "consume and decode",
        "consume, DynamicMessage",
        "load into SQLite",
        "load into PostgreSQL",
        "load into PostgreSQL, JSON columns",
        "load into PostgreSQL, no TLS",
    ];
    // The first case is the baseline, always measured.
    let cases: Vec<&str> = all
        .iter()
        .enumerate()
        .filter(|(i, case)| *i == 0 || only.as_deref().is_none_or(|o| case.contains(o)))
        .map(|(_, case)| *case)
        .collect();
    // Rounds in turn, so that a busy moment of the machine spreads over every case; each
    // case's best and median are reported.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut peaks = vec![0u64; cases.len()];
    for _ in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            let output = Command::new(&me)
                .args(["--case", case, "--stream", &stream])
                .output()
                .expect("run a case");
            assert!(
                output.status.success(),
                "{case}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            // What the case left to write (a dropped 1M-row database's files, a WAL) goes
            // to disk now, not during the next case.
            let _ = Command::new("sync").status();
            let text = String::from_utf8_lossy(&output.stdout);
            let mut fields = text.split_whitespace();
            let seconds: f64 = fields.next().and_then(|s| s.parse().ok()).expect("seconds");
            let rss: u64 = fields.next().and_then(|s| s.parse().ok()).expect("RSS");
            times[i].push(seconds);
            peaks[i] = peaks[i].max(rss);
        }
    }
    let best = |t: &[f64]| t.iter().copied().fold(f64::INFINITY, f64::min);
    let median = |t: &[f64]| {
        let mut sorted = t.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    println!(
        "{:<36} {:>8} {:>12} {:>10} {:>9} {:>11} {:>9}",
        format!("case ({rounds} rounds)"),
        "best",
        "events/s",
        "x baseline",
        "median",
        "x baseline",
        "peak RSS"
    );
    let (base_best, base_median) = (best(&times[0]), median(&times[0]));
    for (i, case) in cases.iter().enumerate() {
        let (b, m) = (best(&times[i]), median(&times[i]));
        println!(
            "{case:<36} {b:>6.2} s {:>12.0} {:>9.2}x {m:>7.2} s {:>10.2}x {:>6} MB",
            events as f64 / b,
            b / base_best,
            m / base_median,
            peaks[i]
        );
    }
    runtime.block_on(async {
        if let Ok(nats) = Nats::connect_url(NATS).await {
            let _ = nats
                .jetstream(&format!("STREAM.DELETE.{stream}"), &json!({}))
                .await;
        }
    });
}

/// Runs one case; prints its seconds and peak RSS in MB.
async fn run_case(case: &str, stream: &str) {
    let subject = format!("{}.placed", stream.to_lowercase());
    let started = Instant::now();
    match case {
        "consume and decode" | "consume, DynamicMessage" => {
            let nats = Nats::connect_url(NATS).await.expect("NATS");
            let state = nats.stream_state(stream).await.expect("the stream");
            let descriptor = OrderPlaced::descriptor().expect("the descriptor");
            let reflective = case == "consume, DynamicMessage";
            let mut reader = nats
                .read(stream, &subject, 1, state.last, 1_000)
                .await
                .expect("a reader");
            let (mut decoded, mut items) = (0u64, 0usize);
            while let Some(events) = reader.next_batch().await.expect("a batch") {
                for event in events {
                    if reflective {
                        DynamicMessage::decode(descriptor.clone(), event.payload.as_slice())
                            .expect("decodes");
                    } else {
                        let order = Order::decode(event.payload.as_slice()).expect("decodes");
                        items += order.items.len();
                    }
                    decoded += 1;
                }
            }
            reader.close().await;
            assert_eq!(decoded, state.last);
            assert!(reflective || items >= decoded as usize);
        }
        "load into SQLite"
        | "load into PostgreSQL"
        | "load into PostgreSQL, JSON columns"
        | "load into PostgreSQL, no TLS" => {
            let sandbox = Sandbox::new("bench-events");
            let pg = case.contains("PostgreSQL").then(PgDatabase::create);
            let url = match &pg {
                // The server offers TLS and sqlx takes it (`sslmode=prefer`), as libpq does;
                // on the same host, it costs the load a good part of its time.
                Some(pg) if case.ends_with("no TLS") => format!("{}?sslmode=disable", pg.url),
                Some(pg) => pg.url.clone(),
                None => format!(
                    "sqlite://{}?mode=rwc",
                    sandbox.path("warehouse.db").display()
                ),
            };
            let mut config = sandbox.config(&[("warehouse", &url)]);
            config.nats = Some(NatsConfig::new(NATS, "the benchmark"));
            let json = if case.ends_with("JSON columns") {
                JsonColumns::Json
            } else {
                JsonColumns::Jsonb
            };
            let (stream, subject) = (Arc::new(stream.to_string()), Arc::new(subject));
            let spec = TaskSpec::new("load_order_events", move |ctx| {
                let (stream, subject) = (Arc::clone(&stream), Arc::clone(&subject));
                Box::pin(async move {
                    ctx.load_events::<OrderPlaced>(&stream, &subject)
                        .into_table("order_events")
                        .json_columns(json)
                        .run()
                        .await?;
                    Ok(())
                })
            });
            let started = Instant::now();
            let report = run_task(&config, spec, false).await;
            assert_eq!(
                report.status,
                pipeline_core::testing::TaskStatus::Succeeded,
                "{:?}",
                report.error
            );
            println!("{:.3} {}", started.elapsed().as_secs_f64(), peak_rss_mb());
            return;
        }
        other => panic!("unknown case {other}"),
    }
    println!("{:.3} {}", started.elapsed().as_secs_f64(), peak_rss_mb());
}

/// `shop.OrderPlaced` as prost's generated code declares it (the enum as its number).
#[derive(Clone, PartialEq, prost::Message)]
struct Order {
    #[prost(int64, tag = "1")]
    order_id: i64,
    #[prost(int64, tag = "2")]
    user_id: i64,
    #[prost(int64, tag = "3")]
    restaurant_id: i64,
    #[prost(double, tag = "4")]
    amount: f64,
    #[prost(string, tag = "5")]
    currency: String,
    #[prost(int32, tag = "6")]
    payment: i32,
    #[prost(message, optional, tag = "7")]
    placed_at: Option<Timestamp>,
    #[prost(message, repeated, tag = "8")]
    items: Vec<Item>,
    #[prost(bool, tag = "9")]
    express: bool,
    #[prost(string, tag = "10")]
    city: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Item {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(int32, tag = "2")]
    quantity: i32,
    #[prost(double, tag = "3")]
    price: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Timestamp {
    #[prost(int64, tag = "1")]
    seconds: i64,
    #[prost(int32, tag = "2")]
    nanos: i32,
}

/// Peak resident memory of this process, from /proc (0 where unavailable).
fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}
