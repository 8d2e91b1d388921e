//! The standard wide-event workload (see `WORKLOAD.md`): one seeded, deterministic, fast
//! generator of the event every loupe benchmark, load test and `loupe demo` uses, so their
//! numbers compare.
//!
//! An event has about 60 flat, dotted fields (`http.route`, `k8s.pod.name`, `feature.*`, ...),
//! about 1.6 KB as JSON, drawn from a fixed world: 12 services with 600 pods on 200 hosts in 18
//! zones of 6 regions, 80 routes, a million users, 5,000 customers. The [`WorkloadConfig`]'s
//! seed varies the traffic, never the world, so any two seeds describe the same fleet.
//!
//! An [`Incident`] can be planted: during a window, the events a cause matches (a conjunction of
//! one to three field values, like `os.kernel = 6.5.0-1024-aws AND container.image = img-17`)
//! get slower or fail more. The generator counts exactly what it did in its [`Truth`], so an
//! analysis of the generated events can be scored against it.
//!
//! ```
//! use loupe_bench::{Effect, Generator, Incident, WorkloadConfig};
//! use loupe_event::{BodyFormat, Limits, decode_body};
//!
//! let config = WorkloadConfig::default();
//! let start = config.start_us;
//! // Ten seconds into the stream, a two-term cause gets five times slower for six seconds.
//! let effect = Effect::Latency { multiplier: 5.0 };
//! let incident = Incident::planted(7, start + 10_000_000, start + 16_000_000, effect, 2);
//! println!("planted: {incident}");
//! let mut generator = Generator::try_new(WorkloadConfig {
//!     seed: 7,
//!     incident: Some(incident),
//!     ..config
//! })?;
//!
//! // 20 seconds of traffic at 1,000 events per second, as NDJSON.
//! let mut body = Vec::new();
//! generator.write_ndjson(20_000, &mut body);
//! let limits = Limits::default();
//! let events = decode_body(&body, BodyFormat::Ndjson, &limits)?;
//! assert_eq!(events.len(), 20_000);
//! let first = events.into_iter().next().unwrap()?;
//! assert!(first.len() > 50);
//! first.validate(&limits, 0)?;
//!
//! let truth = generator.truth();
//! assert_eq!(truth.total, 20_000);
//! assert!(truth.matched > 0 && truth.affected == truth.matched);
//!
//! // Or take `Event`s from the iterator.
//! let again: Vec<loupe_event::Event> = Generator::new(WorkloadConfig::default()).take(3).collect();
//! assert_eq!(again[0].get("sample_rate"), Some(&loupe_event::Value::Int(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod dims;
mod dist;
mod draw;
mod generator;
mod incident;
mod render;
mod rng;
mod world;

#[cfg(test)]
mod tests;

pub use generator::Generator;
pub use incident::{CAUSE_FIELDS, Effect, Incident, Truth, WorkloadError};

/// 2026-11-23T00:00:00Z, in microseconds since the Unix epoch: where the default stream starts.
pub const DEFAULT_START_US: i64 = 1_795_392_000_000_000;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Seeds the traffic (which events, in which order). The world they describe is fixed.
    pub seed: u64,
    /// Time of the first event's slot, in microseconds since the Unix epoch.
    pub start_us: i64,
    /// Event `i` belongs to the slot `start_us + i * 1e6 / events_per_second`; its timestamp
    /// is up to 4 s earlier (exponential jitter, mean 0.3 s), so timestamps are mostly, not
    /// strictly, in order.
    pub events_per_second: f64,
    /// An incident to plant, if any.
    pub incident: Option<Incident>,
    /// Upstream sampling: with `Some(r)` (`r >= 1`) each slot's event is kept with probability
    /// `1 / r` and carries `sample_rate = r` (an int when `r` is integral, else to the
    /// thousandth). With `None` every slot has an event and `sample_rate` is 1.
    pub pre_sample_rate: Option<f64>,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            seed: 42,
            start_us: DEFAULT_START_US,
            events_per_second: 1_000.0,
            incident: None,
            pre_sample_rate: None,
        }
    }
}
