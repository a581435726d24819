//! Scheduler benchmark on the SQLite state store: 1,000 nightly schedules (at 03:00-03:59 in ten
//! time zones) for ten seconds in which none is due, the scheduler's CPU use; then the same
//! with one schedule that ticks every second, how late each tick is recorded (by the store's
//! clock, against when it was due).
//!
//! `cargo bench -p pipeline-core --bench schedule` (about 25 s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline_core::testing::Schedule;
use pipeline_core::testing::{Clock, Scheduler, SchedulerOptions};
use pipeline_core::testing::{Config, Setting};
use pipeline_core::testing::{Runner, open_store};
use pipeline_core::{Dag, TaskSpec};
use tokio::sync::watch;

const NIGHTLY: usize = 1_000;
const MEASURE: Duration = Duration::from_secs(10);
const ZONES: &[&str] = &[
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
    "America/Sao_Paulo",
    "Africa/Johannesburg",
];

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = std::env::temp_dir().join(format!("pipeline-bench-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let mut config = Config::embedded();
    config.state = Setting {
        url: format!("sqlite://{}", dir.join("state.db").display()),
        source: "the benchmark".into(),
    };
    runtime.block_on(async {
        let mut builder = Dag::builder();
        builder.task(TaskSpec::new("noop", |_ctx| Box::pin(async { Ok(()) })));
        let runner = Runner {
            dag: Arc::new(builder.build().expect("a graph")),
            store: open_store(&config).await.expect("the state store"),
            config: config.clone(),
            pipeline: "bench".into(),
            pools: Default::default(),
        };
        let nightly: Vec<Schedule> = (0..NIGHTLY)
            .map(|i| {
                let cron = format!("{} 3 * * *", i % 60);
                Schedule::new(
                    format!("nightly_{i}"),
                    &cron,
                    ZONES[i % ZONES.len()],
                    &["noop"],
                )
                .expect("a schedule")
            })
            .collect();
        let (cpu, wall) = measure(&runner, nightly.clone()).await;
        println!(
            "scheduler, {NIGHTLY} nightly schedules, idle {:.1} s: CPU {:.1} ms ({:.3}% of a core)",
            wall.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0,
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        );
        let mut with_ticks = nightly;
        with_ticks.push(
            Schedule::new("every_second", "* * * * * *", "UTC", &["noop"]).expect("a schedule"),
        );
        let (cpu, wall) = measure(&runner, with_ticks).await;
        let ticks = runner.store.ticks("bench", 0).await.expect("the ticks");
        let mut late: Vec<i64> = ticks
            .iter()
            .filter(|tick| tick.schedule == "every_second")
            .map(|tick| tick.fired_at - tick.tick_at)
            .collect();
        late.sort_unstable();
        let at = |q: f64| late[((late.len() - 1) as f64 * q) as usize];
        println!(
            "with a per-second schedule too, {:.1} s: {} ticks run, CPU {:.2} s ({:.1}% of a \
             core); recorded after their time: median {} ms, p90 {} ms, max {} ms",
            wall.as_secs_f64(),
            late.len(),
            cpu.as_secs_f64(),
            100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
            at(0.5),
            at(0.9),
            at(1.0)
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs a scheduler of `schedules` for [`MEASURE`]: the CPU time it took, and the wall time.
async fn measure(runner: &Runner, schedules: Vec<Schedule>) -> (Duration, Duration) {
    let options = SchedulerOptions {
        lease: Duration::from_secs(30),
        workers: 1,
        clock: Clock::system(),
        distributed: false,
    };
    let scheduler = Scheduler::new(runner.clone(), schedules, options).expect("a scheduler");
    let (stop, stopped) = watch::channel(false);
    let cpu_before = cpu_time();
    let started = Instant::now();
    let handle = tokio::spawn(scheduler.run(stopped));
    tokio::time::sleep(MEASURE).await;
    let cpu = cpu_time() - cpu_before;
    let wall = started.elapsed();
    stop.send(true).expect("stop");
    handle.await.expect("joined").expect("the scheduler");
    (cpu, wall)
}

/// CPU time of this process's threads, in nanoseconds from `/proc/self/task/*/schedstat`
/// (`/proc/self/stat` counts in 10 ms ticks, too coarse for an idle scheduler).
fn cpu_time() -> Duration {
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let path = entry.expect("a thread").path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}
