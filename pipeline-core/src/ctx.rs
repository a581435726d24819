//! What a running task sees: the run, its partition, the mode, and the named databases.

use std::sync::Arc;

use crate::date::{Date, Partition};
use crate::db::{Databases, Db};
use crate::sync::LockUnpoisoned as _;

/// How a detail that is a warning ([`Ctx::warn`]) begins: what the run's report and alerts
/// tell warnings by.
pub(crate) const WARNING: &str = "warning: ";

/// Facts of a run shared by every task in it.
#[derive(Debug)]
pub(crate) struct RunInfo {
    pub run_id: i64,
    pub pipeline: String,
    pub partition: Partition,
    /// Test mode: writes go to the test schema (PostgreSQL) or test files (SQLite).
    pub test: bool,
    /// Unit mode: only the named tasks run; their dependencies count as done.
    pub unit: bool,
    pub databases: Databases,
    /// One-line notes tasks leave for the run summary (`Ctx::detail`), by task.
    pub details: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
    /// The value a check measured, by task.
    pub measured: std::sync::Mutex<std::collections::HashMap<String, f64>>,
    /// The databases each task opened to write (`Ctx::db`), by task.
    pub written:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::BTreeSet<String>>>,
    /// In test mode, the tables each task declared, by task: its statements are held to them.
    pub declared: std::collections::HashMap<String, Arc<crate::access::Declared>>,
}

impl RunInfo {
    /// The databases `task` wrote through, as `name=identity;..` for its completion marker.
    pub fn take_written(&self, task: &str) -> Option<String> {
        let mut written = self.written.lock_unpoisoned();
        let names = written.remove(task)?;
        let pairs: Vec<String> = names
            .iter()
            .map(|name| format!("{name}={}", self.databases.identity(name)))
            .collect();
        Some(pairs.join(";"))
    }

    /// The value a check of `task` measured, taken out.
    pub fn take_measured(&self, task: &str) -> Option<f64> {
        let mut measured = self.measured.lock_unpoisoned();
        measured.remove(task)
    }

    /// The notes a task left, taken out.
    pub fn take_details(&self, task: &str) -> Vec<String> {
        let mut details = self.details.lock_unpoisoned();
        details.remove(task).unwrap_or_default()
    }
}

/// The context handed to every task attempt.
#[derive(Debug, Clone)]
pub struct Ctx {
    run: Arc<RunInfo>,
    task: String,
    attempt: u32,
}

impl Ctx {
    pub(crate) fn new(run: Arc<RunInfo>, task: impl Into<String>, attempt: u32) -> Self {
        Ctx {
            run,
            task: task.into(),
            attempt,
        }
    }

    /// The name of the running task (`load[orders]` for a family member).
    pub fn task(&self) -> &str {
        &self.task
    }

    /// 1 for the first attempt, 2 for the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The run's id in the state store, as `daily history` lists it.
    pub fn run_id(&self) -> i64 {
        self.run.run_id
    }

    /// The pipeline's name, as given to `main!` (`daily`).
    pub fn pipeline(&self) -> &str {
        &self.run.pipeline
    }

    /// The day of the partition the run works on (`--date`, default today in UTC); for an
    /// hour, the day it is in.
    pub fn date(&self) -> Date {
        self.run.partition.date()
    }

    /// The partition the run works on: a day or an hour, its key (`to_string()`:
    /// `2026-11-26T05`) and its time range (`start()`, `end()`), e.g. for
    /// `WHERE created_at >= '{start}' AND created_at < '{end}'`.
    pub fn partition(&self) -> Partition {
        self.run.partition
    }

    /// Whether this is a test-mode run (`--test`): writes through [`Ctx::db`] go to the test
    /// schema or files, never to production tables.
    pub fn is_test(&self) -> bool {
        self.run.test
    }

    /// Whether this is a unit-mode run (`--only`).
    pub fn is_unit(&self) -> bool {
        self.run.unit
    }

    /// In test mode, what the task declared (its tables, or none), which its statements are
    /// held to.
    pub(crate) fn declared(&self) -> Option<Arc<crate::access::Declared>> {
        self.run.declared.get(&self.task).map(Arc::clone)
    }

    /// A configured database by name, connected on first use. In test mode its writes go to
    /// the test schema (PostgreSQL) or a `*.test.db` file beside it (SQLite).
    pub async fn db(&self, name: &str) -> anyhow::Result<Db> {
        let mut db = self.run.databases.get(name).await?;
        if let Some(declared) = self.declared() {
            db = db.held_to(declared);
        }
        // The completion marker remembers where the task wrote.
        let mut written = self.run.written.lock_unpoisoned();
        written
            .entry(self.task.clone())
            .or_default()
            .insert(name.to_string());
        Ok(db)
    }

    /// The run's configuration (the bus of event loads).
    #[cfg(feature = "events")]
    pub(crate) fn config(&self) -> &crate::config::Config {
        self.run.databases.config()
    }

    /// Leaves a note that someone should look at although the task succeeded (a load that
    /// accepted lost events): in the run summary as `warning: ...`, in the log, and sent as a
    /// gentle (Slack) alert at the end of the task.
    pub fn warn(&self, text: impl Into<String>) {
        let text = text.into();
        tracing::warn!(task = %self.task, "{text}");
        self.detail(format!("{WARNING}{text}"));
    }

    /// Leaves a one-line note for the run summary, e.g. what a load did.
    pub fn detail(&self, text: impl Into<String>) {
        let mut details = self.run.details.lock_unpoisoned();
        details
            .entry(self.task.clone())
            .or_default()
            .push(text.into());
    }

    /// Records the value a check measured (a row count, an age in seconds), kept as a number
    /// with the attempt.
    pub(crate) fn measured(&self, value: f64) {
        let mut measured = self.run.measured.lock_unpoisoned();
        measured.insert(self.task.clone(), value);
    }

    /// A configured database to read from as it is in production, even in test mode.
    pub async fn source_db(&self, name: &str) -> anyhow::Result<Db> {
        self.run.databases.source(name).await
    }

    /// Whether a database of that name is configured.
    pub fn has_db(&self, name: &str) -> bool {
        self.run.databases.is_configured(name)
    }

    /// The `warehouse` database: by default `./.pipeline/warehouse.db`.
    pub async fn warehouse(&self) -> anyhow::Result<Db> {
        self.db("warehouse").await
    }
}
