//! The Honeycomb event API: `honeycomb::decode_batch` (`POST /1/batch/{dataset}`) and
//! `honeycomb::single_event` (`POST /1/events/{dataset}`), each event validated as the collector
//! does.
//!
//! Checks: a batch that decodes has one result per element of the JSON array, within
//! `max_events_per_request`, and a body that is a JSON array always decodes (under the limit);
//! an element's non-null numeric `samplerate` is the event's `sample_rate` (the envelope wins);
//! a single event without headers is exactly `decode_event` of the body, and a
//! `X-Honeycomb-Samplerate` that parses as an integer is its `sample_rate`; every event that
//! validates keeps the invariants of `loupe_fuzz::validate`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use loupe_collector::honeycomb::{decode_batch, single_event};
use loupe_event::{BodyError, Limits, Value, decode_event};
use loupe_fuzz::{accept, small_limits};
use serde_json::value::RawValue;

/// Header values to pair with a body: `(X-Honeycomb-Event-Time, X-Honeycomb-Samplerate)`.
const HEADERS: [(Option<&str>, Option<&str>); 6] = [
    (Some("1700000000"), Some("10")),
    (Some("1700000000.25"), Some(" 3 ")),
    (Some("2026-11-23T01:02:03Z"), Some("0")),
    (Some("yesterday"), Some("-2")),
    (Some(""), Some("9223372036854775808")),
    (None, Some("1.5")),
];

fuzz_target!(|body: &[u8]| {
    for limits in [Limits::default(), small_limits()] {
        batch(body, &limits);
        single(body, &limits);
    }
});

fn batch(body: &[u8], limits: &Limits) {
    // The array as raw elements: numbers are only checked for syntax here (serde_json refuses
    // `1e400` as a value), so such an element is refused alone, not the whole batch.
    let elements = serde_json::from_slice::<Vec<&RawValue>>(body).ok();
    let results = match decode_batch(body, limits) {
        Ok(results) => results,
        Err(BodyError::TooManyEvents { limit }) => {
            let n = elements
                .expect("too many events in an array that is not one")
                .len();
            assert!(n > limit);
            return;
        }
        Err(e) => {
            assert!(elements.is_none(), "a JSON array refused whole: {e}");
            return;
        }
    };
    let elements = elements.expect("decoded a batch that is not a JSON array");
    assert_eq!(results.len(), elements.len());
    assert!(results.len() <= limits.max_events_per_request);
    for (r, element) in results.into_iter().zip(elements) {
        // (An unknown envelope field may hold a number serde_json cannot hold as a value.)
        let element = serde_json::from_str::<serde_json::Value>(element.get()).ok();
        let rate = element.as_ref().and_then(|e| e.get("samplerate")?.as_f64());
        if let (Ok(e), Some(rate)) = (&r, rate) {
            let got = e.get("sample_rate").and_then(Value::as_f64);
            assert_eq!(got, Some(rate), "{element:?}");
        }
        accept(r, limits);
    }
}

fn single(body: &[u8], limits: &Limits) {
    let bare = single_event(body, limits, None, None);
    assert_eq!(bare, decode_event(body, limits));
    accept(bare, limits);

    let (time, rate) = HEADERS[body.len() % HEADERS.len()];
    let r = single_event(body, limits, time, rate);
    let header_rate = rate.and_then(|r| r.trim().parse::<i64>().ok());
    match (&r, header_rate) {
        (Ok(e), Some(h)) => assert_eq!(e.get("sample_rate"), Some(&Value::Int(h))),
        (Ok(_), None) => assert!(rate.is_none(), "{rate:?} was taken as a sample rate"),
        (Err(_), _) => {}
    }
    accept(r, limits);
}
