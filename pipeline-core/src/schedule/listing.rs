//! What a schedule shows of itself: its next ticks and its last one, as `daily schedules
//! --json` prints them and `daily serve` answers.

use std::collections::HashMap;

use serde_json::json;

use super::{BASELINE, Schedule};
use crate::date::{format_timestamp, now_millis};
use crate::run::Runner;
use crate::state::TickRecord;

/// Ticks shown ahead.
const NEXT: usize = 5;

/// The schedules, each with its next ticks and its last one.
pub(crate) async fn schedules_json(
    runner: &Runner,
    schedules: &[Schedule],
) -> anyhow::Result<serde_json::Value> {
    let last = last_ticks(runner).await?;
    let now = now_millis();
    let items: Vec<serde_json::Value> = schedules
        .iter()
        .map(|schedule| {
            let next: Vec<serde_json::Value> = next_ticks(schedule, now)
                .into_iter()
                .map(|tick| {
                    json!({
                        "local": schedule.local_time(tick),
                        "utc": format_timestamp(tick),
                        "partition": schedule.partition(tick).to_string(),
                    })
                })
                .collect();
            let last = last.get(&schedule.name).map(|tick| {
                json!({
                    "local": schedule.local_time(tick.tick_at),
                    "utc": format_timestamp(tick.tick_at),
                    "partition": tick.partition,
                    "status": tick.status,
                    "run_id": tick.run_id,
                })
            });
            json!({
                "name": schedule.name,
                "description": schedule.description,
                "cron": schedule.cron_text,
                "time_zone": schedule.time_zone,
                "targets": schedule.targets,
                "deadline_ms": schedule.deadline.map(|d| d.as_millis() as u64),
                "catchup": format!("{:?}", schedule.catchup).to_lowercase(),
                "overlap": format!("{:?}", schedule.overlap).to_lowercase(),
                "partition": format!("{:?}", schedule.partitioning).to_lowercase(),
                "next": next,
                "last": last,
            })
        })
        .collect();
    Ok(serde_json::Value::Array(items))
}

/// The newest tick of each schedule; a scheduler's mark of where it started watching is none.
pub(crate) async fn last_ticks(runner: &Runner) -> anyhow::Result<HashMap<String, TickRecord>> {
    Ok(runner
        .store
        .ticks(&runner.pipeline, i64::MAX)
        .await?
        .into_iter()
        .filter(|tick| tick.status != BASELINE)
        .map(|tick| (tick.schedule.clone(), tick))
        .collect())
}

pub(crate) fn next_ticks(schedule: &Schedule, now: i64) -> Vec<i64> {
    let mut ticks = Vec::with_capacity(NEXT);
    let mut at = now;
    while ticks.len() < NEXT {
        let Some(tick) = schedule.next_after(at) else {
            break;
        };
        ticks.push(tick);
        at = tick;
    }
    ticks
}
