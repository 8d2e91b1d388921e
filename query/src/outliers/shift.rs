//! Whether a value's events have a higher measure than the others' (`duration_ms`), for a
//! selection that is a threshold on that measure (`duration_ms > 812`, which `--above p95
//! duration_ms` becomes).
//!
//! The selection-vs-baseline table ([`super::stats`]) keeps only which side of the threshold
//! an event fell on. That throws information away (Cohen, "The cost of dichotomization",
//! Applied Psychological Measurement 7(3), 1983; MacCallum et al., "On the practice of
//! dichotomization of quantitative variables", Psychological Methods 7(1), 2002), and most
//! where it hurts: a cause that makes its requests 1.5x slower lifts their chance of passing
//! p95 from 5% to ~11%, so with 1 in 20 successes stored a cause of 2,500 requests leaves a
//! dozen selected events, too few to pass a false discovery rate over thousands of values;
//! yet all ~125 of its stored events are 1.5x slower, which their mean says clearly.
//!
//! The statistic is the difference of the weighted means of `ln(1 + measure)` (latencies and
//! sizes vary by orders of magnitude; the log makes a multiplicative slowdown a shift), with
//! each mean's design-based (linearization) variance, `Var(ȳ) = Σ w² (y - ȳ)² / (Σ w)²`
//! (Särndal, Swensson and Wretman, Model Assisted Survey Sampling, 1992, 5.5), so a few heavy
//! events count as few. The z of the difference gives a one-sided p-value (higher in the
//! group). The sums it needs add across partitions and subtract for "the rest", like the
//! cells do.
//!
//! No minimum effect is asked for (a margin under the null, as Murphy and Myors' minimum-effect
//! tests have, Journal of Applied Psychology 84(2), 1999): with `ln 1.05` the quality bench
//! lost two 1.5x causes and kept its one false positive, a database time capped by the
//! request's (`db.duration_ms >= 9`), whose events leave out the fastest requests and so are
//! slower on average: a real association, if not a cause.

use super::stats;

/// The weighted sums of `y` (the log of the measure) over a group of events.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    pub w: f64,
    pub w2: f64,
    pub wy: f64,
    pub wy2: f64,
    pub w2y: f64,
    pub w2y2: f64,
}

impl Moments {
    /// Adds one event of weight `w` and log-measure `y`.
    pub fn add(&mut self, w: f64, y: f64) {
        let w2 = w * w;
        self.w += w;
        self.w2 += w2;
        self.wy += w * y;
        self.wy2 += w * y * y;
        self.w2y += w2 * y;
        self.w2y2 += w2 * y * y;
    }

    pub fn plus(&self, o: &Moments) -> Moments {
        Moments {
            w: self.w + o.w,
            w2: self.w2 + o.w2,
            wy: self.wy + o.wy,
            wy2: self.wy2 + o.wy2,
            w2y: self.w2y + o.w2y,
            w2y2: self.w2y2 + o.w2y2,
        }
    }

    pub fn minus(&self, o: &Moments) -> Moments {
        Moments {
            w: (self.w - o.w).max(0.0),
            w2: (self.w2 - o.w2).max(0.0),
            wy: self.wy - o.wy,
            wy2: (self.wy2 - o.wy2).max(0.0),
            w2y: self.w2y - o.w2y,
            w2y2: (self.w2y2 - o.w2y2).max(0.0),
        }
    }

    /// How many unweighted events the group is worth (Kish).
    pub fn effective(&self) -> f64 {
        if self.w2 > 0.0 {
            self.w * self.w / self.w2
        } else {
            0.0
        }
    }

    /// The weighted mean and the linearized variance of that mean.
    fn mean_and_variance(&self) -> Option<(f64, f64)> {
        if self.w <= 0.0 {
            return None;
        }
        let mean = self.wy / self.w;
        // Σ w² (y - ȳ)² expanded, so it can be computed from sums.
        let ss = self.w2y2 - 2.0 * mean * self.w2y + mean * mean * self.w2;
        Some((mean, ss.max(0.0) / (self.w * self.w)))
    }
}

/// How a group's measure compares with the rest's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// The ratio of the geometric means (of `1 + measure`): 1.5 when the group's events take
    /// half as long again.
    pub ratio: f64,
    /// One-sided p-value of "the group's mean is no higher than the rest's".
    pub p_value: f64,
}

/// Fewest effective events (Kish: `(Σw)² / Σw²`) on each side for the test to speak. The z
/// of two means is a normal approximation; with a handful of events (or a few heavy ones) the
/// variance is itself a guess, and at the tails thousands of tests put the bar in (p ~ 1e-5)
/// Student's t with 3 degrees of freedom needs t ~ 30 where z needs 4.3.
pub const MIN_EFFECTIVE: f64 = 30.0;

/// `group` against `rest`; `None` when either has fewer than [`MIN_EFFECTIVE`] effective
/// events or the variance is nil (constant measures): no evidence either way.
pub fn compare(group: &Moments, rest: &Moments) -> Option<Shift> {
    if group.effective() < MIN_EFFECTIVE || rest.effective() < MIN_EFFECTIVE {
        return None;
    }
    let (m1, v1) = group.mean_and_variance()?;
    let (m2, v2) = rest.mean_and_variance()?;
    let se = (v1 + v2).sqrt();
    if !se.is_finite() || se <= 0.0 {
        return None;
    }
    Some(Shift {
        ratio: (m1 - m2).exp(),
        p_value: stats::upper_tail((m1 - m2) / se),
    })
}

/// The p-value of a candidate tested both ways, on the table and on the measure: the smaller
/// of the two, doubled (Bonferroni over the two tests), so asking twice costs what it should.
pub fn either(table_p: f64, shift: Option<Shift>) -> f64 {
    match shift {
        Some(s) => (2.0 * table_p.min(s.p_value)).min(1.0),
        None => table_p,
    }
}

/// `ln(1 + x)` for a measure value: the scale the shift is measured on. Negative measures
/// (not latencies or sizes) are taken as they are, signed.
pub fn log_measure(x: f64) -> f64 {
    if x >= 0.0 { x.ln_1p() } else { -(-x).ln_1p() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slower_group_is_found_and_an_equal_one_is_not() {
        // Deterministic "noise": a spread of log-durations around a centre.
        let fill = |centre: f64, n: usize, w: f64| {
            let mut m = Moments::default();
            for i in 0..n {
                let u = (i as f64 + 0.5) / n as f64;
                m.add(w, centre + 0.9 * (u - 0.5) * 3.4);
            }
            m
        };
        let rest = fill(45f64.ln(), 20_000, 20.0);
        // 125 events of weight 20, 1.5x slower: plainly so.
        let slow = fill(45f64.ln() + 1.5f64.ln(), 125, 20.0);
        let s = compare(&slow, &rest).unwrap();
        assert!((s.ratio - 1.5).abs() < 1e-9, "{s:?}");
        assert!(s.p_value < 1e-6, "{s:?}");
        // The same events at the rest's speed: no evidence.
        let same = fill(45f64.ln(), 125, 20.0);
        let s = compare(&same, &rest).unwrap();
        assert!((s.ratio - 1.0).abs() < 1e-9, "{s:?}");
        assert!((s.p_value - 0.5).abs() < 1e-6, "{s:?}");
        // Twenty events, 1.5x slower: too few for the normal approximation to speak.
        let few = fill(45f64.ln() + 1.5f64.ln(), 20, 20.0);
        assert_eq!(compare(&few, &rest), None);
        // Sums subtract: the rest of `rest` without `same` is what was added.
        let all = rest.plus(&same);
        let back = all.minus(&same);
        assert!((back.wy - rest.wy).abs() < 1e-6 * rest.wy.abs());
        assert_eq!(compare(&Moments::default(), &rest), None);
    }

    #[test]
    fn either_test_costs_a_factor_of_two() {
        let s = Shift {
            ratio: 1.5,
            p_value: 1e-8,
        };
        assert_eq!(either(0.01, Some(s)), 2e-8);
        assert_eq!(either(0.01, None), 0.01);
        assert_eq!(
            either(
                0.7,
                Some(Shift {
                    ratio: 1.0,
                    p_value: 0.9
                })
            ),
            1.0
        );
    }
}
