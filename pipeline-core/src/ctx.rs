//! What a running task sees.

/// The context handed to every task attempt.
#[derive(Debug)]
pub struct Ctx {
    task: String,
}

impl Ctx {
    /// A context for `task`.
    pub fn new(task: impl Into<String>) -> Self {
        Ctx { task: task.into() }
    }

    /// The name of the running task (`load[orders]` for a family member).
    pub fn task(&self) -> &str {
        &self.task
    }
}
