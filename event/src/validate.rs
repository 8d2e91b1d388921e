//! Validation: the step from [`Event`] (as parsed) to [`ValidEvent`] (safe to store).
//!
//! Rules, in the order they are checked:
//! 1. at most `max_fields_per_event` fields;
//! 2. names are non-empty, at most `max_name_bytes`, have no control characters, no empty
//!    dotted segment at either end, do not end in [`RAW_SUFFIX`] and do not start with
//!    [`fields::OVERFLOW`] (both reserved for the store);
//! 3. values are at most `max_value_bytes`; floats are finite;
//! 4. reserved fields have their type ([`fields::reserved_kind`]); `timestamp` parses
//!    ([`crate::time`]) and is filled with the receive time when absent; `sample_rate` is a
//!    number >= 1 and is set to 1 when absent, so every stored event carries its weight.

use crate::error::EventError;
use crate::event::Event;
use crate::fields::{self, RAW_SUFFIX};
use crate::limits::Limits;
use crate::time::parse_timestamp;
use crate::value::Value;

/// An event that passed validation: within limits, reserved fields typed, time parsed, weight
/// set. Only this type can be written to the WAL.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    timestamp_us: i64,
    /// Every field but `timestamp`.
    fields: Event,
}

impl ValidEvent {
    /// Microseconds since the Unix epoch, UTC.
    pub fn timestamp_us(&self) -> i64 {
        self.timestamp_us
    }

    /// The fields other than `timestamp`.
    pub fn fields(&self) -> &Event {
        &self.fields
    }

    /// The weight this event carries (`sample_rate`, always present and >= 1).
    pub fn sample_rate(&self) -> f64 {
        self.fields
            .get(fields::SAMPLE_RATE)
            .and_then(Value::as_f64)
            .unwrap_or(1.0)
    }

    /// Sets the weight a sampling stage computed (`upstream × its rate`). A value below 1 or
    /// not finite becomes 1, so the invariant "`sample_rate` is a number >= 1" holds whatever a
    /// caller passes.
    pub fn set_sample_rate(&mut self, rate: f64) {
        let rate = if rate.is_finite() && rate >= 1.0 {
            rate
        } else {
            1.0
        };
        self.fields.insert(fields::SAMPLE_RATE, rate);
    }

    /// Sets a field the collector adds ([`fields::META_PREFIX`]`*`, such as the sampling key),
    /// replacing what a client sent under that name. Names outside `meta.` are refused
    /// (returns `false`): a reserved field could otherwise get the wrong type after validation.
    pub fn set_meta(&mut self, name: &str, value: impl Into<Value>) -> bool {
        if !name.starts_with(fields::META_PREFIX) || name.len() == fields::META_PREFIX.len() {
            return false;
        }
        self.fields.insert(name, value);
        true
    }

    /// An estimate of the memory this event holds, in bytes: what the collector's buffers count
    /// against `max_buffered_bytes`. Per field: the map entry (name `String` + `Value`, 56
    /// bytes) with B-tree node slack and allocator headers (about 40 more), plus the name and any
    /// string payload. It is an estimate (allocator rounding varies), checked against measured
    /// RSS by the collector's backpressure test.
    pub fn approx_mem_bytes(&self) -> usize {
        const PER_EVENT: usize = 64;
        const PER_FIELD: usize = 96;
        self.fields.iter().fold(PER_EVENT, |acc, (name, value)| {
            let payload = match value {
                Value::Str(s) => s.len() + 16,
                _ => 0,
            };
            acc + PER_FIELD + name.len() + payload
        })
    }

    /// Rebuilds a valid event from parts that were valid when stored (the WAL's replay path).
    /// The caller vouches for the parts; nothing is re-checked.
    pub fn from_stored_parts(timestamp_us: i64, fields: Event) -> Self {
        ValidEvent {
            timestamp_us,
            fields,
        }
    }

    /// The event with `timestamp` back in it as an RFC 3339 string.
    pub fn to_event(&self) -> Event {
        let mut e = self.fields.clone();
        e.insert(
            fields::TIMESTAMP,
            crate::time::format_timestamp(self.timestamp_us),
        );
        e
    }
}

impl Event {
    /// Checks this event against `limits` and the reserved-field rules. `now_us` becomes the
    /// timestamp of an event that has none.
    pub fn validate(mut self, limits: &Limits, now_us: i64) -> Result<ValidEvent, EventError> {
        if self.len() > limits.max_fields_per_event {
            return Err(EventError::TooManyFields {
                count: self.len(),
                limit: limits.max_fields_per_event,
            });
        }
        for (name, value) in self.iter() {
            check_name(name, limits)?;
            check_value(name, value, limits)?;
            if let Some(kind) = fields::reserved_kind(name)
                && !kind.accepts(value.kind())
            {
                return Err(EventError::ReservedType {
                    name: reserved_static(name),
                    expected: kind.as_str(),
                    found: value.kind().as_str(),
                });
            }
        }
        let timestamp_us = match self.remove(fields::TIMESTAMP) {
            None | Some(Value::Null) => now_us,
            Some(v) => parse_timestamp(&v)?,
        };
        // Reserved numbers are stored as floats, whatever the wire type was.
        if let Some(Value::Int(i)) = self.get(fields::DURATION_MS) {
            let f = *i as f64;
            self.insert(fields::DURATION_MS, f);
        }
        let rate = match self.get(fields::SAMPLE_RATE) {
            None | Some(Value::Null) => 1.0,
            Some(v) => match v.as_f64() {
                Some(r) if r >= 1.0 => r,
                _ => {
                    return Err(EventError::BadSampleRate {
                        value: v.to_json_text(),
                    });
                }
            },
        };
        self.insert(fields::SAMPLE_RATE, rate);
        Ok(ValidEvent {
            timestamp_us,
            fields: self,
        })
    }
}

fn check_name(name: &str, limits: &Limits) -> Result<(), EventError> {
    let invalid = |reason| {
        Err(EventError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > limits.max_name_bytes {
        // Do not echo a megabyte-long name back in the error.
        let shown: String = name.chars().take(64).collect();
        return Err(EventError::NameTooLong {
            name: format!("{shown}..."),
            len: name.len(),
            limit: limits.max_name_bytes,
        });
    }
    // Control characters: C0 and DEL are single bytes; C1 (U+0080..U+009F) only occurs in
    // non-ASCII names, which take the slower per-char check.
    if name.bytes().any(|b| b < 0x20 || b == 0x7f)
        || (!name.is_ascii() && name.chars().any(char::is_control))
    {
        return invalid("contains a control character");
    }
    if name.starts_with('.') || name.ends_with('.') {
        return invalid("starts or ends with '.'");
    }
    if name.ends_with(RAW_SUFFIX) {
        return invalid("the suffix `.__raw` is reserved for values whose type conflicts");
    }
    if name.starts_with(fields::OVERFLOW) {
        return invalid("names starting with `__overflow` are reserved");
    }
    Ok(())
}

fn check_value(name: &str, value: &Value, limits: &Limits) -> Result<(), EventError> {
    if let Value::Float(f) = value
        && !f.is_finite()
    {
        return Err(EventError::NonFinite {
            name: name.to_owned(),
        });
    }
    if value.payload_len() > limits.max_value_bytes {
        return Err(EventError::ValueTooLarge {
            name: name.to_owned(),
            len: value.payload_len(),
            limit: limits.max_value_bytes,
        });
    }
    Ok(())
}

/// The `&'static str` of a reserved name (for error variants that carry static names).
fn reserved_static(name: &str) -> &'static str {
    [
        fields::DURATION_MS,
        fields::NAME,
        fields::SERVICE_NAME,
        fields::TRACE_ID,
        fields::SPAN_ID,
        fields::PARENT_ID,
        fields::ERROR,
        fields::HTTP_STATUS_CODE,
        fields::SAMPLE_RATE,
    ]
    .into_iter()
    .find(|r| *r == name)
    .unwrap_or("reserved field")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000;

    fn valid(e: Event) -> Result<ValidEvent, EventError> {
        e.validate(&Limits::default(), NOW)
    }

    #[test]
    fn fills_timestamp_and_weight() {
        let v = valid(Event::new().with("a", 1)).unwrap();
        assert_eq!(v.timestamp_us(), NOW);
        assert_eq!(v.sample_rate(), 1.0);
        assert_eq!(v.fields().get("sample_rate"), Some(&Value::Float(1.0)));
        assert!(v.fields().get("timestamp").is_none());
    }

    #[test]
    fn sampling_annotations_keep_the_invariants() {
        let mut v = valid(Event::new().with("sample_rate", 4)).unwrap();
        v.set_sample_rate(20.0);
        assert_eq!(v.sample_rate(), 20.0);
        for bad in [0.5, f64::NAN, f64::INFINITY, -3.0] {
            v.set_sample_rate(bad);
            assert_eq!(v.sample_rate(), 1.0, "{bad}");
        }
        assert!(v.set_meta("meta.sample_key", "/cart|200"));
        assert_eq!(
            v.fields().get("meta.sample_key"),
            Some(&Value::from("/cart|200"))
        );
        // Only the collector's namespace: a reserved field cannot change type this way.
        assert!(!v.set_meta("http.status_code", "x"));
        assert!(!v.set_meta("meta.", "x"));
        assert_eq!(v.fields().get("http.status_code"), None);
    }

    #[test]
    fn keeps_upstream_weight_and_parses_time() {
        let v = valid(
            Event::new()
                .with("timestamp", "2023-11-14T22:13:20Z")
                .with("sample_rate", 20),
        )
        .unwrap();
        assert_eq!(v.timestamp_us(), NOW);
        assert_eq!(v.sample_rate(), 20.0);
        assert_eq!(
            v.to_event().get("timestamp"),
            Some(&Value::from("2023-11-14T22:13:20.000000Z"))
        );
    }

    #[test]
    fn rejects_bad_sample_rates() {
        for r in [Value::Float(0.5), Value::Int(0), Value::Int(-1)] {
            let err = valid(Event::new().with("sample_rate", r.clone())).unwrap_err();
            assert_eq!(err.code(), "bad_sample_rate", "{r:?}");
        }
        let err = valid(Event::new().with("sample_rate", "10")).unwrap_err();
        assert_eq!(err.code(), "reserved_field_type");
    }

    #[test]
    fn reserved_types_are_enforced() {
        let err = valid(Event::new().with("http.status_code", "200")).unwrap_err();
        assert_eq!(
            err,
            EventError::ReservedType {
                name: "http.status_code",
                expected: "int",
                found: "string"
            }
        );
        assert!(valid(Event::new().with("error", 1)).is_err());
        assert!(valid(Event::new().with("duration_ms", "fast")).is_err());
        assert!(valid(Event::new().with("trace.trace_id", 5)).is_err());
        // null is allowed everywhere, and integral durations are stored as floats
        let v = valid(
            Event::new()
                .with("error", Value::Null)
                .with("duration_ms", 12),
        )
        .unwrap();
        assert_eq!(v.fields().get("duration_ms"), Some(&Value::Float(12.0)));
    }

    #[test]
    fn name_rules() {
        let long = "x".repeat(300);
        let cases = [
            ("", "invalid_name"),
            (long.as_str(), "name_too_long"),
            ("a\u{0}b", "invalid_name"),
            ("a\nb", "invalid_name"),
            ("a\u{7f}b", "invalid_name"),
            ("caf\u{e9}\u{85}", "invalid_name"), // C1 control (NEL) in a non-ASCII name
            (".a", "invalid_name"),
            ("a.", "invalid_name"),
            ("status.__raw", "invalid_name"),
            ("__overflow", "invalid_name"),
            ("__overflow.x", "invalid_name"),
        ];
        for (name, code) in cases {
            let err = valid(Event::new().with(name, 1)).unwrap_err();
            assert_eq!(err.code(), code, "{name:?}");
        }
        let err = valid(Event::new().with(long.as_str(), 1)).unwrap_err();
        assert!(
            err.to_string().len() < 200,
            "long names are not echoed whole"
        );
    }

    #[test]
    fn value_and_field_limits() {
        let limits = Limits {
            max_value_bytes: 8,
            max_fields_per_event: 2,
            ..Limits::default()
        };
        let err = Event::new()
            .with("s", "123456789")
            .validate(&limits, NOW)
            .unwrap_err();
        assert_eq!(
            err,
            EventError::ValueTooLarge {
                name: "s".into(),
                len: 9,
                limit: 8
            }
        );
        let err = Event::new()
            .with("a", 1)
            .with("b", 2)
            .with("c", 3)
            .validate(&limits, NOW)
            .unwrap_err();
        assert_eq!(err.code(), "too_many_fields");
        // exactly at the limits passes (sample_rate is added after the count check)
        assert!(
            Event::new()
                .with("a", "12345678")
                .with("b", 2)
                .validate(&limits, NOW)
                .is_ok()
        );
    }

    #[test]
    fn non_finite_floats_rejected() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = valid(Event::new().with("x", f)).unwrap_err();
            assert_eq!(err.code(), "non_finite_number");
        }
    }

    #[test]
    fn memory_estimate_grows_with_fields_names_and_strings() {
        let size = |e: Event| valid(e).unwrap().approx_mem_bytes();
        let base = size(Event::new().with("a", 1));
        assert!(size(Event::new().with("a", 1).with("b", 2)) > base);
        assert!(size(Event::new().with("a_longer_name", 1)) > base);
        let short = size(Event::new().with("a", "x"));
        assert_eq!(size(Event::new().with("a", "x".repeat(1001))), short + 1000);
    }
}
