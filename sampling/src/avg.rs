//! The average-rate sampler: aims at a goal average rate across all keys, sampling frequent
//! keys hard and keeping rare keys.
//!
//! The algorithm is that of Honeycomb's dynsampler-go `AvgSampleRate`
//! (<https://github.com/honeycombio/dynsampler-go>, `avgsamplerate.go`; Refinery's
//! `DynamicSampler`, <https://github.com/honeycombio/refinery/blob/main/refinery_rules.md>):
//! the counts of interval `k` set the rates of interval `k + 1`.
//!
//! At the end of an interval with `N` events over keys with counts `c_k`, the interval's
//! budget of kept events is `B = N / goal_rate`. It is shared in proportion to `ln c_k`, so a
//! key ten times as frequent gets only a little more budget (dynsampler-go uses `log10`; the
//! base cancels out). Unlike dynsampler-go the share is solved by water-filling
//! ([`crate::alloc::log_share`]): a key whose share exceeds its count is kept whole and what it
//! cannot use goes to the others, so the kept total really is `B` even with thousands of small
//! keys. A key's rate is then `c_k / b_k`, fractional, at least 1. A key seen once gets a budget
//! of one event, so it is kept (rate 1).
//!
//! - **New keys** (not seen last interval) get rate 1 until the interval ends: they were rare
//!   last interval, and rate 1 is what the allocation gives a count of zero or one. A key that
//!   arrives when the table is full shares the overflow key's rate instead.
//! - **Warm-up**: before the first interval ends every key is new, so every event is kept
//!   (dynsampler-go uses the goal rate for every key instead, which drops rare keys, the very
//!   events dynamic sampling exists to keep). Restoring state
//!   ([`crate::DatasetSampler::restore`]) skips the warm-up after a restart.
//! - **Empty intervals** leave the rates as they are (dynsampler-go clears them): after a lull
//!   the old rates are a better guess than keeping everything.
//! - **Beyond `max_keys`** dynsampler-go stops counting new keys; here their events are
//!   counted in the overflow key, which gets a rate from the same allocation.
//! - Keys not seen during an interval lose their slot when it ends.
//! - The budget is multiplied by the sampler's budget correction, which removes the bias of
//!   setting rates from last interval's noisy counts (see [`crate::sampler`]).
//! - If the budget is smaller than the number of keys, every key keeps about one event per
//!   interval and the goal is exceeded (see [`crate::alloc::log_share`]): lower `max_keys` or
//!   lengthen the interval.

use serde::{Deserialize, Serialize};

use crate::alloc;
use crate::table::KeyTable;

/// Parameters of the average-rate sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvgRate {
    /// Seen events per kept event, averaged over all keys (>= 1, fractional allowed).
    pub goal_rate: f64,
    /// Length of an interval, in milliseconds.
    pub interval_ms: u64,
    /// Keys with a slot of their own; the rest share the overflow key.
    pub max_keys: usize,
}

impl AvgRate {
    /// Takes the ended interval's counts as the basis. False when the interval saw nothing:
    /// then the rates stay.
    pub(crate) fn update_bases(&self, table: &mut KeyTable) -> bool {
        table.counts_become_bases()
    }

    /// Rates from the bases: log-share water-filling of `scale · Σ basis / goal_rate`
    /// (`scale` is the sampler's budget correction, see [`crate::sampler`]).
    pub(crate) fn recompute(&self, table: &mut KeyTable, scale: f64) {
        log_share_rates(table, self.goal_rate, scale);
    }
}

/// Shared with the EMA sampler: rates from the slots' bases by log-share water-filling.
pub(crate) fn log_share_rates(table: &mut KeyTable, goal_rate: f64, scale: f64) {
    let bases: Vec<f64> = table.all().map(|s| s.basis).collect();
    let total: f64 = bases.iter().sum();
    let budgets = alloc::log_share(&bases, scale * total / goal_rate);
    table.set_rates(&budgets);
}
