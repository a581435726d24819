//! Scale benchmark: whole processes of a pipeline binary, as an operator runs them, against
//! the targets of the scale work. This file is both the benchmark and the pipeline: run with
//! `SCALE_BENCH_GRAPH=<shape>:<tasks>` in its environment it is a pipeline of that many no-op
//! tasks behind the same command line as `daily` (`run --json`, `worker`, ...), and without it
//! it measures itself as one. `SCALE_BENCH_TASK_MS=<ms>` beside it makes each task sleep that
//! long (by hand only: no row uses it).
//!
//! Rows (each the best and the median of `--samples` runs, 5 by default):
//! - 100,000 no-op tasks, `run --json`, SQLite state: wall time and peak RSS of the process;
//! - a re-run of 5,000 complete tasks, whole process;
//! - 5,000 layered tasks, whole process;
//! - 10,000 layered tasks through `run --distributed` and 4 `worker` processes of 8 slots on a
//!   PostgreSQL state store (`DATABASE_URL`, default the local server): tasks per second, and
//!   the tuples PostgreSQL fetched per task (`pg_stat_database.tup_fetched`), beside the
//!   single-process run on the same store.
//!
//! `cargo bench -p pipeline-core --bench scale [-- --samples N] [-- --only ROW]` where ROW is
//! `100k`, `rerun`, `layered` or `distributed`; `-- --workers N --slots M` runs the
//! distributed row with other workers than the targets' 4 of 8 slots (their targets are not
//! shown then).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use pipeline_core::sqlx::{self, Connection as _, PgConnection};
use pipeline_core::{Dag, TaskSpec};

mod database;
// Shares the executor benchmark's shapes, not its list of them.
#[allow(dead_code)]
mod shapes;

const GRAPH: &str = "SCALE_BENCH_GRAPH";

fn main() -> std::process::ExitCode {
    if std::env::var_os(GRAPH).is_some() {
        return pipeline_core::cli::main("bench", env!("CARGO_PKG_VERSION"), graph());
    }
    let samples: usize = shapes::flag("--samples").map_or(5, |n| n.parse().expect("a number"));
    let only = shapes::flag("--only");
    let wanted = |row: &str| only.as_deref().is_none_or(|o| o == row);
    println!("scale benchmark: whole processes, best and median of {samples} runs");
    println!(
        "{:<46} {:>12} {:>12} {:>14}",
        "row", "best", "median", "target"
    );
    if wanted("100k") {
        hundred_thousand(samples);
    }
    if wanted("rerun") {
        rerun(samples);
    }
    if wanted("layered") {
        layered(samples);
    }
    if wanted("distributed") {
        distributed(samples);
    }
    for name in ["out", "err-run", "err-worker"] {
        let _ = std::fs::remove_file(output_path(name));
    }
    std::process::ExitCode::SUCCESS
}

fn graph() -> pipeline_core::cli::Graph {
    pipeline_core::cli::Graph::Built(|| {
        let spec = std::env::var(GRAPH).unwrap_or_default();
        let (shape, tasks) = spec
            .split_once(':')
            .and_then(|(shape, tasks)| Some((shape.to_string(), tasks.parse::<usize>().ok()?)))
            .ok_or_else(|| anyhow::anyhow!("{GRAPH} takes <shape>:<tasks>, e.g. layered:5000"))?;
        let sleeping = task_sleep().is_some();
        let mut builder = Dag::builder();
        for (i, deps) in shapes::dependencies(&shape, tasks).into_iter().enumerate() {
            let spec = if sleeping {
                TaskSpec::new(format!("t{i}"), |_ctx| {
                    Box::pin(async {
                        tokio::time::sleep(task_sleep().unwrap_or_default()).await;
                        Ok(())
                    })
                })
            } else {
                TaskSpec::new(format!("t{i}"), |_ctx| Box::pin(async { Ok(()) }))
            };
            builder.task(spec.requires(deps.into_iter().map(|j| format!("t{j}"))));
        }
        Ok(builder.build()?)
    })
}

/// How long each task of the pipeline sleeps, from `SCALE_BENCH_TASK_MS` (unset or empty: no-op
/// tasks, as every row measures): for trying workers with long tasks by hand, many running at once.
fn task_sleep() -> Option<Duration> {
    static SLEEP: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    *SLEEP.get_or_init(|| {
        let ms = std::env::var("SCALE_BENCH_TASK_MS")
            .ok()
            .filter(|ms| !ms.is_empty())?;
        Some(Duration::from_millis(
            ms.parse().expect("SCALE_BENCH_TASK_MS takes milliseconds"),
        ))
    })
}

/// Where the pipeline processes write their output and log, as an operator's redirections.
fn output_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pipeline-scale-{}.{name}", std::process::id()))
}

/// A command of this binary as the pipeline of `graph`, its state in `state`: its report goes
/// to a file, its log (the default level, not a terminal) to another.
fn pipeline(graph: &str, state: &str, args: &[&str]) -> Command {
    let file = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output_path(name))
            .expect("an output file")
    };
    let mut command = Command::new(std::env::current_exe().expect("own path"));
    command
        .args(args)
        .env(GRAPH, graph)
        .env("PIPELINE_STATE_URL", state)
        .stdin(Stdio::null())
        .stdout(file("out"))
        .stderr(file(&format!("err-{}", args[0])));
    command
}

/// Waits for `child`, failing the benchmark unless it succeeded; its peak RSS in MB.
fn finish(child: Child, what: &str) -> u64 {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills; the pid is our own child's.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "{what}: wait4 failed");
    succeeded(status, what);
    usage.ru_maxrss as u64 / 1024
}

/// Waits for `child`: its wait status (as `waitpid` gives it, for [`succeeded`]).
fn wait_status(child: Child) -> libc::c_int {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: waits for our own child, which nothing else waits for.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid failed");
    status
}

/// Fails the benchmark unless a child's wait `status` says it exited with 0.
fn succeeded(status: libc::c_int, what: &str) {
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{what} failed ({status}); its log is in {}",
        output_path("err-*").display()
    );
}

/// The distributed row's worker processes, each waited for by a thread of its own. A worker
/// that exits before it is stopped (it crashed, or refused to start) kills the run under way,
/// so that the benchmark fails with its log instead of waiting for workers that are gone;
/// dropped without [`Workers::stop`] (the benchmark failed), they are killed.
struct Workers {
    pids: Vec<libc::pid_t>,
    watchers: Vec<std::thread::JoinHandle<libc::c_int>>,
    /// The run under way, killed when a worker exits early (0: none).
    run: Arc<AtomicI32>,
    stopping: Arc<AtomicBool>,
    exited_early: Arc<AtomicBool>,
}

impl Workers {
    fn start(count: usize, slots: usize, graph: &str, state: &str) -> Workers {
        let run = Arc::new(AtomicI32::new(0));
        let stopping = Arc::new(AtomicBool::new(false));
        let exited_early = Arc::new(AtomicBool::new(false));
        let mut workers = Workers {
            pids: Vec::new(),
            watchers: Vec::new(),
            run: Arc::clone(&run),
            stopping: Arc::clone(&stopping),
            exited_early: Arc::clone(&exited_early),
        };
        let slots = slots.to_string();
        for _ in 0..count {
            let worker = pipeline(graph, state, &["worker", "--slots", &slots])
                .spawn()
                .expect("start a worker");
            let pid = worker.id() as libc::pid_t;
            let (run, stopping, exited_early) = (
                Arc::clone(&run),
                Arc::clone(&stopping),
                Arc::clone(&exited_early),
            );
            workers.pids.push(pid);
            workers.watchers.push(std::thread::spawn(move || {
                let status = wait_status(worker);
                if !stopping.load(Ordering::SeqCst) {
                    exited_early.store(true, Ordering::SeqCst);
                    let run = run.load(Ordering::SeqCst);
                    if run != 0 {
                        // SAFETY: a signal to our own child, not yet waited for.
                        unsafe { libc::kill(run, libc::SIGKILL) };
                    }
                }
                status
            }));
        }
        workers
    }

    /// Runs `command` to its end while the workers run: its wall time. Fails the benchmark if
    /// a worker exited meanwhile, or the run failed.
    fn timed(&self, mut command: Command, what: &str) -> Duration {
        let started = Instant::now();
        let child = command.spawn().expect("start the pipeline");
        self.run.store(child.id() as libc::pid_t, Ordering::SeqCst);
        // A worker that exited before the run's pid was known could not kill it.
        if self.exited_early.load(Ordering::SeqCst) {
            // SAFETY: a signal to our own child, not yet waited for.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
        }
        let status = wait_status(child);
        self.run.store(0, Ordering::SeqCst);
        let elapsed = started.elapsed();
        assert!(
            !self.exited_early.load(Ordering::SeqCst),
            "a worker exited during the {what}; its log is in {}",
            output_path("err-worker").display()
        );
        succeeded(status, what);
        elapsed
    }

    /// SIGTERM: each worker drains and stops; fails the benchmark unless each exited with 0.
    fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.signal(libc::SIGTERM);
        for watcher in std::mem::take(&mut self.watchers) {
            succeeded(watcher.join().expect("a worker's watcher"), "a worker");
        }
    }

    fn signal(&self, signal: libc::c_int) {
        for (pid, watcher) in self.pids.iter().zip(&self.watchers) {
            if !watcher.is_finished() {
                // SAFETY: a signal to our own child, not yet waited for.
                unsafe { libc::kill(*pid, signal) };
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.signal(libc::SIGKILL);
        for watcher in std::mem::take(&mut self.watchers) {
            let _ = watcher.join();
        }
    }
}

/// Runs `command` to its end: wall time and peak RSS in MB.
fn timed(mut command: Command, what: &str) -> (Duration, u64) {
    let started = Instant::now();
    let child = command.spawn().expect("start the pipeline");
    let rss = finish(child, what);
    (started.elapsed(), rss)
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("pipeline-scale-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }

    fn sqlite(&self, name: &str) -> String {
        let path: &Path = &self.0;
        format!("sqlite://{}", path.join(name).display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Best (lowest) and median of `values` (sorted in place).
fn best_median(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (values[0], values[values.len() / 2])
}

/// Best (highest) and median of rates (sorted in place).
fn best_median_rate(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(|a, b| b.total_cmp(a));
    (values[0], values[values.len() / 2])
}

fn row(label: &str, best: String, median: String, target: &str) {
    println!("{label:<46} {best:>12} {median:>12} {target:>14}");
}

fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn hundred_thousand(samples: usize) {
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for sample in 0..samples {
        let dir = TempDir::new("100k");
        let (elapsed, peak) = timed(
            pipeline(
                "layered:100000",
                &dir.sqlite(&format!("state{sample}.db")),
                &["run", "--json"],
            ),
            "100k run",
        );
        times.push(elapsed.as_secs_f64());
        rss.push(peak as f64);
    }
    let (best, median) = best_median(&mut times);
    row(
        "100,000 no-op tasks, run --json, SQLite",
        seconds(best),
        seconds(median),
        "< 1 s",
    );
    let (best, median) = best_median(&mut rss);
    row(
        "  peak RSS",
        format!("{best:.0} MB"),
        format!("{median:.0} MB"),
        "< 64 MB",
    );
}

fn rerun(samples: usize) {
    let dir = TempDir::new("rerun");
    let state = dir.sqlite("state.db");
    timed(pipeline("layered:5000", &state, &["run"]), "first run");
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            timed(pipeline("layered:5000", &state, &["run"]), "re-run")
                .0
                .as_secs_f64()
        })
        .collect();
    let (best, median) = best_median(&mut times);
    row(
        "re-run of 5,000 complete tasks",
        seconds(best),
        seconds(median),
        "< 20 ms",
    );
}

fn layered(samples: usize) {
    let mut times = Vec::new();
    for sample in 0..samples {
        let dir = TempDir::new("layered");
        let state = dir.sqlite(&format!("state{sample}.db"));
        times.push(
            timed(pipeline("layered:5000", &state, &["run"]), "layered run")
                .0
                .as_secs_f64(),
        );
    }
    let (best, median) = best_median(&mut times);
    row(
        "5,000 layered tasks",
        seconds(best),
        seconds(median),
        "<= 120 ms",
    );
}

/// Tuples fetched in the benchmark's database so far.
fn tuples_fetched(db: &database::BenchDatabase, runtime: &tokio::runtime::Runtime) -> i64 {
    runtime.block_on(async {
        // Backends report their statistics within a second of a transaction.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut conn = PgConnection::connect(&db.admin).await.expect("PostgreSQL");
        let (tuples,): (i64,) =
            sqlx::query_as("SELECT tup_fetched FROM pg_stat_database WHERE datname = $1")
                .bind(&db.name)
                .fetch_one(&mut conn)
                .await
                .expect("the database's statistics");
        tuples
    })
}

fn distributed(samples: usize) {
    const TASKS: usize = 10_000;
    const GRAPH_10K: &str = "layered:10000";
    // At least one: a distributed run without workers would wait forever.
    let number = |name: &str, default: usize| {
        let n = shapes::flag(name).map_or(default, |n| n.parse().expect("a number"));
        assert!(n >= 1, "{name} takes a number of at least 1");
        n
    };
    let (workers_count, slots) = (number("--workers", 4), number("--slots", 8));
    // The targets are for 4 workers of 8 slots.
    let target = |target: &'static str| {
        if (workers_count, slots) == (4, 8) {
            target
        } else {
            ""
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let db = runtime.block_on(database::create("pipeline_scale"));
    // Migrations and the pipeline's first registration happen once, outside the timings.
    timed(
        pipeline("layered:100", &db.url, &["run", "--date", "2026-01-01"]),
        "a warm-up run",
    );
    let mut single = Vec::new();
    let mut rates = Vec::new();
    let mut tuples = Vec::new();
    let mut day = 1;
    for _ in 0..samples {
        day += 1;
        let date = format!("2026-02-{day:02}");
        let (elapsed, _) = timed(
            pipeline(GRAPH_10K, &db.url, &["run", "--date", &date]),
            "single-process run",
        );
        single.push(TASKS as f64 / elapsed.as_secs_f64());

        let workers = Workers::start(workers_count, slots, GRAPH_10K, &db.url);
        std::thread::sleep(Duration::from_secs(1));
        let before = tuples_fetched(&db, &runtime);
        let date = format!("2026-03-{day:02}");
        let elapsed = workers.timed(
            pipeline(
                GRAPH_10K,
                &db.url,
                &["run", "--distributed", "--date", &date],
            ),
            "distributed run",
        );
        let after = tuples_fetched(&db, &runtime);
        workers.stop();
        rates.push(TASKS as f64 / elapsed.as_secs_f64());
        tuples.push((after - before) as f64 / TASKS as f64);
    }
    drop(db);
    let (best, median) = best_median_rate(&mut single);
    row(
        "10,000 tasks, single process, PG state",
        format!("{best:.0}/s"),
        format!("{median:.0}/s"),
        "",
    );
    let single_median = median;
    let (best, median) = best_median_rate(&mut rates);
    row(
        &format!(
            "10,000 tasks, {workers_count} worker process{} x {slots} slots",
            if workers_count == 1 { "" } else { "es" }
        ),
        format!("{best:.0}/s"),
        format!("{median:.0}/s"),
        target(">= 4,000/s"),
    );
    row(
        "  share of the single-process rate",
        format!("{:.2}x", best / single_median),
        format!("{:.2}x", median / single_median),
        target(">= 0.25x"),
    );
    let (best, median) = best_median(&mut tuples);
    row(
        "  tuples fetched per task",
        format!("{best:.1}"),
        format!("{median:.1}"),
        target("<= 10"),
    );
}
