//! Values as text, written straight from the wire: nested messages, repeated and map fields as
//! compact JSON (fields by name in field-number order, those at their default left out, as
//! protobuf's presence has it; enums by name, bytes in base64, map entries by key), and
//! Timestamps as each backend reads them (RFC 3339 in JSON).

use super::wire::{FieldPlan, Plans, Raw, Scalar, Shape, Slot, Value, WellKnown};

/// Writes the value of `field`, as `slot` holds it, at nesting `depth`.
pub(crate) fn write_field(
    plans: &Plans,
    out: &mut String,
    field: &FieldPlan,
    slot: &Slot<'_>,
    depth: u32,
) -> Result<(), String> {
    match field.shape {
        Shape::Repeated => {
            out.push('[');
            let (mut first, mut written) = (true, Ok(()));
            plans.items(field.scalar, &slot.all, |item| {
                if written.is_err() {
                    return;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                match field.scalar {
                    Scalar::Message(id) => written = write_message(plans, out, id, &[item], depth),
                    scalar => write_raw(plans, out, scalar, item),
                }
            });
            out.push(']');
            written
        }
        Shape::Map { key, value } => {
            write_map(plans, out, field.scalar, key, value, &slot.all, depth)
        }
        Shape::Singular { .. } => match field.scalar {
            Scalar::Message(id) => write_message(plans, out, id, &slot.all, depth),
            _ => {
                if let Some(value) = Plans::singular(field, slot) {
                    write_value(plans, out, value);
                }
                Ok(())
            }
        },
    }
}

/// A message given in `parts` (merged), as an object; a Timestamp as a string.
fn write_message(
    plans: &Plans,
    out: &mut String,
    id: usize,
    parts: &[Raw<'_>],
    depth: u32,
) -> Result<(), String> {
    let plan = &plans.messages[id];
    if plan.well_known == Some(WellKnown::Timestamp) {
        let (seconds, micros) = timestamp(plans, id, parts, depth)?;
        let mut text = String::with_capacity(27);
        push_timestamp(&mut text, seconds, micros, 6, false);
        write_string(out, &text);
        return Ok(());
    }
    plans.with_slots(id, |slots| {
        plans.read_parts(id, parts, slots, depth)?;
        out.push('{');
        let mut first = true;
        for &(_, index) in &plan.by_number {
            let (field, slot) = (&plan.fields[index], &slots[index]);
            let shown = match (field.shape, field.scalar) {
                (Shape::Singular { .. }, Scalar::Message(_)) => !slot.all.is_empty(),
                (Shape::Singular { presence }, _) => {
                    Plans::singular(field, slot).is_some_and(|value| presence || !is_default(value))
                }
                (Shape::Repeated, scalar) => {
                    let mut any = false;
                    plans.items(scalar, &slot.all, |_| any = true);
                    any
                }
                (Shape::Map { .. }, _) => !slot.all.is_empty(),
            };
            if !shown {
                continue;
            }
            if !first {
                out.push(',');
            }
            first = false;
            write_string(out, &field.name);
            out.push(':');
            write_field(plans, out, field, slot, depth + 1)?;
        }
        out.push('}');
        Ok(())
    })
}

/// A map key, ordered as protobuf's map keys are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key<'a> {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Text(&'a str),
}

/// A map's entries, the last of each key standing, sorted by key.
fn write_map(
    plans: &Plans,
    out: &mut String,
    entry: Scalar,
    key: Scalar,
    value: Scalar,
    entries: &[Raw<'_>],
    depth: u32,
) -> Result<(), String> {
    let Scalar::Message(entry) = entry else {
        return Err("a map field without an entry type".into());
    };
    let plan = &plans.messages[entry];
    let field = |number: u32| plan.fields.iter().position(|f| f.number == number);
    let (Some(key_at), Some(value_at)) = (field(1), field(2)) else {
        return Err(format!(
            "map entry {} lacks its key or value",
            plan.full_name
        ));
    };
    let mut read = Vec::with_capacity(entries.len());
    for part in entries {
        let mut slots = plans.slots(entry);
        plans.read_parts(entry, std::slice::from_ref(part), &mut slots, depth + 1)?;
        let key = match Plans::singular(&plan.fields[key_at], &slots[key_at])
            .or_else(|| Plans::default_value(key))
        {
            Some(Value::Bool(b)) => Key::Bool(b),
            Some(Value::Int(n)) => Key::Int(n),
            Some(Value::UInt(n)) => Key::UInt(n),
            Some(Value::Text(text)) => Key::Text(text),
            _ => {
                return Err(format!(
                    "map entry {} has a key of no key type",
                    plan.full_name
                ));
            }
        };
        read.push((key, std::mem::take(&mut slots[value_at])));
    }
    // Stable: of entries with one key, the last given sorts last, and stands.
    read.sort_by_key(|(key, _)| *key);
    out.push('{');
    let mut first = true;
    for (i, (key, slot)) in read.iter().enumerate() {
        if read.get(i + 1).is_some_and(|(next, _)| next == key) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        match key {
            Key::Bool(b) => write_string(out, if *b { "true" } else { "false" }),
            Key::Int(n) => write_string(out, &n.to_string()),
            Key::UInt(n) => write_string(out, &n.to_string()),
            Key::Text(text) => write_string(out, text),
        }
        out.push(':');
        match value {
            Scalar::Message(id) => write_message(plans, out, id, &slot.all, depth + 1)?,
            scalar => {
                let value = Plans::singular(&plan.fields[value_at], slot)
                    .or_else(|| Plans::default_value(scalar));
                if let Some(value) = value {
                    write_value(plans, out, value);
                }
            }
        }
    }
    out.push('}');
    Ok(())
}

fn write_raw(plans: &Plans, out: &mut String, scalar: Scalar, raw: Raw<'_>) {
    if let Some(value) = Plans::value(scalar, raw) {
        write_value(plans, out, value);
    }
}

fn write_value(plans: &Plans, out: &mut String, value: Value<'_>) {
    match value {
        Value::Int(n) => push_display(out, n),
        Value::UInt(n) => push_display(out, n),
        Value::Float(n) => write_float(out, f64::from(n)),
        Value::Double(n) => write_float(out, n),
        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
        Value::Text(text) => write_string(out, text),
        Value::Bytes(bytes) => write_string(out, &base64(bytes)),
        Value::Enum(id, n) => match plans.enum_name(id, n) {
            Some(name) => write_string(out, name),
            None => write_string(out, &n.to_string()),
        },
    }
}

/// Whether a value is its type's default, which a field without presence leaves out.
fn is_default(value: Value<'_>) -> bool {
    match value {
        Value::Int(n) => n == 0,
        Value::UInt(n) => n == 0,
        Value::Float(n) => n == 0.0,
        Value::Double(n) => n == 0.0,
        Value::Bool(b) => !b,
        Value::Text(text) => text.is_empty(),
        Value::Bytes(bytes) => bytes.is_empty(),
        Value::Enum(_, n) => n == 0,
    }
}

pub(crate) fn push_display(out: &mut String, value: impl std::fmt::Display) {
    use std::fmt::Write as _;
    let _ = write!(out, "{value}");
}

/// JSON has no NaN or infinity: those are strings, as in protobuf's JSON mapping; other
/// numbers as serde_json writes them (`12.0`, not `12`).
pub(crate) fn write_float(out: &mut String, n: f64) {
    match serde_json::Number::from_f64(n) {
        Some(number) => push_display(out, number),
        None if n.is_nan() => out.push_str("\"NaN\""),
        None if n > 0.0 => out.push_str("\"Infinity\""),
        None => out.push_str("\"-Infinity\""),
    }
}

/// A JSON string, escaped as serde_json escapes it.
pub(crate) fn write_string(out: &mut String, text: &str) {
    out.push('"');
    // Runs that need no escape go in whole: most strings are one run.
    let mut run = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&text[run..at]);
        if escape.is_empty() {
            push_display(out, format_args!("\\u{byte:04x}"));
        } else {
            out.push_str(escape);
        }
        run = at + 1;
    }
    out.push_str(&text[run..]);
    out.push('"');
}

pub(crate) fn base64(bytes: &[u8]) -> String {
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

/// The earliest and latest Timestamp an event may hold: years 1 to 9999, what both backends
/// (and SQL) read.
const FIRST_SECOND: i64 = -62_135_596_800;
const LAST_SECOND: i64 = 253_402_300_799;

/// A Timestamp given in `parts` as seconds and microseconds (nanoseconds cut, as
/// PostgreSQL keeps microseconds), if within years 1 to 9999.
pub(crate) fn timestamp(
    plans: &Plans,
    id: usize,
    parts: &[Raw<'_>],
    depth: u32,
) -> Result<(i64, u32), String> {
    let (seconds, nanos) = plans.seconds_and_nanos(id, parts, depth)?;
    if !(FIRST_SECOND..=LAST_SECOND).contains(&seconds) {
        return Err(format!("timestamp {seconds} s is outside years 1 to 9999"));
    }
    Ok((seconds, nanos.clamp(0, 999_999_999) as u32 / 1000))
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
