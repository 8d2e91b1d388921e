//! The JSON codec: request bodies in, flat [`Event`]s out.
//!
//! # Bodies
//! A body is one of:
//! - a single JSON object: one event;
//! - a JSON array of objects: one event per element. An element that is not an object is
//!   rejected alone; a syntax error anywhere makes the whole array unreadable
//!   ([`BodyError::Json`]), since after it no element boundary can be trusted;
//! - NDJSON: one object per line, blank lines ignored. Each line stands alone, so a bad line is
//!   rejected and its neighbours are kept.
//!
//! [`decode_body`] tells the shapes apart by the first non-blank byte (`[` is an array) and, for
//! a body starting with `{`, by whether its first line is a complete JSON value on its own
//! (NDJSON) or not (one pretty-printed object).
//!
//! # Flattening
//! Nested objects are flattened into dotted names: `{"http": {"route": "/a"}}` becomes the field
//! `http.route`. Arrays are kept as their JSON text (`"[1,2]"`), as is an empty object (`"{}"`)
//! and any object nested deeper than `max_flatten_depth`, so no value is lost and a hostile
//! document cannot mint thousands of columns. Two keys that flatten to the same name
//! (`{"a.b": 1, "a": {"b": 2}}`, or a plain duplicate key) reject the event: picking one would
//! silently drop the other.
//!
//! # Numbers
//! Integers that fit `i64` are ints; larger ones (up to `u64::MAX`) become the nearest float,
//! as they do in JavaScript. Numbers outside the float range (`1e400`) are invalid JSON, as are
//! `NaN` and `Infinity`. Strings must be valid UTF-8 with valid escapes: a lone surrogate
//! (`"\ud800"`) or a raw invalid byte is invalid JSON, which rejects the event (and, inside an
//! array, the whole body, like any other syntax error).

use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{BodyError, EventError};
use crate::event::Event;
use crate::limits::Limits;
use crate::value::Value;

/// How the body was framed, when the client said so (for example by `Content-Type:
/// application/x-ndjson`). `Auto` looks at the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    #[default]
    Auto,
    Ndjson,
}

/// Decodes one JSON object into a flat event.
pub fn decode_event(bytes: &[u8], limits: &Limits) -> Result<Event, EventError> {
    parse_one(bytes, limits).unwrap_or_else(|e| Err(json_error(&e, None)))
}

/// One JSON document that must be exactly one value: `Err` for syntax, `Ok(Err)` for content.
fn parse_one(
    bytes: &[u8],
    limits: &Limits,
) -> Result<Result<Event, EventError>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let r = EventSeed { limits }.deserialize(&mut de)?;
    de.end()?;
    Ok(r)
}

/// Decodes a request body into events, each one decoded or rejected on its own.
/// `Err` means nothing in the body could be read (see the module doc).
pub fn decode_body(
    bytes: &[u8],
    format: BodyFormat,
    limits: &Limits,
) -> Result<Vec<Result<Event, EventError>>, BodyError> {
    let mut out = Vec::new();
    for_each_event(bytes, format, limits, |r| out.push(r))?;
    Ok(out)
}

/// Like [`decode_body`], but hands each event to `f` as soon as it is parsed, in body order,
/// so the caller can validate it while it is still in cache. Returns how many were handed over.
/// On `Err` the caller must discard what it was given: the body as a whole is unreadable.
pub fn for_each_event(
    bytes: &[u8],
    format: BodyFormat,
    limits: &Limits,
    mut f: impl FnMut(Result<Event, EventError>),
) -> Result<usize, BodyError> {
    if bytes.len() > limits.max_body_bytes {
        return Err(BodyError::TooLarge {
            len: bytes.len(),
            limit: limits.max_body_bytes,
        });
    }
    let Some(first) = bytes.iter().position(|b| !is_json_space(b)) else {
        return Err(BodyError::Empty);
    };
    let body = &bytes[first..];
    if format == BodyFormat::Auto && body[0] == b'[' {
        return decode_array(body, limits, &mut f);
    }
    let first_line = body.split(|&b| b == b'\n').next().unwrap_or(body);
    let is_ndjson =
        format == BodyFormat::Ndjson || serde_json::from_slice::<IgnoredAny>(first_line).is_ok();
    if !is_ndjson {
        f(decode_event(body, limits));
        return Ok(1);
    }
    let mut n = 0;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(is_json_space) {
            continue;
        }
        if n == limits.max_events_per_request {
            return Err(BodyError::TooManyEvents {
                limit: limits.max_events_per_request,
            });
        }
        f(parse_one(line, limits).unwrap_or_else(|e| Err(json_error(&e, Some(i + 1)))));
        n += 1;
    }
    Ok(n)
}

/// JSON's whitespace (RFC 8259): space, tab, line feed, carriage return. Not
/// `u8::is_ascii_whitespace`, which also counts form feed: a body starting with one was read
/// as an array or a blank line, while the same byte anywhere else was (rightly) invalid JSON.
fn is_json_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn decode_array(
    body: &[u8],
    limits: &Limits,
    f: &mut dyn FnMut(Result<Event, EventError>),
) -> Result<usize, BodyError> {
    let mut too_many = false;
    let mut de = serde_json::Deserializer::from_slice(body);
    let r = de
        .deserialize_seq(ArrayVisitor {
            limits,
            f,
            too_many: &mut too_many,
        })
        .and_then(|n| de.end().map(|()| n));
    // Checked first: the visitor stops at the element over the limit, and the parser then
    // reports the rest of the array as trailing characters.
    if too_many {
        return Err(BodyError::TooManyEvents {
            limit: limits.max_events_per_request,
        });
    }
    r.map_err(|e| BodyError::Json {
        message: strip_position(&e),
    })
}

/// A serde_json error as a rejection reason. `line` is the NDJSON line, when there is one
/// (serde_json's own position is then relative to the line).
fn json_error(e: &serde_json::Error, line: Option<usize>) -> EventError {
    let message = match line {
        Some(n) => format!("line {n} column {}: {}", e.column(), bare_message(e)),
        None => strip_position(e),
    };
    EventError::Json { message }
}

fn bare_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    s.strip_suffix(&suffix).map(str::to_owned).unwrap_or(s)
}

fn strip_position(e: &serde_json::Error) -> String {
    if e.line() == 0 {
        return e.to_string();
    }
    format!(
        "line {} column {}: {}",
        e.line(),
        e.column(),
        bare_message(e)
    )
}

struct ArrayVisitor<'a, 'f> {
    limits: &'a Limits,
    f: &'f mut dyn FnMut(Result<Event, EventError>),
    /// Set when the array holds more than `max_events_per_request` elements; the visitor then
    /// stops without reading the rest.
    too_many: &'f mut bool,
}

impl<'de> Visitor<'de> for ArrayVisitor<'_, '_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of JSON objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut n = 0;
        while let Some(r) = seq.next_element_seed(EventSeed {
            limits: self.limits,
        })? {
            if n == self.limits.max_events_per_request {
                *self.too_many = true;
                break;
            }
            (self.f)(r);
            n += 1;
        }
        Ok(n)
    }
}

/// Deserializes one event. Problems with the event's content (not an object, duplicate names,
/// too many fields) become `Ok(Err(..))` after the value has been consumed, so an array can go
/// on to the next element; only syntax errors are `Err`.
struct EventSeed<'a> {
    limits: &'a Limits,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Result<Event, EventError>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(EventVisitor {
            limits: self.limits,
        })
    }
}

struct EventVisitor<'a> {
    limits: &'a Limits,
}

impl<'de> Visitor<'de> for EventVisitor<'_> {
    type Value = Result<Event, EventError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut flat = Flattener {
            event: Event::new(),
            error: None,
            limits: self.limits,
        };
        let mut prefix = String::new();
        flat.map(&mut prefix, 1, map)?;
        Ok(match flat.error {
            Some(e) => Err(e),
            None => Ok(flat.event),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Err(EventError::NotAnObject { found: "an array" }))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject { found: "a bool" }))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject { found: "a number" }))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject { found: "a number" }))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject { found: "a number" }))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject { found: "a string" }))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err(EventError::NotAnObject { found: "null" }))
    }
}

/// Skips one JSON value while still checking it the way the decoder checks everything it keeps:
/// serde's `IgnoredAny` skips strings without validating their UTF-8, so an array element that
/// is rejected as "not an object" could hide bytes that make the whole body invalid JSON (and a
/// body read one way here but refused by every other JSON reader). Allocation-free: strings are
/// borrowed from the body, or from serde_json's scratch buffer when escaped.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// Builds one flat event while the parser walks the object: no intermediate JSON tree.
struct Flattener<'a> {
    event: Event,
    /// The first content problem; once set, the rest of the object is consumed and ignored.
    error: Option<EventError>,
    limits: &'a Limits,
}

impl Flattener<'_> {
    fn map<'de, A: MapAccess<'de>>(
        &mut self,
        prefix: &mut String,
        depth: usize,
        mut map: A,
    ) -> Result<(), A::Error> {
        let base = prefix.len();
        let nested = depth > 1;
        while map.next_key_seed(KeySeed { prefix, nested })?.is_some() {
            map.next_value_seed(FieldSeed {
                flat: self,
                prefix,
                depth,
            })?;
            prefix.truncate(base);
        }
        Ok(())
    }

    fn insert(&mut self, name: &str, value: Value) {
        if self.error.is_some() {
            return;
        }
        if self.event.len() >= self.limits.max_fields_per_event {
            self.error = Some(EventError::TooManyFields {
                count: self.event.len() + 1,
                limit: self.limits.max_fields_per_event,
            });
            return;
        }
        match self.event.entry(name.to_owned()) {
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(value);
            }
            std::collections::btree_map::Entry::Occupied(o) => {
                self.error = Some(EventError::DuplicateField {
                    name: o.key().clone(),
                });
            }
        }
    }
}

/// Appends a key to the dotted prefix (with the separating `.` when nested) without allocating.
struct KeySeed<'p> {
    prefix: &'p mut String,
    nested: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        if self.nested {
            self.prefix.push('.');
        }
        self.prefix.push_str(key);
        Ok(())
    }
}

struct FieldSeed<'f, 'a, 'p> {
    flat: &'f mut Flattener<'a>,
    prefix: &'p mut String,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.flat.insert(self.prefix, Value::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.flat.insert(self.prefix, Value::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.flat.insert(self.prefix, Value::from(v));
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.flat.insert(self.prefix, Value::Float(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.flat.insert(self.prefix, Value::Str(v.to_owned()));
        Ok(())
    }
    fn visit_string<E>(self, v: String) -> Result<(), E> {
        self.flat.insert(self.prefix, Value::Str(v));
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.flat.insert(self.prefix, Value::Null);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let tree = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        self.flat.insert(self.prefix, Value::Str(tree.to_string()));
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if self.depth >= self.flat.limits.max_flatten_depth {
            let tree = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
            self.flat.insert(self.prefix, Value::Str(tree.to_string()));
            return Ok(());
        }
        let before = self.flat.event.len();
        let name = self.prefix.clone();
        self.flat.map(self.prefix, self.depth + 1, map)?;
        if self.flat.event.len() == before && self.flat.error.is_none() {
            // An empty object carries no field of its own; keep that it was there.
            self.flat.insert(&name, Value::Str("{}".to_owned()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
