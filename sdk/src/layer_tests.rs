//! Tests of the layer's folding rules, trace context and head sampling, through `tracing` as a
//! service would use it.

use std::sync::{Arc, Mutex};

use loupe_event::Value;
use tracing_subscriber::prelude::*;

use crate::{
    Exporter, LoupeLayer, LoupeLayerBuilder, TraceContext, WideEvent, WriterExporter, add_field,
    add_fields, continue_trace, current_trace_context,
};

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<WideEvent>>>);

impl Exporter for Collect {
    fn export(&self, event: WideEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collect {
    fn take(&self) -> Vec<WideEvent> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// Runs `f` under a subscriber with a loupe layer built from `builder`; returns the events.
fn run(builder: LoupeLayerBuilder, f: impl FnOnce()) -> Vec<WideEvent> {
    let out = Collect::default();
    let subscriber = tracing_subscriber::registry().with(builder.build(out.clone()));
    tracing::subscriber::with_default(subscriber, f);
    out.take()
}

fn svc() -> LoupeLayerBuilder {
    LoupeLayer::builder("checkout")
}

fn s(v: &str) -> Value {
    Value::from(v)
}

fn str_of<'a>(e: &'a WideEvent, name: &str) -> &'a str {
    e.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{name} missing or not a string in {:?}", e.to_event()))
}

fn f64_of(e: &WideEvent, name: &str) -> f64 {
    e.get(name)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{name} missing or not a number"))
}

#[test]
fn a_root_span_becomes_one_event_with_the_filled_in_fields() {
    let events = run(svc(), || {
        let _root = tracing::info_span!("http.request", http.route = "/cart", items = 3).entered();
    });
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.get("name"), Some(&s("http.request")));
    assert_eq!(e.get("service.name"), Some(&s("checkout")));
    assert_eq!(e.get("http.route"), Some(&s("/cart")));
    assert_eq!(e.get("items"), Some(&Value::Int(3)));
    assert_eq!(str_of(e, "trace.trace_id").len(), 32);
    assert_eq!(str_of(e, "trace.span_id").len(), 16);
    assert_eq!(e.get("trace.parent_id"), None);
    assert_eq!(e.get("sample_rate"), None);
    assert!(f64_of(e, "duration_ms") >= 0.0);
    let ts = loupe_event::time::parse_timestamp(e.get("timestamp").unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    assert!(
        (now - ts).abs() < 60_000_000,
        "timestamp {ts} is not now ({now})"
    );
}

#[test]
fn child_spans_are_namespaced_timed_and_counted() {
    let events = run(svc(), || {
        let _root = tracing::info_span!("http.request").entered();
        for i in 0..3 {
            let _db = tracing::info_span!(
                "db",
                statement = "SELECT 1",
                db.system = "postgresql",
                rows = i
            )
            .entered();
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _cache = tracing::info_span!("cache", hit = true).entered();
    });
    assert_eq!(events.len(), 1, "child spans are not events of their own");
    let e = &events[0];
    assert_eq!(e.get("db.statement"), Some(&s("SELECT 1")));
    assert_eq!(
        e.get("db.system"),
        Some(&s("postgresql")),
        "a name already under the span's prefix is kept"
    );
    assert_eq!(
        e.get("db.rows"),
        Some(&Value::Int(2)),
        "the later value wins"
    );
    assert_eq!(e.get("db.count"), Some(&Value::Int(3)));
    assert_eq!(e.get("cache.hit"), Some(&Value::Bool(true)));
    assert_eq!(e.get("cache.count"), Some(&Value::Int(1)));
    let db_ms = f64_of(e, "db.duration_ms");
    assert!(db_ms >= 6.0, "three 2 ms spans summed, got {db_ms}");
    assert!(db_ms <= f64_of(e, "duration_ms"));
    assert_eq!(e.get("statement"), None);
}

#[test]
fn events_fold_in_and_errors_keep_their_first_message() {
    let events = run(svc(), || {
        let _root = tracing::info_span!("http.request").entered();
        tracing::info!(cart.total = 1250, "priced the cart");
        {
            let _pay = tracing::info_span!("payment").entered();
            tracing::warn!(attempt = 2, "retrying");
            tracing::error!(code = 502, "card processor unavailable");
        }
        tracing::error!("gave up");
    });
    let e = &events[0];
    assert_eq!(e.get("cart.total"), Some(&Value::Int(1250)));
    assert_eq!(
        e.get("payment.attempt"),
        Some(&Value::Int(2)),
        "event fields namespaced by their span"
    );
    assert_eq!(e.get("payment.code"), Some(&Value::Int(502)));
    assert_eq!(e.get("error"), Some(&Value::Bool(true)));
    assert_eq!(
        e.get("error.message"),
        Some(&s("card processor unavailable"))
    );
    assert_eq!(
        e.get("message"),
        None,
        "messages of non-error events are not kept"
    );
}

#[test]
fn a_field_named_error_sets_error() {
    #[derive(Debug)]
    struct Boom;
    impl std::fmt::Display for Boom {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("connection reset")
        }
    }
    impl std::error::Error for Boom {}

    let events = run(svc(), || {
        {
            let _root = tracing::info_span!("job.run").entered();
            let err = Boom;
            tracing::warn!(
                error = &err as &(dyn std::error::Error + 'static),
                "will retry"
            );
        }
        {
            let _root = tracing::info_span!("job.run", error = false).entered();
        }
        {
            let _root = tracing::info_span!("job.run").entered();
            tracing::info!("fine");
        }
    });
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].get("error"), Some(&Value::Bool(true)));
    assert_eq!(events[0].get("error.message"), Some(&s("connection reset")));
    assert_eq!(events[1].get("error"), Some(&Value::Bool(false)));
    assert_eq!(events[2].get("error"), None);
}

#[test]
fn add_field_reaches_the_root_from_any_depth_and_wins_over_filled_in_values() {
    let mut outside = true;
    let events = run(svc(), || {
        outside = add_field("not.in.a.request", 1);
        let _root = tracing::info_span!("http.request", user.plan = "free").entered();
        let _a = tracing::info_span!("a").entered();
        let _b = tracing::info_span!("b").entered();
        assert!(add_field("user.plan", "pro"));
        assert!(add_field("timestamp", "2026-01-02T03:04:05Z"));
        assert!(add_fields([
            ("a.x", Value::Int(1)),
            ("a.y", Value::from("z"))
        ]));
    });
    assert!(
        !outside,
        "add_field outside a unit of work reports that it did nothing"
    );
    let e = &events[0];
    assert_eq!(
        e.get("user.plan"),
        Some(&s("pro")),
        "not namespaced, and later wins"
    );
    assert_eq!(e.get("timestamp"), Some(&s("2026-01-02T03:04:05Z")));
    assert_eq!(e.get("not.in.a.request"), None);
    assert_eq!(e.get("a.x"), Some(&Value::Int(1)));
    assert_eq!(e.get("a.y"), Some(&s("z")));
}

#[test]
fn spans_entered_on_other_threads_fold_into_their_root() {
    let events = run(svc(), || {
        let root = tracing::info_span!("http.request");
        let _r = root.enter();
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let child = tracing::info_span!("worker", shard = 7);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                tracing::dispatcher::with_default(&dispatch, || {
                    let _c = child.enter();
                    add_field("from.thread", true);
                    tracing::info!(done = true);
                });
            });
        });
        drop(child);
    });
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.get("worker.shard"), Some(&Value::Int(7)));
    assert_eq!(e.get("worker.done"), Some(&Value::Bool(true)));
    assert_eq!(e.get("from.thread"), Some(&Value::Bool(true)));
    assert_eq!(e.get("worker.count"), Some(&Value::Int(1)));
}

#[test]
fn each_root_is_its_own_trace() {
    let events = run(svc(), || {
        for _ in 0..3 {
            let _root = tracing::info_span!("job.run").entered();
        }
    });
    assert_eq!(events.len(), 3);
    let ids: std::collections::HashSet<_> = events
        .iter()
        .map(|e| str_of(e, "trace.trace_id").to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
}

#[test]
fn a_continued_trace_keeps_the_callers_ids_and_propagates_the_root() {
    let caller = TraceContext::parse(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        Some("vendor=x"),
    )
    .unwrap();
    let mut outgoing = None;
    let events = run(svc(), || {
        let root = tracing::info_span!("http.request");
        assert!(continue_trace(&root, &caller));
        let _r = root.enter();
        let _c = tracing::info_span!("http.client").entered();
        outgoing = current_trace_context();
    });
    let e = &events[0];
    assert_eq!(
        str_of(e, "trace.trace_id"),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(str_of(e, "trace.parent_id"), "00f067aa0ba902b7");
    assert_eq!(str_of(e, "trace.tracestate"), "vendor=x");
    let out = outgoing.unwrap();
    assert_eq!(out.trace_id, caller.trace_id);
    // Only the root becomes an event, so the callee must point at the root.
    assert_eq!(out.parent_id.to_string(), str_of(e, "trace.span_id"));
    assert_eq!(out.tracestate.as_deref(), Some("vendor=x"));
    assert!(out.sampled);
}

#[test]
fn span_events_export_children_linked_to_their_parents() {
    let mut outgoing = None;
    let events = run(svc().span_events(true), || {
        let _root = tracing::info_span!("http.request").entered();
        let _db = tracing::info_span!("db", statement = "SELECT 1").entered();
        outgoing = current_trace_context();
    });
    assert_eq!(events.len(), 2);
    let (child, root) = (&events[0], &events[1]);
    assert_eq!(child.get("name"), Some(&s("db")));
    assert_eq!(
        child.get("statement"),
        Some(&s("SELECT 1")),
        "own fields un-namespaced"
    );
    assert_eq!(
        str_of(child, "trace.parent_id"),
        str_of(root, "trace.span_id")
    );
    assert_eq!(
        str_of(child, "trace.trace_id"),
        str_of(root, "trace.trace_id")
    );
    assert_eq!(
        root.get("db.statement"),
        Some(&s("SELECT 1")),
        "the root is still folded"
    );
    assert_eq!(
        outgoing.unwrap().parent_id.to_string(),
        str_of(child, "trace.span_id"),
        "with span events the callee points at the current span"
    );
}

#[test]
fn head_sampling_keeps_whole_traces_by_the_consistent_decision() {
    let rate = 4.0;
    let n = 4000;
    let mut continued_kept = 0;
    let events = run(svc().head_sample_rate(rate), || {
        for i in 0..n {
            let root = tracing::info_span!("http.request", i = i);
            // Half the traces come from a caller, to check the decision follows the new id.
            if i % 2 == 0 {
                let ctx = TraceContext {
                    trace_id: crate::TraceId::from_u128(0x1000 + i as u128).unwrap(),
                    parent_id: crate::SpanId::from_u64(1).unwrap(),
                    sampled: true,
                    tracestate: None,
                };
                continue_trace(&root, &ctx);
                if loupe_sampling::consistent::keep(ctx.trace_id.to_string().as_bytes(), rate) {
                    continued_kept += 1;
                }
            }
            let _r = root.enter();
            let _c = tracing::info_span!("db").entered();
        }
    });
    for e in &events {
        assert_eq!(e.get("sample_rate"), Some(&Value::Float(rate)));
        assert!(loupe_sampling::consistent::keep(
            str_of(e, "trace.trace_id").as_bytes(),
            rate
        ));
        assert_eq!(
            e.get("db.count"),
            Some(&Value::Int(1)),
            "children of kept traces fold in"
        );
    }
    let continued = events
        .iter()
        .filter(|e| e.get("trace.parent_id").is_some())
        .count();
    assert_eq!(
        continued, continued_kept,
        "exactly the continued traces the decision keeps"
    );
    let expected = n as f64 / rate;
    let sd = (expected * (1.0 - 1.0 / rate)).sqrt();
    assert!(
        (events.len() as f64 - expected).abs() < 5.0 * sd,
        "kept {} of {n} at rate {rate}",
        events.len()
    );
}

#[test]
fn a_root_closes_after_its_last_child() {
    let events = run(svc(), || {
        let root = tracing::info_span!("http.request");
        let late = root.in_scope(|| tracing::info_span!("late"));
        drop(root);
        late.in_scope(|| tracing::info!(after = true));
        drop(late);
    });
    // The root closes only when its last child closes (the registry keeps a parent open while a
    // child holds it), so the late child is still folded in: nothing is lost, nothing panics.
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].get("late.after"), Some(&Value::Bool(true)));
}

#[test]
fn the_writer_exporter_writes_one_json_line_per_event() {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let subscriber = tracing_subscriber::registry()
        .with(LoupeLayer::builder("svc").build(WriterExporter::new(buf.clone())));
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..2 {
            let _r = tracing::info_span!("job.run", i = i, note = "a \"quoted\"\nline").entered();
        }
    });
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    for (i, line) in lines.iter().enumerate() {
        let event = loupe_event::json::decode_event(
            line.as_bytes(),
            &loupe_event::limits::Limits::default(),
        )
        .expect("each line is a valid event");
        assert_eq!(event.get("i"), Some(&Value::Int(i as i64)));
        assert_eq!(event.get("note"), Some(&s("a \"quoted\"\nline")));
    }
}
