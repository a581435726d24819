//! From a protobuf message type to table columns, and from an event's bytes to a row.
//!
//! Each field of the message is one column: scalars as the matching SQL type, enums by their
//! names, `google.protobuf.Timestamp` as a timestamp, `Duration` as an interval (seconds on
//! SQLite), the wrapper types as the scalar they wrap (NULL when unset), and nested messages,
//! repeated and map fields as JSON. A proto3 scalar without explicit presence is never NULL:
//! unset means its default, as protobuf defines it.

use std::ops::Range;

use super::BusEvent;
use super::json::{self, push_timestamp, timestamp};
use super::sqlite::Bound;
use super::wire::{Plans, Scalar, Shape, Slot, Value, WellKnown};

/// How a column stores its field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    Int,
    BigInt,
    /// `uint64` and `fixed64`: PostgreSQL NUMERIC(20); SQLite TEXT (its integers stop at 2^63,
    /// and larger numbers would be rounded to a float).
    UBigInt,
    Real,
    Double,
    Bool,
    Text,
    Bytes,
    Timestamp,
    Interval,
    /// Nested messages, repeated and map fields: PostgreSQL JSONB; SQLite TEXT.
    Json,
    /// The same as PostgreSQL JSON, the text as loaded ([`super::JsonColumns::Json`]).
    JsonText,
}

impl ColumnKind {
    /// Its name in the load's metadata: what a schema change is judged by.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnKind::Int => "int",
            ColumnKind::BigInt => "bigint",
            ColumnKind::UBigInt => "ubigint",
            ColumnKind::Real => "real",
            ColumnKind::Double => "double",
            ColumnKind::Bool => "bool",
            ColumnKind::Text => "text",
            ColumnKind::Bytes => "bytes",
            ColumnKind::Timestamp => "timestamp",
            ColumnKind::Interval => "interval",
            ColumnKind::Json => "json",
            ColumnKind::JsonText => "json_text",
        }
    }

    /// The column's SQL type on PostgreSQL, or on SQLite.
    pub fn sql_type(self, postgres: bool) -> &'static str {
        match (self, postgres) {
            (ColumnKind::Int, true) => "INTEGER",
            (ColumnKind::BigInt, true) => "BIGINT",
            (ColumnKind::UBigInt, true) => "NUMERIC(20, 0)",
            (ColumnKind::Real, true) => "REAL",
            (ColumnKind::Double, true) => "DOUBLE PRECISION",
            (ColumnKind::Bool, true) => "BOOLEAN",
            (ColumnKind::Text, _) => "TEXT",
            (ColumnKind::Bytes, true) => "BYTEA",
            (ColumnKind::Timestamp, true) => "TIMESTAMPTZ",
            (ColumnKind::Interval, true) => "INTERVAL",
            (ColumnKind::Json, true) => "JSONB",
            (ColumnKind::JsonText, true) => "JSON",
            (ColumnKind::Int | ColumnKind::BigInt, false) => "INTEGER",
            (ColumnKind::UBigInt, false) => "TEXT",
            (ColumnKind::Bool, false) => "BOOLEAN",
            (ColumnKind::Real | ColumnKind::Double | ColumnKind::Interval, false) => "REAL",
            (ColumnKind::Bytes, false) => "BLOB",
            (ColumnKind::Timestamp | ColumnKind::Json | ColumnKind::JsonText, false) => "TEXT",
        }
    }
}

/// A column made from a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

/// A value to bind (SQLite). Texts and bytes are places in the arenas of their [`BoundRows`],
/// so that a batch's values are a few allocations, not one or more an event.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Double(f64),
    Bool(bool),
    Text(Range<usize>),
    Bytes(Range<usize>),
}

/// A row's value as it goes to a [`RowSink`], borrowed from the event or the maker. Its scalar
/// variants mirror [`Value`]'s on purpose: a datum is a value once the column's meaning is
/// applied (enums named, well-known types as times, messages as JSON), so that sinks need no
/// descriptors.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Datum<'a> {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Bool(bool),
    Text(&'a str),
    Bytes(&'a [u8]),
    /// Unix seconds and microseconds, within years 1 to 9999.
    Timestamp {
        seconds: i64,
        micros: u32,
    },
    /// Whole microseconds, within what a signed 64-bit count holds.
    Interval {
        seconds: i64,
        nanos: i32,
    },
    Json(&'a str),
}

/// The columns of a message type, in field order; JSON ones as `json` says.
pub fn columns(plans: &Plans, json: ColumnKind) -> Vec<Column> {
    plans.messages[0]
        .fields
        .iter()
        .map(|field| Column {
            name: field.name.clone(),
            kind: match field.shape {
                Shape::Singular { .. } => match scalar_kind(plans, field.scalar) {
                    ColumnKind::Json => json,
                    kind => kind,
                },
                Shape::Repeated | Shape::Map { .. } => json,
            },
        })
        .collect()
}

/// The kind of a non-repeated value: a message other than the well-known ones is JSON.
fn scalar_kind(plans: &Plans, scalar: Scalar) -> ColumnKind {
    match scalar {
        Scalar::Int32 | Scalar::Sint32 | Scalar::Sfixed32 => ColumnKind::Int,
        Scalar::Int64 | Scalar::Sint64 | Scalar::Sfixed64 | Scalar::Uint32 | Scalar::Fixed32 => {
            ColumnKind::BigInt
        }
        Scalar::Uint64 | Scalar::Fixed64 => ColumnKind::UBigInt,
        Scalar::Float => ColumnKind::Real,
        Scalar::Double => ColumnKind::Double,
        Scalar::Bool => ColumnKind::Bool,
        Scalar::String | Scalar::Enum(_) => ColumnKind::Text,
        Scalar::Bytes => ColumnKind::Bytes,
        Scalar::Message(id) => {
            let message = &plans.messages[id];
            match message.well_known {
                Some(WellKnown::Timestamp) => ColumnKind::Timestamp,
                Some(WellKnown::Duration) => ColumnKind::Interval,
                Some(WellKnown::Wrapper) => match wrapped_field(plans, id) {
                    Some(inner) if !matches!(inner, Scalar::Message(_)) => {
                        scalar_kind(plans, inner)
                    }
                    _ => ColumnKind::Json,
                },
                None => ColumnKind::Json,
            }
        }
    }
}

/// The type a wrapper wraps: its field 1, `value`.
fn wrapped_field(plans: &Plans, id: usize) -> Option<Scalar> {
    plans.messages[id]
        .fields
        .iter()
        .find(|field| field.number == 1)
        .map(|field| field.scalar)
}

/// Where rows go: PostgreSQL's binary `COPY`, or SQLite's bound cells. A row is `begin`,
/// one `push` a column, `end`; `rewind` drops a row begun, when its event turns out bad.
pub trait RowSink {
    fn begin(&mut self, index: usize, event: &BusEvent);
    fn push(&mut self, kind: ColumnKind, datum: Datum<'_>);
    fn end(&mut self);
    fn rewind(&mut self);
}

/// Makes rows of events: one for each message type and load, reused for every event.
#[derive(Debug)]
pub struct RowMaker {
    plans: Plans,
    kinds: Vec<ColumnKind>,
    /// Scratch space for a JSON column and an enum number's text.
    json: String,
    number: String,
}

impl RowMaker {
    /// A maker of rows of `columns` (made by [`columns`] from `plans`).
    pub fn new(plans: Plans, columns: &[Column]) -> RowMaker {
        let kinds = columns.iter().map(|c| c.kind).collect();
        RowMaker {
            plans,
            kinds,
            json: String::new(),
            number: String::new(),
        }
    }

    /// Writes the row of `event` (the `index`th of its batch) into `sink`: all of it, or, if
    /// it does not decode or cannot be stored, nothing and the reason. `slots` is scratch
    /// space that lives as long as the batch.
    pub fn row<'a>(
        &mut self,
        index: usize,
        event: &'a BusEvent,
        slots: &mut Vec<Slot<'a>>,
        sink: &mut impl RowSink,
    ) -> Result<(), String> {
        // Cleared rather than made anew: their lists keep their room from event to event.
        slots.resize_with(self.kinds.len(), Slot::default);
        slots.iter_mut().for_each(Slot::clear);
        self.plans.read(0, &event.payload, slots, 0)?;
        sink.begin(index, event);
        match self.push_columns(slots, sink) {
            Ok(()) => {
                sink.end();
                Ok(())
            }
            Err(why) => {
                sink.rewind();
                Err(why)
            }
        }
    }

    fn push_columns(&mut self, slots: &[Slot<'_>], sink: &mut impl RowSink) -> Result<(), String> {
        let plans = &self.plans;
        for ((field, slot), &kind) in plans.messages[0].fields.iter().zip(slots).zip(&self.kinds) {
            let named = |why: String| format!("field {}: {why}", field.name);
            let given = !slot.all.is_empty();
            match (field.shape, field.scalar, kind) {
                (Shape::Repeated | Shape::Map { .. }, _, _)
                | (_, _, ColumnKind::Json | ColumnKind::JsonText) => {
                    if matches!(field.shape, Shape::Singular { .. }) && !given {
                        sink.push(kind, Datum::Null);
                        continue;
                    }
                    self.json.clear();
                    json::write_field(plans, &mut self.json, field, slot, 1).map_err(named)?;
                    sink.push(kind, Datum::Json(&self.json));
                }
                (_, Scalar::Message(_), _) if !given => sink.push(kind, Datum::Null),
                (_, Scalar::Message(id), ColumnKind::Timestamp) => {
                    let (seconds, micros) = timestamp(plans, id, &slot.all, 1).map_err(named)?;
                    sink.push(kind, Datum::Timestamp { seconds, micros });
                }
                (_, Scalar::Message(id), ColumnKind::Interval) => {
                    let (seconds, nanos) =
                        plans.seconds_and_nanos(id, &slot.all, 1).map_err(named)?;
                    if seconds
                        .checked_mul(1_000_000)
                        .and_then(|m| m.checked_add(1_000_000))
                        .is_none()
                    {
                        return Err(named(format!("duration {seconds} s is too long")));
                    }
                    sink.push(kind, Datum::Interval { seconds, nanos });
                }
                (_, Scalar::Message(id), _) => {
                    // A wrapper: the value it wraps, or its default.
                    let inner = &plans.messages[id];
                    let number = &mut self.number;
                    plans
                        .with_slots(id, |inner_slots| {
                            plans.read_parts(id, &slot.all, inner_slots, 1)?;
                            let value = inner
                                .fields
                                .iter()
                                .zip(inner_slots.iter())
                                .find(|(f, _)| f.number == 1)
                                .and_then(|(f, s)| Plans::singular(f, s));
                            push_value(plans, sink, kind, value, number);
                            Ok(())
                        })
                        .map_err(named)?;
                }
                _ => push_value(
                    plans,
                    sink,
                    kind,
                    Plans::singular(field, slot),
                    &mut self.number,
                ),
            }
        }
        Ok(())
    }
}

fn push_value(
    plans: &Plans,
    sink: &mut impl RowSink,
    kind: ColumnKind,
    value: Option<Value<'_>>,
    number: &mut String,
) {
    let datum = match value {
        None => Datum::Null,
        Some(Value::Int(n)) => Datum::Int(n),
        Some(Value::UInt(n)) => Datum::UInt(n),
        Some(Value::Float(n)) => Datum::Float(n),
        Some(Value::Double(n)) => Datum::Double(n),
        Some(Value::Bool(b)) => Datum::Bool(b),
        Some(Value::Text(text)) => Datum::Text(text),
        Some(Value::Bytes(bytes)) => Datum::Bytes(bytes),
        Some(Value::Enum(id, n)) => match plans.enum_name(id, n) {
            Some(name) => Datum::Text(name),
            None => {
                number.clear();
                json::push_display(number, n);
                Datum::Text(number)
            }
        },
    };
    sink.push(kind, datum);
}

/// Rows as SQLite binds them: each row's cells, the event's own columns (sequence, subject,
/// publish time) first, row after row, with their texts and bytes in two arenas (a few
/// allocations for a batch, not several an event); and the index in the batch of each row's
/// event.
#[derive(Debug, Default)]
pub struct BoundRows {
    pub cells: Vec<Cell>,
    pub events: Vec<usize>,
    text: String,
    bytes: Vec<u8>,
    /// Where the row begun starts, to take it back.
    row_start: (usize, usize, usize),
    index: usize,
}

impl BoundRows {
    /// Room for `rows` rows of `width` cells (the message's columns).
    pub fn with_capacity(rows: usize, width: usize) -> BoundRows {
        BoundRows {
            cells: Vec::with_capacity(rows * (width + 3)),
            events: Vec::with_capacity(rows),
            // A guess at a row's texts (subject, time, a few short strings): grown if short.
            text: String::with_capacity(rows * 64),
            ..BoundRows::default()
        }
    }

    /// A cell's value, borrowed from the arenas.
    pub fn value(&self, cell: &Cell) -> Bound<'_> {
        match cell {
            Cell::Null => Bound::Null,
            Cell::Int(n) => Bound::Int(*n),
            Cell::Double(n) => Bound::Double(*n),
            Cell::Bool(b) => Bound::Int(i64::from(*b)),
            Cell::Text(range) => Bound::Text(&self.text[range.clone()]),
            Cell::Bytes(range) => Bound::Bytes(&self.bytes[range.clone()]),
        }
    }

    /// Ends a text cell whose text was written to the arena from `start` on.
    fn text_from(&mut self, start: usize) {
        self.cells.push(Cell::Text(start..self.text.len()));
    }
}

impl RowSink for BoundRows {
    fn begin(&mut self, index: usize, event: &BusEvent) {
        self.index = index;
        self.row_start = (self.cells.len(), self.text.len(), self.bytes.len());
        self.cells.push(Cell::Int(event.seq as i64));
        let start = self.text.len();
        self.text.push_str(&event.subject);
        self.text_from(start);
        let start = self.text.len();
        push_published(&mut self.text, event.published_ms, false);
        self.text_from(start);
    }

    fn push(&mut self, _kind: ColumnKind, datum: Datum<'_>) {
        let start = self.text.len();
        let cell = match datum {
            Datum::Null => Cell::Null,
            Datum::Int(n) => Cell::Int(n),
            // SQLite's integers stop at 2^63: text keeps every digit.
            Datum::UInt(n) => {
                json::push_display(&mut self.text, n);
                return self.text_from(start);
            }
            Datum::Float(n) => Cell::Double(f64::from(n)),
            Datum::Double(n) => Cell::Double(n),
            Datum::Bool(b) => Cell::Bool(b),
            Datum::Text(text) | Datum::Json(text) => {
                self.text.push_str(text);
                return self.text_from(start);
            }
            Datum::Bytes(bytes) => {
                let start = self.bytes.len();
                self.bytes.extend_from_slice(bytes);
                Cell::Bytes(start..self.bytes.len())
            }
            Datum::Timestamp { seconds, micros } => {
                push_timestamp(&mut self.text, seconds, micros, 6, false);
                return self.text_from(start);
            }
            Datum::Interval { seconds, nanos } => {
                Cell::Double(seconds as f64 + f64::from(nanos) / 1e9)
            }
        };
        self.cells.push(cell);
    }

    fn end(&mut self) {
        self.events.push(self.index);
    }

    fn rewind(&mut self) {
        let (cells, text, bytes) = self.row_start;
        self.cells.truncate(cells);
        self.text.truncate(text);
        self.bytes.truncate(bytes);
    }
}

/// A hash of the columns' names and kinds, in order: what a schema change is detected by.
pub fn schema_text(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|column| format!("{} {}", column.name, column.kind.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a publish time (Unix milliseconds) as each backend reads it.
pub fn push_published(out: &mut String, ms: i64, postgres: bool) {
    push_timestamp(
        out,
        ms.div_euclid(1000),
        ms.rem_euclid(1000) as u32,
        3,
        postgres,
    );
}
