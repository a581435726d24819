//! The queue of distributed runs, on PostgreSQL only: attempts that a coordinating run queues,
//! that workers claim with `FOR UPDATE SKIP LOCKED` in one short statement, and that they hold
//! under a lease on the database's clock. Every write of a worker names its lease token: a
//! write that updates no row means the lease is gone, and the worker drops the attempt.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions};
use sqlx::{AssertSqlSafe, ConnectOptions as _, PgConnection, PgPool, Postgres, Row};

use super::StateStore;
use super::line::StoreLine;
use crate::db::DbPool;
use crate::state::{
    ClaimRequest, Claimed, ClaimedWork, FINISHED_CHANNEL, FinishedWork, NewWork, PLAIN_SUCCESS,
    PartitionKey, QUEUED_CHANNEL, WorkOutcome, WorkerRecord,
};

/// Connections a worker holds at least: its lease line, its queue's notifications, its claims'
/// and its outcomes' lines, and one for the rest.
pub const WORKER_CONNECTIONS: u32 = 5;

/// How long a lease line waits for the server when it connects again.
const LINE_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A worker's own connection to the state store for its heartbeat and lease renewals (see
/// [`StateStore::lease_line`]). A renewal that fails drops the connection; the next one
/// connects again, so a worker is back within its next try after a database restart.
pub struct LeaseLine {
    options: Arc<PgConnectOptions>,
    conn: Option<LeaseConn>,
    /// The pool's connection after it failed, kept until the line closes: its place in the
    /// pool stays taken, so that the pool never opens more than the role allows beside the
    /// line's own connection, and the pool gets it back (and closes it) when the worker stops.
    failed_place: Option<PoolConnection<Postgres>>,
    clock: &'static str,
}

/// The lease line's connection: the pool's at first, so that the pool counts it against the
/// connections the role allows and takes it back when the worker stops; its own after a
/// failure (a renewal never waits for a pooled connection).
enum LeaseConn {
    Pooled(PoolConnection<Postgres>),
    Own(PgConnection),
}

impl LeaseConn {
    fn get(&mut self) -> &mut PgConnection {
        match self {
            LeaseConn::Pooled(conn) => conn,
            LeaseConn::Own(conn) => conn,
        }
    }
}

impl std::fmt::Debug for LeaseLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseLine")
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl LeaseLine {
    /// Ends the connection as the server expects (dropped, it is logged as reset by peer): the
    /// pool's goes back to the pool, which closes it with the others.
    pub async fn close(self) {
        drop(self.failed_place);
        match self.conn {
            Some(LeaseConn::Pooled(conn)) => drop(conn),
            Some(LeaseConn::Own(conn)) => {
                let _ = sqlx::Connection::close(conn).await;
            }
            None => {}
        }
    }

    /// Renews the worker's heartbeat and the leases of the attempts it holds (`tokens`: those
    /// running, and those that ended here with their outcome on its way), in one statement:
    /// the tokens still the worker's. A running attempt missing from the answer was cancelled
    /// by its run or rescued after its lease ran out: stop it, write nothing. A row that another
    /// statement holds right now is passed over, not waited for (renewed at the next renewal).
    /// Without an answer `within`, it gives up.
    pub async fn renew(
        &mut self,
        worker: &WorkerRecord,
        stopping: bool,
        tokens: &[String],
        lease_ms: i64,
        within: Duration,
    ) -> anyhow::Result<Vec<String>> {
        let conn = match &mut self.conn {
            Some(conn) => conn.get(),
            None => {
                let connected = tokio::time::timeout(LINE_CONNECT_TIMEOUT, self.options.connect())
                    .await
                    .map_err(|_| anyhow::anyhow!("no answer from the state store"))??;
                self.conn.insert(LeaseConn::Own(connected)).get()
            }
        };
        let now = self.clock;
        // Waits for no row: a row that another statement holds (an outcome being written, a
        // cancel, a rescue) is passed over, and counts as the worker's if it was when the
        // statement began; whatever that statement decides, the next renewal sees. Waiting
        // for it while holding others is how a renewal and an outcome write deadlocked.
        // Every row is found by its id, which ends its token (`prefix:id`), through the
        // primary key, then locked and updated by its row address (`ctid`; a row changed by
        // another statement meanwhile has a new address, and is passed over): no plan reads
        // more than the worker's own rows, whatever the statistics say. Left to the planner,
        // without statistics of a queue that filled during the run, a renewal scanned every
        // running attempt of the store or all of the queue's history, and took the lock again
        // for every running attempt (129 index lookups a renewal, 4 workers of 8 slots).
        let renewed = sqlx::query_scalar(AssertSqlSafe(format!(
            "WITH heartbeat AS (UPDATE pipeline_workers SET heartbeat_at = {now}, stopping = $4 \
             WHERE id = $3), \
             held AS MATERIALIZED (SELECT w.row, w.lease_token FROM unnest($1::TEXT[]) AS t(token) \
             CROSS JOIN LATERAL (SELECT ctid AS row, lease_token, state, lease_until \
             FROM pipeline_work WHERE id = substring(t.token FROM '[0-9]+$')::BIGINT OFFSET 0) w \
             WHERE w.lease_token = t.token AND w.state = 'running' AND w.lease_until >= {now}), \
             free AS MATERIALIZED (SELECT l.row FROM held CROSS JOIN LATERAL \
             (SELECT ctid AS row FROM pipeline_work WHERE ctid = held.row AND state = 'running' \
             AND lease_until >= {now} FOR UPDATE SKIP LOCKED) l), \
             renewed AS (UPDATE pipeline_work w SET lease_until = {now} + $2 FROM free \
             WHERE w.ctid = free.row RETURNING w.id) \
             SELECT lease_token FROM held"
        )))
        .bind(tokens)
        .bind(lease_ms)
        .bind(&worker.id)
        .bind(stopping)
        .fetch_all(&mut *conn);
        let renewed = match tokio::time::timeout(within, renewed).await {
            Ok(renewed) => renewed.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow::anyhow!("no answer within {within:?}")),
        };
        if renewed.is_err() {
            // Broken, or left with a statement under way: the next renewal connects afresh.
            match self.conn.take() {
                Some(LeaseConn::Pooled(conn)) => self.failed_place = Some(conn),
                Some(LeaseConn::Own(conn)) => drop(conn),
                None => {}
            }
        }
        renewed
    }
}

/// Runs a statement on a [`StoreLine`]: `$conn` names the line's connection in
/// `$statement`, which is built afresh for a second try when the first lost the connection.
macro_rules! on_line {
    ($line:expr, $conn:ident => $statement:expr) => {{
        let mut tried = false;
        loop {
            let $conn = match $line.conn().await {
                Ok(conn) => conn,
                // No connection to be had: the caller's error, with its context.
                Err(err) => break Err(err),
            };
            match $statement.await {
                Ok(done) => break Ok(done),
                Err(err) => {
                    if $line.failed(&err) && !tried {
                        tried = true;
                        tracing::debug!("a statement lost its connection; tried again: {err}");
                        continue;
                    }
                    break Err(err);
                }
            }
        }
    }};
}

/// Attempt ids in one notification of what ended (`run_id:id,id,..`): well inside the 8,000
/// bytes a payload may hold.
const IDS_PER_NOTIFICATION: usize = 300;

/// How often a statement that PostgreSQL aborted for a conflict with another is tried again.
const CONFLICT_TRIES: u32 = 5;

/// Whether PostgreSQL aborted the statement for a conflict with another that a second try
/// resolves: a deadlock (`40P01`) or a serialization failure (`40001`).
fn is_conflict(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|db| db.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

impl StateStore {
    /// The PostgreSQL pool, or an error that says what to configure.
    pub(crate) fn postgres(&self, what: impl std::fmt::Display) -> anyhow::Result<&PgPool> {
        match &self.pool {
            DbPool::Postgres(pool) => Ok(pool),
            DbPool::Sqlite(_) => bail!(
                "{what} needs a PostgreSQL state store, which workers on many hosts share; this \
                 one is SQLite: set PIPELINE_STATE_URL (or [state] url in pipeline.toml) to a \
                 postgres:// URL"
            ),
        }
    }

    /// The attempts of distributed runs of `pipeline` that are ready (queued, their pool has
    /// room), running, and waiting for their pool's slot: the scaling signal. Nothing on a
    /// SQLite store, which runs no distributed runs. Each state is read through its own
    /// partial index (`state IN (..)` would walk the run index over every attempt ever
    /// queued), so a scrape costs what is live, not the queue's history.
    pub async fn queue_counts(&self, pipeline: &str) -> anyhow::Result<(i64, i64, i64)> {
        let DbPool::Postgres(pool) = &self.pool else {
            return Ok((0, 0, 0));
        };
        // Running means under a live lease, as a claim counts a pool's slots.
        let now = self.clock_ms();
        let row: (i64, i64, i64) = sqlx::query_as(AssertSqlSafe(format!(
            "WITH busy AS (SELECT pool, count(*) AS n FROM pipeline_work \
                           WHERE pipeline = $1 AND state = 'running' AND pool IS NOT NULL \
                           AND lease_until >= {now} GROUP BY pool), \
                  live AS (SELECT state, pool, pool_size FROM pipeline_work \
                           WHERE pipeline = $1 AND kind = 'attempt' AND state = 'queued' \
                           UNION ALL \
                           SELECT state, pool, pool_size FROM pipeline_work \
                           WHERE pipeline = $1 AND kind = 'attempt' AND state = 'running' \
                           AND lease_until >= {now}) \
             SELECT count(*) FILTER (WHERE q.state = 'queued' \
                                     AND (q.pool IS NULL OR coalesce(b.n, 0) < q.pool_size)), \
                    count(*) FILTER (WHERE q.state = 'running'), \
                    count(*) FILTER (WHERE q.state = 'queued' AND q.pool IS NOT NULL \
                                     AND coalesce(b.n, 0) >= q.pool_size) \
             FROM live q LEFT JOIN busy b ON b.pool = q.pool"
        )))
        .bind(pipeline)
        .fetch_one(pool)
        .await
        .context("cannot count the queue of distributed runs")?;
        Ok(row)
    }

    /// A connection held for a series of statements of one caller, such as a worker's
    /// claims (see [`StoreLine`]).
    pub fn line(&self, what: &str) -> anyhow::Result<StoreLine> {
        Ok(StoreLine::new(self.postgres(what)?.clone()))
    }

    /// The database clock, for callers that compare with what the store wrote.
    pub async fn clock_now_ms(&self) -> anyhow::Result<i64> {
        let pool = self.postgres("the database clock")?;
        let now = self.clock_ms();
        let ms: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT {now}")))
            .fetch_one(pool)
            .await?;
        Ok(ms)
    }

    /// Registers a worker, or renews its heartbeat; `stopping` once it no longer claims.
    pub async fn heartbeat_worker(
        &self,
        worker: &WorkerRecord,
        stopping: bool,
    ) -> anyhow::Result<()> {
        let pool = self.postgres("a worker")?;
        let now = self.clock_ms();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO pipeline_workers \
             (id, pipeline, host, pid, fingerprint, slots, started_at, heartbeat_at, stopping) \
             VALUES ($1, $2, $3, $4, $5, $6, {now}, {now}, $7) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = {now}, stopping = excluded.stopping"
        )))
        .bind(&worker.id)
        .bind(&worker.pipeline)
        .bind(&worker.host)
        .bind(worker.pid)
        .bind(&worker.fingerprint)
        .bind(i32::try_from(worker.slots).unwrap_or(i32::MAX))
        .bind(stopping)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// The connection a worker renews its heartbeat and leases on, taken out of the pool for
    /// good, so that renewals never queue behind claims, outcomes or task work. Refused when
    /// the role's connection limit leaves the worker too few: the line, its queue's
    /// notifications, and at least one for claims and outcomes.
    pub async fn lease_line(&self) -> anyhow::Result<LeaseLine> {
        let pool = self.postgres("a worker")?;
        let allowed = pool.options().get_max_connections();
        if allowed < WORKER_CONNECTIONS {
            bail!(
                "a worker needs {WORKER_CONNECTIONS} connections to the state store (lease \
                 renewals, queue notifications, claims, outcomes and the rest), and its role or \
                 database allows {allowed} more: raise the CONNECTION LIMIT of the role or \
                 database"
            );
        }
        let conn = pool
            .acquire()
            .await
            .context("cannot connect to the state store for lease renewals")?;
        Ok(LeaseLine {
            options: pool.connect_options(),
            conn: Some(LeaseConn::Pooled(conn)),
            failed_place: None,
            clock: self.clock_ms(),
        })
    }

    /// Removes a worker that stopped.
    pub async fn remove_worker(&self, id: &str) -> anyhow::Result<()> {
        let pool = self.postgres("a worker")?;
        sqlx::query("DELETE FROM pipeline_workers WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Workers whose heartbeat is younger than `live_ms` by the store's clock, with the tasks
    /// they run now, oldest first.
    pub async fn workers(&self, pipeline: &str, live_ms: i64) -> anyhow::Result<Vec<WorkerRecord>> {
        let pool = self.postgres(crate::message::Command("workers"))?;
        let now = self.clock_ms();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT w.id, w.pipeline, w.host, w.pid, w.fingerprint, w.slots, w.started_at, \
             w.heartbeat_at, w.stopping, {now} - w.heartbeat_at AS age, \
             ARRAY(SELECT q.task FROM pipeline_work q WHERE q.worker_id = w.id \
                   AND q.state = 'running' AND q.kind = 'attempt' ORDER BY q.task) AS running \
             FROM pipeline_workers w WHERE w.pipeline = $1 AND w.heartbeat_at > {now} - $2 \
             ORDER BY w.started_at, w.id"
        )))
        .bind(pipeline)
        .bind(live_ms)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WorkerRecord {
                    id: row.try_get("id")?,
                    pipeline: row.try_get("pipeline")?,
                    host: row.try_get("host")?,
                    pid: row.try_get("pid")?,
                    fingerprint: row.try_get("fingerprint")?,
                    slots: usize::try_from(row.try_get::<i32, _>("slots")?).unwrap_or(0),
                    started_at: row.try_get("started_at")?,
                    heartbeat_at: row.try_get("heartbeat_at")?,
                    heartbeat_age_ms: row.try_get("age")?,
                    stopping: row.try_get("stopping")?,
                    // An array, not a joined string: a task's name may hold any separator.
                    running: row.try_get("running")?,
                })
            })
            .collect()
    }

    /// Queues attempts of one run and wakes the workers, in one statement: their ids, in the
    /// order given. Every attempt names the same run (the first one's). On the pool, not on a
    /// held line: an insert is not tried twice (a first one that committed before its
    /// connection was lost would leave attempts that no run waits for, and that a worker
    /// would run anyway), so it needs the pool's check of a connection before it is sent.
    pub async fn queue_work(&self, work: &[NewWork]) -> anyhow::Result<Vec<i64>> {
        let pool = self.postgres(crate::message::Command("run --distributed"))?;
        let Some(first) = work.first() else {
            return Ok(Vec::new());
        };
        let now = self.clock_ms();
        let tasks: Vec<&str> = work.iter().map(|w| w.task.as_str()).collect();
        let attempts: Vec<i32> = work
            .iter()
            .map(|w| i32::try_from(w.attempt).unwrap_or(i32::MAX))
            .collect();
        let priorities: Vec<i32> = work.iter().map(|w| w.priority).collect();
        let pools: Vec<Option<&str>> = work
            .iter()
            .map(|w| w.pool.as_ref().map(|(name, _)| name.as_str()))
            .collect();
        let pool_sizes: Vec<Option<i32>> = work
            .iter()
            .map(|w| {
                w.pool
                    .as_ref()
                    .map(|(_, size)| i32::try_from(*size).unwrap_or(i32::MAX))
            })
            .collect();
        let sql = format!(
            "WITH queued AS (INSERT INTO pipeline_work \
             (run_id, pipeline, partition, namespace, unit_mode, task, attempt, fingerprint, \
              priority, pool, pool_size, state, queued_at) \
             SELECT $1, $2, $3, $4, $5, t.task, t.attempt, $6, t.priority, t.pool, t.pool_size, \
             'queued', {now} FROM unnest($7::TEXT[], $8::INTEGER[], $9::INTEGER[], $10::TEXT[], \
             $11::INTEGER[]) AS t(task, attempt, priority, pool, pool_size) \
             RETURNING id, task, attempt), \
             woken AS (SELECT pg_notify('{QUEUED_CHANNEL}', '')) \
             SELECT id, task, attempt FROM queued, woken"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(first.run_id)
            .bind(&first.key.pipeline)
            .bind(&first.key.partition)
            .bind(first.key.namespace.as_str())
            .bind(first.unit_mode)
            .bind(&first.fingerprint)
            .bind(&tasks)
            .bind(&attempts)
            .bind(&priorities)
            .bind(&pools)
            .bind(&pool_sizes)
            .fetch_all(pool)
            .await
            .context("cannot queue the attempts")?;
        let mut ids = std::collections::HashMap::new();
        for row in &rows {
            let task: String = row.try_get("task")?;
            let attempt: i32 = row.try_get("attempt")?;
            ids.insert((task, attempt), row.try_get::<i64, _>("id")?);
        }
        tasks
            .iter()
            .zip(&attempts)
            .map(|(task, attempt)| {
                ids.get(&(task.to_string(), *attempt))
                    .copied()
                    .context("an attempt was not queued")
            })
            .collect()
    }

    /// Claims up to `request.limit` queued attempts of highest priority (the oldest among
    /// equals) of a graph with the request's fingerprint, each under a lease of
    /// `request.lease_ms` on the store's clock with a token of its own (the request's prefix
    /// and its id). Attempts in no pool are claimed in one statement that commits at once. An
    /// attempt in a resource pool is claimed only while fewer than the pool's size of its
    /// attempts run, counted across every run and worker: one such claim at a time, under a
    /// lock that workers take only for it.
    pub async fn claim_work(
        &self,
        line: &mut StoreLine,
        request: &ClaimRequest<'_>,
    ) -> anyhow::Result<Claimed> {
        let now = self.clock_ms();
        // With the attempts in no pool, whether any in a pool wait: one statement either way.
        let sql = format!(
            "WITH claimed AS ({}), pooled AS (SELECT EXISTS (SELECT 1 FROM pipeline_work \
                 WHERE pipeline = $1 AND state = 'queued' AND kind = 'attempt' \
                 AND fingerprint = $2 AND pool IS NOT NULL) AS waiting) \
                 SELECT claimed.*, pooled.waiting FROM pooled LEFT JOIN claimed ON TRUE",
            claim_sql(now, false)
        );
        let rows = on_line!(line, conn => request
            .bind(sqlx::query(AssertSqlSafe(sql.as_str())))
            .fetch_all(conn))?;
        let pooled_waiting = match rows.first() {
            Some(row) => row.try_get::<bool, _>("waiting")?,
            None => false,
        };
        let mut claimed: Vec<ClaimedWork> = rows
            .iter()
            .filter(|row| row.try_get::<Option<i64>, _>("id").ok().flatten().is_some())
            .map(claimed_work)
            .collect::<anyhow::Result<_>>()?;
        // What was claimed is the worker's whatever follows: a pooled claim that fails ends
        // the claim with what it has (the worker looks again at its next freed slot or
        // wake-up). Returning the error instead dropped attempts whose leases already ran,
        // to be reported lost once they ran out.
        while pooled_waiting && claimed.len() < request.limit {
            let one = match line.conn().await {
                Ok(conn) => self.claim_one_pooled(conn, request).await,
                Err(err) => Err(err.into()),
            };
            match one {
                Ok(Some(work)) => claimed.push(work),
                Ok(None) => break,
                Err(err) => {
                    // The next claim starts on a fresh connection.
                    line.reset();
                    tracing::warn!("cannot claim attempts in a resource pool: {err:#}");
                    break;
                }
            }
        }
        // RETURNING follows no order: start the most urgent first.
        claimed.sort_by_key(|work| work.id);
        Ok(Claimed {
            drained: !pooled_waiting && claimed.len() < request.limit,
            work: claimed,
        })
    }

    /// Claims one attempt in a pool that has room, under the pools' lock: the pool's count is
    /// of the statement's snapshot, which the lock makes sure no other such claim changes
    /// meanwhile.
    async fn claim_one_pooled(
        &self,
        conn: &mut PgConnection,
        request: &ClaimRequest<'_>,
    ) -> anyhow::Result<Option<ClaimedWork>> {
        let mut tx = sqlx::Connection::begin(conn).await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7354013)")
            .execute(&mut *tx)
            .await?;
        let one = ClaimRequest {
            limit: 1,
            ..*request
        };
        let row = one
            .bind(sqlx::query(AssertSqlSafe(claim_sql(self.clock_ms(), true))))
            .fetch_optional(&mut *tx)
            .await?;
        // Read before the commit: a row that cannot be read is not claimed.
        let work = row.as_ref().map(claimed_work).transpose()?;
        tx.commit().await?;
        Ok(work)
    }

    /// Queues a detached run: its options, for the worker that coordinates it. Its id.
    pub async fn submit_run(
        &self,
        key: &PartitionKey,
        fingerprint: &str,
        options: &str,
    ) -> anyhow::Result<i64> {
        let pool = self.postgres(crate::message::Command("run --distributed --detach"))?;
        let now = self.clock_ms();
        let id: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "WITH queued AS (INSERT INTO pipeline_work \
             (run_id, pipeline, partition, namespace, unit_mode, task, attempt, fingerprint, \
              priority, kind, options, state, queued_at) \
             VALUES (0, $1, $2, $3, FALSE, '', 0, $4, 0, 'run', $5, 'queued', {now}) \
             RETURNING id), woken AS (SELECT pg_notify('{QUEUED_CHANNEL}', '')) \
             SELECT id FROM queued, woken"
        )))
        .bind(&key.pipeline)
        .bind(&key.partition)
        .bind(key.namespace.as_str())
        .bind(fingerprint)
        .bind(options)
        .fetch_one(pool)
        .await
        .context("cannot submit the run")?;
        Ok(id)
    }

    /// Takes on the coordination of a detached run of a graph with `fingerprint`: one queued,
    /// or one whose coordinator's lease ran out (checked inside the update, so one worker
    /// takes it over). Its id and options.
    pub async fn claim_submission(
        &self,
        pipeline: &str,
        fingerprint: &str,
        worker: &str,
        token_prefix: &str,
        lease_ms: i64,
    ) -> anyhow::Result<Option<(i64, String, String)>> {
        let pool = self.postgres("a worker")?;
        let now = self.clock_ms();
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE pipeline_work SET state = 'running', worker_id = $3, \
             lease_token = $4 || ':' || id, lease_until = {now} + $5, claimed_at = {now} \
             WHERE id = (SELECT id FROM pipeline_work WHERE pipeline = $1 AND kind = 'run' \
                         AND state IN ('queued', 'running') \
                         AND fingerprint = $2 AND (state = 'queued' OR (state = 'running' \
                         AND (lease_until IS NULL OR lease_until < {now}))) \
                         ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id, options, lease_token"
        )))
        .bind(pipeline)
        .bind(fingerprint)
        .bind(worker)
        .bind(token_prefix)
        .bind(lease_ms)
        .fetch_optional(pool)
        .await?;
        match row {
            Some(row) => Ok(Some((
                row.try_get("id")?,
                row.try_get::<Option<String>, _>("options")?
                    .unwrap_or_default(),
                row.try_get("lease_token")?,
            ))),
            None => Ok(None),
        }
    }

    /// Gives a detached run back to the queue (its coordinator stops), if the lease is still
    /// `token`'s: another worker takes it on.
    pub async fn release_submission(&self, id: i64, token: &str) -> anyhow::Result<()> {
        let pool = self.postgres("a worker")?;
        sqlx::query(
            "UPDATE pipeline_work SET state = 'queued', worker_id = NULL, lease_token = NULL, \
             lease_until = NULL WHERE id = $1 AND lease_token = $2 AND state = 'running'",
        )
        .bind(id)
        .bind(token)
        .execute(pool)
        .await?;
        Ok(())
    }

    /// Runs queued for a graph other than `fingerprint`: what a worker of another version
    /// leaves alone, and says so.
    pub async fn foreign_runs(
        &self,
        pipeline: &str,
        fingerprint: &str,
    ) -> anyhow::Result<Vec<(i64, String)>> {
        let pool = self.postgres("a worker")?;
        let rows = sqlx::query(
            "SELECT DISTINCT run_id, fingerprint FROM pipeline_work \
             WHERE pipeline = $1 AND state = 'queued' AND fingerprint <> $2 ORDER BY run_id",
        )
        .bind(pipeline)
        .bind(fingerprint)
        .fetch_all(pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("run_id")?, row.try_get("fingerprint")?)))
            .collect()
    }

    /// Records how an attempt ended, if its lease is still the worker's: whether it was.
    pub async fn finish_work(
        &self,
        id: i64,
        token: &str,
        outcome: &WorkOutcome,
    ) -> anyhow::Result<bool> {
        let mut line = self.line("a worker")?;
        let accepted = self
            .finish_works(&mut line, &[(id, token.to_string(), outcome.clone())])
            .await?;
        Ok(accepted.contains(&id))
    }

    /// Records how attempts ended, each if its lease is still the worker's, in one statement
    /// that also wakes their runs' coordinators: the ids whose outcome was taken. The
    /// notification names each attempt, marked when it simply succeeded (nothing more to
    /// read), so that the coordinator reads only the rows that say more.
    pub async fn finish_works(
        &self,
        line: &mut StoreLine,
        outcomes: &[(i64, String, WorkOutcome)],
    ) -> anyhow::Result<Vec<i64>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock_ms();
        let column = |f: &dyn Fn(&WorkOutcome) -> Option<String>| -> Vec<Option<String>> {
            outcomes.iter().map(|(_, _, outcome)| f(outcome)).collect()
        };
        let ids: Vec<i64> = outcomes.iter().map(|(id, _, _)| *id).collect();
        let tokens: Vec<&str> = outcomes
            .iter()
            .map(|(_, token, _)| token.as_str())
            .collect();
        let states = column(&|o| Some(if o.handed_back { "handed_back" } else { "done" }.into()));
        let statuses = column(&|o| Some(o.status.as_str().into()));
        let errors = column(&|o| o.error.clone());
        let notes = column(&|o| o.note.clone());
        let targets = column(&|o| o.targets.clone());
        let logs = column(&|o| o.log.clone());
        let fatal: Vec<bool> = outcomes.iter().map(|(_, _, o)| o.fatal).collect();
        let values: Vec<Option<f64>> = outcomes.iter().map(|(_, _, o)| o.value).collect();
        let sql = outcome_sql(now);
        // A renewal of the same worker's leases may hold one of these rows while it waits for
        // another that this statement holds: PostgreSQL then aborts one of the two. A
        // renewal tries again anyway; an outcome must not be lost to it, so it is written again
        // (the statement takes only attempts still running under their token: a second try
        // after a first that committed takes nothing twice).
        let mut tries = 0;
        let accepted: Vec<i64> = loop {
            let written = on_line!(line, conn => sqlx::query_scalar(AssertSqlSafe(sql.as_str()))
                .bind(&ids)
                .bind(&tokens)
                .bind(&states)
                .bind(&statuses)
                .bind(&errors)
                .bind(&fatal)
                .bind(&notes)
                .bind(&values)
                .bind(&targets)
                .bind(&logs)
                .fetch_all(conn));
            match written {
                Ok(accepted) => break accepted,
                Err(err) if tries < CONFLICT_TRIES && is_conflict(&err) => {
                    tries += 1;
                    tracing::debug!("outcomes written again after a conflict: {err}");
                    tokio::time::sleep(Duration::from_millis(10 << tries)).await;
                }
                Err(err) => return Err(err).context("cannot write the attempts' outcomes"),
            }
        };
        Ok(accepted)
    }

    /// The statement that writes outcomes (`$1` ids, `$2` lease tokens, then the outcomes'
    /// columns), for tests of its plan.
    pub fn outcome_write_sql(&self) -> String {
        outcome_sql(self.clock_ms())
    }

    /// Of a run's attempts `ids`, those that ended: on their worker, by a cancel, or because
    /// their lease ran out (marked `lost` by [`StateStore::rescue_lost`]).
    pub async fn finished_work(
        &self,
        run_id: i64,
        ids: &[i64],
    ) -> anyhow::Result<Vec<FinishedWork>> {
        let pool = self.postgres(crate::message::Command("run --distributed"))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Each id by the primary key (`OFFSET 0` keeps the planner from flattening the lookup):
        // the `(run_id, state)` index would read every finished attempt of the run on every
        // poll, which grows with the run.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FINISHED_COLUMNS} \
             FROM unnest($2::BIGINT[]) AS wanted(id) \
             CROSS JOIN LATERAL (SELECT * FROM pipeline_work w WHERE w.id = wanted.id OFFSET 0) w \
             WHERE w.run_id = $1 AND w.state IN ('done', 'lost', 'handed_back', 'cancelled')"
        )))
        .bind(run_id)
        .bind(ids)
        .fetch_all(pool)
        .await?;
        rows.iter().map(ended_work).collect()
    }

    /// Marks `lost` the run's attempts still running under a lease that ran out, and returns
    /// them as ended. The check is inside the update, so an attempt is never both rescued and
    /// finished by its worker. It reads the run's running attempts through the index of its
    /// attempts by state: its cost is what runs, not what the run waits for (sent the ids of
    /// all 40,000 attempts a run waited for, every second, it took 7 ms instead of 0.1 ms).
    pub async fn rescue_lost(&self, run_id: i64) -> anyhow::Result<Vec<FinishedWork>> {
        let pool = self.postgres(crate::message::Command("run --distributed"))?;
        let now = self.clock_ms();
        let rows = sqlx::query(AssertSqlSafe(format!(
            "UPDATE pipeline_work w SET state = 'lost', finished_at = {now} \
             WHERE w.run_id = $1 AND w.state = 'running' \
             AND (w.lease_until IS NULL OR w.lease_until < {now}) \
             RETURNING {FINISHED_COLUMNS}"
        )))
        .bind(run_id)
        .fetch_all(pool)
        .await?;
        rows.iter().map(ended_work).collect()
    }

    /// Cancels a run's attempts that have not ended: queued ones are never claimed, and the
    /// workers running the others stop them at their next renewal.
    pub async fn cancel_work(&self, run_id: i64, ids: Option<&[i64]>) -> anyhow::Result<()> {
        let pool = self.postgres(crate::message::Command("run --distributed"))?;
        let now = self.clock_ms();
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE pipeline_work SET state = 'cancelled', finished_at = {now} \
             WHERE run_id = $1 AND state IN ('queued', 'running') \
             AND ($2::BIGINT[] IS NULL OR id = ANY($2))"
        )))
        .bind(run_id)
        .bind(ids)
        .execute(pool)
        .await?;
        Ok(())
    }
}

impl ClaimRequest<'_> {
    /// Binds the request as the claim statements of [`claim_sql`] take it.
    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, Postgres, PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        query
            .bind(self.pipeline)
            .bind(self.fingerprint)
            .bind(self.worker)
            .bind(self.token_prefix)
            .bind(self.lease_ms)
            .bind(i64::try_from(self.limit).unwrap_or(i64::MAX))
    }
}

/// A claim of queued attempts in no pool (`pooled`: in a pool that has room), as an update
/// that returns the claimed rows; its parameters are a [`ClaimRequest`]'s.
fn claim_sql(now: &str, pooled: bool) -> String {
    // A pool's slot is taken by an attempt running under a live lease: one whose lease ran
    // out stopped on its worker (a worker that cannot renew stops its attempts first), even
    // if no coordinator is left to mark it lost, as when a worker coordinating a detached run
    // was killed with it.
    let which = if pooled {
        format!(
            "AND pool IS NOT NULL AND (SELECT count(*) FROM pipeline_work r \
             WHERE r.pipeline = q.pipeline AND r.pool = q.pool AND r.state = 'running' \
             AND r.pool IS NOT NULL AND r.lease_until >= {now}) < q.pool_size"
        )
    } else {
        "AND pool IS NULL".to_string()
    };
    format!(
        "UPDATE pipeline_work SET state = 'running', worker_id = $3, \
         lease_token = $4 || ':' || id, lease_until = {now} + $5, claimed_at = {now} \
         WHERE id IN (SELECT q.id FROM pipeline_work q WHERE q.pipeline = $1 \
                      AND q.state = 'queued' AND q.kind = 'attempt' \
                      AND q.fingerprint = $2 {which} \
                      ORDER BY q.priority DESC, q.id LIMIT $6 FOR UPDATE SKIP LOCKED) \
         RETURNING id, run_id, partition, namespace, unit_mode, task, attempt, lease_token"
    )
}

/// The statement of [`StateStore::finish_works`], on the clock `now`. Each row is found by its
/// lease token (`= ANY`) through the index of running attempts' tokens, whatever the
/// statistics say: left to the planner, with statistics taken before the queue filled (a run
/// whose queue was empty at the last `ANALYZE`), a write of 8 outcomes read every running
/// attempt of the store, through a scan of that index or a hash of all of them (800 running
/// attempts: 930 buffers against 29). The join on the id and token of each outcome stays, so
/// that a row changed meanwhile (a renewal) is checked again as it is now.
fn outcome_sql(now: &str) -> String {
    format!(
        "WITH outcome AS (SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], \
         $4::TEXT[], $5::TEXT[], $6::BOOLEAN[], $7::TEXT[], $8::DOUBLE PRECISION[], \
         $9::TEXT[], $10::TEXT[]) \
         AS o(id, token, state, status, error, fatal, note, value, targets, log)), \
         done AS (UPDATE pipeline_work w SET state = o.state, status = o.status, \
         error = o.error, fatal = o.fatal, note = o.note, value = o.value, \
         targets = o.targets, log = o.log, finished_at = {now} FROM outcome o \
         WHERE w.lease_token = ANY($2::TEXT[]) \
         AND w.id = o.id AND w.lease_token = o.token AND w.state = 'running' \
         AND w.lease_until >= {now} RETURNING w.id, w.run_id, \
         (w.state = 'done' AND w.status = 'succeeded' AND w.error IS NULL \
          AND w.fatal IS NOT TRUE AND w.note IS NULL AND w.value IS NULL \
          AND w.targets IS NULL AND w.log IS NULL) AS plain), \
         numbered AS (SELECT id, run_id, plain, \
         row_number() OVER () / {IDS_PER_NOTIFICATION} AS part FROM done), \
         woken AS (SELECT pg_notify('{FINISHED_CHANNEL}', run_id::text || ':' || \
         string_agg(id::text || CASE WHEN plain THEN '{PLAIN_SUCCESS}' ELSE '' END, ',')) \
         FROM numbered GROUP BY run_id, part) \
         SELECT id FROM done, (SELECT count(*) FROM woken) AS sent"
    )
}

/// What a run reads of an attempt that ended, from a row of `pipeline_work` named `w`.
const FINISHED_COLUMNS: &str =
    "w.id, w.state, w.status, w.error, w.fatal, w.note, w.value, w.targets, w.worker_id, w.log";

/// An ended attempt from a row of [`FINISHED_COLUMNS`].
fn ended_work(row: &sqlx::postgres::PgRow) -> anyhow::Result<FinishedWork> {
    Ok(FinishedWork {
        id: row.try_get("id")?,
        state: row.try_get("state")?,
        status: row.try_get("status")?,
        error: row.try_get("error")?,
        fatal: row.try_get::<Option<bool>, _>("fatal")?.unwrap_or(false),
        note: row.try_get("note")?,
        value: row.try_get("value")?,
        targets: row.try_get("targets")?,
        worker: row.try_get("worker_id")?,
        log: row.try_get("log")?,
    })
}

/// A claimed attempt from a row that a claim returned.
fn claimed_work(row: &sqlx::postgres::PgRow) -> anyhow::Result<ClaimedWork> {
    Ok(ClaimedWork {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        partition: row.try_get("partition")?,
        test: row.try_get::<String, _>("namespace")? == "test",
        unit_mode: row.try_get("unit_mode")?,
        task: row.try_get("task")?,
        attempt: u32::try_from(row.try_get::<i32, _>("attempt")?).unwrap_or(1),
        token: row.try_get("lease_token")?,
    })
}
