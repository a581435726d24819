//! The executor: runs the selected part of a [`Dag`] for one partition. A task starts as soon
//! as its own dependencies are done (no layer barriers), at most `workers` at a time; complete
//! tasks are skipped; every attempt is recorded; Ctrl-C cancels what runs and records it.

mod alerts;
mod attempt;
mod dispatch;
mod executor;
pub(crate) mod lock;
mod recorder;
pub(crate) mod report;
mod worker;

use dispatch::Dispatch;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use tokio::sync::watch;

use crate::alert::{Alerts, DELIVERY_DEADLINE};
use crate::config::Config;
use crate::ctx::RunInfo;
use crate::dag::{Dag, DagError, TaskId};
use crate::date::{Partition, now_millis};
use crate::db::{Databases, Target};
use crate::host::hostname;
use crate::openlineage::RunLineage;
use crate::pool::Pools;
use crate::state::{Completion, Namespace, NewRun, PartitionKey, StateStore};
use crate::status::RunStatus;

pub(crate) use attempt::run_attempt;
pub(crate) use lock::{HEARTBEAT_EVERY, is_gone, this_process, why_gone};
pub(crate) use report::RunOutcome;
pub use report::{RunReport, TaskReport};
pub(crate) use worker::{before_park, stop_spinning};

/// How long the end of a run waits for the databases' connections to close.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The schema that test-mode writes go to in PostgreSQL databases.
pub const TEST_SCHEMA: &str = "pipeline_test";

/// Attempts a distributed run keeps queued or running at once: the workers' slots bound what
/// runs.
const IN_FLIGHT: usize = 100_000;

/// What to run and how. A detached run (`run --distributed --detach`) is queued as the JSON of
/// what was asked (targets, partition and the flags that change what runs); the worker that
/// coordinates it reads it back with [`RunOptions::coordinated`].
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RunOptions {
    /// Task or family names; empty means every task.
    pub targets: Vec<String>,
    /// The partition: a day, or an hour.
    #[serde(with = "crate::date::partition_text")]
    pub partition: Partition,
    /// Unit mode: run exactly the targets; their dependencies count as done.
    pub only: bool,
    /// Test mode: writes go to the test schema; markers are kept apart.
    pub test: bool,
    /// Run the targets (all tasks when none are named) even if complete.
    pub force: bool,
    /// How many tasks may run at once.
    #[serde(skip, default = "default_workers")]
    pub workers: usize,
    /// Wait for a concurrent run of the same partition instead of refusing.
    #[serde(skip)]
    pub wait: bool,
    /// Stop starting new tasks after the first critical failure.
    pub fail_fast: bool,
    /// Queue the attempts for `daily worker` processes instead of running them here
    /// (PostgreSQL state store only).
    #[serde(skip)]
    pub distributed: bool,
}

/// One worker per CPU.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get())
}

impl RunOptions {
    /// Every task of the graph for a partition (a [`Date`](crate::date::Date) is its day),
    /// one worker per CPU, nothing else set.
    pub fn new(partition: impl Into<Partition>) -> Self {
        RunOptions {
            targets: Vec::new(),
            partition: partition.into(),
            only: false,
            test: false,
            force: false,
            workers: default_workers(),
            wait: false,
            fail_fast: false,
            distributed: false,
        }
    }

    /// Queued for `daily worker` processes, whose slots bound what runs: every ready attempt
    /// is queued at once.
    pub fn distributed(mut self) -> Self {
        self.distributed = true;
        self.workers = IN_FLIGHT;
        self
    }

    /// The options of a detached run as its coordinating worker runs it: distributed, and
    /// waiting for the lock of a coordinator that was lost until that lock is broken.
    pub(crate) fn coordinated(self) -> Self {
        let mut options = self.distributed();
        options.wait = true;
        options
    }
}

/// Hears about progress (the CLI's progress bar or log lines).
pub trait Observer: Send + Sync {
    /// The run will consider `tasks` tasks, of which `skipped` are complete already.
    fn planned(&self, _tasks: usize, _skipped: usize) {}
    /// A ready task waits for a slot of its resource pool.
    fn waiting(&self, _task: &str, _pool: &str) {}
    /// A task's first attempt started.
    fn started(&self, _task: &str) {}
    /// A task reached its outcome.
    fn finished(&self, _task: &TaskReport) {}
}

/// An observer that ignores everything.
#[derive(Debug)]
pub struct Quiet;
impl Observer for Quiet {}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A bad target name or configuration: the user must change the command or settings.
    #[error(transparent)]
    Usage(anyhow::Error),
    /// Another run of the partition holds the lock.
    #[error(transparent)]
    Locked(anyhow::Error),
    /// The state store or a database failed.
    #[error(transparent)]
    Failed(anyhow::Error),
}

/// Runs pipelines of one DAG against one state store.
#[derive(Debug, Clone)]
pub struct Runner {
    /// The graph it runs.
    pub dag: Arc<Dag>,
    /// Where runs, attempts, markers and locks are kept.
    pub store: Arc<StateStore>,
    /// The databases and alert settings.
    pub config: Config,
    /// The pipeline's name: keys the history and locks in the store.
    pub pipeline: String,
    /// The resource pools, shared by every run of this runner (and its clones).
    pub pools: Arc<Pools>,
}

/// What the executor needs to know about the selection.
struct Plan {
    /// Tasks that take part, in id order.
    selected: Vec<TaskId>,
    in_plan: Vec<bool>,
    skip: Vec<bool>,
}

impl Runner {
    /// The context that the attempts of run `run_id` share, in this process or on a worker:
    /// its databases (pools for up to `attempts` attempts at once, in the test schema in test
    /// mode) and, in test mode, what each task declared.
    pub(crate) fn run_info(
        &self,
        run_id: i64,
        partition: Partition,
        test: bool,
        unit: bool,
        attempts: usize,
    ) -> RunInfo {
        let target = if test {
            Target::Test {
                schema: TEST_SCHEMA.into(),
            }
        } else {
            Target::Production
        };
        RunInfo {
            run_id,
            pipeline: self.pipeline.clone(),
            partition,
            test,
            unit,
            databases: Databases::new(self.config.clone(), target, crate::db::pool_size(attempts)),
            details: Default::default(),
            measured: Default::default(),
            written: Default::default(),
            declared: if test {
                declared_tables(&self.dag)
            } else {
                Default::default()
            },
        }
    }

    /// The targets as task ids (a family name selects every member).
    pub fn resolve(&self, targets: &[String]) -> Result<Vec<TaskId>, DagError> {
        let mut ids = Vec::new();
        for name in targets {
            ids.extend(self.dag.select(name)?);
        }
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Where the markers, locks and runs of a partition (in production or test mode) are kept.
    pub fn partition_key(&self, partition: impl Into<Partition>, test: bool) -> PartitionKey {
        PartitionKey {
            pipeline: self.pipeline.clone(),
            partition: partition.into().to_string(),
            namespace: if test {
                Namespace::Test
            } else {
                Namespace::Production
            },
        }
    }

    /// Closes runs whose process is gone (see `lock::reap`).
    pub async fn reap_abandoned(&self) -> anyhow::Result<()> {
        lock::reap(&self.store, &self.pipeline).await
    }

    /// The tasks complete for the partition: marked so, and written to the databases their
    /// names point at now (a task that loaded into a warehouse since replaced is not complete).
    pub async fn complete(&self, key: &PartitionKey) -> anyhow::Result<HashSet<String>> {
        let Completion {
            mut complete,
            targets,
        } = self.store.completion(key).await?;
        if targets.is_empty() {
            return Ok(complete);
        }
        let identities = self.config.identities();
        complete.retain(|task| {
            targets.get(task).is_none_or(|targets| {
                targets.split(';').all(|pair| {
                    pair.split_once('=').is_some_and(|(name, identity)| {
                        identities.get(name).map(String::as_str) == Some(identity)
                    })
                })
            })
        });
        Ok(complete)
    }

    /// Runs one partition. `cancel` turning true cancels the run.
    pub async fn run(
        &self,
        options: &RunOptions,
        observer: &dyn Observer,
        cancel: watch::Receiver<bool>,
    ) -> Result<RunReport, RunError> {
        let outcome = self.run_outcome(options, observer, cancel).await?;
        Ok(outcome.into_report(&self.dag))
    }

    /// [`Runner::run`], its tasks' outcomes left compact (for a summary written from them).
    pub(crate) async fn run_outcome(
        &self,
        options: &RunOptions,
        observer: &dyn Observer,
        cancel: watch::Receiver<bool>,
    ) -> Result<RunOutcome, RunError> {
        let started = Instant::now();
        let targets = self
            .resolve(&options.targets)
            .map_err(|e| RunError::Usage(e.into()))?;
        self.check_pools().map_err(RunError::Usage)?;
        if options.distributed {
            self.store
                .postgres(crate::message::Command("run --distributed"))
                .map_err(RunError::Usage)?;
        }
        let key = self.partition_key(options.partition, options.test);
        // The run stops on the caller's signal, or when its lock is taken from it.
        let (stop, stopped) = watch::channel(*cancel.borrow());
        let lock = lock::acquire(Arc::clone(&self.store), &key, options.wait, stop.clone())
            .await
            .map_err(|err| match err {
                lock::LockError::Held(held) => RunError::Locked(held.into()),
                lock::LockError::Store(err) => RunError::Failed(err),
            })?;
        let forward = tokio::spawn(async move {
            let mut cancel = cancel;
            if cancel.wait_for(|c| *c).await.is_ok() {
                let _ = stop.send(true);
            }
        });
        let result = self
            .run_locked(options, &targets, &key, observer, stopped, started)
            .await;
        forward.abort();
        let released = lock.release().await;
        let report = result?;
        released.map_err(|err| RunError::Failed(err.context("cannot release the run lock")))?;
        Ok(report)
    }

    /// Queues a detached distributed run for the workers, one of which coordinates it (and
    /// another takes it on if that one is lost): the submission's id. Bad targets and pools
    /// are refused here, before anything is queued.
    pub async fn submit(&self, options: &RunOptions) -> Result<i64, RunError> {
        self.resolve(&options.targets)
            .map_err(|e| RunError::Usage(e.into()))?;
        self.check_pools().map_err(RunError::Usage)?;
        self.store
            .postgres(crate::message::Command("run --distributed --detach"))
            .map_err(RunError::Usage)?;
        let key = self.partition_key(options.partition, options.test);
        let submitted = serde_json::to_string(options)
            .context("cannot write the run's options")
            .map_err(RunError::Failed)?;
        self.store
            .submit_run(&key, &self.dag.fingerprint(), &submitted)
            .await
            .map_err(RunError::Failed)
    }

    /// Every task's pool is one of the runner's.
    fn check_pools(&self) -> anyhow::Result<()> {
        for (_, task) in self.dag.tasks() {
            if let Some(pool) = &task.pool
                && self.pools.get(pool).is_none()
            {
                anyhow::bail!(
                    "task `{}` is in the pool `{pool}`, which this runner does not have; \
                     declare it with `pool!` (or give the runner `Pools` that include it)",
                    task.name
                );
            }
        }
        Ok(())
    }

    async fn run_locked(
        &self,
        options: &RunOptions,
        targets: &[TaskId],
        key: &PartitionKey,
        observer: &dyn Observer,
        cancel: watch::Receiver<bool>,
        started: Instant,
    ) -> Result<RunOutcome, RunError> {
        let complete = self.complete(key).await.map_err(RunError::Failed)?;
        let open_alerts = self
            .store
            .open_alerts(key)
            .await
            .map_err(RunError::Failed)?;
        let mut alerts =
            Alerts::from_config(&self.config.alerts, options.test).map_err(RunError::Usage)?;
        let plan = self.plan(options, targets, &complete);
        let started_at = now_millis();
        let run_id = self
            .store
            .start_run(&NewRun {
                key: key.clone(),
                targets: options.targets.clone(),
                unit_mode: options.only,
                host: hostname(),
                pid: i64::from(std::process::id()),
                started_at,
            })
            .await
            .map_err(RunError::Failed)?;
        let info = Arc::new(self.run_info(
            run_id,
            options.partition,
            options.test,
            options.only,
            options.workers,
        ));
        let (recorder, writer) = recorder::start(Arc::clone(&self.store), key.clone());
        let dispatch = if options.distributed {
            let started = Dispatch::start(
                Arc::clone(&self.store),
                run_id,
                key.clone(),
                options.only,
                self.dag.fingerprint(),
            )
            .await
            .context("cannot listen to the work queue")
            .map_err(RunError::Failed)?;
            Some(started)
        } else {
            None
        };
        // A test run's tables are not the ones lineage events would name.
        let lineage = if options.test {
            None
        } else {
            RunLineage::start(
                &self.config,
                &self.pipeline,
                run_id,
                options.partition,
                started_at,
            )
            .unwrap_or_else(|err| {
                tracing::warn!("no OpenLineage events for this run: {err:#}");
                None
            })
        };
        observer.planned(
            plan.selected.len(),
            plan.skip.iter().filter(|s| **s).count(),
        );
        let execution = executor::Execution {
            dag: &self.dag,
            plan: &plan,
            info: &info,
            recorder: &recorder,
            observer,
            alerts: &mut alerts,
            open_alerts,
            lineage: lineage.as_ref(),
            workers: options.workers.max(1),
            pools: &self.pools,
            dispatch: dispatch.as_ref().map(|(dispatch, _)| Arc::clone(dispatch)),
            fail_fast: options.fail_fast,
        };
        let executor::Executed {
            order,
            outcomes,
            blocked,
            failed,
            signalled,
        } = execution.run(cancel).await;
        if let Some((dispatch, watcher)) = dispatch {
            dispatch.stop(watcher).await;
        }
        let written = writer.finish(recorder).await;
        // A connection held by an attempt that never came back (stuck in blocking code) would
        // keep a pool from closing: the run does not wait for it.
        if tokio::time::timeout(CLOSE_GRACE, info.databases.close())
            .await
            .is_err()
        {
            tracing::warn!(
                "the run's database connections did not close within {}; going on without them",
                crate::date::format_duration(CLOSE_GRACE)
            );
        }
        let status = if signalled {
            RunStatus::Cancelled
        } else if failed || written.is_err() {
            RunStatus::Failed
        } else {
            RunStatus::Succeeded
        };
        let lineage_sent = async {
            if let Some(lineage) = lineage {
                lineage.finish(status, DELIVERY_DEADLINE).await;
            }
        };
        tokio::join!(alerts.finish(DELIVERY_DEADLINE), lineage_sent);
        let (ran, failures) = outcomes
            .iter()
            .flatten()
            .fold((0, 0), |(ran, failed), outcome| {
                (ran + 1, failed + i64::from(!outcome.status.is_success()))
            });
        let totals = (ran, failures);
        self.store
            .finish_run(run_id, status, totals, now_millis())
            .await
            .map_err(RunError::Failed)?;
        crate::metrics::run(status.as_str());
        written.map_err(RunError::Failed)?;
        Ok(RunOutcome {
            head: RunReport {
                run_id,
                pipeline: self.pipeline.clone(),
                date: options.partition.to_string(),
                test: options.test,
                unit: options.only,
                status,
                duration_ms: started.elapsed().as_millis() as u64,
                blocked,
                tasks: Vec::new(),
            },
            order,
            outcomes,
        })
    }

    fn plan(&self, options: &RunOptions, targets: &[TaskId], complete: &HashSet<String>) -> Plan {
        let dag = &self.dag;
        let all: Vec<TaskId>;
        let roots = if targets.is_empty() {
            all = dag.ids().collect();
            &all
        } else {
            targets
        };
        // Every task is upstream of itself: the whole graph needs no walk.
        let selected = if options.only || targets.is_empty() {
            roots.to_vec()
        } else {
            dag.upstream(roots)
        };
        let mut in_plan = vec![false; dag.len()];
        for id in &selected {
            in_plan[id.index()] = true;
        }
        let mut forced = vec![false; dag.len()];
        if options.force {
            for id in roots {
                forced[id.index()] = true;
            }
        }
        let skip = dag
            .tasks()
            .map(|(id, task)| {
                in_plan[id.index()] && !forced[id.index()] && complete.contains(&task.name)
            })
            .collect();
        Plan {
            selected,
            in_plan,
            skip,
        }
    }
}

/// Opens the configured state store.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<StateStore>> {
    open_store_with(config, crate::state::STORE_CONNECTIONS).await
}

/// Opens the configured state store with a pool of up to `connections`.
pub async fn open_store_with(config: &Config, connections: u32) -> anyhow::Result<Arc<StateStore>> {
    let store = crate::state::StateStore::open_with(&config.state, connections).await?;
    Ok(Arc::new(store))
}

/// What each task of `dag` declared, by task, for test mode to hold its statements to (a
/// member of a family has its family's): every task, since a test run holds each to its
/// test schema; those that declare no tables are held to none.
pub(crate) fn declared_tables(
    dag: &Dag,
) -> std::collections::HashMap<String, Arc<crate::access::Declared>> {
    dag.tasks()
        .map(|(_, task)| {
            let tables = task.tables.as_deref().map(|tables| crate::access::Tables {
                reads: tables.reads.iter().cloned().collect(),
                writes: tables.writes.iter().cloned().collect(),
            });
            let declared = crate::access::Declared::new(task.name.clone(), tables);
            (task.name.clone(), Arc::new(declared))
        })
        .collect()
}
