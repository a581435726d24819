//! Order events: the shop's services publish each order placed as a protobuf message on the
//! message bus (NATS JetStream, stream `ORDERS`, subject `orders.placed`); the warehouse loads
//! them into `order_events`, each exactly once.

use pipeline_core::event::EventMessage as _;
use pipeline_core::event::nats::Nats;
use pipeline_core::event::prost_reflect::prost::Message as _;
use pipeline_core::event::prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value};
use pipeline_core::prelude::*;

use crate::tables::warehouse;

/// The message types, from `proto/shop.proto` (compiled by `build.rs`).
pub mod proto {
    pipeline_core::event_messages!(include_bytes!(concat!(env!("OUT_DIR"), "/shop.bin"));
        /// An order was placed.
        OrderPlaced = "shop.OrderPlaced",
    );
}

/// The stream the shop publishes orders on (`DAILY_EVENTS_STREAM` names another).
pub const STREAM: &str = "ORDERS";
/// The subject of placed orders (`DAILY_EVENTS_SUBJECT` names another).
pub const SUBJECT: &str = "orders.placed";

/// The stream and subject to load and publish: [`STREAM`] and [`SUBJECT`] unless the
/// environment names others (tests and staging buses).
pub fn stream_and_subject() -> (String, String) {
    (
        std::env::var("DAILY_EVENTS_STREAM").unwrap_or_else(|_| STREAM.into()),
        std::env::var("DAILY_EVENTS_SUBJECT").unwrap_or_else(|_| SUBJECT.into()),
    )
}

/// Orders placed, as the shop's services published them on the bus (`PIPELINE_NATS_URL`):
/// everything new since the last load, exactly once. Without a bus it is reported not
/// configured (saying how to configure one), and being non-critical, the rest runs on.
#[task(
    retries = 3,
    retry_delay = "30s",
    timeout = "30m",
    critical = false,
    writes = [warehouse::order_events, warehouse::order_events_dead_letters]
)]
pub async fn load_order_events(ctx: &Ctx) -> Result<()> {
    let (stream, subject) = stream_and_subject();
    ctx.load_events::<proto::OrderPlaced>(&stream, &subject)
        .into_table("order_events")
        .run()
        .await?;
    Ok(())
}

const CITIES: &[&str] = &["Berlin", "Hamburg", "Munich", "Cologne", "Leipzig"];
const DISHES: &[(&str, f64)] = &[
    ("pizza", 9.5),
    ("ramen", 12.0),
    ("salad", 7.25),
    ("curry", 11.0),
];

/// Publishes `count` demo orders on `subject`, creating `stream` (storing `subject`) if it is
/// missing; waits until the stream stored them all. The order ids go on from the stream's
/// last sequence, so that every call publishes new orders.
pub async fn publish_demo_orders(
    nats: &Nats,
    stream: &str,
    subject: &str,
    count: u64,
) -> Result<u64> {
    let state = match nats.stream_state(stream).await {
        Ok(state) => state,
        Err(_) => {
            nats.jetstream(
                &format!("STREAM.CREATE.{stream}"),
                &serde_json::json!({"name": stream, "subjects": [subject], "storage": "file"}),
            )
            .await
            .with_context(|| format!("cannot create the demo stream {stream}"))?;
            nats.stream_state(stream).await?
        }
    };
    let descriptor = proto::OrderPlaced::descriptor()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as i64);
    for i in 0..count {
        let id = (state.last + i + 1) as i64;
        let payload = demo_order(&descriptor, id, now)?.encode_to_vec();
        if i + 1 == count {
            // In order on one connection: once the last is stored, all are.
            nats.publish_stored(subject, &payload).await?;
        } else {
            nats.publish(subject, &payload).await?;
        }
    }
    let after = nats.stream_state(stream).await?;
    ensure!(
        after.last >= state.last + count,
        "the stream stored {} of {count} orders: is it full (its limits)?",
        after.last - state.last
    );
    Ok(after.last)
}

/// One demo order: deterministic in its id.
fn demo_order(descriptor: &MessageDescriptor, id: i64, now: i64) -> Result<DynamicMessage> {
    let message_of = |field: &str| match descriptor.get_field_by_name(field).map(|f| f.kind()) {
        Some(Kind::Message(message)) => Ok(message),
        _ => Err(anyhow!("shop.OrderPlaced has no message field {field}")),
    };
    let mut order = DynamicMessage::new(descriptor.clone());
    order.set_field_by_name("order_id", Value::I64(id));
    order.set_field_by_name("user_id", Value::I64(id * 7 % 2000 + 1));
    order.set_field_by_name("restaurant_id", Value::I64(id * 13 % 150 + 1));
    order.set_field_by_name("currency", Value::String("EUR".into()));
    order.set_field_by_name("payment", Value::EnumNumber((id % 3 + 1) as i32));
    let mut placed = DynamicMessage::new(message_of("placed_at")?);
    placed.set_field_by_name("seconds", Value::I64(now - id % 3600));
    order.set_field_by_name("placed_at", Value::Message(placed));
    let item_type = message_of("items")?;
    let mut amount = 0.0;
    let mut items = Vec::new();
    for k in 0..(id % 3 + 1) as usize {
        let (name, price) = DISHES[(id as usize + k) % DISHES.len()];
        let quantity = (id % 2 + 1) as i32;
        amount += price * f64::from(quantity);
        let mut item = DynamicMessage::new(item_type.clone());
        item.set_field_by_name("name", Value::String(name.into()));
        item.set_field_by_name("quantity", Value::I32(quantity));
        item.set_field_by_name("price", Value::F64(price));
        items.push(Value::Message(item));
    }
    order.set_field_by_name("items", Value::List(items));
    order.set_field_by_name("amount", Value::F64(amount));
    order.set_field_by_name("express", Value::Bool(id % 5 == 0));
    order.set_field_by_name(
        "city",
        Value::String(CITIES[id as usize % CITIES.len()].into()),
    );
    Ok(order)
}
