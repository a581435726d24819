//! Test mode holds a task's own sqlx queries (`Db::pool()`) to its declared tables on
//! PostgreSQL, where a schema-qualified name reaches past the test schema's `search_path`:
//! a refused statement must never reach the server. (SQLite and the scripts are covered
//! end to end by `daily_e2e`.)

use pipeline_core::TaskSpec;
use pipeline_core::db::DbPool;
use pipeline_core::sqlx;
use pipeline_core::testing::TaskStatus;
use pipeline_tests::{PgDatabase, Sandbox, psql};

#[tokio::test]
async fn postgres_queries_on_the_pool_are_held_to_the_declared_tables() {
    let sandbox = Sandbox::new("access_pg");
    let database = PgDatabase::create();
    psql(
        &database.url,
        "CREATE TABLE public.refunds (id BIGINT); INSERT INTO public.refunds VALUES (1)",
    );
    let config = sandbox.config(&[("warehouse", &database.url)]);
    let spec = TaskSpec::new("report", |ctx| {
        Box::pin(async move {
            let db = ctx.warehouse().await?;
            let DbPool::Postgres(pool) = db.pool() else {
                anyhow::bail!("the warehouse of this test is PostgreSQL");
            };
            // Declared: on the pool, with a parameter, and in a transaction.
            sqlx::query("CREATE TABLE orders (id BIGINT)")
                .execute(pool)
                .await?;
            sqlx::query("INSERT INTO orders VALUES ($1)")
                .bind(7_i64)
                .execute(pool)
                .await?;
            let mut tx = pool.begin().await?;
            sqlx::query("CREATE TABLE report AS SELECT count(*) AS n FROM orders")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            // Not declared, and past the test schema: refused before it is sent. The task
            // ignores the error; the attempt fails all the same, and is not retried.
            let refused = sqlx::query("DELETE FROM public.refunds")
                .execute(pool)
                .await;
            anyhow::ensure!(refused.is_err(), "the undeclared delete was let through");
            Ok(())
        })
    })
    .writes(["warehouse.orders", "warehouse.report"])
    .policy(pipeline_core::Policy {
        retries: 2,
        ..Default::default()
    });

    let report = pipeline_tests::run_task(&config, spec, true).await;

    assert_eq!(
        (report.status, report.attempts),
        (TaskStatus::Failed, 1),
        "{:?}",
        report.error
    );
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("task `report` writes `warehouse.refunds`, which it does not declare"),
        "{error}"
    );
    assert!(error.contains("DELETE FROM public.refunds"), "{error}");
    assert_eq!(
        psql(&database.url, "SELECT count(*) FROM public.refunds"),
        "1"
    );
    // The declared statements ran, in the test schema only.
    assert_eq!(
        psql(&database.url, "SELECT n FROM pipeline_test.report"),
        "1"
    );
    assert_eq!(
        psql(&database.url, "SELECT to_regclass('public.report') IS NULL"),
        "t"
    );
}
