//! Table loads against real databases: PostgreSQL to PostgreSQL and SQLite to SQLite, through
//! the real executor. Shared cases run on both backends; PostgreSQL-only ones cover the swap's
//! locking, views, grants and concurrent commits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline_core::TaskSpec;
use pipeline_core::load::LoadReport;
use pipeline_core::sqlx::{
    self, AssertSqlSafe, Connection as _, Executor as _, PgPool, SqlitePool,
};
use pipeline_core::testing::Config;
use pipeline_core::testing::TaskStatus;
use pipeline_tests::{PgDatabase, PgRoles, Sandbox};

/// What one load asks for.
#[derive(Clone, Default)]
struct Args {
    table: String,
    incremental: Option<String>,
    query: Option<String>,
    swap_timeout: Option<Duration>,
    test_mode: bool,
    replace_rows: bool,
    /// The run's partition day in November 2026 (default 26): runs of different days may
    /// load at the same time.
    day: Option<u32>,
}

fn args(table: &str) -> Args {
    Args {
        table: table.into(),
        ..Args::default()
    }
}

enum Databases {
    Postgres {
        source: PgPool,
        warehouse: PgPool,
        /// The source and warehouse databases, dropped with the fixture.
        databases: (PgDatabase, PgDatabase),
    },
    Sqlite {
        source: SqlitePool,
        warehouse: SqlitePool,
    },
}

struct Fixture {
    dbs: Databases,
    config: Config,
    sandbox: Sandbox,
}

impl Fixture {
    async fn postgres() -> Fixture {
        let (source_db, warehouse_db) = (PgDatabase::create(), PgDatabase::create());
        let sandbox = Sandbox::new("load_pg");
        let config = config(&sandbox, &source_db.url, &warehouse_db.url);
        let source = PgPool::connect(&source_db.url).await.expect("source");
        let warehouse = PgPool::connect(&warehouse_db.url).await.expect("warehouse");
        Fixture {
            dbs: Databases::Postgres {
                source,
                warehouse,
                databases: (source_db, warehouse_db),
            },
            config,
            sandbox,
        }
    }

    async fn sqlite() -> Fixture {
        let sandbox = Sandbox::new("load_sqlite");
        let source_url = format!("sqlite://{}?mode=rwc", sandbox.path("replica.db").display());
        let warehouse_url = format!(
            "sqlite://{}?mode=rwc",
            sandbox.path("warehouse.db").display()
        );
        let config = config(&sandbox, &source_url, &warehouse_url);
        let source = SqlitePool::connect(&source_url).await.expect("source");
        let warehouse = SqlitePool::connect(&warehouse_url)
            .await
            .expect("warehouse");
        Fixture {
            dbs: Databases::Sqlite { source, warehouse },
            config,
            sandbox,
        }
    }

    /// Loads from now on as `role` (a login role, trusted like the test server's own): the
    /// warehouse URL names it instead of the superuser.
    fn load_as(&mut self, role: &str) {
        let Databases::Postgres { databases, .. } = &self.dbs else {
            panic!("roles are PostgreSQL's")
        };
        let (source, warehouse) = (
            databases.0.url.clone(),
            pipeline_tests::url_as(&databases.1.url, role),
        );
        self.config = config(&self.sandbox, &source, &warehouse);
    }

    fn is_postgres(&self) -> bool {
        matches!(self.dbs, Databases::Postgres { .. })
    }

    async fn source(&self, sql: &str) {
        let sql = AssertSqlSafe(sql.to_string());
        match &self.dbs {
            Databases::Postgres { source, .. } => {
                source.execute(sqlx::raw_sql(sql)).await.map(|_| ())
            }
            Databases::Sqlite { source, .. } => {
                source.execute(sqlx::raw_sql(sql)).await.map(|_| ())
            }
        }
        .expect("source statement");
    }

    async fn warehouse(&self, sql: &str) -> Option<String> {
        let sql = AssertSqlSafe(sql.to_string());
        match &self.dbs {
            Databases::Postgres { warehouse, .. } => {
                sqlx::query_scalar::<_, Option<String>>(sql)
                    .fetch_one(warehouse)
                    .await
            }
            Databases::Sqlite { warehouse, .. } => {
                sqlx::query_scalar::<_, Option<String>>(sql)
                    .fetch_one(warehouse)
                    .await
            }
        }
        .expect("warehouse query")
    }

    /// Every row of a table as text, ordered by `key`, on either side.
    async fn rows(&self, warehouse: bool, table: &str, key: &str) -> String {
        let (qt, qk) = (
            pipeline_core::db::quote_ident(table),
            pipeline_core::db::quote_ident(key),
        );
        match &self.dbs {
            Databases::Postgres {
                source,
                warehouse: wh,
                ..
            } => {
                let sql = format!(
                    "SELECT coalesce(string_agg(t::text, '|' ORDER BY t.{qk}), '') FROM {qt} t"
                );
                let pool = if warehouse { wh } else { source };
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(pool)
                    .await
                    .expect("rows")
            }
            Databases::Sqlite {
                source,
                warehouse: wh,
            } => {
                let pool = if warehouse { wh } else { source };
                let columns: Vec<String> =
                    sqlx::query_scalar("SELECT name FROM pragma_table_info($1) ORDER BY name")
                        .bind(table)
                        .fetch_all(pool)
                        .await
                        .expect("columns");
                let row = columns
                    .iter()
                    .map(|c| format!("quote(t.{})", pipeline_core::db::quote_ident(c)))
                    .collect::<Vec<_>>()
                    .join(" || ',' || ");
                let sql = format!(
                    "SELECT coalesce(group_concat(r, '|'), '') FROM (SELECT {row} AS r FROM {qt} t ORDER BY t.{qk})"
                );
                sqlx::query_scalar(AssertSqlSafe(sql))
                    .fetch_one(pool)
                    .await
                    .expect("rows")
            }
        }
    }

    /// Runs one load through the executor; its report, or the task's error.
    async fn load(&self, args: Args) -> Result<LoadReport, String> {
        let result: Arc<Mutex<Option<LoadReport>>> = Arc::default();
        let (seen, task_args) = (Arc::clone(&result), args.clone());
        let spec = TaskSpec::new("load", move |ctx| {
            let (seen, args) = (Arc::clone(&seen), task_args.clone());
            Box::pin(async move {
                let mut load = ctx.load_table(&args.table);
                if let Some(key) = &args.incremental {
                    load = load.incremental_by(key).lookback(5);
                }
                if let Some(query) = &args.query {
                    load = load.query(query);
                }
                if args.replace_rows {
                    load = load.replace_rows();
                }
                if let Some(timeout) = args.swap_timeout {
                    load = load
                        .swap_lock_timeout(timeout)
                        .swap_patience(Duration::from_secs(2));
                }
                let report = load.run().await?;
                *seen.lock().map_err(|_| anyhow::anyhow!("poisoned"))? = Some(report);
                Ok(())
            })
        });
        let date =
            pipeline_core::date::Date::from_ymd(2026, 11, args.day.unwrap_or(26)).expect("a date");
        let task = pipeline_tests::run_task_on(&self.config, spec, args.test_mode, date).await;
        if task.status == TaskStatus::Succeeded {
            Ok(result.lock().expect("lock").clone().expect("a load report"))
        } else {
            Err(task.error.clone().unwrap_or_default())
        }
    }
}

fn config(sandbox: &Sandbox, source: &str, warehouse: &str) -> Config {
    sandbox.config(&[("replica", source), ("warehouse", warehouse)])
}

/// `orders` with `n` rows, keys 1..=n.
async fn orders(fx: &Fixture, n: i64) {
    let create = if fx.is_postgres() {
        "CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL, amount NUMERIC(10,2), notes TEXT)"
    } else {
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id BIGINT NOT NULL, amount NUMERIC(10,2), notes TEXT)"
    };
    fx.source(create).await;
    add_orders(fx, 1, n).await;
}

async fn add_orders(fx: &Fixture, from: i64, to: i64) {
    let series = if fx.is_postgres() {
        format!(
            "SELECT i, i % 7, i * 1.25, CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END FROM generate_series({from}, {to}) AS i"
        )
    } else {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM n WHERE i < {to}) \
             SELECT i, i % 7, i * 1.25, CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END FROM n"
        )
    };
    fx.source(&format!(
        "INSERT INTO orders (id, user_id, amount, notes) {series}"
    ))
    .await;
    if fx.is_postgres() {
        fx.source("SELECT setval('orders_id_seq', (SELECT max(id) FROM orders))")
            .await;
    }
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod postgres {
            $( #[tokio::test] async fn $test() { super::$test(super::Fixture::postgres().await).await; } )*
        }
        mod sqlite {
            $( #[tokio::test] async fn $test() { super::$test(super::Fixture::sqlite().await).await; } )*
        }
    };
}

on_both_backends!(
    incremental_keys_that_would_lose_rows_are_refused_before_copying,
    first_full_and_incremental_loads,
    schema_changes_rebuild_the_table,
    hostile_identifiers_load_or_are_refused,
    test_mode_writes_elsewhere,
);

async fn first_full_and_incremental_loads(fx: Fixture) {
    orders(&fx, 100).await;
    let late = "late_order";
    fx.source(&format!("CREATE TABLE {late} AS SELECT * FROM orders WHERE id = 98; DELETE FROM orders WHERE id = 98")).await;
    let incremental = Args {
        incremental: Some("id".into()),
        ..args("orders")
    };
    let first = fx.load(incremental.clone()).await.expect("first load");
    assert_eq!(
        (first.mode, first.rows, first.high_water),
        (pipeline_core::load::LoadMode::Initial, 99, Some(100))
    );
    assert_eq!(
        fx.rows(true, "orders", "id").await,
        fx.rows(false, "orders", "id").await
    );

    // Key 98 commits late (it was missing at the first load): the gap is read again.
    add_orders(&fx, 101, 120).await;
    fx.source(&format!(
        "INSERT INTO orders SELECT 98, user_id, amount, notes FROM {late}"
    ))
    .await;
    let next = fx
        .load(incremental.clone())
        .await
        .expect("incremental load");
    assert_eq!(next.mode, pipeline_core::load::LoadMode::Incremental);
    assert_eq!(
        next.rows, 21,
        "the 20 new rows and the late one in the gap, nothing else"
    );
    assert_eq!(next.high_water, Some(120));
    assert!(!next.schema_changed);
    assert_eq!(
        fx.rows(true, "orders", "id").await,
        fx.rows(false, "orders", "id").await
    );
    let count = fx
        .warehouse("SELECT CAST(count(*) AS TEXT) FROM orders")
        .await;
    assert_eq!(
        count.as_deref(),
        Some("120"),
        "the re-read rows are not duplicated"
    );
    let meta = fx
        .warehouse(
            "SELECT CAST(row_count AS TEXT) FROM pipeline_table_loads WHERE table_name = 'orders'",
        )
        .await;
    assert_eq!(meta.as_deref(), Some("120"));

    let full = fx.load(args("orders")).await.expect("full load");
    assert_eq!(
        (full.mode, full.rows),
        (pipeline_core::load::LoadMode::Full, 120)
    );
}

async fn schema_changes_rebuild_the_table(fx: Fixture) {
    orders(&fx, 50).await;
    let incremental = Args {
        incremental: Some("id".into()),
        ..args("orders")
    };
    fx.load(incremental.clone()).await.expect("first load");
    let changes: &[&str] = if fx.is_postgres() {
        &[
            "ALTER TABLE orders ADD COLUMN currency TEXT DEFAULT 'EUR'",
            "ALTER TABLE orders DROP COLUMN notes",
            "ALTER TABLE orders ALTER COLUMN amount TYPE NUMERIC(12,3)",
            // Reorder: same columns, another order.
            "CREATE TABLE orders2 AS SELECT currency, amount, user_id, id FROM orders; DROP TABLE orders; \
             ALTER TABLE orders2 RENAME TO orders; ALTER TABLE orders ADD PRIMARY KEY (id)",
        ]
    } else {
        &[
            "ALTER TABLE orders ADD COLUMN currency TEXT DEFAULT 'EUR'",
            "ALTER TABLE orders DROP COLUMN notes",
            "CREATE TABLE orders2 (id INTEGER PRIMARY KEY, user_id BIGINT NOT NULL, amount REAL, currency TEXT); \
             INSERT INTO orders2 SELECT id, user_id, amount, currency FROM orders; DROP TABLE orders; \
             ALTER TABLE orders2 RENAME TO orders",
            "CREATE TABLE orders2 (currency TEXT, amount REAL, user_id BIGINT NOT NULL, id INTEGER PRIMARY KEY); \
             INSERT INTO orders2 SELECT currency, amount, user_id, id FROM orders; DROP TABLE orders; \
             ALTER TABLE orders2 RENAME TO orders",
        ]
    };
    for change in changes {
        fx.source(change).await;
        let report = fx
            .load(incremental.clone())
            .await
            .unwrap_or_else(|err| panic!("after {change}: {err}"));
        assert!(report.schema_changed, "{change}");
        assert_eq!(
            (report.mode, report.rows),
            (pipeline_core::load::LoadMode::Full, 50),
            "{change}"
        );
        assert_eq!(
            fx.rows(true, "orders", "id").await,
            fx.rows(false, "orders", "id").await,
            "{change}"
        );
        let unchanged = fx.load(incremental.clone()).await.expect("next load");
        assert_eq!(
            unchanged.mode,
            pipeline_core::load::LoadMode::Incremental,
            "{change}"
        );
    }
}

async fn hostile_identifiers_load_or_are_refused(fx: Fixture) {
    let table = "we\"ird; DROP TABLE orders; --";
    fx.source("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        .await;
    fx.source(&format!(
        "CREATE TABLE {} ({} INTEGER PRIMARY KEY, {} TEXT); INSERT INTO {} VALUES (1, 'a'), (2, 'b')",
        pipeline_core::db::quote_ident(table),
        pipeline_core::db::quote_ident("key with space"),
        pipeline_core::db::quote_ident("it's"),
        pipeline_core::db::quote_ident(table)
    ))
    .await;
    let report = fx
        .load(Args {
            incremental: Some("key with space".into()),
            ..args(table)
        })
        .await
        .expect("hostile names load");
    assert_eq!(report.rows, 2);
    assert_eq!(
        fx.rows(true, table, "key with space").await,
        fx.rows(false, table, "key with space").await
    );
    fx.load(args("orders"))
        .await
        .expect("orders still exists in the source");

    let long = "x".repeat(64);
    let err = fx.load(args(&long)).await.expect_err("too long");
    assert!(err.contains("64 bytes long"), "{err}");
    let err = fx.load(args("no_such_table")).await.expect_err("missing");
    assert!(err.contains("no_such_table"), "{err}");
}

async fn test_mode_writes_elsewhere(fx: Fixture) {
    orders(&fx, 10).await;
    fx.load(args("orders")).await.expect("production load");
    let before = fx.rows(true, "orders", "id").await;
    add_orders(&fx, 11, 15).await;
    let test = fx
        .load(Args {
            test_mode: true,
            ..args("orders")
        })
        .await
        .expect("test-mode load");
    assert_eq!(test.rows, 15, "test mode reads the production source");
    assert_eq!(
        fx.rows(true, "orders", "id").await,
        before,
        "production table untouched"
    );
    if fx.is_postgres() {
        let rows = fx
            .warehouse("SELECT CAST(count(*) AS TEXT) FROM pipeline_test.orders")
            .await;
        assert_eq!(rows.as_deref(), Some("15"));
    } else {
        assert!(fx.sandbox.path("warehouse.test.db").exists());
    }
}

#[tokio::test]
async fn postgres_out_of_order_commits_are_not_lost_nor_duplicated() {
    let fx = Fixture::postgres().await;
    orders(&fx, 10).await;
    let incremental = Args {
        incremental: Some("id".into()),
        ..args("orders")
    };
    fx.load(incremental.clone()).await.expect("first load");
    let Databases::Postgres { source, .. } = &fx.dbs else {
        unreachable!()
    };
    // T1 takes id 11 but commits late; T2 takes id 12 and commits first.
    let mut slow = source.begin().await.expect("t1");
    sqlx::query("INSERT INTO orders (user_id, amount) VALUES (1, 1)")
        .execute(&mut *slow)
        .await
        .expect("insert 11");
    sqlx::query("INSERT INTO orders (user_id, amount) VALUES (2, 2)")
        .execute(source)
        .await
        .expect("insert 12");
    let during = fx
        .load(incremental.clone())
        .await
        .expect("load while T1 is open");
    assert_eq!(during.high_water, Some(12));
    slow.commit().await.expect("commit 11");
    fx.load(incremental.clone())
        .await
        .expect("load after T1 committed");
    assert_eq!(
        fx.rows(true, "orders", "id").await,
        fx.rows(false, "orders", "id").await
    );
    assert_eq!(
        fx.warehouse("SELECT string_agg(id::text, ',' ORDER BY id) FROM orders WHERE id > 10")
            .await
            .as_deref(),
        Some("11,12")
    );
}

#[tokio::test]
async fn postgres_swap_keeps_grants_comments_and_indexes_and_refuses_to_drop_views() {
    let fx = Fixture::postgres().await;
    orders(&fx, 20).await;
    fx.load(args("orders")).await.expect("first load");
    let Databases::Postgres { warehouse, .. } = &fx.dbs else {
        unreachable!()
    };
    let role = pipeline_tests::unique_name("reader");
    for statement in [
        format!("CREATE ROLE {role}"),
        format!("GRANT SELECT ON orders TO {role}"),
        "COMMENT ON TABLE orders IS 'orders from the replica'".to_string(),
        "COMMENT ON COLUMN orders.user_id IS 'who ordered'".to_string(),
        "CREATE INDEX orders_by_user ON orders (user_id)".to_string(),
    ] {
        warehouse
            .execute(AssertSqlSafe(statement))
            .await
            .expect("setup");
    }
    fx.load(args("orders")).await.expect("rebuild");
    let granted = fx
        .warehouse(&format!(
            "SELECT CAST(has_table_privilege('{role}', 'orders', 'SELECT') AS TEXT)"
        ))
        .await;
    assert_eq!(granted.as_deref(), Some("true"));
    assert_eq!(
        fx.warehouse("SELECT obj_description('orders'::regclass, 'pg_class')")
            .await
            .as_deref(),
        Some("orders from the replica")
    );
    assert_eq!(
        fx.warehouse("SELECT col_description('orders'::regclass, 2)")
            .await
            .as_deref(),
        Some("who ordered")
    );
    assert_eq!(
        fx.warehouse("SELECT indexdef FROM pg_indexes WHERE indexname = 'orders_by_user'")
            .await
            .as_deref(),
        Some("CREATE INDEX orders_by_user ON public.orders USING btree (user_id)")
    );
    assert_eq!(fx.warehouse("SELECT conname::text FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'p'").await.as_deref(), Some("orders_pkey"));

    warehouse
        .execute("CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 10")
        .await
        .expect("view");
    let err = fx
        .load(args("orders"))
        .await
        .expect_err("a view depends on it");
    assert!(err.contains("views depend on it (big_orders)"), "{err}");
    assert_eq!(
        fx.rows(true, "orders", "id").await,
        fx.rows(false, "orders", "id").await,
        "old table intact"
    );
    let staging = fx
        .warehouse("SELECT CAST(count(*) AS TEXT) FROM pg_class WHERE relname LIKE '%__pl_stage_%'")
        .await;
    assert_eq!(
        staging.as_deref(),
        Some("0"),
        "no staging table left behind"
    );
    warehouse
        .execute(AssertSqlSafe(format!(
            "DROP VIEW big_orders; DROP OWNED BY {role}; DROP ROLE {role}"
        )))
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn postgres_swap_waits_for_readers_then_fails_cleanly_naming_them() {
    let fx = Fixture::postgres().await;
    orders(&fx, 20).await;
    fx.load(args("orders")).await.expect("first load");
    let Databases::Postgres { warehouse, .. } = &fx.dbs else {
        unreachable!()
    };
    let mut reader = warehouse.begin().await.expect("reader");
    sqlx::query("SELECT count(*) FROM orders")
        .execute(&mut *reader)
        .await
        .expect("read");
    let reader_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *reader)
        .await
        .expect("pid");
    let quick = Args {
        swap_timeout: Some(Duration::from_millis(100)),
        ..args("orders")
    };
    let err = fx
        .load(quick.clone())
        .await
        .expect_err("the reader holds the table");
    assert!(
        err.contains("other sessions still hold it") && err.contains(&format!("pid {reader_pid}")),
        "{err}"
    );
    assert!(err.contains("the old table is intact"), "{err}");
    assert_eq!(
        fx.rows(true, "orders", "id").await,
        fx.rows(false, "orders", "id").await
    );

    // A reader that finishes within the retries does not fail the load.
    let releaser = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        reader.commit().await.expect("reader done");
    });
    fx.load(quick)
        .await
        .expect("the swap succeeds once the reader is gone");
    releaser.await.expect("releaser");
}

/// A loader that is not a superuser (nor has `pg_read_all_stats`) still names the sessions of
/// other roles that hold the table: their pid, role and application.
#[tokio::test]
async fn postgres_a_loader_names_readers_of_other_roles() {
    let roles = PgRoles::new(2);
    let (loader, analyst) = (&roles.names[0], &roles.names[1]);
    let mut fx = Fixture::postgres().await;
    orders(&fx, 20).await;
    let Databases::Postgres {
        warehouse,
        databases,
        ..
    } = &fx.dbs
    else {
        unreachable!()
    };
    let warehouse_url = databases.1.url.clone();
    warehouse
        .execute(AssertSqlSafe(format!(
            "GRANT CREATE, USAGE ON SCHEMA public TO {loader}; \
             ALTER DEFAULT PRIVILEGES FOR ROLE {loader} IN SCHEMA public GRANT SELECT ON TABLES TO {analyst}"
        )))
        .await
        .expect("grants");
    fx.load_as(loader);
    fx.load(args("orders"))
        .await
        .expect("first load, as the loader");

    let analyst_url = format!(
        "{}?application_name=dashboard",
        pipeline_tests::url_as(&warehouse_url, analyst)
    );
    let mut reader = sqlx::PgConnection::connect(&analyst_url)
        .await
        .expect("the analyst connects");
    reader.execute("BEGIN").await.expect("begin");
    sqlx::query("SELECT count(*) FROM orders")
        .execute(&mut reader)
        .await
        .expect("the analyst reads");
    let reader_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut reader)
        .await
        .expect("pid");
    let quick = Args {
        swap_timeout: Some(Duration::from_millis(100)),
        ..args("orders")
    };
    let err = fx
        .load(quick)
        .await
        .expect_err("the analyst holds the table");
    assert!(
        err.contains(&format!("pid {reader_pid} ({analyst}, dashboard")),
        "{err}"
    );
    assert!(!err.contains("could not be named"), "{err}");
    drop(reader);
}

/// Keeping an owner that lacks CREATE on the schema is refused for that reason, said once.
#[tokio::test]
async fn postgres_keeping_an_owner_without_create_on_the_schema_names_that_cause_once() {
    let roles = PgRoles::new(2);
    let (loader, owner) = (&roles.names[0], &roles.names[1]);
    let mut fx = Fixture::postgres().await;
    orders(&fx, 20).await;
    let Databases::Postgres { warehouse, .. } = &fx.dbs else {
        unreachable!()
    };
    let warehouse = warehouse.clone();
    warehouse
        .execute(AssertSqlSafe(format!(
            "GRANT CREATE, USAGE ON SCHEMA public TO {loader}; GRANT {owner} TO {loader}"
        )))
        .await
        .expect("grants");
    fx.load_as(loader);
    fx.load(args("orders"))
        .await
        .expect("first load, as the loader");
    warehouse
        .execute(AssertSqlSafe(format!(
            "ALTER TABLE orders OWNER TO {owner}"
        )))
        .await
        .expect("the owner changes");
    let err = fx
        .load(args("orders"))
        .await
        .expect_err("the owner cannot own it anew");
    assert!(
        err.contains(&format!(
            "cannot keep the owner {owner} of `orders`: {owner} has no CREATE privilege on schema public"
        )) && err.contains(&format!("GRANT CREATE ON SCHEMA public TO {owner}")),
        "{err}"
    );
    for noise in [
        "must be a member",
        "error returned from database",
        ".c:",
        "line ",
    ] {
        assert!(!err.contains(noise), "{noise}: {err}");
    }
    assert_eq!(err.matches("cannot keep the owner").count(), 1, "{err}");
    assert_eq!(
        fx.rows(true, "orders", "id").await,
        fx.rows(false, "orders", "id").await,
        "old table intact"
    );
}

#[tokio::test]
async fn postgres_a_failure_mid_load_leaves_the_old_table_and_no_staging() {
    let fx = Fixture::postgres().await;
    orders(&fx, 20).await;
    fx.load(args("orders")).await.expect("first load");
    let before = fx.rows(true, "orders", "id").await;
    let broken = Args {
        query: Some("SELECT id, 10 / (id - 15) AS ratio FROM orders".into()),
        ..args("orders")
    };
    let err = fx
        .load(broken)
        .await
        .expect_err("division by zero at row 15");
    assert!(err.contains("division by zero"), "{err}");
    assert_eq!(fx.rows(true, "orders", "id").await, before);
    let staging = fx
        .warehouse("SELECT CAST(count(*) AS TEXT) FROM pg_class WHERE relname LIKE '%__pl_stage_%'")
        .await;
    assert_eq!(staging.as_deref(), Some("0"));

    // A staging table left by a killed process is cleaned up by the next load.
    let leftover = pipeline_core::testing::staging_name("orders", 999);
    let Databases::Postgres { warehouse, .. } = &fx.dbs else {
        unreachable!()
    };
    warehouse
        .execute(AssertSqlSafe(format!(
            "CREATE TABLE {} (id int)",
            pipeline_core::db::quote_ident(&leftover)
        )))
        .await
        .expect("leftover");
    fx.load(args("orders")).await.expect("next load");
    let staging = fx
        .warehouse("SELECT CAST(count(*) AS TEXT) FROM pg_class WHERE relname LIKE '%__pl_stage_%'")
        .await;
    assert_eq!(staging.as_deref(), Some("0"));
}

#[tokio::test]
async fn a_custom_query_is_loaded_in_full_on_both_backends() {
    for fx in [Fixture::postgres().await, Fixture::sqlite().await] {
        orders(&fx, 30).await;
        let query = Args {
            query: Some("SELECT user_id, count(*) AS orders FROM orders GROUP BY user_id".into()),
            ..args("orders_per_user")
        };
        let report = fx.load(query.clone()).await.expect("query load");
        assert_eq!(
            (report.mode, report.rows),
            (pipeline_core::load::LoadMode::Initial, 7)
        );
        assert_eq!(
            fx.warehouse("SELECT CAST(sum(orders) AS TEXT) FROM orders_per_user")
                .await
                .as_deref(),
            Some("30")
        );
        let again = fx.load(query).await.expect("query load again");
        assert_eq!(again.mode, pipeline_core::load::LoadMode::Full);
        let incremental = Args {
            incremental: Some("user_id".into()),
            query: Some("SELECT 1 AS user_id".into()),
            ..args("x")
        };
        let err = fx
            .load(incremental)
            .await
            .expect_err("a query load is always full");
        assert!(err.contains("always full"), "{err}");
    }
}

#[tokio::test]
async fn postgres_concurrent_loads_of_one_table_neither_duplicate_nor_fail() {
    let fx = Fixture::postgres().await;
    // A unique key but no primary key: nothing in the warehouse would stop duplicates.
    fx.source(
        "CREATE TABLE events (id BIGINT NOT NULL UNIQUE, payload TEXT); \
         INSERT INTO events SELECT i, repeat('x', 50) FROM generate_series(1, 1000) AS i",
    )
    .await;
    let incremental = |day| Args {
        incremental: Some("id".into()),
        day: Some(day),
        ..args("events")
    };
    fx.load(incremental(1)).await.expect("first load");
    for round in 0..3 {
        let from = 1001 + round * 20_000;
        fx.source(&format!(
            "INSERT INTO events SELECT i, repeat('y', 50) FROM generate_series({from}, {}) AS i",
            from + 19_999
        ))
        .await;
        let (a, b) = tokio::join!(fx.load(incremental(2)), fx.load(incremental(3)));
        a.expect("one load");
        b.expect("the other load");
        let counts = fx
            .warehouse(
                "SELECT format('%s %s %s', count(*), count(DISTINCT id), \
                 (SELECT row_count FROM pipeline_table_loads WHERE table_name = 'events')) FROM events",
            )
            .await
            .expect("counts");
        let expected = 1000 + (round + 1) * 20_000;
        assert_eq!(
            counts,
            format!("{expected} {expected} {expected}"),
            "round {round}: rows, distinct keys and the metadata's count agree"
        );
    }
    // Two rebuilds at once: one waits for the other; neither drops the other's staging table.
    let full = |day| Args {
        day: Some(day),
        ..args("events")
    };
    let (a, b) = tokio::join!(fx.load(full(4)), fx.load(full(5)));
    a.expect("one rebuild");
    b.expect("the other rebuild");
    assert_eq!(
        fx.rows(true, "events", "id").await,
        fx.rows(false, "events", "id").await
    );
}

#[tokio::test]
async fn postgres_a_rebuild_keeps_security_triggers_owner_and_exact_grants() {
    let fx = Fixture::postgres().await;
    orders(&fx, 20).await;
    fx.load(args("orders")).await.expect("first load");
    let Databases::Postgres { warehouse, .. } = &fx.dbs else {
        unreachable!()
    };
    let role = |what: &str| pipeline_tests::unique_name(what);
    let (owner, reader, limited, columns) =
        (role("owner"), role("reader"), role("limited"), role("cols"));
    for statement in [
        format!("CREATE ROLE {owner}"),
        format!("CREATE ROLE {reader}"),
        format!("CREATE ROLE {limited}"),
        format!("CREATE ROLE {columns}"),
        format!("GRANT USAGE ON SCHEMA public TO {reader}"),
        // The schema's defaults grant every new table to `limited`; this table revoked it.
        format!("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {limited}"),
        format!("REVOKE ALL ON orders FROM {limited}"),
        format!("GRANT SELECT ON orders TO {reader} WITH GRANT OPTION"),
        format!("GRANT SELECT (id, amount) ON orders TO {columns}"),
        "ALTER TABLE orders ENABLE ROW LEVEL SECURITY".into(),
        "ALTER TABLE orders FORCE ROW LEVEL SECURITY".into(),
        format!("CREATE POLICY small_ones ON orders FOR SELECT TO {reader} USING (id <= 9)"),
        "CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$"
            .into(),
        "CREATE TRIGGER orders_stamp BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION stamp()"
            .into(),
        "ALTER TABLE orders DISABLE TRIGGER orders_stamp".into(),
        "ALTER TABLE orders REPLICA IDENTITY FULL".into(),
        "ALTER TABLE orders ALTER COLUMN notes SET STATISTICS 500".into(),
        "ALTER TABLE orders SET (fillfactor = 70)".into(),
        format!("ALTER TABLE orders OWNER TO {owner}"),
    ] {
        warehouse
            .execute(AssertSqlSafe(statement.clone()))
            .await
            .unwrap_or_else(|err| panic!("{statement}: {err}"));
    }
    let report = fx.load(args("orders")).await.expect("rebuild");
    assert_eq!(report.rows, 20);
    assert_eq!(
        fx.warehouse(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'orders'::regclass"
        )
        .await
        .unwrap_or_default(),
        owner
    );
    assert_eq!(
        fx.warehouse("SELECT format('%s %s %s', relrowsecurity, relforcerowsecurity, relreplident) FROM pg_class WHERE oid = 'orders'::regclass").await.unwrap_or_default(),
        "t t f"
    );
    assert_eq!(
        fx.warehouse(
            "SELECT qual FROM pg_policies WHERE tablename = 'orders' AND policyname = 'small_ones'"
        )
        .await
        .unwrap_or_default(),
        "(id <= 9)"
    );
    assert_eq!(
        fx.warehouse(&format!(
            "SELECT format('%s %s %s %s %s', \
               has_table_privilege('{limited}', 'orders', 'SELECT'), \
               has_table_privilege('{reader}', 'orders', 'SELECT WITH GRANT OPTION'), \
               has_column_privilege('{columns}', 'orders', 'amount', 'SELECT'), \
               has_column_privilege('{columns}', 'orders', 'notes', 'SELECT'), \
               has_table_privilege('{columns}', 'orders', 'SELECT'))"
        ))
        .await
        .unwrap_or_default(),
        "f t t f f",
        "grants exactly as before: the revoke stays, the grant option and column grants too"
    );
    assert_eq!(
        fx.warehouse("SELECT tgenabled::text FROM pg_trigger WHERE tgname = 'orders_stamp'")
            .await
            .unwrap_or_default(),
        "D"
    );
    assert_eq!(
        fx.warehouse("SELECT format('%s %s', (SELECT attstattarget FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'notes'), reloptions) FROM pg_class WHERE oid = 'orders'::regclass").await.unwrap_or_default(),
        "500 {fillfactor=70}"
    );
    // A reader limited by the policy sees what it saw before.
    let mut conn = warehouse.acquire().await.expect("a connection");
    conn.execute(AssertSqlSafe(format!("SET ROLE {reader}")))
        .await
        .expect("set role");
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(&mut *conn)
        .await
        .expect("read as the limited reader");
    conn.execute("RESET ROLE").await.expect("reset role");
    assert_eq!(seen, 9);
}

#[tokio::test]
async fn postgres_objects_that_depend_on_the_table_are_named() {
    let fx = Fixture::postgres().await;
    orders(&fx, 5).await;
    fx.load(args("orders")).await.expect("first load");
    let Databases::Postgres { warehouse, .. } = &fx.dbs else {
        unreachable!()
    };
    warehouse
        .execute("CREATE TABLE refunds (order_id BIGINT REFERENCES orders (id))")
        .await
        .expect("a foreign key");
    let err = fx
        .load(args("orders"))
        .await
        .expect_err("a foreign key refers to it");
    assert!(
        err.contains(
            "other objects depend on it (constraint refunds_order_id_fkey on table refunds)"
        ),
        "{err}"
    );
    warehouse
        .execute("DROP TABLE refunds; CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM orders; END")
        .await
        .expect("a function");
    let err = fx
        .load(args("orders"))
        .await
        .expect_err("a function depends on it");
    assert!(err.contains("function order_count()"), "{err}");
    assert!(
        err.contains("the old table is intact") || err.contains("depend on it"),
        "{err}"
    );
    warehouse
        .execute("DROP FUNCTION order_count(); ALTER TABLE orders ADD CONSTRAINT positive CHECK (amount > 0)")
        .await
        .expect("a constraint");
    let err = fx
        .load(args("orders"))
        .await
        .expect_err("a constraint of its own");
    assert!(
        err.contains(
            "constraints that a rebuild would lose (positive (CHECK ((amount > (0)::numeric))))"
        ),
        "{err}"
    );
}

async fn an_index_on_a_dropped_column_is_dropped_and_reported(fx: Fixture) {
    orders(&fx, 10).await;
    fx.load(args("orders")).await.expect("first load");
    let create = "CREATE INDEX orders_by_note ON orders (notes)";
    match &fx.dbs {
        Databases::Postgres { warehouse, .. } => warehouse.execute(create).await.map(|_| ()),
        Databases::Sqlite { warehouse, .. } => warehouse.execute(create).await.map(|_| ()),
    }
    .expect("a warehouse index");
    fx.source("ALTER TABLE orders DROP COLUMN notes").await;
    let report = fx.load(args("orders")).await.expect("the rebuild goes on");
    assert!(report.schema_changed);
    assert!(
        report.dropped.iter().any(|d| d.contains("orders_by_note")),
        "{:?}",
        report.dropped
    );
    assert!(report.to_string().contains("orders_by_note"), "{report}");
    fx.load(args("orders"))
        .await
        .expect("and so do later loads");
}

#[tokio::test]
async fn postgres_an_index_on_a_dropped_column_is_dropped_and_reported() {
    an_index_on_a_dropped_column_is_dropped_and_reported(Fixture::postgres().await).await;
}

#[tokio::test]
async fn sqlite_an_index_on_a_dropped_column_is_dropped_and_reported() {
    an_index_on_a_dropped_column_is_dropped_and_reported(Fixture::sqlite().await).await;
}

#[tokio::test]
async fn postgres_names_at_the_limit_or_with_dollars_rebuild() {
    let fx = Fixture::postgres().await;
    let longest = "t".repeat(63);
    for name in [longest.as_str(), "a$$b", "x$y$$;--"] {
        let quoted = pipeline_core::db::quote_ident(name);
        fx.source(&format!(
            "CREATE TABLE {quoted} (id BIGINT PRIMARY KEY, v TEXT); INSERT INTO {quoted} VALUES (1, 'one')"
        ))
        .await;
        fx.load(args(name)).await.expect("first load");
        let report = fx.load(args(name)).await.expect("a rebuild swaps it");
        assert_eq!(report.rows, 1, "{name}");
    }
}

async fn incremental_keys_that_would_lose_rows_are_refused_before_copying(fx: Fixture) {
    let stamp_type = if fx.is_postgres() {
        "TIMESTAMP"
    } else {
        "TEXT"
    };
    fx.source(&format!(
        "CREATE TABLE lines (order_id BIGINT NOT NULL, line INT NOT NULL, at {stamp_type}, \
         PRIMARY KEY (order_id, line)); \
         INSERT INTO lines VALUES (1, 1, NULL), (1, 2, NULL), (2, 1, NULL)"
    ))
    .await;
    let by = |key: &str| Args {
        incremental: Some(key.into()),
        ..args("lines")
    };
    let err = fx.load(by("order_id")).await.expect_err("not unique");
    assert!(
        err.contains("the incremental key `order_id` is not unique in the source"),
        "{err}"
    );
    let err = fx.load(by("at")).await.expect_err("not an integer");
    assert!(err.contains("must be an integer"), "{err}");
    let exists = if fx.is_postgres() {
        "SELECT CAST(to_regclass('lines') IS NOT NULL AS TEXT)"
    } else {
        "SELECT CAST(count(*) > 0 AS TEXT) FROM sqlite_master WHERE name = 'lines'"
    };
    let copied = fx.warehouse(exists).await;
    assert!(
        matches!(copied.as_deref(), Some("false" | "0")),
        "nothing was copied: {copied:?}"
    );
    fx.source("CREATE UNIQUE INDEX lines_code ON lines (line, order_id); ALTER TABLE lines ADD COLUMN id BIGINT; UPDATE lines SET id = order_id * 100 + line; CREATE UNIQUE INDEX lines_id ON lines (id)").await;
    fx.load(by("id")).await.expect("a unique integer key loads");
}

#[tokio::test]
async fn postgres_types_of_extensions_and_queries_load_in_test_mode_and_exactly() {
    let fx = Fixture::postgres().await;
    let Databases::Postgres { warehouse, .. } = &fx.dbs else {
        unreachable!()
    };
    let types = "CREATE EXTENSION IF NOT EXISTS citext; \
                 CREATE TYPE mood AS ENUM ('calm', 'cross')";
    fx.source(types).await;
    warehouse
        .execute(sqlx::raw_sql(types))
        .await
        .expect("the same types in the warehouse");
    fx.source(
        "CREATE TABLE people (id BIGINT PRIMARY KEY, email citext, mood mood, code CHAR(3), \
         moods mood[]); \
         INSERT INTO people VALUES (1, 'A@x.org', 'calm', 'abc', '{calm,cross}'), \
                                   (2, 'b@x.org', 'cross', 'de', NULL)",
    )
    .await;
    for test_mode in [false, true] {
        let report = fx
            .load(Args {
                test_mode,
                ..args("people")
            })
            .await
            .unwrap_or_else(|err| panic!("test mode {test_mode}: {err}"));
        assert_eq!(report.rows, 2);
    }
    assert_eq!(
        fx.warehouse("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'pipeline_test.people'::regclass AND attname = 'code'")
            .await
            .as_deref(),
        Some("character(3)")
    );
    let query = Args {
        query: Some("SELECT id, code, 'xy'::char(2) AS pair, email FROM people".into()),
        ..args("coded")
    };
    let report = fx.load(query).await.expect("a query with char(n) columns");
    assert_eq!(report.rows, 2);
    assert_eq!(
        fx.warehouse("SELECT string_agg(format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'coded'::regclass AND attnum > 0")
            .await
            .as_deref(),
        Some("bigint, character(3), bpchar, citext")
    );
}

async fn count_orders(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders")
        .fetch_one(conn)
        .await
        .expect("count")
}

#[tokio::test]
async fn postgres_snapshot_readers_see_a_swapped_table_empty_but_replaced_rows_whole() {
    let fx = Fixture::postgres().await;
    orders(&fx, 30).await;
    fx.load(args("orders")).await.expect("first load");
    let Databases::Postgres { warehouse, .. } = &fx.dbs else {
        unreachable!()
    };
    let mut total = 30;
    for (replace_rows, seen_by_old_snapshot) in [(false, 0), (true, 35)] {
        let mut reader = warehouse.acquire().await.expect("a reader");
        reader
            .execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await
            .expect("begin");
        // A snapshot older than the load, taken without touching (or locking) the table.
        sqlx::query("SELECT 1 FROM pipeline_table_loads LIMIT 1")
            .execute(&mut *reader)
            .await
            .expect("snapshot");
        add_orders(&fx, total + 1, total + 5).await;
        total += 5;
        fx.load(Args {
            replace_rows,
            ..args("orders")
        })
        .await
        .expect("a rebuild");
        assert_eq!(
            count_orders(&mut reader).await,
            seen_by_old_snapshot,
            "replace_rows {replace_rows}: what a snapshot older than the load sees"
        );
        reader.execute("COMMIT").await.expect("commit");
        assert_eq!(count_orders(&mut reader).await, total);
    }
}
