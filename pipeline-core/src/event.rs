//! Event loads: messages published on a message bus, loaded into warehouse tables. The bus is
//! NATS with JetStream ([`nats`]); a load needs of a bus only what [`StreamState`] and
//! [`nats::Nats::read`] give (a stream's sequence range, and one subject's messages in
//! sequence order from a given sequence), so that another bus with ordered, addressable
//! offsets (Kafka: a topic partition's offsets) can follow.

mod columns;
mod copy;
#[cfg(test)]
mod differential;
mod json;
mod load;
/// The bus client: the example's demo publisher uses it; not part of the API.
#[doc(hidden)]
pub mod nats;
mod sqlite;
mod wire;

use anyhow::Context as _;
#[doc(hidden)]
pub use load::dead_letter_table;
use load::{DEFAULT_BATCH, DEFAULT_MAX_BAD_SHARE};
pub use load::{EventLoadMode, EventLoadReport};
pub use prost_reflect;
use prost_reflect::{DescriptorPool, MessageDescriptor};

use crate::ctx::Ctx;
use crate::fatal::ResultExt as _;

/// A protobuf message type that event loads decode, known by its descriptor: declared with
/// [`event_messages!`](crate::event_messages) from the descriptor set that a build script
/// compiled from `.proto` files.
pub trait EventMessage {
    /// Its descriptor.
    fn descriptor() -> anyhow::Result<MessageDescriptor>;
}

/// The descriptor of `full_name` (`shop.OrderPlaced`) in an encoded `FileDescriptorSet`
/// (what [`event_messages!`](crate::event_messages) declares).
#[doc(hidden)]
pub fn descriptor(set: &[u8], full_name: &str) -> anyhow::Result<MessageDescriptor> {
    let pool =
        DescriptorPool::decode(set).context("the compiled descriptor set does not decode")?;
    pool.get_message_by_name(full_name)
        .with_context(|| format!("the compiled .proto files declare no message {full_name}"))
}

/// Declares message types for event loads from an encoded `FileDescriptorSet`:
///
/// ```ignore
/// pipeline_core::event_messages!(include_bytes!(concat!(env!("OUT_DIR"), "/events.bin"));
///     /// An order, as the shop publishes it.
///     OrderPlaced = "shop.OrderPlaced",
/// );
/// ```
#[macro_export]
macro_rules! event_messages {
    ($set:expr; $($(#[$meta:meta])* $name:ident = $full_name:literal),* $(,)?) => {
        $(
            $(#[$meta])*
            #[derive(Clone, Copy, Debug)]
            pub struct $name;
            impl $crate::event::EventMessage for $name {
                fn descriptor() -> $crate::anyhow::Result<$crate::event::prost_reflect::MessageDescriptor> {
                    $crate::event::descriptor($set, $full_name)
                }
            }
        )*
    };
}

/// An event load being set up: [`Ctx::load_events`].
#[derive(Debug)]
#[must_use = "an event load does nothing until `.run().await`"]
pub struct EventLoad<'a> {
    ctx: &'a Ctx,
    spec: load::EventSpec,
    descriptor: anyhow::Result<MessageDescriptor>,
}

impl Ctx {
    /// Loads the messages of `stream` on `subject`, decoded as `M`, into a warehouse table
    /// (`.into_table`, default: the subject with `.` as `_`), exactly once: see
    /// [`crate::event`].
    pub fn load_events<M: EventMessage>(&self, stream: &str, subject: &str) -> EventLoad<'_> {
        EventLoad {
            ctx: self,
            spec: load::EventSpec {
                stream: stream.to_string(),
                subject: subject.to_string(),
                table: subject.replace(['.', '*', '>'], "_"),
                target_db: "warehouse".into(),
                batch: DEFAULT_BATCH,
                max_bad_share: DEFAULT_MAX_BAD_SHARE,
                gaps_ok: false,
                json: JsonColumns::default(),
            },
            descriptor: M::descriptor(),
        }
    }
}

impl EventLoad<'_> {
    /// The table to load into.
    pub fn into_table(mut self, table: &str) -> Self {
        self.spec.table = table.to_string();
        self
    }

    /// The configured database to load into. Default: `warehouse`.
    pub fn into_db(mut self, name: &str) -> Self {
        self.spec.target_db = name.to_string();
        self
    }

    /// Events per transaction. Default: 10,000 (`DEFAULT_BATCH`).
    pub fn batch(mut self, events: usize) -> Self {
        self.spec.batch = events.max(1);
        self
    }

    /// The share of messages (0 to 1) that may fail to decode, kept in the dead-letter table,
    /// before the load fails. Default: 0.01 (`DEFAULT_MAX_BAD_SHARE`).
    pub fn max_bad_share(mut self, share: f64) -> Self {
        self.spec.max_bad_share = share.clamp(0.0, 1.0);
        self
    }

    /// Accepts that the stream lost messages to retention before they were loaded: the load
    /// goes on from what the stream holds, and the report names the gap.
    pub fn gaps_ok(mut self) -> Self {
        self.spec.gaps_ok = true;
        self
    }

    /// How PostgreSQL stores the JSON columns (nested messages, repeated and map fields).
    /// Default: [`JsonColumns::Jsonb`]. Changing it for a loaded table rebuilds the table
    /// from the stream's start, as a retyped field does. SQLite keeps JSON as TEXT either way.
    pub fn json_columns(mut self, json: JsonColumns) -> Self {
        self.spec.json = json;
        self
    }

    /// Loads; what it did.
    pub async fn run(self) -> anyhow::Result<EventLoadReport> {
        // Before the names reach a log line, an error's context or the bus.
        nats::check_name("stream", &self.spec.stream).fatal()?;
        nats::check_subject(&self.spec.subject).fatal()?;
        let descriptor = self.descriptor.fatal()?;
        let url = self.ctx.config().nats.clone().ok_or_else(|| {
            crate::fatal::NotConfigured::error(
                "no NATS server is configured for event loads: set PIPELINE_NATS_URL (or \
                     [nats] url in pipeline.toml) to nats://host:4222",
            )
        })?;
        let db = self.ctx.db(&self.spec.target_db).await?;
        let dead_letters = load::dead_letter_table(&self.spec.table);
        db.check_load(&[&self.spec.table, &dead_letters])?;
        let report = load::run(&url, db.own_pool(), &self.spec, &descriptor)
            .await
            .with_context(|| {
                format!(
                    "loading {} {} into `{}`",
                    self.spec.stream, self.spec.subject, self.spec.table
                )
            })?;
        self.ctx.detail(report.to_string());
        crate::metrics::event_load(&report.table, report.lag, report.dead_letters);
        tracing::info!("{report}");
        for (first, last) in &report.gaps {
            self.ctx.warn(format!(
                "`{}` misses the events of {} at seq {first}..{last} of stream {}: retention \
                 deleted them before they were loaded (accepted with .gaps_ok())",
                report.table, report.subject, report.stream
            ));
        }
        Ok(report)
    }
}

/// How PostgreSQL stores an event table's JSON columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum JsonColumns {
    /// `JSONB`: parsed into PostgreSQL's binary tree as it loads, so queries and indexes
    /// (GIN, `->>`, `@>`) read it fast. Parsing is most of the server's work in a load: about
    /// 2 CPU-seconds per million events of a small nested list.
    #[default]
    Jsonb,
    /// `JSON`: the text as loaded, checked but not parsed into a tree; a load costs the
    /// server far less, and each query parses the text again. For tables read whole, or
    /// seldom.
    Json,
}

/// What a stream holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub struct StreamState {
    /// The oldest sequence it still holds (retention deletes older ones).
    pub first: u64,
    /// The newest sequence; 0 when it never held a message.
    pub last: u64,
    /// The subjects it stores.
    pub subjects: Vec<String>,
}

/// One message read from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub struct BusEvent {
    /// Its sequence in the stream: unique, increasing.
    pub seq: u64,
    /// The subject it was published on (shared by the events of a batch on one subject).
    pub subject: std::sync::Arc<str>,
    /// When the stream stored it, Unix milliseconds.
    pub published_ms: i64,
    /// Its bytes, as published.
    pub payload: Vec<u8>,
}
