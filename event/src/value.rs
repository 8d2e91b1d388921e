//! [`Value`]: the scalar types a wide-event field can hold.

use std::fmt;

use serde::ser::{Serialize, Serializer};

/// One field's value. Nested JSON objects never reach this type: they are flattened into dotted
/// names first, and arrays are kept as their JSON text (see [`crate::json`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// The type of a [`Value`], used in error messages and by the schema catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueKind {
    Null,
    Bool,
    Int,
    Float,
    Str,
}

impl ValueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Null => "null",
            ValueKind::Bool => "bool",
            ValueKind::Int => "int",
            ValueKind::Float => "float",
            ValueKind::Str => "string",
        }
    }
}

impl fmt::Display for ValueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Value {
    pub fn kind(&self) -> ValueKind {
        match self {
            Value::Null => ValueKind::Null,
            Value::Bool(_) => ValueKind::Bool,
            Value::Int(_) => ValueKind::Int,
            Value::Float(_) => ValueKind::Float,
            Value::Str(_) => ValueKind::Str,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The value as a float when it is a number (ints widen).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Bytes this value occupies as payload (strings by length, scalars by their fixed size);
    /// what the value-size limit measures.
    pub fn payload_len(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 8,
        }
    }

    /// The value as JSON text: what an incompatible value is stored as (see the store's
    /// type-conflict policy) and what `Display` prints.
    pub fn to_json_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "null".to_owned())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            other => f.write_str(&other.to_json_text()),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            // JSON has no NaN or infinity; validation rejects them, so this only guards
            // events built by hand.
            Value::Float(x) if !x.is_finite() => s.serialize_unit(),
            Value::Float(x) => s.serialize_f64(*x),
            Value::Str(v) => s.serialize_str(v),
        }
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self { Value::Int(i64::from(v)) }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    /// Integers above `i64::MAX` become floats, as they do when they arrive as JSON.
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_above_i64_max_becomes_float() {
        assert_eq!(Value::from(u64::MAX), Value::Float(u64::MAX as f64));
        assert_eq!(Value::from(42u64), Value::Int(42));
    }

    #[test]
    fn json_text_of_each_kind() {
        assert_eq!(Value::Null.to_json_text(), "null");
        assert_eq!(Value::Bool(true).to_json_text(), "true");
        assert_eq!(Value::Int(-3).to_json_text(), "-3");
        assert_eq!(Value::Float(1.5).to_json_text(), "1.5");
        assert_eq!(Value::from("a\"b").to_json_text(), r#""a\"b""#);
        assert_eq!(Value::Float(f64::NAN).to_json_text(), "null");
    }

    #[test]
    fn display_prints_strings_bare() {
        assert_eq!(Value::from("x y").to_string(), "x y");
        assert_eq!(Value::Int(7).to_string(), "7");
    }
}
