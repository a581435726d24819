//! A pipeline whose tasks declare their tables, for test mode to hold them to: `load_orders`
//! writes `orders`, `make_report` reads it and writes `report`, in a script and in queries of
//! its own through the pool. With `sneak-read` in the working directory, the report's script
//! also reads a table it does not declare; with `sneak-write`, it also writes one; with
//! `sneak-pool-read`, a query on the pool reads one (and the task ignores the error); with
//! `sneak-tx-write`, a statement in a transaction begun on the pool writes one.

use pipeline_core::db::DbPool;
use pipeline_core::prelude::*;
use pipeline_core::sqlx;

tables! {
    pub warehouse { orders, report }
}

#[task(writes = [warehouse::orders])]
async fn load_orders(ctx: &Ctx) -> Result<()> {
    ctx.warehouse()
        .await?
        .execute_script(
            "DROP TABLE IF EXISTS orders;
             CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL NOT NULL);
             INSERT INTO orders VALUES (1, 9.5), (2, 12.0);",
        )
        .await
}

// Retries that a refusal must not use: no retry declares a table.
#[task(
    requires = [LoadOrders],
    retries = 2,
    reads = [warehouse::orders],
    writes = [warehouse::report]
)]
async fn make_report(ctx: &Ctx) -> Result<()> {
    let mut script = String::from(
        "DROP TABLE IF EXISTS report;
         CREATE TABLE report AS SELECT count(*) AS orders, sum(amount) AS revenue FROM orders;",
    );
    if std::path::Path::new("sneak-read").exists() {
        script.push_str("INSERT INTO report SELECT count(*), 0 FROM refunds;");
    }
    if std::path::Path::new("sneak-write").exists() {
        script.push_str("CREATE TABLE scratch (x INTEGER);");
    }
    let warehouse = ctx.warehouse().await?;
    warehouse.execute_script(&script).await?;

    let DbPool::Sqlite(pool) = warehouse.pool() else {
        bail!("this pipeline's warehouse is the default SQLite file");
    };
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await?;
    if std::path::Path::new("sneak-pool-read").exists() {
        // Swallowed: test mode fails the task all the same.
        let _ = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM refunds")
            .fetch_one(pool)
            .await;
    }
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE report SET orders = ?")
        .bind(orders)
        .execute(&mut *tx)
        .await?;
    if std::path::Path::new("sneak-tx-write").exists() {
        sqlx::query("CREATE TABLE scratch_tx (x INTEGER)")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pipeline_core::main!("lineage");
