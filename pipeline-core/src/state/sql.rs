//! The state store on SQLite or PostgreSQL. The statements are shared (both dialects accept
//! `$n` parameters, `ON CONFLICT` and `RETURNING`); the migrations are per backend.

mod line;
mod schedules;
mod views;
mod work;

pub use line::StoreLine;
pub use work::{LeaseLine, WORKER_CONNECTIONS};

pub use views::RunFilter;

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use sqlx::{AssertSqlSafe, Row};

use super::{
    AttemptRecord, CancelRequest, Completion, Heartbeat, LockAttempt, LockHolder, MarkerRecord,
    Namespace, NewRun, PartitionKey, RunRecord,
};
use crate::config::Setting;
use crate::db::{BeginWrite as _, DbPool, Target, dispatch};
use crate::status::{RunStatus, Severity, TaskStatus};

/// `(version, name, sql)` in order. A released migration is never edited: add a new one.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "alerts",
        include_str!("../../migrations/sqlite/0002_alerts.sql"),
    ),
    (
        3,
        "notes",
        include_str!("../../migrations/sqlite/0003_attempt_notes.sql"),
    ),
    (
        4,
        "lock pid space",
        include_str!("../../migrations/sqlite/0004_lock_pid_space.sql"),
    ),
    (
        5,
        "attempt values",
        include_str!("../../migrations/sqlite/0005_attempt_values.sql"),
    ),
    (
        6,
        "marker targets",
        include_str!("../../migrations/sqlite/0006_marker_targets.sql"),
    ),
    (
        7,
        "schedules",
        include_str!("../../migrations/sqlite/0007_schedules.sql"),
    ),
    (
        8,
        "work queue",
        include_str!("../../migrations/sqlite/0008_work_queue.sql"),
    ),
    (
        9,
        "tick holders",
        include_str!("../../migrations/sqlite/0009_tick_holders.sql"),
    ),
    (
        10,
        "task history",
        include_str!("../../migrations/sqlite/0010_task_history.sql"),
    ),
    (
        11,
        "scheduler pid space",
        include_str!("../../migrations/sqlite/0011_scheduler_pid_space.sql"),
    ),
    (
        12,
        "marker targets index",
        include_str!("../../migrations/sqlite/0012_marker_targets_index.sql"),
    ),
    (
        13,
        "running attempts index",
        include_str!("../../migrations/sqlite/0013_running_attempts_index.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        2,
        "alerts",
        include_str!("../../migrations/postgres/0002_alerts.sql"),
    ),
    (
        3,
        "notes",
        include_str!("../../migrations/postgres/0003_attempt_notes.sql"),
    ),
    (
        4,
        "lock pid space",
        include_str!("../../migrations/postgres/0004_lock_pid_space.sql"),
    ),
    (
        5,
        "attempt values",
        include_str!("../../migrations/postgres/0005_attempt_values.sql"),
    ),
    (
        6,
        "marker targets",
        include_str!("../../migrations/postgres/0006_marker_targets.sql"),
    ),
    (
        7,
        "schedules",
        include_str!("../../migrations/postgres/0007_schedules.sql"),
    ),
    (
        8,
        "work queue",
        include_str!("../../migrations/postgres/0008_work_queue.sql"),
    ),
    (
        9,
        "tick holders",
        include_str!("../../migrations/postgres/0009_tick_holders.sql"),
    ),
    (
        10,
        "task history",
        include_str!("../../migrations/postgres/0010_task_history.sql"),
    ),
    (
        11,
        "lease index",
        include_str!("../../migrations/postgres/0011_lease_index.sql"),
    ),
    (
        12,
        "pooled queue index",
        include_str!("../../migrations/postgres/0012_pooled_queue_index.sql"),
    ),
    (
        13,
        "detached runs index",
        include_str!("../../migrations/postgres/0013_detached_runs_index.sql"),
    ),
    (
        14,
        "scheduler pid space",
        include_str!("../../migrations/postgres/0014_scheduler_pid_space.sql"),
    ),
    (
        15,
        "marker targets index",
        include_str!("../../migrations/postgres/0015_marker_targets_index.sql"),
    ),
    (
        16,
        "running attempts index",
        include_str!("../../migrations/postgres/0016_running_attempts_index.sql"),
    ),
];

/// Rows (tuples) as one JSON array of arrays, for a statement that takes them apart.
fn json_rows<T: serde::Serialize>(rows: impl Iterator<Item = T>) -> anyhow::Result<String> {
    serde_json::to_string(&rows.collect::<Vec<T>>()).context("cannot write the rows as JSON")
}

/// The state store on SQLite or PostgreSQL, chosen by the setting's URL.
#[derive(Debug)]
pub struct StateStore {
    pool: DbPool,
}

/// Connections of the store's pool, at most, in a process that is not a worker.
pub const STORE_CONNECTIONS: u32 = 4;

impl StateStore {
    /// Connects to the store named by the setting and brings its schema up to date.
    pub async fn open(setting: &Setting) -> anyhow::Result<StateStore> {
        StateStore::open_with(setting, STORE_CONNECTIONS).await
    }

    /// [`StateStore::open`], with a pool of up to `connections`.
    pub async fn open_with(setting: &Setting, connections: u32) -> anyhow::Result<StateStore> {
        let pool = DbPool::connect(setting, &Target::Production, connections)
            .await
            .context("cannot open the state store")?;
        let store = StateStore { pool };
        store
            .migrate()
            .await
            .with_context(|| format!("cannot migrate the state store at {}", setting.redacted()))?;
        Ok(store)
    }

    /// The database's clock in ms since the Unix epoch, as SQL: heartbeats are written and
    /// judged by one clock, whatever the clocks of the hosts that run pipelines say.
    fn clock_ms(&self) -> &'static str {
        match self.pool {
            DbPool::Sqlite(_) => "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)",
            DbPool::Postgres(_) => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
        }
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        const TRACKING: &str = "CREATE TABLE IF NOT EXISTS pipeline_schema_migrations \
                                (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
        let migrations = match self.pool {
            DbPool::Sqlite(_) => SQLITE_MIGRATIONS,
            DbPool::Postgres(_) => POSTGRES_MIGRATIONS,
        };
        dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            if let DbPool::Postgres(_) = self.pool {
                // Many workers may start at once: one migrates, the others wait for it.
                sqlx::query("SELECT pg_advisory_xact_lock(7354012)").execute(&mut *tx).await?;
            }
            sqlx::query(TRACKING).execute(&mut *tx).await?;
            let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM pipeline_schema_migrations")
                .fetch_one(&mut *tx)
                .await?;
            for (version, name, script) in migrations.iter().filter(|(v, _, _)| Some(*v) > current) {
                sqlx::raw_sql(AssertSqlSafe(*script))
                    .execute(&mut *tx)
                    .await
                    .with_context(|| format!("migration {version} ({name}) failed"))?;
                sqlx::query("INSERT INTO pipeline_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                    .bind(version)
                    .bind(name)
                    .bind(crate::date::now_millis())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

/// A lock's holder from a row of `pipeline_locks` with its `heartbeat_age`.
fn lock_holder<R: Row>(row: &R) -> anyhow::Result<LockHolder>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(LockHolder {
        token: row.try_get("token")?,
        host: row.try_get("host")?,
        pid: row.try_get("pid")?,
        pid_space: row.try_get("pid_space")?,
        started_at: row.try_get("started_at")?,
        heartbeat_at: row.try_get("heartbeat_at")?,
        heartbeat_age_ms: row.try_get("heartbeat_age")?,
    })
}

/// Binds a partition's key as three parameters in a row: pipeline, partition, namespace.
trait BindKey<'k> {
    fn bind_key(self, key: &'k PartitionKey) -> Self;
}

/// For every kind of query, on both backends.
macro_rules! bind_key_for {
    ($db:ty) => {
        impl<'k> BindKey<'k> for sqlx::query::Query<'k, $db, <$db as sqlx::Database>::Arguments> {
            fn bind_key(self, key: &'k PartitionKey) -> Self {
                self.bind(&key.pipeline)
                    .bind(&key.partition)
                    .bind(key.namespace.as_str())
            }
        }
        impl<'k, O> BindKey<'k>
            for sqlx::query::QueryAs<'k, $db, O, <$db as sqlx::Database>::Arguments>
        {
            fn bind_key(self, key: &'k PartitionKey) -> Self {
                self.bind(&key.pipeline)
                    .bind(&key.partition)
                    .bind(key.namespace.as_str())
            }
        }
        impl<'k, O> BindKey<'k>
            for sqlx::query::QueryScalar<'k, $db, O, <$db as sqlx::Database>::Arguments>
        {
            fn bind_key(self, key: &'k PartitionKey) -> Self {
                self.bind(&key.pipeline)
                    .bind(&key.partition)
                    .bind(key.namespace.as_str())
            }
        }
    };
}
bind_key_for!(sqlx::Sqlite);
bind_key_for!(sqlx::Postgres);

fn to_status<T: std::str::FromStr<Err = String>>(text: &str) -> anyhow::Result<T> {
    text.parse().map_err(|err: String| {
        anyhow::anyhow!("state store holds {err}: was it written by a newer version?")
    })
}

impl StateStore {
    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.pool.backend()
    }

    /// Takes the run lock of a partition, or says who holds it.
    pub async fn try_lock(
        &self,
        key: &PartitionKey,
        holder: &LockHolder,
    ) -> anyhow::Result<LockAttempt> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let inserted = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO pipeline_locks (pipeline, partition, namespace, token, host, pid, pid_space, started_at, heartbeat_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {now}) ON CONFLICT DO NOTHING",
            )))
            .bind_key(key)
            .bind(&holder.token)
            .bind(&holder.host)
            .bind(holder.pid)
            .bind(&holder.pid_space)
            .bind(holder.started_at)
            .execute(pool)
            .await?
            .rows_affected();
            if inserted == 1 {
                return Ok(LockAttempt::Acquired);
            }
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT token, host, pid, pid_space, started_at, heartbeat_at, {now} - heartbeat_at AS heartbeat_age \
                 FROM pipeline_locks WHERE pipeline = $1 AND partition = $2 AND namespace = $3",
            )))
            .bind_key(key)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Ok(LockAttempt::Held(lock_holder(&row)?)),
                // Released between the two statements: try again.
                None => Box::pin(self.try_lock(key, holder)).await,
            }
        })
    }

    /// Removes a lock left by a process that is gone, if it is still as `holder` describes
    /// it (same token, no heartbeat since), and closes what it left: its runs `abandoned`,
    /// their running attempts `cancelled`, so that nothing stays "running", and (on
    /// PostgreSQL) their queued and running attempts in the work queue `cancelled`, so that
    /// no worker runs an attempt for a run that nobody coordinates. Whether it was removed.
    pub async fn break_lock(
        &self,
        key: &PartitionKey,
        holder: &LockHolder,
        now: i64,
    ) -> anyhow::Result<bool> {
        let mut broken = false;
        let queues_work = matches!(self.pool, DbPool::Postgres(_));
        let store_now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            // Only the lock as it was judged: a holder that has beaten since keeps it.
            let removed = sqlx::query(
                "DELETE FROM pipeline_locks WHERE pipeline = $1 AND partition = $2 AND namespace = $3 \
                 AND token = $4 AND heartbeat_at = $5",
            )
            .bind_key(key)
            .bind(&holder.token)
            .bind(holder.heartbeat_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if removed == 1 {
                broken = true;
                // One run per partition at a time: whatever is still running there died.
                if queues_work {
                    // Running ones stop at their worker's next renewal, as a cancelled run's;
                    // the queue's times are the store's, as everywhere in it.
                    sqlx::query(AssertSqlSafe(format!(
                        "UPDATE pipeline_work SET state = 'cancelled', finished_at = {store_now} \
                         WHERE kind = 'attempt' AND state IN ('queued', 'running') \
                         AND run_id IN (SELECT id FROM pipeline_runs WHERE pipeline = $1 \
                         AND partition = $2 AND namespace = $3 AND status = $4)",
                    )))
                    .bind_key(key)
                    .bind(RunStatus::Running.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                // `running` as a literal, as in `finish_run`: the index of running attempts
                // serves it (a bound status walked every attempt of the dead run).
                sqlx::query(
                    "UPDATE pipeline_attempts SET status = $1, finished_at = $2, \
                     error = 'its process died before it finished (the run was abandoned)' \
                     WHERE status = 'running' AND run_id IN (SELECT id FROM pipeline_runs \
                     WHERE pipeline = $3 AND partition = $4 AND namespace = $5 AND status = $6)",
                )
                .bind(TaskStatus::Cancelled.as_str())
                .bind(now)
                .bind_key(key)
                .bind(RunStatus::Running.as_str())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE pipeline_runs SET status = $1, finished_at = $2 \
                     WHERE pipeline = $3 AND partition = $4 AND namespace = $5 AND status = $6",
                )
                .bind(RunStatus::Abandoned.as_str())
                .bind(now)
                .bind_key(key)
                .bind(RunStatus::Running.as_str())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(broken)
    }

    /// Every run lock of a pipeline, with its holder.
    pub async fn locks(&self, pipeline: &str) -> anyhow::Result<Vec<(PartitionKey, LockHolder)>> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT partition, namespace, token, host, pid, pid_space, started_at, heartbeat_at, \
                        {now} - heartbeat_at AS heartbeat_age \
                 FROM pipeline_locks WHERE pipeline = $1 ORDER BY partition, namespace",
            )))
            .bind(pipeline)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let namespace: String = row.try_get("namespace")?;
                    Ok((
                        PartitionKey {
                            pipeline: pipeline.to_string(),
                            partition: row.try_get("partition")?,
                            namespace: if namespace == Namespace::Test.as_str() {
                                Namespace::Test
                            } else {
                                Namespace::Production
                            },
                        },
                        lock_holder(row)?,
                    ))
                })
                .collect()
        })
    }

    /// Proves the holder is alive, by the store's clock. False when the lock is no longer
    /// the holder's.
    pub async fn heartbeat(&self, key: &PartitionKey, token: &str) -> anyhow::Result<Heartbeat> {
        let now = self.clock_ms();
        let cancel: Option<Option<i64>> = dispatch!(&self.pool, pool => {
            sqlx::query_scalar(AssertSqlSafe(format!(
                "UPDATE pipeline_locks SET heartbeat_at = {now} \
                 WHERE pipeline = $1 AND partition = $2 AND namespace = $3 AND token = $4 \
                 RETURNING cancel_requested_at",
            )))
            .bind_key(key)
            .bind(token)
            .fetch_optional(pool)
            .await?
        });
        Ok(match cancel {
            None => Heartbeat::Lost,
            Some(None) => Heartbeat::Held,
            Some(Some(_)) => Heartbeat::CancelRequested,
        })
    }

    /// Asks run `run_id` of `pipeline` to cancel: its lock's next heartbeat finds the request,
    /// and the run cancels as on a signal (a distributed run's attempts with it).
    pub async fn request_cancel(
        &self,
        pipeline: &str,
        run_id: i64,
    ) -> anyhow::Result<CancelRequest> {
        let now = self.clock_ms();
        let run = dispatch!(&self.pool, pool => {
            let row = sqlx::query(
                "SELECT partition, namespace, status FROM pipeline_runs WHERE pipeline = $1 AND id = $2",
            )
            .bind(pipeline)
            .bind(run_id)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Some((
                    row.try_get::<String, _>("partition")?,
                    row.try_get::<String, _>("namespace")?,
                    row.try_get::<String, _>("status")?,
                )),
                None => None,
            }
        });
        let Some((partition, namespace, status)) = run else {
            return Ok(CancelRequest::NoSuchRun);
        };
        if status != RunStatus::Running.as_str() {
            return Ok(CancelRequest::Ended(status));
        }
        let requested = dispatch!(&self.pool, pool => {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE pipeline_locks SET cancel_requested_at = {now} \
                 WHERE pipeline = $1 AND partition = $2 AND namespace = $3",
            )))
            .bind(pipeline)
            .bind(&partition)
            .bind(&namespace)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if requested == 0 {
            // Its lock is gone: the process died, and the run is abandoned.
            return Ok(CancelRequest::Ended("abandoned".into()));
        }
        Ok(CancelRequest::Requested { partition })
    }

    /// Releases the lock if it is still `token`'s.
    pub async fn unlock(&self, key: &PartitionKey, token: &str) -> anyhow::Result<()> {
        dispatch!(&self.pool, pool => {
            sqlx::query(
                "DELETE FROM pipeline_locks WHERE pipeline = $1 AND partition = $2 AND namespace = $3 AND token = $4",
            )
            .bind_key(key)
            .bind(token)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Records a new run as `running`; its id.
    pub async fn start_run(&self, run: &NewRun) -> anyhow::Result<i64> {
        let id: i64 = dispatch!(&self.pool, pool => {
            sqlx::query_scalar(
                "INSERT INTO pipeline_runs (pipeline, partition, namespace, status, targets, unit_mode, host, pid, started_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(&run.key.pipeline)
            .bind(&run.key.partition)
            .bind(run.key.namespace.as_str())
            .bind(RunStatus::Running.as_str())
            .bind(views::encode_targets(&run.targets))
            .bind(i64::from(run.unit_mode))
            .bind(&run.host)
            .bind(run.pid)
            .bind(run.started_at)
            .fetch_one(pool)
            .await?
        });
        Ok(id)
    }

    /// Records a run's outcome; any attempt of it still `running` becomes `cancelled`.
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: RunStatus,
        totals: (i64, i64),
        now: i64,
    ) -> anyhow::Result<()> {
        dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            // `running` as a literal: only then can SQLite use the index of running attempts.
            sqlx::query("UPDATE pipeline_attempts SET status = $1, finished_at = $2 WHERE run_id = $3 AND status = 'running'")
                .bind(TaskStatus::Cancelled.as_str())
                .bind(now)
                .bind(run_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                // Only a run still running: one that was given up as abandoned (its process
                // frozen past its lock) keeps that, whatever its late process says.
                "UPDATE pipeline_runs SET status = $1, finished_at = $2, tasks_total = $3, tasks_failed = $4 \
                 WHERE id = $5 AND status = 'running'",
            )
            .bind(status.as_str())
            .bind(now)
            .bind(totals.0)
            .bind(totals.1)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Writes attempts (inserted or updated by `(run_id, task, attempt)`) and markers in one
    /// transaction.
    pub async fn record(
        &self,
        key: &PartitionKey,
        attempts: &[AttemptRecord],
        markers: &[MarkerRecord],
    ) -> anyhow::Result<()> {
        if attempts.is_empty() && markers.is_empty() {
            return Ok(());
        }
        // The rows go as one JSON parameter that the database takes apart: the statements'
        // text never changes (prepared once per connection, where a multi-row VALUES list of
        // another length each batch was parsed again), and nothing is bound row by row. Both
        // databases parse it once into their binary JSON (`jsonb`): as text (`json`), every
        // field read parsed its row again (on PostgreSQL, 10 fields an attempt: a 10,000-task
        // run in one process went from 13,300 to 18,300 tasks a second).
        let postgres = matches!(self.pool, DbPool::Postgres(_));
        // The rows of the JSON parameter `$n`.
        let rows = |n: usize| {
            if postgres {
                format!("jsonb_array_elements(${n}::jsonb) AS rows(value)")
            } else {
                format!("jsonb_each(${n})")
            }
        };
        let attempt_rows = json_rows(attempts.iter().map(|a| {
            (
                a.run_id,
                &a.task,
                a.attempt,
                a.status.as_str(),
                a.started_at,
                a.finished_at,
                &a.error,
                &a.note,
                a.value,
                &a.log,
            )
        }))?;
        let marker_rows = json_rows(
            markers
                .iter()
                .map(|m| (&m.task, m.run_id, m.completed_at, &m.targets)),
        )?;
        // The attempts' rows are `$1`; the markers' rows and key are `$m`, `$m + 1`..
        let insert_attempts = format!(
            "INSERT INTO pipeline_attempts (run_id, task, attempt, status, started_at, \
             finished_at, error, note, value, log) \
             SELECT CAST(value->>0 AS BIGINT), value->>1, CAST(value->>2 AS BIGINT), value->>3, \
             CAST(value->>4 AS BIGINT), CAST(value->>5 AS BIGINT), value->>6, value->>7, \
             CAST(value->>8 AS DOUBLE PRECISION), value->>9 FROM {} WHERE true \
             ON CONFLICT (run_id, task, attempt) DO UPDATE SET status = excluded.status, \
             finished_at = excluded.finished_at, error = excluded.error, note = excluded.note, \
             value = excluded.value, log = COALESCE(excluded.log, pipeline_attempts.log)",
            rows(1)
        );
        let insert_markers = |m: usize| {
            format!(
                "INSERT INTO pipeline_markers (pipeline, partition, namespace, task, run_id, \
                 completed_at, targets) \
                 SELECT ${}, ${}, ${}, value->>0, CAST(value->>1 AS BIGINT), \
                 CAST(value->>2 AS BIGINT), value->>3 FROM {} WHERE true \
                 ON CONFLICT (pipeline, partition, namespace, task) DO UPDATE SET \
                 run_id = excluded.run_id, completed_at = excluded.completed_at, \
                 targets = excluded.targets",
                m + 1,
                m + 2,
                m + 3,
                rows(m)
            )
        };
        match &self.pool {
            // One statement, atomic by itself: one round trip where a transaction of two
            // took four (a coordinator of a distributed run records after every batch).
            DbPool::Postgres(pool) => {
                sqlx::query(AssertSqlSafe(format!(
                    "WITH attempts AS ({insert_attempts}) {}",
                    insert_markers(2)
                )))
                .bind(attempt_rows)
                .bind(marker_rows)
                .bind(&key.pipeline)
                .bind(&key.partition)
                .bind(key.namespace.as_str())
                .execute(pool)
                .await?;
            }
            DbPool::Sqlite(pool) => {
                let mut tx = pool.begin_write().await?;
                if !attempts.is_empty() {
                    sqlx::query(AssertSqlSafe(insert_attempts))
                        .bind(attempt_rows)
                        .execute(&mut *tx)
                        .await?;
                }
                if !markers.is_empty() {
                    sqlx::query(AssertSqlSafe(insert_markers(1)))
                        .bind(marker_rows)
                        .bind(&key.pipeline)
                        .bind(&key.partition)
                        .bind(key.namespace.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// The tasks complete for the partition.
    pub async fn completed(&self, key: &PartitionKey) -> anyhow::Result<HashSet<String>> {
        Ok(self.completion(key).await?.complete)
    }

    /// The tasks complete for the partition, and which of them wrote to databases, in one
    /// statement. Read as JSON: the SQLite driver hands every row of a result from its thread
    /// to the caller's on its own (a re-run of 5,000 complete tasks spent a third of its time on
    /// those hand-offs), and every statement through the pool costs a round trip more.
    pub async fn completion(&self, key: &PartitionKey) -> anyhow::Result<Completion> {
        let (tasks, targets) = match &self.pool {
            DbPool::Sqlite(_) => ("json_group_array(task)", "json_group_object(task, targets)"),
            DbPool::Postgres(_) => (
                "COALESCE(json_agg(task)::text, '[]')",
                "COALESCE(json_object_agg(task, targets)::text, '{}')",
            ),
        };
        const OF_KEY: &str = "FROM pipeline_markers \
                              WHERE pipeline = $1 AND partition = $2 AND namespace = $3";
        // The targets are found through their own index (most markers have none).
        let sql =
            format!("SELECT {tasks}, (SELECT {targets} {OF_KEY} AND targets IS NOT NULL) {OF_KEY}");
        let (complete, targets): (String, String) = dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind_key(key)
                .fetch_one(pool)
                .await?
        });
        Ok(Completion {
            complete: serde_json::from_str(&complete)
                .context("cannot read the complete tasks from the state store")?,
            targets: serde_json::from_str(&targets)
                .context("cannot read the complete tasks' targets from the state store")?,
        })
    }

    /// The tasks of the partition with an alert still open, and its severity.
    pub(crate) async fn open_alerts(
        &self,
        key: &PartitionKey,
    ) -> anyhow::Result<HashMap<String, Severity>> {
        let rows: Vec<(String, String)> = dispatch!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT task, severity FROM pipeline_alerts \
                 WHERE pipeline = $1 AND partition = $2 AND namespace = $3",
            )
            .bind_key(key)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(task, severity)| (task, Severity::parse(&severity)))
            .collect())
    }

    /// Opens (`Some`) or resolves (`None`) the alert of each task, in order.
    pub(crate) async fn set_alerts(
        &self,
        key: &PartitionKey,
        alerts: &[(String, Option<Severity>)],
        now: i64,
    ) -> anyhow::Result<()> {
        dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            for (task, severity) in alerts {
                match severity {
                    Some(severity) => sqlx::query(
                        "INSERT INTO pipeline_alerts (pipeline, partition, namespace, task, severity, opened_at) \
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (pipeline, partition, namespace, task) \
                         DO UPDATE SET severity = excluded.severity, opened_at = excluded.opened_at",
                    )
                    .bind_key(key)
                    .bind(task)
                    .bind(severity.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?,
                    None => sqlx::query(
                        "DELETE FROM pipeline_alerts \
                         WHERE pipeline = $1 AND partition = $2 AND namespace = $3 AND task = $4",
                    )
                    .bind_key(key)
                    .bind(task)
                    .execute(&mut *tx)
                    .await?,
                };
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The latest runs of a pipeline, newest first.
    pub async fn runs(&self, pipeline: &str, limit: u32) -> anyhow::Result<Vec<RunRecord>> {
        self.find_runs(pipeline, &RunFilter::default(), limit).await
    }

    /// An attempt's status and the log it kept (so far, while it runs); `None` when there is
    /// no such attempt.
    pub async fn attempt_log(
        &self,
        run_id: i64,
        task: &str,
        attempt: u32,
    ) -> anyhow::Result<Option<(TaskStatus, Option<String>)>> {
        dispatch!(&self.pool, pool => {
            let row = sqlx::query(
                "SELECT status, log FROM pipeline_attempts WHERE run_id = $1 AND task = $2 AND attempt = $3",
            )
            .bind(run_id)
            .bind(task)
            .bind(i64::from(attempt))
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Ok(Some((to_status(row.try_get("status")?)?, row.try_get("log")?))),
                None => Ok(None),
            }
        })
    }

    /// Whether the store answers a query now: what a readiness probe asks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        dispatch!(&self.pool, pool => {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .context("the state store does not answer")?;
        });
        Ok(())
    }

    /// Closes the store's connections.
    pub async fn close(&self) -> () {
        self.pool.close().await
    }
}
