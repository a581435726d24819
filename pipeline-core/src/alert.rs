//! Alerts and their delivery (which outcomes alert is the run's to say: `run::alerts`): one per
//! task failure after its last attempt (never one per retry), and a resolve
//! when a task that alerted later succeeds. Low severity (a non-critical task) goes to Slack;
//! high severity (a critical task) to PagerDuty, or to Slack when no pager is configured; the
//! log gets everything. Delivery runs in the background with timeouts and a few bounded
//! retries: it never changes a task's outcome, and the run waits for it only briefly.

mod pagerduty;
mod slack;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use crate::config::AlertConfig;
use crate::http::post as http;
use anyhow::Context as _;

/// A boxed, `Send` future: what alert senders return.
pub(crate) type BoxFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
pub(crate) use crate::status::Severity;

pub use pagerduty::PagerDutyNotifier;
pub use slack::SlackNotifier;

/// How long the end of a run waits for alerts still being delivered.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(20);

/// Which task of which run an alert is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    pub pipeline: String,
    pub partition: String,
    pub task: String,
    pub run_id: i64,
    pub host: String,
}

impl Subject {
    /// Identifies the incident across runs, so a later success resolves it.
    pub fn dedup_key(&self) -> String {
        format!(
            "pipeline/{}/{}/{}",
            self.pipeline, self.partition, self.task
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertEvent {
    /// A task failed for good (or a check found a bad outcome).
    Trigger {
        subject: Subject,
        severity: Severity,
        /// One line: what happened.
        summary: String,
        /// The error, redacted.
        details: String,
    },
    /// A task that alerted has succeeded since.
    Resolve {
        subject: Subject,
        severity: Severity,
    },
}

impl AlertEvent {
    pub fn severity(&self) -> Severity {
        match self {
            AlertEvent::Trigger { severity, .. } | AlertEvent::Resolve { severity, .. } => {
                *severity
            }
        }
    }

    pub fn subject(&self) -> &Subject {
        match self {
            AlertEvent::Trigger { subject, .. } | AlertEvent::Resolve { subject, .. } => subject,
        }
    }

    /// One line for people: Slack's text and the log.
    pub fn text(&self) -> String {
        match self {
            AlertEvent::Trigger {
                summary, details, ..
            } => format!("{summary}: {details}"),
            AlertEvent::Resolve { subject, .. } => format!(
                "{} {}: task `{}` succeeded again (run {})",
                subject.pipeline, subject.partition, subject.task, subject.run_id
            ),
        }
    }
}

/// Somewhere alerts go.
pub trait Notifier: Send + Sync + fmt::Debug {
    /// For messages: `slack`, `pagerduty`.
    fn name(&self) -> &'static str;
    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// Sends alerts in the background; [`Alerts::finish`] waits for them, within a deadline.
#[derive(Debug)]
pub struct Alerts {
    low: Vec<Arc<dyn Notifier>>,
    high: Vec<Arc<dyn Notifier>>,
    pending: JoinSet<()>,
}

impl Alerts {
    /// Notifiers from the configuration. `log_only` (test mode) sends nothing out.
    pub fn from_config(config: &AlertConfig, log_only: bool) -> anyhow::Result<Alerts> {
        let mut alerts = Alerts::none();
        let nothing_configured =
            config.slack_webhook.is_none() && config.pagerduty_routing_key.is_none();
        // No HTTP client (and its TLS set-up) for runs that only log.
        if log_only || nothing_configured {
            return Ok(alerts);
        }
        let timeout = config
            .timeout_secs
            .map_or(http::DEFAULT_TIMEOUT, Duration::from_secs);
        let client = http::client(timeout).context("alerts")?;
        let slack: Option<Arc<dyn Notifier>> = config.slack_webhook.clone().map(|webhook| {
            Arc::new(SlackNotifier::new(client.clone(), webhook)) as Arc<dyn Notifier>
        });
        let pager: Option<Arc<dyn Notifier>> = config.pagerduty_routing_key.clone().map(|key| {
            let url = config
                .pagerduty_url
                .clone()
                .unwrap_or_else(|| crate::config::PAGERDUTY_EVENTS_URL.into());
            Arc::new(PagerDutyNotifier::new(client.clone(), key, url)) as Arc<dyn Notifier>
        });
        alerts.low.extend(slack.clone());
        match pager {
            Some(pager) => alerts.high.push(pager),
            None => alerts.high.extend(slack),
        }
        Ok(alerts)
    }

    /// Only the log.
    pub fn none() -> Alerts {
        Alerts {
            low: Vec::new(),
            high: Vec::new(),
            pending: JoinSet::new(),
        }
    }

    /// Logs the event and starts delivering it.
    pub fn send(&mut self, event: AlertEvent) {
        match (&event, event.severity()) {
            (AlertEvent::Resolve { .. }, _) => tracing::info!("alert resolved: {}", event.text()),
            (_, Severity::Low) => tracing::warn!("alert: {}", event.text()),
            (_, Severity::High) => tracing::error!("ALERT: {}", event.text()),
        }
        let notifiers = match event.severity() {
            Severity::Low => &self.low,
            Severity::High => &self.high,
        };
        let event = Arc::new(event);
        for notifier in notifiers {
            let (notifier, event) = (Arc::clone(notifier), Arc::clone(&event));
            self.pending.spawn(async move {
                if let Err(err) = notifier.send(&event).await {
                    tracing::warn!(
                        "could not deliver an alert about `{}` to {}: {}",
                        event.subject().task,
                        notifier.name(),
                        crate::message::error_text(&err)
                    );
                }
            });
        }
    }

    /// Waits for deliveries under way, at most `deadline`; abandons the rest with a warning.
    pub async fn finish(mut self, deadline: Duration) {
        let drained = tokio::time::timeout(deadline, async {
            while self.pending.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "gave up on {} alert deliveries still under way after {}",
                self.pending.len(),
                crate::date::format_duration(deadline)
            );
            self.pending.abort_all();
        }
    }
}
