//! Limits on what one event and one request may hold. Each is a named constant (the default) and
//! a field of [`Limits`], which a config file can override.

use serde::Deserialize;

/// Most fields one event may have after flattening.
pub const MAX_FIELDS_PER_EVENT: usize = 2_000;
/// Longest field name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;
/// Largest value, in bytes (strings by length; arrays and deep objects by their JSON text).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Largest request body, in bytes, after decompression.
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Most events one request may carry.
pub const MAX_EVENTS_PER_REQUEST: usize = 100_000;
/// Objects nested deeper than this are kept whole, as JSON text, in the field at this depth,
/// so a hostile document cannot turn into thousands of columns. (The JSON parser separately
/// refuses documents nested deeper than 128, before any of this runs.)
pub const MAX_FLATTEN_DEPTH: usize = 10;

/// The limits in force. `Default` is the constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_fields_per_event: usize,
    pub max_name_bytes: usize,
    pub max_value_bytes: usize,
    pub max_body_bytes: usize,
    pub max_events_per_request: usize,
    pub max_flatten_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_fields_per_event: MAX_FIELDS_PER_EVENT,
            max_name_bytes: MAX_NAME_BYTES,
            max_value_bytes: MAX_VALUE_BYTES,
            max_body_bytes: MAX_BODY_BYTES,
            max_events_per_request: MAX_EVENTS_PER_REQUEST,
            max_flatten_depth: MAX_FLATTEN_DEPTH,
        }
    }
}
