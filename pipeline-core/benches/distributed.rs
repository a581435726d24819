//! Distributed-run benchmark: the layered graph of no-op tasks of the executor benchmark, run
//! by `run --distributed` through 1, 2 and 4 workers on one PostgreSQL state store, beside the
//! same graph run by the in-process executor on the same store, measured in one run. Workers
//! run in this process, each with a state store (a connection pool) of its own, as separate
//! processes would; they claim, renew and report through PostgreSQL exactly as `daily worker`.
//!
//! Prints total time, tasks per second, the database's committed transactions per task (from
//! `pg_stat_database`: every statement outside a transaction is one; a batch of the run's
//! attempt and marker writes is one) and the tuples it fetched per task (what indexes and
//! scans handed to queries: a query whose cost grows with the run shows here), then the
//! transactions an idle worker makes per second.
//!
//! `cargo bench -p pipeline-core --bench distributed` (PostgreSQL on `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); `-- --tasks 2000` for another size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline_core::date::Date;
use pipeline_core::sqlx::{self, Connection as _, PgConnection};
use pipeline_core::testing::TaskStatus;
use pipeline_core::testing::{Config, Setting};
use pipeline_core::testing::{Quiet, RunOptions, Runner, STORE_CONNECTIONS, open_store_with};
use pipeline_core::testing::{WorkerOptions, worker};
use pipeline_core::{Dag, TaskSpec};
use tokio::sync::watch;

mod database;
// Shares the executor benchmark's layered shape, not its list of shapes.
#[allow(dead_code)]
mod shapes;

fn main() {
    let tasks: usize = shapes::flag("--tasks").map_or(10_000, |n| n.parse().expect("a number"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench(tasks));
}

async fn bench(tasks: usize) {
    let db = database::create("pipeline_bench").await;
    let (name, url) = (&db.name, db.url.clone());
    let mut conn = PgConnection::connect(&db.admin)
        .await
        .expect("PostgreSQL on DATABASE_URL");
    let mut config = Config::embedded();
    config.state = Setting {
        url: url.clone(),
        source: "the benchmark".into(),
    };
    let dag = Arc::new(build(tasks));
    println!("distributed benchmark: {tasks} no-op tasks, layered, PostgreSQL state store");
    println!(
        "{:<22} {:>9} {:>12} {:>15} {:>16}",
        "", "total", "tasks/s", "xacts per task", "tuples per task"
    );
    // Each case runs its own partition, so nothing is complete before it starts.
    let cases: [(&str, usize); 4] = [
        ("in-process executor", 0),
        ("1 worker", 1),
        ("2 workers", 2),
        ("4 workers", 4),
    ];
    for (day, (label, workers)) in (1..).zip(cases) {
        let before = counters(&mut conn, name).await;
        let elapsed = run(&config, &dag, workers, day).await;
        let after = counters(&mut conn, name).await;
        println!(
            "{label:<22} {:>7.2} s {:>12.0} {:>15.1} {:>16.1}",
            elapsed.as_secs_f64(),
            tasks as f64 / elapsed.as_secs_f64(),
            (after.0 - before.0) as f64 / tasks as f64,
            (after.1 - before.1) as f64 / tasks as f64
        );
    }
    let idle = idle_worker(&config, &dag, &mut conn, name).await;
    println!("an idle worker: {idle:.2} transactions per second");
    drop(conn);
}

fn build(tasks: usize) -> Dag {
    let mut builder = Dag::builder();
    for (i, deps) in shapes::dependencies("layered", tasks)
        .into_iter()
        .enumerate()
    {
        let spec = TaskSpec::new(format!("t{i}"), |_ctx| Box::pin(async { Ok(()) }));
        builder.task(spec.requires(deps.into_iter().map(|j| format!("t{j}"))));
    }
    builder.build().expect("a valid DAG")
}

/// A runner whose state store's pool has up to `connections` (a worker's needs more than a
/// coordinator's).
async fn runner(config: &Config, dag: &Arc<Dag>, connections: u32) -> Runner {
    Runner {
        dag: Arc::clone(dag),
        store: open_store_with(config, connections)
            .await
            .expect("the state store"),
        config: config.clone(),
        pipeline: "bench".into(),
        pools: Default::default(),
    }
}

/// One run of the graph: in process (`workers == 0`) or distributed through `workers`.
async fn run(config: &Config, dag: &Arc<Dag>, workers: usize, day: u32) -> Duration {
    let (stop, stopped) = watch::channel(false);
    let mut started_workers = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let options = WorkerOptions {
            slots: 8,
            lease: Duration::from_secs(30),
            grace: Duration::from_secs(5),
        };
        let runner = runner(config, dag, worker::STORE_CONNECTIONS).await;
        let stopped = stopped.clone();
        started_workers.spawn(worker::run(runner, options, stopped));
    }
    let coordinator = runner(config, dag, STORE_CONNECTIONS).await;
    let mut options = RunOptions::new(Date::from_ymd(2026, 11, day).expect("a date"));
    options.distributed = workers > 0;
    options.workers = if workers > 0 { 100_000 } else { 2 };
    let (_tx, cancel) = watch::channel(false);
    let started = Instant::now();
    let run = coordinator.run(&options, &Quiet, cancel);
    // A worker ends before the run only when it failed: the run would wait for it forever.
    let report = tokio::select! {
        report = run => report.expect("the run"),
        Some(ended) = started_workers.join_next() => {
            panic!("a worker stopped during the run: {:?}", ended.map(|stopped| stopped.err()))
        }
    };
    let elapsed = started.elapsed();
    assert_eq!(
        report.count(TaskStatus::Succeeded),
        dag.len(),
        "every task ran"
    );
    let _ = stop.send(true);
    while let Some(ended) = started_workers.join_next().await {
        ended
            .expect("a worker's task")
            .expect("a worker stops cleanly");
    }
    elapsed
}

/// Transactions per second of one worker with nothing to do, over ten seconds, less what the
/// database commits by itself (autovacuum, statistics) in as long without a worker.
async fn idle_worker(config: &Config, dag: &Arc<Dag>, conn: &mut PgConnection, name: &str) -> f64 {
    let window = Duration::from_secs(10);
    let before = transactions(conn, name).await;
    tokio::time::sleep(window).await;
    // Each reading is one transaction of this connection's.
    let background = transactions(conn, name).await - before - 1;
    let (stop, stopped) = watch::channel(false);
    let runner = runner(config, dag, worker::STORE_CONNECTIONS).await;
    let options = WorkerOptions {
        slots: 8,
        lease: Duration::from_secs(30),
        grace: Duration::from_secs(5),
    };
    let handle = tokio::spawn(async move { worker::run(runner, options, stopped).await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = transactions(conn, name).await;
    tokio::time::sleep(window).await;
    let used = transactions(conn, name).await - before - 1 - background;
    let _ = stop.send(true);
    let _ = handle.await;
    used.max(0) as f64 / window.as_secs_f64()
}

async fn transactions(conn: &mut PgConnection, name: &str) -> i64 {
    counters(conn, name).await.0
}

/// The database's committed transactions and fetched tuples so far.
async fn counters(conn: &mut PgConnection, name: &str) -> (i64, i64) {
    // Backends report their statistics within a second of a transaction; the reading is a
    // snapshot, which this clears.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&mut *conn)
        .await;
    sqlx::query_as("SELECT xact_commit, tup_fetched FROM pg_stat_database WHERE datname = $1")
        .bind(name)
        .fetch_one(conn)
        .await
        .expect("the database's statistics")
}
