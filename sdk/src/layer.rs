//! [`LoupeLayer`]: the `tracing-subscriber` layer that turns each root span into one wide event.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use loupe_event::Value;
use loupe_event::fields as reserved;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::export::Exporter;
use crate::fold::{Fold, Recorder};
use crate::ids::{SpanId, TraceId};
use crate::names::dotted;
use crate::wide_event::{FieldName, WideEvent};

/// Turns the root span of each unit of work into one wide event, folding in what its child
/// spans and events recorded (the rules are in the crate docs), and hands it to an exporter.
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
/// let (exporter, _guard) = loupe_sdk::HttpExporter::builder("http://127.0.0.1:4318", "api")
///     .build()
///     .unwrap();
/// tracing_subscriber::registry()
///     .with(loupe_sdk::LoupeLayer::builder("checkout").build(exporter))
///     .init();
/// ```
#[derive(Clone)]
pub struct LoupeLayer {
    config: Arc<LayerConfig>,
}

struct LayerConfig {
    service: String,
    exporter: Arc<dyn Exporter>,
    head_sample_rate: f64,
    span_events: bool,
}

/// Options of a [`LoupeLayer`].
pub struct LoupeLayerBuilder {
    service: String,
    head_sample_rate: f64,
    span_events: bool,
}

impl LoupeLayer {
    /// `service` becomes every event's `service.name`.
    pub fn builder(service: impl Into<String>) -> LoupeLayerBuilder {
        LoupeLayerBuilder {
            service: service.into(),
            head_sample_rate: 1.0,
            span_events: false,
        }
    }
}

impl LoupeLayerBuilder {
    /// Keeps 1 in `rate` traces (fractional rates allowed) and records `sample_rate = rate` on
    /// what it keeps. The decision is the consistent one of `loupe-sampling`: a function of the
    /// trace id, so services at the same rate keep the same traces whole. A rate at or below 1
    /// keeps everything (the default). The caller's `sampled` flag is not consulted: each service
    /// decides from the trace id alone, and writes its decision into the flag it passes on. So a
    /// trace kept at rate 10 by the first service and at rate 10 by the second stands for 10
    /// traces at both, not 100: consistent decisions nest instead of multiplying.
    pub fn head_sample_rate(mut self, rate: f64) -> Self {
        self.head_sample_rate = if rate.is_finite() { rate.max(1.0) } else { 1.0 };
        self
    }

    /// Also emit every child span as its own event (for trace views), besides the wide event
    /// of its root. Child span events carry the span's own fields un-namespaced, `name` = the
    /// span's name, and `trace.parent_id` = the enclosing span; outgoing `traceparent` headers
    /// then name the current span rather than the root.
    pub fn span_events(mut self, on: bool) -> Self {
        self.span_events = on;
        self
    }

    pub fn build(self, exporter: impl Exporter) -> LoupeLayer {
        LoupeLayer {
            config: Arc::new(LayerConfig {
                service: self.service,
                exporter: Arc::new(exporter),
                head_sample_rate: self.head_sample_rate,
                span_events: self.span_events,
            }),
        }
    }
}

/// What the layer keeps in each span's extensions.
pub(crate) struct SpanState {
    pub(crate) fold: Arc<Mutex<Fold>>,
    pub(crate) span_id: SpanId,
    /// The id an outgoing request names as its parent: the root's, or this span's own when
    /// child spans are exported as events.
    pub(crate) export_id: SpanId,
    /// The enclosing span's id, for child span events; `None` for a root.
    parent_id: Option<SpanId>,
    /// The child span's name, which namespaces its fields; `None` for a root.
    namespace: Option<&'static str>,
    /// Whether this trace is recorded (head sampling), copied from the fold when a child span is
    /// created. A root always records: its decision may still change (a caller's trace id), and
    /// is applied when it closes.
    keep: bool,
    start: Instant,
    start_us: i64,
    /// A child span's own fields, un-namespaced, when child spans are exported as events.
    own: Option<Vec<(FieldName, Value)>>,
}

impl SpanState {
    pub(crate) fn is_root(&self) -> bool {
        self.namespace.is_none()
    }
}

pub(crate) fn lock(fold: &Mutex<Fold>) -> MutexGuard<'_, Fold> {
    // A panic while holding the lock leaves a fold that is still a valid list of fields.
    fold.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The nearest span at or above `span` that this layer tracks.
pub(crate) fn tracked<'a, S>(span: SpanRef<'a, S>) -> Option<SpanRef<'a, S>>
where
    S: for<'l> LookupSpan<'l>,
{
    span.scope()
        .find(|s| s.extensions().get::<SpanState>().is_some())
}

impl LayerConfig {
    fn child_event(
        &self,
        state: &SpanState,
        trace_id: TraceId,
        name: &'static str,
        ms: f64,
    ) -> WideEvent {
        let mut auto = vec![
            (
                Cow::Borrowed(reserved::TIMESTAMP),
                Value::Str(loupe_event::time::format_timestamp(state.start_us)),
            ),
            (Cow::Borrowed(reserved::DURATION_MS), Value::Float(ms)),
            (Cow::Borrowed(reserved::NAME), Value::from(name)),
            (
                Cow::Borrowed(reserved::SERVICE_NAME),
                Value::from(self.service.as_str()),
            ),
            (
                Cow::Borrowed(reserved::TRACE_ID),
                Value::Str(trace_id.to_string()),
            ),
            (
                Cow::Borrowed(reserved::SPAN_ID),
                Value::Str(state.span_id.to_string()),
            ),
            (Cow::Borrowed("meta.span_type"), Value::from("child")),
        ];
        if let Some(p) = state.parent_id {
            auto.push((
                Cow::Borrowed(reserved::PARENT_ID),
                Value::Str(p.to_string()),
            ));
        }
        if self.head_sample_rate > 1.0 {
            auto.push((
                Cow::Borrowed(reserved::SAMPLE_RATE),
                Value::Float(self.head_sample_rate),
            ));
        }
        WideEvent {
            auto,
            fields: state.own.clone().unwrap_or_default(),
        }
    }
}

impl<S> Layer<S> for LoupeLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span.parent().and_then(tracked).and_then(|p| {
            p.extensions()
                .get::<SpanState>()
                .map(|s| (s.fold.clone(), s.span_id, s.export_id))
        });
        let span_id = SpanId::random();
        let meta = attrs.metadata();
        let state = match parent {
            None => {
                let fold = Fold::new(TraceId::random(), self.config.head_sample_rate);
                let mut rec = Recorder::new(None);
                attrs.record(&mut rec);
                let keep = fold.keep;
                let fold = Arc::new(Mutex::new(fold));
                lock(&fold).absorb(rec.rec);
                SpanState {
                    fold,
                    span_id,
                    export_id: span_id,
                    parent_id: None,
                    namespace: None,
                    keep,
                    start: Instant::now(),
                    start_us: now_us(),
                    own: None,
                }
            }
            Some((fold, parent_span, parent_export)) => {
                // Read from the fold, not the parent: the root's decision changes when it
                // continues a caller's trace, after the root span was created.
                let keep = lock(&fold).keep;
                let mut own = None;
                if keep {
                    let mut rec = Recorder::new(Some(meta.name()));
                    attrs.record(&mut rec);
                    lock(&fold).absorb(rec.rec);
                    if self.config.span_events {
                        let mut rec = Recorder::new(None);
                        attrs.record(&mut rec);
                        own = Some(rec.rec.fields);
                    }
                }
                SpanState {
                    fold,
                    span_id,
                    export_id: if self.config.span_events {
                        span_id
                    } else {
                        parent_export
                    },
                    parent_id: Some(parent_span),
                    namespace: Some(meta.name()),
                    keep,
                    start: Instant::now(),
                    start_us: if self.config.span_events { now_us() } else { 0 },
                    own,
                }
            }
        };
        span.extensions_mut().insert(state);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(state) = ext.get_mut::<SpanState>() else {
            return;
        };
        if !state.keep && !state.is_root() {
            return;
        }
        let mut rec = Recorder::new(state.namespace);
        values.record(&mut rec);
        lock(&state.fold).absorb(rec.rec);
        if let Some(own) = state.own.as_mut() {
            let mut rec = Recorder::new(None);
            values.record(&mut rec);
            own.extend(rec.rec.fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event).and_then(tracked) else {
            return; // not inside a unit of work: not ours to fold
        };
        let ext = span.extensions();
        let Some(state) = ext.get::<SpanState>() else {
            return;
        };
        if !state.keep && !state.is_root() {
            return;
        }
        let mut rec = Recorder::new(state.namespace);
        event.record(&mut rec);
        if *event.metadata().level() == Level::ERROR {
            rec.rec.error = Some(true);
            if rec.rec.error_message.is_none() {
                rec.rec.error_message = rec.rec.message.take();
            }
        }
        lock(&state.fold).absorb(rec.rec);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(state) = span.extensions_mut().remove::<SpanState>() else {
            return;
        };
        let ms = state.start.elapsed().as_secs_f64() * 1000.0;
        let name = span.metadata().name();
        if !state.is_root() {
            if !state.keep {
                return;
            }
            let trace_id = {
                let mut fold = lock(&state.fold);
                fold.add_span_time(name, ms);
                fold.trace_id
            };
            if self.config.span_events {
                let event = self.config.child_event(&state, trace_id, name, ms);
                self.config.exporter.export(event);
            }
            return;
        }
        let mut fold = lock(&state.fold);
        if !fold.keep {
            fold.finish();
            return;
        }
        let (fields, spans) = fold.finish();
        let mut auto: Vec<(FieldName, Value)> = Vec::with_capacity(8 + 2 * spans.len());
        auto.extend([
            (
                Cow::Borrowed(reserved::TIMESTAMP),
                Value::Str(loupe_event::time::format_timestamp(state.start_us)),
            ),
            (Cow::Borrowed(reserved::DURATION_MS), Value::Float(ms)),
            (Cow::Borrowed(reserved::NAME), Value::from(name)),
            (
                Cow::Borrowed(reserved::SERVICE_NAME),
                Value::from(self.config.service.as_str()),
            ),
            (
                Cow::Borrowed(reserved::TRACE_ID),
                Value::Str(fold.trace_id.to_string()),
            ),
            (
                Cow::Borrowed(reserved::SPAN_ID),
                Value::Str(state.span_id.to_string()),
            ),
        ]);
        if let Some(p) = fold.remote_parent {
            auto.push((
                Cow::Borrowed(reserved::PARENT_ID),
                Value::Str(p.to_string()),
            ));
        }
        if let Some(ts) = fold.tracestate.take() {
            auto.push((Cow::Borrowed("trace.tracestate"), Value::Str(ts)));
        }
        if fold.rate > 1.0 {
            auto.push((
                Cow::Borrowed(reserved::SAMPLE_RATE),
                Value::Float(fold.rate),
            ));
        }
        drop(fold);
        for (span_name, total, count) in spans {
            let (ms, n) = (dotted(span_name, "duration_ms"), dotted(span_name, "count"));
            auto.push((Cow::Borrowed(ms), Value::Float(total)));
            auto.push((Cow::Borrowed(n), Value::from(count)));
        }
        self.config.exporter.export(WideEvent { auto, fields });
    }
}
