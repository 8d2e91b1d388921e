//! Event time on the wire and in storage.
//!
//! On the wire a timestamp is an RFC 3339 string (`2026-11-23T04:05:06.789Z`, any offset) or an
//! epoch number. Epoch numbers carry no unit, so the unit is read from the magnitude, the same
//! convention most log shippers use: below 10^11 it is seconds (fractions allowed), below 10^14
//! milliseconds, below 10^17 microseconds, otherwise nanoseconds. 10^11 seconds is the year 5138,
//! and 10^11 milliseconds is 1973, so the ranges do not overlap for any plausible event.
//!
//! In storage a timestamp is microseconds since the Unix epoch, UTC.

use crate::error::EventError;
use crate::value::Value;

/// Earliest accepted time: 1970-01-01T00:00:00Z.
pub const MIN_TIMESTAMP_US: i64 = 0;
/// Latest accepted time: 9999-12-31T23:59:59.999999Z.
pub const MAX_TIMESTAMP_US: i64 = 253_402_300_799_999_999;

/// Parses a wire timestamp into microseconds since the epoch.
pub fn parse_timestamp(value: &Value) -> Result<i64, EventError> {
    let bad = |reason: &str| EventError::BadTimestamp {
        value: value.to_json_text(),
        reason: reason.to_owned(),
    };
    let us = match value {
        Value::Str(s) => chrono::DateTime::parse_from_rfc3339(s.trim())
            .map_err(|e| bad(&format!("not RFC 3339 ({e})")))?
            .timestamp_micros(),
        Value::Int(i) => epoch_to_micros(*i as f64, Some(*i)).ok_or_else(|| bad("out of range"))?,
        Value::Float(f) if f.is_finite() => {
            epoch_to_micros(*f, None).ok_or_else(|| bad("out of range"))?
        }
        Value::Float(_) => return Err(bad("not a finite number")),
        Value::Null | Value::Bool(_) => {
            return Err(bad("expected an RFC 3339 string or an epoch number"));
        }
    };
    if !(MIN_TIMESTAMP_US..=MAX_TIMESTAMP_US).contains(&us) {
        return Err(bad("outside 1970-01-01 .. 9999-12-31"));
    }
    Ok(us)
}

/// Epoch number to microseconds, unit chosen by magnitude (see the module doc). Integers are
/// converted exactly; floats to the nearest microsecond.
fn epoch_to_micros(x: f64, exact: Option<i64>) -> Option<i64> {
    let abs = x.abs();
    let (mul, div) = if abs < 1e11 {
        (1_000_000, 1)
    } else if abs < 1e14 {
        (1_000, 1)
    } else if abs < 1e17 {
        (1, 1)
    } else {
        (1, 1_000)
    };
    match exact {
        Some(i) => i.checked_mul(mul).map(|v| v / div),
        None => {
            let us = x * mul as f64 / div as f64;
            (us.abs() < 9.2e18).then(|| us.round() as i64)
        }
    }
}

/// Formats microseconds since the epoch as RFC 3339 with microsecond precision, `Z` offset.
pub fn format_timestamp(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| us.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_763_870_706_789_000; // 2025-11-23T04:05:06.789Z

    #[test]
    fn rfc3339_with_offsets() {
        let v = Value::from("2025-11-23T04:05:06.789Z");
        assert_eq!(parse_timestamp(&v).unwrap(), T);
        let v = Value::from("2025-11-23T05:05:06.789+01:00");
        assert_eq!(parse_timestamp(&v).unwrap(), T);
    }

    #[test]
    fn epoch_units_by_magnitude() {
        assert_eq!(
            parse_timestamp(&Value::Int(1_763_870_706)).unwrap(),
            T - 789_000
        );
        assert_eq!(
            parse_timestamp(&Value::Float(1_763_870_706.789)).unwrap(),
            T
        );
        assert_eq!(parse_timestamp(&Value::Int(1_763_870_706_789)).unwrap(), T);
        assert_eq!(parse_timestamp(&Value::Int(T)).unwrap(), T);
        assert_eq!(parse_timestamp(&Value::Int(T * 1000 + 999)).unwrap(), T);
    }

    #[test]
    fn rejects_garbage_and_out_of_range() {
        for v in [
            Value::from("yesterday"),
            Value::from("2025-13-01T00:00:00Z"),
            Value::Bool(true),
            Value::Null,
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Int(-5),
            Value::Float(1e300),
            Value::Float(-1e12),
        ] {
            let err = parse_timestamp(&v).unwrap_err();
            assert!(
                matches!(err, EventError::BadTimestamp { .. }),
                "{v:?}: {err}"
            );
        }
    }

    #[test]
    fn format_round_trips() {
        let s = format_timestamp(T);
        assert_eq!(s, "2025-11-23T04:05:06.789000Z");
        assert_eq!(parse_timestamp(&Value::Str(s)).unwrap(), T);
    }
}
