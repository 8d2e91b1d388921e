//! The EMA sampler: the average-rate allocation on exponentially smoothed counts, so rates
//! follow changing traffic without jumping on every noisy interval, and bursts are caught
//! before the interval ends.
//!
//! The algorithm is that of Honeycomb's dynsampler-go `EMASampleRate`
//! (<https://github.com/honeycombio/dynsampler-go>, `emasamplerate.go`; Refinery's
//! `EMADynamicSampler`, <https://github.com/honeycombio/refinery/blob/main/refinery_rules.md>):
//!
//! - At the end of each interval every key's smoothed count becomes
//!   `ema = weight · count + (1 - weight) · ema` (`weight` is the usual EMA alpha; keys not
//!   seen in the interval decay with `count = 0`). A key's first interval sets `ema = count`
//!   (dynsampler-go starts from 0, which halves a new key's weight at the default `weight`).
//!   An interval with no events at all changes nothing, as in dynsampler-go: the averages
//!   should not decay through an outage.
//! - Keys whose `ema` falls below [`AGE_OUT`] lose their slot (dynsampler-go's `AgeOutValue`).
//! - Rates: the budget `Σ ema / goal_rate` is shared by log-share water-filling and a key's
//!   rate is `ema_k / b_k`, as in [`crate::avg`] (same rules for new keys, warm-up and the
//!   overflow key).
//! - Bursts: once `burst_detection_delay_intervals` intervals have completed (so the average
//!   means something), if this interval's running count reaches `burst_multiple · Σ ema` the
//!   interval ends at once: the counts so far are folded into the averages, rates are
//!   recomputed and a new interval starts now. A sudden flood is thus sampled within a fraction
//!   of an interval instead of kept whole until the interval ends (dynsampler-go's
//!   `BurstMultiple` and `BurstDetectionDelay`).

use serde::{Deserialize, Serialize};

use crate::avg::log_share_rates;
use crate::table::KeyTable;

/// A key whose smoothed count falls below this loses its slot: a key seen once survives one
/// quiet interval at the default weight of 0.5, and is gone after the second.
pub const AGE_OUT: f64 = 0.5;

/// Parameters of the EMA sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaRate {
    /// Seen events per kept event, averaged over all keys (>= 1, fractional allowed).
    pub goal_rate: f64,
    /// Length of an interval, in milliseconds.
    pub interval_ms: u64,
    /// The weight of the newest interval in the average (alpha), in (0, 1].
    pub weight: f64,
    /// An interval whose running count reaches this multiple of the smoothed total is a burst.
    pub burst_multiple: f64,
    /// Intervals to complete before bursts are detected.
    pub burst_detection_delay_intervals: u32,
    /// Keys with a slot of their own; the rest share the overflow key.
    pub max_keys: usize,
}

impl EmaRate {
    /// Folds the ended interval's counts into the averages and frees the slots of keys that
    /// aged out. False when the interval saw nothing: then nothing changes.
    pub(crate) fn update_bases(&self, table: &mut KeyTable) -> bool {
        if table.total() == 0 {
            return false;
        }
        let a = self.weight;
        for s in table.all_mut() {
            let count = s.count as f64;
            s.basis = if s.fresh {
                count
            } else {
                a * count + (1.0 - a) * s.basis
            };
            s.fresh = false;
        }
        table.retain(|s| s.basis >= AGE_OUT);
        true
    }

    pub(crate) fn recompute(&self, table: &mut KeyTable, scale: f64) {
        log_share_rates(table, self.goal_rate, scale);
    }

    /// Whether the running interval is a burst (see the module doc).
    pub(crate) fn is_burst(&self, running: u64, smoothed_total: f64, completed: u64) -> bool {
        completed >= u64::from(self.burst_detection_delay_intervals)
            && running as f64 >= self.burst_multiple * smoothed_total.max(1.0)
    }
}
