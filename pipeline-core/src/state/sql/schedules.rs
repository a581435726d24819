//! What the scheduler keeps: the ticks it fired, and the lease that makes one `daily schedule`
//! process the active one. Both are decided by the store's clock, never a host's.

use sqlx::{AssertSqlSafe, Row};

use super::StateStore;
use crate::db::dispatch;
use crate::state::TickRecord;

impl StateStore {
    /// Takes the scheduler lease of a pipeline, or renews it, for `ttl_ms` by the store's
    /// clock: whether `token` holds it now. An expired lease goes to whoever asks first.
    pub async fn take_scheduler_lease(
        &self,
        pipeline: &str,
        token: &str,
        host: &str,
        pid: i64,
        ttl_ms: i64,
    ) -> anyhow::Result<bool> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let taken = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO pipeline_scheduler_leases (pipeline, token, host, pid, expires_at) \
                 VALUES ($1, $2, $3, $4, {now} + $5) \
                 ON CONFLICT (pipeline) DO UPDATE SET token = excluded.token, host = excluded.host, \
                 pid = excluded.pid, expires_at = excluded.expires_at \
                 WHERE pipeline_scheduler_leases.token = excluded.token \
                 OR pipeline_scheduler_leases.expires_at < {now}",
            )))
            .bind(pipeline)
            .bind(token)
            .bind(host)
            .bind(pid)
            .bind(ttl_ms)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(taken == 1)
        })
    }

    /// Who holds the scheduler lease, if it is live: host, pid, and milliseconds until it
    /// expires.
    pub async fn scheduler_lease(
        &self,
        pipeline: &str,
    ) -> anyhow::Result<Option<(String, i64, i64)>> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let row = sqlx::query(AssertSqlSafe(format!(
                "SELECT host, pid, expires_at - {now} AS remaining FROM pipeline_scheduler_leases \
                 WHERE pipeline = $1 AND expires_at >= {now}",
            )))
            .bind(pipeline)
            .fetch_optional(pool)
            .await?;
            match row {
                Some(row) => Ok(Some((
                    row.try_get("host")?,
                    row.try_get("pid")?,
                    row.try_get("remaining")?,
                ))),
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

    /// Records a tick with its status (`fired` or `skipped`), if `token` holds the live lease
    /// and nobody recorded the tick before: whether it did. Whoever gets `true` fires it.
    pub async fn claim_tick(&self, token: &str, tick: &TickRecord) -> anyhow::Result<bool> {
        let now = self.clock_ms();
        dispatch!(&self.pool, pool => {
            let claimed = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO pipeline_schedule_ticks \
                 (pipeline, schedule, tick_at, partition, fired_at, status, run_id, deadline_alerted) \
                 SELECT $1, $2, $3, $4, {now}, $5, NULL, 0 WHERE EXISTS (SELECT 1 FROM \
                 pipeline_scheduler_leases WHERE pipeline = $1 AND token = $6 AND expires_at > {now}) \
                 ON CONFLICT DO NOTHING",
            )))
            .bind(&tick.pipeline)
            .bind(&tick.schedule)
            .bind(tick.tick_at)
            .bind(&tick.partition)
            .bind(&tick.status)
            .bind(token)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(claimed == 1)
        })
    }

    /// Writes a tick's status and run.
    pub async fn record_tick_outcome(&self, tick: &TickRecord) -> anyhow::Result<()> {
        dispatch!(&self.pool, pool => {
            sqlx::query(
                "UPDATE pipeline_schedule_ticks SET status = $4, run_id = $5 \
                 WHERE pipeline = $1 AND schedule = $2 AND tick_at = $3",
            )
            .bind(&tick.pipeline)
            .bind(&tick.schedule)
            .bind(tick.tick_at)
            .bind(&tick.status)
            .bind(tick.run_id)
            .execute(pool)
            .await?;
        });
        Ok(())
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
            let rows = sqlx::query(
                "SELECT pipeline, schedule, tick_at, partition, fired_at, status, run_id, \
                 deadline_alerted FROM pipeline_schedule_ticks t WHERE pipeline = $1 AND \
                 (tick_at >= $2 OR tick_at = (SELECT MAX(tick_at) FROM pipeline_schedule_ticks n \
                 WHERE n.pipeline = t.pipeline AND n.schedule = t.schedule)) \
                 ORDER BY tick_at, schedule",
            )
            .bind(pipeline)
            .bind(since_ms)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
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
                })
                .collect()
        })
    }
}
