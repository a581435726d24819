//! Models and reports built in the warehouse. Each is rebuilt in one transaction: readers see
//! the previous version until the new one is complete.

use pipeline_core::prelude::*;

use crate::currency::LoadCurrency;
use crate::replica::Load;
use crate::tables::warehouse;

/// Delivered orders joined with users and restaurants, amounts converted to EUR.
#[task(
    requires = [Load],
    after = [LoadCurrency],
    timeout = "30m",
    reads = [warehouse::orders, warehouse::users, warehouse::restaurants, warehouse::currency_rates],
    writes = [warehouse::order_model]
)]
pub async fn make_order_model(ctx: &Ctx) -> Result<()> {
    let warehouse = ctx.warehouse().await?;
    // The rates' load is optional (`after`): on a first night where it failed, its table is
    // not there yet, and amounts convert at 1.
    let (rate, rates) = if warehouse.has_table("currency_rates").await? {
        let date = ctx.date().to_string();
        (
            "COALESCE(c.eur_rate, 1.0)",
            format!("LEFT JOIN currency_rates c ON c.currency = o.currency AND c.date = '{date}'"),
        )
    } else {
        ("1.0", String::new())
    };
    let script = format!(
        "DROP TABLE IF EXISTS order_model;
         CREATE TABLE order_model AS
         SELECT o.id, o.created_at, u.city AS user_city, r.name AS restaurant, r.city AS restaurant_city,
                o.amount, o.currency, round(CAST(o.amount * {rate} AS NUMERIC), 2) AS amount_eur
         FROM orders o
         JOIN users u ON u.id = o.user_id
         JOIN restaurants r ON r.id = o.restaurant_id
         {rates}
         WHERE o.status = 'delivered';"
    );
    warehouse.execute_script(&script).await
}

/// Order ids must be unique after the loads; nothing is modelled from duplicated orders.
#[check(on = Load, severity = "error", blocking, reads = [warehouse::orders])]
pub async fn orders_have_unique_ids(ctx: &Ctx) -> Result<Check> {
    ctx.warehouse().await?.unique_key("orders", &["id"]).await
}

/// The report has rows: an empty report is wrong even if every task succeeded.
#[check(on = MakeManagementReport, reads = [warehouse::management_report])]
pub async fn report_is_not_empty(ctx: &Ctx) -> Result<Check> {
    ctx.warehouse()
        .await?
        .row_count_at_least("management_report", 1)
        .await
}

/// The management report: revenue in EUR per city and day.
#[task(
    requires = [MakeOrderModel],
    reads = [warehouse::order_model],
    writes = [warehouse::management_report]
)]
pub async fn make_management_report(ctx: &Ctx) -> Result<()> {
    ctx.warehouse()
        .await?
        .execute_script(
            "DROP TABLE IF EXISTS management_report;
             CREATE TABLE management_report AS
             SELECT restaurant_city AS city, substr(CAST(created_at AS TEXT), 1, 10) AS day,
                    count(*) AS orders, round(sum(amount_eur), 2) AS revenue_eur
             FROM order_model GROUP BY 1, 2 ORDER BY 1, 2;",
        )
        .await
}

/// Orders per restaurant city in the partition, for the operations dashboard: the hour that
/// just ended when the hourly schedule runs it, the whole day in a nightly run. Each run
/// replaces its partition's rows, in one transaction.
#[task(
    requires = [Load],
    reads = [warehouse::orders, warehouse::restaurants],
    writes = [warehouse::orders_by_city]
)]
pub async fn count_orders_by_city(ctx: &Ctx) -> Result<()> {
    let partition = ctx.partition();
    // The keys and bounds are digits and dashes that `Partition` writes: nothing to quote.
    let (key, start, end) = (partition.to_string(), partition.start(), partition.end());
    let script = format!(
        "CREATE TABLE IF NOT EXISTS orders_by_city (period TEXT NOT NULL, city TEXT NOT NULL, \
             orders BIGINT NOT NULL, PRIMARY KEY (period, city));
         DELETE FROM orders_by_city WHERE period = '{key}';
         INSERT INTO orders_by_city (period, city, orders)
         SELECT '{key}', r.city, count(*)
         FROM orders o JOIN restaurants r ON r.id = o.restaurant_id
         WHERE CAST(o.created_at AS TEXT) >= '{start}' AND CAST(o.created_at AS TEXT) < '{end}'
         GROUP BY r.city;"
    );
    ctx.warehouse().await?.execute_script(&script).await
}
