//! Which outcome of a task alerts, how urgently, and in what words. The executor hands every
//! final outcome here; most never alert, and that is decided before anything is built.
//!
//! - A failure or timeout after the last attempt triggers: high for a critical task, low for
//!   a non-critical one.
//! - A critical task that could not run because a non-critical task failed triggers high:
//!   the dependency does not mean what it says.
//! - A success of a task with an alert still open resolves it.
//! - Anything else (skipped, cancelled, held back by its cause's own alert) is quiet.
//! - Apart from these, a success that left warnings (`Ctx::warn`) sends them, low: a notice,
//!   not an incident, so nothing stays open for it.

use std::collections::HashMap;

use super::TaskReport;
use crate::alert::{AlertEvent, Severity, Subject};
use crate::status::TaskStatus;

/// The run an outcome belongs to.
pub(crate) struct RunSubject<'a> {
    pub pipeline: &'a str,
    pub partition: crate::date::Partition,
    pub run_id: i64,
}

/// The alert for a task's final outcome, if any. `blocked_by` names the non-critical task
/// whose failure kept a critical one from running; `open` holds the alerts still open for the
/// partition, and loses the one a success resolves.
pub(crate) fn decide(
    report: &TaskReport,
    blocked_by: Option<&str>,
    open: &mut HashMap<String, Severity>,
    run: &RunSubject<'_>,
) -> Option<AlertEvent> {
    let may_alert = match report.status {
        TaskStatus::Succeeded => open.contains_key(&report.name),
        TaskStatus::Failed | TaskStatus::TimedOut => true,
        TaskStatus::UpstreamFailed => blocked_by.is_some(),
        _ => false,
    };
    if !may_alert {
        return None;
    }
    let subject = subject_of(report, run);
    let (severity, kind) = if report.critical {
        (Severity::High, "critical task")
    } else {
        (Severity::Low, "non-critical task")
    };
    let details = report.error.clone().unwrap_or_default();
    match report.status {
        TaskStatus::Succeeded => open
            .remove(&report.name)
            .map(|severity| AlertEvent::Resolve { subject, severity }),
        TaskStatus::Failed | TaskStatus::TimedOut => Some(AlertEvent::Trigger {
            summary: format!(
                "{} {}: {kind} `{}` {} after {} attempt{}",
                subject.pipeline,
                subject.partition,
                report.name,
                report.status,
                report.attempts,
                if report.attempts == 1 { "" } else { "s" }
            ),
            subject,
            severity,
            details,
        }),
        TaskStatus::UpstreamFailed => {
            let cause = blocked_by?;
            Some(AlertEvent::Trigger {
                summary: format!(
                    "{} {}: critical task `{}` could not run because non-critical `{cause}` failed",
                    subject.pipeline, subject.partition, report.name
                ),
                subject,
                severity: Severity::High,
                details,
            })
        }
        _ => None,
    }
}

/// The notice of a success that left warnings, if it did.
pub(crate) fn warning(report: &TaskReport, run: &RunSubject<'_>) -> Option<AlertEvent> {
    if !report.status.is_success() {
        return None;
    }
    let warnings: Vec<&str> = report.warnings().collect();
    if warnings.is_empty() {
        return None;
    }
    let subject = subject_of(report, run);
    Some(AlertEvent::Trigger {
        summary: format!(
            "{} {}: task `{}` succeeded with {}",
            subject.pipeline,
            subject.partition,
            report.name,
            if warnings.len() == 1 {
                "a warning".to_string()
            } else {
                format!("{} warnings", warnings.len())
            }
        ),
        details: warnings.join("; "),
        subject,
        severity: Severity::Low,
    })
}

fn subject_of(report: &TaskReport, run: &RunSubject<'_>) -> Subject {
    Subject {
        pipeline: run.pipeline.to_string(),
        partition: run.partition.to_string(),
        task: report.name.clone(),
        run_id: run.run_id,
        host: crate::host::hostname(),
    }
}
