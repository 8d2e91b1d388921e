//! The OTLP/HTTP door on a real `loupe serve`, fed by the OpenTelemetry SDK's own OTLP exporter
//! (protobuf and JSON), for traces and logs.

use opentelemetry::KeyValue;
use opentelemetry::logs::{AnyValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity};
use opentelemetry::trace::{Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::{LogExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;

use crate::support::{ServerProcess, poll_sql, temp_data_dir};

const FAST_FLUSH: &str = "[collector]\nflush_interval_ms = 50\n";
const KEY: &str = "otlp-key-0123456789";

fn auth() -> std::collections::HashMap<String, String> {
    [("authorization".to_owned(), format!("Bearer {KEY}"))].into()
}

/// A root span with a child, the child failing, exported with `protocol` as `service`.
fn send_trace(base: &str, service: &'static str, protocol: Protocol) {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{base}/v1/traces"))
        .with_headers(auth())
        .build()
        .unwrap();
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build())
        .with_simple_exporter(exporter)
        .build();
    let tracer = provider.tracer("loupe-e2e");
    tracer.in_span("checkout", |cx| {
        let span = cx.span();
        span.set_attribute(KeyValue::new("cart.items", 3_i64));
        span.set_attribute(KeyValue::new("user.plan", "pro"));
        tracer.in_span("charge card", |cx| {
            let child = cx.span();
            child.set_attribute(KeyValue::new("amount", 12.5));
            child.set_status(Status::error("card declined"));
        });
    });
    provider.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otel_sdk_exports_traces_in_protobuf_and_json() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start_with(&data, Some(FAST_FLUSH), &["--api-key", KEY]);
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || {
        send_trace(&base, "Checkout", Protocol::HttpBinary);
        send_trace(&base, "otel-json", Protocol::HttpJson);
    })
    .await
    .unwrap();

    for dataset in ["checkout", "otel-json"] {
        let rows = poll_sql(
            &server,
            &format!(
                "SELECT name, \"trace.trace_id\" AS t, \"trace.span_id\" AS s, \"trace.parent_id\" AS p, \
                 \"cart.items\" AS items, \"user.plan\" AS plan, amount, error, \"status.message\" AS why, \
                 \"span.kind\" AS kind, \"service.name\" AS service, duration_ms \
                 FROM \"{dataset}\" ORDER BY name"
            ),
            |rows| rows.len() == 2,
        )
        .await;
        let (child, root) = (&rows[0], &rows[1]);
        assert_eq!(
            (root["name"].as_str(), child["name"].as_str()),
            (Some("checkout"), Some("charge card"))
        );
        assert_eq!(root["t"], child["t"], "{dataset}: one trace");
        assert_eq!(
            child["p"], root["s"],
            "{dataset}: the child's parent is the root"
        );
        assert!(root["p"].is_null());
        assert_eq!(root["items"], 3, "{dataset}: ints stay ints");
        assert_eq!(root["plan"], "pro");
        assert_eq!(child["amount"], 12.5);
        assert_eq!(child["error"], true);
        assert_eq!(child["why"], "card declined");
        assert!(root["error"].is_null());
        assert_eq!(root["kind"], "internal");
        assert!(root["duration_ms"].as_f64().unwrap() >= child["duration_ms"].as_f64().unwrap());
        assert!(
            root["service"]
                .as_str()
                .unwrap()
                .eq_ignore_ascii_case(dataset)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otel_sdk_exports_logs() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start_with(&data, Some(FAST_FLUSH), &["--api-key", KEY]);
    let base = server.base.clone();
    tokio::task::spawn_blocking(move || {
        let exporter = LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{base}/v1/logs"))
            .with_headers(auth())
            .build()
            .unwrap();
        let provider = SdkLoggerProvider::builder()
            .with_resource(Resource::builder().with_service_name("billing").build())
            .with_simple_exporter(exporter)
            .build();
        let logger = provider.logger("loupe-e2e");
        for (severity, text) in [
            (Severity::Info, "invoice sent"),
            (Severity::Error, "card declined"),
        ] {
            let mut record = logger.create_log_record();
            record.set_severity_number(severity);
            record.set_severity_text(severity.name());
            record.set_body(AnyValue::from(text));
            record.add_attribute("invoice.id", "inv-7");
            logger.emit(record);
        }
        provider.shutdown().unwrap();
    })
    .await
    .unwrap();
    let rows = poll_sql(
        &server,
        "SELECT body, severity_number AS sev, error, \"invoice.id\" AS inv FROM billing ORDER BY sev",
        |rows| rows.len() == 2,
    )
    .await;
    assert_eq!(rows[0]["body"], "invoice sent");
    assert!(rows[0]["error"].is_null());
    assert_eq!(rows[1]["body"], "card declined");
    assert_eq!(rows[1]["error"], true);
    assert_eq!(rows[1]["sev"], 17);
    assert_eq!(rows[1]["inv"], Value::from("inv-7"));
}
