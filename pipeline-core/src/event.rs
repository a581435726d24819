//! Event loads: messages published on a message bus, loaded into warehouse tables. The bus is
//! NATS with JetStream ([`nats`]); a load needs of a bus only what [`StreamState`] and
//! [`nats::Nats::read`] give (a stream's sequence range, and one subject's messages in
//! sequence order from a given sequence), so that another bus with ordered, addressable
//! offsets (Kafka: a topic partition's offsets) can follow.

pub mod nats;

/// What a stream holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamState {
    /// The oldest sequence it still holds (retention deletes older ones).
    pub first: u64,
    /// The newest sequence; 0 when it never held a message.
    pub last: u64,
    /// The subjects it stores.
    pub subjects: Vec<String>,
}

/// One message read from a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusEvent {
    /// Its sequence in the stream: unique, increasing.
    pub seq: u64,
    /// The subject it was published on.
    pub subject: String,
    /// When the stream stored it, Unix milliseconds.
    pub published_ms: i64,
    /// Its bytes, as published.
    pub payload: Vec<u8>,
}
