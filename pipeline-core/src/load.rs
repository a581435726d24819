//! Table loads from a source database (a production read replica) into the warehouse:
//!
//! ```no_run
//! # use pipeline_core::prelude::*;
//! # async fn load(ctx: &Ctx) -> Result<()> {
//! let report = ctx.load_table("orders").incremental_by("id").run().await?;
//! # Ok(()) }
//! ```
//!
//! - **Schema changes** are detected by hashing the source's columns (names, types with
//!   modifiers, nullability, order). Unchanged: an incremental load when one is asked for.
//!   Changed, or first load: a full rebuild.
//! - **Atomic**: on PostgreSQL a rebuild fills a staging table, builds its primary key and
//!   indexes, runs ANALYZE, then swaps it in with a short transaction (under a lock timeout,
//!   retried with jitter) that keeps grants and comments; on SQLite it happens in one
//!   `BEGIN IMMEDIATE` transaction, which WAL readers never see half done. Either way readers
//!   see the old table or the new one, and a failure leaves the old table as it was.
//! - **Metadata** (schema hash, high-water mark, row count) lives in `pipeline_table_loads`
//!   in the warehouse, committed in the same transaction as the data.
//! - **Incremental loads lose nothing.** Sequence values are not committed in order: a row with
//!   a smaller id can commit after a larger one was loaded, leaving a gap that fills later.
//!   Each incremental load therefore reads the keys above the high-water mark *and* the keys
//!   missing from the warehouse within the `lookback` window below it (default 10,000 keys),
//!   and replaces rows by key: a late row is picked up, no row is loaded twice, and only the
//!   gaps are read again, as long as no transaction commits more than `lookback` keys late.
//!
//! PostgreSQL to PostgreSQL streams with binary COPY (memory stays flat whatever the size);
//! SQLite to SQLite copies inside the warehouse through `ATTACH`.

mod lock;
mod names;
mod postgres;
mod schema;
mod sqlite;

use std::time::Instant;

use anyhow::{Context as _, anyhow};
use serde::Serialize;

use crate::ctx::Ctx;
use crate::db::DbPool;
use crate::fatal::ResultExt as _;

#[cfg(feature = "events")]
pub(crate) use lock::TableLock;
pub(crate) use names::check_identifier;
#[cfg(feature = "events")]
pub(crate) use names::derived;
#[doc(hidden)]
pub use names::staging_name;

/// Keys re-read below the high-water mark on each incremental load.
pub(crate) const DEFAULT_LOOKBACK: i64 = 10_000;

/// How long one try of a swap waits for the old table's lock. Readers that come after the
/// request queue behind it for at most this long, so it is short; the swap tries again.
pub(crate) const DEFAULT_SWAP_LOCK_TIMEOUT: std::time::Duration =
    std::time::Duration::from_millis(250);

/// How long a swap keeps trying while readers hold the old table before the load fails.
pub(crate) const DEFAULT_SWAP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// The metadata table kept in the warehouse.
pub(crate) const META_TABLE: &str = "pipeline_table_loads";

/// The metadata table, `qualified` by its schema (`main.` in SQLite).
pub(crate) fn meta_create_sql(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.{META_TABLE} (table_name TEXT PRIMARY KEY, schema_hash TEXT NOT NULL, \
         high_water BIGINT, row_count BIGINT NOT NULL, mode TEXT NOT NULL, loaded_at BIGINT NOT NULL)"
    )
}

/// Reads a table's metadata: `schema_hash, high_water, row_count` for `$1`.
pub(crate) fn meta_select_sql(schema: &str) -> String {
    format!(
        "SELECT schema_hash, high_water, row_count FROM {schema}.{META_TABLE} WHERE table_name = $1"
    )
}

/// Records a load: binds `table, hash, high_water, row_count, mode, loaded_at`.
pub(crate) fn meta_upsert_sql(schema: &str) -> String {
    format!(
        "INSERT INTO {schema}.{META_TABLE} (table_name, schema_hash, high_water, row_count, mode, loaded_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (table_name) DO UPDATE SET schema_hash = excluded.schema_hash, \
         high_water = excluded.high_water, row_count = excluded.row_count, mode = excluded.mode, loaded_at = excluded.loaded_at"
    )
}

impl LoadMode {
    /// As stored and printed: `initial`, `full` or `incremental`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadMode::Initial => "initial",
            LoadMode::Full => "full",
            LoadMode::Incremental => "incremental",
        }
    }
}

/// What a load did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LoadReport {
    /// The warehouse table loaded.
    pub table: String,
    /// A first load, a rebuild, or an incremental load.
    pub mode: LoadMode,
    /// Rows written: all of them for a rebuild, new and re-read ones for an incremental load.
    pub rows: u64,
    /// The source schema differs from the last load's (a rebuild followed).
    pub schema_changed: bool,
    /// The largest incremental key loaded so far, for incremental loads.
    pub high_water: Option<i64>,
    /// How long the load took.
    pub duration_ms: u64,
    /// What a rebuild could not carry over because the source dropped what it applied to:
    /// warehouse indexes, grants, comments or settings of columns that are gone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped: Vec<String>,
}

/// How a table was loaded.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LoadMode {
    /// First load: the table did not exist in the warehouse.
    Initial,
    /// Rebuilt and swapped in.
    Full,
    /// Rows past the high-water mark appended (or re-read ones replaced).
    Incremental,
}

impl LoadReport {
    /// What a load of `spec` did, before the caller adds the rest (schema change, duration,
    /// what was dropped).
    pub(crate) fn new(spec: &LoadSpec, mode: LoadMode, rows: u64, high_water: Option<i64>) -> Self {
        LoadReport {
            table: spec.target_table.clone(),
            mode,
            rows,
            schema_changed: false,
            high_water,
            duration_ms: 0,
            dropped: Vec::new(),
        }
    }
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match (self.mode, self.schema_changed) {
            (LoadMode::Initial, _) => "first load",
            (LoadMode::Full, true) => "rebuilt (schema changed)",
            (LoadMode::Full, false) => "rebuilt",
            (LoadMode::Incremental, _) => "incremental",
        };
        write!(
            f,
            "{}: {mode}, {} row{} in {}",
            self.table,
            self.rows,
            if self.rows == 1 { "" } else { "s" },
            crate::date::format_duration(std::time::Duration::from_millis(self.duration_ms))
        )?;
        for dropped in &self.dropped {
            write!(f, "; {dropped}")?;
        }
        Ok(())
    }
}

/// The rows of an incremental load: new keys, and the gaps below the high-water mark that a
/// late commit may have filled since.
pub(crate) fn incremental_filter(quoted_key: &str, high_water: i64, gaps: &[i64]) -> String {
    if gaps.is_empty() {
        return format!("{quoted_key} > {high_water}");
    }
    let gaps: Vec<String> = gaps.iter().map(i64::to_string).collect();
    format!(
        "({quoted_key} > {high_water} OR {quoted_key} IN ({}))",
        gaps.join(",")
    )
}

/// A load being set up; see [`Ctx::load_table`].
#[derive(Debug)]
#[must_use = "a load does nothing until `.run().await`"]
pub struct TableLoad<'c> {
    ctx: &'c Ctx,
    spec: LoadSpec,
}

/// Everything a backend needs to know about one load.
#[derive(Clone, Debug)]
pub(crate) struct LoadSpec {
    pub source_db: String,
    pub target_db: String,
    /// Schema of the source table (PostgreSQL); default `public`.
    pub source_schema: String,
    pub source_table: String,
    pub target_table: String,
    pub incremental_key: Option<String>,
    pub lookback: i64,
    /// A custom query instead of the whole source table.
    pub query: Option<String>,
    /// Where the run is: used to name staging tables uniquely.
    pub run_id: i64,
    /// A SQLite file to read instead of a configured database.
    pub source_file: Option<std::path::PathBuf>,
    /// How long the swap waits for readers of the old table, per try.
    pub swap_lock_timeout: std::time::Duration,
    /// How long the swap keeps trying in all.
    pub swap_patience: std::time::Duration,
    /// Rebuild by replacing the rows of the live table rather than swapping in a new one.
    pub replace_rows: bool,
}

impl Ctx {
    /// Loads `table` from the `replica` database into the `warehouse` one (both configurable),
    /// in full unless `.incremental_by(key)` is asked for.
    pub fn load_table(&self, table: &str) -> TableLoad<'_> {
        TableLoad {
            ctx: self,
            spec: LoadSpec {
                source_db: "replica".into(),
                target_db: "warehouse".into(),
                source_schema: "public".into(),
                source_table: table.into(),
                target_table: table.into(),
                incremental_key: None,
                lookback: DEFAULT_LOOKBACK,
                query: None,
                run_id: self.run_id(),
                source_file: None,
                swap_lock_timeout: DEFAULT_SWAP_LOCK_TIMEOUT,
                swap_patience: DEFAULT_SWAP_PATIENCE,
                replace_rows: false,
            },
        }
    }
}

impl TableLoad<'_> {
    /// The configured database to read from. Default: `replica`.
    pub fn from_db(mut self, name: &str) -> Self {
        self.spec.source_db = name.into();
        self
    }

    /// Reads from a SQLite file instead of a configured database (the warehouse must be
    /// SQLite too).
    pub fn from_sqlite_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.spec.source_file = Some(path.into());
        self
    }

    /// How long one try of the swap waits for readers of the old table. New readers queue
    /// behind a waiting swap, so this bounds how long they can be held up. Default: 250 ms.
    pub fn swap_lock_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.spec.swap_lock_timeout = timeout;
        self
    }

    /// Rebuilds replace the rows inside the live table, in one transaction, instead of
    /// swapping in a new table. A reader whose snapshot is older than the swap
    /// (`REPEATABLE READ` or `SERIALIZABLE`, such as a report or a `pg_dump`) sees a swapped
    /// table as empty; with this it keeps seeing the old rows, and nobody waits for a lock.
    /// It costs more: every row is deleted and written again under the table's indexes, and
    /// the dead rows wait for vacuum. Used while the source's schema is unchanged; a schema
    /// change still swaps. PostgreSQL only (SQLite readers keep their snapshot either way).
    pub fn replace_rows(mut self) -> Self {
        self.spec.replace_rows = true;
        self
    }

    /// How long the swap keeps trying (with growing pauses between tries) before the load
    /// fails, naming the sessions that hold the table. Default: 30 s.
    pub fn swap_patience(mut self, patience: std::time::Duration) -> Self {
        self.spec.swap_patience = patience;
        self
    }

    /// The configured database to write to. Default: `warehouse`.
    pub fn into_db(mut self, name: &str) -> Self {
        self.spec.target_db = name.into();
        self
    }

    /// The source table's schema (PostgreSQL). Default: `public`.
    pub fn source_schema(mut self, schema: &str) -> Self {
        self.spec.source_schema = schema.into();
        self
    }

    /// The name in the warehouse. Default: the source table's name.
    pub fn as_table(mut self, name: &str) -> Self {
        self.spec.target_table = name.into();
        self
    }

    /// Loads only rows whose integer `key` (from a sequence) is new, while the schema is
    /// unchanged. Default: a full rebuild every time.
    pub fn incremental_by(mut self, key: &str) -> Self {
        self.spec.incremental_key = Some(key.into());
        self
    }

    /// Keys re-read below the high-water mark on each incremental load. Default: 10,000.
    pub fn lookback(mut self, keys: i64) -> Self {
        self.spec.lookback = keys.max(0);
        self
    }

    /// Reads the result of `sql` instead of the whole table (always a full rebuild).
    pub fn query(mut self, sql: &str) -> Self {
        self.spec.query = Some(sql.into());
        self
    }

    /// Runs the load; its report is also noted in the run summary.
    pub async fn run(self) -> anyhow::Result<LoadReport> {
        let spec = self.spec;
        for (what, name) in [
            ("source table", &spec.source_table),
            ("source schema", &spec.source_schema),
            ("target table", &spec.target_table),
        ] {
            check_identifier(name)
                .with_context(|| format!("{what} {name:?}"))
                .fatal()?;
        }
        if let Some(key) = &spec.incremental_key {
            check_identifier(key)
                .with_context(|| format!("incremental key {key:?}"))
                .fatal()?;
            if spec.query.is_some() {
                return Err(anyhow!(
                    "a load from a custom query is always full: drop `.incremental_by({key:?})`"
                ))
                .fatal();
            }
        }
        let started = Instant::now();
        let target = self.ctx.db(&spec.target_db).await?;
        target.check_load(&[&spec.target_table])?;
        let loaded = match (&spec.source_file, target.own_pool()) {
            (Some(path), DbPool::Sqlite(target)) => sqlite::load(path, target, &spec).await,
            (Some(_), _) => {
                return Err(anyhow!(
                    "a load from a SQLite file needs a SQLite warehouse"
                ))
                .fatal();
            }
            (None, _) => load_from_db(self.ctx, &target, &spec).await,
        };
        let mut report = loaded.with_context(|| {
            format!(
                "loading `{}` into `{}`",
                spec.source_table, spec.target_table
            )
        })?;
        report.duration_ms = started.elapsed().as_millis() as u64;
        self.ctx.detail(report.to_string());
        crate::metrics::rows_loaded(&report.table, report.rows);
        tracing::info!("{report}");
        Ok(report)
    }
}

/// A load between two configured databases of the same kind.
async fn load_from_db(
    ctx: &Ctx,
    target: &crate::db::Db,
    spec: &LoadSpec,
) -> anyhow::Result<LoadReport> {
    let source = ctx.source_db(&spec.source_db).await?;
    match (source.own_pool(), target.own_pool()) {
        (DbPool::Postgres(source), DbPool::Postgres(target)) => {
            postgres::load(source, target, spec).await
        }
        (DbPool::Sqlite(_), DbPool::Sqlite(target)) => {
            let path = source
                .sqlite_file()
                .context("the source must be a SQLite file, not an in-memory database")?;
            sqlite::load(&path, target, spec).await
        }
        (source_pool, target_pool) => Err(anyhow!(
            "loading from {} (`{}`) into {} (`{}`) is not supported: use two PostgreSQL or two \
             SQLite databases",
            source_pool.backend(),
            spec.source_db,
            target_pool.backend(),
            spec.target_db
        ))
        .fatal(),
    }
}
