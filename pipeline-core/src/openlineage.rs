//! OpenLineage run events: the format Airflow, Dagster and dbt emit and Marquez or DataHub
//! read, so a pipeline's tables and tasks show up in the same lineage graph as everything
//! else. With `[openlineage] url` configured (see [`crate::config`]), a run sends:
//!
//! - START and then COMPLETE, FAIL or ABORT for the pipeline's run (job `<pipeline>`);
//! - START and then COMPLETE, FAIL or ABORT for each task that runs (job `<pipeline>.<task>`,
//!   its parent the pipeline's run), with the tables it declares (`reads`, `writes`) as its
//!   inputs and outputs. Tasks that do not run (complete already, held back by a failure) send
//!   nothing.
//!
//! Test runs send nothing: their tables are not the production tables the events would name.
//! Delivery never changes an outcome (see [`delivery`]).

mod delivery;
mod event;

use std::time::Duration;

use crate::config::Config;
use crate::date::{Partition, now_millis};
use crate::status::{RunStatus, TaskStatus};
use delivery::Delivery;
use event::{Datasets, EventBody, EventType, RunName};

/// A task, as its events name it: its name and the tables it declares (`database.table`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskTables<'a> {
    pub name: &'a str,
    pub reads: &'a [String],
    pub writes: &'a [String],
}

/// How a task that started ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskEnd<'a> {
    pub status: TaskStatus,
    /// Attempts made: 0 when it never started.
    pub attempts: u32,
    /// Why it failed, redacted.
    pub error: Option<&'a str>,
}

/// The events of one pipeline run.
#[derive(Debug)]
pub(crate) struct RunLineage {
    namespace: String,
    pipeline: String,
    run_id: i64,
    started_millis: i64,
    partition: Partition,
    run: RunName,
    datasets: Datasets,
    delivery: Delivery,
}

impl RunLineage {
    /// Sends the run's START, when an endpoint is configured.
    pub fn start(
        config: &Config,
        pipeline: &str,
        run_id: i64,
        partition: Partition,
        started_millis: i64,
    ) -> anyhow::Result<Option<RunLineage>> {
        let Some(settings) = &config.openlineage else {
            return Ok(None);
        };
        let run = RunName {
            run_id: event::run_uuid(started_millis, &[pipeline, &run_id.to_string()]),
            job: pipeline.to_string(),
        };
        let lineage = RunLineage {
            namespace: settings.namespace.clone(),
            pipeline: pipeline.to_string(),
            run_id,
            started_millis,
            partition,
            run,
            datasets: Datasets::new(config, &settings.namespace),
            delivery: Delivery::start(settings)?,
        };
        lineage.send(EventType::Start, &lineage.run, lineage.body("DAG", None));
        Ok(Some(lineage))
    }

    /// A task's first attempt started.
    pub fn task_started(&self, task: TaskTables<'_>) {
        let mut body = self.body("TASK", None);
        self.add_tables(task, &mut body);
        self.send(EventType::Start, &self.task_run(task.name), body);
    }

    /// A task reached its outcome; nothing for one that never started.
    pub fn task_finished(&self, task: TaskTables<'_>, end: TaskEnd<'_>) {
        if end.attempts == 0 {
            return;
        }
        let kind = match end.status {
            TaskStatus::Succeeded => EventType::Complete,
            TaskStatus::Failed | TaskStatus::TimedOut => EventType::Fail,
            _ => EventType::Abort,
        };
        let error = (kind == EventType::Fail).then(|| match end.error {
            Some(error) => crate::secrets::redact(error),
            None => format!("task `{}` {}", task.name, end.status),
        });
        let mut body = self.body("TASK", error.as_deref());
        self.add_tables(task, &mut body);
        self.send(kind, &self.task_run(task.name), body);
    }

    /// Sends the run's last event, then waits for the queue to drain, until `deadline`.
    pub async fn finish(self, status: RunStatus, deadline: Duration) {
        let (kind, error) = match status {
            RunStatus::Succeeded => (EventType::Complete, None),
            RunStatus::Failed => (EventType::Fail, Some("a critical task did not succeed")),
            _ => (EventType::Abort, None),
        };
        self.send(kind, &self.run, self.body("DAG", error));
        self.delivery.finish(deadline).await;
    }

    fn task_run(&self, task: &str) -> RunName {
        RunName {
            run_id: event::run_uuid(
                self.started_millis,
                &[&self.pipeline, &self.run_id.to_string(), task],
            ),
            job: format!("{}.{task}", self.pipeline),
        }
    }

    fn body<'a>(&'a self, job_type: &'static str, error: Option<&'a str>) -> EventBody<'a> {
        EventBody {
            job_type,
            parent: (job_type == "TASK").then_some(&self.run),
            partition: self.partition,
            error,
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn add_tables(&self, task: TaskTables<'_>, body: &mut EventBody<'_>) {
        let datasets = |tables: &[String]| {
            tables
                .iter()
                .map(|table| self.datasets.dataset(table))
                .collect()
        };
        body.inputs = datasets(task.reads);
        body.outputs = datasets(task.writes);
    }

    fn send(&self, kind: EventType, run: &RunName, body: EventBody<'_>) {
        let event = event::run_event(kind, now_millis(), &self.namespace, run, body);
        self.delivery.send(event);
    }
}
