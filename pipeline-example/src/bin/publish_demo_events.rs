//! Publishes demo order events on NATS JetStream for the `load_order_events` task:
//! `cargo run --bin publish-demo-events -- [--count N]` (default 1,000), to the bus the
//! pipeline is configured with (`[nats]` of `pipeline.toml`, `PIPELINE_NATS_*`; default
//! `nats://127.0.0.1:4222`), on the stream and subject the task
//! loads (`ORDERS`, `orders.placed`; `DAILY_EVENTS_STREAM` and `DAILY_EVENTS_SUBJECT` name
//! others). Creates the stream if it is missing.

use std::process::ExitCode;

use pipeline_core::event::nats::Nats;

fn main() -> ExitCode {
    let mut count: u64 = 1_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().map(|n| n.parse())) {
            ("--count", Some(Ok(n))) => count = n,
            _ => {
                eprintln!("usage: publish-demo-events [--count N]");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start: {err}");
            return ExitCode::FAILURE;
        }
    };
    let (stream, subject) = pipeline_example::events::stream_and_subject();
    let published = runtime.block_on(async {
        let nats = Nats::connect_configured("nats://127.0.0.1:4222").await?;
        pipeline_example::events::publish_demo_orders(&nats, &stream, &subject, count).await
    });
    match published {
        Ok(last) => {
            println!(
                "published {count} orders on {subject} (stream {stream} now ends at seq {last})"
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
