//! [`Sampler`]: one sampler of a dataset, mapping an event to its key's rate at a given time.
//!
//! The kinds ([`SamplerKind`]):
//! - `Fixed { rate }`: every event at the same rate; no keys, no state.
//! - [`AvgRate`](crate::avg): a goal average rate across keys, from last interval's counts.
//! - [`EmaRate`](crate::ema): the same on smoothed counts, with burst detection.
//! - [`Throughput`](crate::throughput): a goal number of kept events per second.
//!
//! Time is an argument (`now_us`, microseconds since the epoch), never read from a clock, so
//! tests drive intervals directly. Intervals end lazily: the first call at or after the end of
//! the running interval closes it (and any whole intervals that passed without a call, which
//! count as empty) before the event is counted. The first interval starts at the first event.
//!
//! **Budget correction.** A dynamic sampler sets the rates of interval `k + 1` from the counts
//! of interval `k`. With many small keys that lag is biased, not just noisy: a key seen 3 times
//! last interval and sampled at rate 3 is, on average, seen more than 3 times next interval
//! among the keys that were seen at all (regression to the mean), and keys absent last
//! interval arrive at rate 1. With 10,000 Zipf keys and 400,000 events per interval the
//! average-rate sampler kept ~7% more than its goal without this correction, about 1-2% with
//! it (`tests::avg_rate_reaches_goal_with_10k_zipf_keys`). So each sampler also tracks the events it expected to keep in the running
//! interval (`Σ 1 / rate` over its events, exact, free of the keep decision's randomness) and,
//! when the interval ends, compares it with the goal (`N / goal_rate`, or the throughput
//! budget): the next budget is multiplied by a correction `c ← c · (goal / expected)^½`, kept
//! in `[0.5, 2]`. The square root damps the step against noisy intervals; a steady bias is
//! halved (in log terms) every interval. This is our addition, not part of dynsampler-go.

use loupe_event::Event;
use serde::{Deserialize, Serialize};

use crate::avg::AvgRate;
use crate::ema::EmaRate;
use crate::key::KeySpec;
use crate::table::KeyTable;
use crate::throughput::Throughput;

/// What a sampler does, with its parameters. Rates are fractional, >= 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SamplerKind {
    /// Keep 1 in `rate`, whatever the key.
    Fixed {
        rate: f64,
    },
    AvgRate(AvgRate),
    EmaRate(EmaRate),
    Throughput(Throughput),
}

impl SamplerKind {
    /// The name used in config files (`sampler = "ema"`).
    pub fn config_name(&self) -> &'static str {
        match self {
            SamplerKind::Fixed { .. } => "fixed",
            SamplerKind::AvgRate(_) => "avg",
            SamplerKind::EmaRate(_) => "ema",
            SamplerKind::Throughput(_) => "throughput",
        }
    }

    fn interval_ms(&self) -> Option<u64> {
        match self {
            SamplerKind::Fixed { .. } => None,
            SamplerKind::AvgRate(p) => Some(p.interval_ms),
            SamplerKind::EmaRate(p) => Some(p.interval_ms),
            SamplerKind::Throughput(p) => Some(p.interval_ms),
        }
    }

    fn max_keys(&self) -> usize {
        match self {
            SamplerKind::Fixed { .. } => 1,
            SamplerKind::AvgRate(p) => p.max_keys,
            SamplerKind::EmaRate(p) => p.max_keys,
            SamplerKind::Throughput(p) => p.max_keys,
        }
    }

    /// Parameters pulled into range, so a kind built by hand (without the config's
    /// validation) can never make a sampler panic or divide by zero.
    fn sanitized(mut self) -> Self {
        let at_least_1 = |x: f64| if x.is_finite() && x >= 1.0 { x } else { 1.0 };
        let interval = |ms: u64| ms.clamp(1, 365 * 24 * 3600 * 1000);
        match &mut self {
            SamplerKind::Fixed { rate } => *rate = at_least_1(*rate),
            SamplerKind::AvgRate(p) => {
                p.goal_rate = at_least_1(p.goal_rate);
                p.interval_ms = interval(p.interval_ms);
            }
            SamplerKind::EmaRate(p) => {
                p.goal_rate = at_least_1(p.goal_rate);
                p.interval_ms = interval(p.interval_ms);
                if !(p.weight > 0.0 && p.weight <= 1.0) {
                    p.weight = crate::config::DEFAULT_EMA_WEIGHT;
                }
                if !(p.burst_multiple.is_finite() && p.burst_multiple >= 1.0) {
                    p.burst_multiple = crate::config::DEFAULT_BURST_MULTIPLE;
                }
            }
            SamplerKind::Throughput(p) => {
                if !(p.goal_events_per_second.is_finite() && p.goal_events_per_second > 0.0) {
                    p.goal_events_per_second = 1.0;
                }
                p.interval_ms = interval(p.interval_ms);
            }
        }
        self
    }
}

/// The rate a sampler gives an event, and the event's key (`None` for a fixed sampler or one
/// without key fields).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled<'a> {
    pub rate: f64,
    pub key: Option<&'a str>,
}

/// One key's state, for tools and tests (`loupe sampling simulate`, `explain`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyRate<'a> {
    pub key: &'a str,
    /// The rate events of this key get now.
    pub rate: f64,
    /// What the rate was computed from: last interval's count, or the smoothed count.
    pub basis: f64,
    /// Events counted in the running interval.
    pub count: u64,
}

/// A sampler: its kind, key fields and learned state. See the module doc.
#[derive(Debug, Clone)]
pub struct Sampler {
    pub(crate) kind: SamplerKind,
    pub(crate) keys: KeySpec,
    pub(crate) table: KeyTable,
    pub(crate) interval_start_us: Option<i64>,
    pub(crate) intervals_completed: u64,
    /// The EMA sampler's `Σ ema`, for burst detection.
    pub(crate) smoothed_total: f64,
    /// `Σ 1 / rate` over this interval's events.
    pub(crate) expected_kept: f64,
    /// The budget correction (see the module doc).
    pub(crate) correction: f64,
    /// The rates in force came from an allocation (not warm-up), so the interval's
    /// `expected_kept` says something about the allocation.
    pub(crate) allocated: bool,
}

/// The range of the budget correction.
const CORRECTION_RANGE: (f64, f64) = (0.5, 2.0);

impl Sampler {
    pub fn new(kind: SamplerKind, keys: KeySpec) -> Self {
        let kind = kind.sanitized();
        Sampler {
            table: KeyTable::new(kind.max_keys()),
            kind,
            keys,
            interval_start_us: None,
            intervals_completed: 0,
            smoothed_total: 0.0,
            expected_kept: 0.0,
            correction: 1.0,
            allocated: false,
        }
    }

    /// A fixed-rate sampler.
    pub fn fixed(rate: f64) -> Self {
        Sampler::new(SamplerKind::Fixed { rate }, KeySpec::default())
    }

    pub fn kind(&self) -> &SamplerKind {
        &self.kind
    }

    pub fn key_spec(&self) -> &KeySpec {
        &self.keys
    }

    /// Intervals ended so far (early ends by burst detection included).
    pub fn intervals_completed(&self) -> u64 {
        self.intervals_completed
    }

    /// When the running interval started, if one has.
    pub fn interval_start_us(&self) -> Option<i64> {
        self.interval_start_us
    }

    /// Counts `event` under its key and returns the key's current rate. Allocates only for a
    /// key seen for the first time (its readable name).
    pub fn sample(&mut self, event: &Event, now_us: i64) -> Sampled<'_> {
        if let SamplerKind::Fixed { rate } = self.kind {
            return Sampled { rate, key: None };
        }
        self.advance(now_us);
        let burst = match &self.kind {
            SamplerKind::EmaRate(p) => p.is_burst(
                self.table.total(),
                self.smoothed_total,
                self.intervals_completed,
            ),
            _ => false,
        };
        if burst {
            self.end_interval();
            self.interval_start_us = Some(now_us);
        }
        let hash = self.keys.hash(event);
        let keys = &self.keys;
        let slot = self.table.count(hash, || keys.render(event));
        self.expected_kept += 1.0 / slot.rate;
        Sampled {
            rate: slot.rate,
            key: (!keys.is_empty()).then_some(slot.name.as_str()),
        }
    }

    /// The rate `event` would get now, without counting it.
    pub fn peek_rate(&self, event: &Event) -> f64 {
        match self.kind {
            SamplerKind::Fixed { rate } => rate,
            _ => match self.table.get(self.keys.hash(event)) {
                Some(slot) => slot.rate,
                None if self.table.slots().len() >= self.table.max_keys() => {
                    self.table.overflow().rate
                }
                None => 1.0,
            },
        }
    }

    /// Ends the running interval if `now_us` is past it. [`Sampler::sample`] calls this; call
    /// it yourself to end intervals while no events arrive.
    pub fn advance(&mut self, now_us: i64) {
        let Some(interval_ms) = self.kind.interval_ms() else {
            return;
        };
        let interval_us = i128::from(interval_ms) * 1000;
        let Some(start) = self.interval_start_us else {
            self.interval_start_us = Some(now_us);
            return;
        };
        let elapsed = i128::from(now_us) - i128::from(start);
        if elapsed < interval_us {
            return;
        }
        // Whole intervals that passed; all but the first saw no events, and an empty interval
        // changes nothing, so one end is enough.
        let passed = elapsed / interval_us;
        self.end_interval();
        let skipped = u64::try_from(passed - 1).unwrap_or(u64::MAX);
        self.intervals_completed = self.intervals_completed.saturating_add(skipped);
        let next = i128::from(start) + passed * interval_us;
        self.interval_start_us = Some(i64::try_from(next).unwrap_or(now_us));
    }

    /// Ends the running interval now: rates for the next one from this one's counts.
    fn end_interval(&mut self) {
        self.update_correction();
        let table = &mut self.table;
        let scale = self.correction;
        let recomputed = match &self.kind {
            SamplerKind::Fixed { .. } => false,
            SamplerKind::AvgRate(p) => {
                p.update_bases(table) && {
                    p.recompute(table, scale);
                    true
                }
            }
            SamplerKind::EmaRate(p) => {
                p.update_bases(table) && {
                    p.recompute(table, scale);
                    true
                }
            }
            SamplerKind::Throughput(p) => {
                p.update_bases(table) && {
                    p.recompute(table, scale);
                    true
                }
            }
        };
        self.allocated |= recomputed;
        self.expected_kept = 0.0;
        table.reset_counts();
        self.smoothed_total = self.table.all().map(|s| s.basis).sum();
        self.intervals_completed = self.intervals_completed.saturating_add(1);
    }

    /// Moves the budget correction by how far the ending interval's expected kept events were
    /// from its goal (see the module doc).
    fn update_correction(&mut self) {
        let n = self.table.total() as f64;
        if !self.allocated || n <= 0.0 || self.expected_kept <= 0.0 {
            return;
        }
        let goal = match &self.kind {
            SamplerKind::Fixed { .. } => return,
            SamplerKind::AvgRate(p) => n / p.goal_rate,
            SamplerKind::EmaRate(p) => n / p.goal_rate,
            // An interval that fits in the budget keeps everything: that is not an undershoot.
            SamplerKind::Throughput(p) => p.budget().min(n),
        };
        let step = (goal / self.expected_kept).sqrt();
        if step.is_finite() {
            self.correction =
                (self.correction * step).clamp(CORRECTION_RANGE.0, CORRECTION_RANGE.1);
        }
    }

    /// The budget correction in force (1 until the sampler has seen itself miss its goal).
    pub fn budget_correction(&self) -> f64 {
        self.correction
    }

    /// Rates from the current bases (after a restore under different parameters).
    pub(crate) fn recompute_rates(&mut self) {
        let table = &mut self.table;
        let scale = self.correction;
        match &self.kind {
            SamplerKind::Fixed { .. } => {}
            SamplerKind::AvgRate(p) => p.recompute(table, scale),
            SamplerKind::EmaRate(p) => p.recompute(table, scale),
            SamplerKind::Throughput(p) => p.recompute(table, scale),
        }
        self.smoothed_total = self.table.all().map(|s| s.basis).sum();
    }

    /// Every key with its rate; the overflow key last, when it has seen traffic.
    pub fn key_rates(&self) -> impl Iterator<Item = KeyRate<'_>> {
        let overflow = self.table.overflow();
        let overflow_used = overflow.count > 0 || overflow.basis > 0.0;
        self.table
            .slots()
            .iter()
            .chain(std::iter::once(overflow).filter(move |_| overflow_used))
            .map(|s| KeyRate {
                key: &s.name,
                rate: s.rate,
                basis: s.basis,
                count: s.count,
            })
    }

    /// The current rate of the key rendered as `key` ([`crate::key::OVERFLOW_KEY`] for the
    /// overflow key), if it has a slot. A linear scan: for tools and tests.
    pub fn rate_of(&self, key: &str) -> Option<f64> {
        self.key_rates().find(|k| k.key == key).map(|k| k.rate)
    }
}
