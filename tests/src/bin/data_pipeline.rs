//! A pipeline whose graph comes from data at start-up: `tables.txt` in the working directory
//! names the tables to load (one per line). Each table gets a member of the `load` family, a
//! report requires the family, and a blocking check (failing when `bad-<table>` exists) holds
//! the report back. Every task appends `<task> ran` to `ran.log` (and sleeps first when
//! `sleep-<task>` says how long); with `backend-pids` in the working directory, a load first
//! asks the `warehouse` for its connection's server process, in a query that takes as many
//! seconds as the file says (none when empty), and appends `<task> pid <pid>`.

use pipeline_core::prelude::*;
use pipeline_core::{Dag, Policy, TaskSpec};

fn log(line: &str) -> Result<()> {
    Ok(pipeline_tests::append_line("ran.log", line)?)
}

/// A task that appends `<task> ran`; when `sleep-<task>` holds a number of milliseconds, it
/// first says `<task> started` and sleeps that long.
fn logging(name: &str) -> TaskSpec {
    TaskSpec::new(name, |ctx| {
        let task = ctx.task().to_string();
        Box::pin(async move {
            if let Ok(ms) = std::fs::read_to_string(format!("sleep-{task}")) {
                log(&format!("{task} started"))?;
                let ms = ms
                    .trim()
                    .parse()
                    .context("sleep-<task> holds milliseconds")?;
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }
            if let Ok(seconds) = std::fs::read_to_string("backend-pids")
                && task.starts_with("load[")
            {
                let seconds: f64 = seconds.trim().parse().unwrap_or(0.0);
                let warehouse = ctx.warehouse().await?;
                let pipeline_core::db::DbPool::Postgres(pool) = warehouse.pool() else {
                    bail!("backend-pids needs a PostgreSQL warehouse");
                };
                let pid: i32 = pipeline_core::sqlx::query_scalar(
                    "SELECT pg_backend_pid() FROM (SELECT pg_sleep($1)) AS slept",
                )
                .bind(seconds)
                .fetch_one(pool)
                .await?;
                log(&format!("{task} pid {pid}"))?;
            }
            log(&format!("{task} ran"))
        })
    })
}

fn build() -> anyhow::Result<Dag> {
    let tables = std::fs::read_to_string("tables.txt").context("cannot read tables.txt")?;
    let mut builder = Dag::builder();
    for table in tables.lines().map(str::trim).filter(|t| !t.is_empty()) {
        builder.task(logging(&format!("load[{table}]")).family("load"));
        let check = format!("{table}_is_sane");
        let bad = format!("bad-{table}");
        builder.task(
            TaskSpec::new(check, move |_ctx| {
                let bad = bad.clone();
                Box::pin(async move {
                    anyhow::ensure!(!std::path::Path::new(&bad).exists(), "{bad} exists");
                    Ok(())
                })
            })
            .checks(format!("load[{table}]"), true)
            .policy(Policy {
                critical: true,
                ..Policy::default()
            }),
        );
    }
    builder.task(logging("report").requires(["load"]));
    Ok(builder.build()?)
}

pipeline_core::main!("data-pipeline", graph = build);
