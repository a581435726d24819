//! Executor benchmark: synthetic no-op DAGs built with the runtime builder, run through the real
//! executor with the SQLite state store (durable markers and attempts), then run again when
//! everything is complete.
//!
//! `cargo bench -p pipeline-core --bench executor` runs every case, each in a child process so
//! that its peak RSS is its own. `-- --case layered --tasks 5000` runs one case.
//!
//! The CPU-bound case runs independent tasks that each burn a fixed amount of CPU before any
//! await, with one worker and then two: on two cores, two workers must take at most 0.6x the
//! time of one (task code runs on threads of its own, never on the scheduler's).

use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use pipeline_core::date::Date;
use pipeline_core::testing::{Config, Setting};
use pipeline_core::testing::{Quiet, RunOptions, Runner, open_store};
use pipeline_core::{Dag, TaskSpec};
use tokio::sync::watch;

mod shapes;

use shapes::SHAPES;

const SIZES: &[usize] = &[1_000, 2_000, 5_000, 10_000, 100_000];

fn main() {
    if let (Some(shape), Some(tasks)) = (shapes::flag("--case"), shapes::flag("--tasks")) {
        let tasks: usize = tasks.parse().expect("--tasks takes a number");
        run_case(&shape, tasks);
        return;
    }
    cpu_bound(16, std::time::Duration::from_millis(50));
    println!(
        "executor benchmark: no-op tasks, SQLite state store, {} workers",
        workers()
    );
    println!(
        "{:<8} {:>7} {:>9} {:>10} {:>11} {:>10} {:>10}",
        "shape", "tasks", "build", "run", "per task", "re-run", "peak RSS"
    );
    let me = std::env::current_exe().expect("own path");
    for shape in SHAPES {
        for &tasks in SIZES {
            let output = Command::new(&me)
                .args(["--case", shape, "--tasks", &tasks.to_string()])
                .output()
                .expect("run a case");
            assert!(
                output.status.success(),
                "{shape} {tasks}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            print!("{}", String::from_utf8_lossy(&output.stdout));
        }
    }
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Runs `tasks` independent tasks that each spin for `work`, with 1 and 2 workers.
fn cpu_bound(tasks: usize, work: std::time::Duration) {
    let spin = move |i: usize| {
        TaskSpec::new(format!("spin{i}"), move |_ctx| {
            Box::pin(async move {
                let until = Instant::now() + work;
                let mut x: u64 = 1;
                while Instant::now() < until {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                }
                std::hint::black_box(x);
                Ok(())
            })
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut times = Vec::new();
    for workers in [1, 2] {
        let mut builder = Dag::builder();
        for i in 0..tasks {
            builder.task(spin(i));
        }
        let dag = Arc::new(builder.build().expect("a valid DAG"));
        let dir = std::env::temp_dir().join(format!("pipeline-bench-cpu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let mut config = Config::embedded();
        config.state = Setting {
            url: format!(
                "sqlite://{}",
                dir.join(format!("state{workers}.db")).display()
            ),
            source: "the benchmark".into(),
        };
        let elapsed = runtime.block_on(async {
            let runner = Runner {
                dag,
                store: open_store(&config).await.expect("the state store"),
                config: config.clone(),
                pipeline: "bench".into(),
                pools: Default::default(),
            };
            let mut options = RunOptions::new(Date::from_ymd(2026, 11, 26).expect("a date"));
            options.workers = workers;
            let (_tx, cancel) = watch::channel(false);
            let started = Instant::now();
            runner.run(&options, &Quiet, cancel).await.expect("the run");
            started.elapsed()
        });
        let _ = std::fs::remove_dir_all(&dir);
        times.push(elapsed);
    }
    println!(
        "CPU-bound: {tasks} tasks of {} ms each: 1 worker {:.0} ms, 2 workers {:.0} ms ({:.2}x)\n",
        work.as_millis(),
        times[0].as_secs_f64() * 1000.0,
        times[1].as_secs_f64() * 1000.0,
        times[1].as_secs_f64() / times[0].as_secs_f64()
    );
}

fn build(shape: &str, tasks: usize) -> Dag {
    let mut builder = Dag::builder();
    for (i, deps) in shapes::dependencies(shape, tasks).into_iter().enumerate() {
        let spec = TaskSpec::new(format!("t{i}"), |_ctx| Box::pin(async { Ok(()) }));
        builder.task(spec.requires(deps.into_iter().map(|j| format!("t{j}"))));
    }
    builder.build().expect("a valid DAG")
}

fn run_case(shape: &str, tasks: usize) {
    let dir = std::env::temp_dir().join(format!(
        "pipeline-bench-{}-{shape}-{tasks}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let mut config = Config::embedded();
    config.state = Setting {
        url: format!("sqlite://{}", dir.join("state.db").display()),
        source: "the benchmark".into(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let started = Instant::now();
    let dag = Arc::new(build(shape, tasks));
    let build_time = started.elapsed();
    let (run_time, rerun_time) = runtime.block_on(async {
        let store = open_store(&config).await.expect("the state store");
        let runner = Runner {
            dag,
            store,
            config: config.clone(),
            pipeline: "bench".into(),
            pools: Default::default(),
        };
        let mut options = RunOptions::new(Date::from_ymd(2026, 11, 26).expect("a date"));
        options.workers = workers();
        let (_tx, cancel) = watch::channel(false);
        let started = Instant::now();
        let report = runner
            .run(&options, &Quiet, cancel.clone())
            .await
            .expect("the run");
        let run_time = started.elapsed();
        assert_eq!(
            report.count(pipeline_core::testing::TaskStatus::Succeeded),
            tasks
        );
        let started = Instant::now();
        let report = runner
            .run(&options, &Quiet, cancel)
            .await
            .expect("the re-run");
        let rerun_time = started.elapsed();
        assert_eq!(
            report.count(pipeline_core::testing::TaskStatus::Skipped),
            tasks
        );
        (run_time, rerun_time)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let ms = |d: std::time::Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    println!(
        "{shape:<8} {tasks:>7} {:>9} {:>10} {:>8.1} µs {:>10} {:>7} MB",
        ms(build_time),
        ms(run_time),
        run_time.as_secs_f64() * 1e6 / tasks as f64,
        ms(rerun_time),
        peak_rss_mb()
    );
}

/// Peak resident memory of this process, from /proc (0 where unavailable).
fn peak_rss_mb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}
