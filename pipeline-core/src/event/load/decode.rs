//! The decode stage of an event load: each batch decoded on a thread of its own into its
//! backend's rows, and the load failed when too many messages do not decode.

use super::*;

/// A batch decoded: each event's row, or why it did not decode.
pub(super) struct Decoded {
    pub(super) events: Vec<BusEvent>,
    pub(super) rows: Rows,
    pub(super) dead: Vec<(usize, String)>,
}

/// A batch's rows, ready for their backend.
pub(super) enum Rows {
    /// PostgreSQL: binary `COPY` data, made on the decoding thread; and how many rows.
    Copy(Vec<u8>, usize),
    /// SQLite: values to bind, a row for each of some of `events`.
    Bound(BoundRows),
}

impl Rows {
    /// How many rows (the events that decoded).
    pub(super) fn count(&self) -> usize {
        match self {
            Rows::Copy(_, count) => *count,
            Rows::Bound(bound) => bound.events.len(),
        }
    }
}

/// Decodes batches, and fails the load when too many messages do not decode.
pub(super) struct Decoder<'a> {
    pub(super) spec: &'a EventSpec,
    /// Lent to each batch's decoding thread, and back.
    pub(super) maker: Option<RowMaker>,
    pub(super) columns: usize,
    pub(super) message: &'a MessageDescriptor,
    pub(super) postgres: bool,
    pub(super) seen: u64,
    pub(super) bad: u64,
}

impl Decoder<'_> {
    /// Decodes on a thread of its own, so that the batch before is written meanwhile.
    pub(super) async fn decode(&mut self, events: Vec<BusEvent>) -> anyhow::Result<Decoded> {
        let mut maker = self
            .maker
            .take()
            .context("a batch's decoding failed before, and the load with it")?;
        let (postgres, columns) = (self.postgres, self.columns);
        let (maker, events, rows, dead) = tokio::task::spawn_blocking(move || {
            let mut dead = Vec::new();
            let mut slots = Vec::new();
            let rows = if postgres {
                let mut copy = BinaryRows::new(columns, events.len());
                for (i, event) in events.iter().enumerate() {
                    if let Err(why) = maker.row(i, event, &mut slots, &mut copy) {
                        dead.push((i, why));
                    }
                }
                let count = copy.rows;
                Rows::Copy(copy.finish(), count)
            } else {
                let mut bound = BoundRows::with_capacity(events.len(), columns);
                for (i, event) in events.iter().enumerate() {
                    if let Err(why) = maker.row(i, event, &mut slots, &mut bound) {
                        dead.push((i, why));
                    }
                }
                Rows::Bound(bound)
            };
            drop(slots);
            (maker, events, rows, dead)
        })
        .await
        .context("decoding a batch of events panicked")?;
        self.maker = Some(maker);
        self.seen += events.len() as u64;
        self.bad += dead.len() as u64;
        if self.bad as f64 > self.spec.max_bad_share * self.seen as f64 {
            let (seq, error) = dead
                .first()
                .map(|(i, error)| (events[*i].seq, error.clone()))
                .unwrap_or_default();
            let hint = if error.ends_with(crate::event::wire::RETYPED) {
                crate::event::wire::retyped_hint()
            } else {
                "is it the right message type for the subject?"
            };
            return Err(anyhow!(
                "{} of {} messages on {} in stream {} do not decode as {} (more than {}%); \
                 the first, seq {seq}: {error}. Nothing of this batch was written: {hint}",
                self.bad,
                self.seen,
                self.spec.subject,
                self.spec.stream,
                self.message.full_name(),
                self.spec.max_bad_share * 100.0,
            ))
            .fatal();
        }
        Ok(Decoded { events, rows, dead })
    }
}
