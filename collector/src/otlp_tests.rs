use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

use super::*;

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s(service)), kv("host.name", s("h1"))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "checkout-lib".into(),
                    version: "1.2".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

fn span() -> Span {
    Span {
        trace_id: vec![0xab; 16],
        span_id: vec![0x01; 8],
        parent_span_id: vec![0x02; 8],
        name: "GET /cart".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_763_870_706_789_000_000,
        end_time_unix_nano: 1_763_870_706_789_000_000 + 12_500_000,
        attributes: vec![
            kv("http.route", s("/cart")),
            kv("http.response.status_code", any_value::Value::IntValue(500)),
            kv("cache.hit", any_value::Value::BoolValue(false)),
            kv("ratio", any_value::Value::DoubleValue(0.25)),
            kv(
                "tags",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(s("a")),
                        },
                        AnyValue {
                            value: Some(any_value::Value::IntValue(2)),
                        },
                    ],
                }),
            ),
            kv(
                "ctx",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv("k", s("v"))],
                }),
            ),
            kv("host.name", s("h2")),
        ],
        status: Some(Status {
            message: "boom".into(),
            code: status::StatusCode::Error as i32,
        }),
        ..Default::default()
    }
}

fn one(out: ByDataset, dataset: &str) -> Event {
    let mut events = out
        .get(dataset)
        .unwrap_or_else(|| panic!("no {dataset} in {:?}", out.keys()))
        .clone();
    assert_eq!(events.len(), 1);
    events.remove(0).unwrap()
}

#[test]
fn a_protobuf_span_becomes_a_typed_wide_event() {
    let body = request("Checkout API", vec![span()]).encode_to_vec();
    let out = decode_traces(&body, OtlpFormat::Protobuf, None, &Limits::default()).unwrap();
    let e = one(out, "checkout_api");
    assert_eq!(e.get("name"), Some(&Value::from("GET /cart")));
    assert_eq!(e.get("service.name"), Some(&Value::from("Checkout API")));
    assert_eq!(
        e.get("host.name"),
        Some(&Value::from("h2")),
        "the span's attribute wins"
    );
    assert_eq!(e.get("otel.scope.name"), Some(&Value::from("checkout-lib")));
    assert_eq!(e.get("http.response.status_code"), Some(&Value::Int(500)));
    assert_eq!(e.get("cache.hit"), Some(&Value::Bool(false)));
    assert_eq!(e.get("ratio"), Some(&Value::Float(0.25)));
    assert_eq!(e.get("tags"), Some(&Value::from(r#"["a",2]"#)));
    assert_eq!(e.get("ctx"), Some(&Value::from(r#"{"k":"v"}"#)));
    assert_eq!(e.get("trace.trace_id"), Some(&Value::from("ab".repeat(16))));
    assert_eq!(e.get("trace.span_id"), Some(&Value::from("01".repeat(8))));
    assert_eq!(e.get("trace.parent_id"), Some(&Value::from("02".repeat(8))));
    assert_eq!(e.get("timestamp"), Some(&Value::Int(1_763_870_706_789_000)));
    assert_eq!(e.get("duration_ms"), Some(&Value::Float(12.5)));
    assert_eq!(e.get("span.kind"), Some(&Value::from("server")));
    assert_eq!(e.get("status.code"), Some(&Value::from("error")));
    assert_eq!(e.get("status.message"), Some(&Value::from("boom")));
    assert_eq!(e.get("error"), Some(&Value::Bool(true)));
    assert!(e.clone().validate(&Limits::default(), 0).is_ok());
}

#[test]
fn otlp_json_with_hex_ids_and_unknown_fields() {
    let body = br#"{"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "web"}}]},
        "futureField": 1,
        "scopeSpans": [{"scope": {"name": "s"}, "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "name": "op", "kind": 2, "startTimeUnixNano": "1763870706000000000",
            "endTimeUnixNano": "1763870706002000000",
            "attributes": [{"key": "n", "value": {"intValue": "42"}}],
            "traceState": "ot=th:c"
        }]}]
    }]}"#;
    let out = decode_traces(body, OtlpFormat::Json, None, &Limits::default()).unwrap();
    let e = one(out, "web");
    assert_eq!(
        e.get("trace.trace_id"),
        Some(&Value::from("5b8efff798038103d269b633813fc60c"))
    );
    assert_eq!(e.get("n"), Some(&Value::Int(42)));
    assert_eq!(e.get("duration_ms"), Some(&Value::Float(2.0)));
    assert_eq!(
        e.get("sample_rate"),
        Some(&Value::Float(4.0)),
        "th:c keeps 1 in 4"
    );
    assert_eq!(e.get("trace.parent_id"), None, "a root span has no parent");
}

#[test]
fn upstream_weights() {
    assert_eq!(threshold_rate("ot=th:8"), Some(2.0));
    assert_eq!(threshold_rate("vendor=x,ot=rv:abc;th:c"), Some(4.0));
    assert_eq!(threshold_rate("ot=th:0"), Some(1.0));
    assert_eq!(threshold_rate("ot=th:zz"), None);
    assert_eq!(threshold_rate("ot=th:"), None);
    assert_eq!(threshold_rate("other=th:8"), None);
    let mut sp = span();
    sp.attributes
        .push(kv("SampleRate", any_value::Value::IntValue(20)));
    let body = request("svc", vec![sp]).encode_to_vec();
    let e = one(
        decode_traces(&body, OtlpFormat::Protobuf, None, &Limits::default()).unwrap(),
        "svc",
    );
    assert_eq!(e.get("sample_rate"), Some(&Value::Int(20)));
    assert_eq!(e.get("SampleRate"), None);
}

#[test]
fn datasets_from_service_names_and_the_override() {
    let body = request("", vec![span()]).encode_to_vec();
    let out = decode_traces(&body, OtlpFormat::Protobuf, None, &Limits::default()).unwrap();
    assert!(out.contains_key("unknown_service"));
    let body = request("../../etc", vec![span()]).encode_to_vec();
    let out = decode_traces(&body, OtlpFormat::Protobuf, None, &Limits::default()).unwrap();
    // `../../etc` -> `______etc` -> `etc`: no path tricks, and no leading `_` (internal datasets).
    assert!(out.contains_key("etc"), "{:?}", out.keys());
    let out = decode_traces(
        &body,
        OtlpFormat::Protobuf,
        Some("mine"),
        &Limits::default(),
    )
    .unwrap();
    assert!(out.contains_key("mine"));
}

/// Found by the `otlp_json` fuzz target: a service name starting with `-` became a dataset
/// name the store refuses ("must start with a letter or a digit"), failing the whole request.
#[test]
fn service_names_starting_with_a_dash_make_valid_datasets() {
    for (service, dataset) in [("-api", "api"), ("_-_x", "x"), ("--", "unknown_service")] {
        let body = request(service, vec![span()]).encode_to_vec();
        let out = decode_traces(&body, OtlpFormat::Protobuf, None, &Limits::default()).unwrap();
        let names: Vec<_> = out.keys().cloned().collect();
        assert_eq!(names, [dataset], "{service:?}");
        loupe_store::DatasetName::new(dataset).unwrap();
    }
}

#[test]
fn garbage_and_too_many_spans_are_refused_whole() {
    let e = decode_traces(
        b"\xff\xff\xff",
        OtlpFormat::Protobuf,
        None,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("OTLP traces"), "{e}");
    let e = decode_traces(
        b"{\"resourceSpans\": 3}",
        OtlpFormat::Json,
        None,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("OTLP traces"), "{e}");
    let small = Limits {
        max_events_per_request: 1,
        ..Limits::default()
    };
    let body = request("svc", vec![span(), span()]).encode_to_vec();
    assert!(matches!(
        decode_traces(&body, OtlpFormat::Protobuf, None, &small),
        Err(BodyError::TooManyEvents { limit: 1 })
    ));
}

#[test]
fn log_records() {
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    let req = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![kv("service.name", s("billing"))],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_763_870_706_000_000_000,
                    severity_number: 17,
                    severity_text: "ERROR".into(),
                    body: Some(AnyValue {
                        value: Some(s("card declined")),
                    }),
                    attributes: vec![kv("order.id", s("o-1"))],
                    trace_id: vec![0xcd; 16],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let out = decode_logs(
        &req.encode_to_vec(),
        OtlpFormat::Protobuf,
        None,
        &Limits::default(),
    )
    .unwrap();
    let e = one(out, "billing");
    assert_eq!(e.get("name"), Some(&Value::from("log")));
    assert_eq!(e.get("body"), Some(&Value::from("card declined")));
    assert_eq!(e.get("error"), Some(&Value::Bool(true)));
    assert_eq!(e.get("severity_number"), Some(&Value::Int(17)));
    assert_eq!(e.get("order.id"), Some(&Value::from("o-1")));
    assert_eq!(e.get("timestamp"), Some(&Value::Int(1_763_870_706_000_000)));
}

#[test]
fn partial_success_answers() {
    let (bytes, ct) = traces_response(OtlpFormat::Protobuf, 2, "bad span");
    assert_eq!(ct, "application/x-protobuf");
    let resp =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            &bytes[..],
        )
        .unwrap();
    let ps = resp.partial_success.unwrap();
    assert_eq!(
        (ps.rejected_spans, ps.error_message.as_str()),
        (2, "bad span")
    );
    let (bytes, _) = traces_response(OtlpFormat::Json, 0, "");
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert!(v.get("partialSuccess").is_none_or(|p| p.is_null()), "{v}");
}
