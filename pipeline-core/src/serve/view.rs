//! What the pages and the JSON endpoints show, read from the state store and the graph: one
//! model, so that the page is one client of the data among others.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::dag::TaskId;
use crate::date::{format_timestamp, now_millis};
use crate::run::Runner;
use crate::state::{AttemptRecord, Namespace, PartitionKey, RunFilter, RunRecord};
use crate::status::{RunStatus, TaskStatus};

/// The status of a task of a run that has not started yet and may still.
pub const WAITING: &str = "waiting";

/// A run as lists show it.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub id: i64,
    pub partition: String,
    /// `prod` or `test`.
    pub namespace: String,
    pub status: RunStatus,
    /// The targets as given (empty: all tasks).
    pub targets: Vec<String>,
    pub unit_mode: bool,
    pub host: String,
    pub pid: i64,
    /// UTC, and Unix milliseconds.
    pub started_at: String,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// So far, while it runs.
    pub duration_ms: i64,
    pub tasks_total: Option<i64>,
    pub tasks_failed: Option<i64>,
}

impl RunSummary {
    fn of(run: RunRecord, now: i64) -> RunSummary {
        RunSummary {
            duration_ms: run
                .finished_at
                .unwrap_or(now)
                .saturating_sub(run.started_at),
            started_at: format_timestamp(run.started_at),
            id: run.id,
            partition: run.partition,
            namespace: run.namespace,
            status: run.status,
            targets: run.targets,
            unit_mode: run.unit_mode,
            host: run.host,
            pid: run.pid,
            started_at_ms: run.started_at,
            finished_at_ms: run.finished_at,
            tasks_total: run.tasks_total,
            tasks_failed: run.tasks_failed,
        }
    }
}

/// One attempt of a task.
#[derive(Clone, Debug, Serialize)]
pub struct AttemptView {
    pub run_id: i64,
    pub attempt: u32,
    pub status: TaskStatus,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// So far, while it runs.
    pub duration_ms: i64,
    pub error: Option<String>,
    /// What it reported: a load's mode and rows, a check's finding; one note a line.
    pub note: Option<String>,
    /// What a check measured.
    pub value: Option<f64>,
}

impl AttemptView {
    fn of(attempt: AttemptRecord, now: i64) -> AttemptView {
        AttemptView {
            duration_ms: attempt
                .finished_at
                .unwrap_or(now)
                .saturating_sub(attempt.started_at),
            run_id: attempt.run_id,
            attempt: attempt.attempt,
            status: attempt.status,
            started_at_ms: attempt.started_at,
            finished_at_ms: attempt.finished_at,
            error: attempt.error,
            note: attempt.note,
            value: attempt.value,
        }
    }
}

/// A task as it stands in one run.
#[derive(Clone, Debug, Serialize)]
pub struct TaskInRun {
    pub name: String,
    pub family: Option<String>,
    /// A task status, or `waiting` for one that may still start.
    pub status: &'static str,
    pub critical: bool,
    pub requires: Vec<String>,
    pub after: Vec<String>,
    pub attempts: Vec<AttemptView>,
}

/// A critical task that did not run because a non-critical one it requires failed.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct BlockedTask {
    pub task: String,
    pub by: String,
}

/// A run with its every task.
#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    pub run: RunSummary,
    /// In the graph's order.
    pub tasks: Vec<TaskInRun>,
    /// The chain of tasks, each waiting on the one before, that ended last: what made the
    /// run as long as it was.
    pub critical_path: Vec<String>,
    pub blocked: Vec<BlockedTask>,
}

impl RunView {
    /// The task of that name, if it took part.
    pub fn task(&self, name: &str) -> Option<&TaskInRun> {
        self.tasks.iter().find(|task| task.name == name)
    }
}

/// Closes the runs whose process is gone (killed, its host lost), as `daily history` does, so
/// that no page shows as running what nothing runs. A store that fails here fails the read
/// that follows, which says so.
async fn reap(runner: &Runner) {
    if let Err(err) = runner.reap_abandoned().await {
        tracing::debug!("web view: cannot close abandoned runs: {err:#}");
    }
}

/// The latest runs that pass `filter`.
pub async fn runs(
    runner: &Runner,
    filter: &RunFilter,
    limit: u32,
) -> anyhow::Result<Vec<RunSummary>> {
    reap(runner).await;
    let now = now_millis();
    Ok(runner
        .store
        .find_runs(&runner.pipeline, filter, limit)
        .await?
        .into_iter()
        .map(|run| RunSummary::of(run, now))
        .collect())
}

/// A run with each task's status and attempts; `None` when there is no such run.
pub async fn run(runner: &Runner, id: i64) -> anyhow::Result<Option<RunView>> {
    reap(runner).await;
    let Some(record) = runner.store.run(&runner.pipeline, id).await? else {
        return Ok(None);
    };
    let now = now_millis();
    let key = PartitionKey {
        pipeline: runner.pipeline.clone(),
        partition: record.partition.clone(),
        namespace: if record.namespace == Namespace::Test.as_str() {
            Namespace::Test
        } else {
            Namespace::Production
        },
    };
    let attempts = runner.store.run_attempts(id).await?;
    let completed_before: HashSet<String> = runner
        .store
        .markers(&key)
        .await?
        .into_iter()
        .filter(|marker| marker.run_id < id)
        .map(|marker| marker.task)
        .collect();
    let dag = &runner.dag;
    // What the run set out to do (the graph may have changed since: tasks it no longer has
    // are shown by their attempts alone).
    let mut planned: HashSet<TaskId> = if record.targets.is_empty() {
        dag.ids().collect()
    } else {
        match runner.resolve(&record.targets) {
            Ok(targets) if record.unit_mode => targets.into_iter().collect(),
            Ok(targets) => dag.upstream(&targets).into_iter().collect(),
            Err(_) => HashSet::new(),
        }
    };
    let mut by_task: HashMap<String, Vec<AttemptView>> = HashMap::new();
    for attempt in attempts {
        if let Some(id) = dag.id(&attempt.task) {
            planned.insert(id);
        }
        by_task
            .entry(attempt.task.clone())
            .or_default()
            .push(AttemptView::of(attempt, now));
    }
    let running = record.status == RunStatus::Running;
    let mut status: HashMap<TaskId, &'static str> = HashMap::new();
    let mut tasks = Vec::new();
    for id in dag.topological_order() {
        if !planned.contains(&id) {
            continue;
        }
        let node = dag.task(id);
        let attempts = by_task.remove(&node.name).unwrap_or_default();
        let upstream_failed = node.requires.iter().any(|dep| {
            status.get(dep).is_some_and(|s| {
                matches!(
                    *s,
                    "failed" | "timed_out" | "upstream_failed" | "cancelled" | "not_configured"
                )
            })
        });
        let state = match attempts.last() {
            Some(last) => last.status.as_str(),
            None if completed_before.contains(&node.name) => TaskStatus::Skipped.as_str(),
            None if upstream_failed => TaskStatus::UpstreamFailed.as_str(),
            None if running => WAITING,
            None => TaskStatus::Cancelled.as_str(),
        };
        status.insert(id, state);
        let names = |ids: &[TaskId]| -> Vec<String> {
            ids.iter()
                .filter(|dep| planned.contains(dep))
                .map(|dep| dag.task(*dep).name.clone())
                .collect()
        };
        tasks.push(TaskInRun {
            name: node.name.clone(),
            family: node.family.as_deref().map(String::from),
            status: state,
            critical: node.policy.critical,
            requires: names(&node.requires),
            after: names(&node.after),
            attempts,
        });
    }
    // Attempts of tasks the graph no longer has.
    let mut gone: Vec<(String, Vec<AttemptView>)> = by_task.into_iter().collect();
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, attempts) in gone {
        tasks.push(TaskInRun {
            status: attempts.last().map_or(WAITING, |a| a.status.as_str()),
            name,
            family: None,
            critical: true,
            requires: Vec::new(),
            after: Vec::new(),
            attempts,
        });
    }
    let blocked = blocked(&tasks);
    Ok(Some(RunView {
        critical_path: critical_path(&tasks, now),
        run: RunSummary::of(record, now),
        tasks,
        blocked,
    }))
}

/// The chain that ended last: from the task that finished last, back through the dependency
/// that finished last, to a task that waited on none.
fn critical_path(tasks: &[TaskInRun], now: i64) -> Vec<String> {
    let ends: HashMap<&str, i64> = tasks
        .iter()
        .filter_map(|task| {
            let last = task.attempts.last()?;
            Some((task.name.as_str(), last.finished_at_ms.unwrap_or(now)))
        })
        .collect();
    let by_name: HashMap<&str, &TaskInRun> = tasks.iter().map(|t| (t.name.as_str(), t)).collect();
    let Some(mut at) = ends
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
        .map(|(name, _)| *name)
    else {
        return Vec::new();
    };
    let mut path = vec![at.to_string()];
    let mut visited: HashSet<&str> = HashSet::from([at]);
    while let Some(task) = by_name.get(at) {
        let previous = task
            .requires
            .iter()
            .chain(&task.after)
            .filter_map(|dep| Some((dep.as_str(), *ends.get(dep.as_str())?)))
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)));
        match previous {
            Some((dep, _)) if visited.insert(dep) => {
                path.push(dep.to_string());
                at = dep;
            }
            _ => break,
        }
    }
    path.reverse();
    path
}

/// Critical tasks held back by the failure of a non-critical task they require.
fn blocked(tasks: &[TaskInRun]) -> Vec<BlockedTask> {
    let by_name: HashMap<&str, &TaskInRun> = tasks.iter().map(|t| (t.name.as_str(), t)).collect();
    tasks
        .iter()
        .filter(|task| task.critical && task.status == TaskStatus::UpstreamFailed.as_str())
        .filter_map(|task| {
            let by = task.requires.iter().find(|dep| {
                by_name.get(dep.as_str()).is_some_and(|dep| {
                    !dep.critical && matches!(dep.status, "failed" | "timed_out")
                })
            })?;
            Some(BlockedTask {
                task: task.name.clone(),
                by: by.clone(),
            })
        })
        .collect()
}

/// A task of the graph: what it is and what it did across partitions.
#[derive(Clone, Debug, Serialize)]
pub struct TaskView {
    pub name: String,
    /// Its doc comment.
    pub description: String,
    pub family: Option<String>,
    /// Where it is defined.
    pub origin: Option<String>,
    pub requires: Vec<String>,
    pub after: Vec<String>,
    /// The tasks that list it in `requires` or `after`.
    pub dependents: Vec<String>,
    pub retries: u32,
    pub retry_delay_ms: u64,
    pub timeout_ms: Option<u64>,
    pub critical: bool,
    pub pool: Option<String>,
    pub priority: i32,
    /// For a check: what it checks, and whether it blocks them.
    pub checks: Vec<String>,
    pub blocking: Option<bool>,
    /// Its latest attempts, newest first.
    pub history: Vec<HistoryEntry>,
}

/// An attempt of a task in some partition.
#[derive(Clone, Debug, Serialize)]
pub struct HistoryEntry {
    pub partition: String,
    pub namespace: String,
    #[serde(flatten)]
    pub attempt: AttemptView,
}

/// A task of the graph with its latest attempts; `None` when the graph has no such task.
pub async fn task(runner: &Runner, name: &str, limit: u32) -> anyhow::Result<Option<TaskView>> {
    let dag = &runner.dag;
    let Some(id) = dag.id(name) else {
        return Ok(None);
    };
    let node = dag.task(id);
    let names = |ids: &[TaskId]| -> Vec<String> {
        ids.iter().map(|dep| dag.task(*dep).name.clone()).collect()
    };
    let dependents = dag.dependents();
    let now = now_millis();
    let history = runner
        .store
        .task_attempts(&runner.pipeline, name, limit)
        .await?
        .into_iter()
        .map(|(partition, namespace, attempt)| HistoryEntry {
            partition,
            namespace,
            attempt: AttemptView::of(attempt, now),
        })
        .collect();
    Ok(Some(TaskView {
        name: node.name.clone(),
        description: node.description.to_string(),
        family: node.family.as_deref().map(String::from),
        origin: node.origin.as_deref().map(String::from),
        requires: names(&node.requires),
        after: names(&node.after),
        dependents: names(dependents.of(id)),
        retries: node.policy.retries,
        retry_delay_ms: node.policy.retry_delay.as_millis() as u64,
        timeout_ms: node.policy.timeout.map(|t| t.as_millis() as u64),
        critical: node.policy.critical,
        pool: node.pool.as_deref().map(String::from),
        priority: node.priority,
        checks: node
            .check
            .as_ref()
            .map(|role| names(&role.targets))
            .unwrap_or_default(),
        blocking: node.check.as_ref().map(|role| role.blocking),
        history,
    }))
}

/// Tables whose last load is looked up, at most: one indexed query each.
pub const LAST_LOADS: usize = 1_000;

/// The pipeline's tables as its tasks declare them, each with its last load.
#[derive(Clone, Debug, Serialize)]
pub struct LineageView {
    pub tables: Vec<TableView>,
    /// The tasks that declare tables.
    pub tasks: Vec<LineageTask>,
    /// Whether there were more tables than [`LAST_LOADS`], the rest without their last load.
    pub last_loads_cut: bool,
}

/// A table: who writes it, who reads it, and when it was last loaded.
#[derive(Clone, Debug, Serialize)]
pub struct TableView {
    /// `database.table`.
    pub name: String,
    /// Read here, written by no task.
    pub source: bool,
    pub writers: Vec<String>,
    pub readers: Vec<String>,
    /// The latest production success of its writer; `None` if it never succeeded.
    pub last_load: Option<LoadView>,
}

/// A table's last load: the attempt of its writer that last succeeded.
#[derive(Clone, Debug, Serialize)]
pub struct LoadView {
    pub task: String,
    pub run_id: i64,
    pub partition: String,
    /// When it ended (UTC).
    pub finished_at: String,
    /// How long ago, when the view was made.
    pub age_ms: i64,
}

/// A task that declares tables, and where the drawing puts it.
#[derive(Clone, Debug, Serialize)]
pub struct LineageTask {
    pub name: String,
    pub family: Option<String>,
    /// Its longest path from a task without dependencies.
    #[serde(skip)]
    pub rank: usize,
}

/// The pipeline's tables with their writers, readers and last loads.
pub async fn lineage(runner: &Runner) -> anyhow::Result<LineageView> {
    let dag = &runner.dag;
    let lineage = dag.lineage();
    let names = |ids: &[TaskId]| -> Vec<String> {
        ids.iter().map(|id| dag.task(*id).name.clone()).collect()
    };
    let now = now_millis();
    // The loaders of the first tables, each asked once (family members write the same
    // tables), in one statement.
    let writers: Vec<Vec<String>> = lineage
        .tables
        .values()
        .map(|table| names(&table.writers))
        .collect();
    let mut loading: Vec<String> = Vec::new();
    for ((name, _), writers) in lineage.tables.iter().zip(&writers).take(LAST_LOADS) {
        loading.extend(loaders(name, writers).cloned());
    }
    loading.sort_unstable();
    loading.dedup();
    let successes = runner
        .store
        .last_successes(&runner.pipeline, &loading)
        .await?;
    let mut tables = Vec::with_capacity(lineage.tables.len());
    for (at, ((name, table), writers)) in lineage.tables.iter().zip(writers).enumerate() {
        let mut last_load: Option<LoadView> = None;
        for task in loaders(name, &writers).filter(|_| at < LAST_LOADS) {
            let Some((run_id, partition, finished_at)) = successes.get(task) else {
                continue;
            };
            if last_load
                .as_ref()
                .is_none_or(|load| load.age_ms > now - finished_at)
            {
                last_load = Some(LoadView {
                    task: task.clone(),
                    run_id: *run_id,
                    partition: partition.clone(),
                    finished_at: format_timestamp(*finished_at),
                    age_ms: now - finished_at,
                });
            }
        }
        tables.push(TableView {
            name: name.clone(),
            source: table.is_source(),
            writers,
            readers: names(&table.readers),
            last_load,
        });
    }
    let levels = dag.levels();
    let tasks = dag
        .tasks()
        .filter(|(_, task)| task.tables.is_some())
        .map(|(id, task)| LineageTask {
            name: task.name.clone(),
            family: task.family.as_deref().map(String::from),
            rank: levels[id.index()] as usize,
        })
        .collect();
    Ok(LineageView {
        last_loads_cut: lineage.tables.len() > LAST_LOADS,
        tables,
        tasks,
    })
}

/// The writers whose success loads `table`: of a family whose members all declare it (a
/// family declares its tables as one), the member named after the table (`load[orders]` for
/// `warehouse.orders`) when there is one, else all of them.
fn loaders<'a>(table: &str, writers: &'a [String]) -> impl Iterator<Item = &'a String> {
    let short = table.split_once('.').map_or(table, |(_, name)| name);
    let named = writers.iter().find(|writer| {
        writer
            .strip_suffix(']')
            .and_then(|rest| rest.split_once('['))
            .is_some_and(|(_, key)| key == short)
    });
    let all = named
        .is_none()
        .then_some(writers.iter())
        .into_iter()
        .flatten();
    named.into_iter().chain(all)
}

#[cfg(test)]
mod tests {
    use super::loaders;

    #[test]
    fn a_familys_table_is_loaded_by_the_member_named_after_it() {
        let family: Vec<String> = ["load[users]", "load[orders]", "load[restaurants]"]
            .map(String::from)
            .to_vec();
        let named: Vec<&String> = loaders("warehouse.orders", &family).collect();
        assert_eq!(named, [&family[1]]);
        // No member of that name: any of them may have loaded it.
        assert_eq!(loaders("warehouse.rates", &family).count(), 3);
        let single = vec!["make_order_model".to_string()];
        assert_eq!(loaders("warehouse.order_model", &single).count(), 1);
    }
}
