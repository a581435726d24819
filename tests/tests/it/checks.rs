//! Check helpers on both backends: a table or column that does not exist is a fatal error that
//! names it, never a check that passes having measured nothing.

use pipeline_core::TaskSpec;
use pipeline_core::testing::TaskStatus;
use pipeline_tests::{PgDatabase, Sandbox};

/// Runs a task that creates `events` and then runs `check` (`nulls`, `count`, `fresh`, `key`)
/// against `table`/`column`; its status and error.
async fn run_check(
    warehouse: &str,
    sandbox: &Sandbox,
    check: &'static str,
    table: &'static str,
    column: &'static str,
) -> (TaskStatus, u32, String) {
    let config = sandbox.config(&[("warehouse", warehouse)]);
    let spec = TaskSpec::new("check", move |ctx| {
        Box::pin(async move {
            let db = ctx.warehouse().await?;
            db.execute_script(
                "CREATE TABLE IF NOT EXISTS events (id BIGINT, at TEXT); \
                 INSERT INTO events VALUES (1, NULL)",
            )
            .await?;
            let _ = match check {
                "nulls" => db.no_nulls(table, column).await?,
                "count" => db.row_count_at_least(table, 1).await?,
                "fresh" => {
                    db.freshness(table, column, std::time::Duration::from_secs(60))
                        .await?
                }
                _ => db.unique_key(table, &[column]).await?,
            };
            Ok(())
        })
    })
    .policy(pipeline_core::Policy {
        retries: 3,
        retry_delay: std::time::Duration::from_secs(30),
        ..Default::default()
    });
    let report = pipeline_tests::run_task(&config, spec, false).await;
    (
        report.status,
        report.attempts,
        report.error.unwrap_or_default(),
    )
}

async fn missing_tables_and_columns_fail_naming_them(warehouse: &str, sandbox: &Sandbox) {
    for check in ["nulls", "fresh", "key"] {
        let (status, attempts, error) =
            run_check(warehouse, sandbox, check, "events", "missing_column").await;
        assert_eq!(
            (status, attempts),
            (TaskStatus::Failed, 1),
            "{check}: {error}"
        );
        assert!(
            error.contains("the checked column `missing_column` is not a column of `events`"),
            "{check}: {error}"
        );
        assert!(error.ends_with("(fatal: not retried)"), "{check}: {error}");
    }
    let (status, _, error) = run_check(warehouse, sandbox, "count", "no_such_table", "").await;
    assert_eq!(status, TaskStatus::Failed);
    assert!(
        error.contains("the checked table `no_such_table` does not exist"),
        "{error}"
    );
    let (status, _, error) = run_check(warehouse, sandbox, "nulls", "events", "at").await;
    assert_eq!(
        status,
        TaskStatus::Succeeded,
        "a real column is measured: {error}"
    );
}

#[tokio::test]
async fn sqlite_missing_tables_and_columns_fail_naming_them() {
    let sandbox = Sandbox::new("checks_sqlite");
    let url = format!("sqlite://{}", sandbox.path("warehouse.db").display());
    missing_tables_and_columns_fail_naming_them(&url, &sandbox).await;
}

#[tokio::test]
async fn postgres_missing_tables_and_columns_fail_naming_them() {
    let sandbox = Sandbox::new("checks_pg");
    let database = PgDatabase::create();
    missing_tables_and_columns_fail_naming_them(&database.url, &sandbox).await;
}

/// `Db::has_table` on `warehouse`: whether `events` exists before and after it is made.
async fn has_table_sees_what_exists(warehouse: &str, sandbox: &Sandbox) {
    let config = sandbox.config(&[("warehouse", warehouse)]);
    let spec = TaskSpec::new("look", |ctx| {
        Box::pin(async move {
            let db = ctx.warehouse().await?;
            anyhow::ensure!(!db.has_table("events").await?, "no events table yet");
            db.execute_script("CREATE TABLE events (id BIGINT)").await?;
            anyhow::ensure!(db.has_table("events").await?, "the events table exists");
            anyhow::ensure!(!db.has_table("event").await?, "no table of a similar name");
            Ok(())
        })
    });
    let report = pipeline_tests::run_task(&config, spec, false).await;
    assert_eq!(report.status, TaskStatus::Succeeded, "{:?}", report.error);
}

#[tokio::test]
async fn sqlite_has_table_sees_what_exists() {
    let sandbox = Sandbox::new("has_table_sqlite");
    let url = format!("sqlite://{}", sandbox.path("warehouse.db").display());
    has_table_sees_what_exists(&url, &sandbox).await;
}

#[tokio::test]
async fn postgres_has_table_sees_what_exists() {
    let sandbox = Sandbox::new("has_table_pg");
    let database = PgDatabase::create();
    has_table_sees_what_exists(&database.url, &sandbox).await;
}
