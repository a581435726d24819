//! What the web view reads besides what runs write: a run by id with its attempts, runs by
//! status and partition, a task's attempts across partitions and tasks' last successes, and who
//! completed what.

use std::collections::HashMap;

use sqlx::{AssertSqlSafe, QueryBuilder, Row};

use super::{StateStore, to_status};
use crate::db::{DbPool, dispatch};
use crate::state::{AttemptRecord, MarkerRecord, PartitionKey, RunRecord};

/// Which runs to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this outcome (`running`, `succeeded`, `failed`, ...).
    pub status: Option<String>,
    /// Only runs of partitions that start with this (`2026-11-26` also means its hours).
    pub partition: Option<String>,
    /// Only runs older than this id (the next page).
    pub before: Option<i64>,
}

const RUN_COLUMNS: &str = "SELECT id, partition, namespace, status, targets, unit_mode, host, pid, \
     started_at, finished_at, tasks_total, tasks_failed FROM pipeline_runs WHERE pipeline = ";
const ATTEMPT_COLUMNS: &str = "a.run_id, a.task, a.attempt, a.status, a.started_at, \
     a.finished_at, a.error, a.note, a.value";

impl StateStore {
    /// The runs of a pipeline that pass `filter`, newest first, at most `limit`.
    pub async fn find_runs(
        &self,
        pipeline: &str,
        filter: &RunFilter,
        limit: u32,
    ) -> anyhow::Result<Vec<RunRecord>> {
        dispatch!(&self.pool, pool => {
            let mut query = QueryBuilder::new(RUN_COLUMNS);
            query.push_bind(pipeline);
            if let Some(status) = &filter.status {
                query.push(" AND status = ").push_bind(status.as_str());
            }
            if let Some(partition) = &filter.partition {
                // A prefix, compared as text: no LIKE, whose wildcards a user's text may hold.
                query
                    .push(" AND substr(partition, 1, ")
                    .push_bind(partition.chars().count() as i64)
                    .push(") = ")
                    .push_bind(partition.as_str());
            }
            if let Some(before) = filter.before {
                query.push(" AND id < ").push_bind(before);
            }
            query.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
            let rows = query.build().fetch_all(pool).await?;
            rows.iter().map(run_record).collect()
        })
    }

    /// One run of a pipeline, if it exists.
    pub async fn run(&self, pipeline: &str, id: i64) -> anyhow::Result<Option<RunRecord>> {
        dispatch!(&self.pool, pool => {
            let mut query = QueryBuilder::new(RUN_COLUMNS);
            query.push_bind(pipeline).push(" AND id = ").push_bind(id);
            let row = query.build().fetch_optional(pool).await?;
            row.as_ref().map(run_record).transpose()
        })
    }

    /// Every attempt of one run, in the order they started.
    pub async fn run_attempts(&self, run_id: i64) -> anyhow::Result<Vec<AttemptRecord>> {
        dispatch!(&self.pool, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ATTEMPT_COLUMNS} FROM pipeline_attempts a WHERE a.run_id = $1 \
                 ORDER BY a.started_at, a.task, a.attempt"
            )))
            .bind(run_id)
            .fetch_all(pool)
            .await?;
            rows.iter().map(attempt_record).collect()
        })
    }

    /// Every attempt made for the partition, oldest first.
    pub async fn attempts(&self, key: &PartitionKey) -> anyhow::Result<Vec<AttemptRecord>> {
        self.partition_attempts(key, None).await
    }

    /// The attempts of one task for the partition, oldest first: what `daily logs` looks at,
    /// again and again while it waits for the task to start, without reading the whole run's.
    pub async fn partition_task_attempts(
        &self,
        key: &PartitionKey,
        task: &str,
    ) -> anyhow::Result<Vec<AttemptRecord>> {
        self.partition_attempts(key, Some(task)).await
    }

    async fn partition_attempts(
        &self,
        key: &PartitionKey,
        task: Option<&str>,
    ) -> anyhow::Result<Vec<AttemptRecord>> {
        use super::BindKey as _;
        let of_task = if task.is_some() {
            " AND a.task = $4"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {ATTEMPT_COLUMNS} FROM pipeline_attempts a \
             JOIN pipeline_runs r ON r.id = a.run_id \
             WHERE r.pipeline = $1 AND r.partition = $2 AND r.namespace = $3{of_task} \
             ORDER BY a.run_id, a.started_at, a.attempt"
        );
        dispatch!(&self.pool, pool => {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind_key(key);
            if let Some(task) = task {
                query = query.bind(task);
            }
            let rows = query.fetch_all(pool).await?;
            rows.iter().map(attempt_record).collect()
        })
    }

    /// A task's latest attempts across partitions, newest first, each with its run's
    /// partition and namespace.
    pub async fn task_attempts(
        &self,
        pipeline: &str,
        task: &str,
        limit: u32,
    ) -> anyhow::Result<Vec<(String, String, AttemptRecord)>> {
        dispatch!(&self.pool, pool => {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT r.partition, r.namespace, {ATTEMPT_COLUMNS} FROM pipeline_attempts a \
                 JOIN pipeline_runs r ON r.id = a.run_id \
                 WHERE a.task = $2 AND r.pipeline = $1 \
                 ORDER BY a.run_id DESC, a.attempt DESC LIMIT $3"
            )))
            .bind(pipeline)
            .bind(task)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get("partition")?,
                        row.try_get("namespace")?,
                        attempt_record(row)?,
                    ))
                })
                .collect()
        })
    }

    /// The latest success in production of each of `tasks`, in any partition: its run, the
    /// run's partition and when the attempt ended, by task (a task that never succeeded is not
    /// in it). One statement for them all (a page of a large pipeline's tables asked for up to
    /// 1,000, one round trip each); each task walks its attempts newest first, by the index of
    /// a task's attempts, and stops at its first success.
    pub async fn last_successes(
        &self,
        pipeline: &str,
        tasks: &[String],
    ) -> anyhow::Result<HashMap<String, (i64, String, i64)>> {
        if tasks.is_empty() {
            return Ok(HashMap::new());
        }
        let names = serde_json::to_string(tasks)?;
        // The newest success of the task named `{task}`.
        let success = |task: &str, columns: &str| {
            format!(
                "SELECT {columns} FROM pipeline_attempts a JOIN pipeline_runs r ON r.id = a.run_id \
                 WHERE a.task = {task} AND r.pipeline = $1 AND r.namespace = 'prod' \
                 AND a.status = 'succeeded' AND a.finished_at IS NOT NULL \
                 ORDER BY a.run_id DESC, a.attempt DESC LIMIT 1"
            )
        };
        let sql = match &self.pool {
            DbPool::Postgres(_) => format!(
                "SELECT t.task, s.run_id, s.partition, s.finished_at \
                 FROM jsonb_array_elements_text($2::jsonb) AS t(task) \
                 CROSS JOIN LATERAL ({}) s",
                success("t.task", "a.run_id, r.partition, a.finished_at")
            ),
            // No LATERAL: the newest success's row, then its columns.
            DbPool::Sqlite(_) => format!(
                "SELECT t.value AS task, a.run_id, r.partition, a.finished_at \
                 FROM json_each($2) t \
                 JOIN pipeline_attempts a ON a.rowid = ({}) \
                 JOIN pipeline_runs r ON r.id = a.run_id",
                success("t.value", "a.rowid")
            ),
        };
        dispatch!(&self.pool, pool => {
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(pipeline)
                .bind(&names)
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get("task")?,
                        (
                            row.try_get("run_id")?,
                            row.try_get("partition")?,
                            row.try_get("finished_at")?,
                        ),
                    ))
                })
                .collect()
        })
    }

    /// The completion markers of a partition: which run completed each task.
    pub async fn markers(&self, key: &PartitionKey) -> anyhow::Result<Vec<MarkerRecord>> {
        use super::BindKey as _;
        dispatch!(&self.pool, pool => {
            let rows = sqlx::query(
                "SELECT task, run_id, completed_at, targets FROM pipeline_markers \
                 WHERE pipeline = $1 AND partition = $2 AND namespace = $3 ORDER BY task",
            )
            .bind_key(key)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(MarkerRecord {
                        task: row.try_get("task")?,
                        run_id: row.try_get("run_id")?,
                        completed_at: row.try_get("completed_at")?,
                        targets: row.try_get("targets")?,
                    })
                })
                .collect()
        })
    }
}

/// A run from its row, on either backend.
fn run_record<R: Row>(row: &R) -> anyhow::Result<RunRecord>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let targets: String = row.try_get("targets")?;
    let status: String = row.try_get("status")?;
    Ok(RunRecord {
        id: row.try_get("id")?,
        partition: row.try_get("partition")?,
        namespace: row.try_get("namespace")?,
        status: to_status(&status)?,
        targets: decode_targets(&targets),
        unit_mode: row.try_get::<i64, _>("unit_mode")? != 0,
        host: row.try_get("host")?,
        pid: row.try_get("pid")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        tasks_total: row.try_get("tasks_total")?,
        tasks_failed: row.try_get("tasks_failed")?,
    })
}

/// An attempt (without its log) from its row, on either backend.
pub(super) fn attempt_record<R: Row>(row: &R) -> anyhow::Result<AttemptRecord>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let status: String = row.try_get("status")?;
    Ok(AttemptRecord {
        run_id: row.try_get("run_id")?,
        task: row.try_get("task")?,
        attempt: u32::try_from(row.try_get::<i64, _>("attempt")?).unwrap_or(u32::MAX),
        status: to_status(&status)?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        error: row.try_get("error")?,
        note: row.try_get("note")?,
        value: row.try_get("value")?,
        log: None,
    })
}

/// A run's targets as stored: a JSON list, since a family key may hold spaces.
pub(super) fn encode_targets(targets: &[String]) -> String {
    if targets.is_empty() {
        return String::new();
    }
    serde_json::to_string(targets).unwrap_or_default()
}

/// A run's targets from the store: a JSON list, or, from runs recorded before lists, the
/// targets joined by spaces.
fn decode_targets(stored: &str) -> Vec<String> {
    if stored.starts_with('[')
        && let Ok(targets) = serde_json::from_str(stored)
    {
        return targets;
    }
    stored.split_whitespace().map(String::from).collect()
}

#[cfg(test)]
mod tests {
    use super::{decode_targets, encode_targets};

    #[test]
    fn targets_with_spaces_come_back_as_they_went_in() {
        let targets = vec!["load[my table]".to_string(), "report".to_string()];
        assert_eq!(decode_targets(&encode_targets(&targets)), targets);
        assert!(decode_targets(&encode_targets(&[])).is_empty());
        assert_eq!(
            decode_targets("load[orders] report"),
            ["load[orders]", "report"]
        );
    }
}
