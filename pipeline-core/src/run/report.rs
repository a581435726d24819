//! What a run did: per task and overall. The CLI prints it as a table or as JSON.
//!
//! A run keeps each task's outcome compact ([`Outcome`]: 32 bytes, its name the graph's) and
//! makes [`TaskReport`]s only when asked: `daily run --json` writes the JSON straight from the
//! outcomes, so a run of 100,000 tasks never holds 100,000 reports (14 MB). Both are written
//! through one view, so they print alike.

use serde::{Serialize, Serializer};

use crate::dag::{Dag, TaskId};
use crate::status::{RunStatus, TaskStatus};

/// What one task did in a run; an element of `tasks` in `daily run --json`.
#[derive(Clone, Debug)]
pub struct TaskReport {
    /// The task's name (`load[orders]` for a family member).
    pub name: String,
    /// Its outcome in this run.
    pub status: TaskStatus,
    /// Attempts made in this run (0 when skipped or not run).
    pub attempts: u32,
    /// Wall time of its attempts, waits between them included.
    pub duration_ms: u64,
    /// Time it spent waiting for a slot of its resource pool (`pool = ..`), before its first
    /// attempt and before retries.
    pub waited_ms: u64,
    /// Why it failed, redacted.
    pub error: Option<String>,
    /// Whether its failure fails the run.
    pub critical: bool,
    /// For a task that did not run: the failed task at the root of it.
    pub cause: Option<String>,
    /// Notes the task left (`Ctx::detail`), such as what a table load did.
    pub details: Vec<String>,
    /// What a check measured (a row count, an age in seconds).
    pub value: Option<f64>,
}

impl Serialize for TaskReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TaskView {
            name: &self.name,
            status: self.status,
            attempts: self.attempts,
            duration_ms: self.duration_ms,
            waited_ms: self.waited_ms,
            error: self.error.as_deref(),
            critical: self.critical,
            cause: self.cause.as_deref(),
            details: &self.details,
            value: self.value,
        }
        .serialize(serializer)
    }
}

/// A task's part of the JSON, whether from a report or an outcome.
#[derive(Serialize)]
struct TaskView<'a> {
    name: &'a str,
    status: TaskStatus,
    attempts: u32,
    duration_ms: u64,
    #[serde(skip_serializing_if = "is_zero")]
    waited_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    critical: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    details: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

impl TaskReport {
    /// The warnings its attempts left, without their mark.
    pub fn warnings(&self) -> impl Iterator<Item = &str> {
        self.details
            .iter()
            .filter_map(|detail| detail.strip_prefix(crate::ctx::WARNING))
    }
}

fn is_zero(ms: &u64) -> bool {
    *ms == 0
}

/// A critical task that could not run because a non-critical task failed: the dependency
/// does not mean what it says (make it `after`, or make the dependency critical).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Blocked {
    /// The critical task that did not run.
    pub task: String,
    /// The non-critical task whose failure stopped it.
    pub by: String,
}

/// What a run did: what `daily run` summarizes and `--json` prints.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// The run's id in the state store.
    pub run_id: i64,
    /// The pipeline's name.
    pub pipeline: String,
    /// The partition: `YYYY-MM-DD`, or `YYYY-MM-DDTHH` for an hour.
    pub date: String,
    /// Test mode (`--test`).
    pub test: bool,
    /// Unit mode (`--only`).
    pub unit: bool,
    /// The run's outcome.
    pub status: RunStatus,
    /// Wall time of the run.
    pub duration_ms: u64,
    /// Every task planned for the run.
    pub tasks: Vec<TaskReport>,
    /// Critical tasks blocked by non-critical failures.
    pub blocked: Vec<Blocked>,
}

impl RunReport {
    /// How many tasks ended with `status`.
    pub fn count(&self, status: TaskStatus) -> usize {
        self.tasks.iter().filter(|t| t.status == status).count()
    }

    /// What the task of that name did in the run, if it took part.
    pub fn task(&self, name: &str) -> Option<&TaskReport> {
        self.tasks.iter().find(|t| t.name == name)
    }
}

impl Serialize for RunReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.view(&self.tasks).serialize(serializer)
    }
}

impl RunReport {
    fn view<T: Serialize>(&self, tasks: T) -> RunView<'_, T> {
        RunView {
            run_id: self.run_id,
            pipeline: &self.pipeline,
            date: &self.date,
            test: self.test,
            unit: self.unit,
            status: self.status,
            duration_ms: self.duration_ms,
            tasks,
            blocked: &self.blocked,
        }
    }
}

/// The JSON of a run, its tasks from reports or from outcomes.
#[derive(Serialize)]
struct RunView<'a, T> {
    run_id: i64,
    pipeline: &'a str,
    date: &'a str,
    test: bool,
    unit: bool,
    status: RunStatus,
    duration_ms: u64,
    tasks: T,
    blocked: &'a [Blocked],
}

/// What one task did, as a run keeps it for each of its tasks: the rare parts boxed, the name
/// left to the graph.
#[derive(Clone, Debug)]
pub(crate) struct Outcome {
    pub status: TaskStatus,
    pub critical: bool,
    pub attempts: u32,
    pub duration_ms: u64,
    pub waited_ms: u64,
    rare: Option<Box<Rare>>,
}

/// What most tasks' outcomes lack: an error, a cause, notes, a measure.
#[derive(Clone, Debug)]
struct Rare {
    error: Option<String>,
    cause: Option<String>,
    details: Vec<String>,
    value: Option<f64>,
}

impl From<TaskReport> for Outcome {
    fn from(report: TaskReport) -> Outcome {
        let rare = (report.error.is_some()
            || report.cause.is_some()
            || !report.details.is_empty()
            || report.value.is_some())
        .then(|| {
            Box::new(Rare {
                error: report.error,
                cause: report.cause,
                details: report.details,
                value: report.value,
            })
        });
        Outcome {
            status: report.status,
            critical: report.critical,
            attempts: report.attempts,
            duration_ms: report.duration_ms,
            waited_ms: report.waited_ms,
            rare,
        }
    }
}

impl Outcome {
    /// The report of the task named `name`.
    fn report(&self, name: &str) -> TaskReport {
        let view = self.view(name);
        TaskReport {
            name: view.name.to_string(),
            status: view.status,
            attempts: view.attempts,
            duration_ms: view.duration_ms,
            waited_ms: view.waited_ms,
            error: view.error.map(String::from),
            critical: view.critical,
            cause: view.cause.map(String::from),
            details: view.details.to_vec(),
            value: view.value,
        }
    }

    fn view<'a>(&'a self, name: &'a str) -> TaskView<'a> {
        let rare = self.rare.as_deref();
        TaskView {
            name,
            status: self.status,
            attempts: self.attempts,
            duration_ms: self.duration_ms,
            waited_ms: self.waited_ms,
            error: rare.and_then(|rare| rare.error.as_deref()),
            critical: self.critical,
            cause: rare.and_then(|rare| rare.cause.as_deref()),
            details: rare.map_or(&[], |rare| &rare.details),
            value: rare.and_then(|rare| rare.value),
        }
    }
}

/// What a run did, its tasks as outcomes: a [`RunReport`] with no task reports yet.
#[derive(Debug)]
pub(crate) struct RunOutcome {
    /// Everything but the tasks.
    pub head: RunReport,
    /// Every task of the graph, dependencies before dependents.
    pub order: Vec<TaskId>,
    /// By task id: what the tasks of the run did (none for a task outside it).
    pub outcomes: Vec<Option<Outcome>>,
}

impl RunOutcome {
    /// The run's tasks and their outcomes, dependencies before dependents.
    pub fn tasks(&self) -> impl Iterator<Item = (TaskId, &Outcome)> {
        self.order
            .iter()
            .filter_map(|&id| Some((id, self.outcomes[id.index()].as_ref()?)))
    }

    /// The report, each task's made from its outcome.
    pub fn into_report(self, dag: &Dag) -> RunReport {
        let tasks = self.task_reports(dag);
        RunReport { tasks, ..self.head }
    }

    /// The report, leaving the outcomes as they are.
    pub fn report(&self, dag: &Dag) -> RunReport {
        RunReport {
            tasks: self.task_reports(dag),
            ..self.head.clone()
        }
    }

    fn task_reports(&self, dag: &Dag) -> Vec<TaskReport> {
        self.tasks()
            .map(|(id, outcome)| outcome.report(&dag.task(id).name))
            .collect()
    }

    /// The status of a task of the run, if it took part.
    pub fn status_of(&self, id: TaskId) -> Option<TaskStatus> {
        self.outcomes
            .get(id.index())?
            .as_ref()
            .map(|outcome| outcome.status)
    }

    /// The run's JSON, written from the outcomes as it is serialized: the same as its
    /// report's.
    pub fn json<'a>(&'a self, dag: &'a Dag) -> impl Serialize + 'a {
        self.head.view(OutcomesView { run: self, dag })
    }
}

struct OutcomesView<'a> {
    run: &'a RunOutcome,
    dag: &'a Dag,
}

impl Serialize for OutcomesView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(
            self.run
                .tasks()
                .map(|(id, outcome)| outcome.view(&self.dag.task(id).name)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::TaskSpec;

    fn report(name: &str, status: TaskStatus) -> TaskReport {
        TaskReport {
            name: name.into(),
            status,
            attempts: 1,
            duration_ms: 12,
            waited_ms: 0,
            error: None,
            critical: true,
            cause: None,
            details: Vec::new(),
            value: None,
        }
    }

    #[test]
    fn the_json_written_from_outcomes_is_the_reports_json() {
        let mut builder = Dag::builder();
        for name in ["plain", "rich", "outside"] {
            builder.task(TaskSpec::new(name, |_| Box::pin(async { Ok(()) })));
        }
        let dag = builder.build().expect("a graph");
        let id = |name| dag.id(name).expect("a task");
        let mut rich = report("rich", TaskStatus::Failed);
        rich.waited_ms = 7;
        rich.error = Some("boom".into());
        rich.cause = Some("plain".into());
        rich.details = vec!["a note".into()];
        rich.value = Some(2.5);
        rich.critical = false;
        let mut outcomes = vec![None, None, None];
        outcomes[id("plain").index()] = Some(Outcome::from(report("plain", TaskStatus::Succeeded)));
        outcomes[id("rich").index()] = Some(Outcome::from(rich));
        let run = RunOutcome {
            head: RunReport {
                run_id: 3,
                pipeline: "p".into(),
                date: "2026-11-20".into(),
                test: true,
                unit: false,
                status: RunStatus::Failed,
                duration_ms: 40,
                tasks: Vec::new(),
                blocked: vec![Blocked {
                    task: "x".into(),
                    by: "y".into(),
                }],
            },
            order: vec![id("outside"), id("rich"), id("plain")],
            outcomes,
        };
        let streamed = serde_json::to_value(run.json(&dag)).expect("JSON");
        let built = serde_json::to_value(run.report(&dag)).expect("JSON");
        assert_eq!(streamed, built);
        let names: Vec<&str> = built["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .filter_map(|task| task["name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["rich", "plain"],
            "in the run's order, its own tasks only"
        );
        assert_eq!(
            built["tasks"][0],
            serde_json::json!({
                "name": "rich", "status": "failed", "attempts": 1, "duration_ms": 12,
                "waited_ms": 7, "error": "boom", "critical": false, "cause": "plain",
                "details": ["a note"], "value": 2.5,
            })
        );
        assert_eq!(
            built["tasks"][1],
            serde_json::json!({
                "name": "plain", "status": "succeeded", "attempts": 1, "duration_ms": 12,
                "critical": true,
            })
        );
        assert_eq!(run.status_of(id("rich")), Some(TaskStatus::Failed));
        assert_eq!(run.status_of(id("outside")), None);
        assert!(size_of::<Option<Outcome>>() <= 32, "an outcome stays small");
    }
}
