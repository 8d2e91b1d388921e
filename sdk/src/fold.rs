//! Folding: how the fields of a request's spans and events become one wide event.
//!
//! The rules (also in the crate docs, which users read):
//! - fields of the root span keep their names;
//! - fields of a child span, and of events inside it, are namespaced by the child span's name
//!   (`statement` on span `db` becomes `db.statement`) unless the name already starts with it
//!   (`db.system` on span `db` stays `db.system`);
//! - fields of events directly inside the root span keep their names;
//! - of two values for one name, the later recorded wins;
//! - each child span adds its wall time to `<span name>.duration_ms` and 1 to `<span name>.count`;
//! - a field named `error` sets the event's `error`: a bool as given, anything else (an error
//!   value, a string) as `true` with its text as `error.message`. An event at level ERROR sets
//!   `error = true` and its message becomes `error.message`. The first error message is kept: it
//!   is usually the cause, later ones its consequences;
//! - the message of any other event is not kept: a wide event is not a log.

use std::borrow::Cow;
use std::fmt;

use loupe_event::Value;
use loupe_event::fields as reserved;
use tracing::field::{Field, Visit};

use crate::context::TraceContext;
use crate::ids::{SpanId, TraceId};
use crate::wide_event::FieldName;

const MESSAGE: &str = "message";
const ERROR_MESSAGE: &str = "error.message";

/// Per child-span name: total wall time in ms, and count.
pub(crate) type SpanTotal = (&'static str, f64, u64);

/// The wide event being built for one unit of work, shared by its root span and every span
/// below it (they may run on other threads, hence the lock around it).
#[derive(Debug)]
pub(crate) struct Fold {
    pub(crate) trace_id: TraceId,
    /// The caller's span, when the trace came from another service.
    pub(crate) remote_parent: Option<SpanId>,
    pub(crate) tracestate: Option<String>,
    /// The head-sampling rate and whether this trace is kept at it.
    pub(crate) rate: f64,
    pub(crate) keep: bool,
    fields: Vec<(FieldName, Value)>,
    spans: Vec<SpanTotal>,
    has_error_message: bool,
    /// Set when the root closed: work that outlives its request is not folded in.
    finished: bool,
}

impl Fold {
    pub(crate) fn new(trace_id: TraceId, rate: f64) -> Self {
        Fold {
            trace_id,
            remote_parent: None,
            tracestate: None,
            rate,
            keep: decide(trace_id, rate),
            fields: Vec::with_capacity(32),
            spans: Vec::new(),
            has_error_message: false,
            finished: false,
        }
    }

    /// Continues the caller's trace: same trace id, the caller's span as parent, the keep decision
    /// remade on the new trace id (so every service at the same rate keeps the same traces).
    pub(crate) fn continue_trace(&mut self, ctx: &TraceContext) {
        self.trace_id = ctx.trace_id;
        self.remote_parent = Some(ctx.parent_id);
        self.tracestate = ctx.tracestate.clone();
        self.keep = decide(ctx.trace_id, self.rate);
    }

    pub(crate) fn push(&mut self, name: FieldName, value: Value) {
        if !self.finished {
            self.fields.push((name, value));
        }
    }

    pub(crate) fn absorb(&mut self, mut rec: Recorded) {
        if self.finished {
            return;
        }
        self.fields.append(&mut rec.fields);
        if let Some(e) = rec.error {
            self.fields
                .push((Cow::Borrowed(reserved::ERROR), Value::Bool(e)));
        }
        if let Some(m) = rec.error_message.take()
            && !self.has_error_message
        {
            self.has_error_message = true;
            self.fields
                .push((Cow::Borrowed(ERROR_MESSAGE), Value::Str(m)));
        }
        rec.recycle();
    }

    pub(crate) fn add_span_time(&mut self, name: &'static str, ms: f64) {
        if self.finished {
            return;
        }
        match self.spans.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, total, count)) => {
                *total += ms;
                *count += 1;
            }
            None => self.spans.push((name, ms, 1)),
        }
    }

    /// Takes what was recorded; later writes are ignored.
    pub(crate) fn finish(&mut self) -> (Vec<(FieldName, Value)>, Vec<SpanTotal>) {
        self.finished = true;
        (
            std::mem::take(&mut self.fields),
            std::mem::take(&mut self.spans),
        )
    }
}

fn decide(trace_id: TraceId, rate: f64) -> bool {
    rate <= 1.0 || loupe_sampling::consistent::keep(trace_id.to_string().as_bytes(), rate)
}

/// What one `record` call (span attributes, `Span::record`, or an event) carried.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    pub(crate) fields: Vec<(FieldName, Value)>,
    pub(crate) error: Option<bool>,
    pub(crate) error_message: Option<String>,
    pub(crate) message: Option<String>,
}

impl Recorded {
    /// Gives the (emptied) field list back for the next `record` on this thread.
    pub(crate) fn recycle(mut self) {
        self.fields.clear();
        if self.fields.capacity() <= 256 {
            SCRATCH.with(|s| s.set(std::mem::take(&mut self.fields)));
        }
    }
}

/// A `tracing` field visitor that records into [`Recorded`], namespacing names for child spans.
///
/// It runs before the fold's lock is taken: `Debug` impls of recorded values are user code and
/// may themselves log.
pub(crate) struct Recorder {
    namespace: Option<&'static str>,
    pub(crate) rec: Recorded,
}

thread_local! {
    // One field list per thread, reused by every `record` call: a request records a dozen times
    // and each would otherwise allocate a list only to move its contents into the fold.
    static SCRATCH: std::cell::Cell<Vec<(FieldName, Value)>> = const { std::cell::Cell::new(Vec::new()) };
}

impl Recorder {
    pub(crate) fn new(namespace: Option<&'static str>) -> Self {
        // `take` leaves an empty list behind, so a nested record (a `Debug` impl that logs)
        // simply gets a fresh one.
        let fields = SCRATCH.with(|s| s.take());
        Recorder {
            namespace,
            rec: Recorded {
                fields,
                ..Recorded::default()
            },
        }
    }

    fn name(&self, field: &Field) -> FieldName {
        let f = field.name();
        match self.namespace {
            Some(ns) if !(f.starts_with(ns) && f[ns.len()..].starts_with('.')) => {
                Cow::Borrowed(crate::names::dotted(ns, f))
            }
            _ => Cow::Borrowed(f),
        }
    }

    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            reserved::ERROR => match value {
                Value::Bool(b) => self.rec.error = Some(b),
                other => {
                    self.rec.error = Some(true);
                    self.rec.error_message.get_or_insert_with(|| text(other));
                }
            },
            MESSAGE => self.rec.message = Some(text(value)),
            // Bookkeeping fields of the `log` bridge (`tracing-log`): where a log line came from,
            // not what the request learned.
            n if n.starts_with("log.") => {}
            _ => {
                let name = self.name(field);
                self.rec.fields.push((name, value));
            }
        }
    }
}

fn text(v: Value) -> String {
    match v {
        Value::Str(s) => s,
        other => other.to_json_text(),
    }
}

fn wide_int(v: i128) -> Value {
    i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
}

impl Visit for Recorder {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::Float(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::Int(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.put(field, wide_int(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.put(
            field,
            i128::try_from(value).map_or(Value::Float(value as f64), wide_int),
        );
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::Str(value.to_owned()));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::Str(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, Value::Str(format!("{value:?}")));
    }
}
