//! PagerDuty Events API v2: `trigger` and `resolve` with a dedup key per task and partition.

use reqwest::Client;

use super::BoxFuture;
use super::{AlertEvent, Notifier, http};
use crate::config::Secret;

#[derive(Debug)]
pub struct PagerDutyNotifier {
    client: Client,
    routing_key: Secret,
    url: String,
}

impl PagerDutyNotifier {
    pub fn new(client: Client, routing_key: Secret, url: String) -> Self {
        PagerDutyNotifier {
            client,
            routing_key,
            url,
        }
    }

    pub fn event(&self, event: &AlertEvent) -> serde_json::Value {
        let subject = event.subject();
        match event {
            AlertEvent::Trigger {
                summary, details, ..
            } => serde_json::json!({
                "routing_key": self.routing_key.expose(),
                "event_action": "trigger",
                "dedup_key": subject.dedup_key(),
                "payload": {
                    "summary": summary.chars().take(1000).collect::<String>(),
                    "source": subject.host,
                    "severity": "critical",
                    "component": subject.pipeline,
                    "custom_details": {
                        "task": subject.task,
                        "partition": subject.partition,
                        "run_id": subject.run_id,
                        "error": details,
                    },
                },
            }),
            AlertEvent::Resolve { .. } => serde_json::json!({
                "routing_key": self.routing_key.expose(),
                "event_action": "resolve",
                "dedup_key": subject.dedup_key(),
            }),
        }
    }
}

impl Notifier for PagerDutyNotifier {
    fn name(&self) -> &'static str {
        "pagerduty"
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let endpoint = http::Endpoint {
                url: &self.url,
                what: "PagerDuty",
                item: "alert",
                bearer: None,
            };
            http::post_json(&self.client, &endpoint, &self.event(event), http::ATTEMPTS).await
        })
    }
}
