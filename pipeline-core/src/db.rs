//! Connections to the supported databases (SQLite and PostgreSQL), chosen by URL scheme, and the
//! named database handles that tasks use. In test mode, a handle points its writes elsewhere: a
//! separate SQLite file, or a PostgreSQL schema set as the only `search_path`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions as _, PgConnection, PgPool, SqlitePool};
use tokio::sync::OnceCell;

use crate::access::Declared;
use crate::config::{Config, Setting, sqlite_path};

mod checked;
pub(crate) use checked::Hold;
pub use checked::{CheckedConnection, CheckedPool, CheckedPoolConnection, CheckedTransaction};

/// How long a connection attempt may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Statements slower than this are logged, at debug level: a COPY of a big table or a swap
/// waiting for readers is slow on purpose, and says so itself.
const SLOW_STATEMENT: Duration = Duration::from_secs(5);
const SLOW_STATEMENT_LOG: log::LevelFilter = log::LevelFilter::Debug;

/// A pool for one of the supported backends: sqlx's pool inside (the variants deref to it),
/// whose statements test mode holds to the task's declared tables (see [`CheckedPool`]).
#[derive(Clone, Debug)]
pub enum DbPool {
    /// An embedded SQLite file.
    Sqlite(CheckedPool<sqlx::Sqlite>),
    /// A PostgreSQL server.
    Postgres(CheckedPool<sqlx::Postgres>),
}

/// Runs the same code against whichever pool it is: `dispatch!(pool, p => query.execute(p))`.
macro_rules! dispatch {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::db::DbPool::Sqlite($p) => $body,
            $crate::db::DbPool::Postgres($p) => $body,
        }
    };
}
pub(crate) use dispatch;

/// Where a pool's writes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// The database as configured.
    Production,
    /// Test mode: a `*.test.db` file beside a SQLite database, or this schema in PostgreSQL.
    Test {
        /// The PostgreSQL schema that takes test-mode writes.
        schema: String,
    },
}

impl DbPool {
    /// Connects to `setting.url`. Errors name the setting and never show a password.
    pub(crate) async fn connect(
        setting: &Setting,
        target: &Target,
        max_connections: u32,
    ) -> anyhow::Result<DbPool> {
        let fail = |err: sqlx::Error| {
            let why = why_not_connected(&err, &setting.url);
            redacted(err).context(format!(
                "cannot connect to {} (set by {}): {why}",
                setting.redacted(),
                setting.source
            ))
        };
        let pool = if setting.url.starts_with("sqlite:") {
            DbPool::Sqlite(CheckedPool::new(
                connect_sqlite(&setting.url, target, max_connections)
                    .await
                    .map_err(fail)?,
            ))
        } else {
            DbPool::Postgres(CheckedPool::new(
                connect_postgres(&setting.url, target, max_connections)
                    .await
                    .map_err(fail)?,
            ))
        };
        Ok(pool)
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            DbPool::Sqlite(_) => "sqlite",
            DbPool::Postgres(_) => "postgres",
        }
    }

    /// The same pool, its statements held as `hold` says.
    fn held_to(&self, hold: Arc<Hold>) -> DbPool {
        match self {
            DbPool::Sqlite(pool) => DbPool::Sqlite(pool.held_to(hold)),
            DbPool::Postgres(pool) => DbPool::Postgres(pool.held_to(hold)),
        }
    }

    /// What its statements are held to, if anything.
    fn hold(&self) -> Option<&Hold> {
        dispatch!(self, pool => pool.hold())
    }

    /// Runs a script of statements (`;`-separated) in one transaction: all or nothing (not
    /// held: `Db::execute_script` checks the script as a whole).
    pub async fn execute_script(&self, sql: &str) -> anyhow::Result<()> {
        dispatch!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::raw_sql(AssertSqlSafe(sql.to_string())).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Closes the pool's connections, waiting for those in use.
    pub async fn close(&self) {
        dispatch!(self, pool => pool.close().await)
    }
}

/// Starts a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`): a deferred transaction that upgrades later fails with "database is locked"
/// instead of waiting for the busy timeout.
pub(crate) trait BeginWrite {
    type Database: sqlx::Database;

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, Self::Database>, sqlx::Error>> + Send;
}

impl BeginWrite for SqlitePool {
    type Database = sqlx::Sqlite;

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error>> + Send
    {
        self.begin_with("BEGIN IMMEDIATE")
    }
}

impl BeginWrite for PgPool {
    type Database = sqlx::Postgres;

    fn begin_write(
        &self,
    ) -> impl Future<Output = Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error>> + Send
    {
        self.begin()
    }
}

/// The error without secrets (connection errors may quote the URL); still fatal when no
/// retry can fix it.
fn redacted(err: sqlx::Error) -> anyhow::Error {
    let permanent =
        crate::fatal::is_permanent(&err) || matches!(err, sqlx::Error::Configuration(_));
    let text = anyhow::anyhow!(crate::message::error_text(&anyhow::Error::new(err)));
    if permanent {
        crate::fatal::Fatal::wrap(text)
    } else {
        text
    }
}

/// What a failed connection means, in words that say what to do.
fn why_not_connected(err: &sqlx::Error, url: &str) -> String {
    let place = PgConnectOptions::from_str(url)
        .map(|o| format!("{}:{}", o.get_host(), o.get_port()))
        .unwrap_or_else(|_| "the server".into());
    match err {
        sqlx::Error::Configuration(_) => "the URL is not valid; in a password, write / as %2F, \
             @ as %40, : as %3A, ? as %3F and # as %23"
            .into(),
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused at {place}: is the server running and listening there?")
        }
        sqlx::Error::PoolTimedOut => format!(
            "no answer from {place} within {}: check the host, the port and any firewall",
            crate::date::format_duration(CONNECT_TIMEOUT)
        ),
        sqlx::Error::Database(_) => "the server refused".into(),
        sqlx::Error::Protocol(why) => why.clone(),
        _ => "check that the server runs and the URL is right".into(),
    }
}

/// `warehouse.db` -> `warehouse.test.db`.
fn test_file(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.test.{}", ext.to_string_lossy()),
        None => format!("{stem}.test"),
    };
    path.with_file_name(name)
}

async fn connect_sqlite(
    url: &str,
    target: &Target,
    max_connections: u32,
) -> Result<SqlitePool, sqlx::Error> {
    let mut options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        .log_slow_statements(SLOW_STATEMENT_LOG, SLOW_STATEMENT);
    if let Some(path) = sqlite_path(url) {
        let path = match target {
            Target::Production => path,
            Target::Test { .. } => test_file(&path),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
        }
        options = options.filename(path);
    }
    SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(CONNECT_TIMEOUT)
        .connect_with(options)
        .await
}

async fn connect_postgres(
    url: &str,
    target: &Target,
    max_connections: u32,
) -> Result<PgPool, sqlx::Error> {
    // "relation already exists, skipping" and the like are not worth a log line.
    let options = PgConnectOptions::from_str(url)?
        .options([("client_min_messages", "warning")])
        .log_slow_statements(SLOW_STATEMENT_LOG, SLOW_STATEMENT);
    // One plain connection first: its error is the real one (a pool would retry a refused
    // connection until its timeout and then only say that it timed out).
    let mut first = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    // A pool that may open more connections than the role or database allows waits for one
    // it can never get: it opens no more than are left.
    let left = connections_left(&mut first).await?;
    let mut pool = PgPoolOptions::new()
        .max_connections(left.map_or(max_connections, |left| max_connections.min(left)))
        .acquire_timeout(CONNECT_TIMEOUT);
    if let Target::Test { schema } = target {
        let quoted = quote_ident(schema);
        let create = format!("CREATE SCHEMA IF NOT EXISTS {quoted}");
        sqlx::query(AssertSqlSafe(create))
            .execute(&mut first)
            .await?;
        // Only the test schema: an unqualified write can never reach a production table.
        let set = Arc::new(format!("SET search_path TO {quoted}"));
        pool = pool.after_connect(move |conn, _| {
            let set = Arc::clone(&set);
            Box::pin(async move {
                sqlx::query(AssertSqlSafe(set.as_str().to_string()))
                    .execute(conn)
                    .await?;
                Ok(())
            })
        });
    }
    sqlx::Connection::close(first).await?;
    Ok(pool.connect_lazy_with(options))
}

/// How many more connections the role and the database allow, besides `conn` and every
/// other session open now (`None`: no limit); an error when there are none.
async fn connections_left(conn: &mut PgConnection) -> Result<Option<u32>, sqlx::Error> {
    let (left, role, role_limit, database, database_limit): (Option<i64>, String, i32, String, i32) =
        sqlx::query_as(
            "SELECT least( \
               CASE WHEN r.rolconnlimit >= 0 AND NOT r.rolsuper THEN r.rolconnlimit - (SELECT count(*) \
                 FROM pg_stat_activity a WHERE a.usename = current_user) END, \
               CASE WHEN d.datconnlimit >= 0 AND NOT r.rolsuper THEN d.datconnlimit - (SELECT count(*) \
                 FROM pg_stat_activity a WHERE a.datname = current_database()) END), \
             current_user::text, r.rolconnlimit, current_database()::text, d.datconnlimit \
             FROM pg_roles r, pg_database d \
             WHERE r.rolname = current_user AND d.datname = current_database()",
        )
        .fetch_one(&mut *conn)
        .await?;
    // This connection closes before the pool opens its own: it counts as one left.
    match left.map(|left| left + 1) {
        None => Ok(None),
        Some(left) if left >= 1 => Ok(Some(left as u32)),
        Some(_) => Err(sqlx::Error::Protocol(format!(
            "every connection the server allows is in use (role {role}: at most {role_limit}, \
             database {database}: at most {database_limit}, -1 meaning no limit); close some, or \
             raise the limit (ALTER ROLE .. CONNECTION LIMIT ..)"
        ))),
    }
}

/// A PostgreSQL or SQLite string literal: `it's` -> `'it''s'`.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Quotes a PostgreSQL or SQLite identifier: `a"b` -> `"a""b"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The named databases of a run, connected on first use.
#[derive(Debug)]
pub(crate) struct Databases {
    config: Config,
    target: Target,
    /// Connections each pool may open (see [`pool_size`]).
    max_connections: u32,
    pools: HashMap<String, OnceCell<DbPool>>,
    /// In test mode, production pools for reading sources (`Databases::source`).
    sources: HashMap<String, OnceCell<DbPool>>,
    /// What each name points at, for completion markers (`Config::identities`).
    identities: HashMap<String, String>,
}

/// How many connections a run's pool of one database may open when `attempts` attempts may run
/// at once: one each, so that none waits for another's connection (a wait longer than the
/// connect timeout fails the attempt), at least 8 and at most 64. PostgreSQL pools open no
/// more than the role and database allow besides.
pub(crate) fn pool_size(attempts: usize) -> u32 {
    u32::try_from(attempts.clamp(8, 64)).unwrap_or(64)
}

impl Databases {
    pub fn new(config: Config, target: Target, max_connections: u32) -> Self {
        let cells = || {
            config
                .databases
                .keys()
                .map(|name| (name.clone(), OnceCell::new()))
                .collect()
        };
        let (pools, sources) = (cells(), cells());
        Databases {
            identities: config.identities(),
            config,
            target,
            max_connections,
            pools,
            sources,
        }
    }

    /// What the database of that name is (see `Config::identity`); empty when unknown.
    /// The configuration the databases come from.
    #[cfg(feature = "events")]
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn identity(&self, name: &str) -> &str {
        self.identities.get(name).map_or("", String::as_str)
    }

    /// Whether `pipeline.toml` (or the environment) names a database `name`.
    pub fn is_configured(&self, name: &str) -> bool {
        self.pools.contains_key(name)
    }

    /// The pool of a configured database, connecting on first use. In test mode its writes
    /// go to the test schema or file.
    pub async fn get(&self, name: &str) -> anyhow::Result<Db> {
        self.connect(name, &self.pools, self.target.clone()).await
    }

    /// A database to read from as it is in production, even in test mode: the source of a
    /// load. (Test mode redirects writes, never what is read from a replica.)
    pub async fn source(&self, name: &str) -> anyhow::Result<Db> {
        self.connect(name, &self.sources, Target::Production).await
    }

    async fn connect(
        &self,
        name: &str,
        cells: &HashMap<String, OnceCell<DbPool>>,
        target: Target,
    ) -> anyhow::Result<Db> {
        let setting = self.config.database(name)?;
        let cell = cells
            .get(name)
            .context("database list changed while running")?;
        let pool = cell
            .get_or_try_init(|| DbPool::connect(setting, &target, self.max_connections))
            .await
            .with_context(|| format!("database `{name}`"))?
            .clone();
        Ok(Db {
            name: name.to_string(),
            own: pool.clone(),
            pool,
            target,
        })
    }

    /// Closes every pool opened.
    pub async fn close(&self) {
        for cell in self.pools.values().chain(self.sources.values()) {
            if let Some(pool) = cell.get() {
                pool.close().await;
            }
        }
    }
}

/// A named database as a task sees it.
#[derive(Clone, Debug)]
pub struct Db {
    name: String,
    /// The task's: in test mode, held to the tables it declared.
    pool: DbPool,
    /// The library's own (scripts checked as a whole, loads' staging tables): never held.
    own: DbPool,
    target: Target,
}

impl Db {
    /// The database's name in the configuration (`warehouse`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its connection pool, for queries of the task's own (`sqlx`). In test mode, what runs on
    /// it, in a transaction begun on it or on a connection taken from it is held to the task's
    /// declared tables, as scripts and checks are (see [`CheckedPool`]).
    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    /// The pool for the library's own statements on the task's behalf, never held: a loader's
    /// staging tables, a script or check already checked as a whole.
    pub(crate) fn own_pool(&self) -> &DbPool {
        &self.own
    }

    /// The file of a SQLite database (the test file in test mode).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        match &self.pool {
            DbPool::Sqlite(pool) => {
                let path = pool.connect_options().get_filename().to_path_buf();
                (!path.as_os_str().is_empty() && path != Path::new(":memory:")).then_some(path)
            }
            DbPool::Postgres(_) => None,
        }
    }

    /// Whether writes go to the test schema or file.
    pub fn is_test(&self) -> bool {
        matches!(self.target, Target::Test { .. })
    }

    /// The same database in test mode, its statements held to the tables `declared` and, on
    /// PostgreSQL, to the test schema.
    pub(crate) fn held_to(mut self, declared: Arc<Declared>) -> Db {
        let test_schema = match (&self.target, &self.own) {
            (Target::Test { schema }, DbPool::Postgres(_)) => Some(schema.clone()),
            _ => None,
        };
        if test_schema.is_none() && !declared.holds_tables() {
            // Nothing to hold it to: its statements are not parsed for nothing.
            return self;
        }
        self.pool = self.own.held_to(Arc::new(Hold {
            database: self.name.clone(),
            backend: self.own.backend(),
            test_schema,
            declared,
        }));
        self
    }

    /// In test mode, refuses `sql` if it touches a table its task did not declare (see
    /// `access`); always fine otherwise. Fatal: no retry declares the table.
    pub(crate) fn check_access(&self, sql: &str) -> anyhow::Result<()> {
        match self.pool.hold() {
            Some(hold) => hold.check(sql).map_err(crate::fatal::Fatal::wrap),
            None => Ok(()),
        }
    }

    /// In test mode, refuses a loader's writes into `tables` that its task did not declare.
    pub(crate) fn check_load(&self, tables: &[&str]) -> anyhow::Result<()> {
        match self.pool.hold() {
            Some(hold) => hold
                .declared
                .check_load(&self.name, tables)
                .map_err(crate::fatal::Fatal::wrap),
            None => Ok(()),
        }
    }

    /// Whether table `name` exists (in test mode, in the test schema or file): for a task
    /// that reads the table of an optional dependency (`after`), which may never have run.
    pub async fn has_table(&self, name: &str) -> anyhow::Result<bool> {
        Ok(!self.columns_of(name).await?.is_empty())
    }

    /// The columns of table (or view) `table`, none when there is no such table; as the search
    /// path finds it, so the test schema's in test mode.
    pub(crate) async fn columns_of(&self, table: &str) -> anyhow::Result<Vec<String>> {
        match &self.own {
            DbPool::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) \
                     AND attnum > 0 AND NOT attisdropped",
                )
                .bind(quote_ident(table))
                .fetch_all(pool)
                .await
            }
            DbPool::Sqlite(pool) => {
                sqlx::query_scalar("SELECT name FROM pragma_table_info($1)")
                    .bind(table)
                    .fetch_all(pool)
                    .await
            }
        }
        .with_context(|| {
            format!(
                "cannot read the columns of {table} in database `{}`",
                self.name
            )
        })
    }

    /// Runs a script of statements in one transaction: all or nothing.
    pub async fn execute_script(&self, sql: &str) -> anyhow::Result<()> {
        self.check_access(sql)?;
        self.own.execute_script(sql).await.map_err(|err| {
            // sqlx says only that the server answered unexpectedly; what the script asked for
            // is what the reader needs. Nothing after the `COPY` ran: the script stops there
            // (and its transaction is rolled back), test mode or not.
            let copy = format!("{err:#}").contains("CopyInResponse");
            let why = if copy {
                ": `COPY .. FROM STDIN` waits for rows that a script cannot send; send them with \
                 sqlx's `copy_in_raw` on `Db::pool()`, or load the table with a loader"
            } else {
                ""
            };
            err.context(format!("script on database `{}` failed{why}", self.name))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_mode_files_sit_beside_production_files() {
        assert_eq!(
            test_file(Path::new(".pipeline/warehouse.db")),
            Path::new(".pipeline/warehouse.test.db")
        );
        assert_eq!(test_file(Path::new("/data/wh")), Path::new("/data/wh.test"));
        assert_eq!(
            sqlite_path("sqlite://.pipeline/a.db?mode=rwc"),
            Some(PathBuf::from(".pipeline/a.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("orders"), "\"orders\"");
        assert_eq!(
            quote_ident("a\"; DROP TABLE x; --"),
            "\"a\"\"; DROP TABLE x; --\""
        );
    }
}
