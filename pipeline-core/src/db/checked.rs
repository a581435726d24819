//! The pools behind [`DbPool`](super::DbPool): sqlx's own, which they deref to, holding in
//! test mode the statements a task sends to the tables it declared and, on PostgreSQL, to the
//! test schema (see `access`). A query run on the pool (`sqlx::query(..).fetch_all(pool)`) or
//! in a transaction begun on it (`pool.begin()`, then `&mut *tx`) is parsed before it reaches
//! the database, and one that touches an undeclared table, or writes past the test schema,
//! never runs: it fails with the task, the table and the statement, and the runner fails the
//! attempt for good even if the task's code ignores that error. Outside test mode, and for
//! the library's own statements, they only pass through.
//!
//! A connection taken with `pool.acquire()` is held too (`&mut *conn`). What goes around them
//! is not seen: code handed sqlx's connection out of a checked one (`fn f(conn: &mut
//! PgConnection)` called with `&mut tx`), a transaction begun on an acquired connection, and
//! what only sqlx's connection has (`COPY`).

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt as _, StreamExt as _};
use sqlx::database::Database;
use sqlx::error::BoxDynError;
use sqlx::{Either, Execute, Executor, SqlStr};

use crate::access::Declared;

/// What a pool's statements are held to in test mode: one task's declared tables, in the
/// database of that name, and its test schema.
#[derive(Debug)]
pub(crate) struct Hold {
    pub database: String,
    pub backend: &'static str,
    /// The PostgreSQL schema that takes test-mode writes: no write may name another.
    pub test_schema: Option<String>,
    pub declared: Arc<Declared>,
}

impl Hold {
    /// Refuses `sql` if it touches a table the task did not declare, or writes past the test
    /// schema (recorded for the runner).
    pub fn check(&self, sql: &str) -> anyhow::Result<()> {
        self.declared.check(
            &self.database,
            self.backend,
            self.test_schema.as_deref(),
            sql,
        )
    }
}

/// A database's connection pool: sqlx's [`Pool`](sqlx::Pool), which it derefs to, with the
/// statements run on it held to the task's declared tables in test mode. Run queries on it as
/// on sqlx's pool: `sqlx::query("..").fetch_all(pool)`, `pool.begin()`.
pub struct CheckedPool<DB: Database> {
    pool: sqlx::Pool<DB>,
    hold: Option<Arc<Hold>>,
}

impl<DB: Database> CheckedPool<DB> {
    /// A pool whose statements pass through unchecked.
    pub(crate) fn new(pool: sqlx::Pool<DB>) -> Self {
        CheckedPool { pool, hold: None }
    }

    /// The same pool, its statements held as `hold` says.
    pub(crate) fn held_to(&self, hold: Arc<Hold>) -> Self {
        CheckedPool {
            pool: self.pool.clone(),
            hold: Some(hold),
        }
    }

    /// What its statements are held to, if anything.
    pub(crate) fn hold(&self) -> Option<&Hold> {
        self.hold.as_deref()
    }

    /// Starts a transaction whose statements are held as the pool's are: run them on
    /// `&mut *tx`, then `tx.commit()`. Dropped without a commit, it rolls back.
    pub async fn begin(&self) -> Result<CheckedTransaction<DB>, sqlx::Error> {
        let tx = self.pool.begin().await?;
        Ok(CheckedTransaction {
            conn: self.checked(tx),
        })
    }

    /// Takes a connection out of the pool, its statements held as the pool's are: run them on
    /// `&mut *conn`. Dropped, it goes back to the pool.
    pub async fn acquire(&self) -> Result<CheckedPoolConnection<DB>, sqlx::Error> {
        let conn = self.pool.acquire().await?;
        Ok(CheckedPoolConnection {
            conn: self.checked(conn),
        })
    }

    fn checked<C>(&self, conn: C) -> CheckedConnection<DB, C> {
        CheckedConnection {
            conn,
            hold: self.hold.clone(),
            database: PhantomData,
        }
    }
}

impl<DB: Database> Clone for CheckedPool<DB> {
    fn clone(&self) -> Self {
        CheckedPool {
            pool: self.pool.clone(),
            hold: self.hold.clone(),
        }
    }
}

impl<DB: Database> Deref for CheckedPool<DB> {
    type Target = sqlx::Pool<DB>;

    fn deref(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }
}

impl<DB: Database> fmt::Debug for CheckedPool<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedPool")
            .field("pool", &self.pool)
            .field("held", &self.hold.is_some())
            .finish()
    }
}

/// A transaction begun on a [`CheckedPool`]: its statements (`&mut *tx`) are held as the
/// pool's are.
pub struct CheckedTransaction<DB: Database> {
    conn: CheckedConnection<DB, sqlx::Transaction<'static, DB>>,
}

impl<DB: Database> CheckedTransaction<DB> {
    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.conn.conn.commit().await
    }

    /// Rolls the transaction back (as dropping it does, but waiting for it).
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.conn.conn.rollback().await
    }
}

/// A connection taken out of a [`CheckedPool`]: its statements (`&mut *conn`) are held as the
/// pool's are.
pub struct CheckedPoolConnection<DB: Database> {
    conn: CheckedConnection<DB, sqlx::pool::PoolConnection<DB>>,
}

/// Both reach their [`CheckedConnection`] as sqlx's reach theirs: `&mut *tx`, `&mut *conn`.
macro_rules! to_checked_connection {
    ($outer:ident, $inner:ty) => {
        impl<DB: Database> Deref for $outer<DB> {
            type Target = CheckedConnection<DB, $inner>;

            fn deref(&self) -> &Self::Target {
                &self.conn
            }
        }

        impl<DB: Database> DerefMut for $outer<DB> {
            fn deref_mut(&mut self) -> &mut Self::Target {
                &mut self.conn
            }
        }

        impl<DB: Database> fmt::Debug for $outer<DB> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.conn.fmt(f)
            }
        }
    };
}

to_checked_connection!(CheckedTransaction, sqlx::Transaction<'static, DB>);
to_checked_connection!(CheckedPoolConnection, sqlx::pool::PoolConnection<DB>);

/// The connection of a [`CheckedTransaction`] or a [`CheckedPoolConnection`] (`C`, sqlx's,
/// which derefs to the database's connection), which `&mut *tx` and `&mut *conn` reach: what
/// their queries run on.
pub struct CheckedConnection<DB: Database, C> {
    conn: C,
    hold: Option<Arc<Hold>>,
    database: PhantomData<DB>,
}

/// sqlx's connection, for code that takes one (`fn f(conn: &mut PgConnection)` called with
/// `&mut tx`) and for what only it has (`COPY`): what runs through it is not held.
impl<DB: Database, C: Deref<Target = DB::Connection>> Deref for CheckedConnection<DB, C> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: Database, C: DerefMut<Target = DB::Connection>> DerefMut for CheckedConnection<DB, C> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: Database, C> fmt::Debug for CheckedConnection<DB, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedConnection")
            .field("held", &self.hold.is_some())
            .finish_non_exhaustive()
    }
}

/// A query taken apart to read its SQL, and put back together to run: sqlx hands the SQL out
/// only by consuming the query.
struct Rebuilt<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<DB: Database> Rebuilt<DB> {
    /// `query`, if `hold` lets it through.
    fn checked<'q>(hold: &Hold, mut query: impl Execute<'q, DB>) -> Result<Self, sqlx::Error> {
        let statement = query.statement().cloned();
        let persistent = query.persistent();
        let arguments = query.take_arguments();
        let sql = query.sql();
        hold.check(sql.as_str())
            .map_err(|refused| sqlx::Error::InvalidArgument(refused.to_string()))?;
        Ok(Rebuilt {
            sql,
            statement,
            arguments: Some(arguments),
            persistent,
        })
    }
}

impl<DB: Database> Execute<'_, DB> for Rebuilt<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// Sends each query to `$inner` (an executor), through `Rebuilt::checked` when `$hold` holds
/// it: the four methods sqlx's `Executor` requires, the rest being defined by them.
macro_rules! held_executor {
    ($lt:lifetime, $self:ident => $hold:expr, $inner:expr) => {
        fn fetch_many<'e, 'q: 'e, E>(
            $self,
            query: E,
        ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
        where
            $lt: 'e,
            E: 'q + Execute<'q, DB>,
        {
            let Some(hold) = $hold else {
                return $inner.fetch_many(query);
            };
            match Rebuilt::checked(hold, query) {
                Ok(query) => $inner.fetch_many(query),
                Err(refused) => futures_util::stream::once(async { Err(refused) }).boxed(),
            }
        }

        fn fetch_optional<'e, 'q: 'e, E>(
            $self,
            query: E,
        ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
        where
            $lt: 'e,
            E: 'q + Execute<'q, DB>,
        {
            let Some(hold) = $hold else {
                return $inner.fetch_optional(query);
            };
            match Rebuilt::checked(hold, query) {
                Ok(query) => $inner.fetch_optional(query),
                Err(refused) => async { Err(refused) }.boxed(),
            }
        }

        /// Preparing runs nothing: it is checked when it runs.
        fn prepare_with<'e>(
            $self,
            sql: SqlStr,
            parameters: &'e [DB::TypeInfo],
        ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
        where
            $lt: 'e,
        {
            $inner.prepare_with(sql, parameters)
        }
    };
}

impl<'p, DB: Database> Executor<'p> for &'_ CheckedPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    held_executor!('p, self => self.hold.as_deref(), &self.pool);
}

impl<'c, DB: Database, C> Executor<'c> for &'c mut CheckedConnection<DB, C>
where
    C: DerefMut<Target = DB::Connection> + Send,
    for<'a> &'a mut DB::Connection: Executor<'a, Database = DB>,
{
    type Database = DB;

    held_executor!('c, self => self.hold.as_deref(), &mut *self.conn);
}
