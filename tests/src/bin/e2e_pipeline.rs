//! A pipeline for end-to-end tests, steered by files in its working directory:
//! - `fail-<task>`: the task fails (`fail-<task>-once`: only its first attempt fails);
//! - `error-<task>`: the task fails with the file's text as its error;
//! - `fatal-<task>`: the task fails with an error marked fatal;
//! - `sleep-<task>`: the task sleeps that many milliseconds;
//! - `gate-<task>`: the task waits (without blocking its thread) until a file `open-<task>`
//!   appears, so that a test can hold it in a state as long as it needs to look;
//! - `block-<task>` / `spin-<task>`: before its first await, the task blocks its thread (as a
//!   synchronous client does) or burns CPU (as a transform does) for that many milliseconds;
//! - `block-late-<task>`: the same blocking, after the task's sleep;
//! - `log-<task>`: the task logs the file's text;
//! - `warn-<task>`: the task succeeds with the file's text as a warning (`ctx.warn`);
//! - every attempt appends `<task> started` and `<task> done` lines to `ran.log`;
//! - the `narrow` family shares a pool of one slot.

use std::time::{Duration, Instant};

use pipeline_core::prelude::*;

fn log(line: &str) -> Result<()> {
    Ok(pipeline_tests::append_line("ran.log", line)?)
}

/// The milliseconds in `file`, if it exists.
fn millis(file: &str) -> Result<Option<Duration>> {
    match std::fs::read_to_string(file) {
        Ok(ms) => Ok(Some(Duration::from_millis(
            ms.trim()
                .parse()
                .with_context(|| format!("{file} holds milliseconds"))?,
        ))),
        Err(_) => Ok(None),
    }
}

async fn behave(ctx: &Ctx) -> Result<()> {
    let task = ctx.task();
    log(&format!("{task} started"))?;
    if let Ok(text) = std::fs::read_to_string(format!("log-{task}")) {
        pipeline_core::tracing::info!("{}", text.trim());
    }
    if let Some(duration) = millis(&format!("block-{task}"))? {
        std::thread::sleep(duration);
    }
    if let Some(duration) = millis(&format!("spin-{task}"))? {
        let until = Instant::now() + duration;
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }
    if let Some(duration) = millis(&format!("sleep-{task}"))? {
        tokio::time::sleep(duration).await;
    }
    if std::path::Path::new(&format!("gate-{task}")).exists() {
        while !std::path::Path::new(&format!("open-{task}")).exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if let Some(duration) = millis(&format!("block-late-{task}"))? {
        std::thread::sleep(duration);
    }
    if let Ok(text) = std::fs::read_to_string(format!("warn-{task}")) {
        ctx.warn(text.trim());
    }
    if let Ok(text) = std::fs::read_to_string(format!("error-{task}")) {
        bail!("{}", text.trim());
    }
    if std::path::Path::new(&format!("fail-{task}")).exists() {
        bail!("{task} failed on purpose");
    }
    if std::path::Path::new(&format!("fatal-{task}")).exists() {
        return Err(anyhow!("{task} cannot go on")).fatal();
    }
    if ctx.attempt() == 1 && std::path::Path::new(&format!("fail-{task}-once")).exists() {
        bail!("{task} failed on purpose, once");
    }
    log(&format!("{task} done"))
}

/// Extracts.
#[task]
async fn extract(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// Transforms what was extracted.
#[task(requires = [Extract], retries = 1, retry_delay = "100ms")]
async fn transform(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// Takes its time when asked to.
#[task]
async fn slow(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// Reports on everything.
#[task(requires = [Transform, Slow])]
async fn report(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// Nice to have: nothing needs it.
#[task(critical = false, retries = 1, retry_delay = "50ms")]
async fn enrich(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// A feed that may fail (non-critical)...
#[task(critical = false)]
async fn optional_feed(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// ...that a critical task requires anyway: the dependency does not mean what it says.
#[task(requires = [OptionalFeed])]
async fn publish(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// Retries a lot, so its retries can be observed.
#[task(retries = 3, retry_delay = "100ms")]
async fn validate(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// May take one second per attempt.
#[task(timeout = "1s")]
async fn bounded(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// Writes an event into the warehouse, `age-stamp` seconds old (default: now).
#[task]
async fn stamp(ctx: &Ctx) -> Result<()> {
    let age: u64 = std::fs::read_to_string("age-stamp")
        .map_or(Ok(0), |s| s.trim().parse())
        .context("age-stamp holds seconds")?;
    let sql = format!(
        "CREATE TABLE IF NOT EXISTS events (at TEXT NOT NULL);
         INSERT INTO events VALUES (strftime('%Y-%m-%d %H:%M:%S', 'now', '-{age} seconds'));"
    );
    ctx.warehouse().await?.execute_script(&sql).await
}

/// Events must be at most an hour old; nothing is published from stale data.
#[check(on = Stamp, severity = "error", blocking)]
async fn events_are_fresh(ctx: &Ctx) -> Result<Check> {
    ctx.warehouse()
        .await?
        .freshness("events", "at", Duration::from_secs(3600))
        .await
}

/// A gentle check: there are events at all.
#[check(on = Stamp)]
async fn events_exist(ctx: &Ctx) -> Result<Check> {
    ctx.warehouse().await?.row_count_at_least("events", 1).await
}

/// Uses the events.
#[task(requires = [Stamp])]
async fn publish_events(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

pool!(
    /// A source that takes one reader at a time.
    pub NarrowSource, 1
);

/// Sources read one at a time, whatever runs them.
const NARROW_SOURCES: &[&str] = &["a", "b", "c"];

/// Reads a narrow source.
#[task(for_each = NARROW_SOURCES, pool = NarrowSource)]
async fn narrow(ctx: &Ctx, _source: &str) -> Result<()> {
    behave(ctx).await
}

/// Collects figures.
#[task]
async fn collect(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// A gentle, blocking check: fails when `insane-collect` exists.
#[check(on = Collect, blocking)]
async fn collect_looks_sane(_ctx: &Ctx) -> Result<Check> {
    let sane = !std::path::Path::new("insane-collect").exists();
    Ok(Check::expect(sane, "the collected figures look sane"))
}

/// Summarizes the figures.
#[task(requires = [Collect])]
async fn summarize(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

/// Presents the figures.
#[task(requires = [Collect])]
async fn present(ctx: &Ctx) -> Result<()> {
    behave(ctx).await
}

schedule! {
    /// Extracts every second, for the end-to-end test of `daily schedule`.
    every_second,
    cron = "* * * * * *",
    targets = [Extract],
    catchup = "none",
}

pipeline_core::main!();
