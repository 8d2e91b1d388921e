//! OTLP/HTTP (<https://opentelemetry.io/docs/specs/otlp/>): `POST /v1/traces` and `POST /v1/logs`,
//! protobuf (`application/x-protobuf`) or JSON (`application/json`) bodies.
//!
//! Each span or log record becomes one wide event:
//! - resource attributes, then scope attributes, then the record's own attributes, flattened in
//!   under their (already dotted) keys; a later level wins over an earlier one. Typed values stay
//!   typed (string, bool, int, double); arrays and key-value lists are kept as JSON text, bytes as
//!   lowercase hex;
//! - the scope as `otel.scope.name` / `otel.scope.version`;
//! - spans: `name`, `timestamp` (start), `duration_ms`, `trace.trace_id`, `trace.span_id`,
//!   `trace.parent_id`, `trace.tracestate`, `span.kind`, `status.code`, `status.message`,
//!   `error = true` when the status is ERROR, `span.event_count`, `span.link_count`, and the
//!   attributes of the first `exception` event (`exception.type`, `exception.message`, ...);
//! - log records: `name` (the event name, or `log`), `timestamp` (the record's time, else when it
//!   was observed), `severity_text`, `severity_number`, `body`, trace ids when present, `error =
//!   true` at severity ERROR (17) and above.
//!
//! The dataset is the resource's `service.name`, lowercased with characters a dataset name cannot
//! hold replaced by `_` (`unknown_service` when absent); an `X-Loupe-Dataset` header overrides it
//! for the whole request.
//!
//! Upstream sampling is honoured in `sample_rate`: an attribute `SampleRate` or `sample_rate`
//! (Honeycomb's and Refinery's convention), else the OpenTelemetry threshold `th` in the span's
//! `tracestate` (`ot=th:...`; weight 2^56 / (2^56 - T), from the OpenTelemetry specification
//! "TraceState: Probability Sampling").
//!
//! Unknown fields are ignored, in protobuf and in JSON alike: the OTLP specification requires
//! receivers to ignore them, so that newer senders keep working.

use std::collections::BTreeMap;

use loupe_event::fields as reserved;
use loupe_event::{BodyError, Event, EventError, Limits, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use prost::Message;

/// Header naming the dataset of an OTLP request, instead of each resource's `service.name`.
pub const DATASET_HEADER: &str = "x-loupe-dataset";

/// The OTLP body encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpFormat {
    Protobuf,
    Json,
}

impl OtlpFormat {
    /// From `Content-Type`; OTLP/HTTP defines exactly these two.
    pub fn from_content_type(value: Option<&str>) -> Option<Self> {
        let mime = value?.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(OtlpFormat::Protobuf),
            "application/json" => Some(OtlpFormat::Json),
            _ => None,
        }
    }
}

/// Events of one request, grouped by dataset, each decoded or refused on its own.
pub type ByDataset = BTreeMap<String, Vec<Result<Event, EventError>>>;

fn body_error(what: &str, e: impl std::fmt::Display) -> BodyError {
    BodyError::Json {
        message: format!("not a valid OTLP {what} request: {e}"),
    }
}

/// Decodes `POST /v1/traces`.
pub fn decode_traces(
    body: &[u8],
    format: OtlpFormat,
    dataset_override: Option<&str>,
    limits: &Limits,
) -> Result<ByDataset, BodyError> {
    let req: ExportTraceServiceRequest = decode(body, format, "traces")?;
    let resources = req
        .resource_spans
        .iter()
        .map(|rs| {
            let scopes = rs.scope_spans.iter();
            let scopes = scopes
                .map(|ss| (ss.scope.as_ref(), &ss.spans[..]))
                .collect();
            (attributes(rs.resource.as_ref()), scopes)
        })
        .collect();
    group(resources, dataset_override, limits, span_event)
}

/// Decodes `POST /v1/logs`.
pub fn decode_logs(
    body: &[u8],
    format: OtlpFormat,
    dataset_override: Option<&str>,
    limits: &Limits,
) -> Result<ByDataset, BodyError> {
    let req: ExportLogsServiceRequest = decode(body, format, "logs")?;
    let resources = req
        .resource_logs
        .iter()
        .map(|rl| {
            let scopes = rl.scope_logs.iter();
            let scopes = scopes
                .map(|sl| (sl.scope.as_ref(), &sl.log_records[..]))
                .collect();
            (attributes(rl.resource.as_ref()), scopes)
        })
        .collect();
    group(resources, dataset_override, limits, log_event)
}

fn decode<R>(body: &[u8], format: OtlpFormat, what: &str) -> Result<R, BodyError>
where
    R: Message + Default + serde::de::DeserializeOwned,
{
    match format {
        OtlpFormat::Protobuf => R::decode(body).map_err(|e| body_error(what, e)),
        OtlpFormat::Json => serde_json::from_slice(body).map_err(|e| body_error(what, e)),
    }
}

fn attributes(resource: Option<&Resource>) -> &[KeyValue] {
    resource.map_or(&[], |r| &r.attributes[..])
}

/// A request's records by resource, then by scope.
type Resources<'a, T> = Vec<(
    &'a [KeyValue],
    Vec<(Option<&'a InstrumentationScope>, &'a [T])>,
)>;

/// Makes one record an event, given its resource's and scope's attributes.
type ToEvent<T> = fn(&[KeyValue], Option<&InstrumentationScope>, &T) -> Result<Event, EventError>;

/// Turns every record into an event, grouped by the dataset of its resource, once the request
/// is known to be within the event limit.
fn group<T>(
    resources: Resources<'_, T>,
    dataset_override: Option<&str>,
    limits: &Limits,
    to_event: ToEvent<T>,
) -> Result<ByDataset, BodyError> {
    let count: usize = resources
        .iter()
        .flat_map(|(_, scopes)| scopes)
        .map(|(_, records)| records.len())
        .sum();
    check_count(count, limits)?;
    let mut out = ByDataset::new();
    for (resource, scopes) in resources {
        let events = out
            .entry(dataset_for(dataset_override, resource))
            .or_default();
        for (scope, records) in scopes {
            events.extend(records.iter().map(|r| to_event(resource, scope, r)));
        }
    }
    Ok(out)
}

fn check_count(count: usize, limits: &Limits) -> Result<(), BodyError> {
    if count > limits.max_events_per_request {
        return Err(BodyError::TooManyEvents {
            limit: limits.max_events_per_request,
        });
    }
    Ok(())
}

/// The dataset of a resource: the override, else its `service.name` made a valid name.
fn dataset_for(dataset_override: Option<&str>, resource: &[KeyValue]) -> String {
    if let Some(d) = dataset_override {
        return d.to_owned();
    }
    let service = resource
        .iter()
        .find(|kv| kv.key == reserved::SERVICE_NAME)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
        .unwrap_or("");
    let name: String = service
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '_') => c,
            _ => '_',
        })
        .take(64)
        .collect();
    // A dataset name starts with a letter or a digit (a leading `_` marks loupe's internal
    // datasets), so `-api` and `../etc` lose what comes before their first one.
    match name.trim_start_matches(['_', '-']) {
        "" => "unknown_service".to_owned(),
        name => name.to_owned(),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn value_of(v: &AnyValue) -> Value {
    match &v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::Str(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::Float(*d),
        Some(any_value::Value::BytesValue(b)) => Value::Str(hex(b)),
        Some(other) => Value::Str(json_of(other).to_string()),
    }
}

/// Arrays and key-value lists as JSON, nested values typed.
fn json_of(v: &any_value::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        any_value::Value::StringValue(s) => J::from(s.as_str()),
        any_value::Value::BoolValue(b) => J::from(*b),
        any_value::Value::IntValue(i) => J::from(*i),
        any_value::Value::DoubleValue(d) => J::from(*d),
        any_value::Value::BytesValue(b) => J::from(hex(b)),
        any_value::Value::ArrayValue(a) => J::Array(
            a.values
                .iter()
                .map(|x| x.value.as_ref().map_or(J::Null, json_of))
                .collect(),
        ),
        any_value::Value::KvlistValue(kv) => J::Object(
            kv.values
                .iter()
                .map(|x| {
                    let v = x.value.as_ref().and_then(|v| v.value.as_ref());
                    (x.key.clone(), v.map_or(J::Null, json_of))
                })
                .collect(),
        ),
        #[allow(unreachable_patterns)] // profiles' string_value_strindex and later additions
        _ => J::Null,
    }
}

fn put_attributes(event: &mut Event, attributes: &[KeyValue]) {
    for kv in attributes {
        let v = kv.value.as_ref().map_or(Value::Null, value_of);
        event.insert(kv.key.clone(), v);
    }
}

/// Resource, then scope: what every record of a scope shares.
fn base_event(resource: &[KeyValue], scope: Option<&InstrumentationScope>) -> Event {
    let mut event = Event::new();
    put_attributes(&mut event, resource);
    if let Some(scope) = scope {
        put_attributes(&mut event, &scope.attributes);
        if !scope.name.is_empty() {
            event.insert("otel.scope.name", scope.name.as_str());
        }
        if !scope.version.is_empty() {
            event.insert("otel.scope.version", scope.version.as_str());
        }
    }
    event
}

fn micros(nanos: u64) -> Value {
    Value::Int(i64::try_from(nanos / 1000).unwrap_or(i64::MAX))
}

/// The weight an upstream sampler recorded: an explicit attribute, else OpenTelemetry's `th`.
fn upstream_rate(event: &Event, tracestate: &str) -> Option<Value> {
    for name in ["SampleRate", reserved::SAMPLE_RATE] {
        if let Some(v) = event.get(name)
            && v.as_f64().is_some()
        {
            return Some(v.clone());
        }
    }
    threshold_rate(tracestate).map(Value::Float)
}

/// `ot=th:<hex>` in a W3C tracestate: a rejection threshold T of up to 14 hex digits (56 bits),
/// written without trailing zeros; the adjusted count (weight) is 2^56 / (2^56 - T).
fn threshold_rate(tracestate: &str) -> Option<f64> {
    let ot = tracestate
        .split(',')
        .map(str::trim)
        .find_map(|m| m.strip_prefix("ot="))?;
    let th = ot.split(';').find_map(|kv| kv.strip_prefix("th:"))?;
    if th.is_empty() || th.len() > 14 || !th.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let padded = format!("{th:0<14}");
    let t = u64::from_str_radix(&padded, 16).ok()?;
    let max = (1u64 << 56) as f64;
    (t < 1u64 << 56).then(|| max / (max - t as f64))
}

fn span_event(
    resource: &[KeyValue],
    scope: Option<&InstrumentationScope>,
    s: &Span,
) -> Result<Event, EventError> {
    let mut e = base_event(resource, scope);
    put_attributes(&mut e, &s.attributes);
    if let Some(ex) = s.events.iter().find(|ev| ev.name == "exception") {
        put_attributes(&mut e, &ex.attributes);
    }
    if let Some(rate) = upstream_rate(&e, &s.trace_state) {
        e.insert(reserved::SAMPLE_RATE, rate);
    }
    e.remove("SampleRate");
    e.insert(reserved::NAME, s.name.as_str());
    e.insert(reserved::TIMESTAMP, micros(s.start_time_unix_nano));
    let ms = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) as f64 / 1e6;
    e.insert(reserved::DURATION_MS, Value::Float(ms));
    e.insert(reserved::TRACE_ID, hex(&s.trace_id));
    e.insert(reserved::SPAN_ID, hex(&s.span_id));
    if !s.parent_span_id.is_empty() {
        e.insert(reserved::PARENT_ID, hex(&s.parent_span_id));
    }
    if !s.trace_state.is_empty() {
        e.insert("trace.tracestate", s.trace_state.as_str());
    }
    let kind = span::SpanKind::try_from(s.kind).map_or("unknown", |k| k.as_str_name());
    e.insert(
        "span.kind",
        kind.trim_start_matches("SPAN_KIND_").to_ascii_lowercase(),
    );
    let code = s
        .status
        .as_ref()
        .and_then(|st| status::StatusCode::try_from(st.code).ok())
        .unwrap_or(status::StatusCode::Unset);
    e.insert(
        "status.code",
        code.as_str_name()
            .trim_start_matches("STATUS_CODE_")
            .to_ascii_lowercase(),
    );
    if let Some(st) = s.status.as_ref().filter(|st| !st.message.is_empty()) {
        e.insert("status.message", st.message.as_str());
    }
    if code == status::StatusCode::Error {
        e.insert(reserved::ERROR, true);
    }
    e.insert("span.event_count", Value::from(s.events.len() as u64));
    e.insert("span.link_count", Value::from(s.links.len() as u64));
    Ok(e)
}

fn log_event(
    resource: &[KeyValue],
    scope: Option<&InstrumentationScope>,
    r: &LogRecord,
) -> Result<Event, EventError> {
    let mut e = base_event(resource, scope);
    put_attributes(&mut e, &r.attributes);
    if let Some(rate) = upstream_rate(&e, "") {
        e.insert(reserved::SAMPLE_RATE, rate);
    }
    e.remove("SampleRate");
    let name = if r.event_name.is_empty() {
        "log"
    } else {
        r.event_name.as_str()
    };
    e.insert(reserved::NAME, name);
    let t = if r.time_unix_nano != 0 {
        r.time_unix_nano
    } else {
        r.observed_time_unix_nano
    };
    if t != 0 {
        e.insert(reserved::TIMESTAMP, micros(t));
    }
    if !r.severity_text.is_empty() {
        e.insert("severity_text", r.severity_text.as_str());
    }
    if r.severity_number != 0 {
        e.insert("severity_number", Value::Int(i64::from(r.severity_number)));
    }
    if let Some(body) = &r.body {
        e.insert("body", value_of(body));
    }
    if !r.trace_id.is_empty() {
        e.insert(reserved::TRACE_ID, hex(&r.trace_id));
    }
    if !r.span_id.is_empty() {
        e.insert(reserved::SPAN_ID, hex(&r.span_id));
    }
    // SEVERITY_NUMBER_ERROR is 17 (ERROR through FATAL4 above it).
    if r.severity_number >= 17 {
        e.insert(reserved::ERROR, true);
    }
    Ok(e)
}

/// A successful answer in the request's encoding, with OTLP's partial success when some records
/// were refused (`rejected`, and the first reason).
pub fn traces_response(format: OtlpFormat, rejected: u64, reason: &str) -> (Vec<u8>, &'static str) {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTracePartialSuccess, ExportTraceServiceResponse,
    };
    let resp = ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: reason.to_owned(),
        }),
    };
    encode(format, &resp)
}

/// [`traces_response`] for logs.
pub fn logs_response(format: OtlpFormat, rejected: u64, reason: &str) -> (Vec<u8>, &'static str) {
    use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceResponse,
    };
    let resp = ExportLogsServiceResponse {
        partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: reason.to_owned(),
        }),
    };
    encode(format, &resp)
}

fn encode<M: Message + serde::Serialize>(format: OtlpFormat, m: &M) -> (Vec<u8>, &'static str) {
    match format {
        OtlpFormat::Protobuf => (m.encode_to_vec(), "application/x-protobuf"),
        OtlpFormat::Json => (
            serde_json::to_vec(m).unwrap_or_else(|_| b"{}".to_vec()),
            "application/json",
        ),
    }
}

#[cfg(test)]
#[path = "otlp_tests.rs"]
mod tests;
