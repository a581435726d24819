//! One event load: a stream's messages on one subject, after the table's watermark and up to
//! the stream's last sequence as of the start, decoded by their message type and written in
//! batches. Each batch's rows, its dead letters and the new watermark commit in one
//! transaction, so a load killed at any point resumes after the last committed batch: every
//! event lands once.

use std::fmt;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use prost_reflect::MessageDescriptor;
use serde::Serialize;
use sqlx::{QueryBuilder, Row as _};

use super::columns::{self, BoundRows, Cell, Column, ColumnKind, RowMaker};
use super::copy::BinaryRows;
use super::nats::Nats;
use super::sqlite::RowInsert;
use super::wire::Plans;
use super::{BusEvent, JsonColumns};
use crate::config::NatsConfig;
use crate::db::{BeginWrite as _, DbPool, quote_ident};
use crate::fatal::ResultExt as _;
use crate::hash::fnv1a;
use crate::load::{TableLock, check_identifier, derived};

/// The metadata of event loads, in the warehouse beside the tables.
pub const META_TABLE: &str = "pipeline_event_loads";
/// Events read per batch (one transaction each) by default.
pub(crate) const DEFAULT_BATCH: usize = 10_000;
/// The share of messages that may fail to decode before a load fails, by default.
pub(crate) const DEFAULT_MAX_BAD_SHARE: f64 = 0.01;
/// Batches each stage of a load (fetch, decode) runs ahead of the next.
const READ_AHEAD: usize = 2;
/// Batches a load into PostgreSQL writes at once, each on a connection of its own. Measured
/// on two cores with 1M events: 1 writer 6.6-7.9 s, 2 writers 4.7-5.9 s, 3 writers 4.5-4.9 s,
/// 4 no better than 3, 6 worse. Since commits run beside the writes (and the machine, not
/// waiting, is the limit), 2 and 3 writers measure alike (3.7-4.0 s).
const POSTGRES_WRITERS: usize = 3;

/// The columns every event table has before the message's own.
const SEQ: &str = "_seq";
const SUBJECT: &str = "_subject";
const PUBLISHED: &str = "_published_at";

/// What to load, as the builder collected it.
#[derive(Clone, Debug)]
pub(crate) struct EventSpec {
    pub stream: String,
    pub subject: String,
    pub table: String,
    pub target_db: String,
    pub batch: usize,
    pub max_bad_share: f64,
    pub gaps_ok: bool,
    pub json: JsonColumns,
}

/// How a load went about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLoadMode {
    /// The table did not exist.
    FirstLoad,
    /// After the watermark, the schema unchanged.
    Incremental,
    /// The message type gained fields: columns added, old rows NULL in them.
    ColumnsAdded,
    /// A field was removed or changed type: the table rebuilt from the stream's start.
    Rebuild,
}

impl fmt::Display for EventLoadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventLoadMode::FirstLoad => "first load",
            EventLoadMode::Incremental => "incremental",
            EventLoadMode::ColumnsAdded => "columns added",
            EventLoadMode::Rebuild => "rebuild",
        })
    }
}

/// What an event load did.
#[derive(Clone, Debug, Serialize)]
pub struct EventLoadReport {
    /// The table loaded into.
    pub table: String,
    /// The stream and subject read.
    pub stream: String,
    /// The subject filter.
    pub subject: String,
    /// How: first load, incremental, columns added, rebuild.
    pub mode: EventLoadMode,
    /// Events written to the table.
    pub loaded: u64,
    /// Messages that did not decode, kept in the dead-letter table.
    pub dead_letters: u64,
    /// The sequence loaded through before the load.
    pub watermark_before: u64,
    /// The sequence loaded through after it: the stream's last as of the start.
    pub watermark_after: u64,
    /// Sequences the stream no longer held when they were due (`.gaps_ok()`), first to last.
    pub gaps: Vec<(u64, u64)>,
    /// Columns added to the table.
    pub added_columns: Vec<String>,
    /// Wall time of the load.
    pub duration_ms: u64,
    /// How far the table is behind its stream as the load ends: the stream's last sequence
    /// then, less the watermark (what was published during the load, for the next one);
    /// `None` when the stream could not be asked.
    pub lag: Option<u64>,
}

impl fmt::Display for EventLoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} from {} {}: {} events through seq {}",
            self.table, self.mode, self.stream, self.subject, self.loaded, self.watermark_after
        )?;
        if self.dead_letters > 0 {
            write!(
                f,
                ", {} undecodable in {}",
                self.dead_letters,
                dead_letter_table(&self.table)
            )?;
        }
        if !self.added_columns.is_empty() {
            write!(f, ", new columns {}", self.added_columns.join(", "))?;
        }
        for (first, last) in &self.gaps {
            write!(f, ", GAP: seq {first}..{last} lost to retention")?;
        }
        write!(f, " in {} ms", self.duration_ms)
    }
}

/// The BRIN index of a PostgreSQL event table's `_seq`: it serves the range reads of
/// downstream loads (`WHERE _seq > $last`) from a few pages, and costs a load next to nothing,
/// where a B-tree primary key took a fifth of the server's work. One load at a time and the
/// watermark's check in each commit keep `_seq` unique.
fn seq_index(table: &str) -> String {
    derived(table, "seq_brin")
}

/// Where a table's undecodable messages go.
pub fn dead_letter_table(table: &str) -> String {
    derived(table, "dead_letters")
}

/// A table's load metadata.
#[derive(Debug)]
struct Meta {
    stream: String,
    subject: String,
    columns: String,
    watermark: u64,
    row_count: i64,
}

/// Runs the load of `spec` with messages of type `message`, into `pool`: one load of a table
/// at a time. On PostgreSQL a second load waits for the first (the table's load lock), then
/// starts after its watermark; on SQLite the watermark's check in each commit refuses it.
pub(crate) async fn run(
    nats: &NatsConfig,
    pool: &DbPool,
    spec: &EventSpec,
    message: &MessageDescriptor,
) -> anyhow::Result<EventLoadReport> {
    check_identifier(&spec.table)
        .with_context(|| format!("table {:?}", spec.table))
        .fatal()?;
    let lock = match pool {
        DbPool::Postgres(pool) => Some(TableLock::acquire(pool, &spec.table).await?),
        DbPool::Sqlite(_) => None,
    };
    let loaded = run_locked(nats, pool, spec, message).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    loaded
}

/// The load, its table's lock held.
async fn run_locked(
    nats: &NatsConfig,
    pool: &DbPool,
    spec: &EventSpec,
    message: &MessageDescriptor,
) -> anyhow::Result<EventLoadReport> {
    let started = Instant::now();
    let postgres = matches!(pool, DbPool::Postgres(_));
    let plans = Plans::new(message, postgres)
        .with_context(|| format!("message type {}", message.full_name()))
        .fatal()?;
    let json = match (postgres, spec.json) {
        (true, JsonColumns::Json) => ColumnKind::JsonText,
        _ => ColumnKind::Json,
    };
    let columns = columns::columns(&plans, json);
    for column in &columns {
        if [SEQ, SUBJECT, PUBLISHED].contains(&column.name.as_str()) {
            return Err(anyhow!(
                "field `{}` of {} has the name of a column every event table has",
                column.name,
                message.full_name()
            ))
            .fatal();
        }
        check_identifier(&column.name)?;
    }
    let schema = columns::schema_text(&columns);
    let nats = Nats::connect(nats).await?;
    let state = nats.stream_state(&spec.stream).await?;
    if !state
        .subjects
        .iter()
        .any(|s| subject_overlaps(s, &spec.subject))
    {
        return Err(anyhow!(
            "stream {} stores {} and nothing on {}: check the subject",
            spec.stream,
            state.subjects.join(", "),
            spec.subject
        ))
        .fatal();
    }
    let sink = Sink { pool, postgres };
    sink.execute(&meta_create_sql()).await?;
    let meta = sink.meta(&spec.table).await?;
    let (mode, added) = match &meta {
        None => (EventLoadMode::FirstLoad, Vec::new()),
        Some(meta) if meta.stream != spec.stream || meta.subject != spec.subject => {
            return Err(anyhow!(
                "table {} holds the events of {} {}, not of {} {}: load those into another table",
                spec.table,
                meta.stream,
                meta.subject,
                spec.stream,
                spec.subject
            ))
            .fatal();
        }
        Some(meta) if meta.columns == schema => (EventLoadMode::Incremental, Vec::new()),
        Some(meta) => match added_columns(&meta.columns, &columns) {
            Some(added) => (EventLoadMode::ColumnsAdded, added),
            None => (EventLoadMode::Rebuild, Vec::new()),
        },
    };
    let watermark_before = match (&meta, mode) {
        (Some(meta), EventLoadMode::Incremental | EventLoadMode::ColumnsAdded) => meta.watermark,
        _ => 0,
    };
    if mode == EventLoadMode::Rebuild && state.first > 1 {
        let stored = meta.as_ref().map_or("", |m| m.columns.as_str());
        let (why, or_else) = if only_json_kinds_differ(stored, &schema) {
            let (was, now, keep) = match spec.json {
                JsonColumns::Json => ("JSONB", "JSON", "Jsonb"),
                JsonColumns::Jsonb => ("JSON", "JSONB", "Json"),
            };
            (
                format!(
                    "the JSON columns of {} would change from {was} to {now} (`.json_columns`)",
                    spec.table
                ),
                format!("keep them as they are with `.json_columns(JsonColumns::{keep})`"),
            )
        } else {
            (
                format!(
                    "the fields of {} changed ({stored} before, {schema} now)",
                    message.full_name()
                ),
                "put the removed or retyped field back".to_string(),
            )
        };
        return Err(anyhow!(
            "{why}: a rebuild of {} needs stream {} from its first message, but it holds only \
             seq {}..{} (retention deleted the rest). Drop {} (and its metadata row in \
             {META_TABLE}) to load what the stream holds, or {or_else}",
            spec.table,
            spec.stream,
            state.first,
            state.last,
            spec.table
        ))
        .fatal();
    }
    let mut from = watermark_before + 1;
    let mut gaps = Vec::new();
    if state.last >= from && state.first > from {
        let lost = (from, state.first - 1);
        if !spec.gaps_ok {
            return Err(anyhow!(
                "stream {} no longer holds seq {}..{} (of any subject): retention deleted them \
                 before {} loaded them, so events of {} may be lost. Raise the stream's \
                 retention, or accept the gap with `.gaps_ok()`",
                spec.stream,
                lost.0,
                lost.1,
                spec.table,
                spec.subject
            ))
            .fatal();
        }
        gaps.push(lost);
        from = state.first;
    }
    // A rebuild fills a table of its own and swaps it in at the end; a load killed on the
    // way leaves the old table as it was, and the next one rebuilds again.
    let into = if mode == EventLoadMode::Rebuild {
        let staging = derived(&spec.table, "rebuild");
        sink.create_tables(&staging, &columns, true).await?;
        staging
    } else {
        if mode == EventLoadMode::FirstLoad {
            sink.create_tables(&spec.table, &columns, false).await?;
        }
        if !added.is_empty() {
            sink.add_columns(&spec.table, &columns, &added, &schema)
                .await?;
        }
        spec.table.clone()
    };
    let mut decoder = Decoder {
        spec,
        maker: Some(RowMaker::new(plans, &columns)),
        columns: columns.len(),
        message,
        postgres,
        seen: 0,
        bad: 0,
    };
    let writer = Writer {
        sink: &sink,
        spec,
        table: into.clone(),
        columns: &columns,
        schema: &schema,
        record_watermark: mode != EventLoadMode::Rebuild,
    };
    let mut written = Written {
        row_count: meta.as_ref().map_or(0, |m| m.row_count),
        watermark: meta.as_ref().map(|m| m.watermark),
        ..Written::default()
    };
    let mut reader = nats
        .read(&spec.stream, &spec.subject, from, state.last, spec.batch)
        .await?;
    // A pipeline of three stages, each a batch ahead of the next: fetching from the bus,
    // decoding (on a thread of its own), writing. So the bus, the decoder and the database
    // each keep working. A stage that fails stops those before it (their sends fail) and
    // lets those after it finish what they hold: batches decoded before a failure are still
    // written, as each commits on its own.
    let (fetched, to_decode) = tokio::sync::mpsc::channel(READ_AHEAD);
    let (decoded, to_write) = tokio::sync::mpsc::channel(READ_AHEAD);
    // Each stage owns its ends of the channels, so that they close however it ends: the
    // stage after it sees the end, the stage before it a failed send.
    let fetch = async {
        let fetched = fetched;
        while let Some(events) = reader.next_batch().await? {
            if fetched.send(events).await.is_err() {
                break; // a later stage failed; its error is the load's
            }
        }
        anyhow::Ok(())
    };
    let decode = async {
        let (mut to_decode, decoded) = (to_decode, decoded);
        while let Some(events) = to_decode.recv().await {
            let batch = decoder.decode(events).await?;
            if decoded.send(batch).await.is_err() {
                break;
            }
        }
        anyhow::Ok(())
    };
    let write = writer.write_all(to_write, &mut written);
    let (fetch, decode, wrote) = tokio::join!(fetch, decode, write);
    reader.close().await;
    wrote?;
    decode?;
    fetch?;
    let Written {
        loaded,
        dead: bad,
        row_count,
        watermark: recorded,
    } = written;
    // Read through the stream's last sequence as of the start: the next load begins after
    // it, whatever subject those last messages had.
    let watermark_after = state.last.max(watermark_before);
    if mode == EventLoadMode::Rebuild {
        sink.swap_in(&into, spec, &schema, recorded, watermark_after, row_count)
            .await?;
    } else {
        sink.record(spec, &schema, recorded, watermark_after, row_count)
            .await?;
    }
    // What was published meanwhile waits for the next load: the lag a monitor watches.
    let lag = nats
        .stream_state(&spec.stream)
        .await
        .ok()
        .map(|now| now.last.saturating_sub(watermark_after));
    Ok(EventLoadReport {
        lag,
        table: spec.table.clone(),
        stream: spec.stream.clone(),
        subject: spec.subject.clone(),
        mode,
        loaded,
        dead_letters: bad,
        watermark_before,
        watermark_after,
        gaps,
        added_columns: added,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Whether two schema texts differ only in their JSON columns' kind (`json`, `json_text`):
/// the `.json_columns` option changed, not the message.
fn only_json_kinds_differ(stored: &str, now: &str) -> bool {
    let plain = |schema: &str| -> Vec<String> {
        schema
            .split(", ")
            .map(|column| match column.strip_suffix(" json_text") {
                Some(name) => format!("{name} json"),
                None => column.to_string(),
            })
            .collect()
    };
    stored != now && plain(stored) == plain(now)
}

/// Whether a stream subject (with `*` and `>` wildcards) can match messages of `filter`.
fn subject_overlaps(stream: &str, filter: &str) -> bool {
    let mut a = stream.split('.');
    let mut b = filter.split('.');
    loop {
        match (a.next(), b.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == y || x == "*" || y == "*" => continue,
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The columns to add when the message gained fields and lost or changed none: `None` when
/// the table must be rebuilt.
fn added_columns(stored: &str, columns: &[Column]) -> Option<Vec<String>> {
    let stored: Vec<&str> = stored.split(", ").filter(|c| !c.is_empty()).collect();
    let now: Vec<String> = columns
        .iter()
        .map(|column| format!("{} {}", column.name, column.kind.as_str()))
        .collect();
    if !stored.iter().all(|column| now.iter().any(|c| c == column)) {
        return None;
    }
    Some(
        columns
            .iter()
            .filter(|column| {
                !stored.contains(&format!("{} {}", column.name, column.kind.as_str()).as_str())
            })
            .map(|column| column.name.clone())
            .collect(),
    )
}

fn meta_create_sql() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {META_TABLE} (table_name TEXT PRIMARY KEY, stream TEXT NOT NULL, \
         subject TEXT NOT NULL, schema_hash TEXT NOT NULL, columns TEXT NOT NULL, \
         watermark BIGINT NOT NULL, row_count BIGINT NOT NULL, loaded_at BIGINT NOT NULL)"
    )
}

/// Records a load's metadata inside the transaction `tx`: table, stream, subject, schema,
/// watermark, row count. Only over the watermark this load last saw (`$expected`, `None`: no
/// row yet): if another load moved it meanwhile, it returns that error from the function it
/// is in, and the transaction rolls back, rows and all.
macro_rules! upsert_meta {
    ($tx:ident, $spec:expr, $schema:expr, $expected:expr, $watermark:expr, $rows:expr) => {{
        let expected: Option<u64> = $expected;
        let upserted = sqlx::query(sqlx::AssertSqlSafe(upsert_sql()))
            .bind(&$spec.table)
            .bind(&$spec.stream)
            .bind(&$spec.subject)
            .bind(hash($schema))
            .bind($schema)
            .bind($watermark as i64)
            .bind($rows)
            .bind(crate::date::now_millis())
            .bind(expected.map_or(-1, |w| w as i64))
            .execute(&mut *$tx)
            .await?;
        if upserted.rows_affected() != 1 {
            return Err(watermark_moved(&$spec.table, expected));
        }
    }};
}

// After `upsert_meta!`, which the write stage uses too.
mod decode;
mod write;

use decode::{Decoded, Decoder, Rows};
use write::{Writer, Written};

/// Why a batch was refused: another load of the table committed since this one began.
fn watermark_moved(table: &str, expected: Option<u64>) -> anyhow::Error {
    let was = expected.map_or("no watermark yet".to_string(), |w| format!("seq {w}"));
    anyhow!(
        "another load of {table} ran at the same time and moved its watermark (this load \
         found {was}): this load's uncommitted batch was rolled back, so no event is loaded \
         twice. Run the task again to load what is left"
    )
}

/// The warehouse side of a load.
struct Sink<'a> {
    pool: &'a DbPool,
    postgres: bool,
}

impl Sink<'_> {
    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        self.pool.execute_script(sql).await
    }

    async fn meta(&self, table: &str) -> anyhow::Result<Option<Meta>> {
        let sql = format!(
            "SELECT stream, subject, columns, watermark, row_count FROM {META_TABLE} WHERE table_name = $1"
        );
        crate::db::dispatch!(self.pool, pool => {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(table)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => Ok(Some(Meta {
                    stream: row.try_get("stream")?,
                    subject: row.try_get("subject")?,
                    columns: row.try_get("columns")?,
                    watermark: u64::try_from(row.try_get::<i64, _>("watermark")?).unwrap_or(0),
                    row_count: row.try_get("row_count")?,
                })),
                None => Ok(None),
            }
        })
    }

    /// The table and its dead-letter table (dropped first when `fresh`).
    async fn create_tables(
        &self,
        table: &str,
        columns: &[Column],
        fresh: bool,
    ) -> anyhow::Result<()> {
        let postgres = self.postgres;
        let timestamp = ColumnKind::Timestamp.sql_type(postgres);
        let bytes = ColumnKind::Bytes.sql_type(postgres);
        // In SQLite, only `INTEGER PRIMARY KEY` is the rowid itself; any other key is a
        // second B-tree beside the table's, which each row written must go into as well.
        // PostgreSQL's event tables get a BRIN index instead (`seq_index`).
        let seq = if postgres {
            "BIGINT NOT NULL"
        } else {
            "INTEGER PRIMARY KEY"
        };
        let key = if postgres { "BIGINT" } else { "INTEGER" };
        let mut definitions = vec![
            format!("{} {seq}", quote_ident(SEQ)),
            format!("{} TEXT NOT NULL", quote_ident(SUBJECT)),
            format!("{} {timestamp} NOT NULL", quote_ident(PUBLISHED)),
        ];
        for column in columns {
            definitions.push(format!(
                "{} {}",
                quote_ident(&column.name),
                column.kind.sql_type(postgres)
            ));
        }
        let dead = dead_letter_table(table);
        let mut script = String::new();
        if fresh {
            script.push_str(&format!(
                "DROP TABLE IF EXISTS {}; DROP TABLE IF EXISTS {};",
                quote_ident(table),
                quote_ident(&dead)
            ));
        }
        script.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} ({}); CREATE TABLE IF NOT EXISTS {} ({} {key} PRIMARY KEY, \
             {} TEXT NOT NULL, {} {timestamp} NOT NULL, payload {bytes} NOT NULL, error TEXT NOT NULL)",
            quote_ident(table),
            definitions.join(", "),
            quote_ident(&dead),
            quote_ident(SEQ),
            quote_ident(SUBJECT),
            quote_ident(PUBLISHED),
        ));
        if postgres {
            script.push_str(&format!(
                "; CREATE INDEX IF NOT EXISTS {} ON {} USING brin ({})",
                quote_ident(&seq_index(table)),
                quote_ident(table),
                quote_ident(SEQ)
            ));
        }
        self.execute(&script).await
    }

    /// Adds the new fields' columns and records the schema, in one transaction.
    async fn add_columns(
        &self,
        table: &str,
        columns: &[Column],
        added: &[String],
        schema: &str,
    ) -> anyhow::Result<()> {
        let mut script = String::new();
        for column in columns.iter().filter(|c| added.contains(&c.name)) {
            script.push_str(&format!(
                "ALTER TABLE {} ADD COLUMN {} {};",
                quote_ident(table),
                quote_ident(&column.name),
                column.kind.sql_type(self.postgres)
            ));
        }
        script.push_str(&format!(
            "UPDATE {META_TABLE} SET columns = {}, schema_hash = {} WHERE table_name = {}",
            crate::db::quote_literal(schema),
            crate::db::quote_literal(&hash(schema)),
            crate::db::quote_literal(table)
        ));
        self.execute(&script).await
    }

    /// Records the load's metadata over the watermark it last recorded (`expected`).
    async fn record(
        &self,
        spec: &EventSpec,
        schema: &str,
        expected: Option<u64>,
        watermark: u64,
        row_count: i64,
    ) -> anyhow::Result<()> {
        crate::db::dispatch!(self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            upsert_meta!(tx, spec, schema, expected, watermark, row_count);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Puts the rebuilt table in the old one's place, with its metadata, in one transaction.
    async fn swap_in(
        &self,
        staging: &str,
        spec: &EventSpec,
        schema: &str,
        expected: Option<u64>,
        watermark: u64,
        row_count: i64,
    ) -> anyhow::Result<()> {
        let (table, dead, staging_dead) = (
            quote_ident(&spec.table),
            dead_letter_table(&spec.table),
            dead_letter_table(staging),
        );
        let mut swap = format!(
            "DROP TABLE IF EXISTS {table}; DROP TABLE IF EXISTS {}; \
             ALTER TABLE {} RENAME TO {table}; ALTER TABLE {} RENAME TO {}",
            quote_ident(&dead),
            quote_ident(staging),
            quote_ident(&staging_dead),
            quote_ident(&dead),
        );
        if self.postgres {
            // Its old name would keep the next rebuild's staging table from having one.
            swap.push_str(&format!(
                "; ALTER INDEX {} RENAME TO {}",
                quote_ident(&seq_index(staging)),
                quote_ident(&seq_index(&spec.table))
            ));
        }
        crate::db::dispatch!(self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(swap)).execute(&mut *tx).await?;
            upsert_meta!(tx, spec, schema, expected, watermark, row_count);
            tx.commit().await?;
        });
        Ok(())
    }
}

fn upsert_sql() -> String {
    format!(
        "INSERT INTO {META_TABLE} (table_name, stream, subject, schema_hash, columns, watermark, row_count, loaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (table_name) DO UPDATE SET \
         stream = excluded.stream, subject = excluded.subject, schema_hash = excluded.schema_hash, \
         columns = excluded.columns, watermark = excluded.watermark, row_count = excluded.row_count, \
         loaded_at = excluded.loaded_at WHERE {META_TABLE}.watermark = $9"
    )
}

fn hash(schema: &str) -> String {
    format!("{:016x}", fnv1a(schema.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::write::published_text;
    use super::*;

    #[test]
    fn a_switch_of_json_columns_is_told_from_a_changed_message() {
        let jsonb = "id bigint, items json, note text";
        assert!(only_json_kinds_differ(
            jsonb,
            "id bigint, items json_text, note text"
        ));
        assert!(only_json_kinds_differ(
            "id bigint, items json_text",
            "id bigint, items json"
        ));
        assert!(!only_json_kinds_differ(jsonb, jsonb));
        assert!(!only_json_kinds_differ(jsonb, "id bigint, items json_text"));
        assert!(!only_json_kinds_differ(
            jsonb,
            "id text, items json_text, note text"
        ));
    }

    #[test]
    fn stream_subjects_match_filters_by_their_wildcards() {
        assert!(subject_overlaps("orders.>", "orders.placed"));
        assert!(subject_overlaps("orders.*", "orders.placed"));
        assert!(subject_overlaps("orders.placed", "orders.placed"));
        assert!(subject_overlaps("orders.placed", "orders.*"));
        assert!(!subject_overlaps("orders.placed", "orders.cancelled"));
        assert!(!subject_overlaps("orders.*", "orders.placed.eu"));
        assert!(!subject_overlaps("payments.>", "orders.placed"));
    }

    #[test]
    fn publish_times_read_on_both_backends() {
        assert_eq!(
            published_text(1_795_651_200_123, true),
            "2026-11-26 00:00:00.123+00"
        );
        assert_eq!(
            published_text(1_795_651_200_123, false),
            "2026-11-26T00:00:00.123Z"
        );
    }
}
