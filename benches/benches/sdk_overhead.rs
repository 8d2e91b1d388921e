//! What instrumenting a request costs the request, under four `tracing` subscribers.
//!
//! One request ([`request`]): a root span `http.request` with 20 fields (strings, integers, a
//! float, bools, named as in the standard wide event), and inside it 10 child spans entered and
//! exited one after another (4 `db`, 3 `cache`, 2 `http.client`, 1 `render`) with 2 fields each:
//! 11 spans, 40 fields. The same function runs under each subscriber, in one criterion group, so
//! the times are ratios within one run:
//!
//! - `registry_only`: `tracing_subscriber::registry()` with no layer: the floor, what `tracing`'s
//!   own span bookkeeping costs before any layer runs (the next three are all layers on it).
//! - `loupe`: [`loupe_sdk::LoupeLayer`] with a [`loupe_sdk::WriterExporter`] into
//!   `io::sink()`: the request is folded into one wide event and serialised to JSON on the
//!   request's thread, the whole cost.
//! - `loupe_fold_only`: the same layer with an exporter that drops the event: the cost on the
//!   request's thread when export happens elsewhere (the `HttpExporter` only `try_send`s into a
//!   bounded queue).
//! - `fmt_json`: tracing-subscriber's JSON formatter writing one line per closed span
//!   (`FmtSpan::CLOSE`, default options: each line also carries the enclosing spans' fields).
//! - `otel`: tracing-opentelemetry over an OpenTelemetry SDK tracer provider with a batch span
//!   processor whose exporter counts and discards. Only the request's thread is timed; building
//!   each span's `SpanData` happens there, queueing it is a `try_send`, and the export (here:
//!   dropping the batch) happens on the processor's own thread, which needs a core of its own
//!   to keep up. After the run the bench prints how many spans reached the exporter: a span
//!   that finds the queue (2048, the default) full is lost, and freed on the request's thread.
//!   With glibc's malloc the processor's thread frees what the request's thread allocated and
//!   the two contend on the allocator's lock (futex wake-ups on the request's thread), so
//!   `otel` varies more from run to run than the others.
//!
//! Before the timed group, `in_flight_memory` prints, per subscriber, the bytes allocated minus
//! deallocated from just before the root span is created to the point where all children have
//! closed and the root is still open: what the subscriber holds for one in-flight request. It is
//! measured with `stats_alloc`, the global allocator of this bench binary, so it counts every
//! thread; for `otel` the processor is flushed before each request so its thread is idle during
//! the window, and the number includes the 10 closed children's `SpanData` waiting in its queue
//! (a second `otel` figure flushes inside the window too). The counting allocator adds a few
//! atomic increments to every allocation in the timed runs as well, for every subscriber. It
//! also prints the allocations of a whole request and the JSON bytes `loupe` and `fmt_json`
//! write per request (`fmt_json` repeats the root's fields on every line).
//!
//! Every subscriber runs with its defaults: for `otel` that includes code location, thread and
//! busy/idle time attributes on each span, for `fmt_json` timestamps and busy/idle times.
//!
//! Run with `cargo bench -p loupe-bench --bench sdk_overhead`.

use std::alloc::System;
use std::hint::black_box;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Dispatch, Subscriber, info_span};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const ROOT_FIELDS: usize = 20;
const CHILD_SPANS: usize = 10;
const FIELDS_PER_CHILD: usize = 2;
const FIELDS: usize = ROOT_FIELDS + CHILD_SPANS * FIELDS_PER_CHILD;
/// Requests measured for the in-flight memory figures, after as many again to warm up.
const MEMORY_REQUESTS: u64 = 1000;

const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const ROUTES: [&str; 5] = [
    "/api/v1/cart",
    "/api/v1/checkout",
    "/api/v1/users/{id}",
    "/api/v1/search",
    "/healthz",
];
const USERS: [&str; 3] = ["u-000193", "u-482211", "u-090017"];
const CUSTOMERS: [&str; 2] = ["c-0042", "c-1877"];
const FINGERPRINTS: [&str; 3] = [
    "SELECT * FROM carts WHERE user_id = ?",
    "UPDATE inventory SET qty = qty - ? WHERE sku = ?",
    "INSERT INTO orders (id, customer_id, total) VALUES (?, ?, ?)",
];

/// One request, `mid` called inside the root after its last child has closed.
fn request_with(i: u64, mid: impl FnOnce()) {
    let n = i as usize;
    let root = info_span!(
        "http.request",
        http.method = METHODS[n % METHODS.len()],
        http.route = ROUTES[n % ROUTES.len()],
        http.status_code = 200_i64,
        http.request_content_length = 512_i64,
        http.response_content_length = 1000 + (i % 4096) as i64,
        http.user_agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
        client.ip = "10.24.7.193",
        user.id = USERS[n % USERS.len()],
        user.plan = "pro",
        customer.id = CUSTOMERS[n % CUSTOMERS.len()],
        region = "eu-west-1",
        availability_zone = "eu-west-1b",
        host.name = "ip-10-24-7-12",
        k8s.pod.name = "checkout-7d9f8b6c4-x2lqp",
        build.id = "b-2291",
        feature.new_checkout = i.is_multiple_of(3),
        feature.dark_mode = false,
        payload.items = (i % 50) as i64,
        queue.wait_ms = (i % 100) as f64 * 0.37,
        retry.count = 0_i64,
    );
    let _in_root = root.enter();
    for q in 0..4 {
        let _db = info_span!(
            "db",
            db.system = "postgresql",
            statement_fingerprint = FINGERPRINTS[(n + q) % FINGERPRINTS.len()],
        )
        .entered();
    }
    for q in 0..3 {
        let _cache =
            info_span!("cache", hit = !(i + q).is_multiple_of(5), ttl_s = 300_i64).entered();
    }
    for q in 0..2 {
        let _client = info_span!(
            "http.client",
            peer.service = "inventory",
            status_code = if q == 0 { 200_i64 } else { 204 },
        )
        .entered();
    }
    {
        let _render = info_span!(
            "render",
            template = "cart.html",
            bytes = 8000 + (i % 512) as i64
        )
        .entered();
    }
    mid();
}

/// The request every variant runs.
fn request(i: u64) {
    request_with(i, || {});
}

/// Drops each wide event: loupe's request-path cost with export elsewhere.
struct DropEvent;

impl loupe_sdk::Exporter for DropEvent {
    fn export(&self, event: loupe_sdk::WideEvent) {
        drop(black_box(event));
    }
}

/// Counts the spans of each batch and discards them, on the batch processor's thread.
#[derive(Debug, Clone, Default)]
struct DiscardSpans {
    spans: Arc<AtomicU64>,
}

impl SpanExporter for DiscardSpans {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

fn otel_provider(exporter: DiscardSpans) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
        .build()
}

/// No layer at all: the span bookkeeping every layered subscriber pays before its layers run.
fn registry_only() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry())
}

fn loupe() -> Dispatch {
    loupe_into(io::sink())
}

fn loupe_into(out: impl io::Write + Send + 'static) -> Dispatch {
    let exporter = loupe_sdk::WriterExporter::new(out);
    Dispatch::new(
        tracing_subscriber::registry()
            .with(loupe_sdk::LoupeLayer::builder("bench").build(exporter)),
    )
}

fn loupe_fold_only() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry()
            .with(loupe_sdk::LoupeLayer::builder("bench").build(DropEvent)),
    )
}

fn fmt_json() -> Dispatch {
    fmt_json_into(io::sink)
}

fn fmt_json_into(make_writer: impl for<'w> MakeWriter<'w> + Send + Sync + 'static) -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_span_events(FmtSpan::CLOSE)
                .with_writer(make_writer),
        ),
    )
}

/// A sink that counts the bytes it is given.
#[derive(Clone, Default)]
struct CountingSink(Arc<AtomicU64>);

impl io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// JSON bytes per request of the two variants that write JSON on the request's thread.
fn json_bytes_per_request() -> String {
    let per_request = |sink: CountingSink, dispatch: Dispatch| {
        tracing::dispatcher::with_default(&dispatch, || (0..MEMORY_REQUESTS).for_each(request));
        sink.0.load(Ordering::Relaxed) as f64 / MEMORY_REQUESTS as f64
    };
    let sink = CountingSink::default();
    let loupe = per_request(sink.clone(), loupe_into(sink));
    let sink = CountingSink::default();
    let fmt = {
        let make = sink.clone();
        per_request(sink, fmt_json_into(move || make.clone()))
    };
    format!("loupe={loupe:.1}, fmt_json={fmt:.1}")
}

fn otel(provider: &SdkTracerProvider) -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
    )
}

/// Counts spans and recorded fields, to check the request is what the labels say.
#[derive(Clone, Default)]
struct Census {
    spans: Arc<AtomicU64>,
    fields: Arc<AtomicU64>,
}

struct CountFields(u64);

impl Visit for CountFields {
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {
        self.0 += 1;
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Census {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let mut count = CountFields(0);
        attrs.record(&mut count);
        self.spans.fetch_add(1, Ordering::Relaxed);
        self.fields.fetch_add(count.0, Ordering::Relaxed);
    }
}

fn check_request_shape() {
    let census = Census::default();
    let subscriber = tracing_subscriber::registry().with(census.clone());
    tracing::subscriber::with_default(subscriber, || request(1));
    let spans = census.spans.load(Ordering::Relaxed);
    let fields = census.fields.load(Ordering::Relaxed);
    assert_eq!(
        (spans, fields),
        ((1 + CHILD_SPANS) as u64, FIELDS as u64),
        "request() no longer matches the bench's labels"
    );
}

/// Under `dispatch`, over [`MEMORY_REQUESTS`] after as many to warm up: the median bytes
/// allocated minus deallocated from just before the root span is created to just after its last
/// child closed, and the mean allocations of the whole request. `between` runs after each request,
/// outside both; `flush_in_window`, if any, inside the window just before it is read.
fn in_flight(
    dispatch: &Dispatch,
    between: &dyn Fn(),
    flush_in_window: Option<&dyn Fn()>,
) -> (f64, f64) {
    tracing::dispatcher::with_default(dispatch, || {
        for i in 0..MEMORY_REQUESTS {
            request(i);
            between();
        }
        // Per request, then the median: a one-off (a slab page, a lazily built table) lands in
        // one request's window and would skew a mean.
        let mut held: Vec<i64> = Vec::with_capacity(MEMORY_REQUESTS as usize);
        let mut allocations: u64 = 0;
        for i in 0..MEMORY_REQUESTS {
            let whole = Region::new(GLOBAL);
            let window = Region::new(GLOBAL);
            request_with(i, || {
                if let Some(flush) = flush_in_window {
                    flush();
                }
                let c = window.change();
                held.push(c.bytes_allocated as i64 - c.bytes_deallocated as i64);
            });
            allocations += whole.change().allocations as u64;
            between();
        }
        held.sort_unstable();
        (
            held[held.len() / 2] as f64,
            allocations as f64 / MEMORY_REQUESTS as f64,
        )
    })
}

fn in_flight_memory(_: &mut Criterion) {
    check_request_shape();
    let nothing = || {};
    let mut held = Vec::new();
    let mut allocs = Vec::new();
    for (name, dispatch) in [
        ("loupe", loupe()),
        ("registry_only", registry_only()),
        ("loupe_fold_only", loupe_fold_only()),
        ("fmt_json", fmt_json()),
    ] {
        let (h, a) = in_flight(&dispatch, &nothing, None);
        held.push(format!("{name}={h:.1}"));
        allocs.push(format!("{name}={a:.1}"));
    }
    let provider = otel_provider(DiscardSpans::default());
    let flush = || provider.force_flush().expect("flush");
    let dispatch = otel(&provider);
    let (h, a) = in_flight(&dispatch, &flush, None);
    held.push(format!("otel={h:.1}"));
    allocs.push(format!("otel={a:.1}"));
    let (h, _) = in_flight(&dispatch, &flush, Some(&flush));
    held.push(format!("otel_children_exported={h:.1}"));
    drop(dispatch);
    provider.shutdown().expect("shutdown");
    println!(
        "in-flight bytes per request (median of {MEMORY_REQUESTS} requests, root open, {CHILD_SPANS} children closed): {}",
        held.join(", ")
    );
    println!(
        "allocations per request ({MEMORY_REQUESTS} requests, whole request, every thread): {}",
        allocs.join(", ")
    );
    println!(
        "JSON bytes written per request: {}",
        json_bytes_per_request()
    );
}

fn sdk_overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("request_{}spans_{FIELDS}fields", 1 + CHILD_SPANS));
    group
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    let mut bench = |name: &str, dispatch: &Dispatch| -> u64 {
        let mut i = 0;
        tracing::dispatcher::with_default(dispatch, || {
            group.bench_function(name, |b| {
                b.iter(|| {
                    i += 1;
                    request(black_box(i));
                });
            });
        });
        i
    };
    bench("registry_only", &registry_only());
    bench("loupe", &loupe());
    bench("loupe_fold_only", &loupe_fold_only());
    bench("fmt_json", &fmt_json());

    let exporter = DiscardSpans::default();
    let provider = otel_provider(exporter.clone());
    let requests = bench("otel", &otel(&provider));
    provider.force_flush().expect("flush");
    let exported = exporter.spans.load(Ordering::Relaxed);
    let produced = requests * (1 + CHILD_SPANS) as u64;
    println!(
        "otel: {exported} of {produced} spans reached the exporter, {} dropped by the full queue",
        produced - exported
    );
    provider.shutdown().expect("shutdown");
    group.finish();
}

criterion_group!(benches, in_flight_memory, sdk_overhead);
criterion_main!(benches);
