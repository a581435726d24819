//! A small NATS client with what event loads need of JetStream: a stream's state, and its
//! messages of one subject from a sequence on, read in batches through an ephemeral ordered
//! pull consumer (no acknowledgements: the warehouse's watermark is the only cursor).
//!
//! The protocol is text lines over TCP (`INFO`, `CONNECT`, `PUB`, `SUB`, `MSG`, `HMSG`,
//! `PING`/`PONG`); JetStream is request and reply on `$JS.API.*` subjects with JSON bodies.
//! One connection serves one load; every wait has a timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, mpsc};

use super::{BusEvent, StreamState};
use crate::secrets::redact_url;

/// How long connecting, and each JetStream request, may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server holds a fetch open when no message is there yet.
const FETCH_EXPIRES: Duration = Duration::from_millis(500);
/// Messages a connection buffers for a fetch before the reader waits.
const BUFFER: usize = 16_384;
/// The most a NATS message may weigh: a server's `max_payload` cannot be set higher.
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Messages the reader hands a subscription at once, at most: what one read of the socket
/// brought, so that the receiver wakes once for them rather than once a message.
const CHUNK: usize = 256;

/// A message as the server delivered it.
#[derive(Debug)]
struct Delivered {
    /// Shared with the messages before it on the same subject: one text, not one each.
    subject: Arc<str>,
    /// What a JetStream message's reply subject says of it (read here, so that the subject
    /// itself is never kept).
    ack: Option<AckMeta>,
    /// The status line of a header block (`NATS/1.0 404 No Messages`), if any.
    status: Option<u16>,
    payload: Vec<u8>,
}

/// A subscription's messages, handed over by the reader in chunks.
#[derive(Debug)]
struct Inbox {
    chunks: mpsc::Receiver<Vec<Delivered>>,
    chunk: std::vec::IntoIter<Delivered>,
}

impl Inbox {
    /// The next message; `None` once the connection is gone.
    async fn recv(&mut self) -> Option<Delivered> {
        loop {
            if let Some(delivered) = self.chunk.next() {
                return Some(delivered);
            }
            self.chunk = self.chunks.recv().await?.into_iter();
        }
    }
}

/// Messages read but not yet handed to their subscription.
#[derive(Default)]
struct Handover {
    to: Option<(u64, mpsc::Sender<Vec<Delivered>>)>,
    chunk: Vec<Delivered>,
}

impl Handover {
    /// Hands over the chunk. A subscription that is gone loses its messages, as it asked.
    async fn flush(&mut self) {
        if let Some((_, sender)) = self.to.take()
            && !self.chunk.is_empty()
        {
            let _ = sender.send(std::mem::take(&mut self.chunk)).await;
        }
        self.chunk.clear();
    }
}

/// A connection to a NATS server.
#[derive(Debug)]
pub struct Nats {
    writer: Arc<Mutex<OwnedWriteHalf>>,
    subscriptions: Arc<std::sync::Mutex<HashMap<u64, mpsc::Sender<Vec<Delivered>>>>>,
    next_sid: AtomicU64,
    inbox: String,
    /// Where it is connected, password redacted: for messages.
    url: String,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Nats {
    /// Connects to `url` (`nats://[user:password@]host[:port]`) and checks that the server
    /// runs JetStream.
    pub async fn connect(url: &str) -> anyhow::Result<Nats> {
        crate::secrets::register_url(url);
        let shown = redact_url(url);
        let rest = url
            .strip_prefix("nats://")
            .with_context(|| format!("the NATS URL {shown} does not start with nats://"))?;
        let (credentials, address) = match rest.rsplit_once('@') {
            Some((credentials, address)) => (Some(credentials), address),
            None => (None, rest),
        };
        let address = address.trim_end_matches('/');
        let address = if address.contains(':') {
            address.to_string()
        } else {
            format!("{address}:4222")
        };
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(&address))
            .await
            .map_err(|_| anyhow::anyhow!("timed out"))
            .and_then(|connected| connected.map_err(anyhow::Error::from))
            .with_context(|| {
                format!("cannot connect to NATS at {shown}: is the server running there?")
            })?;
        // Commands are small writes that wait for replies (a publish and its ack, a pull
        // request): without this, Nagle's algorithm holds each back for the last one's ACK.
        stream
            .set_nodelay(true)
            .with_context(|| format!("cannot set TCP_NODELAY on the connection to {shown}"))?;
        let (read, mut write) = stream.into_split();
        let mut read = BufReader::new(read);
        let mut line = String::new();
        tokio::time::timeout(TIMEOUT, read.read_line(&mut line))
            .await
            .map_err(|_| anyhow::anyhow!("no INFO within {TIMEOUT:?}"))?
            .with_context(|| format!("NATS at {shown} closed the connection"))?;
        let info: Value = line
            .strip_prefix("INFO ")
            .and_then(|json| serde_json::from_str(json.trim()).ok())
            .with_context(|| format!("{shown} does not speak the NATS protocol"))?;
        if info["jetstream"] != true {
            bail!("the NATS server at {shown} runs without JetStream: start it with -js");
        }
        let mut connect = json!({
            "verbose": false, "pedantic": false, "headers": true, "no_responders": true,
            "lang": "rust", "version": env!("CARGO_PKG_VERSION"), "name": "pipeline",
        });
        if let Some(credentials) = credentials {
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            connect["user"] = json!(crate::secrets::percent_decode(user));
            connect["pass"] = json!(crate::secrets::percent_decode(password));
        }
        write
            .write_all(format!("CONNECT {connect}\r\nPING\r\n").as_bytes())
            .await
            .with_context(|| format!("cannot write to NATS at {shown}"))?;
        // The answer to PING, or the error that says why the server refused.
        loop {
            line.clear();
            tokio::time::timeout(TIMEOUT, read.read_line(&mut line))
                .await
                .map_err(|_| anyhow::anyhow!("NATS at {shown} did not answer"))?
                .with_context(|| format!("NATS at {shown} closed the connection"))?;
            let trimmed = line.trim();
            if trimmed == "PONG" {
                break;
            }
            if let Some(error) = trimmed.strip_prefix("-ERR ") {
                bail!("NATS at {shown} refused the connection: {error}");
            }
            if trimmed.is_empty() {
                bail!("NATS at {shown} closed the connection");
            }
        }
        static CONNECTIONS: AtomicU64 = AtomicU64::new(0);
        let inbox = format!(
            "_INBOX.pipeline.{}.{}.{}",
            std::process::id(),
            crate::date::now_millis(),
            CONNECTIONS.fetch_add(1, Ordering::Relaxed)
        );
        let subscriptions: Arc<std::sync::Mutex<HashMap<u64, mpsc::Sender<Vec<Delivered>>>>> =
            Arc::default();
        let writer = Arc::new(Mutex::new(write));
        let reader = tokio::spawn(read_loop(
            read,
            Arc::clone(&writer),
            Arc::clone(&subscriptions),
        ));
        let nats = Nats {
            writer,
            subscriptions,
            next_sid: AtomicU64::new(1),
            inbox,
            url: shown,
            reader,
        };
        Ok(nats)
    }

    async fn send(&self, text: &[u8]) -> anyhow::Result<()> {
        self.writer
            .lock()
            .await
            .write_all(text)
            .await
            .with_context(|| format!("lost the connection to NATS at {}", self.url))
    }

    /// Subscribes a fresh inbox: its subject, id and messages.
    async fn subscribe_inbox(&self) -> anyhow::Result<(String, u64, Inbox)> {
        let sid = self.next_sid.fetch_add(1, Ordering::Relaxed);
        let subject = format!("{}.{sid}", self.inbox);
        let (tx, rx) = mpsc::channel(BUFFER / CHUNK);
        self.subscriptions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(sid, tx);
        self.send(format!("SUB {subject} {sid}\r\n").as_bytes())
            .await?;
        let inbox = Inbox {
            chunks: rx,
            chunk: Vec::new().into_iter(),
        };
        Ok((subject, sid, inbox))
    }

    async fn unsubscribe(&self, sid: u64) {
        self.subscriptions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&sid);
        let _ = self.send(format!("UNSUB {sid}\r\n").as_bytes()).await;
    }

    /// Publishes `payload` on `subject`, with a reply subject if given.
    pub async fn publish(
        &self,
        subject: &str,
        reply: Option<&str>,
        payload: &[u8],
    ) -> anyhow::Result<()> {
        check_subject(subject)?;
        let mut frame = match reply {
            Some(reply) => format!("PUB {subject} {reply} {}\r\n", payload.len()),
            None => format!("PUB {subject} {}\r\n", payload.len()),
        }
        .into_bytes();
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        self.send(&frame).await
    }

    /// Publishes `payload` on `subject` and waits for the stream that stores it to say so:
    /// the sequence it was stored at.
    pub async fn publish_stored(&self, subject: &str, payload: &[u8]) -> anyhow::Result<u64> {
        let (inbox, sid, mut replies) = self.subscribe_inbox().await?;
        let sent = self.publish(subject, Some(&inbox), payload).await;
        let reply = match sent {
            Ok(()) => tokio::time::timeout(TIMEOUT, replies.recv())
                .await
                .ok()
                .flatten(),
            Err(err) => {
                self.unsubscribe(sid).await;
                return Err(err);
            }
        };
        self.unsubscribe(sid).await;
        let reply = reply
            .with_context(|| format!("no stream of NATS at {} acknowledged {subject}", self.url))?;
        if reply.status == Some(503) {
            bail!("no stream of NATS at {} stores {subject}", self.url);
        }
        let ack: Value = serde_json::from_slice(&reply.payload)
            .with_context(|| format!("the acknowledgement of {subject} is not JSON"))?;
        if let Some(error) = ack.get("error") {
            bail!(
                "{subject} was not stored: {}",
                error["description"].as_str().unwrap_or("unknown error")
            );
        }
        ack["seq"]
            .as_u64()
            .with_context(|| format!("the acknowledgement of {subject} has no sequence: {ack}"))
    }

    /// A JetStream API request: its JSON answer, or the error it holds.
    pub async fn jetstream(&self, api: &str, body: &Value) -> anyhow::Result<Value> {
        let (inbox, sid, mut replies) = self.subscribe_inbox().await?;
        let subject = format!("$JS.API.{api}");
        let sent = self
            .publish(&subject, Some(&inbox), body.to_string().as_bytes())
            .await;
        let reply = match sent {
            Ok(()) => tokio::time::timeout(TIMEOUT, replies.recv()).await,
            Err(err) => {
                self.unsubscribe(sid).await;
                return Err(err);
            }
        };
        self.unsubscribe(sid).await;
        let reply = reply
            .map_err(|_| anyhow::anyhow!("JetStream at {} did not answer {api}", self.url))?
            .with_context(|| format!("lost the connection to NATS at {}", self.url))?;
        if reply.status == Some(503) {
            bail!(
                "JetStream at {} is not available (503 no responders)",
                self.url
            );
        }
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

    /// The state of `stream`: its first and last sequence.
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
        let created = self
            .jetstream(
                &format!("CONSUMER.CREATE.{stream}"),
                &json!({"stream_name": stream, "config": {
                    "deliver_policy": "by_start_sequence",
                    "opt_start_seq": from.max(1),
                    "filter_subject": subject,
                    "ack_policy": "none",
                    "replay_policy": "instant",
                    "inactive_threshold": 30_000_000_000u64,
                    "mem_storage": true,
                    "num_replicas": 1,
                }}),
            )
            .await
            .with_context(|| format!("cannot read {subject} from stream {stream}"))?;
        let consumer = created["name"]
            .as_str()
            .context("JetStream created a consumer without a name")?
            .to_string();
        let (inbox, sid, replies) = self.subscribe_inbox().await?;
        Ok(Reader {
            nats: self,
            stream: stream.to_string(),
            subject: subject.to_string(),
            consumer,
            inbox,
            sid,
            replies,
            to,
            last: from.max(1) - 1,
            batch: batch.max(1),
            done: from > to,
        })
    }
}

/// Reads one subject of a stream in order, a batch at a time.
#[derive(Debug)]
pub struct Reader<'a> {
    nats: &'a Nats,
    stream: String,
    subject: String,
    consumer: String,
    inbox: String,
    sid: u64,
    replies: Inbox,
    to: u64,
    /// The sequence of the last message read: each next one must come after it.
    last: u64,
    batch: usize,
    done: bool,
}

impl Reader<'_> {
    /// The next batch in sequence order; `None` once the read reached its bound or the
    /// stream's end.
    pub async fn next_batch(&mut self) -> anyhow::Result<Option<Vec<BusEvent>>> {
        if self.done {
            return Ok(None);
        }
        let request = json!({
            "batch": self.batch,
            "expires": FETCH_EXPIRES.as_nanos() as u64,
        });
        self.nats
            .publish(
                &format!(
                    "$JS.API.CONSUMER.MSG.NEXT.{}.{}",
                    self.stream, self.consumer
                ),
                Some(&self.inbox),
                request.to_string().as_bytes(),
            )
            .await?;
        let mut events = Vec::with_capacity(self.batch);
        while events.len() < self.batch {
            // A message of the chunk at hand needs no timer; only a wait for the next does.
            let delivered = match self.replies.chunk.next() {
                Some(delivered) => delivered,
                None => tokio::time::timeout(FETCH_EXPIRES + TIMEOUT, self.replies.recv())
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "JetStream stopped sending {} from {}",
                            self.subject,
                            self.stream
                        )
                    })?
                    .with_context(|| format!("lost the connection to NATS at {}", self.nats.url))?,
            };
            match delivered.status {
                // No message now, or the fetch expired: the batch ends here.
                Some(404 | 408) => {
                    self.done = true;
                    break;
                }
                Some(409) => bail!(
                    "JetStream ended the read of {} from {}: {}",
                    self.subject,
                    self.stream,
                    String::from_utf8_lossy(&delivered.payload)
                ),
                _ => {}
            }
            let meta = delivered.ack.with_context(|| {
                format!("a message of {} came without its sequence", self.stream)
            })?;
            if meta.stream_seq > self.to {
                self.done = true;
                break;
            }
            // A load's rows are unique by sequence because each comes once, in order: a
            // message delivered again, or out of order, stops the read rather than load twice.
            if meta.stream_seq <= self.last {
                bail!(
                    "JetStream delivered seq {} of {} after seq {}: a read must come in order, \
                     each message once; nothing of this batch was written",
                    meta.stream_seq,
                    self.stream,
                    self.last
                );
            }
            self.last = meta.stream_seq;
            events.push(BusEvent {
                seq: meta.stream_seq,
                subject: delivered.subject,
                published_ms: (meta.timestamp_ns / 1_000_000) as i64,
                payload: delivered.payload,
            });
            if meta.stream_seq >= self.to || meta.pending == 0 {
                self.done = true;
                break;
            }
        }
        Ok((!events.is_empty()).then_some(events))
    }

    /// Ends the read: its subscription and its consumer go.
    pub async fn close(self) {
        self.nats.unsubscribe(self.sid).await;
        let _ = self
            .nats
            .jetstream(
                &format!("CONSUMER.DELETE.{}.{}", self.stream, self.consumer),
                &json!({}),
            )
            .await;
    }
}

/// What the reply subject of a JetStream message says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AckMeta {
    stream_seq: u64,
    timestamp_ns: u64,
    pending: u64,
}

impl AckMeta {
    /// From `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (and the
    /// newer form with a domain and an account before the stream, and a token after).
    fn parse(reply: &[u8]) -> Option<AckMeta> {
        // Read for every message of a load: the tokens go on the stack, not in a Vec.
        let mut tokens: [&[u8]; 12] = [&[]; 12];
        let mut count = 0;
        for token in reply.split(|b| *b == b'.') {
            if let Some(slot) = tokens.get_mut(count) {
                *slot = token;
            }
            count += 1;
        }
        if count < 9 || tokens[0] != b"$JS" || tokens[1] != b"ACK" {
            return None;
        }
        // Old form: 9 tokens; new form: 12 or more, the stream at index 4.
        let base = if count == 9 { 2 } else { 4 };
        let number = |i: usize| number(tokens.get(base + i)?);
        Some(AckMeta {
            stream_seq: number(3)?,
            timestamp_ns: number(5)?,
            pending: number(6)?,
        })
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

/// Reads frames until the connection ends, handing each message to its subscription.
async fn read_loop(
    mut read: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    subscriptions: Arc<std::sync::Mutex<HashMap<u64, mpsc::Sender<Vec<Delivered>>>>>,
) {
    let mut line = Vec::new();
    let mut handover = Handover::default();
    let mut last_subject: Arc<str> = Arc::from("");
    loop {
        // Nothing more read yet: what was read goes to its subscription before the wait.
        if read.buffer().is_empty() {
            handover.flush().await;
        }
        line.clear();
        // Bytes, not text: a line for every message, read as it came (no UTF-8 check).
        match read.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let mut words = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|word| !word.is_empty());
        let Some(op) = words.next() else { continue };
        // A line for every message: its words go on the stack, not in a Vec.
        let mut slots: [&[u8]; 5] = [&[]; 5];
        let mut count = 0;
        for word in words {
            if let Some(slot) = slots.get_mut(count) {
                *slot = word;
            }
            count += 1;
        }
        let words = if count <= slots.len() {
            &slots[..count]
        } else {
            &[][..]
        };
        let (subject, sid, reply, header_len, total) = match (op, words) {
            (b"MSG", [subject, sid, total]) => (*subject, *sid, None, 0, *total),
            (b"MSG", [subject, sid, reply, total]) => (*subject, *sid, Some(*reply), 0, *total),
            (b"HMSG", [subject, sid, headers, total]) => {
                (*subject, *sid, None, size(headers), *total)
            }
            (b"HMSG", [subject, sid, reply, headers, total]) => {
                (*subject, *sid, Some(*reply), size(headers), *total)
            }
            // The server's keep-alive: unanswered, it drops a long load's connection.
            (b"PING", _) => {
                if writer.lock().await.write_all(b"PONG\r\n").await.is_err() {
                    break;
                }
                continue;
            }
            _ => continue,
        };
        let total = size(total);
        if total > MAX_FRAME {
            // A server that misbehaves: such a frame is not read into memory.
            tracing::warn!(
                "the NATS server announced a message of {total} bytes, more than NATS allows \
                 ({MAX_FRAME}): the connection is dropped"
            );
            break;
        }
        let mut frame = vec![0u8; total + 2];
        if read.read_exact(&mut frame).await.is_err() {
            break;
        }
        frame.truncate(total);
        let (status, payload) = if header_len > 0 && header_len <= frame.len() {
            let headers = String::from_utf8_lossy(&frame[..header_len]);
            let status = headers
                .lines()
                .next()
                .and_then(|first| first.split_whitespace().nth(1))
                .and_then(|code| code.parse().ok());
            (status, frame[header_len..].to_vec())
        } else {
            (None, frame)
        };
        let Some(sid) = number(sid) else {
            continue;
        };
        if handover.to.as_ref().is_none_or(|(to, _)| *to != sid) || handover.chunk.len() >= CHUNK {
            handover.flush().await;
            let sender = subscriptions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .get(&sid)
                .cloned();
            match sender {
                Some(sender) => handover.to = Some((sid, sender)),
                None => continue, // unsubscribed: a late message
            }
        }
        if handover.chunk.capacity() == 0 {
            handover.chunk.reserve(CHUNK);
        }
        if last_subject.as_bytes() != subject {
            last_subject = Arc::from(String::from_utf8_lossy(subject));
        }
        handover.chunk.push(Delivered {
            subject: Arc::clone(&last_subject),
            ack: reply.and_then(AckMeta::parse),
            status,
            payload,
        });
    }
    handover.flush().await;
    // The connection is gone: every waiting request learns it from its closed channel.
    subscriptions
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clear();
}

/// A decimal number of the protocol, `None` if it is not one (or does not fit).
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A size of the protocol (0 if it is not a number).
fn size(digits: &[u8]) -> usize {
    number(digits)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_subjects_give_sequence_time_and_pending() {
        assert_eq!(
            AckMeta::parse(b"$JS.ACK.ORDERS.c1.1.42.7.1700000000123456789.3"),
            Some(AckMeta {
                stream_seq: 42,
                timestamp_ns: 1_700_000_000_123_456_789,
                pending: 3
            })
        );
        assert_eq!(
            AckMeta::parse(b"$JS.ACK.hub.ACCOUNT.ORDERS.c1.1.42.7.1700000000123456789.0.xyz"),
            Some(AckMeta {
                stream_seq: 42,
                timestamp_ns: 1_700_000_000_123_456_789,
                pending: 0
            })
        );
        assert_eq!(AckMeta::parse(b"_INBOX.x"), None);
    }

    #[test]
    fn protocol_numbers_are_digits_that_fit() {
        assert_eq!(number(b"0"), Some(0));
        assert_eq!(
            number(b"1700000000123456789"),
            Some(1_700_000_000_123_456_789)
        );
        assert_eq!(number(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"4a",
            b"-1",
            b"+1",
            b" 1",
        ] {
            assert_eq!(number(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(size(b"12"), 12);
        assert_eq!(size(b"x"), 0);
    }

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
