//! The OTLP checks, shared by the protobuf and the JSON target: every body is decoded both as
//! an `ExportTraceServiceRequest` and as an `ExportLogsServiceRequest`.
//!
//! Checks: `decode_traces`/`decode_logs` succeed exactly when the message itself decodes (and is
//! within `max_events_per_request`); they yield one event per span or log record, each an event
//! (an OTLP record is never refused while decoding); every dataset they pick is a valid
//! [`DatasetName`] (the collector would otherwise refuse the whole request), or the override
//! when one is given; every event that validates keeps the invariants of [`crate::validate`];
//! the partial-success response reads back with the count and reason it was given.

use loupe_collector::otlp::{
    ByDataset, OtlpFormat, decode_logs, decode_traces, logs_response, traces_response,
};
use loupe_event::fields::{NAME, TRACE_ID};
use loupe_event::{BodyError, Limits, Value};
use loupe_store::DatasetName;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use crate::{small_limits, validate};

const OVERRIDE: &str = "fuzz-override";

/// Runs every OTLP check on `body` in `format`.
pub fn check(body: &[u8], format: OtlpFormat) {
    let traces = reference::<ExportTraceServiceRequest>(body, format).map(|r| {
        let spans = r.resource_spans.iter().flat_map(|rs| &rs.scope_spans);
        let records = spans.map(|ss| ss.spans.len()).sum();
        (r.resource_spans.len(), records)
    });
    let logs = reference::<ExportLogsServiceRequest>(body, format).map(|r| {
        let scopes = r.resource_logs.iter().flat_map(|rl| &rl.scope_logs);
        let records = scopes.map(|sl| sl.log_records.len()).sum();
        (r.resource_logs.len(), records)
    });
    for limits in [Limits::default(), small_limits()] {
        for dataset in [None, Some(OVERRIDE)] {
            let r = decode_traces(body, format, dataset, &limits);
            let (rejected, reason) = by_dataset(r, traces, dataset, &limits, "span");
            traces_round_trip(format, rejected, &reason);
            let r = decode_logs(body, format, dataset, &limits);
            let (rejected, reason) = by_dataset(r, logs, dataset, &limits, "log");
            logs_round_trip(format, rejected, &reason);
        }
    }
}

/// The message as the OTLP types decode it, independently of the collector.
fn reference<M>(body: &[u8], format: OtlpFormat) -> Option<M>
where
    M: Message + Default + serde::de::DeserializeOwned,
{
    match format {
        OtlpFormat::Protobuf => M::decode(body).ok(),
        OtlpFormat::Json => serde_json::from_slice(body).ok(),
    }
}

/// Checks a decoded request against its reference `(resources, records)` and validates every
/// event. Returns the number rejected and the first reason, as the collector would answer.
fn by_dataset(
    r: Result<ByDataset, BodyError>,
    reference: Option<(usize, usize)>,
    dataset: Option<&str>,
    limits: &Limits,
    kind: &str,
) -> (u64, String) {
    let by = match (r, reference) {
        (Err(BodyError::TooManyEvents { limit }), Some((_, records))) => {
            assert!(records > limit, "{records} {kind}s refused as over {limit}");
            return (0, String::new());
        }
        (Err(e), Some(_)) => panic!("the message decodes but the collector refused it: {e}"),
        (Err(_), None) => return (0, String::new()),
        (Ok(_), None) => panic!("the collector decoded a message the OTLP types refuse"),
        (Ok(by), Some((resources, records))) => {
            assert!(records <= limits.max_events_per_request);
            assert_eq!(by.values().map(Vec::len).sum::<usize>(), records);
            assert!(by.len() <= resources);
            by
        }
    };
    let mut rejected = 0;
    let mut reason = String::new();
    for (name, events) in by {
        match dataset {
            Some(d) => assert_eq!(name, d),
            None => {
                if let Err(e) = DatasetName::new(&name) {
                    panic!("dataset {name:?} chosen for a resource is refused: {e}");
                }
            }
        }
        for r in events {
            let e = r.unwrap_or_else(|e| panic!("a {kind} refused while decoding: {e}"));
            assert!(matches!(e.get(NAME), Some(Value::Str(_))), "{e:?}");
            if kind == "span" {
                assert!(matches!(e.get(TRACE_ID), Some(Value::Str(_))), "{e:?}");
            }
            match e.clone().validate(limits, crate::NOW_US) {
                Ok(_) => {
                    validate(e, limits);
                }
                Err(e) => {
                    if reason.is_empty() {
                        reason = format!("{name}: {e}");
                    }
                    rejected += 1;
                }
            }
        }
    }
    (rejected, reason)
}

fn traces_round_trip(format: OtlpFormat, rejected: u64, reason: &str) {
    let (bytes, content_type) = traces_response(format, rejected, reason);
    let resp: ExportTraceServiceResponse = decode_response(&bytes, format, content_type);
    match resp.partial_success {
        None => assert_eq!(rejected, 0),
        Some(p) => {
            assert_eq!(u64::try_from(p.rejected_spans).ok(), Some(rejected));
            assert_eq!(p.error_message, reason);
        }
    }
}

fn logs_round_trip(format: OtlpFormat, rejected: u64, reason: &str) {
    let (bytes, content_type) = logs_response(format, rejected, reason);
    let resp: ExportLogsServiceResponse = decode_response(&bytes, format, content_type);
    match resp.partial_success {
        None => assert_eq!(rejected, 0),
        Some(p) => {
            assert_eq!(u64::try_from(p.rejected_log_records).ok(), Some(rejected));
            assert_eq!(p.error_message, reason);
        }
    }
}

fn decode_response<M>(bytes: &[u8], format: OtlpFormat, content_type: &str) -> M
where
    M: Message + Default + serde::de::DeserializeOwned,
{
    assert_eq!(
        OtlpFormat::from_content_type(Some(content_type)),
        Some(format)
    );
    match format {
        OtlpFormat::Protobuf => M::decode(bytes).expect("our protobuf response reads back"),
        OtlpFormat::Json => serde_json::from_slice(bytes).expect("our JSON response reads back"),
    }
}
