//! The command line of a pipeline binary. A binary's `main` is `pipeline_core::main!();`:
//!
//! ```text
//! daily [run] [TASK..] [--date P] [--only] [--test] [--force] [--workers N] [--json] [--wait]
//!       [--fail-fast]
//! daily backfill --from P --to P [TASK..] [...]
//! daily status [--date P] [--test]      daily history [--limit N]
//! daily list                            daily graph [--format dot|mermaid]
//! ```
//!
//! Exit codes: 0 when every critical task succeeded or was already complete, 1 when a run
//! failed (or another run holds the partition), 2 for usage or configuration errors, 130 when
//! cancelled by a signal.

mod logging;
pub(crate) mod output;
mod progress;
pub(crate) mod schedules;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;

use crate::config::Config;
use crate::dag::{Dag, GraphFormat};
use crate::date::{Date, Partition};
use crate::pool::Pools;
use crate::run::{RunError, RunOptions, RunReport, Runner, open_store};
use crate::schedule::{Scheduler, SchedulerOptions};
use crate::state::CancelRequest;
use crate::status::RunStatus;

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CANCELLED: u8 = 130;

#[derive(Debug, Parser)]
#[command(about = "Run and inspect this pipeline. With no command: `run`, every task, today.")]
#[command(args_conflicts_with_subcommands = true, disable_version_flag = true)]
struct Cli {
    /// Print the version and the graph's fingerprint (changes when a task, a dependency or a
    /// check is added, removed or renamed).
    #[arg(long, short = 'V')]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run tasks (all when none are named) with everything they depend on.
    Run(RunArgs),
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
        /// ends.
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
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        lease_secs: u64,
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
struct RunArgs {
    /// The partition to run: a day YYYY-MM-DD, or an hour YYYY-MM-DDTHH (05:00 to 06:00 for
    /// T05); default: today (UTC).
    #[arg(long, visible_alias = "partition")]
    date: Option<Partition>,
    #[command(flatten)]
    flags: RunFlags,
}

#[derive(Debug, Args)]
struct RunFlags {
    /// Tasks (or families) to run, with their dependencies; default: all.
    tasks: Vec<String>,
    /// Unit mode: run only the named tasks, treating their dependencies as done.
    #[arg(long, requires = "tasks")]
    only: bool,
    /// Test mode: run everything, but write only to the test schema (or test files).
    #[arg(long)]
    test: bool,
    /// Run the named tasks (all when none are named) even if already complete.
    #[arg(long)]
    force: bool,
    /// How many tasks may run at once; default: the number of CPUs.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Wait for a concurrent run of the same date instead of refusing.
    #[arg(long)]
    wait: bool,
    /// Start no new task after the first critical failure.
    #[arg(long)]
    fail_fast: bool,
    /// Queue the attempts in the PostgreSQL state store for `daily worker` processes (on any
    /// number of hosts) instead of running them here; this process decides and reports as
    /// usual, and must run until the run ends.
    #[arg(long)]
    distributed: bool,
    /// With --distributed: queue the run and return at once; a worker coordinates it (and
    /// another takes it on if that one is lost). `daily history` shows it.
    #[arg(long, requires = "distributed")]
    detach: bool,
}

/// Where a binary's task graph comes from: the `#[task]`s linked into it, or a function that
/// builds it from data at start-up (tasks listed in a file, say).
#[derive(Clone, Copy, Debug)]
pub enum Graph {
    /// Every `#[task]` linked in.
    Registry,
    /// The `#[task]`s linked in, which must include some from each of these crates.
    Crates(&'static [&'static str]),
    /// The graph this function builds.
    Built(fn() -> anyhow::Result<Dag>),
}

impl Graph {
    fn load(self) -> anyhow::Result<Dag> {
        match self {
            Graph::Registry => Ok(Dag::from_registry()?),
            Graph::Crates(crates) => {
                let defs = crate::task::registered();
                for name in crates {
                    let from_it = |path: &str| {
                        path == *name
                            || path.strip_prefix(name).is_some_and(|p| p.starts_with("::"))
                    };
                    if !defs.iter().any(|def| from_it(def.module_path())) {
                        anyhow::bail!(
                            "the crate `{name}` named in `main!` registers no task: is it the \
                             crate that holds the #[task] functions?"
                        );
                    }
                }
                Ok(Dag::from_defs(&defs)?)
            }
            Graph::Built(build) => build().context("cannot build the task graph"),
        }
    }
}

/// Parses the command line and runs the command; the process's exit code. `version` is the
/// binary crate's.
pub fn main(pipeline: &str, version: &str, graph: Graph) -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    if cli.version {
        return print_version(pipeline, version, graph);
    }
    let quiet_logs = matches!(
        &cli.command,
        None | Some(Command::Run(_)) | Some(Command::Backfill { .. })
    ) && progress::is_terminal();
    logging::init(quiet_logs, progress::is_terminal());
    // The control plane needs no parallelism: task code runs on threads of its own.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    // Runs watch for signals from the start: one that comes while the state store opens
    // still ends the run as cancelled.
    let cancel = {
        let _entered = runtime.enter();
        match &cli.command {
            None | Some(Command::Run(_) | Command::Backfill { .. } | Command::Schedule { .. }) => {
                Some(watch_signals(
                    "cancelling: running tasks are stopped and recorded as cancelled",
                ))
            }
            Some(Command::Serve { .. }) => Some(watch_signals("stopping the web view")),
            Some(Command::Worker { .. }) => Some(watch_signals(
                "stopping: no more claims; running attempts get the grace period to end",
            )),
            _ => None,
        }
    };
    let json = match &cli.command {
        None => cli.run.flags.json,
        Some(Command::Run(args)) => args.flags.json,
        Some(Command::Backfill { flags, .. }) => flags.json,
        Some(Command::Schedules { json, .. }) => *json,
        Some(Command::Workers { json }) => *json,
        _ => false,
    };
    let result = runtime.block_on(dispatch(pipeline, graph, cli, cancel));
    // Do not wait for tasks stuck in blocking code after a cancellation.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    logging::flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Failure { code, kind, error }) => {
            let text = crate::message::error_text(&error);
            eprintln!("error: {text}");
            if json {
                output::print_error_json(kind, code, &text);
            }
            ExitCode::from(code)
        }
    }
}

/// A command line that does not parse: clap's message (help and version go to stdout), and
/// the same as JSON when `--json` was asked for.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = err.print();
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|arg| arg == "--json") {
        let text = err.to_string();
        let first = text
            .lines()
            .next()
            .unwrap_or("")
            .trim_start_matches("error: ");
        output::print_error_json("usage", EXIT_USAGE, first);
    }
    let _ = err.print();
    ExitCode::from(EXIT_USAGE)
}

fn print_version(pipeline: &str, version: &str, graph: Graph) -> ExitCode {
    match graph.load() {
        Ok(dag) => {
            println!(
                "{pipeline} {version} (graph {}, {} tasks; pipeline-core {})",
                dag.fingerprint(),
                dag.len(),
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// An error, what kind it is (for `--json`: `usage`, `locked`, `failed`) and the exit code it
/// means.
pub(crate) struct Failure {
    code: u8,
    kind: &'static str,
    error: anyhow::Error,
}

fn failed(error: anyhow::Error) -> Failure {
    Failure {
        code: EXIT_FAILED,
        kind: "failed",
        error,
    }
}

fn usage(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: EXIT_USAGE,
        kind: "usage",
        error: error.into(),
    }
}

impl From<RunError> for Failure {
    fn from(err: RunError) -> Self {
        match err {
            RunError::Usage(error) => usage(error),
            RunError::Locked(error) => Failure {
                code: EXIT_FAILED,
                kind: "locked",
                error,
            },
            RunError::Failed(error) => failed(error),
        }
    }
}

async fn dispatch(
    pipeline: &str,
    graph: Graph,
    cli: Cli,
    cancel: Option<watch::Receiver<bool>>,
) -> Result<u8, Failure> {
    let cancel = || cancel.clone().unwrap_or_else(|| watch::channel(false).1);
    let command = cli.command.unwrap_or(Command::Run(cli.run));
    let dag = || graph.load().map(Arc::new).map_err(usage);
    match command {
        Command::List => {
            output::list(&*dag()?).map_err(usage)?;
            Ok(0)
        }
        Command::Graph { format } => {
            print!("{}", dag()?.render(format));
            Ok(0)
        }
        Command::Run(args) => {
            let runner = runner(pipeline, dag()?).await?;
            let options = options(&args.flags, args.date.unwrap_or_else(Partition::today));
            if args.flags.detach {
                submit(&runner, &options, args.flags.json).await?;
                return Ok(0);
            }
            let report = run_one(&runner, &options, args.flags.json, cancel()).await?;
            if args.flags.json {
                output::print_json(&report);
            }
            Ok(exit_code(report.status))
        }
        Command::Backfill { from, to, flags } => {
            if !from.same_kind(to) {
                return Err(usage(anyhow::anyhow!(
                    "--from {from} and --to {to} are not both days or both hours: write \
                     --from {} --to {} for hours, or dates alone for days",
                    hour_form(from, 0),
                    hour_form(to, 23)
                )));
            }
            if from > to {
                return Err(usage(anyhow::anyhow!("--from {from} is after --to {to}")));
            }
            let cancel = cancel();
            let runner = runner(pipeline, dag()?).await?;
            if flags.detach {
                let mut partition = from;
                while partition <= to {
                    submit(&runner, &options(&flags, partition), flags.json).await?;
                    partition = partition.next();
                }
                return Ok(0);
            }
            let mut reports = Vec::new();
            let mut partition = from;
            while partition <= to {
                let options = options(&flags, partition);
                let report = run_one(&runner, &options, flags.json, cancel.clone()).await?;
                let status = report.status;
                reports.push(report);
                if status != RunStatus::Succeeded {
                    eprintln!(
                        "backfill stopped at {partition}; run the same command again to resume"
                    );
                    break;
                }
                partition = partition.next();
            }
            if flags.json {
                output::print_backfill_json(&reports);
            }
            Ok(reports.last().map_or(0, |r| exit_code(r.status)))
        }
        Command::Status { date, test } => {
            let runner = runner(pipeline, dag()?).await?;
            output::status(&runner, date.unwrap_or_else(Partition::today), test)
                .await
                .map_err(failed)?;
            Ok(0)
        }
        Command::History { limit } => {
            let runner = runner(pipeline, dag()?).await?;
            output::history(&runner, limit).await.map_err(failed)?;
            Ok(0)
        }
        Command::Schedules { json, crontab } => {
            let schedules = crate::schedule::registered().map_err(usage)?;
            if crontab {
                schedules::crontab(pipeline, &schedules).map_err(failed)?;
                return Ok(0);
            }
            let runner = runner(pipeline, dag()?).await?;
            schedules::list(&runner, &schedules, json)
                .await
                .map_err(failed)?;
            Ok(0)
        }
        Command::Serve {
            addr,
            allow_actions,
        } => {
            let schedules = crate::schedule::registered().map_err(usage)?;
            let runner = runner(pipeline, dag()?).await?;
            let options = crate::serve::ServeOptions {
                addr,
                allow_actions,
                token: std::env::var("PIPELINE_SERVE_TOKEN").ok(),
            };
            crate::serve::serve(runner, schedules, options, cancel())
                .await
                .map_err(usage)?;
            Ok(0)
        }
        Command::Worker {
            slots,
            lease_secs,
            grace_secs,
        } => {
            let runner = runner(pipeline, dag()?).await?;
            runner
                .store
                .postgres(&crate::message::command("worker"))
                .map_err(usage)?;
            let options = crate::distributed::WorkerOptions {
                slots: usize::from(slots),
                lease: std::time::Duration::from_secs(lease_secs),
                grace: std::time::Duration::from_secs(grace_secs),
            };
            crate::distributed::worker::run(runner, options, cancel())
                .await
                .map_err(failed)?;
            Ok(0)
        }
        Command::Logs {
            task,
            date,
            attempt,
            run,
            test,
            follow,
        } => {
            let runner = runner(pipeline, dag()?).await?;
            let wanted = output::AttemptWanted {
                task: &task,
                partition: date.unwrap_or_else(Partition::today),
                attempt,
                run,
                test,
                follow,
            };
            output::logs(&runner, &wanted).await?;
            Ok(0)
        }
        Command::Cancel { run_id } => {
            let runner = runner(pipeline, dag()?).await?;
            runner.reap_abandoned().await.map_err(failed)?;
            let asked = runner
                .store
                .request_cancel(pipeline, run_id)
                .await
                .map_err(failed)?;
            match asked {
                CancelRequest::Requested { partition } => {
                    println!(
                        "asked run {run_id} ({partition}) to cancel: its running tasks stop \
                         within its next heartbeat (10 s)"
                    );
                    Ok(0)
                }
                CancelRequest::Ended(status) => Err(usage(anyhow::anyhow!(
                    "run {run_id} has ended ({status}): there is nothing to cancel"
                ))),
                CancelRequest::NoSuchRun => Err(usage(anyhow::anyhow!(
                    "there is no run {run_id} of {pipeline}: {} lists the runs",
                    crate::message::command("history")
                ))),
            }
        }
        Command::Workers { json } => {
            let runner = runner(pipeline, dag()?).await?;
            runner
                .store
                .postgres(&crate::message::command("workers"))
                .map_err(usage)?;
            output::workers(&runner, json).await.map_err(failed)?;
            Ok(0)
        }
        Command::Schedule {
            lease_secs,
            workers,
        } => {
            let schedules = crate::schedule::registered().map_err(usage)?;
            if schedules.is_empty() {
                return Err(usage(anyhow::anyhow!(
                    "this binary has no schedules: declare them with `schedule!`"
                )));
            }
            let runner = runner(pipeline, dag()?).await?;
            let options = SchedulerOptions {
                lease: std::time::Duration::from_secs(lease_secs),
                workers: workers
                    .map_or_else(|| RunOptions::new(Date::today()).workers, usize::from),
                clock: crate::schedule::Clock::system(),
            };
            let scheduler = Scheduler::new(runner, schedules, options).map_err(usage)?;
            scheduler.run(cancel()).await.map_err(failed)?;
            Ok(0)
        }
    }
}

async fn runner(pipeline: &str, dag: Arc<Dag>) -> Result<Runner, Failure> {
    let config = Config::load().map_err(usage)?;
    let kind = |name: &str| {
        config
            .databases
            .get(name)
            .map(|setting| setting.url.starts_with("sqlite:"))
    };
    if let (Some(replica), Some(warehouse)) = (kind("replica"), kind("warehouse"))
        && replica != warehouse
    {
        tracing::warn!(
            "`replica` is {} but `warehouse` is {}: table loads need two databases of the same \
             kind; configure a {} warehouse (PIPELINE_DB_WAREHOUSE_URL) to load from this replica",
            if replica { "SQLite" } else { "PostgreSQL" },
            if warehouse { "SQLite" } else { "PostgreSQL" },
            if replica { "SQLite" } else { "PostgreSQL" }
        );
    }
    let declared = crate::pool::registered().map_err(usage)?;
    let pools = Pools::configured(&declared, &config.pools).map_err(usage)?;
    let store = open_store(&config).await.map_err(usage)?;
    Ok(Runner {
        dag,
        store,
        pools: Arc::new(pools),
        config,
        pipeline: pipeline.to_string(),
    })
}

/// A partition as an hour: itself, or `hour` of its day.
fn hour_form(partition: Partition, hour: u8) -> Partition {
    match partition {
        Partition::Day(date) => Partition::Hour(date, hour),
        hourly => hourly,
    }
}

fn options(flags: &RunFlags, partition: Partition) -> RunOptions {
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

async fn run_one(
    runner: &Runner,
    options: &RunOptions,
    json: bool,
    cancel: watch::Receiver<bool>,
) -> Result<RunReport, Failure> {
    if options.only {
        let targets = runner.resolve(&options.targets).map_err(usage)?;
        output::explain_unit_mode(&runner.dag, &targets);
    }
    if options.test {
        eprintln!(
            "test mode: writes go to the `{}` schema (PostgreSQL) or *.test.db files (SQLite); production tables are untouched",
            crate::run::TEST_SCHEMA
        );
    }
    let observer = progress::Progress::new(!json);
    let report = runner.run(options, &observer, cancel).await;
    observer.clear();
    logging::flush();
    let report = report?;
    if !json {
        output::print_summary(&report);
    }
    if !options.force && !options.targets.is_empty() {
        let targets = runner.resolve(&options.targets).map_err(usage)?;
        output::explain_complete_targets(&runner.dag, &targets, &report);
    }
    Ok(report)
}

/// Queues a detached run and says so.
async fn submit(runner: &Runner, options: &RunOptions, json: bool) -> Result<(), Failure> {
    let id = runner.submit(options).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "status": "submitted",
                "submission": id,
                "date": options.partition.to_string(),
            })
        );
    } else {
        println!(
            "submitted a run of {} (submission {id}): a worker coordinates it; {} shows it",
            options.partition,
            crate::message::command("history")
        );
    }
    Ok(())
}

fn exit_code(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => 0,
        RunStatus::Cancelled => EXIT_CANCELLED,
        _ => EXIT_FAILED,
    }
}

/// Ctrl-C or SIGTERM cancels the run; a second one ends the process at once. The handlers are
/// installed before this returns, so a signal that comes right after is never missed.
fn watch_signals(first: &'static str) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    let Some(mut signals) = Signals::install() else {
        tracing::warn!("cannot watch for Ctrl-C and SIGTERM: a signal ends the run at once");
        return rx;
    };
    tokio::spawn(async move {
        for count in 0.. {
            signals.next().await;
            logging::flush();
            if count == 0 {
                // Not `eprintln!`, which panics when stderr is gone (a closed pipe): this task
                // must live to pass the signal on, or the process could not be stopped.
                let _ = std::io::Write::write_fmt(
                    &mut std::io::stderr(),
                    format_args!("\n{first} (signal again to exit at once)\n"),
                );
                let _ = tx.send(true);
            } else {
                std::process::exit(i32::from(EXIT_CANCELLED));
            }
        }
    });
    rx
}

/// SIGINT and SIGTERM (Ctrl-C elsewhere).
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Option<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Some(Signals {
                interrupt: signal(SignalKind::interrupt()).ok()?,
                terminate: signal(SignalKind::terminate()).ok()?,
            })
        }
        #[cfg(not(unix))]
        {
            Some(Signals {})
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
