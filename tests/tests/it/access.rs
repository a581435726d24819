//! Test mode on PostgreSQL, where a schema-qualified name reaches past the test schema's
//! `search_path`: a task's own sqlx queries (`Db::pool()`, its transactions and connections)
//! are held to its declared tables, every task's writes to the test schema, and a refused
//! statement never reaches the server.
//! (SQLite and the declared tables of scripts are covered end to end by `daily_e2e`.)

use pipeline_core::TaskSpec;
use pipeline_core::db::DbPool;
use pipeline_core::sqlx;
use pipeline_core::testing::TaskStatus;
use pipeline_tests::{PgDatabase, Sandbox, psql};

async fn count_reports(conn: &mut sqlx::PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM report")
        .fetch_one(conn)
        .await
}

async fn count_orders(pool: &sqlx::PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(pool)
        .await
}

#[tokio::test]
async fn postgres_queries_on_the_pool_are_held_to_the_declared_tables() {
    let sandbox = Sandbox::new("access_pg");
    let database = PgDatabase::create();
    psql(
        &database.url,
        "CREATE SCHEMA pipeline_test; CREATE TABLE pipeline_test.refunds (id BIGINT); \
         INSERT INTO pipeline_test.refunds VALUES (1)",
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
            // Code written for sqlx's connection takes the transaction's as it is.
            anyhow::ensure!(count_reports(&mut tx).await? == 1, "one report row");
            tx.commit().await?;
            // Code written for sqlx's pool takes it as it is.
            anyhow::ensure!(count_orders(pool).await? == 1, "one order");
            // A connection taken out of the pool is held as the pool is.
            let mut conn = pool.acquire().await?;
            sqlx::query("SELECT id FROM orders")
                .execute(&mut *conn)
                .await?;
            // Not declared: refused before it is sent. The task ignores the error; the
            // attempt fails all the same, and is not retried.
            let refused = sqlx::query("DELETE FROM refunds").execute(&mut *conn).await;
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
    assert!(error.contains("DELETE FROM refunds"), "{error}");
    assert_eq!(
        psql(&database.url, "SELECT count(*) FROM pipeline_test.refunds"),
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

#[tokio::test]
async fn a_test_run_refuses_a_write_that_names_a_production_schema() {
    let sandbox = Sandbox::new("access_pg_schema");
    let database = PgDatabase::create();
    psql(
        &database.url,
        "CREATE TABLE public.refunds (id BIGINT); INSERT INTO public.refunds VALUES (1)",
    );
    let config = sandbox.config(&[("warehouse", &database.url)]);
    // A task that declares no tables is held to none, but still to the test schema.
    let spec = TaskSpec::new("sneaky", |ctx| {
        Box::pin(async move {
            let db = ctx.warehouse().await?;
            db.execute_script("CREATE TABLE scratch AS SELECT 1 AS x")
                .await?;
            db.execute_script("INSERT INTO public.refunds VALUES (2)")
                .await
        })
    });

    let report = pipeline_tests::run_task(&config, spec.clone(), true).await;

    assert_eq!(report.status, TaskStatus::Failed, "{:?}", report.error);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains(
            "task `sneaky` writes `public.refunds` in database `warehouse`, outside the test \
             schema `pipeline_test`"
        ),
        "{error}"
    );
    assert_eq!(
        psql(&database.url, "SELECT count(*) FROM public.refunds"),
        "1"
    );
    assert_eq!(
        psql(&database.url, "SELECT x FROM pipeline_test.scratch"),
        "1"
    );
    // Outside test mode the statement runs as written.
    let report = pipeline_tests::run_task(&config, spec, false).await;
    assert_eq!(report.status, TaskStatus::Succeeded, "{:?}", report.error);
    assert_eq!(
        psql(&database.url, "SELECT count(*) FROM public.refunds"),
        "2"
    );
}

/// `COPY .. FROM STDIN` without the `\.` that ends its rows takes the rest of a script as its
/// rows, so test mode, which parses the script, does not see a statement after it. PostgreSQL
/// never runs one either: the script stops at the `COPY`, which waits for rows a script cannot
/// send, and the production table stays as it was; the task's error says why.
#[tokio::test]
async fn a_test_run_runs_nothing_that_a_copy_from_stdin_hides_in_its_script() {
    let sandbox = Sandbox::new("access_pg_copy");
    let database = PgDatabase::create();
    psql(
        &database.url,
        "CREATE TABLE public.refunds (id BIGINT); INSERT INTO public.refunds VALUES (1)",
    );
    let config = sandbox.config(&[("warehouse", &database.url)]);
    let spec = TaskSpec::new("hidden", |ctx| {
        Box::pin(async move {
            let db = ctx.warehouse().await?;
            db.execute_script(
                "CREATE TABLE scratch (x INT);\nCOPY scratch FROM STDIN;\nDROP TABLE public.refunds;\n",
            )
            .await
        })
    });

    let report = pipeline_tests::run_task(&config, spec, true).await;

    assert_eq!(report.status, TaskStatus::Failed, "{:?}", report.error);
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("`COPY .. FROM STDIN` waits for rows that a script cannot send"),
        "{error}"
    );
    assert_eq!(
        psql(&database.url, "SELECT count(*) FROM public.refunds"),
        "1"
    );
    // A `COPY` that ends its rows, as psql reads them, hides nothing: test mode refuses the
    // statement after it.
    let spec = TaskSpec::new("hidden", |ctx| {
        Box::pin(async move {
            let db = ctx.warehouse().await?;
            db.execute_script("COPY scratch FROM STDIN;\n1\n\\.\nDROP TABLE public.refunds;\n")
                .await
        })
    });
    let report = pipeline_tests::run_task(&config, spec, true).await;
    let error = report.error.unwrap_or_default();
    assert!(
        error.contains("writes `public.refunds` in database `warehouse`, outside the test schema"),
        "{error}"
    );
    assert_eq!(
        psql(&database.url, "SELECT count(*) FROM public.refunds"),
        "1"
    );
}
