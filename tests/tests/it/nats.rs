//! The NATS client of event loads against the real server on 127.0.0.1:4222 (JetStream):
//! a stream's state, one subject's messages read in order and bounded, and clear errors for a
//! missing server, stream or subject.

use std::time::Duration;

use pipeline_core::testing::BusEvent;
use pipeline_core::testing::Nats;
use pipeline_tests::unique_name;
use serde_json::json;

const URL: &str = "nats://127.0.0.1:4222";

/// A fresh stream on `<name>.>` subjects, deleted when the test ends.
struct Stream {
    nats: Nats,
    name: String,
}

impl Stream {
    async fn create(prefix: &str) -> Stream {
        let nats = Nats::connect_url(URL)
            .await
            .expect("NATS with JetStream on 127.0.0.1:4222 (.ci/run starts it): `nats-server -js`");
        let name = unique_name(prefix).to_uppercase().replace(['-', '.'], "_");
        nats.jetstream(
            &format!("STREAM.CREATE.{name}"),
            &json!({"name": name, "subjects": [format!("{name}.>")], "storage": "memory"}),
        )
        .await
        .expect("create the stream");
        Stream { nats, name }
    }

    fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.name)
    }

    async fn read(&self, subject: &str, from: u64, to: u64, batch: usize) -> Vec<Vec<BusEvent>> {
        let mut batches = Vec::new();
        let mut reader = self
            .nats
            .read(&self.name, subject, from, to, batch)
            .await
            .expect("the read");
        while let Some(events) = reader.next_batch().await.expect("a batch") {
            batches.push(events);
        }
        reader.close().await;
        batches
    }

    async fn delete(self) {
        let _ = self
            .nats
            .jetstream(&format!("STREAM.DELETE.{}", self.name), &json!({}))
            .await;
    }
}

#[tokio::test]
async fn a_subjects_messages_come_in_order_in_batches_and_stop_at_the_bound() {
    let stream = Stream::create("nats-read").await;
    let placed = stream.subject("placed");
    let other = stream.subject("cancelled");
    for i in 0..25 {
        stream
            .nats
            .publish_stored(&placed, format!("order {i}").as_bytes())
            .await
            .expect("stored");
        if i % 5 == 0 {
            stream
                .nats
                .publish_stored(&other, b"not this one")
                .await
                .expect("stored");
        }
    }
    let state = stream
        .nats
        .stream_state(&stream.name)
        .await
        .expect("the state");
    assert_eq!((state.first, state.last), (1, 30));
    let batches = stream.read(&placed, 1, state.last, 10).await;
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let events: Vec<&BusEvent> = batches.iter().flatten().collect();
    assert!(events.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert!(events.iter().all(|e| *e.subject == *placed));
    assert_eq!(events[0].payload, b"order 0");
    assert_eq!(events[24].payload, b"order 24");
    let now = pipeline_core::testing::now_millis();
    assert!(events.iter().all(|e| (now - e.published_ms).abs() < 60_000));

    // From the middle, and bounded: nothing past `to` even though the stream holds more.
    let middle = events[12].seq;
    let bounded: Vec<BusEvent> = stream
        .read(&placed, middle, events[19].seq, 4)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(bounded.len(), 8);
    assert_eq!(bounded[0].seq, middle);
    assert_eq!(bounded[7].payload, b"order 19");
    // Nothing after the last: an empty read, without waiting long.
    let started = std::time::Instant::now();
    assert!(
        stream
            .read(&placed, state.last + 1, state.last + 10, 10)
            .await
            .is_empty()
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    stream.delete().await;
}

#[tokio::test]
async fn a_missing_server_stream_or_subject_is_a_clear_error() {
    let refused = Nats::connect_url("nats://etl:hunter2@127.0.0.1:1")
        .await
        .expect_err("nothing listens on port 1");
    let message = format!("{refused:#}");
    assert!(
        message.contains("cannot connect to NATS at nats://etl:***@127.0.0.1:1"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let stream = Stream::create("nats-errors").await;
    let missing = stream
        .nats
        .stream_state("NO_SUCH_STREAM")
        .await
        .expect_err("no such stream");
    let message = format!("{missing:#}");
    assert!(
        message.contains("NO_SUCH_STREAM") && message.contains("not found"),
        "{message}"
    );
    let unmatched = stream
        .nats
        .read(&stream.name, "elsewhere.placed", 1, 10, 10)
        .await
        .expect_err("a subject the stream does not store");
    let message = format!("{unmatched:#}");
    assert!(
        message.contains("elsewhere.placed") && message.contains(&stream.name),
        "{message}"
    );
    let hostile = stream
        .nats
        .stream_state("A.B")
        .await
        .expect_err("a dotted name");
    assert!(format!("{hostile:#}").contains("not a valid stream name"));
    stream.delete().await;
}

#[tokio::test]
async fn a_wildcard_read_gives_each_message_its_own_subject() {
    // The reader shares one subject text among messages in a row on the same subject: a
    // change of subject must start a new one.
    let stream = Stream::create("nats-subjects").await;
    let (placed, cancelled) = (stream.subject("placed"), stream.subject("cancelled"));
    let published = [
        &cancelled, &placed, &placed, &cancelled, &cancelled, &placed,
    ];
    for subject in published {
        stream
            .nats
            .publish_stored(subject, b"an order")
            .await
            .expect("stored");
    }
    let batches = stream.read(&stream.subject("*"), 1, 6, 4).await;
    let read: Vec<&str> = batches.iter().flatten().map(|e| &*e.subject).collect();
    assert_eq!(read, published.map(String::as_str));
    stream.delete().await;
}

/// A server that speaks just enough NATS and JetStream for a read, then misbehaves: it
/// answers a fetch with what `deliver` makes of the subscription's id.
async fn misbehaving_jetstream(deliver: impl Fn(&str) -> String + Send + 'static) -> String {
    use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("nats://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        let info = r#"{"server_id":"fake","server_name":"fake","version":"2.10.0","proto":1,"headers":true,"max_payload":1048576,"jetstream":true}"#;
        let _ = write.write_all(format!("INFO {info}\r\n").as_bytes()).await;
        // Subscriptions by subject; `_INBOX.x.*` (a client's inbox for replies) by prefix.
        let mut sids: Vec<(String, String)> = Vec::new();
        let mut line = String::new();
        while read.read_line(&mut line).await.unwrap_or(0) > 0 {
            let words: Vec<String> = line.split_whitespace().map(String::from).collect();
            line.clear();
            let reply = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                ["PING"] => {
                    let _ = write.write_all(b"PONG\r\n").await;
                    continue;
                }
                ["SUB", subject, sid] => {
                    sids.push((subject.to_string(), sid.to_string()));
                    continue;
                }
                ["PUB", subject, reply, size] => {
                    let mut payload = vec![0; size.parse::<usize>().unwrap_or(0) + 2];
                    let _ = read.read_exact(&mut payload).await;
                    (subject.to_string(), reply.to_string())
                }
                _ => continue,
            };
            let (subject, inbox) = reply;
            let sid = sids
                .iter()
                .find(|(pattern, _)| match pattern.strip_suffix('*') {
                    Some(prefix) => inbox.starts_with(prefix),
                    None => *pattern == inbox,
                })
                .map(|(_, sid)| sid.clone())
                .unwrap_or_default();
            let mut out = Vec::new();
            if subject.starts_with("$JS.API.CONSUMER.MSG.NEXT.") {
                out.extend(deliver(&sid).into_bytes());
            } else {
                // A consumer's info: what creating one, or asking about it, answers.
                let answer = r#"{"stream_name":"S","name":"c","created":"2026-01-01T00:00:00Z","config":{"ack_policy":"none","deliver_policy":"by_start_sequence","opt_start_seq":1,"replay_policy":"instant","filter_subject":"S.x"},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":5}"#;
                out.extend(
                    format!("MSG {inbox} {sid} {}\r\n{answer}\r\n", answer.len()).into_bytes(),
                );
            }
            let _ = write.write_all(&out).await;
        }
    });
    url
}

#[tokio::test]
async fn a_message_delivered_again_or_out_of_order_stops_the_read() {
    // A load's rows are unique by sequence because the reader takes each message once, in
    // order: a bus that sends one again must fail the read, not load it twice.
    for (seqs, again, after) in [(&[1u64, 2, 2, 3][..], 2, 2), (&[1, 3, 2][..], 2, 3)] {
        let deliver = move |sid: &str| {
            let mut frames = String::new();
            for (i, seq) in seqs.iter().enumerate() {
                let pending = seqs.len() - i - 1;
                // The consumer numbers its deliveries 1, 2, 3, whatever it delivers.
                let delivery = i + 1;
                let ack = format!("$JS.ACK.S.c.1.{seq}.{delivery}.1795669200000000000.{pending}");
                frames.push_str(&format!("MSG S.x {sid} {ack} 1\r\nx\r\n"));
            }
            frames
        };
        let nats = Nats::connect_url(&misbehaving_jetstream(deliver).await)
            .await
            .expect("connected");
        let mut reader = nats.read("S", "S.x", 1, 5, 10).await.expect("the read");
        let error = reader.next_batch().await.expect_err("a message again");
        assert_eq!(
            format!("{error:#}"),
            format!(
                "JetStream delivered seq {again} of S after seq {after}: a read must come in \
                 order, each message once; nothing of this batch was written"
            )
        );
    }
}

#[tokio::test]
async fn a_delivery_that_never_arrived_stops_the_read_and_a_gap_in_the_stream_does_not() {
    // Stream sequences may skip (other subjects, deleted messages); the consumer's numbers of
    // its deliveries may not: a skipped one was sent and lost, and loading on would lose it.
    let deliver = |deliveries: &'static [u64]| {
        move |sid: &str| {
            let seqs = [1u64, 2, 5];
            let mut frames = String::new();
            for (i, (seq, delivery)) in seqs.iter().zip(deliveries).enumerate() {
                let pending = seqs.len() - i - 1;
                let ack = format!("$JS.ACK.S.c.1.{seq}.{delivery}.1795669200000000000.{pending}");
                frames.push_str(&format!("MSG S.x {sid} {ack} 1\r\nx\r\n"));
            }
            frames
        }
    };
    let nats = Nats::connect_url(&misbehaving_jetstream(deliver(&[1, 2, 3])).await)
        .await
        .expect("connected");
    let mut reader = nats.read("S", "S.x", 1, 5, 10).await.expect("the read");
    let batch = reader.next_batch().await.expect("a batch").expect("events");
    assert_eq!(batch.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 5]);

    let nats = Nats::connect_url(&misbehaving_jetstream(deliver(&[1, 2, 4])).await)
        .await
        .expect("connected");
    let mut reader = nats.read("S", "S.x", 1, 5, 10).await.expect("the read");
    let error = reader.next_batch().await.expect_err("delivery 3 was lost");
    assert_eq!(
        format!("{error:#}"),
        "JetStream's deliveries 3..3 of S.x from S never arrived (a server went away with them \
         in flight); nothing of this batch was written, and a rerun reads them again"
    );
}

#[tokio::test]
async fn a_message_bigger_than_nats_allows_ends_the_connection_unread() {
    // A frame that claims 2^64 - 1 bytes must not be allocated (nor overflow the size of the
    // read): the connection ends, and the read says it lost it.
    let deliver = |sid: &str| {
        let ack = "$JS.ACK.S.c.1.1.1.1795669200000000000.0";
        format!("MSG S.x {sid} {ack} 18446744073709551615\r\nx\r\n")
    };
    let url = misbehaving_jetstream(deliver).await;
    let nats = Nats::connect_url(&url).await.expect("connected");
    let mut reader = nats.read("S", "S.x", 1, 5, 10).await.expect("the read");
    let error = reader.next_batch().await.expect_err("no such message");
    assert_eq!(
        format!("{error:#}"),
        format!("lost the connection to NATS at {url}")
    );
}
