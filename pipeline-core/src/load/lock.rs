//! One load of a table at a time, across runs, processes and hosts: a PostgreSQL
//! session-level advisory lock on the table's schema-qualified name. Two loads of one table at
//! once would otherwise both append the same rows, or drop each other's staging table.

use anyhow::Context as _;
use sqlx::PgConnection;
use sqlx::postgres::PgPool;

/// A connection of its own that holds the load lock of one table. It never goes back to the
/// pool, so the lock ends with it however the load ends: released, dropped, or the process
/// killed (the server ends the session when the socket closes).
pub(crate) struct TableLock {
    conn: PgConnection,
    /// The schema the table is in (the connection's current one).
    pub schema: String,
}

impl TableLock {
    /// Takes the lock of `table` in the pool's current schema, waiting for another load of it
    /// to finish first.
    pub(crate) async fn acquire(target: &PgPool, table: &str) -> anyhow::Result<TableLock> {
        let mut conn = target
            .acquire()
            .await
            .context("cannot connect to the warehouse")?
            .detach();
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&mut conn)
            .await?;
        let key = format!("pipeline load {schema}.{table}");
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1)::bigint)")
            .bind(&key)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            tracing::info!("waiting for another load of `{table}` to finish");
            sqlx::query("SELECT pg_advisory_lock(hashtext($1)::bigint)")
                .bind(&key)
                .execute(&mut conn)
                .await?;
        }
        Ok(TableLock { conn, schema })
    }

    /// The locked connection, for work that belongs with the lock.
    pub(crate) fn conn(&mut self) -> &mut PgConnection {
        &mut self.conn
    }

    /// Ends the lock with its session.
    pub(crate) async fn release(self) {
        let _ = sqlx::Connection::close(self.conn).await;
    }
}
