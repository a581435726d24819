//! Sends events in the background, one at a time and in order (a run's START reaches the
//! endpoint before its COMPLETE). A run never waits for the endpoint while it runs: events
//! queue (up to [`QUEUE`], beyond which they are dropped and counted), and the end of the run
//! waits for the queue only until a deadline. An endpoint that failed a delivery after its
//! retries gets one try per event until it answers again, so a dead endpoint costs a run one
//! timeout per event at most, not three.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::OpenLineageConfig;
use crate::http::post::{self, Endpoint};

/// Events waiting to be sent, at most.
const QUEUE: usize = 10_000;
/// The endpoint, as errors name it.
const WHAT: &str = "the OpenLineage endpoint";

#[derive(Debug)]
pub(super) struct Delivery {
    queue: mpsc::Sender<Value>,
    sender: JoinHandle<Sent>,
    /// Events dropped because the queue was full.
    dropped: AtomicU64,
}

/// What the sender did.
#[derive(Debug, Default)]
struct Sent {
    delivered: u64,
    failed: u64,
}

impl Delivery {
    pub fn start(config: &OpenLineageConfig) -> anyhow::Result<Delivery> {
        let client = post::client(post::DEFAULT_TIMEOUT)?;
        let (queue, mut events) = mpsc::channel::<Value>(QUEUE);
        let config = config.clone();
        let sender = tokio::spawn(async move {
            let endpoint = Endpoint {
                url: config.events_url.expose(),
                what: WHAT,
                item: "event",
                bearer: config.api_key.as_ref().map(|key| key.expose()),
            };
            let mut sent = Sent::default();
            let mut healthy = true;
            while let Some(event) = events.recv().await {
                let attempts = if healthy { post::ATTEMPTS } else { 1 };
                match post::post_json(&client, &endpoint, &event, attempts).await {
                    Ok(()) => {
                        sent.delivered += 1;
                        healthy = true;
                    }
                    Err(err) => {
                        if healthy {
                            tracing::warn!(
                                "an OpenLineage event was not delivered (the run goes on; later \
                                 events get one try each until the endpoint answers): {}",
                                crate::secrets::redact(&format!("{err:#}"))
                            );
                        }
                        sent.failed += 1;
                        healthy = false;
                    }
                }
            }
            sent
        });
        Ok(Delivery {
            queue,
            sender,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues an event; never waits.
    pub fn send(&self, event: Value) {
        if self.queue.try_send(event).is_err() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::warn!(
                "OpenLineage events are queued faster than the endpoint takes them ({QUEUE} \
                 waiting): later ones are dropped"
            );
        }
    }

    /// Waits until every queued event is sent, or `deadline` passes.
    pub async fn finish(self, deadline: Duration) {
        let Delivery {
            queue,
            mut sender,
            dropped,
        } = self;
        drop(queue);
        let dropped = dropped.into_inner();
        let sent = match tokio::time::timeout(deadline, &mut sender).await {
            Ok(Ok(sent)) => sent,
            Ok(Err(err)) => {
                tracing::warn!("the OpenLineage sender stopped: {err}");
                return;
            }
            Err(_) => {
                sender.abort();
                tracing::warn!(
                    "OpenLineage events still unsent after {} were given up",
                    crate::date::format_duration(deadline)
                );
                return;
            }
        };
        if sent.failed + dropped > 0 {
            tracing::warn!(
                "OpenLineage: {} of {} events of this run were not delivered",
                sent.failed + dropped,
                sent.failed + dropped + sent.delivered
            );
        }
    }
}
