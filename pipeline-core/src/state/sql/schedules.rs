//! What the scheduler keeps: the ticks it fired, and the lease that makes one `daily schedule`
//! process the active one. Both are decided by the store's clock, never a host's.

use sqlx::{AssertSqlSafe, QueryBuilder, Row};

use super::{StateStore, lock_holder};
use crate::db::dispatch;
use crate::state::{LockHolder, TickRecord};

impl StateStore {
    /// Takes the scheduler lease of a pipeline for `holder`, or renews it, for `ttl_ms` by the
    /// store's clock: whether `holder.token` holds it now. An expired lease goes to whoever
    /// asks first; so does a live one held by `gone`, the token of a holder that the caller
    /// found gone (its process, in the caller's PID space, ended: see `run::is_gone`).
    pub async fn take_scheduler_lease(
        &self,
        pipeline: &str,
        holder: &LockHolder,
        ttl_ms: i64,
        gone: Option<&str>,
    ) -> anyhow::Result<bool> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let taken = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO pipeline_scheduler_leases \
                 (pipeline, token, host, pid, pid_space, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, {now} + $6) \
                 ON CONFLICT (pipeline) DO UPDATE SET token = excluded.token, host = excluded.host, \
                 pid = excluded.pid, pid_space = excluded.pid_space, \
                 expires_at = excluded.expires_at \
                 WHERE pipeline_scheduler_leases.token = excluded.token \
                 OR pipeline_scheduler_leases.expires_at < {now} \
                 OR pipeline_scheduler_leases.token = $7",
            )))
            .bind(pipeline)
            .bind(&holder.token)
            .bind(&holder.host)
            .bind(holder.pid)
            .bind(&holder.pid_space)
            .bind(ttl_ms)
            .bind(gone)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(taken == 1)
        })
    }

    /// Who holds the scheduler lease, if it is live: its token, host, pid and PID space (the
    /// times are left at zero).
    pub async fn scheduler_lease(&self, pipeline: &str) -> anyhow::Result<Option<LockHolder>> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT token, host, pid, pid_space FROM pipeline_scheduler_leases \
                 WHERE pipeline = $1 AND expires_at >= {now}",
            )))
            .bind(pipeline)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Ok(Some(LockHolder {
                    token: row.try_get("token")?,
                    host: row.try_get("host")?,
                    pid: row.try_get("pid")?,
                    pid_space: row.try_get("pid_space")?,
                    started_at: 0,
                    heartbeat_at: 0,
                    heartbeat_age_ms: 0,
                })),
                None => Ok(None),
            }
        })
    }

    /// Gives the lease up, if `token` still holds it, so that a stand-by takes over at once.
    pub async fn release_scheduler_lease(&self, pipeline: &str, token: &str) -> anyhow::Result<()> {
        dispatch!(&self.pool, pool => {
            sqlx::query("DELETE FROM pipeline_scheduler_leases WHERE pipeline = $1 AND token = $2")
                .bind(pipeline)
                .bind(token)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Records a tick with its status (`fired` or `skipped`), if `holder.token` holds the live
    /// lease and nobody recorded the tick before: whether it did. Whoever gets `true` fires it,
    /// and holds it (see [`StateStore::renew_ticks`]) until its outcome is written.
    pub async fn claim_tick(&self, holder: &LockHolder, tick: &TickRecord) -> anyhow::Result<bool> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let claimed = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO pipeline_schedule_ticks \
                 (pipeline, schedule, tick_at, partition, fired_at, status, run_id, deadline_alerted, \
                  holder_token, holder_host, holder_pid, holder_pid_space, heartbeat_at) \
                 SELECT $1, $2, $3, $4, {now}, $5, NULL, 0, $6, $7, $8, $9, {now} WHERE EXISTS \
                 (SELECT 1 FROM pipeline_scheduler_leases WHERE pipeline = $1 AND token = $6 \
                  AND expires_at > {now}) \
                 ON CONFLICT DO NOTHING",
            )))
            .bind(&tick.pipeline)
            .bind(&tick.schedule)
            .bind(tick.tick_at)
            .bind(&tick.partition)
            .bind(&tick.status)
            .bind(&holder.token)
            .bind(&holder.host)
            .bind(holder.pid)
            .bind(&holder.pid_space)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(claimed == 1)
        })
    }

    /// Says, by the store's clock, that the process of `token` still runs the fired ticks it
    /// holds: a scheduler taking over leaves them to it.
    pub async fn renew_ticks(&self, pipeline: &str, token: &str) -> anyhow::Result<()> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE pipeline_schedule_ticks SET heartbeat_at = {now} \
                 WHERE pipeline = $1 AND holder_token = $2 AND status = 'fired'",
            )))
            .bind(pipeline)
            .bind(token)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The ticks of a pipeline fired and not ended, each with the process that holds it.
    pub async fn fired_ticks(
        &self,
        pipeline: &str,
    ) -> anyhow::Result<Vec<(TickRecord, LockHolder)>> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT pipeline, schedule, tick_at, partition, fired_at, status, run_id, \
                        deadline_alerted, holder_token AS token, holder_host AS host, \
                        holder_pid AS pid, holder_pid_space AS pid_space, fired_at AS started_at, \
                        heartbeat_at, {now} - heartbeat_at AS heartbeat_age \
                 FROM pipeline_schedule_ticks WHERE pipeline = $1 AND status = 'fired' \
                 ORDER BY tick_at, schedule",
            )))
            .bind(pipeline)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| Ok((tick_record(row)?, lock_holder(row)?)))
                .collect()
        })
    }

    /// Takes a fired tick over from the process of `from`, which is gone, if `holder.token`
    /// holds the live lease and the tick is still fired and `from`'s: whether it did. Of the
    /// schedulers that find the tick orphaned, one runs it again.
    pub async fn adopt_tick(
        &self,
        holder: &LockHolder,
        tick: &TickRecord,
        from: &str,
    ) -> anyhow::Result<bool> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let adopted = sqlx::query(AssertSqlSafe(format!(
                "UPDATE pipeline_schedule_ticks SET holder_token = $4, holder_host = $5, \
                 holder_pid = $6, holder_pid_space = $7, heartbeat_at = {now} \
                 WHERE pipeline = $1 AND schedule = $2 AND tick_at = $3 AND status = 'fired' \
                 AND holder_token = $8 AND EXISTS (SELECT 1 FROM pipeline_scheduler_leases l \
                 WHERE l.pipeline = $1 AND l.token = $4 AND l.expires_at > {now})",
            )))
            .bind(&tick.pipeline)
            .bind(&tick.schedule)
            .bind(tick.tick_at)
            .bind(&holder.token)
            .bind(&holder.host)
            .bind(holder.pid)
            .bind(&holder.pid_space)
            .bind(from)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(adopted == 1)
        })
    }

    /// Writes a tick's status and run, if the process of `token` still holds it: whether it
    /// did. A tick taken over meanwhile keeps what its new holder writes.
    pub async fn record_tick_outcome(
        &self,
        token: &str,
        tick: &TickRecord,
    ) -> anyhow::Result<bool> {
        dispatch!(&self.pool, pool => {
            let written = sqlx::query(
                "UPDATE pipeline_schedule_ticks SET status = $4, run_id = $5 \
                 WHERE pipeline = $1 AND schedule = $2 AND tick_at = $3 AND holder_token = $6",
            )
            .bind(&tick.pipeline)
            .bind(&tick.schedule)
            .bind(tick.tick_at)
            .bind(&tick.status)
            .bind(tick.run_id)
            .bind(token)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(written == 1)
        })
    }

    /// Writes whether a tick's deadline alert is open.
    pub async fn record_deadline_alert(&self, tick: &TickRecord) -> anyhow::Result<()> {
        dispatch!(&self.pool, pool => {
            sqlx::query(
                "UPDATE pipeline_schedule_ticks SET deadline_alerted = $4 \
                 WHERE pipeline = $1 AND schedule = $2 AND tick_at = $3",
            )
            .bind(&tick.pipeline)
            .bind(&tick.schedule)
            .bind(tick.tick_at)
            .bind(i64::from(tick.deadline_alerted))
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The ticks of a pipeline due at or after `since_ms`, and the newest of each schedule
    /// whatever its age; oldest first.
    pub async fn ticks(&self, pipeline: &str, since_ms: i64) -> anyhow::Result<Vec<TickRecord>> {
        dispatch!(&self.pool, pool => {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "{SELECT_TICKS}$1 AND (tick_at >= $2 OR {NEWEST}) ORDER BY tick_at, schedule"
            )))
            .bind(pipeline)
            .bind(since_ms)
            .fetch_all(pool)
            .await?;
            rows.iter().map(tick_record).collect()
        })
    }

    /// What a scheduler taking over must know: the newest tick of each schedule and, of the
    /// ticks due at or after `since_ms`, those not settled: fired but never ended, with a
    /// deadline alert open, or of one of `deadline_schedules` and not skipped. The settled
    /// ticks of dense schedules (one a second is 86,400 a day) are not read at all.
    pub async fn open_ticks(
        &self,
        pipeline: &str,
        since_ms: i64,
        deadline_schedules: &[String],
    ) -> anyhow::Result<Vec<TickRecord>> {
        dispatch!(&self.pool, pool => {
            let mut query = QueryBuilder::new(SELECT_TICKS);
            query
                .push_bind(pipeline)
                .push(format!(" AND ({NEWEST} OR (tick_at >= "))
                .push_bind(since_ms)
                .push(" AND (status = 'fired' OR deadline_alerted <> 0");
            if !deadline_schedules.is_empty() {
                query.push(" OR (status NOT IN ('skipped', 'baseline') AND schedule IN (");
                let mut names = query.separated(", ");
                for name in deadline_schedules {
                    names.push_bind(name.as_str());
                }
                query.push("))");
            }
            query.push("))) ORDER BY tick_at, schedule");
            let rows = query.build().fetch_all(pool).await?;
            rows.iter().map(tick_record).collect()
        })
    }
}

/// The columns of a tick, for one pipeline: the statement goes on with its parameter.
const SELECT_TICKS: &str = "SELECT pipeline, schedule, tick_at, partition, fired_at, status, \
     run_id, deadline_alerted FROM pipeline_schedule_ticks t WHERE pipeline = ";
/// The newest tick of its schedule.
const NEWEST: &str = "tick_at = (SELECT MAX(tick_at) FROM pipeline_schedule_ticks n \
     WHERE n.pipeline = t.pipeline AND n.schedule = t.schedule)";

/// A tick from its row, on either backend.
fn tick_record<R: Row>(row: &R) -> anyhow::Result<TickRecord>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let alerted: i64 = row.try_get("deadline_alerted")?;
    Ok(TickRecord {
        pipeline: row.try_get("pipeline")?,
        schedule: row.try_get("schedule")?,
        tick_at: row.try_get("tick_at")?,
        partition: row.try_get("partition")?,
        fired_at: row.try_get("fired_at")?,
        status: row.try_get("status")?,
        run_id: row.try_get("run_id")?,
        deadline_alerted: alerted != 0,
    })
}
