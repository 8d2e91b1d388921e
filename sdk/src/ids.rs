//! Trace and span ids: random, non-zero, written as lowercase hex (W3C Trace Context).

use std::cell::RefCell;
use std::fmt;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

thread_local! {
    // A fast generator per thread, seeded from the OS-backed thread generator once: ids must be
    // unpredictable enough not to collide, not cryptographic secrets, and are drawn per span.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// A 128-bit trace id, never zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(u128);

/// A 64-bit span id, never zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(u64);

impl TraceId {
    pub fn random() -> Self {
        RNG.with(|r| TraceId(r.borrow_mut().random_range(1..=u128::MAX)))
    }

    /// From 32 lowercase hex digits, not all zero (the W3C form).
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex(s, 32).map(TraceId).filter(|t| t.0 != 0)
    }

    pub fn from_u128(v: u128) -> Option<Self> {
        (v != 0).then_some(TraceId(v))
    }

    pub fn to_u128(self) -> u128 {
        self.0
    }
}

impl SpanId {
    pub fn random() -> Self {
        RNG.with(|r| SpanId(r.borrow_mut().random_range(1..=u64::MAX)))
    }

    /// From 16 lowercase hex digits, not all zero (the W3C form).
    pub fn from_hex(s: &str) -> Option<Self> {
        parse_hex(s, 16)
            .and_then(|v| u64::try_from(v).ok())
            .map(SpanId)
            .filter(|s| s.0 != 0)
    }

    pub fn from_u64(v: u64) -> Option<Self> {
        (v != 0).then_some(SpanId(v))
    }
}

fn parse_hex(s: &str, len: usize) -> Option<u128> {
    // Uppercase is invalid in W3C ids; `from_str_radix` would also accept a leading `+`.
    if s.len() != len || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_pads() {
        let t = TraceId::from_u128(0xab).unwrap();
        assert_eq!(t.to_string(), "000000000000000000000000000000ab");
        assert_eq!(TraceId::from_hex(&t.to_string()), Some(t));
        let s = SpanId::from_u64(0x1f).unwrap();
        assert_eq!(s.to_string(), "000000000000001f");
        assert_eq!(SpanId::from_hex(&s.to_string()), Some(s));
    }

    #[test]
    fn invalid_ids_are_refused() {
        assert_eq!(TraceId::from_hex(&"0".repeat(32)), None);
        assert_eq!(TraceId::from_hex(&"A".repeat(32)), None);
        assert_eq!(TraceId::from_hex(&"a".repeat(31)), None);
        assert_eq!(TraceId::from_hex(&format!("+{}", "a".repeat(31))), None);
        assert_eq!(SpanId::from_hex(&"0".repeat(16)), None);
        assert_eq!(SpanId::from_hex("zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn random_ids_differ() {
        let a: Vec<TraceId> = (0..1000).map(|_| TraceId::random()).collect();
        let set: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(set.len(), a.len());
    }
}
