//! The throughput sampler: aims at a goal number of kept events per second, whatever the
//! incoming volume, shared fairly among keys.
//!
//! The algorithm follows Honeycomb's dynsampler-go `TotalThroughput`
//! (<https://github.com/honeycombio/dynsampler-go>, `totalthroughput.go`; Refinery's
//! `TotalThroughputSampler`): the counts of interval `k` set the rates of interval `k + 1`,
//! and the budget of an interval is `goal_events_per_second × interval seconds`.
//! dynsampler-go gives every key `budget / number of keys` (at least 1) and rounds rates down
//! to integers, so the budget small keys cannot use is lost and the goal is missed. Here the
//! budget is shared by max-min fairness ([`crate::alloc::max_min`]): keys with fewer events
//! than the fair share are kept whole (rate 1) and what they leave is shared among the others,
//! until the budget is used. A key's rate is `count_k / b_k`, fractional, at least 1. When the
//! whole interval fits in the budget every rate is 1.
//!
//! New keys get rate 1, the first interval keeps everything, empty intervals leave the rates
//! as they are and keys not seen during an interval lose their slot, as in [`crate::avg`].

use serde::{Deserialize, Serialize};

use crate::alloc;
use crate::table::KeyTable;

/// Parameters of the throughput sampler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    /// Kept events per second, over all keys (> 0).
    pub goal_events_per_second: f64,
    /// Length of an interval, in milliseconds.
    pub interval_ms: u64,
    /// Keys with a slot of their own; the rest share the overflow key.
    pub max_keys: usize,
}

impl Throughput {
    /// See [`crate::avg::AvgRate`]'s method of the same name.
    pub(crate) fn update_bases(&self, table: &mut KeyTable) -> bool {
        table.counts_become_bases()
    }

    /// The kept events an interval aims at.
    pub(crate) fn budget(&self) -> f64 {
        self.goal_events_per_second * self.interval_ms as f64 / 1000.0
    }

    pub(crate) fn recompute(&self, table: &mut KeyTable, scale: f64) {
        let bases: Vec<f64> = table.all().map(|s| s.basis).collect();
        let budget = scale * self.budget();
        let budgets = alloc::max_min(&bases, budget);
        table.set_rates(&budgets);
    }
}
