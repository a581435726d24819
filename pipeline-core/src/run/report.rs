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
}

impl RunReport {
    pub fn count(&self, status: TaskStatus) -> usize {
        self.tasks.iter().filter(|t| t.status == status).count()
    }

    /// Critical tasks that did not succeed: what makes a run fail.
    pub fn critical_failures(&self) -> impl Iterator<Item = &TaskReport> {
        self.tasks
            .iter()
            .filter(|t| t.critical && !t.status.is_success())
    }
}
