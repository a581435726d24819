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

mod args;
mod logging;
pub(crate) mod output;
mod progress;
pub(crate) mod schedules;
mod signals;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use tokio::sync::watch;

use args::{Cli, Command, options};
use signals::watch_signals;

use crate::config::Config;
use crate::dag::Dag;
use crate::date::{Date, Partition};
use crate::pool::Pools;
use crate::run::{RunError, RunOptions, RunOutcome, Runner, open_store_with};
use crate::schedule::{Scheduler, SchedulerOptions};
use crate::state::CancelRequest;
use crate::status::RunStatus;
use crate::sync::LockUnpoisoned as _;

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CANCELLED: u8 = 130;

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
        .on_thread_park(crate::run::before_park)
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
            None
            | Some(
                Command::Run(_)
                | Command::Test { .. }
                | Command::Backfill { .. }
                | Command::Schedule { .. }
                | Command::Dev { .. },
            ) => Some(watch_signals(
                "cancelling: running tasks are stopped and recorded as cancelled",
            )),
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
        Some(Command::Test { json, .. }) => *json,
        Some(Command::Backfill { flags, .. }) => flags.json,
        Some(Command::Schedules { json, .. }) => *json,
        Some(Command::Workers { json }) => *json,
        _ => false,
    };
    let result = runtime.block_on(async {
        let result = dispatch(pipeline, graph, cli, cancel).await;
        close_stores().await;
        result
    });
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
        Command::Lineage { format } => {
            print!("{}", dag()?.render_lineage(format));
            Ok(0)
        }
        Command::Run(args) => {
            let runner = runner(pipeline, dag()?).await?;
            let options = options(&args.flags, args.date.unwrap_or_else(Partition::today));
            if args.flags.detach {
                submit(&runner, &options, args.flags.json).await?;
                return Ok(0);
            }
            run_and_report(&runner, &options, args.flags.json, cancel()).await
        }
        Command::Test { tasks, date, json } => {
            let runner = runner(pipeline, dag()?).await?;
            let mut options = RunOptions::new(date.unwrap_or_else(Partition::today));
            options.targets = tasks;
            options.only = true;
            options.test = true;
            options.force = true;
            eprintln!(
                "{}: runs {} once in test mode, even if complete, with its dependencies taken \
                 as done (the same as {})",
                crate::message::Command("test"),
                options.targets.join(", "),
                crate::message::Command("run --only --test --force")
            );
            run_and_report(&runner, &options, json, cancel()).await
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
                let report = run_one(&runner, &options, flags.json, cancel.clone())
                    .await?
                    .into_report(&runner.dag);
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
        #[cfg(feature = "web")]
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
        #[cfg(feature = "web")]
        Command::Dev { addr, workers } => {
            let schedules = crate::schedule::registered().map_err(usage)?;
            let view = runner(pipeline, dag()?).await?;
            eprintln!(
                "{}: the schedules' runs and the web view in this process ({}); Ctrl-C stops \
                 all of it",
                crate::message::Command("dev"),
                match schedules.len() {
                    0 => "no schedules: runs start from the view".to_string(),
                    1 => "1 schedule".to_string(),
                    n => format!("{n} schedules"),
                }
            );
            let options = crate::serve::ServeOptions {
                addr,
                allow_actions: true,
                token: std::env::var("PIPELINE_SERVE_TOKEN").ok(),
            };
            let scheduler = if schedules.is_empty() {
                None
            } else {
                // The same store and pools as the view: one runner, shared.
                let options = scheduler_options(args::SCHEDULER_LEASE_SECS, workers, false);
                Some(Scheduler::new(view.clone(), schedules.clone(), options).map_err(usage)?)
            };
            // A signal stops both parts; either part's failure (the address taken, the store
            // gone) stops the other, which ends as on a signal.
            let (stop, stopped) = watch::channel(false);
            let stop = Arc::new(stop);
            let forward = {
                let (stop, mut signal) = (Arc::clone(&stop), cancel());
                tokio::spawn(async move {
                    if signal.wait_for(|cancelled| *cancelled).await.is_ok() {
                        let _ = stop.send(true);
                    }
                })
            };
            let serving = async {
                let served = crate::serve::serve(view, schedules, options, stopped.clone()).await;
                let _ = stop.send(true);
                served.map_err(usage)
            };
            let firing = async {
                let Some(scheduler) = scheduler else {
                    return Ok(());
                };
                let fired = scheduler.run(stopped.clone()).await.map_err(failed);
                let _ = stop.send(true);
                fired
            };
            let (served, fired) = tokio::join!(serving, firing);
            forward.abort();
            served?;
            fired?;
            Ok(0)
        }
        #[cfg(not(feature = "web"))]
        Command::Dev { .. } => Err(usage(anyhow::anyhow!(
            "this binary was built without the web view, which `dev` serves: turn on \
             pipeline-core's `web` feature (`pipeline-core = {{ .., features = [\"web\"] }}` in \
             Cargo.toml)"
        ))),
        #[cfg(not(feature = "web"))]
        Command::Serve { .. } => Err(usage(anyhow::anyhow!(
            "this binary was built without the web view: turn on pipeline-core's `web` feature \
             (`pipeline-core = {{ .., features = [\"web\"] }}` in Cargo.toml)"
        ))),
        Command::Worker {
            slots,
            lease_secs,
            grace_secs,
            metrics_addr,
        } => {
            let runner = runner_with(
                pipeline,
                dag()?,
                crate::distributed::worker::STORE_CONNECTIONS,
            )
            .await?;
            runner
                .store
                .postgres(crate::message::Command("worker"))
                .map_err(usage)?;
            // Not ready once its leases went unrenewed for two thirds of a lease: by then it
            // stops its attempts itself.
            let lease_within = std::time::Duration::from_secs(lease_secs) * 2 / 3;
            serve_metrics(metrics_addr, &runner, Some(lease_within)).await?;
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
                    crate::message::Command("history")
                ))),
            }
        }
        Command::Workers { json } => {
            let runner = runner(pipeline, dag()?).await?;
            runner
                .store
                .postgres(crate::message::Command("workers"))
                .map_err(usage)?;
            output::workers(&runner, json).await.map_err(failed)?;
            Ok(0)
        }
        Command::Schedule {
            lease_secs,
            workers,
            distributed,
            metrics_addr,
        } => {
            let schedules = crate::schedule::registered().map_err(usage)?;
            if schedules.is_empty() {
                return Err(usage(anyhow::anyhow!(
                    "this binary has no schedules: declare them with `schedule!`"
                )));
            }
            let runner = runner(pipeline, dag()?).await?;
            if distributed {
                runner
                    .store
                    .postgres(crate::message::Command("schedule --distributed"))
                    .map_err(usage)?;
            }
            serve_metrics(metrics_addr, &runner, None).await?;
            let options = scheduler_options(lease_secs, workers, distributed);
            let scheduler = Scheduler::new(runner, schedules, options).map_err(usage)?;
            scheduler.run(cancel()).await.map_err(failed)?;
            Ok(0)
        }
    }
}

/// A scheduler's options from its flags; `workers` defaults to the number of CPUs.
fn scheduler_options(lease_secs: u64, workers: Option<u16>, distributed: bool) -> SchedulerOptions {
    SchedulerOptions {
        lease: std::time::Duration::from_secs(lease_secs),
        workers: workers.map_or_else(|| RunOptions::new(Date::today()).workers, usize::from),
        clock: crate::schedule::Clock::system(),
        distributed,
    }
}

/// Starts the metrics and health listener, when asked for one.
async fn serve_metrics(
    addr: Option<std::net::SocketAddr>,
    runner: &Runner,
    lease_within: Option<std::time::Duration>,
) -> Result<(), Failure> {
    let Some(addr) = addr else {
        return Ok(());
    };
    let health = Arc::new(crate::metrics::Health {
        store: Arc::clone(&runner.store),
        pipeline: runner.pipeline.clone(),
        lease_within,
    });
    let bound = crate::metrics::serve(addr, health).await.map_err(usage)?;
    tracing::info!("metrics on http://{bound}/metrics (and /healthz, /readyz)");
    Ok(())
}

/// The state stores this process opened, closed as it exits.
static OPENED_STORES: std::sync::Mutex<Vec<Arc<crate::state::StateStore>>> =
    std::sync::Mutex::new(Vec::new());

/// How long the store's connections get to close at exit: one stuck in a statement of a task
/// that would not stop is dropped.
const CLOSE_STORES_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Closes the stores' connections as PostgreSQL expects (a goodbye, not a reset): dropped
/// with the process, every one left a "connection reset by peer" line in the server's log.
async fn close_stores() {
    let stores = std::mem::take(&mut *OPENED_STORES.lock_unpoisoned());
    let closing = futures_util::future::join_all(stores.iter().map(|store| store.close()));
    let _ = tokio::time::timeout(CLOSE_STORES_WITHIN, closing).await;
}

async fn runner(pipeline: &str, dag: Arc<Dag>) -> Result<Runner, Failure> {
    runner_with(pipeline, dag, crate::state::STORE_CONNECTIONS).await
}

/// A runner whose state store's pool holds up to `store_connections`.
async fn runner_with(
    pipeline: &str,
    dag: Arc<Dag>,
    store_connections: u32,
) -> Result<Runner, Failure> {
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
    let store = open_store_with(&config, store_connections)
        .await
        .map_err(usage)?;
    OPENED_STORES.lock_unpoisoned().push(Arc::clone(&store));
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

/// Runs one partition and prints its summary (`--json`: one object, written from the tasks'
/// outcomes as it goes out): the exit code.
async fn run_and_report(
    runner: &Runner,
    options: &RunOptions,
    json: bool,
    cancel: watch::Receiver<bool>,
) -> Result<u8, Failure> {
    let outcome = run_one(runner, options, json, cancel).await?;
    if json {
        output::print_json(&outcome.json(&runner.dag));
    }
    Ok(exit_code(outcome.head.status))
}

/// Runs one partition, saying what it does; without `--json`, prints the table of its tasks.
async fn run_one(
    runner: &Runner,
    options: &RunOptions,
    json: bool,
    cancel: watch::Receiver<bool>,
) -> Result<RunOutcome, Failure> {
    // The tasks asked for by name, for what the run says of them before and after.
    let named = if options.targets.is_empty() {
        Vec::new()
    } else {
        runner.resolve(&options.targets).map_err(usage)?
    };
    if options.only {
        output::explain_unit_mode(&runner.dag, &named);
    }
    if options.test {
        eprintln!(
            "test mode: writes go to the `{}` schema (PostgreSQL) or *.test.db files (SQLite); production tables are untouched",
            crate::run::TEST_SCHEMA
        );
    }
    let observer = progress::Progress::new(!json);
    let outcome = runner.run_outcome(options, &observer, cancel).await;
    observer.clear();
    logging::flush();
    let outcome = outcome?;
    if !json {
        output::print_summary(&outcome.report(&runner.dag));
    }
    if !options.force {
        output::explain_complete_targets(&runner.dag, &named, &outcome);
    }
    Ok(outcome)
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
            crate::message::Command("history")
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
