//! Slack incoming webhooks: `{"text": ".."}`.

use reqwest::Client;

use super::BoxFuture;
use super::{AlertEvent, Notifier, http};
use crate::config::Secret;

#[derive(Debug)]
pub struct SlackNotifier {
    client: Client,
    webhook: Secret,
}

impl SlackNotifier {
    pub fn new(client: Client, webhook: Secret) -> Self {
        SlackNotifier { client, webhook }
    }

    pub fn message(event: &AlertEvent) -> serde_json::Value {
        let icon = match event {
            AlertEvent::Resolve { .. } => ":white_check_mark:",
            AlertEvent::Trigger {
                severity: super::Severity::High,
                ..
            } => ":rotating_light:",
            AlertEvent::Trigger { .. } => ":warning:",
        };
        serde_json::json!({ "text": format!("{icon} {}", event.text()) })
    }
}

impl Notifier for SlackNotifier {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn send<'a>(&'a self, event: &'a AlertEvent) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let endpoint = http::Endpoint {
                url: self.webhook.expose(),
                what: "Slack",
                item: "alert",
                bearer: None,
            };
            http::post_json(
                &self.client,
                &endpoint,
                &Self::message(event),
                http::ATTEMPTS,
            )
            .await
        })
    }
}
