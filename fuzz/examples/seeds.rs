//! Writes the binary seeds (OTLP protobuf, its JSON twin, compressed bodies) under `seeds/`.
//! The JSON seeds of the native and Honeycomb targets are written by hand.
//!
//! ```text
//! cd fuzz && CARGO_TARGET_DIR=/tmp/loupe-seeds cargo run --example seeds
//! ```

use std::io::Write;
use std::path::Path;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value::Value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span::Event as SpanEvent,
};
use prost::Message;

fn main() -> std::io::Result<()> {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (name, req) in traces() {
        write(
            &seeds.join("otlp_proto").join(format!("{name}.pb")),
            &req.encode_to_vec(),
        )?;
        let json = serde_json::to_vec(&req).expect("OTLP/JSON");
        write(&seeds.join("otlp_json").join(format!("{name}.json")), &json)?;
    }
    for (name, req) in logs() {
        write(
            &seeds.join("otlp_proto").join(format!("{name}.pb")),
            &req.encode_to_vec(),
        )?;
        let json = serde_json::to_vec(&req).expect("OTLP/JSON");
        write(&seeds.join("otlp_json").join(format!("{name}.json")), &json)?;
    }
    let body = b"{\"a\":1,\"http\":{\"route\":\"/cart\"}}\n{\"b\":\"two\"}\n";
    let dir = seeds.join("decompress");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body)?;
    let gz = gz.finish()?;
    write(&dir.join("ndjson.gz"), &gz)?;
    // Two gzip members: a client that appends, and `MultiGzDecoder` reads both.
    write(&dir.join("two_members.gz"), &[gz.clone(), gz].concat())?;
    write(&dir.join("ndjson.zst"), &zstd::encode_all(&body[..], 3)?)?;
    // A bomb in miniature: 4 KiB of zeros in a few bytes.
    write(
        &dir.join("zeros.zst"),
        &zstd::encode_all(&[0u8; 4096][..], 19)?,
    )?;
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(path.parent().expect("a seed directory"))?;
    std::fs::write(path, bytes)
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", s(service)), kv("host.name", s("h1"))],
        ..Default::default()
    })
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "checkout-lib".into(),
        version: "1.2".into(),
        ..Default::default()
    })
}

fn span(name: &str) -> Span {
    Span {
        trace_id: vec![0xab; 16],
        span_id: vec![0x01; 8],
        parent_span_id: vec![0x02; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: 1_763_870_706_789_000_000,
        end_time_unix_nano: 1_763_870_706_801_500_000,
        attributes: vec![
            kv("http.route", s("/cart")),
            kv("http.response.status_code", Value::IntValue(500)),
            kv("ratio", Value::DoubleValue(0.25)),
            kv("cache.hit", Value::BoolValue(false)),
            kv("blob", Value::BytesValue(vec![0, 0xff])),
            kv(
                "tags",
                Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(s("a")),
                        },
                        AnyValue { value: None },
                    ],
                }),
            ),
            kv(
                "kv",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("n", Value::IntValue(1))],
                }),
            ),
        ],
        status: Some(Status {
            message: "boom".into(),
            code: 2,
        }),
        events: vec![SpanEvent {
            name: "exception".into(),
            attributes: vec![kv("exception.type", s("Timeout"))],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn traces() -> Vec<(&'static str, ExportTraceServiceRequest)> {
    let sampled = Span {
        trace_state: "ot=th:c;rv:abcdef,vendor=x".into(),
        attributes: vec![kv("SampleRate", Value::IntValue(20))],
        ..span("sampled")
    };
    let odd = Span {
        // A root span with no ids, end before start, an unknown kind and status.
        kind: 9,
        status: Some(Status {
            message: String::new(),
            code: 7,
        }),
        attributes: vec![
            kv("", s("empty key")),
            kv("timestamp", s("not a time")),
            kv("sample_rate", Value::DoubleValue(0.5)),
        ],
        start_time_unix_nano: u64::MAX,
        ..Default::default()
    };
    vec![
        (
            "traces_one_span",
            ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: resource("checkout"),
                    scope_spans: vec![ScopeSpans {
                        scope: scope(),
                        spans: vec![span("GET /cart")],
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            },
        ),
        (
            "traces_two_services",
            ExportTraceServiceRequest {
                resource_spans: vec![
                    ResourceSpans {
                        resource: resource("Checkout Service"),
                        scope_spans: vec![ScopeSpans {
                            scope: None,
                            spans: vec![sampled, odd],
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    },
                    ResourceSpans {
                        resource: resource("_-internal"),
                        scope_spans: vec![ScopeSpans::default()],
                        schema_url: String::new(),
                    },
                    ResourceSpans::default(),
                ],
            },
        ),
    ]
}

fn logs() -> Vec<(&'static str, ExportLogsServiceRequest)> {
    let record = LogRecord {
        time_unix_nano: 1_763_870_706_789_000_000,
        severity_number: 17,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(s("payment failed")),
        }),
        attributes: vec![kv("order.id", Value::IntValue(42))],
        trace_id: vec![0xab; 16],
        span_id: vec![0x01; 8],
        ..Default::default()
    };
    let observed = LogRecord {
        observed_time_unix_nano: 1_763_870_706_000_000_000,
        event_name: "cart.add".into(),
        body: Some(AnyValue {
            value: Some(Value::KvlistValue(KeyValueList {
                values: vec![kv("item", s("sku-1"))],
            })),
        }),
        attributes: vec![kv("sample_rate", Value::IntValue(4))],
        ..Default::default()
    };
    vec![(
        "logs_two_records",
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource("checkout"),
                scope_logs: vec![ScopeLogs {
                    scope: scope(),
                    log_records: vec![record, observed, LogRecord::default()],
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        },
    )]
}
