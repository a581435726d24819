//! What the commands print: tables for people, JSON for machines.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use crate::dag::{Dag, TaskId};
use crate::date::{Partition, format_duration, format_timestamp};
use crate::distributed::listing::{LIVE_WORKER_MS, workers_json};
use crate::run::{RunOutcome, RunReport, Runner};
use crate::state::{AttemptRecord, PartitionKey};
use crate::status::TaskStatus;

pub fn list(dag: &Dag) -> anyhow::Result<()> {
    let names = |ids: &[TaskId]| -> String {
        if ids.is_empty() {
            "-".to_string()
        } else {
            ids.iter()
                .map(|&id| dag.task(id).name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let rows: Vec<[String; 4]> = dag
        .tasks()
        .map(|(_, task)| {
            let mut name = task.name.clone();
            match (&task.check, task.policy.critical) {
                (Some(role), critical) => name.push_str(&format!(
                    " (check, {}{})",
                    if critical { "error" } else { "warn" },
                    if role.blocking { ", blocking" } else { "" }
                )),
                (None, false) => name.push_str(" (non-critical)"),
                (None, true) => {}
            }
            match (&task.pool, task.priority) {
                (Some(pool), 0) => name.push_str(&format!(" [pool {pool}]")),
                (Some(pool), priority) => {
                    name.push_str(&format!(" [pool {pool}, priority {priority}]"));
                }
                (None, 0) => {}
                (None, priority) => name.push_str(&format!(" [priority {priority}]")),
            }
            let summary = task.description.lines().next().unwrap_or("").to_string();
            [name, names(&task.requires), names(&task.after), summary]
        })
        .collect();
    print_table(&["TASK", "REQUIRES", "AFTER", "DESCRIPTION"], &rows)
}

/// Says which of the tasks asked for by name did not run because they were complete for the
/// partition, and how to run them again: asking for a task and seeing nothing happen is
/// otherwise a puzzle.
pub fn explain_complete_targets(dag: &Dag, targets: &[TaskId], run: &RunOutcome) {
    let complete: Vec<&str> = targets
        .iter()
        .filter(|&&id| run.status_of(id) == Some(TaskStatus::Skipped))
        .map(|&id| dag.task(id).name.as_str())
        .collect();
    if complete.is_empty() {
        return;
    }
    let (them, were) = if complete.len() == 1 {
        ("it", "was")
    } else {
        ("them", "were")
    };
    eprintln!(
        "{} {were} already complete for {} and did not run: add --force to run {them} again",
        complete.join(", "),
        run.head.date
    );
}

pub fn explain_unit_mode(dag: &Dag, targets: &[TaskId]) {
    let targets_set: Vec<bool> = {
        let mut set = vec![false; dag.len()];
        for id in targets {
            set[id.index()] = true;
        }
        set
    };
    let mut assumed: Vec<&str> = targets
        .iter()
        .flat_map(|&id| {
            let task = dag.task(id);
            task.requires
                .iter()
                .chain(&task.after)
                .copied()
                .collect::<Vec<_>>()
        })
        .filter(|dep| !targets_set[dep.index()])
        .map(|dep| dag.task(dep).name.as_str())
        .collect();
    assumed.sort_unstable();
    assumed.dedup();
    let names: Vec<&str> = targets
        .iter()
        .map(|&id| dag.task(id).name.as_str())
        .collect();
    let deps = if assumed.is_empty() {
        "none".to_string()
    } else {
        assumed.join(", ")
    };
    eprintln!(
        "unit mode: running only {}; dependencies treated as done: {deps}",
        names.join(", ")
    );
}

pub fn print_summary(report: &RunReport) {
    let rows: Vec<[String; 5]> = report
        .tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Skipped || report.tasks.len() <= 50)
        .map(|t| {
            let mut name = t.name.clone();
            if !t.critical {
                name.push_str(" (non-critical)");
            }
            // The error if any, else what the task reported (e.g. a load's mode and rows).
            let note = match &t.error {
                Some(error) => error.lines().next().unwrap_or("").to_string(),
                None => t.details.join("; "),
            };
            let mut duration = if t.attempts == 0 {
                "-".into()
            } else {
                format_duration(Duration::from_millis(t.duration_ms))
            };
            if t.waited_ms > 0 {
                duration.push_str(&format!(
                    " (+{} waiting for its pool)",
                    format_duration(Duration::from_millis(t.waited_ms))
                ));
            }
            [
                name,
                t.status.to_string(),
                t.attempts.to_string(),
                duration,
                note,
            ]
        })
        .collect();
    let _ = print_table(
        &["TASK", "STATUS", "ATTEMPTS", "DURATION", "ERROR / NOTE"],
        &rows,
    );
    let mut counts: Vec<String> = TaskStatus::ALL
        .iter()
        .map(|&s| (s, report.count(s)))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    if counts.is_empty() {
        counts.push("no tasks".into());
    }
    let waited: Vec<u64> = report
        .tasks
        .iter()
        .map(|t| t.waited_ms)
        .filter(|ms| *ms > 0)
        .collect();
    if !waited.is_empty() {
        println!(
            "{} task(s) waited {} in all for a slot of their resource pool",
            waited.len(),
            format_duration(Duration::from_millis(waited.iter().sum()))
        );
    }
    for blocked in &report.blocked {
        println!(
            "critical task `{}` did not run because non-critical `{}` failed: if it can do without \
             it, make that an `after` dependency; if not, make `{}` critical",
            blocked.task, blocked.by, blocked.by
        );
    }
    let mode = match (report.test, report.unit) {
        (true, true) => " (test mode, unit mode)",
        (true, false) => " (test mode)",
        (false, true) => " (unit mode)",
        (false, false) => "",
    };
    println!(
        "\nrun {} of {} for {}{mode}: {} in {} ({})",
        report.run_id,
        report.pipeline,
        report.date,
        report.status,
        format_duration(Duration::from_millis(report.duration_ms)),
        counts.join(", ")
    );
}

pub fn print_json(report: &impl serde::Serialize) {
    write_json(report);
}

/// Writes `value` to stdout as indented JSON as it is serialized: the report of a run of
/// 100,000 tasks is 13 MB, which is not built as a string first.
fn write_json(value: &impl serde::Serialize) {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    if let Err(err) = written {
        eprintln!("error: cannot write the JSON summary: {err}");
    }
}

/// The JSON a script gets when a run could not start or died: `status` is `error`.
pub fn print_error_json(kind: &str, exit_code: u8, error: &str) {
    let value = serde_json::json!({
        "status": "error",
        "kind": kind,
        "exit_code": exit_code,
        "error": error,
    });
    println!("{value}");
}

pub fn print_backfill_json(reports: &[RunReport]) {
    #[derive(serde::Serialize)]
    struct Backfill<'r> {
        status: &'r str,
        runs: &'r [RunReport],
    }
    let status = reports.last().map_or("succeeded", |r| r.status.as_str());
    write_json(&Backfill {
        status,
        runs: reports,
    });
}

pub async fn status(runner: &Runner, partition: Partition, test: bool) -> anyhow::Result<()> {
    runner.reap_abandoned().await?;
    let key = runner.partition_key(partition, test);
    let complete = runner.complete(&key).await?;
    let mut last: HashMap<String, (AttemptRecord, u32)> = HashMap::new();
    for attempt in runner.store.attempts(&key).await? {
        // Attempts come oldest first: keep the latest of each task, and count them.
        let count = last.get(&attempt.task).map_or(0, |(_, n)| *n) + 1;
        last.insert(attempt.task.clone(), (attempt, count));
    }
    let rows: Vec<[String; 5]> = runner
        .dag
        .tasks()
        .map(|(_, task)| {
            let found = last.get(&task.name);
            let state = if complete.contains(&task.name) {
                "complete".to_string()
            } else {
                found.map_or("not run".into(), |(a, _)| a.status.to_string())
            };
            let attempts = found.map_or("0".into(), |(_, n)| n.to_string());
            let when = found.map_or("-".into(), |(a, _)| format_timestamp(a.started_at));
            // A complete task shows what it reported; any other its last error.
            let note = found
                .and_then(|(a, _)| match complete.contains(&task.name) {
                    true => a.note.as_deref(),
                    false => a.error.as_deref().or(a.note.as_deref()),
                })
                .and_then(|e| e.lines().next())
                .unwrap_or("")
                .to_string();
            let note = match found.and_then(|(a, _)| a.value) {
                Some(value) => format!("{note} [measured {value}]"),
                None => note,
            };
            [task.name.clone(), state, attempts, when, note]
        })
        .collect();
    println!("{} {} ({})", runner.pipeline, partition, key.namespace);
    print_table(
        &[
            "TASK",
            "STATE",
            "ATTEMPTS",
            "LAST ATTEMPT (UTC)",
            "ERROR / NOTE",
        ],
        &rows,
    )
}

/// Which attempt `daily logs` prints.
pub struct AttemptWanted<'a> {
    pub task: &'a str,
    pub partition: Partition,
    pub attempt: Option<u32>,
    pub run: Option<i64>,
    pub test: bool,
    pub follow: bool,
}

pub async fn logs(runner: &Runner, wanted: &AttemptWanted<'_>) -> Result<(), super::Failure> {
    let task = wanted.task;
    if runner.dag.id(task).is_none() {
        // A family, or a name that is no task: what resolving it as a target says.
        let members = runner.resolve(&[task.to_string()]).map_err(super::usage)?;
        let example = members.first().map_or(String::new(), |&id| {
            format!(", e.g. `{}`", runner.dag.task(id).name)
        });
        return Err(super::usage(anyhow::anyhow!(
            "`{task}` is a family: name one of its members{example}"
        )));
    }
    let key = runner.partition_key(wanted.partition, wanted.test);
    let mut waiting = false;
    let chosen = loop {
        let attempts = runner
            .store
            .partition_task_attempts(&key, task)
            .await
            .map_err(super::failed)?;
        let chosen = attempts
            .into_iter()
            .filter(|a| wanted.run.is_none_or(|run| a.run_id == run))
            .filter(|a| wanted.attempt.is_none_or(|n| a.attempt == n))
            .max_by_key(|a| (a.run_id, a.attempt));
        // Following a task of a run under way that has not started it yet (or whose start is
        // not written yet): wait for it, as long as the run goes on.
        if chosen.is_some() || !wanted.follow || !run_under_way(runner, &key).await? {
            break chosen;
        }
        if !waiting {
            waiting = true;
            eprintln!(
                "waiting for `{task}` to start: a run of {} is under way",
                wanted.partition
            );
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    };
    let Some(attempt) = chosen else {
        let which = match (wanted.attempt, wanted.run) {
            (Some(n), Some(run)) => format!("attempt {n} of run {run}"),
            (Some(n), None) => format!("attempt {n}"),
            (None, Some(run)) => format!("an attempt in run {run}"),
            (None, None) => "an attempt".to_string(),
        };
        return Err(super::usage(anyhow::anyhow!(
            "`{task}` has no {which} for {} ({}); {} shows what ran",
            wanted.partition,
            key.namespace,
            crate::message::Command(&format!("status --date {}", wanted.partition))
        )));
    };
    let (run_id, number) = (attempt.run_id, attempt.attempt);
    println!(
        "== {task}, attempt {number} of run {run_id}: {}, started {} UTC ==",
        attempt.status,
        format_timestamp(attempt.started_at)
    );
    let mut printed = String::new();
    let status = loop {
        // One row a look: its status and its log so far.
        let (now, log) = runner
            .store
            .attempt_log(run_id, task, number)
            .await
            .map_err(super::failed)?
            .unwrap_or((TaskStatus::Cancelled, None));
        let log = log.unwrap_or_default();
        match log.strip_prefix(printed.as_str()) {
            Some(new) => print!("{new}"),
            // Its middle was left out meanwhile (the log is bounded): the whole log again.
            None => print!("... the log moved on ...\n{log}"),
        }
        let _ = std::io::stdout().flush();
        printed = log;
        // Its status is read with the log: once it had ended, the log just printed is all.
        if !wanted.follow || now != TaskStatus::Running {
            break now;
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    };
    if printed.is_empty() {
        match status {
            TaskStatus::Running => println!("(nothing logged yet; --follow waits for its lines)"),
            _ => println!("(it logged nothing)"),
        }
    } else if wanted.follow {
        println!("== the attempt ended: {status} ==");
    }
    Ok(())
}

/// Whether a run of the partition holds its lock now.
async fn run_under_way(runner: &Runner, key: &PartitionKey) -> Result<bool, super::Failure> {
    let locks = runner
        .store
        .locks(&runner.pipeline)
        .await
        .map_err(super::failed)?;
    Ok(locks.iter().any(|(locked, _)| locked == key))
}

/// How often `daily logs --follow` looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Prints the live workers as a table (or JSON).
pub async fn workers(runner: &Runner, json: bool) -> anyhow::Result<()> {
    let workers = runner
        .store
        .workers(&runner.pipeline, LIVE_WORKER_MS)
        .await?;
    if json {
        println!("{}", workers_json(&workers));
        return Ok(());
    }
    if workers.is_empty() {
        println!(
            "no live workers: start some with {}",
            crate::message::Command("worker")
        );
        return Ok(());
    }
    let rows: Vec<[String; 6]> = workers
        .iter()
        .map(|worker| {
            let running = if worker.running.is_empty() {
                "-".to_string()
            } else {
                worker.running.join(", ")
            };
            [
                worker.id.clone(),
                format!(
                    "{}{}",
                    worker.slots,
                    if worker.stopping { " (stopping)" } else { "" }
                ),
                format_timestamp(worker.started_at),
                format!(
                    "{} ago",
                    format_duration(Duration::from_millis(worker.heartbeat_age_ms.max(0) as u64))
                ),
                worker.fingerprint.clone(),
                running,
            ]
        })
        .collect();
    print_table(
        &[
            "WORKER",
            "SLOTS",
            "STARTED (UTC)",
            "HEARTBEAT",
            "GRAPH",
            "RUNNING",
        ],
        &rows,
    )
}

pub async fn history(runner: &Runner, limit: u32) -> anyhow::Result<()> {
    runner.reap_abandoned().await?;
    let runs = runner.store.runs(&runner.pipeline, limit).await?;
    let rows: Vec<[String; 8]> = runs
        .iter()
        .map(|run| {
            let mode = match (run.namespace.as_str(), run.unit_mode) {
                ("test", true) => "test, unit",
                ("test", false) => "test",
                (_, true) => "unit",
                _ => "-",
            };
            let duration = run.finished_at.map_or("-".into(), |end| {
                format_duration(Duration::from_millis((end - run.started_at).max(0) as u64))
            });
            let targets = if run.targets.is_empty() {
                "all".into()
            } else {
                run.targets.join(", ")
            };
            [
                run.id.to_string(),
                run.partition.clone(),
                run.status.to_string(),
                mode.to_string(),
                format_timestamp(run.started_at),
                duration,
                format!(
                    "{}/{}",
                    run.tasks_failed.unwrap_or(0),
                    run.tasks_total.unwrap_or(0)
                ),
                targets,
            ]
        })
        .collect();
    print_table(
        &[
            "RUN",
            "DATE",
            "STATUS",
            "MODE",
            "STARTED (UTC)",
            "DURATION",
            "FAILED/TASKS",
            "TARGETS",
        ],
        &rows,
    )
}

/// Left-aligned columns, the last one unpadded.
pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> anyhow::Result<()> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.map(String::from);
    let mut out = std::io::stdout().lock();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
