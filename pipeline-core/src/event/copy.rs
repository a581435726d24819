//! Rows in PostgreSQL's binary `COPY` format: each value in its type's own binary form, so
//! the server parses no text for numbers and times (that was a third of its work in a load).
//! The column types are the ones the load created, so each value's form is known.

use super::BusEvent;
use super::columns::{ColumnKind, Datum, RowSink};

/// Seconds from the Unix epoch to PostgreSQL's, 2000-01-01.
const POSTGRES_EPOCH: i64 = 946_684_800;

/// A batch of rows as one binary `COPY ... FROM STDIN (FORMAT binary)`.
#[derive(Debug)]
pub struct BinaryRows {
    buf: Vec<u8>,
    /// Where the row being written began, for `rewind`.
    row_start: usize,
    /// Values a row: the event's three columns and the message's.
    width: i16,
    pub rows: usize,
}

impl BinaryRows {
    /// Rows of `columns` message columns, room for about `capacity` rows.
    pub fn new(columns: usize, capacity: usize) -> BinaryRows {
        let mut buf = Vec::with_capacity(capacity * (40 + columns * 16));
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension
        BinaryRows {
            buf,
            row_start: 0,
            width: i16::try_from(columns + 3).unwrap_or(i16::MAX),
            rows: 0,
        }
    }

    /// The data to send, trailer included.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }

    fn value(&mut self, bytes: &[u8]) {
        self.buf
            .extend_from_slice(&(bytes.len() as i32).to_be_bytes());
        self.buf.extend_from_slice(bytes);
    }

    fn timestamp(&mut self, seconds: i64, micros: u32) {
        let since = (seconds - POSTGRES_EPOCH) * 1_000_000 + i64::from(micros);
        self.value(&since.to_be_bytes());
    }
}

impl RowSink for BinaryRows {
    fn begin(&mut self, _index: usize, event: &BusEvent) {
        self.row_start = self.buf.len();
        self.buf.extend_from_slice(&self.width.to_be_bytes());
        self.value(&(event.seq as i64).to_be_bytes());
        self.value(event.subject.as_bytes());
        self.timestamp(
            event.published_ms.div_euclid(1000),
            event.published_ms.rem_euclid(1000) as u32 * 1000,
        );
    }

    fn push(&mut self, kind: ColumnKind, datum: Datum<'_>) {
        match datum {
            Datum::Null => self.buf.extend_from_slice(&(-1i32).to_be_bytes()),
            Datum::Int(n) if kind == ColumnKind::Int => self.value(&(n as i32).to_be_bytes()),
            Datum::Int(n) => self.value(&n.to_be_bytes()),
            Datum::UInt(n) => {
                let numeric = numeric(n);
                self.value(&numeric);
            }
            Datum::Float(n) => self.value(&n.to_be_bytes()),
            Datum::Double(n) => self.value(&n.to_be_bytes()),
            Datum::Bool(b) => self.value(&[u8::from(b)]),
            Datum::Text(text) => self.value(text.as_bytes()),
            Datum::Bytes(bytes) => self.value(bytes),
            Datum::Timestamp { seconds, micros } => self.timestamp(seconds, micros),
            Datum::Interval { seconds, nanos } => {
                // Rounded to the microsecond, as PostgreSQL rounds text input.
                let micros = seconds * 1_000_000
                    + (i64::from(nanos) + 500 * i64::from(nanos.signum())) / 1000;
                let mut interval = [0u8; 16];
                interval[..8].copy_from_slice(&micros.to_be_bytes());
                self.value(&interval); // and zero days, zero months
            }
            Datum::Json(text) if kind == ColumnKind::JsonText => self.value(text.as_bytes()),
            Datum::Json(text) => {
                // JSONB's binary form: a version byte, then the text.
                self.buf
                    .extend_from_slice(&(text.len() as i32 + 1).to_be_bytes());
                self.buf.push(1);
                self.buf.extend_from_slice(text.as_bytes());
            }
        }
    }

    fn end(&mut self) {
        self.rows += 1;
    }

    fn rewind(&mut self) {
        self.buf.truncate(self.row_start);
    }
}

/// An unsigned number in NUMERIC's binary form: base-10,000 digits, most significant first.
fn numeric(mut n: u64) -> Vec<u8> {
    let mut digits = Vec::with_capacity(5);
    while n > 0 {
        digits.push((n % 10_000) as i16);
        n /= 10_000;
    }
    let weight = digits.len() as i16 - 1;
    // Trailing zero digits are implied by the weight.
    let zeros = digits.iter().take_while(|d| **d == 0).count();
    let mut out = Vec::with_capacity(8 + 2 * digits.len());
    out.extend_from_slice(&((digits.len() - zeros) as i16).to_be_bytes());
    out.extend_from_slice(&weight.max(0).to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes()); // sign: positive
    out.extend_from_slice(&0i16.to_be_bytes()); // display scale
    for digit in digits[zeros..].iter().rev() {
        out.extend_from_slice(&digit.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::numeric;

    #[test]
    fn numerics_are_base_10000_digits() {
        // ndigits, weight, sign, dscale, digits.
        assert_eq!(numeric(0), [0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(numeric(7), [0, 1, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(numeric(10_000), [0, 1, 0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            numeric(123_456_789),
            [0, 3, 0, 2, 0, 0, 0, 0, 0, 1, 0x09, 0x29, 0x1a, 0x85]
        );
        // 18446744073709551615 = 1844 6744 0737 0955 1615.
        let max = numeric(u64::MAX);
        assert_eq!(&max[..4], [0, 5, 0, 4]);
        assert_eq!(&max[8..10], 1844i16.to_be_bytes());
    }
}
