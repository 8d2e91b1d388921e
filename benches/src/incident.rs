//! Planted incidents: a cause (a conjunction of field values), an effect on the events the cause
//! matches, a time window, and the [`Truth`] the generator keeps about them.

use std::fmt;

use crate::dims::Dim;
use crate::draw::{Draw, Drawer};
use crate::rng::{WorkloadRng, mix64};
use crate::world::{World, world};

/// What an incident does to the events its cause matches inside its window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// `duration_ms` is multiplied by `multiplier` (> 0).
    Latency { multiplier: f64 },
    /// Each event fails (`error` = true, `http.status_code` 500, 502 or 503 on HTTP events,
    /// `rpc.grpc.status_code` non-zero on gRPC events) with this probability, in `[0, 1]`.
    ErrorRate { probability: f64 },
}

/// An incident planted in the workload.
///
/// An event is *matched* when its timestamp is in `[start_us, end_us)` and, for every
/// `(field, value)` of `cause`, the event has `field` and its value, as a string (`true`/`false`
/// for bools), equals `value`. Only categorical fields can be named (see [`CAUSE_FIELDS`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// A conjunction of 1 to 3 `field = value` terms.
    pub cause: Vec<(String, String)>,
    pub effect: Effect,
    pub start_us: i64,
    pub end_us: i64,
}

/// The fields a cause may name: the categorical fields of the standard event.
pub const CAUSE_FIELDS: [&str; 39] = {
    let mut names = [""; 39];
    let mut i = 0;
    while i < names.len() {
        names[i] = Dim::ALL[i].field();
        i += 1;
    }
    names
};

/// How many events the plant estimates a candidate cause on.
const PLANT_SAMPLE: usize = 20_000;
/// A planted cause matches between these shares of traffic: enough events to find, few enough
/// to need finding.
const PLANT_SHARE: (f64, f64) = (0.004, 0.08);
/// Dropping any term of a planted conjunction must match at least this many times more events,
/// so every term matters (and no term is implied by another, like a zone by its host).
const PLANT_NARROWING: f64 = 2.0;
const PLANT_ATTEMPTS: usize = 500;

impl Incident {
    /// An incident whose cause is `terms` (clamped to 1..=3) field values that occur together in
    /// the standard workload, chosen by `seed`: for example `os.kernel = 6.5.0-1024-aws AND
    /// container.image = img-17`.
    ///
    /// The cause matches between 0.4% and 8% of events, and each of its terms narrows it (at
    /// least halves the events matched), so no term is redundant. Both are estimated on 20,000
    /// events; should none of 500 candidates qualify (in practice one of the first few does),
    /// the closest is used. The same arguments always give the same incident.
    pub fn planted(seed: u64, start_us: i64, end_us: i64, effect: Effect, terms: usize) -> Self {
        Self::planted_with_share(seed, start_us, end_us, effect, terms, PLANT_SHARE)
    }

    /// [`Incident::planted`] with the cause matching between `bounds.0` and `bounds.1` of events
    /// (estimated on 20,000 events, so a share under ~0.1% is a coarse estimate), for
    /// benchmarks that sweep how rare a cause is.
    pub fn planted_with_share(
        seed: u64,
        start_us: i64,
        end_us: i64,
        effect: Effect,
        terms: usize,
        bounds: (f64, f64),
    ) -> Self {
        let terms = terms.clamp(1, 3);
        let w = world();
        let mut rng = WorkloadRng::seeded(mix64(seed ^ 0x0B5E_55ED));
        let mut drawer = Drawer::new(seed);
        let sample: Vec<Draw> = (0..PLANT_SAMPLE)
            .map(|i| drawer.draw(w, i as i64 * 1_000))
            .collect();
        let count = |cause: &[(Dim, u16)]| {
            sample
                .iter()
                .filter(|d| cause.iter().all(|&(dim, v)| w.value_of(dim, d) == Some(v)))
                .count()
        };

        let mut best: Option<(f64, Vec<(Dim, u16)>)> = None;
        for _ in 0..PLANT_ATTEMPTS {
            // Values taken from one event, so they occur together and popular values are likely.
            let anchor = &sample[rng.below(PLANT_SAMPLE as u64) as usize];
            let mut dims = Dim::PLANTABLE.to_vec();
            crate::world::shuffle(&mut rng, &mut dims);
            let cause: Vec<(Dim, u16)> = dims
                .into_iter()
                .filter_map(|dim| Some((dim, w.value_of(dim, anchor)?)))
                .take(terms)
                .collect();
            if cause.len() < terms {
                continue;
            }
            let matched = count(&cause);
            let share = matched as f64 / PLANT_SAMPLE as f64;
            // How many times more events the cause matches without its most selective term.
            let narrowing = if terms == 1 {
                f64::INFINITY
            } else {
                let without = |skip: usize| {
                    let rest: Vec<_> = (0..terms)
                        .filter(|&k| k != skip)
                        .map(|k| cause[k])
                        .collect();
                    count(&rest)
                };
                let fewest = (0..terms).map(without).min().unwrap_or(0);
                fewest as f64 / matched.max(1) as f64
            };
            // Distance from acceptance, for the fallback if no attempt is accepted.
            let miss = (bounds.0 / share.max(1e-9)).max(share / bounds.1).max(1.0)
                * (PLANT_NARROWING / narrowing).max(1.0);
            if miss <= 1.0 {
                best = Some((miss, cause));
                break;
            }
            if best.as_ref().is_none_or(|(m, _)| miss < *m) {
                best = Some((miss, cause));
            }
        }
        let cause = best.map(|(_, c)| c).unwrap_or_default();
        Incident {
            cause: cause
                .into_iter()
                .map(|(dim, v)| {
                    let value = w.values(dim)[usize::from(v)].to_string();
                    (dim.field().to_owned(), value)
                })
                .collect(),
            effect,
            start_us,
            end_us,
        }
    }

    /// The cause as `a = x AND b = y`.
    pub fn describe_cause(&self) -> String {
        self.cause
            .iter()
            .map(|(f, v)| format!("{f} = {v}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    }
}

impl fmt::Display for Incident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let effect = match self.effect {
            Effect::Latency { multiplier } => format!("duration_ms x{multiplier}"),
            Effect::ErrorRate { probability } => format!("error rate {probability}"),
        };
        write!(
            f,
            "{} => {effect} during [{}, {})",
            self.describe_cause(),
            loupe_event::time::format_timestamp(self.start_us),
            loupe_event::time::format_timestamp(self.end_us)
        )
    }
}

/// What the generator did, exactly: the incident, and counts over every event generated so far.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Truth {
    /// The incident planted, if any.
    pub incident: Option<Incident>,
    /// Events generated (emitted, after any pre-sampling).
    pub total: u64,
    /// Events whose timestamp is inside the incident's window.
    pub in_window: u64,
    /// Events inside the window that match the cause.
    pub matched: u64,
    /// Matched events the effect was applied to: all of them for [`Effect::Latency`]; for
    /// [`Effect::ErrorRate`], those the incident made fail (including any that would have failed
    /// anyway).
    pub affected: u64,
}

impl Truth {
    /// Share of the window's events the cause matches.
    pub fn matched_share(&self) -> f64 {
        if self.in_window == 0 {
            0.0
        } else {
            self.matched as f64 / self.in_window as f64
        }
    }
}

/// Why a [`WorkloadConfig`](crate::WorkloadConfig) cannot be generated.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkloadError {
    /// The cause names a field that is not categorical (see [`CAUSE_FIELDS`]).
    UnknownCauseField { field: String },
    /// The cause wants a value the field never takes.
    UnknownCauseValue { field: String, value: String },
    /// The cause has no terms.
    EmptyCause,
    /// A number is out of its range.
    OutOfRange { what: &'static str, value: f64 },
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkloadError::UnknownCauseField { field } => write!(
                f,
                "incident cause names `{field}`, which is not a categorical field of the standard event"
            ),
            WorkloadError::UnknownCauseValue { field, value } => {
                write!(
                    f,
                    "incident cause wants `{field}` = {value:?}, a value it never takes"
                )
            }
            WorkloadError::EmptyCause => f.write_str("incident cause has no terms"),
            WorkloadError::OutOfRange { what, value } => write!(f, "{what} out of range: {value}"),
        }
    }
}

impl std::error::Error for WorkloadError {}

/// A cause resolved to pool indices, for matching draws quickly.
#[derive(Debug, Clone)]
pub(crate) struct CompiledIncident {
    terms: Vec<(Dim, u16)>,
    pub(crate) effect: Effect,
    pub(crate) start_us: i64,
    pub(crate) end_us: i64,
}

impl CompiledIncident {
    pub(crate) fn new(w: &World, incident: &Incident) -> Result<Self, WorkloadError> {
        if incident.cause.is_empty() {
            return Err(WorkloadError::EmptyCause);
        }
        let terms = incident
            .cause
            .iter()
            .map(|(field, value)| {
                let dim =
                    Dim::from_field(field).ok_or_else(|| WorkloadError::UnknownCauseField {
                        field: field.clone(),
                    })?;
                let v = w
                    .values(dim)
                    .iter()
                    .position(|x| **x == **value)
                    .ok_or_else(|| WorkloadError::UnknownCauseValue {
                        field: field.clone(),
                        value: value.clone(),
                    })?;
                Ok((dim, v as u16))
            })
            .collect::<Result<_, _>>()?;
        match incident.effect {
            Effect::Latency { multiplier } if !(multiplier.is_finite() && multiplier > 0.0) => {
                return Err(WorkloadError::OutOfRange {
                    what: "latency multiplier",
                    value: multiplier,
                });
            }
            Effect::ErrorRate { probability } if !(0.0..=1.0).contains(&probability) => {
                return Err(WorkloadError::OutOfRange {
                    what: "error probability",
                    value: probability,
                });
            }
            _ => {}
        }
        Ok(CompiledIncident {
            terms,
            effect: incident.effect,
            start_us: incident.start_us,
            end_us: incident.end_us,
        })
    }

    #[inline]
    pub(crate) fn in_window(&self, ts_us: i64) -> bool {
        (self.start_us..self.end_us).contains(&ts_us)
    }

    #[inline]
    pub(crate) fn matches(&self, w: &World, d: &Draw) -> bool {
        self.terms
            .iter()
            .all(|&(dim, v)| w.value_of(dim, d) == Some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: i64 = 1_795_392_000_000_000;

    #[test]
    fn planted_causes_are_plausible_and_repeatable() {
        for terms in 1..=3 {
            for seed in [1, 2, 3] {
                let effect = Effect::Latency { multiplier: 4.0 };
                let a = Incident::planted(seed, START, START + 60_000_000, effect, terms);
                let b = Incident::planted(seed, START, START + 60_000_000, effect, terms);
                assert_eq!(a, b);
                assert_eq!(a.cause.len(), terms, "{a}");
                let fields: std::collections::HashSet<_> =
                    a.cause.iter().map(|(f, _)| f.as_str()).collect();
                assert_eq!(fields.len(), terms, "distinct fields: {a}");
                // it compiles: the fields are categorical and the values occur
                CompiledIncident::new(world(), &a).unwrap();
            }
        }
        let a = Incident::planted(1, START, START + 1, Effect::Latency { multiplier: 2.0 }, 2);
        let b = Incident::planted(2, START, START + 1, Effect::Latency { multiplier: 2.0 }, 2);
        assert_ne!(a.cause, b.cause);
    }

    #[test]
    fn bad_causes_are_refused() {
        let w = world();
        let mut i = Incident {
            cause: vec![("duration_ms".into(), "3".into())],
            effect: Effect::ErrorRate { probability: 0.5 },
            start_us: 0,
            end_us: 1,
        };
        let err = CompiledIncident::new(w, &i).unwrap_err();
        assert!(
            matches!(err, WorkloadError::UnknownCauseField { .. }),
            "{err}"
        );
        i.cause = vec![("os.kernel".into(), "4.4.0".into())];
        let err = CompiledIncident::new(w, &i).unwrap_err();
        assert!(
            matches!(err, WorkloadError::UnknownCauseValue { .. }),
            "{err}"
        );
        i.cause.clear();
        assert_eq!(
            CompiledIncident::new(w, &i).unwrap_err(),
            WorkloadError::EmptyCause
        );
        i.cause = vec![("feature.dark_mode".into(), "true".into())];
        assert!(CompiledIncident::new(w, &i).is_ok());
        i.effect = Effect::ErrorRate { probability: 1.5 };
        assert!(CompiledIncident::new(w, &i).is_err());
        i.effect = Effect::Latency {
            multiplier: f64::NAN,
        };
        assert!(CompiledIncident::new(w, &i).is_err());
    }

    #[test]
    fn cause_fields_are_the_dims() {
        assert!(CAUSE_FIELDS.contains(&"os.kernel"));
        assert!(CAUSE_FIELDS.contains(&"feature.fast_cart"));
        assert!(!CAUSE_FIELDS.contains(&""));
        assert_eq!(CAUSE_FIELDS.len(), Dim::ALL.len());
    }
}
