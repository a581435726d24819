//! Loads from the production read replica.

use pipeline_core::DbPool;
use pipeline_core::db::quote_ident;
use pipeline_core::prelude::*;
use pipeline_core::sqlx::{self, AssertSqlSafe};

use crate::demo;

/// The tables copied from the read replica, one task each: `load[users]`, ...
pub const REPLICA_TABLES: &[&str] = &["users", "restaurants", "orders"];

/// Copies one table from the read replica into the warehouse, replacing it atomically.
#[task(for_each = REPLICA_TABLES, retries = 3, retry_delay = "30s", timeout = "15m")]
pub async fn load(ctx: &Ctx, table: &str) -> Result<()> {
    ensure!(
        !ctx.has_db("replica"),
        "the example copies from its demo replica only; unset PIPELINE_DB_REPLICA_URL"
    );
    demo::ensure_replica().await?;
    let warehouse = ctx.warehouse().await?;
    let DbPool::Sqlite(pool) = warehouse.pool() else {
        bail!("the example's loads write to a SQLite warehouse; unset PIPELINE_DB_WAREHOUSE_URL");
    };
    let source = demo::path().to_string_lossy().replace('\'', "''");
    let table = quote_ident(table);
    // ATTACH cannot run inside a transaction: attach on one connection, then copy and swap in
    // one transaction so that readers see the old table or the new one, never a partial one.
    let mut conn = pool.acquire().await?;
    sqlx::query(AssertSqlSafe(format!(
        "ATTACH DATABASE '{source}' AS replica"
    )))
    .execute(&mut *conn)
    .await?;
    let copy = async {
        let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS main.{table}; CREATE TABLE main.{table} AS SELECT * FROM replica.{table};"
        )))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
    .await;
    sqlx::query("DETACH DATABASE replica")
        .execute(&mut *conn)
        .await?;
    copy.with_context(|| format!("cannot copy {table} from the replica"))?;
    Ok(())
}
