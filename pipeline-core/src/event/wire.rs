//! Protobuf's wire format, read straight from an event's bytes by a plan made once from its
//! message's descriptor. A `DynamicMessage` per event (a field map, an owned value each) was
//! most of a load's time; here values borrow from the payload until they are written.
//!
//! The semantics are protobuf's, as `DynamicMessage::decode` has them: the last value of a
//! singular field wins, a message field given twice merges, repeated scalars come packed or
//! not, setting a oneof member clears the others, unknown fields (groups too) are skipped,
//! strings must be UTF-8, and nesting stops at 100 levels.

use std::collections::HashMap;

use anyhow::bail;
use prost_reflect::{Kind, MessageDescriptor};

/// How deep messages may nest, as prost allows.
const RECURSION_LIMIT: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// Ends the error of a field whose wire type is not its declared type's: the field was most
/// likely retyped after these messages were published. What a load says of it goes on from
/// here (see [`retyped_hint`]).
pub(crate) const RETYPED: &str = "(was the field's type changed?)";

/// What a load adds when messages fail as [`RETYPED`] says: protobuf cannot retype a field in
/// place, and what to do instead.
pub(crate) fn retyped_hint() -> &'static str {
    "protobuf cannot change a field's type in place: messages published before the change \
     keep the old one. Give the new type a new field number (and mark the old number \
     `reserved`), or load the new messages into a table of their own (`.into_table(..)`)"
}

/// The kinds of value a wire type carries, for people.
fn wire_kind(wire: u8) -> &'static str {
    match wire {
        VARINT => "an integer, bool or enum (varint)",
        FIXED64 => "a 64-bit number (fixed64, double)",
        LEN => "a string, bytes or message (length-delimited)",
        FIXED32 => "a 32-bit number (fixed32, float)",
        START_GROUP | END_GROUP => "a group (proto2)",
        _ => "an unknown wire type",
    }
}

/// A field's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scalar {
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Float,
    Double,
    Bool,
    String,
    Bytes,
    /// An enum, by its index in the plans.
    Enum(usize),
    /// A message, by its index in the plans.
    Message(usize),
}

impl Scalar {
    fn wire_type(self) -> u8 {
        match self {
            Scalar::Int32
            | Scalar::Int64
            | Scalar::Uint32
            | Scalar::Uint64
            | Scalar::Sint32
            | Scalar::Sint64
            | Scalar::Bool
            | Scalar::Enum(_) => VARINT,
            Scalar::Fixed32 | Scalar::Sfixed32 | Scalar::Float => FIXED32,
            Scalar::Fixed64 | Scalar::Sfixed64 | Scalar::Double => FIXED64,
            Scalar::String | Scalar::Bytes | Scalar::Message(_) => LEN,
        }
    }
}

/// A field's cardinality.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `presence`: unset is not the same as the default (messages, `optional`, oneofs).
    Singular {
        presence: bool,
    },
    Repeated,
    /// A map; the field's scalar is its entry message (key 1, value 2).
    Map {
        key: Scalar,
        value: Scalar,
    },
}

/// One field of a message.
#[derive(Debug)]
pub(crate) struct FieldPlan {
    pub number: u32,
    pub name: String,
    pub scalar: Scalar,
    pub shape: Shape,
    oneof: Option<u32>,
}

/// The well-known types written as SQL values rather than as JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WellKnown {
    Timestamp,
    Duration,
    /// `google.protobuf.Int64Value` and the like: field 1 is the value.
    Wrapper,
}

/// One message type.
#[derive(Debug)]
pub(crate) struct MessagePlan {
    pub full_name: String,
    /// In declaration order: the order of a table's columns.
    pub fields: Vec<FieldPlan>,
    /// `(number, index in fields)` by number: the lookup, and the order of JSON.
    pub by_number: Vec<(u32, usize)>,
    pub well_known: Option<WellKnown>,
}

impl MessagePlan {
    fn index_of(&self, number: u32) -> Option<usize> {
        self.by_number
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()
            .map(|i| self.by_number[i].1)
    }
}

/// The plans of a message type and of every type it reaches; the root is message 0.
#[derive(Debug)]
pub(crate) struct Plans {
    pub messages: Vec<MessagePlan>,
    /// Each enum's values, by number.
    enums: Vec<Vec<(i32, String)>>,
    /// Refuse strings holding NUL: PostgreSQL's text and JSONB cannot store it, and one such
    /// event would fail every batch it is in.
    no_nul: bool,
}

/// A value as the wire gave it; strings already checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Raw<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Text(&'a str),
}

/// Fields of a nested message read with slots on the stack.
const STACK_SLOTS: usize = 16;

/// What a message's bytes gave one field.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slot<'a> {
    /// A singular scalar's value: the last one given.
    pub last: Option<Raw<'a>>,
    /// A singular message's parts (merged in order), a repeated field's items (a packed run
    /// as one `Bytes`), or a map's entries.
    pub all: Vec<Raw<'a>>,
}

impl Slot<'_> {
    pub(crate) fn clear(&mut self) {
        self.last = None;
        self.all.clear();
    }
}

/// A decoded value, typed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value<'a> {
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    Bool(bool),
    Text(&'a str),
    Bytes(&'a [u8]),
    /// An enum's number, with its enum's index.
    Enum(usize, i32),
}

impl Plans {
    /// The plans for `root`; `no_nul` where strings go to PostgreSQL.
    pub(crate) fn new(root: &MessageDescriptor, no_nul: bool) -> anyhow::Result<Plans> {
        // Number every message and enum type reachable from the root first, so that fields
        // can name them (types may be recursive).
        let mut messages = vec![root.clone()];
        let mut message_ids = HashMap::from([(root.full_name().to_string(), 0)]);
        let mut enums = Vec::new();
        let mut enum_ids = HashMap::new();
        let mut next = 0;
        while next < messages.len() {
            let message = messages[next].clone();
            next += 1;
            for field in message.fields() {
                match field.kind() {
                    Kind::Message(nested) if !message_ids.contains_key(nested.full_name()) => {
                        message_ids.insert(nested.full_name().to_string(), messages.len());
                        messages.push(nested);
                    }
                    Kind::Enum(values) if !enum_ids.contains_key(values.full_name()) => {
                        enum_ids.insert(values.full_name().to_string(), enums.len());
                        enums.push(values);
                    }
                    _ => {}
                }
            }
        }
        let scalar_of = |kind: &Kind| -> Scalar {
            match kind {
                Kind::Int32 => Scalar::Int32,
                Kind::Int64 => Scalar::Int64,
                Kind::Uint32 => Scalar::Uint32,
                Kind::Uint64 => Scalar::Uint64,
                Kind::Sint32 => Scalar::Sint32,
                Kind::Sint64 => Scalar::Sint64,
                Kind::Fixed32 => Scalar::Fixed32,
                Kind::Fixed64 => Scalar::Fixed64,
                Kind::Sfixed32 => Scalar::Sfixed32,
                Kind::Sfixed64 => Scalar::Sfixed64,
                Kind::Float => Scalar::Float,
                Kind::Double => Scalar::Double,
                Kind::Bool => Scalar::Bool,
                Kind::String => Scalar::String,
                Kind::Bytes => Scalar::Bytes,
                Kind::Enum(e) => Scalar::Enum(enum_ids[e.full_name()]),
                Kind::Message(m) => Scalar::Message(message_ids[m.full_name()]),
            }
        };
        let mut plans = Vec::with_capacity(messages.len());
        for message in &messages {
            let mut fields = Vec::new();
            for field in message.fields() {
                if field.is_group() {
                    bail!(
                        "field {} of {} is a proto2 group, which event loads do not read: \
                         make it a message field",
                        field.name(),
                        message.full_name()
                    );
                }
                let kind = field.kind();
                let shape = match &kind {
                    Kind::Message(entry) if field.is_map() => Shape::Map {
                        key: scalar_of(&entry.map_entry_key_field().kind()),
                        value: scalar_of(&entry.map_entry_value_field().kind()),
                    },
                    _ if field.is_list() => Shape::Repeated,
                    _ => Shape::Singular {
                        presence: field.supports_presence(),
                    },
                };
                fields.push(FieldPlan {
                    number: field.number(),
                    name: field.name().to_string(),
                    scalar: scalar_of(&kind),
                    shape,
                    oneof: field.containing_oneof().and_then(|oneof| {
                        message
                            .oneofs()
                            .position(|o| o.name() == oneof.name())
                            .map(|i| i as u32)
                    }),
                });
            }
            let mut by_number: Vec<(u32, usize)> = fields
                .iter()
                .enumerate()
                .map(|(i, field)| (field.number, i))
                .collect();
            by_number.sort_unstable();
            let name = message.full_name();
            let well_known = match name {
                "google.protobuf.Timestamp" => Some(WellKnown::Timestamp),
                "google.protobuf.Duration" => Some(WellKnown::Duration),
                _ if is_wrapper(name) => Some(WellKnown::Wrapper),
                _ => None,
            };
            plans.push(MessagePlan {
                full_name: name.to_string(),
                fields,
                by_number,
                well_known,
            });
        }
        let enums = enums
            .iter()
            .map(|values| {
                let mut values: Vec<(i32, String)> = values
                    .values()
                    .map(|value| (value.number(), value.name().to_string()))
                    .collect();
                // An alias (`allow_alias`) names a number twice: the first name stands, as
                // the descriptor's own lookup has it.
                values.sort_by_key(|(number, _)| *number);
                values.dedup_by_key(|(number, _)| *number);
                values
            })
            .collect();
        Ok(Plans {
            messages: plans,
            enums,
            no_nul,
        })
    }

    /// An enum value's name, if the enum declares the number.
    pub(crate) fn enum_name(&self, id: usize, number: i32) -> Option<&str> {
        let values = &self.enums[id];
        values
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()
            .map(|i| values[i].1.as_str())
    }

    /// Empty slots for message `id`, one a field.
    pub(crate) fn slots<'a>(&self, id: usize) -> Vec<Slot<'a>> {
        vec![Slot::default(); self.messages[id].fields.len()]
    }

    /// Runs `f` with empty slots for message `id`: on the stack for a message of up to
    /// [`STACK_SLOTS`] fields, as nearly every nested message is (a Timestamp, an order's
    /// item), so that reading one costs no allocation.
    pub(crate) fn with_slots<'a, R>(&self, id: usize, f: impl FnOnce(&mut [Slot<'a>]) -> R) -> R {
        let fields = self.messages[id].fields.len();
        if fields <= STACK_SLOTS {
            let mut slots: [Slot<'a>; STACK_SLOTS] = std::array::from_fn(|_| Slot::default());
            f(&mut slots[..fields])
        } else {
            f(&mut self.slots(id))
        }
    }

    /// Reads `bytes` as message `id` into `slots` (one a field, in declaration order), on
    /// top of what they hold: reading a second part merges, as protobuf does.
    pub(crate) fn read<'a>(
        &self,
        id: usize,
        mut bytes: &'a [u8],
        slots: &mut [Slot<'a>],
        depth: u32,
    ) -> Result<(), String> {
        if depth > RECURSION_LIMIT {
            return Err(format!(
                "messages nest deeper than {RECURSION_LIMIT} levels"
            ));
        }
        let plan = &self.messages[id];
        while !bytes.is_empty() {
            let (number, wire) = key(&mut bytes)?;
            let Some(index) = plan.index_of(number) else {
                skip(number, wire, &mut bytes, depth)?;
                continue;
            };
            let field = &plan.fields[index];
            let expected = field.scalar.wire_type();
            let repeated = matches!(field.shape, Shape::Repeated);
            let packed = repeated && wire == LEN && expected != LEN;
            if wire != expected && !packed {
                return Err(format!(
                    "field `{}` of {} is declared {}, but the message carries it as {} {RETYPED}",
                    field.name,
                    plan.full_name,
                    wire_kind(expected),
                    wire_kind(wire)
                ));
            }
            let raw = match (take(wire, &mut bytes)?, field.scalar) {
                (Raw::Bytes(text), Scalar::String) => {
                    Raw::Text(self.text(text).map_err(|why| {
                        format!("field {} of {}: {why}", field.name, plan.full_name)
                    })?)
                }
                (Raw::Bytes(run), scalar) if packed => {
                    check_packed(scalar, run).map_err(|why| {
                        format!("field {} of {}: {why}", field.name, plan.full_name)
                    })?;
                    Raw::Bytes(run)
                }
                (raw, _) => raw,
            };
            if let Some(oneof) = field.oneof {
                for (other, slot) in plan.fields.iter().zip(slots.iter_mut()) {
                    if other.oneof == Some(oneof) && other.number != field.number {
                        slot.clear();
                    }
                }
            }
            let slot = &mut slots[index];
            match (field.shape, field.scalar) {
                (Shape::Singular { .. }, Scalar::Message(_)) => slot.all.push(raw),
                (Shape::Singular { .. }, _) => slot.last = Some(raw),
                _ => slot.all.push(raw),
            }
        }
        Ok(())
    }

    /// UTF-8, and without NUL where that cannot be stored.
    fn text<'a>(&self, bytes: &'a [u8]) -> Result<&'a str, String> {
        let text =
            std::str::from_utf8(bytes).map_err(|err| format!("a string is not UTF-8: {err}"))?;
        if self.no_nul && bytes.contains(&0) {
            return Err("a string holds a NUL character, which PostgreSQL cannot store".into());
        }
        Ok(text)
    }

    /// The items of a repeated field, packed runs unpacked, in order.
    pub(crate) fn items<'a>(&self, scalar: Scalar, all: &[Raw<'a>], mut each: impl FnMut(Raw<'a>)) {
        for raw in all {
            match (*raw, scalar.wire_type()) {
                (Raw::Bytes(mut run), VARINT) => {
                    while let Ok(n) = varint(&mut run) {
                        each(Raw::Varint(n));
                    }
                }
                (Raw::Bytes(run), FIXED32) => {
                    for chunk in run.chunks_exact(4) {
                        each(Raw::Fixed32(u32::from_le_bytes([
                            chunk[0], chunk[1], chunk[2], chunk[3],
                        ])));
                    }
                }
                (Raw::Bytes(run), FIXED64) => {
                    for chunk in run.chunks_exact(8) {
                        let mut word = [0; 8];
                        word.copy_from_slice(chunk);
                        each(Raw::Fixed64(u64::from_le_bytes(word)));
                    }
                }
                (raw, _) => each(raw),
            }
        }
    }

    /// A scalar's typed value; for a message, `None`.
    pub(crate) fn value<'a>(scalar: Scalar, raw: Raw<'a>) -> Option<Value<'a>> {
        Some(match (scalar, raw) {
            (Scalar::Int32, Raw::Varint(n)) => Value::Int(i64::from(n as i32)),
            (Scalar::Int64, Raw::Varint(n)) => Value::Int(n as i64),
            (Scalar::Uint32, Raw::Varint(n)) => Value::Int(i64::from(n as u32)),
            (Scalar::Uint64, Raw::Varint(n)) => Value::UInt(n),
            (Scalar::Sint32, Raw::Varint(n)) => {
                let n = n as u32;
                Value::Int(i64::from((n >> 1) as i32 ^ -((n & 1) as i32)))
            }
            (Scalar::Sint64, Raw::Varint(n)) => Value::Int((n >> 1) as i64 ^ -((n & 1) as i64)),
            (Scalar::Bool, Raw::Varint(n)) => Value::Bool(n != 0),
            (Scalar::Enum(id), Raw::Varint(n)) => Value::Enum(id, n as i32),
            (Scalar::Fixed32, Raw::Fixed32(n)) => Value::Int(i64::from(n)),
            (Scalar::Sfixed32, Raw::Fixed32(n)) => Value::Int(i64::from(n as i32)),
            (Scalar::Float, Raw::Fixed32(n)) => Value::Float(f32::from_bits(n)),
            (Scalar::Fixed64, Raw::Fixed64(n)) => Value::UInt(n),
            (Scalar::Sfixed64, Raw::Fixed64(n)) => Value::Int(n as i64),
            (Scalar::Double, Raw::Fixed64(n)) => Value::Double(f64::from_bits(n)),
            (Scalar::String, Raw::Text(text)) => Value::Text(text),
            (Scalar::Bytes, Raw::Bytes(bytes)) => Value::Bytes(bytes),
            _ => return None,
        })
    }

    /// A scalar's default, what an unset field without presence holds; `None` for a
    /// message.
    pub(crate) fn default_value(scalar: Scalar) -> Option<Value<'static>> {
        Some(match scalar {
            Scalar::Int32
            | Scalar::Int64
            | Scalar::Uint32
            | Scalar::Sint32
            | Scalar::Sint64
            | Scalar::Fixed32
            | Scalar::Sfixed32
            | Scalar::Sfixed64 => Value::Int(0),
            Scalar::Uint64 | Scalar::Fixed64 => Value::UInt(0),
            Scalar::Float => Value::Float(0.0),
            Scalar::Double => Value::Double(0.0),
            Scalar::Bool => Value::Bool(false),
            Scalar::String => Value::Text(""),
            Scalar::Bytes => Value::Bytes(&[]),
            Scalar::Enum(id) => Value::Enum(id, 0),
            Scalar::Message(_) => return None,
        })
    }

    /// A singular field's value: the last given, else its default (`None` when it has
    /// presence and was not given, or is a message).
    pub(crate) fn singular<'a>(field: &FieldPlan, slot: &Slot<'a>) -> Option<Value<'a>> {
        match slot.last {
            Some(raw) => Self::value(field.scalar, raw),
            None if matches!(field.shape, Shape::Singular { presence: true }) => None,
            None => Self::default_value(field.scalar),
        }
    }

    /// `seconds` and `nanos` of a Timestamp or Duration given in `parts`.
    pub(crate) fn seconds_and_nanos(
        &self,
        id: usize,
        parts: &[Raw<'_>],
        depth: u32,
    ) -> Result<(i64, i32), String> {
        self.with_slots(id, |slots| {
            self.read_parts(id, parts, slots, depth)?;
            let plan = &self.messages[id];
            let mut seconds = 0;
            let mut nanos = 0;
            for (field, slot) in plan.fields.iter().zip(slots.iter()) {
                match (field.number, Self::singular(field, slot)) {
                    (1, Some(Value::Int(n))) => seconds = n,
                    (2, Some(Value::Int(n))) => nanos = n as i32,
                    _ => {}
                }
            }
            Ok((seconds, nanos))
        })
    }

    /// Reads a message given in parts into `slots`.
    pub(crate) fn read_parts<'a>(
        &self,
        id: usize,
        parts: &[Raw<'a>],
        slots: &mut [Slot<'a>],
        depth: u32,
    ) -> Result<(), String> {
        for part in parts {
            if let Raw::Bytes(bytes) = part {
                self.read(id, bytes, slots, depth)?;
            }
        }
        Ok(())
    }
}

/// Whether a message type is one of the wrappers (`google.protobuf.Int64Value`, ...).
pub(crate) fn is_wrapper(full_name: &str) -> bool {
    full_name
        .strip_prefix("google.protobuf.")
        .is_some_and(|name| name.ends_with("Value") && name != "Value" && name != "ListValue")
}

fn varint(bytes: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for i in 0..10 {
        let Some((&byte, rest)) = bytes.split_first() else {
            return Err("the message ends inside a number".into());
        };
        *bytes = rest;
        if i == 9 && byte > 1 {
            break;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("a number is longer than 64 bits".into())
}

/// A field's number and wire type.
fn key(bytes: &mut &[u8]) -> Result<(u32, u8), String> {
    let key = varint(bytes)?;
    let number = key >> 3;
    if number == 0 || number > u64::from(u32::MAX >> 3) {
        return Err(format!("invalid field number {number}"));
    }
    Ok((number as u32, (key & 7) as u8))
}

/// A value of `wire` type; groups are not values.
fn take<'a>(wire: u8, bytes: &mut &'a [u8]) -> Result<Raw<'a>, String> {
    Ok(match wire {
        VARINT => Raw::Varint(varint(bytes)?),
        FIXED32 => {
            let b = split(bytes, 4)?;
            Raw::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        FIXED64 => {
            let mut word = [0; 8];
            word.copy_from_slice(split(bytes, 8)?);
            Raw::Fixed64(u64::from_le_bytes(word))
        }
        LEN => {
            let len = varint(bytes)?;
            let len = usize::try_from(len).map_err(|_| "a length is too large".to_string())?;
            Raw::Bytes(split(bytes, len)?)
        }
        other => return Err(format!("wire type {other} where a value was due")),
    })
}

/// The next `n` bytes.
fn split<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
    if bytes.len() < n {
        return Err("the message ends inside a value".into());
    }
    let (value, rest) = bytes.split_at(n);
    *bytes = rest;
    Ok(value)
}

/// Skips an unknown field, groups included.
fn skip(number: u32, wire: u8, bytes: &mut &[u8], depth: u32) -> Result<(), String> {
    match wire {
        START_GROUP => {
            if depth >= RECURSION_LIMIT {
                return Err(format!("groups nest deeper than {RECURSION_LIMIT} levels"));
            }
            loop {
                if bytes.is_empty() {
                    return Err("the message ends inside a group".into());
                }
                let (inner, inner_wire) = key(bytes)?;
                if inner_wire == END_GROUP {
                    if inner != number {
                        return Err("a group ends with another group's number".into());
                    }
                    return Ok(());
                }
                skip(inner, inner_wire, bytes, depth + 1)?;
            }
        }
        END_GROUP => Err("a group ends that never began".into()),
        wire => take(wire, bytes).map(|_| ()),
    }
}

/// A packed run of a scalar: whole numbers only.
fn check_packed(scalar: Scalar, mut run: &[u8]) -> Result<(), String> {
    match scalar.wire_type() {
        VARINT => {
            while !run.is_empty() {
                varint(&mut run)?;
            }
            Ok(())
        }
        FIXED32 if run.len().is_multiple_of(4) => Ok(()),
        FIXED64 if run.len().is_multiple_of(8) => Ok(()),
        _ => Err("a packed run ends inside a value".into()),
    }
}
