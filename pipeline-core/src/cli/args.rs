//! What the command line says: the commands and flags clap reads, and the run options the
//! flags ask for (the one path from flags to [`RunOptions`]).

use clap::{Args, Parser, Subcommand};

use crate::dag::{GraphFormat, LineageFormat};
use crate::date::Partition;
use crate::run::RunOptions;

/// How long a scheduler's lease lasts unless `--lease-secs` says otherwise (`daily dev`'s).
pub(super) const SCHEDULER_LEASE_SECS: u64 = 30;

#[derive(Debug, Parser)]
#[command(about = "Run and inspect this pipeline. With no command: `run`, every task, today.")]
#[command(args_conflicts_with_subcommands = true, disable_version_flag = true)]
pub(super) struct Cli {
    /// Print the version and the graph's fingerprint (changes when a task, a dependency or a
    /// check is added, removed or renamed).
    #[arg(long, short = 'V')]
    pub(super) version: bool,
    #[command(subcommand)]
    pub(super) command: Option<Command>,
    #[command(flatten)]
    pub(super) run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Run tasks (all when none are named) with everything they depend on.
    Run(RunArgs),
    /// Try tasks out, as `airflow tasks test` does: each named task runs once in test mode
    /// (writes go to the test schema), even if complete, with its dependencies taken as done.
    /// The same as `run --only --test --force TASK..`.
    Test {
        /// The tasks (or families) to run.
        #[arg(required = true)]
        tasks: Vec<String>,
        /// The partition: a day YYYY-MM-DD, or an hour YYYY-MM-DDTHH; default: today (UTC).
        #[arg(long, visible_alias = "partition")]
        date: Option<Partition>,
        /// Print the summary as one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run a range of partitions, one after the other (days, or hours with
    /// `--from 2026-11-26T00 --to 2026-11-26T05`); stops at the first that fails.
    Backfill {
        /// First partition: a day YYYY-MM-DD, or an hour YYYY-MM-DDTHH.
        #[arg(long)]
        from: Partition,
        /// Last partition (included), of the same kind as --from.
        #[arg(long)]
        to: Partition,
        #[command(flatten)]
        flags: RunFlags,
    },
    /// Show each task's state for a partition: complete, failed, never run.
    Status {
        /// A day YYYY-MM-DD or an hour YYYY-MM-DDTHH; default: today (UTC).
        #[arg(long, visible_alias = "partition")]
        date: Option<Partition>,
        /// The test-mode state instead of production.
        #[arg(long)]
        test: bool,
    },
    /// List recent runs.
    History {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// List the tasks: name, dependencies, description.
    List,
    /// Print the task graph for Graphviz (dot) or Mermaid.
    Graph {
        /// `dot` or `mermaid`.
        #[arg(long, default_value = "dot")]
        format: GraphFormat,
    },
    /// The tables the tasks read and write: who writes each, who reads it, which are sources.
    Lineage {
        /// `text`, `dot`, `mermaid` or `json`.
        #[arg(long, default_value = "text")]
        format: LineageFormat,
    },
    /// List the schedules: cron, time zone, targets, deadline, the next five ticks (local and
    /// UTC, with the partition each runs: the day before the tick's local date, or for an
    /// hourly schedule the local hour that just ended) and the last.
    Schedules {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
        /// Print one crontab line per schedule instead, for teams that keep cron.
        #[arg(long, conflicts_with = "json")]
        crontab: bool,
    },
    /// Claim and run the attempts of distributed runs (`run --distributed`), in the foreground,
    /// until stopped: SIGTERM stops claiming, lets running attempts end within the grace
    /// period, and hands back the rest. Needs a PostgreSQL state store.
    Worker {
        /// Attempts it runs at once.
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
        slots: u16,
        /// Seconds an attempt stays this worker's without a renewal: another worker takes it
        /// over this long after this one dies.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        lease_secs: u64,
        /// Seconds running attempts get to end after SIGTERM before they are handed back.
        #[arg(long, default_value_t = 30)]
        grace_secs: u64,
        /// Serve `/metrics` (Prometheus), `/healthz` and `/readyz` on this address, e.g.
        /// 0.0.0.0:9464.
        #[arg(long)]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Print one attempt's log: what the task logged (its `tracing` events, at the configured
    /// level), kept with the attempt; by default its latest attempt for the partition.
    Logs {
        /// The task (a family member by its full name: `load[orders]`).
        task: String,
        /// A day YYYY-MM-DD or an hour YYYY-MM-DDTHH; default: today (UTC).
        #[arg(long, visible_alias = "partition")]
        date: Option<Partition>,
        /// That attempt (1 for the first), of the run below or else of the latest run.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        attempt: Option<u32>,
        /// An attempt of that run (`daily history` lists them).
        #[arg(long)]
        run: Option<i64>,
        /// The test-mode attempts instead of production.
        #[arg(long)]
        test: bool,
        /// Keep printing a running attempt's lines as they are written (each second), until it
        /// ends; while a run of the partition is under way, wait for the task to start.
        #[arg(long)]
        follow: bool,
    },
    /// Ask a running run to stop, from anywhere: its running tasks are stopped and recorded
    /// cancelled within its lock's heartbeat (10 s), on workers within a renewal more.
    Cancel {
        /// The run's id (`daily history` lists them).
        run_id: i64,
    },
    /// List the live workers: host, pid, started, last heartbeat, the tasks they run now.
    Workers {
        /// Print one JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Fire the schedules' runs at their ticks, in the foreground, until stopped. Several may
    /// run against one state store: one is active, the others stand by.
    Schedule {
        /// Seconds the scheduler's lease lasts: a stand-by takes over this long after the
        /// active scheduler dies.
        #[arg(long, default_value_t = SCHEDULER_LEASE_SECS, value_parser = clap::value_parser!(u64).range(1..))]
        lease_secs: u64,
        /// How many tasks each run may run at once; default: the number of CPUs.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        workers: Option<u16>,
        /// Queue each tick's run for `daily worker` processes instead of running it here (a
        /// worker coordinates it): stopping or replacing the scheduler leaves the run alone.
        /// Needs a PostgreSQL state store.
        #[arg(long, conflicts_with = "workers")]
        distributed: bool,
        /// Serve `/metrics` (Prometheus), `/healthz` and `/readyz` on this address, e.g.
        /// 0.0.0.0:9464.
        #[arg(long)]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Local development in one foreground process: the schedules fire and their runs run
    /// here, beside the web view (with reruns and cancellation); Ctrl-C stops all of it.
    Dev {
        /// Where the web view listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// How many tasks each run may run at once; default: the number of CPUs.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        workers: Option<u16>,
    },
    /// Serve a web view of runs, the graph and each task's log, with JSON endpoints for the
    /// same data (`/api`), until stopped. Read-only unless `--allow-actions`.
    Serve {
        /// Where to listen. Anything but loopback needs PIPELINE_SERVE_TOKEN: every request
        /// must then carry it.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Offer reruns and cancellation, to requests that carry the token (PIPELINE_SERVE_TOKEN,
        /// or one made and printed at start-up).
        #[arg(long)]
        allow_actions: bool,
    },
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    /// The partition to run: a day YYYY-MM-DD, or an hour YYYY-MM-DDTHH (05:00 to 06:00 for
    /// T05); default: today (UTC).
    #[arg(long, visible_alias = "partition")]
    pub(super) date: Option<Partition>,
    #[command(flatten)]
    pub(super) flags: RunFlags,
}

#[derive(Debug, Args)]
pub(super) struct RunFlags {
    /// Tasks (or families) to run, with their dependencies; default: all.
    pub(super) tasks: Vec<String>,
    /// Unit mode: run only the named tasks, treating their dependencies as done.
    #[arg(long, requires = "tasks")]
    pub(super) only: bool,
    /// Test mode: run everything, but write only to the test schema (or test files).
    #[arg(long)]
    pub(super) test: bool,
    /// Run the named tasks (all when none are named) even if already complete.
    #[arg(long)]
    pub(super) force: bool,
    /// How many tasks may run at once; default: the number of CPUs.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub(super) workers: Option<u16>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub(super) json: bool,
    /// Wait for a concurrent run of the same date instead of refusing.
    #[arg(long)]
    pub(super) wait: bool,
    /// Start no new task after the first critical failure.
    #[arg(long)]
    pub(super) fail_fast: bool,
    /// Queue the attempts in the PostgreSQL state store for `daily worker` processes (on any
    /// number of hosts) instead of running them here; this process decides and reports as
    /// usual, and must run until the run ends.
    #[arg(long)]
    pub(super) distributed: bool,
    /// With --distributed: queue the run and return at once; a worker coordinates it (and
    /// another takes it on if that one is lost). `daily history` shows it.
    #[arg(long, requires = "distributed")]
    pub(super) detach: bool,
}

/// The run options the flags ask for, for one partition.
pub(super) fn options(flags: &RunFlags, partition: Partition) -> RunOptions {
    let mut options = RunOptions::new(partition);
    options.targets = flags.tasks.clone();
    options.only = flags.only;
    options.test = flags.test;
    options.force = flags.force;
    options.wait = flags.wait;
    options.fail_fast = flags.fail_fast;
    if flags.distributed {
        options = options.distributed();
    }
    if let Some(workers) = flags.workers {
        options.workers = usize::from(workers);
    }
    options
}
