//! A pipeline whose tasks declare their tables, for test mode to hold them to: `load_orders`
//! writes `orders`, `make_report` reads it and writes `report`. With `sneak-read` in the working
//! directory, the report's SQL also reads a table it does not declare; with `sneak-write`, it
//! also writes one.

use pipeline_core::prelude::*;

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

#[task(requires = [LoadOrders], reads = [warehouse::orders], writes = [warehouse::report])]
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
    ctx.warehouse().await?.execute_script(&script).await
}

pipeline_core::main!("lineage");
