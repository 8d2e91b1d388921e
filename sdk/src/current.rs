//! Reaching the current unit of work from anywhere in a request: add a field, read or continue
//! its trace context.
//!
//! These find the layer's state through the span's dispatcher, which must be a
//! `tracing_subscriber::Registry` with the [`LoupeLayer`](crate::LoupeLayer) on it (the usual
//! `tracing_subscriber::registry().with(...)`). Without one they do nothing.

use std::borrow::Cow;

use loupe_event::Value;
use tracing::Span;
use tracing_subscriber::Registry;
use tracing_subscriber::registry::LookupSpan;

use crate::context::TraceContext;
use crate::layer::{SpanState, lock, tracked};

/// Runs `f` on the state of the nearest tracked span at or above `span`.
fn with_state<R>(span: &Span, f: impl FnOnce(&SpanState) -> R) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = tracked(registry.span(id)?)?;
        let ext = data.extensions();
        ext.get::<SpanState>().map(f)
    })
    .flatten()
}

/// Adds a field to the wide event of the current unit of work, from anywhere inside it (any
/// depth of child spans, any thread the request's spans are entered on). The name is kept as
/// given, not namespaced. Returns whether there was a unit of work to add it to.
///
/// ```
/// loupe_sdk::add_field("user.plan", "pro");
/// loupe_sdk::add_field("cart.items", 3);
/// ```
pub fn add_field(name: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> bool {
    let (name, value) = (name.into(), value.into());
    with_state(&Span::current(), move |s| lock(&s.fold).push(name, value)).is_some()
}

/// [`add_field`] for many fields at once, under one lookup and one lock: for code that has a
/// record at hand (a replayed or imported event, a struct flattened into fields).
pub fn add_fields<N, V>(fields: impl IntoIterator<Item = (N, V)>) -> bool
where
    N: Into<Cow<'static, str>>,
    V: Into<Value>,
{
    with_state(&Span::current(), move |s| {
        let mut fold = lock(&s.fold);
        for (n, v) in fields {
            fold.push(n.into(), v.into());
        }
    })
    .is_some()
}

/// The trace context an outgoing request should carry: this trace, and as parent the span whose
/// event the callee's event should point at. `None` outside a unit of work.
pub fn current_trace_context() -> Option<TraceContext> {
    trace_context_of(&Span::current())
}

/// [`current_trace_context`] for a given span.
pub fn trace_context_of(span: &Span) -> Option<TraceContext> {
    with_state(span, |s| {
        let fold = lock(&s.fold);
        TraceContext {
            trace_id: fold.trace_id,
            parent_id: s.export_id,
            sampled: fold.keep,
            tracestate: fold.tracestate.clone(),
        }
    })
}

/// Makes `span` (a root span, just created) continue the caller's trace: its event gets the
/// caller's trace id and `trace.parent_id` = the caller's span. Call it before entering the span.
/// Returns whether it applied (`false` when `span` is not a root span of the loupe layer).
pub fn continue_trace(span: &Span, ctx: &TraceContext) -> bool {
    with_state(span, |s| {
        if s.is_root() {
            lock(&s.fold).continue_trace(ctx);
        }
        s.is_root()
    })
    .unwrap_or(false)
}

/// Writes `traceparent` (and `tracestate`) for the current unit of work into outgoing headers.
/// Returns whether there was a trace to write.
pub fn inject_trace_context(headers: &mut http::HeaderMap) -> bool {
    let Some(ctx) = current_trace_context() else {
        return false;
    };
    insert_context(headers, &ctx);
    true
}

pub(crate) fn insert_context(headers: &mut http::HeaderMap, ctx: &TraceContext) {
    if let Ok(v) = http::HeaderValue::from_str(&ctx.traceparent()) {
        headers.insert(crate::context::TRACEPARENT, v);
    }
    if let Some(v) = ctx
        .tracestate
        .as_deref()
        .and_then(|s| http::HeaderValue::from_str(s).ok())
    {
        headers.insert(crate::context::TRACESTATE, v);
    }
}

/// Reads a trace context from incoming headers; `None` if absent or invalid.
pub fn extract_trace_context(headers: &http::HeaderMap) -> Option<TraceContext> {
    let tp = headers.get(crate::context::TRACEPARENT)?.to_str().ok()?;
    let ts = headers
        .get(crate::context::TRACESTATE)
        .and_then(|v| v.to_str().ok());
    TraceContext::parse(tp, ts)
}
