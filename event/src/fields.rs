//! Reserved field names: defined here once, used by every crate.
//!
//! Reserved fields have a fixed type, checked at validation, so every consumer (weights, SLOs,
//! outliers) can rely on them.

use crate::value::ValueKind;

/// The event's start time. RFC 3339 string or epoch number on the wire (see [`crate::time`]),
/// `Timestamp(Microsecond, UTC)` in storage. Filled with the receive time when absent.
pub const TIMESTAMP: &str = "timestamp";
/// Duration of the unit of work, in milliseconds (float).
pub const DURATION_MS: &str = "duration_ms";
/// What the unit of work was (`http.request`, `job.run`).
pub const NAME: &str = "name";
pub const SERVICE_NAME: &str = "service.name";
pub const TRACE_ID: &str = "trace.trace_id";
pub const SPAN_ID: &str = "trace.span_id";
pub const PARENT_ID: &str = "trace.parent_id";
/// Whether the unit of work failed.
pub const ERROR: &str = "error";
pub const HTTP_STATUS_CODE: &str = "http.status_code";
/// The weight: a stored event stands for `sample_rate` events. Always >= 1; 1 when absent.
pub const SAMPLE_RATE: &str = "sample_rate";

/// Prefix of fields added by the collector (sampling key, deciding rule).
pub const META_PREFIX: &str = "meta.";

/// Suffix of the overflow column that keeps a value whose type conflicts with its field's type
/// (see loupe-store's type-conflict policy). Clients cannot send names ending in it.
pub const RAW_SUFFIX: &str = ".__raw";

/// The store's column for values that could get no column of their own (the dataset is at its
/// field limit): a JSON object of those fields, per event. Clients cannot send names starting
/// with it.
pub const OVERFLOW: &str = "__overflow";

/// The type a reserved field must have, if `name` is reserved. `timestamp` is absent here: it
/// is parsed into time, not kept as a value.
pub fn reserved_kind(name: &str) -> Option<ReservedKind> {
    Some(match name {
        DURATION_MS | SAMPLE_RATE => ReservedKind::Number,
        NAME | SERVICE_NAME | TRACE_ID | SPAN_ID | PARENT_ID => ReservedKind::Str,
        ERROR => ReservedKind::Bool,
        HTTP_STATUS_CODE => ReservedKind::Int,
        _ => return None,
    })
}

/// What a reserved field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservedKind {
    /// Int or float; stored as float.
    Number,
    Int,
    Bool,
    Str,
}

impl ReservedKind {
    pub fn accepts(self, kind: ValueKind) -> bool {
        matches!(
            (self, kind),
            (_, ValueKind::Null)
                | (ReservedKind::Number, ValueKind::Int | ValueKind::Float)
                | (ReservedKind::Int, ValueKind::Int)
                | (ReservedKind::Bool, ValueKind::Bool)
                | (ReservedKind::Str, ValueKind::Str)
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReservedKind::Number => "number",
            ReservedKind::Int => "int",
            ReservedKind::Bool => "bool",
            ReservedKind::Str => "string",
        }
    }
}
