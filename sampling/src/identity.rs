//! Which id the keep decision is made on, so that the spans of a trace are kept or dropped
//! together.
//!
//! The decision is [`consistent::keep_hash`]`(h, rate)`, with `h` from the first of:
//! 1. the event's trace id, [`fields::TRACE_ID`] (`trace.trace_id`, a string: what the SDK, the
//!    OTLP door and Honeycomb's beelines write): every span of a trace gets the same `h`, so at
//!    equal rates they get the same decision on every collector and after every restart, and
//!    at different rates the decisions nest (kept at the higher rate implies kept at the
//!    lower one);
//! 2. its own id, [`fields::SPAN_ID`] (`trace.span_id`), for an event with a span but no trace;
//! 3. a counter kept by the [`DatasetSampler`](crate::DatasetSampler), hashed: deterministic
//!    for a given stream, so two samplers fed the same events decide alike, and evenly spread,
//!    so the kept fraction matches the rate.
//!
//! Ids are hashed as the exact bytes of the string: `ABC` and `abc` are different ids.
//!
//! **Why `h` is not `consistent::hash_id(trace_id)` itself.** The SDK's head sampling keeps a
//! trace when `hash_id(trace_id) < 2^64 / r_u` and records `sample_rate = r_u`. Were the
//! collector to threshold that same number at its rate `r`, its decision would be nested in
//! the SDK's rather than independent of it: of the traces the SDK kept it would keep all of
//! them when `r <= r_u`, and a fraction `r_u / r` otherwise, so the true combined rate would
//! be `max(r_u, r)` while the recorded weight is `r_u × r`, overcounting every estimate by up
//! to a factor `r`. So this tier thresholds a second hash of the same id, [`tail_hash`]: the
//! SplitMix64 finaliser of `hash_id(id)` XOR a fixed salt. It is still a deterministic
//! function of the trace id (everything above holds) but independent of the head decision, so
//! `upstream × rate` is the true weight. The salt is fixed forever, like `hash_id`.

use loupe_event::{Event, Value, fields};

use crate::consistent;
use crate::key::mix64;

/// Makes the tail decision independent of the SDK's head decision (see the module doc).
/// "loupetai" in ASCII. Changing it changes which traces are kept.
const TAIL_SALT: u64 = 0x6c6f_7570_6574_6169;

/// The number the tail keep decision thresholds for an id (see the module doc).
pub fn tail_hash(id: &[u8]) -> u64 {
    mix64(consistent::hash_id(id) ^ TAIL_SALT)
}

/// Where the decision's id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSource {
    TraceId,
    SpanId,
    Counter,
}

/// The hash the keep decision for `event` is made on, and where its id came from. Advances
/// `counter` only when the event has no id.
pub fn decision_hash(event: &Event, counter: &mut u64) -> (u64, IdSource) {
    if let Some(id) = id_bytes(event, fields::TRACE_ID) {
        return (tail_hash(id), IdSource::TraceId);
    }
    if let Some(id) = id_bytes(event, fields::SPAN_ID) {
        return (tail_hash(id), IdSource::SpanId);
    }
    let n = *counter;
    *counter = counter.wrapping_add(1);
    (tail_hash(&n.to_le_bytes()), IdSource::Counter)
}

fn id_bytes<'a>(event: &'a Event, field: &str) -> Option<&'a [u8]> {
    match event.get(field) {
        Some(Value::Str(s)) if !s.is_empty() => Some(s.as_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_first_then_span_id_then_counter() {
        let mut counter = 0;
        let trace = Event::new()
            .with("trace.trace_id", "abc")
            .with("trace.span_id", "s1");
        assert_eq!(
            decision_hash(&trace, &mut counter),
            (tail_hash(b"abc"), IdSource::TraceId)
        );
        let span = Event::new().with("trace.span_id", "s1");
        assert_eq!(
            decision_hash(&span, &mut counter),
            (tail_hash(b"s1"), IdSource::SpanId)
        );
        assert_eq!(counter, 0);
        let bare = Event::new().with("trace.trace_id", "");
        let (h0, src) = decision_hash(&bare, &mut counter);
        let (h1, _) = decision_hash(&bare, &mut counter);
        assert_eq!(src, IdSource::Counter);
        assert_ne!(h0, h1);
        assert_eq!(counter, 2);
    }

    #[test]
    fn tail_hash_is_pinned() {
        // Fixed forever: a change here changes which traces every collector keeps.
        assert_eq!(
            tail_hash(b"4bf92f3577b34da6a3ce929d0e0e4736"),
            0xdb112db870cbb2b9
        );
    }

    #[test]
    fn tail_decision_is_independent_of_head_decision() {
        // Ids the SDK kept at head rate 10; the collector then keeps 1 in 4 of them, so the
        // weight 10 × 4 = 40 is right. With the untransformed hash it would keep all of them.
        let head: Vec<String> = (0..400_000u32)
            .map(|i| format!("{i:032x}"))
            .filter(|id| consistent::keep(id.as_bytes(), 10.0))
            .collect();
        let kept = head
            .iter()
            .filter(|id| consistent::keep_hash(tail_hash(id.as_bytes()), 4.0))
            .count();
        let expected = head.len() as f64 / 4.0;
        let sd = (expected * 0.75).sqrt();
        assert!(
            (kept as f64 - expected).abs() < 5.0 * sd,
            "kept {kept} of {}, expected {expected:.0}",
            head.len()
        );
        let nested = head
            .iter()
            .filter(|id| consistent::keep(id.as_bytes(), 4.0))
            .count();
        assert_eq!(nested, head.len(), "the untransformed hash nests");
    }
}
