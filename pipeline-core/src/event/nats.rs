//! The NATS connection of event loads, through `async-nats` (the NATS maintainers' client):
//! TLS with a CA of the operator's and mutual TLS, a user and password, a token, an NKey or a
//! `.creds` file, several seed servers tried in order, reconnects. What a load needs of
//! JetStream is a stream's state, and its messages of one subject from a sequence on, read
//! through an ephemeral pull consumer without acknowledgements (the warehouse's watermark is
//! the only cursor). Every wait has a timeout; no error names a secret.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use async_nats::jetstream::{self, consumer};
use async_nats::{ConnectErrorKind, ConnectOptions, ServerAddr};
use futures_util::StreamExt as _;
use serde_json::{Value, json};

use super::{BusEvent, StreamState};
use crate::config::NatsConfig;
use crate::fatal::Fatal;

/// How long connecting, and each request, may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long a pull request stays open at the server while no message is there.
const FETCH_EXPIRES: Duration = Duration::from_secs(2);

/// A connection to NATS.
#[derive(Debug)]
pub struct Nats {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// The servers, passwords hidden: for messages.
    url: String,
}

impl Nats {
    /// Connects to the first of the configured servers that answers, and checks that it
    /// runs JetStream.
    pub async fn connect(config: &NatsConfig) -> anyhow::Result<Nats> {
        let shown = config.redacted();
        let servers = config
            .servers()
            .map(|server| {
                server.parse::<ServerAddr>().map_err(|_| {
                    anyhow!(
                        "{}: {} is not a NATS server's URL",
                        config.url.source,
                        crate::secrets::redact_url(server)
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>();
        // A setting that cannot work will not work on the next attempt either.
        let servers = servers.map_err(Fatal::wrap)?;
        let options = options(config).map_err(Fatal::wrap)?;
        let client = async_nats::connect_with_options(servers, options)
            .await
            .map_err(|err| connect_error(err, config, &shown))?;
        if !client.server_info().jetstream {
            bail!("the NATS server at {shown} runs without JetStream: start it with -js");
        }
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(TIMEOUT);
        Ok(Nats {
            client,
            jetstream,
            url: shown,
        })
    }

    /// Connects to `url` without TLS settings or credentials beyond the URL's.
    pub async fn connect_url(url: &str) -> anyhow::Result<Nats> {
        Self::connect(&NatsConfig::new(url, "the given URL")).await
    }

    /// Connects to the bus of the pipeline's configuration (`pipeline.toml`, the
    /// environment), or to `fallback` when none is configured.
    pub async fn connect_configured(fallback: &str) -> anyhow::Result<Nats> {
        match crate::config::Config::load()?.nats {
            Some(config) => Self::connect(&config).await,
            None => Self::connect_url(fallback).await,
        }
    }

    /// Publishes `payload` on `subject` without waiting for it to be stored.
    pub async fn publish(&self, subject: &str, payload: &[u8]) -> anyhow::Result<()> {
        check_subject(subject)?;
        self.client
            .publish(subject.to_string(), payload.to_vec().into())
            .await
            .with_context(|| format!("cannot publish to NATS at {}", self.url))
    }

    /// Publishes `payload` on `subject` and waits for the stream that stores it to say so:
    /// the sequence it was stored at. Messages published before it on this connection are
    /// stored before it.
    pub async fn publish_stored(&self, subject: &str, payload: &[u8]) -> anyhow::Result<u64> {
        check_subject(subject)?;
        let ack = self
            .jetstream
            .publish(subject.to_string(), payload.to_vec().into())
            .await
            .with_context(|| format!("cannot publish {subject} to NATS at {}", self.url))?
            .await
            .with_context(|| format!("no stream of NATS at {} stored {subject}", self.url))?;
        Ok(ack.sequence)
    }

    /// A JetStream API request (`STREAM.CREATE.ORDERS`): its JSON answer, or the error it
    /// holds.
    pub async fn jetstream(&self, api: &str, body: &Value) -> anyhow::Result<Value> {
        let subject = format!("$JS.API.{api}");
        check_subject(&subject)?;
        let reply = self
            .client
            .request(subject, body.to_string().into())
            .await
            .map_err(|err| match err.kind() {
                async_nats::RequestErrorKind::NoResponders => {
                    anyhow!("JetStream at {} is not available (no responders)", self.url)
                }
                async_nats::RequestErrorKind::TimedOut => {
                    anyhow!("JetStream at {} did not answer {api}", self.url)
                }
                _ => anyhow!("lost the connection to NATS at {}: {err}", self.url),
            })?;
        let answer: Value = serde_json::from_slice(&reply.payload)
            .with_context(|| format!("JetStream answered {api} with something not JSON"))?;
        if let Some(error) = answer.get("error") {
            bail!(
                "{} (JetStream error {})",
                error["description"].as_str().unwrap_or("unknown error"),
                error["err_code"]
            );
        }
        Ok(answer)
    }

    /// The state of `stream`: its first and last sequence, and its subjects.
    pub async fn stream_state(&self, stream: &str) -> anyhow::Result<StreamState> {
        check_name("stream", stream)?;
        let info = self
            .jetstream(&format!("STREAM.INFO.{stream}"), &json!({}))
            .await
            .with_context(|| format!("cannot read the state of stream {stream}"))?;
        let state = &info["state"];
        Ok(StreamState {
            first: state["first_seq"].as_u64().unwrap_or(0),
            last: state["last_seq"].as_u64().unwrap_or(0),
            subjects: info["config"]["subjects"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// A reader of `stream`'s messages on `subject` from sequence `from` through `to`, in
    /// batches of `batch` ([`Reader::next_batch`]); [`Reader::close`] removes its consumer
    /// (the server also drops it after 30 s without use).
    pub async fn read(
        &self,
        stream: &str,
        subject: &str,
        from: u64,
        to: u64,
        batch: usize,
    ) -> anyhow::Result<Reader<'_>> {
        check_name("stream", stream)?;
        check_subject(subject)?;
        let batch = batch.max(1);
        let config = consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from.max(1),
            },
            filter_subject: subject.to_string(),
            ack_policy: consumer::AckPolicy::None,
            replay_policy: consumer::ReplayPolicy::Instant,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            num_replicas: 1,
            ..Default::default()
        };
        let consumer: consumer::PullConsumer = self
            .jetstream
            .create_consumer_on_stream(config, stream)
            .await
            .with_context(|| format!("cannot read {subject} from stream {stream}"))?;
        // What the server answered the creation with: no second request for it.
        let info = consumer.cached_info();
        let (name, pending) = (info.name.clone(), info.num_pending);
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch)
            .expires(FETCH_EXPIRES)
            .messages()
            .await
            .with_context(|| format!("cannot read {subject} from stream {stream}"))?;
        Ok(Reader {
            nats: self,
            stream: stream.to_string(),
            subject: subject.to_string(),
            consumer: name,
            messages,
            to,
            last: from.max(1) - 1,
            delivered: 0,
            batch,
            last_subject: Arc::from(subject),
            done: from > to || pending == 0,
        })
    }
}

/// Connection options from the configuration: TLS, credentials, timeouts.
fn options(config: &NatsConfig) -> anyhow::Result<ConnectOptions> {
    let mut options = match &config.creds {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!(
                    "cannot read the NATS credentials file {} (PIPELINE_NATS_CREDS, [nats] creds)",
                    path.display()
                )
            })?;
            // The JWT and the seed it holds never show, whatever says them: each is a line
            // of one long word, between the file's banners and notes.
            for line in text.lines().map(str::trim) {
                if line.len() >= 20
                    && !line.contains(char::is_whitespace)
                    && !line.starts_with(['-', '*'])
                {
                    crate::secrets::register(line);
                }
            }
            ConnectOptions::with_credentials(&text).map_err(|_| {
                anyhow!(
                    "the NATS credentials file {} holds no user JWT and NKey seed: use the \
                     .creds file `nsc generate creds` writes",
                    path.display()
                )
            })?
        }
        None => ConnectOptions::new(),
    };
    // The client takes no credentials from its URLs: the first URL that has a user and
    // password gives them.
    if let Some((user, password)) = config.servers().find_map(user_and_password) {
        options = options.user_and_password(user, password);
    }
    if let Some(token) = &config.token {
        options = options.token(token.expose().to_string());
    }
    if let Some(seed) = &config.nkey_seed {
        // Checked here: the client's own error would come at connect time, without the why.
        nkeys::KeyPair::from_seed(seed.expose()).map_err(|_| {
            anyhow!(
                "the NATS NKey seed (PIPELINE_NATS_NKEY_SEED, [nats] nkey_seed) is not a user \
                 seed: it starts with SU and is 58 characters long"
            )
        })?;
        options = options.nkey(seed.expose().to_string());
    }
    for (path, what) in [
        (&config.ca, "CA certificate (PIPELINE_NATS_CA, [nats] ca)"),
        (
            &config.cert,
            "client certificate (PIPELINE_NATS_CERT, [nats] cert)",
        ),
        (&config.key, "client key (PIPELINE_NATS_KEY, [nats] key)"),
    ] {
        if let Some(path) = path
            && !path.is_file()
        {
            bail!("the NATS {what} {} is not a readable file", path.display());
        }
    }
    if let Some(ca) = &config.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&config.cert, &config.key) {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    if config.servers().any(|server| server.starts_with("tls://")) {
        options = options.require_tls(true);
    }
    Ok(options
        .name("pipeline")
        .connection_timeout(TIMEOUT)
        .request_timeout(Some(TIMEOUT))
        // Seeds are tried in the order given: the first that answers serves the load.
        .retain_servers_order()
        // A lost server is tried again a few times (others of the cluster first); a read
        // that waits longer than its timeout fails the load, which a rerun resumes.
        .max_reconnects(Some(10)))
}

/// The user and password of a server's URL (`nats://etl:secret@bus:4222`), decoded.
fn user_and_password(url: &str) -> Option<(String, String)> {
    let password = crate::secrets::url_password(url)?;
    let authority = url.find("://")? + 3;
    let user = url[authority..].split(':').next()?;
    Some((
        crate::secrets::percent_decode(user),
        crate::secrets::percent_decode(password),
    ))
}

/// What a failed connection means, for the operator: which setting to look at.
fn connect_error(err: async_nats::ConnectError, config: &NatsConfig, shown: &str) -> anyhow::Error {
    let auth = config.authentication().first().map_or(
        "the credentials: the server requires some (a creds file, an NKey, a token, or a user \
         and password)",
        |way| way.check,
    );
    // The client's text, redacted: TLS errors say what was wrong with the certificate.
    let detail = crate::secrets::redact(&format!("{err}"));
    let source = std::error::Error::source(&err)
        .map(|source| format!(": {}", crate::secrets::redact(&source.to_string())))
        .unwrap_or_default();
    // A certificate the client refused comes as an I/O error of the handshake.
    let certificate = format!("{detail}{source}").contains("certificate");
    // Refused credentials and certificates are fatal: retrying only delays the page. A
    // server that is not there may be there on the next attempt.
    match err.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => Fatal::wrap(
            anyhow!("NATS at {shown} refused the connection ({detail}): check {auth}"),
        ),
        kind if kind == ConnectErrorKind::Tls || certificate => Fatal::wrap(anyhow!(
            "the TLS handshake with NATS at {shown} failed ({detail}{source}): check the CA \
             (PIPELINE_NATS_CA), the client certificate and key, and the certificates' dates"
        )),
        ConnectErrorKind::TimedOut => {
            anyhow!("NATS at {shown} did not answer within {TIMEOUT:?}: is a server running there?")
        }
        _ => anyhow!(
            "cannot connect to NATS at {shown} ({detail}{source}): is a server running there?"
        ),
    }
}

/// Reads one subject of a stream in order, a batch at a time.
pub struct Reader<'a> {
    nats: &'a Nats,
    stream: String,
    subject: String,
    consumer: String,
    messages: consumer::pull::Stream,
    to: u64,
    /// The sequence of the last message read: each next one must come after it.
    last: u64,
    /// The consumer's number of the last message received: each next one is one more.
    delivered: u64,
    batch: usize,
    /// Shared by the events on one subject: one text, not one each.
    last_subject: Arc<str>,
    done: bool,
}

impl std::fmt::Debug for Reader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("stream", &self.stream)
            .field("subject", &self.subject)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl Reader<'_> {
    /// The next batch in sequence order; `None` once the read reached its bound or the
    /// stream's end.
    pub async fn next_batch(&mut self) -> anyhow::Result<Option<Vec<BusEvent>>> {
        let mut events = Vec::with_capacity(self.batch);
        while !self.done && events.len() < self.batch {
            let message = tokio::time::timeout(FETCH_EXPIRES + TIMEOUT, self.messages.next())
                .await
                .map_err(|_| {
                    anyhow!(
                        "JetStream stopped sending {} from {} (NATS at {}): a server went \
                         away or the stream changed leader; what was committed stays, and a \
                         rerun goes on from there",
                        self.subject,
                        self.stream,
                        self.nats.url
                    )
                })?
                .with_context(|| format!("lost the connection to NATS at {}", self.nats.url))?
                .map_err(|err| {
                    anyhow!(
                        "JetStream ended the read of {} from {}: {}",
                        self.subject,
                        self.stream,
                        crate::secrets::redact(&err.to_string())
                    )
                })?;
            let info = message
                .info()
                .map_err(|_| anyhow!("a message of {} came without its sequence", self.stream))?;
            let seq = info.stream_sequence;
            // The consumer numbers what it delivers 1, 2, 3...: a number skipped is a message
            // sent and never received (in flight on a connection to a server that went away;
            // without acknowledgements nothing sends it again). Loading on from after it would
            // lose it for good, as the watermark would pass it.
            if info.consumer_sequence != self.delivered + 1 {
                bail!(
                    "JetStream's deliveries {}..{} of {} from {} never arrived (a server went \
                     away with them in flight); nothing of this batch was written, and a rerun \
                     reads them again",
                    self.delivered + 1,
                    info.consumer_sequence.saturating_sub(1),
                    self.subject,
                    self.stream
                );
            }
            self.delivered = info.consumer_sequence;
            if seq > self.to {
                self.done = true;
                break;
            }
            // A load's rows are unique by sequence because each comes once, in order: a
            // message delivered again, or out of order, stops the read rather than load twice.
            if seq <= self.last {
                bail!(
                    "JetStream delivered seq {seq} of {} after seq {}: a read must come in \
                     order, each message once; nothing of this batch was written",
                    self.stream,
                    self.last
                );
            }
            self.last = seq;
            self.done = seq >= self.to || info.pending == 0;
            let published_ms = (info.published.unix_timestamp_nanos() / 1_000_000) as i64;
            if *self.last_subject != *message.subject.as_str() {
                self.last_subject = Arc::from(message.subject.as_str());
            }
            events.push(BusEvent {
                seq,
                subject: Arc::clone(&self.last_subject),
                published_ms,
                payload: message.message.payload.to_vec(),
            });
        }
        Ok((!events.is_empty()).then_some(events))
    }

    /// Ends the read: its consumer goes.
    pub async fn close(self) {
        let Reader {
            nats,
            stream,
            consumer,
            messages,
            ..
        } = self;
        drop(messages);
        let _ = nats
            .jetstream
            .delete_consumer_from_stream(&consumer, &stream)
            .await;
    }
}

/// A stream's name may not hold what would change the API subject it goes into.
pub(crate) fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
        })
    {
        bail!(
            "{name:?} is not a valid {what} name: no dots, wildcards, slashes, spaces or control \
             characters"
        );
    }
    Ok(())
}

/// A subject goes into a protocol line as it is: whitespace or a control character in it
/// would end the line and start another command (and, in a log, forge a line of its own).
pub(crate) fn check_subject(subject: &str) -> anyhow::Result<()> {
    if subject.is_empty() || subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("{subject:?} is not a valid NATS subject: no spaces or control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_change_the_api_subject_are_refused() {
        assert!(check_name("stream", "ORDERS").is_ok());
        for bad in ["", "A.B", "A*", "A>", "A B"] {
            assert!(check_name("stream", bad).is_err(), "{bad}");
        }
        assert!(check_subject("orders.placed").is_ok());
        for bad in ["", "orders placed", "x\r\nPUB evil 0", "a\tb"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }
}
