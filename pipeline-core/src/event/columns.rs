//! From a protobuf message type to table columns, and from a decoded message to a row.
//!
//! Each field of the message is one column: scalars as the matching SQL type, enums by their
//! names, `google.protobuf.Timestamp` as a timestamp, `Duration` as an interval (seconds on
//! SQLite), the wrapper types as the scalar they wrap (NULL when unset), and nested messages,
//! repeated and map fields as JSON. A proto3 scalar without explicit presence is never NULL:
//! unset means its default, as protobuf defines it.

use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _, Value,
};

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
    Json,
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
            (ColumnKind::Int | ColumnKind::BigInt, false) => "INTEGER",
            (ColumnKind::UBigInt, false) => "TEXT",
            (ColumnKind::Bool, false) => "BOOLEAN",
            (ColumnKind::Real | ColumnKind::Double | ColumnKind::Interval, false) => "REAL",
            (ColumnKind::Bytes, false) => "BLOB",
            (ColumnKind::Timestamp | ColumnKind::Json, false) => "TEXT",
        }
    }
}

/// A column made from a field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: ColumnKind,
    field: FieldDescriptor,
    /// The field's type, and its shape, read once rather than for every message.
    field_kind: Kind,
    presence: bool,
    list: bool,
    map: bool,
}

/// A value to bind.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    Double(f64),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
}

/// The columns of a message type, in field order.
pub fn columns(message: &MessageDescriptor) -> Vec<Column> {
    message
        .fields()
        .map(|field| Column {
            name: field.name().to_string(),
            kind: kind(&field),
            field_kind: field.kind(),
            presence: field.supports_presence(),
            list: field.is_list(),
            map: field.is_map(),
            field,
        })
        .collect()
}

fn kind(field: &FieldDescriptor) -> ColumnKind {
    if field.is_list() || field.is_map() {
        return ColumnKind::Json;
    }
    scalar_kind(&field.kind()).unwrap_or(ColumnKind::Json)
}

/// The kind of a non-repeated value of `kind`; `None` for messages stored as JSON.
fn scalar_kind(kind: &Kind) -> Option<ColumnKind> {
    Some(match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => ColumnKind::Int,
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => {
            ColumnKind::BigInt
        }
        Kind::Uint64 | Kind::Fixed64 => ColumnKind::UBigInt,
        Kind::Float => ColumnKind::Real,
        Kind::Double => ColumnKind::Double,
        Kind::Bool => ColumnKind::Bool,
        Kind::String | Kind::Enum(_) => ColumnKind::Text,
        Kind::Bytes => ColumnKind::Bytes,
        Kind::Message(message) => match message.full_name() {
            "google.protobuf.Timestamp" => ColumnKind::Timestamp,
            "google.protobuf.Duration" => ColumnKind::Interval,
            name if wrapped(name) => {
                return message
                    .get_field_by_name("value")
                    .and_then(|value| scalar_kind(&value.kind()));
            }
            _ => return None,
        },
    })
}

/// Whether a message type is one of the wrappers (`google.protobuf.Int64Value`, ...).
fn wrapped(full_name: &str) -> bool {
    full_name
        .strip_prefix("google.protobuf.")
        .is_some_and(|name| name.ends_with("Value") && name != "Value" && name != "ListValue")
}

/// A hash of the columns' names and kinds, in order: what a schema change is detected by.
pub fn schema_text(columns: &[Column]) -> String {
    columns
        .iter()
        .map(|column| format!("{} {}", column.name, column.kind.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A message's row, one cell a column; the message's values move into it.
pub fn row(columns: &[Column], mut message: DynamicMessage, postgres: bool) -> Vec<Cell> {
    // One pass over what is set, in field-number order, rather than a lookup per column.
    let mut values: Vec<Option<Value>> = std::iter::repeat_with(|| None)
        .take(columns.len())
        .collect();
    for (field, value) in message.take_fields() {
        let number = field.number();
        if let Ok(i) = columns
            .binary_search_by_key(&number, |c| c.field.number())
            .or_else(|_| {
                columns
                    .iter()
                    .position(|c| c.field.number() == number)
                    .ok_or(())
            })
        {
            values[i] = Some(value);
        }
    }
    columns
        .iter()
        .zip(values)
        .map(|(column, value)| match value {
            Some(value) => cell(column.kind, &column.field_kind, value, postgres),
            // Unset: an empty list or map as JSON; NULL for what has presence (messages,
            // `optional`); the proto3 default for a plain scalar.
            None if column.list => Cell::Text("[]".into()),
            None if column.map => Cell::Text("{}".into()),
            None if column.presence || column.kind == ColumnKind::Json => Cell::Null,
            None => {
                let default = Value::default_value_for_field(&column.field);
                cell(column.kind, &column.field_kind, default, postgres)
            }
        })
        .collect()
}

fn cell(kind: ColumnKind, field_kind: &Kind, value: Value, postgres: bool) -> Cell {
    match (kind, value) {
        (ColumnKind::Json, value) => Cell::Text(json_text(field_kind, &value)),
        (_, Value::Message(mut message)) => match kind {
            ColumnKind::Timestamp => Cell::Text(timestamp(&message, postgres)),
            ColumnKind::Interval => {
                let seconds = seconds_of(&message);
                if postgres {
                    Cell::Text(format!("{seconds} seconds"))
                } else {
                    Cell::Double(seconds)
                }
            }
            // A wrapper: the value it wraps.
            _ => {
                let inner = message.descriptor().get_field_by_name("value");
                match (inner, message.take_field_by_name("value")) {
                    (Some(inner), Some(value)) => cell(kind, &inner.kind(), value, postgres),
                    (Some(inner), None) => {
                        let default = Value::default_value_for_field(&inner);
                        cell(kind, &inner.kind(), default, postgres)
                    }
                    _ => Cell::Null,
                }
            }
        },
        (_, Value::Bool(b)) => Cell::Bool(b),
        (_, Value::I32(n)) => Cell::Int(i64::from(n)),
        (_, Value::I64(n)) => Cell::Int(n),
        (_, Value::U32(n)) => Cell::Int(i64::from(n)),
        (_, Value::U64(n)) => Cell::Text(n.to_string()),
        (_, Value::F32(n)) => Cell::Double(f64::from(n)),
        (_, Value::F64(n)) => Cell::Double(n),
        (_, Value::String(text)) => Cell::Text(text),
        (_, Value::Bytes(bytes)) => Cell::Bytes(bytes.to_vec()),
        (_, Value::EnumNumber(number)) => Cell::Text(enum_name(field_kind, number)),
        (_, value @ (Value::List(_) | Value::Map(_))) => Cell::Text(json_text(field_kind, &value)),
    }
}

fn enum_name(kind: &Kind, number: i32) -> String {
    match kind {
        Kind::Enum(descriptor) => descriptor
            .get_value(number)
            .map_or_else(|| number.to_string(), |value| value.name().to_string()),
        _ => number.to_string(),
    }
}

fn seconds_of(message: &DynamicMessage) -> f64 {
    let seconds = match message.get_field_by_name("seconds").as_deref() {
        Some(Value::I64(seconds)) => *seconds,
        _ => 0,
    };
    let nanos = match message.get_field_by_name("nanos").as_deref() {
        Some(Value::I32(nanos)) => *nanos,
        _ => 0,
    };
    seconds as f64 + f64::from(nanos) / 1e9
}

/// A Timestamp as text each backend reads: `2026-11-26 05:00:00.123456+00` on PostgreSQL,
/// `2026-11-26T05:00:00.123456Z` on SQLite.
fn timestamp(message: &DynamicMessage, postgres: bool) -> String {
    let seconds = match message.get_field_by_name("seconds").as_deref() {
        Some(Value::I64(seconds)) => *seconds,
        _ => 0,
    };
    let nanos = match message.get_field_by_name("nanos").as_deref() {
        Some(Value::I32(nanos)) => (*nanos).clamp(0, 999_999_999),
        _ => 0,
    };
    let mut out = String::with_capacity(32);
    push_timestamp(&mut out, seconds, nanos as u32 / 1000, 6, postgres);
    out
}

/// Writes a UTC time as each backend reads it, with `digits` digits of `fraction` (3 for
/// milliseconds, 6 for microseconds): `2026-11-26 05:00:00.250+00` for PostgreSQL,
/// `2026-11-26T05:00:00.250Z` for SQLite. Done by hand: it runs for every event.
pub fn push_timestamp(out: &mut String, seconds: i64, fraction: u32, digits: u32, postgres: bool) {
    let day = crate::date::Date::of_millis(seconds.div_euclid(86_400) * 86_400_000);
    let (year, month, date) = day.ymd();
    let second = seconds.rem_euclid(86_400);
    let two = |out: &mut String, n: i64| {
        out.push((b'0' + (n / 10 % 10) as u8) as char);
        out.push((b'0' + (n % 10) as u8) as char);
    };
    if (0..=9999).contains(&year) {
        two(out, year / 100);
        two(out, year % 100);
    } else {
        push_display(out, year);
    }
    out.push('-');
    two(out, i64::from(month));
    out.push('-');
    two(out, i64::from(date));
    out.push(if postgres { ' ' } else { 'T' });
    two(out, second / 3600);
    out.push(':');
    two(out, second / 60 % 60);
    out.push(':');
    two(out, second % 60);
    out.push('.');
    for place in (0..digits).rev() {
        out.push((b'0' + (fraction / 10u32.pow(place) % 10) as u8) as char);
    }
    out.push_str(if postgres { "+00" } else { "Z" });
}

/// A value as compact JSON: messages by field name, enums by name, bytes in base64,
/// timestamps in RFC 3339, map entries by key.
fn json_text(kind: &Kind, value: &Value) -> String {
    let mut out = String::new();
    write_json(&mut out, kind, value);
    out
}

fn write_json(out: &mut String, kind: &Kind, value: &Value) {
    match value {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I32(n) => push_display(out, n),
        Value::I64(n) => push_display(out, n),
        Value::U32(n) => push_display(out, n),
        Value::U64(n) => push_display(out, n),
        Value::F32(n) => write_float(out, f64::from(*n)),
        Value::F64(n) => write_float(out, *n),
        Value::String(text) => write_string(out, text),
        Value::Bytes(bytes) => write_string(out, &base64(bytes)),
        Value::EnumNumber(number) => write_string(out, &enum_name(kind, *number)),
        Value::Message(message) => {
            if message.descriptor().full_name() == "google.protobuf.Timestamp" {
                write_string(out, &timestamp(message, false));
                return;
            }
            out.push('{');
            for (i, (field, value)) in message.fields().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, field.name());
                out.push(':');
                write_json(out, &field.kind(), value);
            }
            out.push('}');
        }
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, kind, item);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let value_kind = match kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                other => other.clone(),
            };
            let mut keys: Vec<(&MapKey, &Value)> = entries.iter().collect();
            keys.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key = match key {
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                    MapKey::String(s) => s.clone(),
                };
                write_string(out, &key);
                out.push(':');
                write_json(out, &value_kind, value);
            }
            out.push('}');
        }
    }
}

fn push_display(out: &mut String, value: impl std::fmt::Display) {
    use std::fmt::Write as _;
    let _ = write!(out, "{value}");
}

/// JSON has no NaN or infinity: those are strings, as in protobuf's JSON mapping; other
/// numbers as serde_json writes them (`12.0`, not `12`).
fn write_float(out: &mut String, n: f64) {
    match serde_json::Number::from_f64(n) {
        Some(number) => push_display(out, number),
        None if n.is_nan() => out.push_str("\"NaN\""),
        None if n > 0.0 => out.push_str("\"Infinity\""),
        None => out.push_str("\"-Infinity\""),
    }
}

/// A JSON string, escaped as serde_json escapes it.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => push_display(out, format_args!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{base64, write_string};

    #[test]
    fn json_strings_escape_as_serde_json_does() {
        for text in [
            "plain",
            "quote \" and \\ back",
            "tab\tnew\nline\r",
            "\u{1}\u{1f}\u{7f}",
            "ünï",
        ] {
            let mut out = String::new();
            write_string(&mut out, text);
            assert_eq!(out, serde_json::to_string(text).expect("JSON"), "{text:?}");
        }
    }

    #[test]
    fn base64_pads_like_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
