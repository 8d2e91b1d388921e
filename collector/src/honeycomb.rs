//! The Honeycomb event API, so libhoney clients and Refinery can point at loupe unchanged
//! (<https://docs.honeycomb.io/api/events/>):
//!
//! - `POST /1/events/{dataset}`: the body is one event's fields; `X-Honeycomb-Event-Time`
//!   (RFC 3339 or epoch seconds) and `X-Honeycomb-Samplerate` carry its time and weight.
//! - `POST /1/batch/{dataset}`: a JSON array of `{"data": {...}, "time": ..., "samplerate": N}`,
//!   answered with one `{"status": 202}` or `{"status": 400, "error": ...}` per element.
//!
//! Mapping: `data` is the event (flattened like any other); `time` becomes `timestamp` and
//! `samplerate` becomes `sample_rate`, the weight, overriding fields of those names in `data`
//! (Honeycomb reads them from the envelope). Dataset names are case-insensitive in Honeycomb, so
//! they are lowercased here; names with characters loupe does not allow (spaces, dots) are
//! refused with the reason.

use loupe_event::fields::{SAMPLE_RATE, TIMESTAMP};
use loupe_event::{BodyError, Event, EventError, Limits, Value, decode_event};
use serde::Deserialize;
use serde_json::value::RawValue;

/// `X-Honeycomb-Event-Time`.
pub const EVENT_TIME_HEADER: &str = "x-honeycomb-event-time";
/// `X-Honeycomb-Samplerate`.
pub const SAMPLERATE_HEADER: &str = "x-honeycomb-samplerate";

/// A Honeycomb dataset slug as a loupe dataset name (Honeycomb's names are case-insensitive).
pub fn dataset_name(slug: &str) -> String {
    slug.trim().to_ascii_lowercase()
}

/// One element of a `/1/batch` body.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    time: Option<serde_json::Value>,
    samplerate: Option<serde_json::Value>,
}

/// Decodes a `/1/batch` body: `Err` when it is not a JSON array at all (nothing can be read),
/// otherwise one result per element, each decoded or refused on its own.
pub fn decode_batch(
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<Result<Event, EventError>>, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Empty);
    }
    let elements: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| BodyError::Json {
        message: format!("a batch is a JSON array of {{\"data\": {{...}}}} objects: {e}"),
    })?;
    if elements.len() > limits.max_events_per_request {
        return Err(BodyError::TooManyEvents {
            limit: limits.max_events_per_request,
        });
    }
    Ok(elements
        .into_iter()
        .map(|raw| element(raw, limits))
        .collect())
}

fn element(raw: &RawValue, limits: &Limits) -> Result<Event, EventError> {
    let envelope: Envelope<'_> = serde_json::from_str(raw.get()).map_err(|e| {
        if raw.get().trim_start().starts_with('{') {
            EventError::Json {
                message: e.to_string(),
            }
        } else {
            EventError::NotAnObject {
                found: "a batch element that is not an object",
            }
        }
    })?;
    let data = envelope.data.ok_or(EventError::NotAnObject {
        found: "a batch element without \"data\"",
    })?;
    let time = envelope.time.map(json_scalar).transpose()?;
    let rate = envelope.samplerate.map(json_scalar).transpose()?;
    with_envelope(decode_event(data.get().as_bytes(), limits)?, time, rate)
}

/// The event of `/1/events`: the body's fields, with the time and weight from the headers.
pub fn single_event(
    body: &[u8],
    limits: &Limits,
    time_header: Option<&str>,
    samplerate_header: Option<&str>,
) -> Result<Event, EventError> {
    let time = time_header.map(header_time);
    let rate = samplerate_header
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map(Value::Int)
                .map_err(|_| EventError::BadSampleRate {
                    value: format!("{v:?} (X-Honeycomb-Samplerate)"),
                })
        })
        .transpose()?;
    with_envelope(decode_event(body, limits)?, time, rate)
}

/// `X-Honeycomb-Event-Time`: RFC 3339, or epoch seconds (possibly fractional).
fn header_time(v: &str) -> Value {
    let v = v.trim();
    if let Ok(i) = v.parse::<i64>() {
        return Value::Int(i);
    }
    if let Ok(f) = v.parse::<f64>() {
        return Value::Float(f);
    }
    Value::Str(v.to_owned())
}

fn json_scalar(v: serde_json::Value) -> Result<Value, EventError> {
    Ok(match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        other => {
            return Err(EventError::Json {
                message: format!("expected a scalar for time or samplerate, found {other}"),
            });
        }
    })
}

fn with_envelope(
    mut event: Event,
    time: Option<Value>,
    rate: Option<Value>,
) -> Result<Event, EventError> {
    if let Some(t) = time.filter(|t| !t.is_null()) {
        event.insert(TIMESTAMP, t);
    }
    if let Some(r) = rate.filter(|r| !r.is_null()) {
        event.insert(SAMPLE_RATE, r);
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    #[test]
    fn batch_elements_are_decoded_one_by_one() {
        let body = br#"[
            {"data": {"a": 1, "http": {"route": "/x"}}, "time": "2026-11-23T01:02:03Z", "samplerate": 5},
            {"data": {"b": 2}},
            {"time": "2026-11-23T01:02:03Z"},
            42,
            {"data": [1, 2]},
            {"data": {"c": 3}, "samplerate": {"nested": true}}
        ]"#;
        let out = decode_batch(body, &limits()).unwrap();
        assert_eq!(out.len(), 6);
        let first = out[0].as_ref().unwrap();
        assert_eq!(first.get("http.route"), Some(&Value::from("/x")));
        assert_eq!(first.get("sample_rate"), Some(&Value::Int(5)));
        assert_eq!(
            first.get("timestamp"),
            Some(&Value::from("2026-11-23T01:02:03Z"))
        );
        assert_eq!(out[1].as_ref().unwrap().get("sample_rate"), None);
        assert!(
            matches!(out[2], Err(EventError::NotAnObject { .. })),
            "{:?}",
            out[2]
        );
        assert!(
            matches!(out[3], Err(EventError::NotAnObject { .. })),
            "{:?}",
            out[3]
        );
        assert!(
            matches!(out[4], Err(EventError::NotAnObject { .. })),
            "{:?}",
            out[4]
        );
        assert!(
            matches!(out[5], Err(EventError::Json { .. })),
            "{:?}",
            out[5]
        );
    }

    #[test]
    fn the_envelope_wins_over_data() {
        let body = br#"[{"data": {"sample_rate": 2, "timestamp": "old"}, "samplerate": 10, "time": 1700000000}]"#;
        let e = decode_batch(body, &limits()).unwrap().remove(0).unwrap();
        assert_eq!(e.get("sample_rate"), Some(&Value::Int(10)));
        assert_eq!(e.get("timestamp"), Some(&Value::Int(1_700_000_000)));
    }

    #[test]
    fn whole_body_errors() {
        assert!(matches!(
            decode_batch(b"  ", &limits()),
            Err(BodyError::Empty)
        ));
        let e = decode_batch(br#"{"data": {}}"#, &limits()).unwrap_err();
        assert!(e.to_string().contains("JSON array"), "{e}");
        let small = Limits {
            max_events_per_request: 2,
            ..limits()
        };
        assert!(matches!(
            decode_batch(br#"[{"data":{}},{"data":{}},{"data":{}}]"#, &small),
            Err(BodyError::TooManyEvents { limit: 2 })
        ));
    }

    #[test]
    fn single_events_take_time_and_rate_from_headers() {
        let e = single_event(br#"{"a": 1}"#, &limits(), Some("1700000000.5"), Some("20")).unwrap();
        assert_eq!(e.get("timestamp"), Some(&Value::Float(1_700_000_000.5)));
        assert_eq!(e.get("sample_rate"), Some(&Value::Int(20)));
        let err = single_event(br#"{"a": 1}"#, &limits(), None, Some("often")).unwrap_err();
        assert!(err.to_string().contains("X-Honeycomb-Samplerate"), "{err}");
        assert!(single_event(b"[1]", &limits(), None, None).is_err());
    }

    #[test]
    fn dataset_slugs_are_case_insensitive() {
        assert_eq!(dataset_name("MyDataset"), "mydataset");
    }
}
