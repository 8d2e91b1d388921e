//! loupe SDK: one wide event per unit of work, from `tracing`.
//!
//! A service registers [`LoupeLayer`] on its `tracing` subscriber and, for HTTP, adds
//! [`ServerLayer`] to its router and [`TracePropagation`] to its HTTP client. From then on each
//! request (each root span) produces exactly one wide event, with everything the request learned
//! folded in, sent to the collector off the request path.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! let (exporter, _guard) = loupe_sdk::HttpExporter::builder("http://127.0.0.1:4318", "api")
//!     .service("checkout")
//!     .build()
//!     .expect("exporter");
//! tracing_subscriber::registry()
//!     .with(loupe_sdk::LoupeLayer::builder("checkout").build(exporter))
//!     .init();
//!
//! let request = tracing::info_span!("job.run", job.kind = "invoice");
//! let _in = request.enter();
//! loupe_sdk::add_field("customer.id", "c-42");
//! {
//!     let _db = tracing::info_span!("db", statement = "SELECT 1").entered();
//! }
//! // Closing `request` sends one event: name=job.run, job.kind, customer.id, db.statement,
//! // db.duration_ms, db.count, timestamp, duration_ms, service.name, trace.*.
//! ```
//!
//! # How a unit of work is folded into one event
//!
//! A *root span* is a span with no parent span tracked by the layer: it is the unit of work. When
//! it closes, one event is exported:
//!
//! | field | from |
//! |---|---|
//! | `timestamp` | when the root span was created |
//! | `duration_ms` | root span creation to close, wall time, float ms |
//! | `name` | the root span's name (`http.request`, `job.run`) |
//! | `service.name` | [`LoupeLayer::builder`]'s argument |
//! | `trace.trace_id`, `trace.span_id` | new, or the caller's trace (W3C `traceparent`) |
//! | `trace.parent_id` | the caller's span, absent for the first service of a trace |
//! | `sample_rate` | the head-sampling rate, when one is set |
//! | root span fields | kept as named |
//! | child span fields | namespaced by the span's name: `statement` on span `db` is `db.statement`; a name that already starts with `db.` is kept |
//! | `<span>.duration_ms`, `<span>.count` | summed wall time and number of the child spans of that name |
//! | event fields | namespaced like the span the event is in (none in the root) |
//! | [`add_field`] | kept as named, from anywhere in the request |
//! | `error`, `error.message` | a field named `error` (a bool as given; an error or text sets `true` and becomes the message); an event at level `ERROR` sets `true` and its message becomes `error.message`; the first message is kept |
//!
//! Of two values for one name the later recorded wins, and anything the application records
//! wins over what the SDK fills in (a replayed or imported event can set its own `timestamp`).
//! Messages of events below `ERROR` are not kept: a wide event is not a log. Events outside any
//! root span are ignored.
//!
//! A root span closes when it and every span below it have closed (the registry keeps a parent
//! open while a child holds it): work spawned into a child span of the request, say a background
//! task with `.instrument(...)`, delays the request's event until it ends, and is folded in.
//! Give detached background work its own root span (`tracing::info_span!(parent: None, ...)`).
//!
//! # Exporting
//!
//! [`HttpExporter`] queues events (bounded; a full queue drops and counts, it never blocks the
//! request), batches them on its own thread, compresses, and sends them to the collector's
//! `/v1/events/{dataset}` with retries. Its [`ExporterGuard`] delivers what is queued when
//! dropped, within a deadline. [`WriterExporter`] writes NDJSON synchronously, for local use.

mod client;
mod context;
mod current;
mod export;
mod fold;
mod ids;
mod layer;
#[cfg(test)]
mod layer_tests;
mod names;
mod server;
mod wide_event;

pub use client::TracePropagation;
pub use context::{TRACEPARENT, TRACESTATE, TraceContext};
pub use current::{
    add_field, add_fields, continue_trace, current_trace_context, extract_trace_context,
    inject_trace_context, trace_context_of,
};
pub use export::{DROPPED_COUNT_FIELD, DROPPED_EVENT_NAME, ExporterError};
pub use export::{
    ExportStats, Exporter, ExporterGuard, HttpExporter, HttpExporterBuilder, WriterExporter,
};
pub use ids::{SpanId, TraceId};
pub use layer::{LoupeLayer, LoupeLayerBuilder};
/// Field values, re-exported so callers of [`add_field`] need not depend on loupe-event.
pub use loupe_event::Value;
pub use server::{ResponseFuture, ServerLayer, ServerService};
pub use wide_event::{FieldName, WideEvent};
