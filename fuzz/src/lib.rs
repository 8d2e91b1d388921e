//! What every decoder's fuzz target checks once it has events: the invariants of validation,
//! and that a validated event survives being written out as JSON and read back.
//!
//! The targets live in `fuzz_targets/`; `.ci/fuzz` runs each for a bounded time.

pub mod otlp;

use loupe_event::fields::{DURATION_MS, SAMPLE_RATE, TIMESTAMP};
use loupe_event::time::{MAX_TIMESTAMP_US, MIN_TIMESTAMP_US};
use loupe_event::{Event, EventError, Limits, ValidEvent, Value, decode_event};

/// The receive time every target validates with (2023-11-14T22:13:20Z).
pub const NOW_US: i64 = 1_700_000_000_000_000;

/// Limits small enough that short fuzz inputs reach every limit check.
pub fn small_limits() -> Limits {
    Limits {
        max_fields_per_event: 8,
        max_name_bytes: 16,
        max_value_bytes: 32,
        max_body_bytes: 2048,
        max_events_per_request: 4,
        max_flatten_depth: 2,
    }
}

/// Validates a decoded event as the collector does and checks what validation promises:
/// a weight >= 1 in `sample_rate`, a timestamp in range and not among the fields, names and
/// values within `limits`, finite floats, a float `duration_ms`. A valid event must also read
/// back from its own JSON as the same event. Returns the valid event, if it was one.
pub fn validate(event: Event, limits: &Limits) -> Option<ValidEvent> {
    let decoded_fields = event.len();
    let v = match event.validate(limits, NOW_US) {
        Ok(v) => v,
        Err(e) => {
            assert!(!e.code().is_empty());
            return None;
        }
    };
    let rate = v.sample_rate();
    assert!(rate >= 1.0 && rate.is_finite(), "sample_rate {rate}");
    assert_eq!(v.fields().get(SAMPLE_RATE), Some(&Value::Float(rate)));
    assert!(
        (MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(&v.timestamp_us()),
        "timestamp {}",
        v.timestamp_us()
    );
    assert!(!v.fields().contains(TIMESTAMP));
    assert!(
        matches!(
            v.fields().get(DURATION_MS),
            None | Some(Value::Null | Value::Float(_))
        ),
        "duration_ms {:?}",
        v.fields().get(DURATION_MS)
    );
    // At most one field more than decoded: the weight, when there was none.
    assert!(v.fields().len() <= decoded_fields + 1);
    assert!(v.fields().len() <= limits.max_fields_per_event + 1);
    for (name, value) in v.fields() {
        assert!(
            !name.is_empty() && name.len() <= limits.max_name_bytes,
            "{name:?}"
        );
        if name != SAMPLE_RATE {
            assert!(value.payload_len() <= limits.max_value_bytes, "{name:?}");
        }
        if let Value::Float(f) = value {
            assert!(f.is_finite(), "{name:?} = {f}");
        }
    }
    assert_round_trip(&v);
    Some(v)
}

/// A valid event written as JSON (timestamp back in, as RFC 3339) decodes and validates to
/// itself. Default limits with room for the two fields validation may have added, since the
/// event passed the stricter limits already.
///
/// Floats may come back a few ULPs off: serde_json's default float parser is not exact (its
/// `float_roundtrip` feature is), so `9223372036867.277` reads as `9223372036867.275`. The
/// workspace does not enable that feature; once it does, [`FLOAT_ULPS`] can be 0.
fn assert_round_trip(v: &ValidEvent) {
    let json = v.to_event().to_json();
    let defaults = Limits::default();
    let limits = Limits {
        max_fields_per_event: defaults.max_fields_per_event.max(v.fields().len() + 2),
        ..defaults
    };
    let again = decode_event(json.as_bytes(), &limits)
        .and_then(|e| e.validate(&limits, NOW_US))
        .unwrap_or_else(|e| panic!("{json} does not read back: {e}"));
    assert_eq!(again.timestamp_us(), v.timestamp_us(), "{json}");
    let names = |e: &ValidEvent| {
        e.fields()
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&again), names(v), "{json}");
    for ((name, a), (_, b)) in again.fields().iter().zip(v.fields()) {
        let same = match (a, b) {
            (Value::Float(a), Value::Float(b)) => ulps(*a, *b) <= FLOAT_ULPS,
            _ => a == b,
        };
        assert!(same, "{name}: {b:?} read back as {a:?} from {json}");
    }
}

/// How far (in units in the last place) a float may move through JSON; see
/// [`assert_round_trip`].
const FLOAT_ULPS: u64 = 4;

/// Distance between two finite floats in representable steps (0 for `0.0` and `-0.0`).
fn ulps(a: f64, b: f64) -> u64 {
    // Map the sign-magnitude bit patterns onto a line where adjacent floats differ by 1.
    let key = |x: f64| {
        let bits = x.to_bits() as i64;
        if bits < 0 { i64::MIN - bits } else { bits }
    };
    key(a).abs_diff(key(b))
}

/// Checks one decoder result that the caller says is a rejection or an event, and validates
/// the event. Returns whether it was accepted.
pub fn accept(r: Result<Event, EventError>, limits: &Limits) -> bool {
    match r {
        Ok(e) => validate(e, limits).is_some(),
        Err(e) => {
            assert!(!e.code().is_empty());
            assert!(!e.to_string().is_empty());
            false
        }
    }
}
