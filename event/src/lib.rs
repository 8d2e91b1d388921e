//! The loupe vocabulary: what a wide event is, which field names are reserved, what limits apply,
//! and how events are read from JSON. Every other loupe crate speaks these types.
//!
//! This crate does no I/O and knows nothing of Arrow or storage.
//!
//! ```
//! use loupe_event::{decode_body, BodyFormat, Limits, Value};
//!
//! let body = br#"{"timestamp": "2026-11-23T04:00:00Z", "http": {"route": "/cart"}, "duration_ms": 48}"#;
//! let limits = Limits::default();
//! let events = decode_body(body, BodyFormat::Auto, &limits)?;
//! let event = events.into_iter().next().unwrap()?;
//! assert_eq!(event.get("http.route"), Some(&Value::from("/cart")));
//!
//! let valid = event.validate(&limits, 0)?;
//! assert_eq!(valid.sample_rate(), 1.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod error;
mod event;
pub mod fields;
pub mod json;
pub mod limits;
pub mod time;
mod validate;
mod value;

pub use error::{BodyError, EventError};
pub use event::Event;
pub use json::{BodyFormat, decode_body, decode_event, for_each_event};
pub use limits::Limits;
pub use validate::ValidEvent;
pub use value::{Value, ValueKind};
