//! An SLO's status at a moment, from its per-minute buckets: the SLI and budget over the
//! period, the burn rate over each window of the alert policy (and any asked for), which
//! alerts fire and why.
//!
//! How each budgeting method reads the buckets (OpenSLO v1 leaves slices without events
//! undefined; loupe's rule is the last point):
//! - `Occurrences`: the error ratio is the weighted bad events over the weighted valid
//!   events in the window.
//! - `Timeslices`: the window is cut into slices of `timeSliceWindow` (aligned to the epoch
//!   for a rolling window, to the period's start for a calendar one); a slice is good when
//!   its weighted good ratio is at least `timeSliceTarget`. The error ratio is the share of
//!   bad slices.
//! - `RatioTimeslices`: the error ratio is one minus the mean of the slices' good ratios.
//! - A slice without events is "no data": it is neither good nor bad and does not count. A
//!   window whose slices are all empty has no error ratio (and no burn rate).
//! - A window takes the slices that overlap it, each clipped to the window: the first may
//!   have begun before the window, the last (the open one) ends with it. So a 5-minute
//!   window over 1-hour slices judges the part of the current slice it holds.
//!
//! Everything is summed from the buckets each time, so the numbers are exactly the sums of
//! the materialised minutes; a test recomputes them from raw events.

use std::collections::BTreeMap;

use super::budget::{self, Policy, RuleCheck, Tally};
use super::definition::{Budgeting, Objective, Op, Slo, Window};
use super::window::{MINUTE_US, Span, minute_floor, period_at, trailing};

/// z for the 95% interval of error ratios.
pub const Z95: f64 = 1.959_963_984_540_054;

/// What to compute besides the period and the policy's windows.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    pub now_us: i64,
    pub policy: Policy,
    /// More windows to report burn rates over (µs), such as the one an API caller asked for.
    pub extra_windows: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SloStatus {
    pub name: String,
    pub display_name: Option<String>,
    pub service: String,
    pub dataset: String,
    pub labels: BTreeMap<String, String>,
    pub method: Budgeting,
    /// The whole period the budget is counted over (a calendar period may end after now).
    pub period: Span,
    pub rolling: bool,
    pub as_of_us: i64,
    pub objectives: Vec<ObjectiveStatus>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObjectiveStatus {
    /// The objective's display name, or `objective-N` (from 1).
    pub name: String,
    pub target: f64,
    pub threshold: Option<(Op, f64)>,
    pub time_slice_target: Option<f64>,
    pub time_slice_us: Option<i64>,
    /// The period so far (from its start to the end of the current minute).
    pub period: WindowStatus,
    /// The SLI over the period so far: the good share of events, or of slices.
    pub sli: Option<f64>,
    /// `1 - burn rate over the period so far`: 1 untouched, 0 spent, negative overspent.
    pub budget_remaining: Option<f64>,
    /// The burn rate the exhaustion time assumes: the last hour's.
    pub current_burn: Option<f64>,
    /// When the remaining budget runs out at `current_burn` (µs from `as_of`).
    pub exhaustion_us: Option<i64>,
    /// The policy's windows and the extra ones, shortest first, each once.
    pub windows: Vec<WindowStatus>,
    pub alerts: Vec<RuleCheck>,
    /// All events counted so far (never decreasing while the definition stays the same):
    /// what `/metrics` exposes as counters.
    pub cumulative: Tally,
}

impl ObjectiveStatus {
    /// The window of `len_us`, if computed.
    pub fn window(&self, len_us: i64) -> Option<&WindowStatus> {
        self.windows.iter().find(|w| w.span.len_us() == len_us)
    }

    /// The severities that fire, most urgent rule first as the policy lists them.
    pub fn firing(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for a in self.alerts.iter().filter(|a| a.fires) {
            if !out.contains(&a.rule.severity.as_str()) {
                out.push(&a.rule.severity);
            }
        }
        out
    }
}

/// One window's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowStatus {
    pub span: Span,
    /// Weighted events (valid and good) in the window.
    pub tally: Tally,
    /// Bad share of events (Occurrences) or of slices; `None` without data.
    pub error_ratio: Option<f64>,
    /// 95% Wilson interval of the error ratio: over the effective number of events
    /// (Occurrences) or over the slices with data (Timeslices); none for RatioTimeslices.
    pub interval: Option<(f64, f64)>,
    /// The effective sample size behind the error ratio (events or slices).
    pub effective_size: f64,
    pub burn: Option<f64>,
    /// The share of the period's budget this window's burn spent: burn x window / period.
    pub consumed: Option<f64>,
    pub slices: Option<SliceCount>,
}

/// Slices of a window: good, bad, and without events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SliceCount {
    pub good: u64,
    pub bad: u64,
    pub empty: u64,
}

/// The status of `slo` from its buckets: per objective, minute start -> tally. `cumulative`
/// per objective are the tallies of minutes no longer kept (added to the counters).
pub fn compute(
    slo: &Slo,
    minutes: &[BTreeMap<i64, Tally>],
    retired: &[Tally],
    opts: &StatusOptions,
) -> SloStatus {
    let period = period_at(&slo.window, opts.now_us);
    let so_far = Span {
        start_us: period.start_us,
        end_us: period.end_us.min(trailing(MINUTE_US, opts.now_us).end_us),
    };
    let (rolling, slice_origin) = match slo.window {
        Window::Rolling(_) => (true, 0),
        Window::Calendar { .. } => (false, period.start_us),
    };
    let mut lengths: Vec<i64> = opts
        .policy
        .rules
        .iter()
        .flat_map(|r| [r.long_us, r.short_us])
        .chain(opts.extra_windows.iter().copied())
        .filter(|l| *l >= MINUTE_US)
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    let objectives = slo
        .objectives
        .iter()
        .enumerate()
        .map(|(i, objective)| {
            let empty = BTreeMap::new();
            let buckets = minutes.get(i).unwrap_or(&empty);
            let reader = Reader {
                buckets,
                method: slo.method,
                objective,
                slice_origin,
                period_us: period.len_us(),
            };
            let period_status = reader.window(so_far);
            let windows: Vec<WindowStatus> = lengths
                .iter()
                .map(|l| reader.window(trailing(*l, opts.now_us)))
                .collect();
            let find = |l: i64| {
                windows
                    .iter()
                    .find(|w| w.span.len_us() == l)
                    .expect("every rule's window is computed")
            };
            let alerts = opts
                .policy
                .rules
                .iter()
                .map(|rule| {
                    let (long, short) = (find(rule.long_us), find(rule.short_us));
                    budget::check(
                        rule,
                        long.burn,
                        short.burn,
                        long.tally.bad(),
                        opts.policy.min_bad_events,
                    )
                })
                .collect();
            let budget_remaining = period_status.burn.map(|b| 1.0 - b);
            let current_burn = reader.window(trailing(60 * MINUTE_US, opts.now_us)).burn;
            let exhaustion_us = match (budget_remaining, current_burn) {
                (Some(r), Some(b)) => budget::exhaustion_us(r, b, period.len_us()),
                _ => None,
            };
            let cumulative = buckets
                .values()
                .fold(retired.get(i).copied().unwrap_or_default(), |a, t| {
                    a.plus(t)
                });
            ObjectiveStatus {
                name: objective
                    .display_name
                    .clone()
                    .unwrap_or_else(|| format!("objective-{}", i + 1)),
                target: objective.target,
                threshold: objective.threshold,
                time_slice_target: objective.time_slice_target,
                time_slice_us: objective.time_slice_window.map(|w| w.micros()),
                sli: period_status.error_ratio.map(|e| 1.0 - e),
                period: period_status,
                budget_remaining,
                current_burn,
                exhaustion_us,
                windows,
                alerts,
                cumulative,
            }
        })
        .collect();
    SloStatus {
        name: slo.name.clone(),
        display_name: slo.display_name.clone(),
        service: slo.service.clone(),
        dataset: slo.dataset.clone(),
        labels: slo.labels.clone(),
        method: slo.method,
        period,
        rolling,
        as_of_us: opts.now_us,
        objectives,
    }
}

/// Reads windows out of one objective's buckets.
struct Reader<'a> {
    buckets: &'a BTreeMap<i64, Tally>,
    method: Budgeting,
    objective: &'a Objective,
    slice_origin: i64,
    period_us: i64,
}

impl Reader<'_> {
    fn sum(&self, from_us: i64, to_us: i64) -> Tally {
        self.buckets
            .range(from_us..to_us)
            .fold(Tally::default(), |a, (_, t)| a.plus(t))
    }

    fn window(&self, span: Span) -> WindowStatus {
        let tally = self.sum(span.start_us, span.end_us);
        let budget = self.objective.budget();
        let (error_ratio, interval, effective_size, slices) = match self.method {
            Budgeting::Occurrences => (
                tally.error_ratio(),
                tally.error_interval(Z95),
                tally.effective_size(),
                None,
            ),
            Budgeting::Timeslices | Budgeting::RatioTimeslices => {
                let ratios = self.slice_ratios(span);
                let mut count = SliceCount::default();
                let slice_target = self.objective.time_slice_target.unwrap_or(1.0);
                for r in &ratios {
                    match r {
                        None => count.empty += 1,
                        Some(r) if *r >= slice_target => count.good += 1,
                        Some(_) => count.bad += 1,
                    }
                }
                let with_data: Vec<f64> = ratios.iter().flatten().copied().collect();
                let n = with_data.len() as f64;
                if with_data.is_empty() {
                    (None, None, 0.0, Some(count))
                } else if self.method == Budgeting::Timeslices {
                    let e = count.bad as f64 / n;
                    let bad = Tally::uniform(count.good + count.bad, count.good, 1.0);
                    (Some(e), bad.error_interval(Z95), n, Some(count))
                } else {
                    let mean = with_data.iter().sum::<f64>() / n;
                    (Some((1.0 - mean).max(0.0)), None, n, Some(count))
                }
            }
        };
        let burn = budget::burn_rate(error_ratio, budget);
        WindowStatus {
            span,
            tally,
            error_ratio,
            interval,
            effective_size,
            burn,
            consumed: burn.map(|b| budget::consumed(b, span.len_us(), self.period_us)),
            slices,
        }
    }

    /// The good ratio of each slice that overlaps `span`, clipped to it (`None`: no events):
    /// a window shorter than a slice still sees the slice it is in.
    fn slice_ratios(&self, span: Span) -> Vec<Option<f64>> {
        let len = self
            .objective
            .time_slice_window
            .map_or(MINUTE_US, |w| w.micros())
            .max(MINUTE_US);
        let mut out = Vec::new();
        let mut start = span.start_us;
        while start < span.end_us {
            // the next slice boundary after `start`
            let next = start + (len - (start - self.slice_origin).rem_euclid(len));
            let t = self.sum(minute_floor(start), next.min(span.end_us));
            out.push(t.error_ratio().map(|e| 1.0 - e));
            start = next;
        }
        out
    }
}
