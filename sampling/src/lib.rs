//! loupe samplers and rules: pure functions from an event, its key and the time to a keep
//! decision and the weight a kept event carries.
//!
//! The collector samples before the WAL, so dropped events cost nothing downstream, and every
//! kept event records `sample_rate` = upstream rate × this rate, so weighted queries over the
//! kept events estimate the whole. This crate does no I/O, reads no clock and starts no thread:
//! time comes in as `now_us` (microseconds since the epoch).
//!
//! ```
//! use loupe_event::Event;
//! use loupe_sampling::{DatasetSampler, SamplingConfig};
//!
//! let config: SamplingConfig = toml::from_str(r#"
//!     key_fields = ["http.route", "http.status_code"]
//!     sampler = "ema"
//!     goal_rate = 20
//!     [[rules]]
//!     name = "errors"
//!     when = "error = true"
//!     action = "keep"
//! "#)?;
//! let mut sampler = DatasetSampler::new(&config)?;
//!
//! let mut event = Event::new()
//!     .with("http.route", "/cart")
//!     .with("http.status_code", 200)
//!     .with("trace.trace_id", "4bf92f3577b34da6a3ce929d0e0e4736")
//!     .with("sample_rate", 4);
//! let now_us = 1_700_000_000_000_000;
//! let decision = sampler.decide(&event, now_us);
//! // A new key is kept whole until the sampler has seen an interval of traffic.
//! assert!(decision.keep);
//! assert_eq!(decision.key, Some("/cart|200"));
//! decision.annotate(&mut event); // sample_rate = 4 × rate, meta.sample_key, meta.sample_rule
//! assert_eq!(event.get("sample_rate").and_then(|v| v.as_f64()), Some(4.0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What is where:
//! - [`consistent`]: the keep decision, a deterministic function of an id and a rate (shared
//!   with the SDK's head sampling); [`identity`]: which id (trace id, span id, counter) and
//!   why the tail decision hashes it differently from the head decision.
//! - [`sampler`]: [`Sampler`] and its kinds, fixed, [`avg`], [`ema`] and [`throughput`], each
//!   module documenting how its rates are computed and where the formula comes from;
//!   [`alloc`]: the water-filling that makes the dynamic samplers meet their goals.
//! - [`key`]: sampling keys from configured fields, hashed on the hot path, rendered for
//!   `meta.sample_key`; beyond `max_keys` traffic goes to the overflow key.
//! - [`predicate`] and [`rules`]: conditions (`http.status_code >= 500`) and first-match rules.
//! - [`decide`]: [`DatasetSampler`], a dataset's rules and samplers, and its [`Decision`].
//! - [`state`]: snapshots of learned rates that survive restarts and config reloads.
//! - [`config`]: the `sampling` section of a dataset in `loupe.toml`, validated.

pub mod alloc;
pub mod avg;
pub mod config;
pub mod consistent;
pub mod decide;
pub mod ema;
mod error;
pub mod identity;
pub mod key;
pub mod predicate;
pub mod rules;
pub mod sampler;
pub mod state;
mod table;
pub mod throughput;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_weights;

pub use config::{RuleConfig, SamplerChoice, SamplerConfig, SamplingConfig};
pub use decide::{
    DEFAULT_SAMPLER, DatasetSampler, Decision, SAMPLE_KEY_FIELD, SAMPLE_RULE_FIELD, recorded_weight,
};
pub use error::{ConfigError, ConfigProblem, Error, PredicateError, Result, StateError};
pub use key::KeySpec;
pub use predicate::{Condition, parse_conditions};
pub use rules::{Action, Rule, Rules};
pub use sampler::{KeyRate, Sampled, Sampler, SamplerKind};
pub use state::{RestoreReport, SamplingState};
