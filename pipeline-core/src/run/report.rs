//! What a run did: per task and overall. The CLI prints it as a table or as JSON.

use serde::Serialize;

use crate::status::{RunStatus, TaskStatus};

#[derive(Clone, Debug, Serialize)]
pub struct TaskReport {
    pub name: String,
    pub status: TaskStatus,
    /// Attempts made in this run (0 when skipped or not run).
    pub attempts: u32,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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

/// A critical task that could not run because a non-critical task failed: the dependency
/// does not mean what it says (make it `after`, or make the dependency critical).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Blocked {
    pub task: String,
    pub by: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub pipeline: String,
    pub date: String,
    pub test: bool,
    pub unit: bool,
    pub status: RunStatus,
    pub duration_ms: u64,
    pub tasks: Vec<TaskReport>,
    /// Critical tasks blocked by non-critical failures.
    pub blocked: Vec<Blocked>,
}

impl RunReport {
    pub fn count(&self, status: TaskStatus) -> usize {
        self.tasks.iter().filter(|t| t.status == status).count()
    }
}
