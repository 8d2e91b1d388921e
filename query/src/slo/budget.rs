//! The arithmetic of an SLO over weighted events: error ratio, its interval, burn rate,
//! budget remaining and consumed, time to exhaustion, and the multi-window multi-burn-rate
//! alert policy. Pure functions of [`Tally`]s, so every number the status shows can be
//! recomputed by hand.
//!
//! Formulas (Google SRE Workbook, "Alerting on SLOs"): with the objective's allowed error
//! share `budget = 1 - target`,
//! - burn rate over a window = error ratio in it / budget: 1 spends the budget exactly over
//!   the SLO period;
//! - budget consumed by a window = burn rate x window / period;
//! - budget remaining over the period = 1 - burn rate over the period (negative when spent);
//! - time to exhaustion at burn rate `b` = remaining x period / b.
//!
//! No traffic is "no data" ([`None`]), never a NaN that spreads into longer windows.

/// Weighted counts of one span of time: the valid events (`total`) and the good ones among
/// them, each as the sum of weights, the sum of squared weights, and stored rows.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub good: f64,
    pub good_sq: f64,
    pub good_rows: u64,
    pub total: f64,
    pub total_sq: f64,
    pub total_rows: u64,
}

impl Tally {
    /// `rows` events of weight `w`, `good_rows` of them good.
    pub fn uniform(total_rows: u64, good_rows: u64, w: f64) -> Tally {
        Tally {
            good: good_rows as f64 * w,
            good_sq: good_rows as f64 * w * w,
            good_rows,
            total: total_rows as f64 * w,
            total_sq: total_rows as f64 * w * w,
            total_rows,
        }
    }

    pub fn plus(&self, o: &Tally) -> Tally {
        Tally {
            good: self.good + o.good,
            good_sq: self.good_sq + o.good_sq,
            good_rows: self.good_rows + o.good_rows,
            total: self.total + o.total,
            total_sq: self.total_sq + o.total_sq,
            total_rows: self.total_rows + o.total_rows,
        }
    }

    /// The events that were not good (weighted).
    pub fn bad(&self) -> f64 {
        (self.total - self.good).max(0.0)
    }

    /// Share of the weight that was bad; `None` without traffic.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.total > 0.0).then(|| self.bad() / self.total)
    }

    /// The effective sample size of the error ratio: `p (1 - p) / Var(p)` with `Var(p)` the
    /// linearized variance of a weighted proportion, `Σ w² (y - p)² / (Σ w)²` (Särndal,
    /// Swensson and Wretman 1992, ch. 5). The stored rows when every weight is 1; a handful
    /// of heavy events count as a handful. When the ratio is 0 or 1 (no variance to measure),
    /// Kish's `(Σ w)² / Σ w²`.
    pub fn effective_size(&self) -> f64 {
        let Some(p) = self.error_ratio() else {
            return 0.0;
        };
        let bad_sq = (self.total_sq - self.good_sq).max(0.0);
        let var =
            (bad_sq * (1.0 - p) * (1.0 - p) + self.good_sq * p * p) / (self.total * self.total);
        if var > 0.0 && p > 0.0 && p < 1.0 {
            p * (1.0 - p) / var
        } else if self.total_sq > 0.0 {
            self.total * self.total / self.total_sq
        } else {
            0.0
        }
    }

    /// The Wilson score interval of the error ratio at `z` (1.96 for 95%), on the effective
    /// sample size (Wilson 1927; Brown, Cai and DasGupta, Statistical Science 16(2), 2001):
    /// honest with few events, never outside [0, 1].
    pub fn error_interval(&self, z: f64) -> Option<(f64, f64)> {
        let p = self.error_ratio()?;
        let n = self.effective_size();
        if n <= 0.0 {
            return None;
        }
        let z2 = z * z;
        let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
        let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        Some(((centre - half).max(0.0), (centre + half).min(1.0)))
    }
}

/// Burn rate: the error ratio over the allowed one. `None` without traffic.
pub fn burn_rate(error_ratio: Option<f64>, budget: f64) -> Option<f64> {
    let e = error_ratio?;
    Some(if budget > 0.0 {
        e / budget
    } else if e > 0.0 {
        f64::INFINITY
    } else {
        0.0
    })
}

/// The budget share a window at `burn` consumed: `burn x window / period`.
pub fn consumed(burn: f64, window_us: i64, period_us: i64) -> f64 {
    burn * window_us as f64 / period_us as f64
}

/// Time until `remaining` (a share of the budget) is spent at `burn`; `None` when not
/// burning or already spent.
pub fn exhaustion_us(remaining: f64, burn: f64, period_us: i64) -> Option<i64> {
    (burn > 0.0 && remaining > 0.0).then(|| (remaining * period_us as f64 / burn) as i64)
}

/// One row of a multi-window multi-burn-rate policy: fire when the burn rate over both the
/// long and the short window exceeds `burn`.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnRule {
    pub severity: String,
    pub long_us: i64,
    pub short_us: i64,
    pub burn: f64,
}

/// The policy: its rows, and the fewest bad events (weighted, in the long window) an alert
/// needs, so a quiet service does not page on one failure in four requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub rules: Vec<BurnRule>,
    pub min_bad_events: f64,
}

impl Default for Policy {
    /// The SRE Workbook's table 5-8, for a 30-day period: page on 2% of the budget in 1h
    /// (5m confirms) at 14.4x, page on 5% in 6h (30m) at 6x, ticket on 10% in 3d (6h) at 1x.
    fn default() -> Self {
        const MIN: i64 = 60_000_000;
        let rule = |severity: &str, long: i64, short: i64, burn: f64| BurnRule {
            severity: severity.to_owned(),
            long_us: long * MIN,
            short_us: short * MIN,
            burn,
        };
        Policy {
            rules: vec![
                rule("page", 60, 5, 14.4),
                rule("page", 360, 30, 6.0),
                rule("ticket", 3 * 1440, 360, 1.0),
            ],
            min_bad_events: 5.0,
        }
    }
}

/// Why a rule fires, or not: its windows' burn rates and the bad events behind them.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleCheck {
    pub rule: BurnRule,
    pub long_burn: Option<f64>,
    pub short_burn: Option<f64>,
    pub long_bad: f64,
    pub fires: bool,
}

/// Checks `rule` against the burn rates of its long and short windows and the bad events
/// (weighted) in the long one.
pub fn check(
    rule: &BurnRule,
    long_burn: Option<f64>,
    short_burn: Option<f64>,
    long_bad: f64,
    min_bad: f64,
) -> RuleCheck {
    let over = |b: Option<f64>| b.is_some_and(|b| b > rule.burn);
    RuleCheck {
        rule: rule.clone(),
        long_burn,
        short_burn,
        long_bad,
        fires: over(long_burn) && over(short_burn) && long_bad >= min_bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn the_workbook_s_numbers() {
        // 99.9% over 30 days: 1.44% errors is a burn of 14.4, which spends 2% of the budget
        // in an hour and all of it in 50 hours.
        let t = Tally::uniform(100_000, 100_000 - 1_440, 1.0);
        let burn = burn_rate(t.error_ratio(), 0.001).unwrap();
        assert!((burn - 14.4).abs() < 1e-9, "{burn}");
        let period = 30 * 24 * HOUR;
        assert!((consumed(burn, HOUR, period) - 0.02).abs() < 1e-12);
        assert_eq!(exhaustion_us(1.0, burn, period), Some(50 * HOUR));
        assert_eq!(exhaustion_us(0.0, burn, period), None);
        assert_eq!(exhaustion_us(0.5, 0.0, period), None);
    }

    #[test]
    fn no_traffic_is_no_data_not_nan() {
        let empty = Tally::default();
        assert_eq!(empty.error_ratio(), None);
        assert_eq!(burn_rate(empty.error_ratio(), 0.001), None);
        assert_eq!(empty.error_interval(1.96), None);
        // and summing it into a window changes nothing
        let t = Tally::uniform(1000, 990, 1.0);
        assert_eq!(t.plus(&empty), t);
        // a target of 100% burns infinitely on the first error, and not at all without one
        assert_eq!(burn_rate(Some(0.01), 0.0), Some(f64::INFINITY));
        assert_eq!(burn_rate(Some(0.0), 0.0), Some(0.0));
    }

    #[test]
    fn weights_count_events_and_their_evidence() {
        // 90 successes kept 1 in 10 (weight 10) and 10 errors kept all: 910 events, 1.1% bad.
        let ok = Tally::uniform(90, 90, 10.0);
        let errors = Tally::uniform(10, 0, 1.0);
        let t = ok.plus(&errors);
        assert_eq!(t.total, 910.0);
        assert!((t.error_ratio().unwrap() - 10.0 / 910.0).abs() < 1e-12);
        // Var(p) = (10 * (1-p)^2 + 90 * 100 * p^2) / 910^2, computed here independently.
        let p: f64 = 10.0 / 910.0;
        let var = (10.0 * (1.0 - p).powi(2) + 9000.0 * p * p) / (910.0f64 * 910.0);
        assert!((t.effective_size() - p * (1.0 - p) / var).abs() < 1e-9);
        // unit weights: the effective size is the rows
        assert!((Tally::uniform(400, 380, 1.0).effective_size() - 400.0).abs() < 1e-9);
    }

    #[test]
    fn wilson_matches_values_worked_by_hand() {
        // x = 1 of n = 4 at 95%: centre (0.25 + 0.4802) / 1.9604 = 0.3724, half-width
        // sqrt(0.046875 + 0.060025) = 0.3270 (worked by hand), so [0.0456, 0.6994]; and
        // x = 0 of 20: the upper end is z² / (n + z²) = 0.1611 (Brown et al. 2001).
        let one_in_four = Tally::uniform(4, 3, 1.0);
        let (lo, hi) = one_in_four.error_interval(1.959964).unwrap();
        assert!(
            (lo - 0.0456).abs() < 5e-4 && (hi - 0.6994).abs() < 5e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = Tally::uniform(20, 20, 1.0)
            .error_interval(1.959964)
            .unwrap();
        let z2 = 1.959964f64.powi(2);
        assert_eq!(lo, 0.0);
        assert!((hi - z2 / (20.0 + z2)).abs() < 1e-6, "{hi}");
    }

    /// [`check`] on two windows' tallies, as for `Occurrences`.
    fn check(rule: &BurnRule, long: &Tally, short: &Tally, budget: f64, min_bad: f64) -> RuleCheck {
        let burn = |t: &Tally| burn_rate(t.error_ratio(), budget);
        super::check(rule, burn(long), burn(short), long.bad(), min_bad)
    }

    #[test]
    fn an_alert_needs_both_windows_and_enough_bad_events() {
        let policy = Policy::default();
        let page = &policy.rules[0];
        let burning = Tally::uniform(10_000, 9_800, 1.0); // 2% errors: burn 20 at 99.9%
        let calm = Tally::uniform(10_000, 9_999, 1.0); // burn 0.1
        assert!(check(page, &burning, &burning, 0.001, 5.0).fires);
        // the short window has recovered: no page
        let c = check(page, &burning, &calm, 0.001, 5.0);
        assert!(!c.fires && c.long_burn.unwrap() > 14.4 && c.short_burn.unwrap() < 14.4);
        // one failure in four requests burns 250x but is one event
        let quiet = Tally::uniform(4, 3, 1.0);
        let c = check(page, &quiet, &quiet, 0.001, policy.min_bad_events);
        assert!(!c.fires && c.long_burn.unwrap() > 200.0 && c.long_bad == 1.0);
        // no traffic never fires
        assert!(!check(page, &Tally::default(), &Tally::default(), 0.001, 0.0).fires);
        // the workbook's windows and burns
        let rows: Vec<(i64, i64, f64)> = policy
            .rules
            .iter()
            .map(|r| (r.long_us / 60_000_000, r.short_us / 60_000_000, r.burn))
            .collect();
        assert_eq!(rows, [(60, 5, 14.4), (360, 30, 6.0), (4320, 360, 1.0)]);
    }
}
