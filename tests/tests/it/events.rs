//! Event loads against the real NATS server (JetStream, 127.0.0.1:4222) into a real SQLite
//! file and a real PostgreSQL database: columns from the message, exactly once across runs,
//! dead letters, gaps, schema evolution, test mode and bad input.

use std::sync::Arc;

use pipeline_core::TaskSpec;
use pipeline_core::event::prost_reflect::prost::Message as _;
use pipeline_core::event::prost_reflect::{DynamicMessage, MapKey, MessageDescriptor, Value};
use pipeline_core::event::{EventLoad, EventMessage, JsonColumns};
use pipeline_core::sqlx::{self, Connection as _};
use pipeline_core::testing::Nats;
use pipeline_core::testing::TaskStatus;
use pipeline_core::testing::{Config, NatsConfig, Secret};
use pipeline_tests::events::{OrderV1, OrderV2, OrderV3, OrderV4};
use pipeline_tests::http_stub::StubServer;
use pipeline_tests::{PgDatabase, Sandbox, psql, run_task, sqlite_rows, unique_name};
use serde_json::json;

const NATS: &str = "nats://127.0.0.1:4222";

/// A fresh stream on `<NAME>.>`, deleted at the end.
struct Bus {
    nats: Nats,
    stream: String,
}

impl Bus {
    async fn new(prefix: &str, max_msgs: Option<i64>) -> Bus {
        let nats = Nats::connect_url(NATS)
            .await
            .expect("NATS with JetStream on 127.0.0.1:4222 (.ci/run starts it)");
        let stream = unique_name(prefix).to_uppercase().replace(['-', '.'], "_");
        let mut config =
            json!({"name": stream, "subjects": [format!("{stream}.>")], "storage": "memory"});
        if let Some(max) = max_msgs {
            config["max_msgs"] = json!(max);
        }
        nats.jetstream(&format!("STREAM.CREATE.{stream}"), &config)
            .await
            .expect("create the stream");
        Bus { nats, stream }
    }

    fn subject(&self) -> String {
        format!("{}.placed", self.stream)
    }

    async fn publish(&self, payload: &[u8]) -> u64 {
        self.nats
            .publish_stored(&self.subject(), payload)
            .await
            .expect("stored")
    }

    async fn delete(&self) {
        let _ = self
            .nats
            .jetstream(&format!("STREAM.DELETE.{}", self.stream), &json!({}))
            .await;
    }
}

/// An order of message type `M`, all fields set when `full`, only `id` and `customer` else.
fn order<M: EventMessage>(id: i64, full: bool) -> Vec<u8> {
    let descriptor: MessageDescriptor = M::descriptor().expect("the descriptor");
    let mut message = DynamicMessage::new(descriptor.clone());
    message.set_field_by_name("id", Value::I64(id));
    message.set_field_by_name("customer", Value::String(format!("customer {id}")));
    if full {
        message.set_field_by_name("amount", Value::F64(12.5));
        message.set_field_by_name("status", Value::EnumNumber(2));
        let field = |name: &str| descriptor.get_field_by_name(name).expect("a field");
        let sub = |name: &str| match field(name).kind() {
            pipeline_core::event::prost_reflect::Kind::Message(m) => m,
            _ => panic!("{name} is a message"),
        };
        let mut placed = DynamicMessage::new(sub("placed_at"));
        placed.set_field_by_name("seconds", Value::I64(1_795_669_200)); // 2026-11-26 05:00 UTC
        placed.set_field_by_name("nanos", Value::I32(250_000_000));
        message.set_field_by_name("placed_at", Value::Message(placed));
        let mut coupon = DynamicMessage::new(sub("coupon"));
        coupon.set_field_by_name("value", Value::I32(7));
        message.set_field_by_name("coupon", Value::Message(coupon));
        let mut address = DynamicMessage::new(sub("address"));
        address.set_field_by_name("city", Value::String("Berlin".into()));
        message.set_field_by_name("address", Value::Message(address));
        message.set_field_by_name(
            "items",
            Value::List(vec![
                Value::String("pizza".into()),
                Value::String("<b>".into()),
            ]),
        );
        message.set_field_by_name(
            "quantities",
            Value::Map([(MapKey::String("pizza".into()), Value::I32(2))].into()),
        );
        message.set_field_by_name("express", Value::Bool(true));
        let mut prep = DynamicMessage::new(sub("prep_time"));
        prep.set_field_by_name("seconds", Value::I64(90));
        message.set_field_by_name("prep_time", Value::Message(prep));
        message.set_field_by_name("note", Value::String("ring twice".into()));
        message.set_field_by_name("token", Value::Bytes(vec![0, 1, 255].into()));
        if descriptor.get_field_by_name("big").is_some() {
            message.set_field_by_name("big", Value::U64(u64::MAX));
        }
        if descriptor.get_field_by_name("channel").is_some() {
            message.set_field_by_name("channel", Value::String("app".into()));
        }
    }
    message.encode_to_vec()
}

/// A warehouse on SQLite or PostgreSQL, read back with plain SQL.
struct Warehouse {
    sandbox: Sandbox,
    config: Config,
    pg: Option<PgDatabase>,
}

impl Warehouse {
    fn sqlite(name: &str) -> Warehouse {
        let sandbox = Sandbox::new(name);
        let url = format!(
            "sqlite://{}?mode=rwc",
            sandbox.path("warehouse.db").display()
        );
        let config = with_nats(sandbox.config(&[("warehouse", &url)]), NATS);
        Warehouse {
            sandbox,
            config,
            pg: None,
        }
    }

    fn postgres(name: &str) -> Warehouse {
        let sandbox = Sandbox::new(name);
        let pg = PgDatabase::create();
        let config = with_nats(sandbox.config(&[("warehouse", &pg.url)]), NATS);
        Warehouse {
            sandbox,
            config,
            pg: Some(pg),
        }
    }

    async fn rows(&self, sql: &str) -> Vec<String> {
        match &self.pg {
            Some(pg) => psql(&pg.url, sql)
                .lines()
                .map(String::from)
                .filter(|line| !line.is_empty())
                .collect(),
            None => sqlite_rows(&self.sandbox.path("warehouse.db"), sql).await,
        }
    }

    /// Runs a statement that changes the warehouse (a trigger, a drop).
    async fn change(&self, sql: &str) {
        if self.pg.is_some() {
            self.rows(sql).await;
            return;
        }
        let url = format!("sqlite://{}", self.sandbox.path("warehouse.db").display());
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("open the SQLite file");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    /// Runs a task that loads `bus`'s subject as `M` into `orders`, shaped by `setup`.
    async fn load<M: EventMessage + 'static>(
        &self,
        bus: &Bus,
        setup: Setup,
        test_mode: bool,
    ) -> pipeline_core::testing::TaskReport {
        let spec = load_task::<M>(&bus.stream, &bus.subject(), "orders", setup);
        run_task(&self.config, spec, test_mode).await
    }
}

/// How a test shapes a load (batch size, accepted gaps, ...).
type Setup = fn(pipeline_core::event::EventLoad<'_>) -> pipeline_core::event::EventLoad<'_>;

/// A task loading `subject` of `stream` as `M` into `table`, shaped by `setup`.
fn load_task<M: EventMessage + 'static>(
    stream: &str,
    subject: &str,
    table: &str,
    setup: Setup,
) -> TaskSpec {
    let (stream, subject, table) = (
        Arc::new(stream.to_string()),
        Arc::new(subject.to_string()),
        Arc::new(table.to_string()),
    );
    TaskSpec::new("load_orders", move |ctx| {
        let (stream, subject, table) = (
            Arc::clone(&stream),
            Arc::clone(&subject),
            Arc::clone(&table),
        );
        Box::pin(async move {
            let load = ctx.load_events::<M>(&stream, &subject).into_table(&table);
            setup(load).run().await?;
            Ok(())
        })
    })
}

fn with_nats(mut config: Config, url: &str) -> Config {
    config.nats = Some(NatsConfig::new(url, "the test"));
    config
}

fn keep(load: pipeline_core::event::EventLoad<'_>) -> pipeline_core::event::EventLoad<'_> {
    load
}

fn succeeded(report: &pipeline_core::testing::TaskReport) {
    assert_eq!(report.status, TaskStatus::Succeeded, "{:?}", report.error);
}

/// The load succeeded, and its report says each of `words`.
fn succeeded_saying(report: &pipeline_core::testing::TaskReport, words: &[&str]) {
    succeeded(report);
    let said = report.details.first().map_or("", String::as_str);
    assert!(
        words.iter().all(|w| said.contains(w)),
        "{:?}",
        report.details
    );
}

async fn columns_and_values(warehouse: Warehouse) {
    let bus = Bus::new("events-columns", None).await;
    bus.publish(&order::<OrderV1>(1, true)).await;
    bus.publish(&order::<OrderV1>(2, false)).await;
    let report = warehouse.load::<OrderV1>(&bus, keep, false).await;
    succeeded(&report);
    assert!(
        report
            .details
            .iter()
            .any(|d| d.contains("first load") && d.contains("2 events")),
        "{:?}",
        report.details
    );
    let postgres = warehouse.pg.is_some();
    let types = if postgres {
        warehouse
            .rows(
                "SELECT column_name || ' ' || data_type FROM information_schema.columns \
                 WHERE table_name = 'orders' ORDER BY ordinal_position",
            )
            .await
    } else {
        warehouse
            .rows("SELECT name || ' ' || type FROM pragma_table_info('orders') ORDER BY cid")
            .await
    };
    let expected: &[&str] = if postgres {
        &[
            "_seq bigint",
            "_subject text",
            "_published_at timestamp with time zone",
            "id bigint",
            "customer text",
            "amount double precision",
            "status text",
            "placed_at timestamp with time zone",
            "coupon integer",
            "address jsonb",
            "items jsonb",
            "quantities jsonb",
            "express boolean",
            "prep_time interval",
            "note text",
            "token bytea",
            "big numeric",
        ]
    } else {
        &[
            // `INTEGER PRIMARY KEY`: the rowid itself, no second B-tree to write.
            "_seq INTEGER",
            "_subject TEXT",
            "_published_at TEXT",
            "id INTEGER",
            "customer TEXT",
            "amount REAL",
            "status TEXT",
            "placed_at TEXT",
            "coupon INTEGER",
            "address TEXT",
            "items TEXT",
            "quantities TEXT",
            "express BOOLEAN",
            "prep_time REAL",
            "note TEXT",
            "token BLOB",
            "big TEXT",
        ]
    };
    assert_eq!(types, expected);
    let full = warehouse
        .rows(if postgres {
            "SELECT _seq, _subject, id, customer, amount, status, placed_at::text, coupon, \
             address::text, items::text, quantities::text, express, \
             extract(epoch from prep_time)::int, note, encode(token, 'hex'), big \
             FROM orders ORDER BY _seq"
        } else {
            "SELECT _seq, _subject, id, customer, CAST(amount AS TEXT), status, placed_at, coupon, \
             address, items, quantities, express, CAST(prep_time AS TEXT), note, hex(token), big \
             FROM orders ORDER BY _seq"
        })
        .await;
    let subject = bus.subject();
    let (timestamp, truth, seconds, big, token) = if postgres {
        (
            "2026-11-26 05:00:00.25+00",
            "t",
            "90",
            u64::MAX.to_string(),
            "0001ff",
        )
    } else {
        (
            "2026-11-26T05:00:00.250000Z",
            "1",
            "90.0",
            u64::MAX.to_string(),
            "0001FF",
        )
    };
    let json_space = if postgres { " " } else { "" };
    assert_eq!(
        full[0],
        format!(
            "1|{subject}|1|customer 1|12.5|DELIVERED|{timestamp}|7|{{\"city\":{json_space}\"Berlin\"}}|\
             [\"pizza\",{json_space}\"<b>\"]|{{\"pizza\":{json_space}2}}|{truth}|{seconds}|ring twice|{token}|{big}"
        )
    );
    // Unset: proto3 defaults for plain scalars, NULL for what has presence, empty JSON lists.
    let (falsity, zero_seconds) = if postgres { ("f", "") } else { ("0", "") };
    assert_eq!(
        full[1],
        format!(
            "2|{subject}|2|customer 2|0{}|STATUS_UNSPECIFIED||||[]|{{}}|{falsity}|{zero_seconds}|||0",
            if postgres { "" } else { ".0" }
        )
    );
    bus.delete().await;
}

#[tokio::test]
async fn each_field_becomes_a_column_of_its_type_on_sqlite() {
    columns_and_values(Warehouse::sqlite("events-columns")).await;
}

fn as_json(load: EventLoad<'_>) -> EventLoad<'_> {
    load.json_columns(JsonColumns::Json)
}

#[tokio::test]
async fn json_columns_as_json_keep_the_text_and_switching_to_them_rebuilds() {
    let warehouse = Warehouse::postgres("events-json");
    let bus = Bus::new("events-json", None).await;
    bus.publish(&order::<OrderV1>(1, true)).await;
    bus.publish(&order::<OrderV1>(2, false)).await;
    succeeded(&warehouse.load::<OrderV1>(&bus, keep, false).await);
    let json_types = "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY column_name) \
                      FROM information_schema.columns WHERE table_name = 'orders' \
                      AND column_name IN ('address', 'items', 'quantities')";
    assert_eq!(
        warehouse.rows(json_types).await,
        ["address jsonb, items jsonb, quantities jsonb"]
    );
    // The table's JSON columns change type: a rebuild from the stream's start.
    let rebuilt = warehouse.load::<OrderV1>(&bus, as_json, false).await;
    succeeded_saying(&rebuilt, &["rebuild", "2 events"]);
    assert_eq!(
        warehouse.rows(json_types).await,
        ["address json, items json, quantities json"]
    );
    // The text as written (JSONB would add spaces), and still JSON to query.
    assert_eq!(
        warehouse
            .rows("SELECT _seq, items::text, items->>1, quantities->>'pizza' FROM orders ORDER BY _seq")
            .await,
        ["1|[\"pizza\",\"<b>\"]|<b>|2", "2|[]||"]
    );
    bus.publish(&order::<OrderV1>(3, true)).await;
    let next = warehouse.load::<OrderV1>(&bus, as_json, false).await;
    succeeded_saying(&next, &["incremental", "1 events"]);
    bus.delete().await;
}

#[tokio::test]
async fn switching_json_columns_after_retention_says_how_to_keep_them() {
    // The switch would rebuild from the stream's start, which retention deleted: the error
    // names the option, not only the columns' kinds, and the table stays as it was.
    let warehouse = Warehouse::postgres("events-json-kept");
    let bus = Bus::new("events-json-kept", Some(2)).await;
    bus.publish(&order::<OrderV1>(1, true)).await;
    succeeded(&warehouse.load::<OrderV1>(&bus, keep, false).await);
    for id in 2..5 {
        bus.publish(&order::<OrderV1>(id, true)).await;
    }
    let refused = warehouse.load::<OrderV1>(&bus, as_json, false).await;
    assert_eq!(refused.status, TaskStatus::Failed);
    let error = refused.error.unwrap_or_default();
    assert!(
        error.contains("JSON columns of orders would change from JSONB to JSON")
            && error.contains("holds only seq 3..4")
            && error.contains("`.json_columns(JsonColumns::Jsonb)`"),
        "{error}"
    );
    assert_eq!(warehouse.rows("SELECT id FROM orders").await, ["1"]);
    bus.delete().await;
}

#[tokio::test]
async fn json_columns_change_nothing_on_sqlite() {
    let warehouse = Warehouse::sqlite("events-json-sqlite");
    let bus = Bus::new("events-json-sqlite", None).await;
    bus.publish(&order::<OrderV1>(1, true)).await;
    succeeded(&warehouse.load::<OrderV1>(&bus, keep, false).await);
    bus.publish(&order::<OrderV1>(2, true)).await;
    let next = warehouse
        .load::<OrderV1>(&bus, |l| l.json_columns(JsonColumns::Json), false)
        .await;
    succeeded_saying(&next, &["incremental"]);
    assert_eq!(
        warehouse
            .rows("SELECT count(*), max(items) FROM orders")
            .await,
        ["2|[\"pizza\",\"<b>\"]"]
    );
    bus.delete().await;
}

#[tokio::test]
async fn each_field_becomes_a_column_of_its_type_on_postgres() {
    columns_and_values(Warehouse::postgres("events-columns")).await;
}

/// An order whose `customer` and `placed_at` (Unix seconds) are as given.
fn order_with(id: i64, customer: &str, placed_at: i64) -> Vec<u8> {
    let descriptor: MessageDescriptor = OrderV1::descriptor().expect("the descriptor");
    let mut message = DynamicMessage::new(descriptor.clone());
    message.set_field_by_name("id", Value::I64(id));
    message.set_field_by_name("customer", Value::String(customer.into()));
    let Some(pipeline_core::event::prost_reflect::Kind::Message(timestamp)) =
        descriptor.get_field_by_name("placed_at").map(|f| f.kind())
    else {
        panic!("placed_at is a message");
    };
    let mut placed = DynamicMessage::new(timestamp);
    placed.set_field_by_name("seconds", Value::I64(placed_at));
    message.set_field_by_name("placed_at", Value::Message(placed));
    message.encode_to_vec()
}

#[tokio::test]
async fn values_no_column_can_hold_go_to_dead_letters_and_the_rest_loads() {
    let warehouse = Warehouse::postgres("events-unstorable");
    let bus = Bus::new("events-unstorable", None).await;
    // Valid protobuf all: NUL in a string (PostgreSQL's text and JSONB refuse it), a time in
    // year 22,000, and two fine ones, one before 1970.
    bus.publish(&order_with(1, "nul \0 inside", 0)).await;
    bus.publish(&order_with(2, "far future", 632_000_000_000))
        .await;
    bus.publish(&order_with(3, "before 1970", -31_536_000))
        .await;
    bus.publish(&order_with(4, "fine", 1_795_669_200)).await;
    let report = warehouse
        .load::<OrderV1>(&bus, |l| l.max_bad_share(0.5), false)
        .await;
    succeeded(&report);
    assert_eq!(
        warehouse
            .rows("SELECT id, customer, placed_at::text FROM orders ORDER BY id")
            .await,
        [
            "3|before 1970|1969-01-01 00:00:00+00",
            "4|fine|2026-11-26 05:00:00+00"
        ]
    );
    let dead = warehouse
        .rows("SELECT _seq, error FROM orders_dead_letters ORDER BY _seq")
        .await;
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert!(
        dead[0].starts_with("1|") && dead[0].contains("NUL"),
        "{dead:?}"
    );
    assert!(
        dead[1].starts_with("2|")
            && dead[1].contains("placed_at")
            && dead[1].contains("years 1 to 9999"),
        "{dead:?}"
    );
    bus.delete().await;
}

#[tokio::test]
async fn loads_go_on_after_the_watermark_and_load_each_event_once() {
    let warehouse = Warehouse::postgres("events-once");
    let bus = Bus::new("events-once", None).await;
    for id in 0..5 {
        bus.publish(&order::<OrderV1>(id, false)).await;
    }
    succeeded(&warehouse.load::<OrderV1>(&bus, |l| l.batch(2), false).await);
    for id in 5..8 {
        bus.publish(&order::<OrderV1>(id, false)).await;
    }
    let again = warehouse.load::<OrderV1>(&bus, |l| l.batch(2), false).await;
    succeeded_saying(&again, &["incremental", "3 events"]);
    assert_eq!(
        warehouse
            .rows("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM orders")
            .await,
        ["8|8|0|7"]
    );
    assert_eq!(
        warehouse
            .rows(
                "SELECT watermark, row_count FROM pipeline_event_loads WHERE table_name = 'orders'"
            )
            .await,
        ["8|8"]
    );
    // Nothing new: nothing loaded, nothing lost.
    let idle = warehouse.load::<OrderV1>(&bus, keep, false).await;
    succeeded_saying(&idle, &["0 events"]);
    bus.delete().await;
}

/// A PostgreSQL `orders` table that loaded ids 0 and 1, ids 2 to `total - 1` waiting on the
/// bus, and a trigger `name` that runs `body` before each row is inserted.
async fn loaded_with_trigger(prefix: &str, total: i64, name: &str, body: &str) -> (Warehouse, Bus) {
    let (warehouse, bus) = loaded_once(Warehouse::postgres(prefix), prefix, total).await;
    warehouse
        .rows(&format!(
            "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} \
             RETURN NEW; END $$; \
             CREATE TRIGGER {name} BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION {name}()"
        ))
        .await;
    (warehouse, bus)
}

/// `orders` in `warehouse` loaded with ids 0-1, and ids 2 to `total - 1` waiting on the bus.
async fn loaded_once(warehouse: Warehouse, prefix: &str, total: i64) -> (Warehouse, Bus) {
    let bus = Bus::new(prefix, None).await;
    for id in 0..2 {
        bus.publish(&order::<OrderV1>(id, false)).await;
    }
    succeeded(&warehouse.load::<OrderV1>(&bus, keep, false).await);
    for id in 2..total {
        bus.publish(&order::<OrderV1>(id, false)).await;
    }
    (warehouse, bus)
}

/// After a load of ids 2-9 in batches of 2 failed in its third batch (ids 6 and 7) with an
/// error that says each of `words`: the batches before it stay, with their watermark; once
/// `undo` runs, the rerun loads the rest, each event once. Deletes the bus.
async fn refused_in_the_third_batch(
    warehouse: &Warehouse,
    bus: Bus,
    refused: pipeline_core::testing::TaskReport,
    words: &[&str],
    undo: &str,
) {
    assert_eq!(refused.status, TaskStatus::Failed);
    let error = refused.error.unwrap_or_default();
    assert!(words.iter().all(|w| error.contains(w)), "{error}");
    assert_eq!(
        warehouse.rows("SELECT count(*), max(id) FROM orders").await,
        ["6|5"],
        "the batches before the refused one are kept, and none of its rows"
    );
    assert_eq!(
        warehouse
            .rows("SELECT watermark FROM pipeline_event_loads WHERE table_name = 'orders'")
            .await,
        ["6"],
        "the watermark is that of the last batch written"
    );
    warehouse.change(undo).await;
    succeeded(&warehouse.load::<OrderV1>(&bus, |l| l.batch(2), false).await);
    assert_eq!(
        warehouse
            .rows("SELECT count(*), count(DISTINCT id), max(id), sum(_seq) FROM orders")
            .await,
        ["10|10|9|55"]
    );
    bus.delete().await;
}

#[tokio::test]
async fn sqlite_refusing_a_row_mid_batch_rolls_the_batch_back_and_the_rerun_loads_the_rest_once() {
    // SQLite takes rows one by one through its C API: a row it refuses (here the second of
    // the third batch, ids 6 and 7) must fail the load naming it, and take the row before it
    // in the batch back with it.
    let (warehouse, bus) = loaded_once(
        Warehouse::sqlite("events-sqlite-refused"),
        "events-sqlite-refused",
        10,
    )
    .await;
    warehouse
        .change(
            "CREATE TRIGGER refuse BEFORE INSERT ON orders WHEN NEW.id = 7 \
             BEGIN SELECT RAISE(ABORT, 'refused id 7'); END",
        )
        .await;
    let refused = warehouse.load::<OrderV1>(&bus, |l| l.batch(2), false).await;
    refused_in_the_third_batch(
        &warehouse,
        bus,
        refused,
        &["refused id 7", "seq 8"],
        "DROP TRIGGER refuse",
    )
    .await;
}

#[tokio::test]
async fn a_write_refused_mid_load_keeps_the_batches_before_it_and_the_rerun_loads_the_rest_once() {
    // The database refuses the third batch of this load (ids 6 and 7), as a full disk or a
    // constraint would: fetching and decoding run ahead of it and must stop, not hang. It
    // refuses slowly, so that the batch after it (written at the same time, on another
    // connection) is done first: that one must not commit either.
    let (warehouse, bus) = loaded_with_trigger(
        "events-refused",
        10,
        "refuse",
        "IF NEW.id = 6 THEN PERFORM pg_sleep(1); RAISE EXCEPTION 'refused id 6'; END IF;",
    )
    .await;
    let refused = warehouse.load::<OrderV1>(&bus, |l| l.batch(2), false).await;
    refused_in_the_third_batch(
        &warehouse,
        bus,
        refused,
        &["refused id 6"],
        "DROP TRIGGER refuse ON orders",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_written_at_once_commit_in_order_so_readers_only_see_the_streams_start() {
    // One batch is slow to write: those after it, written meanwhile on other connections,
    // finish first and must wait for it.
    let (warehouse, bus) = loaded_with_trigger(
        "events-in-order",
        40,
        "slow",
        "IF NEW.id = 6 THEN PERFORM pg_sleep(1.5); END IF;",
    )
    .await;
    let url = &warehouse.pg.as_ref().expect("PostgreSQL").url;
    let mut reader = sqlx::PgConnection::connect(url).await.expect("a reader");
    let done = std::sync::atomic::AtomicBool::new(false);
    let load = async {
        let report = warehouse.load::<OrderV1>(&bus, |l| l.batch(4), false).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        report
    };
    // What a reader sees while the load runs: rows 1..n and the watermark n, never a later
    // batch without an earlier one.
    let watch = async {
        let mut seen = Vec::new();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let (count, max, watermark): (i64, Option<i64>, i64) = sqlx::query_as(
                "SELECT count(*), max(_seq), (SELECT watermark FROM pipeline_event_loads \
                 WHERE table_name = 'orders') FROM orders",
            )
            .fetch_one(&mut reader)
            .await
            .expect("read while loading");
            seen.push((count, max.unwrap_or(0), watermark));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        seen
    };
    let (report, seen) = tokio::join!(load, watch);
    succeeded(&report);
    assert!(seen.len() >= 10, "the load was watched: {seen:?}");
    for (count, max, watermark) in &seen {
        assert!(
            count == max && watermark == max,
            "a reader saw {count} rows up to seq {max} with the watermark at {watermark}: \
             a batch committed before the one before it ({seen:?})"
        );
    }
    assert_eq!(
        warehouse
            .rows("SELECT count(*), count(DISTINCT id), max(_seq) FROM orders")
            .await,
        ["40|40|40"]
    );
    bus.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_loads_of_one_table_at_once_load_each_event_once() {
    // Two runs load the same table at the same time (two processes, two hosts): the second
    // waits for the first and then starts after its watermark, instead of loading the same
    // events again.
    let (warehouse, bus) = loaded_with_trigger(
        "events-twice",
        40,
        "slow",
        "IF NEW.id = 6 THEN PERFORM pg_sleep(1); END IF;",
    )
    .await;
    let first = warehouse.load::<OrderV1>(&bus, |l| l.batch(4), false);
    // Another pipeline's run (a state store of its own), into the same warehouse.
    let other = Sandbox::new("events-twice-other");
    let url = &warehouse.pg.as_ref().expect("PostgreSQL").url;
    let config = with_nats(other.config(&[("warehouse", url)]), NATS);
    let second = async {
        // Once the first holds the table: its load lock is granted in this database.
        let mut watch = sqlx::PgConnection::connect(url).await.expect("a watcher");
        let started = std::time::Instant::now();
        loop {
            let held: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(&mut watch)
            .await
            .expect("read the locks");
            if held > 0 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the first load never took the table's lock"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let spec = load_task::<OrderV1>(&bus.stream, &bus.subject(), "orders", |l| l.batch(4));
        run_task(&config, spec, false).await
    };
    let (first, second) = tokio::join!(first, second);
    succeeded_saying(&first, &["38 events"]);
    succeeded_saying(&second, &["0 events"]);
    assert_eq!(
        warehouse
            .rows("SELECT count(*), count(DISTINCT _seq), max(_seq) FROM orders")
            .await,
        ["40|40|40"]
    );
    bus.delete().await;
}

#[tokio::test]
async fn a_watermark_moved_by_another_load_refuses_the_batch() {
    // SQLite has no lock between processes that lasts a load: each batch commits only over
    // the watermark the batch before it left. A trigger plays the other load, moving the
    // watermark inside the third batch's transaction (ids 6 and 7).
    let (warehouse, bus) = loaded_once(Warehouse::sqlite("events-moved"), "events-moved", 10).await;
    warehouse
        .change(
            "CREATE TRIGGER other_load AFTER INSERT ON orders WHEN NEW.id = 6 BEGIN \
             UPDATE pipeline_event_loads SET watermark = 100 WHERE table_name = 'orders'; END",
        )
        .await;
    let refused = warehouse.load::<OrderV1>(&bus, |l| l.batch(2), false).await;
    refused_in_the_third_batch(
        &warehouse,
        bus,
        refused,
        &["another load of orders", "found seq 6"],
        "DROP TRIGGER other_load",
    )
    .await;
}

#[tokio::test]
async fn a_hostile_table_name_is_only_a_name_and_an_overlong_one_is_refused() {
    let warehouse = Warehouse::postgres("events-hostile");
    let bus = Bus::new("events-hostile", None).await;
    for id in 0..199 {
        bus.publish(&order::<OrderV1>(id, false)).await;
    }
    bus.publish(b"\xff not protobuf").await; // and a dead letter, in a table named after it
    let hostile = r#"we"ird; DROP TABLE pipeline_event_loads; --"#;
    let into_hostile = load_task::<OrderV1>(&bus.stream, &bus.subject(), hostile, keep);
    let report = run_task(&warehouse.config, into_hostile, false).await;
    succeeded(&report);
    assert_eq!(
        warehouse
            .rows(
                "SELECT (SELECT count(*) FROM \"we\"\"ird; DROP TABLE pipeline_event_loads; --\"), \
                 (SELECT count(*) FROM \"we\"\"ird; DROP TABLE pipeline_event_loads; --_dead_letters\"), \
                 (SELECT watermark FROM pipeline_event_loads)"
            )
            .await,
        ["199|1|200"]
    );
    let overlong = "o".repeat(64);
    let into_overlong = load_task::<OrderV1>(&bus.stream, &bus.subject(), &overlong, keep);
    let refused = run_task(&warehouse.config, into_overlong, false).await;
    assert_eq!(refused.status, TaskStatus::Failed);
    let error = refused.error.unwrap_or_default();
    assert!(error.contains("64 bytes long"), "{error}");
    assert_eq!(
        warehouse
            .rows("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'ooo%'")
            .await,
        ["0"],
        "nothing written"
    );
    bus.delete().await;
}

#[tokio::test]
async fn a_hostile_table_name_is_only_a_name_on_sqlite_too() {
    // SQLite's rows go in through a statement of their own (its C API): the name is quoted
    // there as everywhere.
    let warehouse = Warehouse::sqlite("events-hostile-sqlite");
    let bus = Bus::new("events-hostile-sqlite", None).await;
    for id in 0..3 {
        bus.publish(&order::<OrderV1>(id, false)).await;
    }
    let hostile = r#"we"ird; DROP TABLE pipeline_event_loads; --"#;
    let into_hostile = load_task::<OrderV1>(&bus.stream, &bus.subject(), hostile, keep);
    succeeded(&run_task(&warehouse.config, into_hostile, false).await);
    assert_eq!(
        warehouse
            .rows(
                "SELECT (SELECT count(*) FROM \"we\"\"ird; DROP TABLE pipeline_event_loads; --\"), \
                 (SELECT watermark FROM pipeline_event_loads)"
            )
            .await,
        ["3|3"]
    );
    bus.delete().await;
}

#[tokio::test]
async fn undecodable_messages_go_to_dead_letters_and_too_many_fail_the_load() {
    let warehouse = Warehouse::sqlite("events-poison");
    let bus = Bus::new("events-poison", None).await;
    bus.publish(&order::<OrderV1>(1, true)).await;
    // Field 1 (an int64) as a length-delimited field that is cut short.
    let poison = [0x0a, 0xff, 0x01];
    let bad_seq = bus.publish(&poison).await;
    bus.publish(&order::<OrderV1>(3, false)).await;
    let report = warehouse
        .load::<OrderV1>(&bus, |l| l.max_bad_share(0.5), false)
        .await;
    succeeded_saying(&report, &["1 undecodable"]);
    assert_eq!(
        warehouse.rows("SELECT id FROM orders ORDER BY id").await,
        ["1", "3"]
    );
    let dead = warehouse
        .rows("SELECT _seq, hex(payload), length(error) > 0 FROM orders_dead_letters")
        .await;
    assert_eq!(dead, [format!("{bad_seq}|0AFF01|1")]);

    // A subject of another message type: nothing decodes, the load fails, nothing is written.
    let other = Warehouse::sqlite("events-wrong-type");
    let wrong = Bus::new("events-wrong", None).await;
    for _ in 0..3 {
        wrong.publish(&poison).await;
    }
    let failed = other.load::<OrderV1>(&wrong, keep, false).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    let error = failed.error.unwrap_or_default();
    assert!(
        error.contains(&wrong.stream)
            && error.contains(&wrong.subject())
            && error.contains("test.v1.Order"),
        "{error}"
    );
    assert!(
        error.contains("Nothing of this batch was written"),
        "{error}"
    );
    assert_eq!(other.rows("SELECT count(*) FROM orders").await, ["0"]);
    assert_eq!(
        other.rows("SELECT count(*) FROM orders_dead_letters").await,
        ["0"]
    );
    bus.delete().await;
    wrong.delete().await;
}

#[tokio::test]
async fn a_gap_left_by_retention_fails_the_load_unless_accepted() {
    let mut warehouse = Warehouse::sqlite("events-gap");
    let bus = Bus::new("events-gap", Some(5)).await;
    for id in 0..10 {
        bus.publish(&order::<OrderV1>(id, false)).await;
    }
    let failed = warehouse.load::<OrderV1>(&bus, keep, false).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    let error = failed.error.unwrap_or_default();
    assert!(
        error.contains("no longer holds seq 1..5") && error.contains(".gaps_ok()"),
        "{error}"
    );
    // Accepted, the gap is in the report and a gentle alert (Slack, here a local stand-in).
    let slack = StubServer::start();
    warehouse.config.alerts.slack_webhook = Some(Secret::new(slack.url("/slack/hook")));
    let accepted = warehouse
        .load::<OrderV1>(&bus, |l| l.gaps_ok(), false)
        .await;
    succeeded_saying(&accepted, &["GAP: seq 1..5"]);
    let warnings: Vec<&str> = accepted.warnings().collect();
    assert!(
        warnings.len() == 1
            && warnings[0].contains("seq 1..5")
            && warnings[0].contains(&bus.stream),
        "{warnings:?}"
    );
    let alerts = slack.slack_texts("/slack/");
    // The warning, and the resolve of the failure before it: two messages.
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert!(
        alerts[0].contains("succeeded with a warning") && alerts[0].contains("seq 1..5"),
        "{alerts:?}"
    );
    assert!(alerts[1].contains("succeeded again"), "{alerts:?}");
    assert_eq!(
        warehouse.rows("SELECT min(id), max(id) FROM orders").await,
        ["5|9"]
    );
    bus.delete().await;
}

/// A field retyped (int64 to string, which protobuf does not allow): the rebuild from the
/// stream's start meets the old messages, and the refusal names the field, both types and
/// what to do instead; the table stays as it was.
#[tokio::test]
async fn a_retyped_field_is_refused_naming_the_field_and_what_to_do() {
    let warehouse = Warehouse::sqlite("events-retyped");
    let bus = Bus::new("events-retyped", None).await;
    bus.publish(&order::<OrderV1>(1, true)).await;
    bus.publish(&order::<OrderV1>(2, true)).await;
    succeeded(&warehouse.load::<OrderV1>(&bus, keep, false).await);
    let refused = warehouse.load::<OrderV4>(&bus, keep, false).await;
    assert_eq!(refused.status, TaskStatus::Failed);
    let error = refused.error.unwrap_or_default();
    assert!(
        error.contains("field `id` of test.v4.Order is declared a string, bytes or message")
            && error.contains("carries it as an integer, bool or enum")
            && error.contains("protobuf cannot change a field's type in place")
            && error.contains("new field number"),
        "{error}"
    );
    assert!(!error.contains("wrong message type"), "{error}");
    assert_eq!(
        warehouse.rows("SELECT id FROM orders ORDER BY id").await,
        ["1", "2"]
    );
    bus.delete().await;
}

#[tokio::test]
async fn an_added_field_adds_a_column_and_a_removed_one_rebuilds_from_the_start() {
    let warehouse = Warehouse::postgres("events-evolve");
    let bus = Bus::new("events-evolve", None).await;
    bus.publish(&order::<OrderV1>(1, true)).await;
    succeeded(&warehouse.load::<OrderV1>(&bus, keep, false).await);
    bus.publish(&order::<OrderV2>(2, true)).await;
    let added = warehouse.load::<OrderV2>(&bus, keep, false).await;
    succeeded_saying(&added, &["columns added", "channel"]);
    assert_eq!(
        warehouse
            .rows("SELECT id, coalesce(channel, 'NULL') FROM orders ORDER BY id")
            .await,
        ["1|NULL", "2|app"]
    );
    // `big` removed: the table is built again from the stream's first message, then swapped in.
    bus.publish(&order::<OrderV3>(3, true)).await;
    let rebuilt = warehouse.load::<OrderV3>(&bus, keep, false).await;
    succeeded_saying(&rebuilt, &["rebuild", "3 events"]);
    assert_eq!(
        warehouse.rows("SELECT id FROM orders ORDER BY id").await,
        ["1", "2", "3"]
    );
    assert_eq!(
        warehouse
            .rows("SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'big'")
            .await,
        ["0"]
    );
    assert_eq!(
        warehouse
            .rows("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'orders_rebuild%'")
            .await,
        ["0"],
        "no staging table left"
    );
    // `_seq` has its BRIN index under the table's name, so that the next rebuild's staging
    // table gets one too (JSON columns this time).
    let seq_index = "SELECT indexname || ' ' || (indexdef LIKE '%USING brin (_seq)') \
                     FROM pg_indexes WHERE tablename = 'orders'";
    assert_eq!(warehouse.rows(seq_index).await, ["orders_seq_brin true"]);
    let again = warehouse.load::<OrderV3>(&bus, as_json, false).await;
    succeeded_saying(&again, &["rebuild"]);
    assert_eq!(warehouse.rows(seq_index).await, ["orders_seq_brin true"]);

    // A rebuild that needs messages retention deleted: an error that says so, the table kept.
    let short = Warehouse::sqlite("events-evolve-short");
    let kept = Bus::new("events-evolve-short", Some(2)).await;
    kept.publish(&order::<OrderV1>(1, false)).await;
    succeeded(&short.load::<OrderV1>(&kept, keep, false).await);
    for id in 2..5 {
        kept.publish(&order::<OrderV1>(id, false)).await;
    }
    let failed = short.load::<OrderV3>(&kept, keep, false).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    let error = failed.error.unwrap_or_default();
    assert!(
        error.contains("needs stream") && error.contains("holds only seq 3..4"),
        "{error}"
    );
    assert_eq!(short.rows("SELECT id FROM orders").await, ["1"]);
    bus.delete().await;
    kept.delete().await;
}

#[tokio::test]
async fn test_mode_writes_to_the_test_schema_only() {
    let warehouse = Warehouse::postgres("events-test-mode");
    let bus = Bus::new("events-test-mode", None).await;
    bus.publish(&order::<OrderV1>(1, false)).await;
    succeeded(&warehouse.load::<OrderV1>(&bus, keep, true).await);
    assert_eq!(
        warehouse
            .rows("SELECT table_schema FROM information_schema.tables WHERE table_name IN ('orders', 'pipeline_event_loads') ORDER BY 1")
            .await,
        ["pipeline_test", "pipeline_test"]
    );
    bus.delete().await;
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_writes_nothing() {
    let warehouse = Warehouse::sqlite("events-bad");
    let bus = Bus::new("events-bad", None).await;
    bus.publish(&order::<OrderV1>(1, false)).await;
    let error = |report: pipeline_core::testing::TaskReport| {
        assert_eq!(report.status, TaskStatus::Failed);
        report.error.unwrap_or_default()
    };

    let mut unreachable = Warehouse::sqlite("events-no-server");
    unreachable.config = with_nats(unreachable.config.clone(), "nats://etl:hunter2@127.0.0.1:1");
    let message = error(unreachable.load::<OrderV1>(&bus, keep, false).await);
    assert!(
        message.contains("cannot connect to NATS at nats://etl:***@127.0.0.1:1"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    // No bus configured: not a failure but `not_configured`, saying how to configure one.
    let mut none = Warehouse::sqlite("events-no-nats");
    none.config.nats = None;
    let report = none.load::<OrderV1>(&bus, keep, false).await;
    assert_eq!(report.status, TaskStatus::NotConfigured);
    let message = report.error.unwrap_or_default();
    assert!(message.contains("PIPELINE_NATS_URL"), "{message}");

    let missing = Bus {
        nats: Nats::connect_url(NATS).await.expect("NATS"),
        stream: "NO_SUCH_STREAM".into(),
    };
    let message = error(warehouse.load::<OrderV1>(&missing, keep, false).await);
    assert!(
        message.contains("NO_SUCH_STREAM") && message.contains("not found"),
        "{message}"
    );

    // Into `orders`, so that "nothing written" below looks where this load would write.
    let elsewhere = load_task::<OrderV1>(&bus.stream, "elsewhere.placed", "orders", keep);
    let message = error(run_task(&warehouse.config, elsewhere, false).await);
    assert!(
        message.contains(&bus.stream) && message.contains("nothing on elsewhere.placed"),
        "{message}"
    );
    assert!(
        warehouse
            .rows("SELECT name FROM sqlite_master WHERE name = 'orders'")
            .await
            .is_empty(),
        "nothing written"
    );
    bus.delete().await;
}
