//! What a run did: per task and overall. The CLI prints it as a table or as JSON.

use serde::Serialize;

use crate::status::{RunStatus, TaskStatus};

/// What one task did in a run; an element of `tasks` in `daily run --json`.
#[derive(Clone, Debug, Serialize)]
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
    #[serde(skip_serializing_if = "is_zero")]
    pub waited_ms: u64,
    /// Why it failed, redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether its failure fails the run.
    pub critical: bool,
    /// For a task that did not run: the failed task at the root of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// Notes the task left (`Ctx::detail`), such as what a table load did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// What a check measured (a row count, an age in seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
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
#[derive(Clone, Debug, Serialize)]
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
