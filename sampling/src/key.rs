//! Sampling keys: which "kind of event" an event is, built from the values of configured
//! fields (`http.route`, `http.status_code`).
//!
//! Each key has two forms. The hot path uses a 64-bit hash of the values, computed without
//! allocating; the human-readable string (`GET|/api/users|200`, recorded as `meta.sample_key`)
//! is built only when a key is seen for the first time and then kept with its table slot.
//!
//! Rendering: values joined with [`SEPARATOR`]; strings as they are, numbers and bools as JSON
//! text (`200`, `1.5`, `true`); a missing field, or one that is `null`, as [`MISSING`]. Missing
//! is a value of its own: events without a route share one key, distinct from every route.
//! The string is for people; identity is the hash, which also tells types apart (the string
//! `"200"` and the number `200` are different keys even though both render as `200`).
//!
//! The hash folds a tagged encoding of the values (a type tag, a string's length and bytes,
//! a number's 8 bytes) into 64 bits a word at a time and ends with the SplitMix64 finaliser of
//! [`crate::consistent`]. Two different keys share a hash with probability about 2^-64 per
//! pair; they would then share a rate, nothing worse. The hash is stored in sampler state, so
//! changing it needs a new state version ([`crate::state::STATE_VERSION`]).

use std::fmt::Write as _;

use loupe_event::{Event, Value};

/// How a missing (or `null`) field shows in a rendered key.
pub const MISSING: &str = "<none>";
/// The key of the events whose own key did not fit in the table (`max_keys` reached). Its
/// traffic is counted and it gets a rate like any key, so the goal still holds.
pub const OVERFLOW_KEY: &str = "<overflow>";
/// Between the values of a rendered key.
pub const SEPARATOR: char = '|';

/// The fields a sampler's keys are built from, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySpec {
    fields: Vec<String>,
}

impl KeySpec {
    pub fn new<S: Into<String>>(fields: impl IntoIterator<Item = S>) -> Self {
        KeySpec {
            fields: fields.into_iter().map(Into::into).collect(),
        }
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// No key fields: every event has the same key (the sampler has one rate).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The key's identity. Does not allocate.
    pub fn hash(&self, event: &Event) -> u64 {
        let mut h = KeyHasher::new();
        for field in &self.fields {
            h.value(event.get(field));
        }
        h.finish()
    }

    /// The key as people read it (see the module doc).
    pub fn render(&self, event: &Event) -> String {
        let mut out = String::new();
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(SEPARATOR);
            }
            match event.get(field) {
                None | Some(Value::Null) => out.push_str(MISSING),
                Some(Value::Str(s)) => out.push_str(s),
                Some(Value::Int(n)) => {
                    let _ = write!(out, "{n}");
                }
                Some(other) => out.push_str(&other.to_json_text()),
            }
        }
        out
    }
}

/// Word-at-a-time hashing: each 8-byte word is folded in by xor, an odd multiply and an
/// xor-shift (each step a bijection of the state, so two inputs of one length that differ in a
/// single word never collide), then the SplitMix64 finaliser. Eight bytes per multiply instead
/// of FNV's one: keys are hashed on every decision.
struct KeyHasher(u64);

impl KeyHasher {
    const SEED: u64 = 0xcbf2_9ce4_8422_2325;
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    fn new() -> Self {
        KeyHasher(Self::SEED)
    }

    fn word(&mut self, w: u64) {
        let h = (self.0 ^ w).wrapping_mul(Self::K);
        self.0 = h ^ (h >> 29);
    }

    /// Bytes in 8-byte little-endian words, the last one zero-padded (the caller hashes the
    /// length first, so padding is unambiguous).
    fn bytes(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(w));
        }
    }

    fn value(&mut self, value: Option<&Value>) {
        // A type tag per value; a string's tag carries its length.
        match value {
            None | Some(Value::Null) => self.word(0),
            Some(Value::Bool(b)) => self.word(1 | u64::from(*b) << 8),
            Some(Value::Int(n)) => {
                self.word(2);
                self.word(*n as u64);
            }
            Some(Value::Float(f)) => {
                self.word(3);
                // -0.0 == 0.0, so they are one key.
                let f = if *f == 0.0 { 0.0 } else { *f };
                self.word(f.to_bits());
            }
            Some(Value::Str(s)) => {
                // The length keeps ("ab","c") and ("a","bc") apart.
                self.word(4 | (s.len() as u64) << 8);
                self.bytes(s.as_bytes());
            }
        }
    }

    fn finish(self) -> u64 {
        mix64(self.0)
    }
}

/// The SplitMix64 finaliser (Steele, Lea and Flood, OOPSLA 2014): every input bit affects every
/// output bit.
pub(crate) fn mix64(mut h: u64) -> u64 {
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> KeySpec {
        KeySpec::new(["http.method", "http.route", "http.status_code"])
    }

    #[test]
    fn renders_values_and_missing_fields() {
        let e = Event::new()
            .with("http.method", "GET")
            .with("http.route", "/api/users")
            .with("http.status_code", 200);
        assert_eq!(spec().render(&e), "GET|/api/users|200");
        let e = Event::new()
            .with("http.method", "GET")
            .with("http.route", Value::Null);
        assert_eq!(spec().render(&e), "GET|<none>|<none>");
        assert_eq!(KeySpec::default().render(&e), "");
    }

    #[test]
    fn missing_and_null_are_one_key_distinct_from_values() {
        let s = spec();
        let missing = Event::new().with("http.method", "GET");
        let null = Event::new()
            .with("http.method", "GET")
            .with("http.route", Value::Null);
        let empty = Event::new()
            .with("http.method", "GET")
            .with("http.route", "");
        assert_eq!(s.hash(&missing), s.hash(&null));
        assert_ne!(s.hash(&missing), s.hash(&empty));
    }

    #[test]
    fn hash_tells_types_and_boundaries_apart() {
        let s = KeySpec::new(["a", "b"]);
        let h = |a: Value, b: Value| s.hash(&Event::new().with("a", a).with("b", b));
        assert_ne!(h("200".into(), 1.into()), h(200.into(), 1.into()));
        assert_ne!(h("ab".into(), "c".into()), h("a".into(), "bc".into()));
        assert_ne!(h(1.into(), 2.into()), h(2.into(), 1.into()));
        assert_eq!(h(0.0.into(), 1.into()), h((-0.0).into(), 1.into()));
        // Fields outside the spec do not matter.
        let e1 = Event::new().with("a", 1).with("b", 2).with("c", 3);
        let e2 = Event::new().with("a", 1).with("b", 2).with("c", 4);
        assert_eq!(s.hash(&e1), s.hash(&e2));
    }

    #[test]
    fn hash_is_pinned() {
        // Stored in sampler state: a change here needs a new state version.
        let e = Event::new().with("a", "x").with("b", 7);
        assert_eq!(KeySpec::new(["a", "b"]).hash(&e), 0x4c8d7db5cd769b46);
    }
}
