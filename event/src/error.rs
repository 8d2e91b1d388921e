//! Why an event or a request body was refused.

/// Why one event was rejected. Its neighbours in the same request are unaffected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EventError {
    #[error("invalid JSON: {message}")]
    Json { message: String },
    #[error("expected a JSON object, found {found}")]
    NotAnObject { found: &'static str },
    #[error("duplicate field `{name}` (after flattening nested objects)")]
    DuplicateField { name: String },
    #[error("too many fields: {count} (limit {limit})")]
    TooManyFields { count: usize, limit: usize },
    #[error("field name `{name}` is {len} bytes (limit {limit})")]
    NameTooLong {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("invalid field name `{name}`: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("value of `{name}` is {len} bytes (limit {limit})")]
    ValueTooLarge {
        name: String,
        len: usize,
        limit: usize,
    },
    #[error("reserved field `{name}` must be {expected}, found {found}")]
    ReservedType {
        name: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("`{name}` is not a finite number")]
    NonFinite { name: String },
    #[error("bad timestamp {value}: {reason}")]
    BadTimestamp { value: String, reason: String },
    #[error("sample_rate must be a number >= 1, found {value}")]
    BadSampleRate { value: String },
}

impl EventError {
    /// A short, stable name for the reason, for counting rejections by reason.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::Json { .. } => "invalid_json",
            EventError::NotAnObject { .. } => "not_an_object",
            EventError::DuplicateField { .. } => "duplicate_field",
            EventError::TooManyFields { .. } => "too_many_fields",
            EventError::NameTooLong { .. } => "name_too_long",
            EventError::InvalidName { .. } => "invalid_name",
            EventError::ValueTooLarge { .. } => "value_too_large",
            EventError::ReservedType { .. } => "reserved_field_type",
            EventError::NonFinite { .. } => "non_finite_number",
            EventError::BadTimestamp { .. } => "bad_timestamp",
            EventError::BadSampleRate { .. } => "bad_sample_rate",
        }
    }
}

/// Why a whole request body was refused: nothing in it could be read event by event.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    #[error("request body is empty")]
    Empty,
    #[error("request body is {len} bytes (limit {limit})")]
    TooLarge { len: usize, limit: usize },
    #[error("request carries more than {limit} events")]
    TooManyEvents { limit: usize },
    #[error("invalid JSON array: {message}")]
    Json { message: String },
}
