//! The native door's body decoder (`POST /v1/events/{dataset}`): a JSON object, an array of
//! objects or NDJSON, each event validated as the collector does.
//!
//! Checks: the count `for_each_event` returns is the number of events it handed over, within
//! `max_events_per_request`; every decoded event is within `max_fields_per_event`; NDJSON never
//! yields more events than non-blank lines; whole-body errors match the body (`Empty` only for
//! blank bodies, `TooLarge` only over the limit); a well-formed JSON array yields one result per
//! element, or `TooManyEvents` when it has too many, never a JSON error; every event that
//! validates keeps the invariants of `loupe_fuzz::validate` (weight >= 1, time in range, JSON
//! round trip). The body is decoded under the default limits and under small ones,
//! auto-detected and as NDJSON.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_event::{BodyError, BodyFormat, Limits, for_each_event};
use loupe_fuzz::{accept, small_limits};

fuzz_target!(|body: &[u8]| {
    let defaults = Limits::default();
    for (format, limits) in [
        (BodyFormat::Auto, defaults),
        (BodyFormat::Ndjson, defaults),
        (BodyFormat::Auto, small_limits()),
    ] {
        check(body, format, &limits);
    }
});

fn check(body: &[u8], format: BodyFormat, limits: &Limits) {
    let mut seen = 0;
    let mut accepted = 0;
    let mut rejected = 0;
    let r = for_each_event(body, format, limits, |r| {
        seen += 1;
        if let Ok(e) = &r {
            assert!(e.len() <= limits.max_fields_per_event, "{} fields", e.len());
        }
        if accept(r, limits) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    });
    let blank = body.iter().all(is_json_space);
    // A well-formed JSON array (auto-detected) is read element by element, whatever they are.
    // Well-formed as `serde_json::Value` has it: `IgnoredAny` skips strings without checking
    // their UTF-8, which the decoder (rightly) refuses.
    let array =
        body.iter().find(|b| !is_json_space(b)) == Some(&b'[') && format == BodyFormat::Auto;
    let elements = array
        .then(|| serde_json::from_slice::<Vec<serde_json::Value>>(body).ok())
        .flatten()
        .map(|v| v.len());
    match r {
        Ok(n) => {
            assert!(!blank);
            assert_eq!(n, seen);
            if array {
                assert_eq!(Some(n), elements, "an array read but not well-formed");
            }
            assert_eq!(accepted + rejected, seen);
            assert!(n <= limits.max_events_per_request);
            if format == BodyFormat::Ndjson {
                let lines = body
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.iter().all(is_json_space))
                    .count();
                assert!(n <= lines, "{n} events from {lines} lines");
            }
        }
        Err(BodyError::Empty) => assert!(blank),
        Err(BodyError::TooLarge { len, limit }) => {
            assert_eq!(len, body.len());
            assert!(len > limit);
        }
        Err(BodyError::TooManyEvents { limit }) => {
            assert_eq!(limit, limits.max_events_per_request);
            assert!(seen <= limit);
            if let Some(n) = elements {
                assert!(n > limit);
            }
        }
        Err(e @ BodyError::Json { .. }) => {
            assert!(elements.is_none(), "a well-formed array refused as {e}");
        }
    }
}

/// Whitespace as JSON has it (RFC 8259), which is not `u8::is_ascii_whitespace` (form feed).
fn is_json_space(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}
