//! `daily schedules`: each schedule with its next ticks and its last one, as a table, JSON, or
//! crontab lines for teams that keep cron.

use std::collections::HashMap;

use serde_json::json;

use super::output::print_table;
use crate::date::{format_duration, format_timestamp, now_millis};
use crate::run::Runner;
use crate::schedule::{BASELINE, Partitioning, Schedule};
use crate::state::TickRecord;

/// Ticks shown ahead.
const NEXT: usize = 5;

/// The schedules as `daily schedules --json` prints them and `daily serve` shows them: each
/// with its next ticks and its last one.
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
async fn last_ticks(runner: &Runner) -> anyhow::Result<HashMap<String, TickRecord>> {
    Ok(runner
        .store
        .ticks(&runner.pipeline, i64::MAX)
        .await?
        .into_iter()
        .filter(|tick| tick.status != BASELINE)
        .map(|tick| (tick.schedule.clone(), tick))
        .collect())
}

/// Prints the schedules as a table (or JSON), with the active scheduler, if any.
pub async fn list(runner: &Runner, schedules: &[Schedule], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", schedules_json(runner, schedules).await?);
        return Ok(());
    }
    let last = last_ticks(runner).await?;
    let now = now_millis();
    if schedules.is_empty() {
        println!("no schedules: declare them with `schedule!` (see `pipeline_core::schedule`)");
        return Ok(());
    }
    let rows: Vec<[String; 6]> = schedules
        .iter()
        .map(|schedule| {
            [
                schedule.name.clone(),
                schedule.cron_text.clone(),
                schedule.time_zone.clone(),
                format!("{:?}", schedule.partitioning).to_lowercase(),
                schedule.targets.join(", "),
                schedule.deadline.map_or("-".to_string(), format_duration),
            ]
        })
        .collect();
    print_table(
        &[
            "SCHEDULE",
            "CRON",
            "TIME ZONE",
            "PARTITION",
            "TARGETS",
            "DEADLINE",
        ],
        &rows,
    )?;
    for schedule in schedules {
        println!();
        println!("{}: {}", schedule.name, schedule.description);
        for tick in next_ticks(schedule, now) {
            println!(
                "  next  {}  ({} UTC)  partition {}",
                schedule.local_time(tick),
                format_timestamp(tick),
                schedule.partition(tick)
            );
        }
        match last.get(&schedule.name) {
            Some(tick) => println!(
                "  last  {}  partition {}: {}{}",
                schedule.local_time(tick.tick_at),
                tick.partition,
                tick.status,
                tick.run_id
                    .map_or(String::new(), |id| format!(" (run {id})"))
            ),
            None => println!("  last  never fired"),
        }
    }
    println!();
    match runner.store.scheduler_lease(&runner.pipeline).await? {
        Some((host, pid)) => println!("active scheduler: {host} (pid {pid})"),
        None => println!(
            "no scheduler is active: start one with {}",
            crate::message::command("schedule")
        ),
    }
    Ok(())
}

/// One crontab line per schedule (with `CRON_TZ`, as cronie reads it), running this binary from
/// the current directory for the partition a tick would run.
pub fn crontab(pipeline: &str, schedules: &[Schedule]) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?;
    let directory = std::env::current_dir()?;
    println!("# {pipeline}: generated by `{pipeline} schedules --crontab`");
    for schedule in schedules {
        println!();
        println!(
            "# {}: {}",
            schedule.name,
            schedule.description.replace('\n', " ")
        );
        if schedule.has_seconds() {
            println!(
                "# `{}` has a seconds field, which cron cannot express: use `{pipeline} schedule`",
                schedule.cron_text
            );
            continue;
        }
        let targets: Vec<String> = schedule.targets.iter().map(|t| shell_quote(t)).collect();
        println!("CRON_TZ={}", schedule.time_zone);
        println!(
            "{} cd {} && {} run {} --date \"$(TZ={} {})\"",
            schedule.cron_text,
            shell_quote(&directory.display().to_string()),
            shell_quote(&binary.display().to_string()),
            targets.join(" "),
            schedule.time_zone,
            partition_command(schedule.partitioning)
        );
    }
    Ok(())
}

/// The `date` command (GNU, `%` escaped for crontab) that prints the partition a tick runs,
/// as the scheduler computes it: the local day before, or the local hour that just ended.
fn partition_command(partitioning: Partitioning) -> &'static str {
    match partitioning {
        Partitioning::Daily => "date -d yesterday +\\%F",
        Partitioning::Hourly => "date -d '1 hour ago' +\\%FT\\%H",
    }
}

fn next_ticks(schedule: &Schedule, now: i64) -> Vec<i64> {
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

/// A word for `sh`: single-quoted unless it is plainly safe.
fn shell_quote(text: &str) -> String {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if plain && !text.is_empty() {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
