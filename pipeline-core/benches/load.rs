//! Table-load benchmark against a real PostgreSQL (`DATABASE_URL`, default the local server):
//! a 1,000,000-row `orders` table copied from a source database into a warehouse database by
//! the loader (full rebuild with staging, primary key, ANALYZE and swap), measured in the same
//! run against two psql pipes (text and binary COPY), then 10,000 new rows loaded
//! incrementally against the same psql pipe restricted to them. Median of 3.
//!
//! `cargo bench -p pipeline-core --bench load` (`-- --rows N` for another size). Both sides
//! connect without TLS: see the note where the URLs are built.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline_core::date::Date;
use pipeline_core::sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};
use pipeline_core::testing::{Config, Setting};
use pipeline_core::testing::{Quiet, RunOptions, Runner, open_store};
use pipeline_core::{Dag, TaskSpec};
use tokio::sync::watch;

const RUNS: usize = 3;
const NEW_ROWS: i64 = 10_000;
const TABLE: &str = "CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint, restaurant_id bigint, \
    amount numeric(10,2), currency text, status text, created_at timestamptz, notes text)";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: i64 = args
        .iter()
        .position(|a| a == "--rows")
        .and_then(|i| args.get(i + 1))
        .map_or(1_000_000, |n| n.parse().expect("--rows takes a number"));
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let server = admin
        .rsplit_once('/')
        .map(|(server, _)| server.to_string())
        .expect("DATABASE_URL with a database");
    let (source_db, warehouse_db) = (
        format!("bench_source_{}", std::process::id()),
        format!("bench_warehouse_{}", std::process::id()),
    );
    // Plain TCP on both sides (the loader and psql): sqlx 0.9.0 leaves TCP_NODELAY off, which
    // costs about 90 ms per new TLS connection (launchbadge/sqlx#4335, fixed upstream, not yet
    // released); over TLS the same loads add that per connection opened.
    let (source, warehouse) = (
        format!("{server}/{source_db}?sslmode=disable"),
        format!("{server}/{warehouse_db}?sslmode=disable"),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    runtime.block_on(async {
        let mut conn = PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL is required: set DATABASE_URL");
        for db in [&source_db, &warehouse_db] {
            conn.execute(AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .await
                .expect("create database");
        }
        let mut src = PgConnection::connect(&source).await.expect("source");
        src.execute(TABLE).await.expect("source table");
        let started = Instant::now();
        insert_orders(&mut src, rows).await;
        src.execute("ANALYZE orders").await.expect("analyze");
        println!(
            "generated {rows} rows in the source in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let mut wh = PgConnection::connect(&warehouse).await.expect("warehouse");
        wh.execute(AssertSqlSafe(TABLE.replace("orders", "piped")))
            .await
            .expect("pipe target");
    });

    let text = median(|| pipe(&source, &warehouse, "orders", "", None));
    let binary = median(|| pipe(&source, &warehouse, "orders", " (format binary)", None));
    let sandbox = std::env::temp_dir().join(format!("pipeline-load-bench-{}", std::process::id()));
    std::fs::create_dir_all(&sandbox).expect("temp dir");
    let mut config = Config::embedded();
    config.state = Setting {
        url: format!("sqlite://{}", sandbox.join("state.db").display()),
        source: "bench".into(),
    };
    config.databases.insert(
        "replica".into(),
        Setting {
            url: source.clone(),
            source: "bench".into(),
        },
    );
    config.databases.insert(
        "warehouse".into(),
        Setting {
            url: warehouse.clone(),
            source: "bench".into(),
        },
    );
    let load = |how: How| runtime.block_on(load_once(&config, how));
    // The first load creates the table; the measured ones are full rebuilds with a swap, then
    // with the rows replaced in place.
    load(How::Swap);
    let full = median(|| load(How::Swap));
    let replaced = median(|| load(How::ReplaceRows));

    runtime.block_on(async {
        let mut src = PgConnection::connect(&source).await.expect("source");
        load_once(&config, How::Incremental).await; // records the high-water mark
        let first_new = rows + 1;
        let mut incremental_times = Vec::new();
        let mut pipe_times = Vec::new();
        for run in 0..RUNS as i64 {
            insert_orders(&mut src, NEW_ROWS).await;
            let after = first_new + run * NEW_ROWS - 1;
            incremental_times.push(load_once(&config, How::Incremental).await);
            pipe_times.push(pipe(
                &source,
                &warehouse,
                &format!("(SELECT * FROM orders WHERE id > {after})"),
                "",
                Some(()),
            ));
        }
        let (incremental, piped) = (middle(incremental_times), middle(pipe_times));
        let rate = |d: Duration| rows as f64 / d.as_secs_f64() / 1000.0;
        println!();
        println!(
            "{:<44} {:>9} {:>12}",
            format!("{rows} rows, median of {RUNS}"),
            "time",
            "rows/s"
        );
        println!(
            "{:<44} {:>7.2} s {:>10.0}k",
            "psql | psql, text COPY",
            text.as_secs_f64(),
            rate(text)
        );
        println!(
            "{:<44} {:>7.2} s {:>10.0}k",
            "psql | psql, binary COPY",
            binary.as_secs_f64(),
            rate(binary)
        );
        println!(
            "{:<44} {:>7.2} s {:>10.0}k",
            "pipeline full load (staging, pk, analyze, swap)",
            full.as_secs_f64(),
            rate(full)
        );
        println!(
            "{:<44} {:>7.2} s {:>10.0}k",
            "pipeline full load, rows replaced in place",
            replaced.as_secs_f64(),
            rate(replaced)
        );
        println!(
            "{:<44} {:>7.2} s",
            format!("pipeline incremental, {NEW_ROWS} new rows"),
            incremental.as_secs_f64()
        );
        println!(
            "{:<44} {:>7.2} s",
            format!("psql | psql, the same {NEW_ROWS} rows"),
            piped.as_secs_f64()
        );
        println!(
            "full load vs binary pipe: {:.2}x the time; incremental vs pipe: {:.2}x",
            full.as_secs_f64() / binary.as_secs_f64(),
            incremental.as_secs_f64() / piped.as_secs_f64()
        );
        println!(
            "peak RSS of the benchmark process (loads run in it): {} MB",
            peak_rss_mb()
        );
    });

    runtime.block_on(async {
        let mut conn = PgConnection::connect(&admin).await.expect("admin");
        for db in [&source_db, &warehouse_db] {
            let _ = conn
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
                )))
                .await;
        }
    });
    let _ = std::fs::remove_dir_all(&sandbox);
}

/// Rows shaped as in production: about 35% null notes, others 10 to 100 characters.
async fn insert_orders(conn: &mut PgConnection, rows: i64) {
    conn.execute(AssertSqlSafe(format!(
        "INSERT INTO orders (user_id, restaurant_id, amount, currency, status, created_at, notes) \
         SELECT (random() * 100000)::bigint, (random() * 5000)::bigint, round((random() * 200)::numeric, 2), \
                (ARRAY['EUR','SEK','NOK','USD'])[1 + floor(random() * 4)::int], \
                (ARRAY['delivered','cancelled','pending'])[1 + floor(random() * 3)::int], \
                now() - random() * interval '365 days', \
                CASE WHEN random() < 0.35 THEN NULL ELSE md5(random()::text) || repeat(md5(i::text), floor(random() * 3)::int) END \
         FROM generate_series(1, {rows}) AS i"
    )))
    .await
    .expect("insert orders");
}

/// How a measured load works.
#[derive(Clone, Copy)]
enum How {
    /// A full rebuild swapped in.
    Swap,
    /// A full rebuild that replaces the rows of the live table.
    ReplaceRows,
    Incremental,
}

/// One run of the pipeline's loader through the executor; its wall time.
async fn load_once(config: &Config, how: How) -> Duration {
    let mut builder = Dag::builder();
    builder.task(TaskSpec::new("load_orders", move |ctx| {
        Box::pin(async move {
            let load = ctx.load_table("orders");
            let load = match how {
                How::Swap => load,
                How::ReplaceRows => load.replace_rows(),
                How::Incremental => load.incremental_by("id"),
            };
            load.run().await.map(|_| ())
        })
    }));
    let runner = Runner {
        dag: Arc::new(builder.build().expect("graph")),
        store: open_store(config).await.expect("state"),
        config: config.clone(),
        pipeline: "bench".into(),
        pools: Default::default(),
    };
    let mut options = RunOptions::new(Date::from_ymd(2026, 11, 26).expect("date"));
    options.force = true;
    let (_tx, cancel) = watch::channel(false);
    let started = Instant::now();
    let report = runner.run(&options, &Quiet, cancel).await.expect("run");
    assert!(
        report.tasks[0].error.is_none(),
        "{:?}",
        report.tasks[0].error
    );
    started.elapsed()
}

/// `psql source -c "\copy what to stdout" | psql warehouse -c "\copy piped from pstdin"`.
fn pipe(source: &str, warehouse: &str, what: &str, format: &str, keep: Option<()>) -> Duration {
    if keep.is_none() {
        let status = Command::new("psql")
            .args([warehouse, "-qc", "TRUNCATE piped"])
            .status()
            .expect("psql");
        assert!(status.success());
    }
    let started = Instant::now();
    let mut out = Command::new("psql")
        .args([source, "-qc", &format!("\\copy {what} to stdout{format}")])
        .stdout(Stdio::piped())
        .spawn()
        .expect("psql is required for the comparison");
    let stdout = out.stdout.take().expect("pipe");
    let status = Command::new("psql")
        .args([
            warehouse,
            "-qc",
            &format!("\\copy piped from pstdin{format}"),
        ])
        .stdin(stdout)
        .status()
        .expect("psql");
    assert!(
        status.success() && out.wait().expect("psql").success(),
        "the psql pipe failed"
    );
    started.elapsed()
}

fn median(mut measure: impl FnMut() -> Duration) -> Duration {
    middle((0..RUNS).map(|_| measure()).collect())
}

fn middle(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
