//! The statistics of one candidate explanation (a field value, a range or a conjunction): how
//! much more often the events it matches are in the selection than the events it does not,
//! with weights, and how sure we can be of it.
//!
//! For a candidate, the events fall in four cells (each a weighted count, `Σ sample_rate`):
//!
//! |            | matches | does not |
//! |------------|---------|----------|
//! | selection  | `a`     | `c`      |
//! | baseline   | `b`     | `d`      |
//!
//! - **support** = `a / (a + c)`: the share of the selection the candidate covers.
//! - **risk ratio** = `(a / (a + b)) / (c / (c + d))`: how much likelier an event that matches
//!   is to be selected than one that does not. This is MacroBase's ranking metric (Bailis et
//!   al., "MacroBase: Prioritizing Attention in Fast Data", SIGMOD 2017), chosen over the
//!   odds ratio because it reads as "matching events are slow 8x as often", and over the
//!   share difference because a 0.1%-support cause with a 10x effect must not lose to a common
//!   value with a small one.
//! - **confidence bound**: the lower end of the 95% interval of the risk ratio by Katz's log
//!   method (Katz et al., Biometrics 34(3), 1978): `Var(ln RR) = 1/a - 1/(a+b) + 1/c - 1/(c+d)`,
//!   with a half added to each cell when one is empty (Haldane-Anscombe). With weights, each
//!   count in the variance is the cell's *effective sample size*, `(Σw)² / Σw²` (Kish, Survey
//!   Sampling, 1965): a cell of one event of weight 1000 has the variance of one event, not of
//!   a thousand. The design-based (linearization) variance of the two weighted proportions is
//!   computed too, and the larger used: it sees a row whose one side is a few heavy events
//!   (11 baseline events of weight 20 beside 729 selected ones of weight 1), which effective
//!   counts of the cells alone underrate. Ranking by the lower bound is the significance
//!   guard: a large ratio from a handful of events ranks below a smaller ratio that many
//!   events support.
//!
//! A candidate is **eligible** only with at least `min_raw_events` stored events in `a` and an
//! effective sample size of at least `min_effective` there, so one heavily weighted event can
//! explain nothing however extreme its ratio.

/// A weighted count: the sum of weights, the sum of squared weights and the stored rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    pub weight: f64,
    pub weight_sq: f64,
    pub rows: u64,
}

impl Cell {
    /// A cell of `rows` events of weight `w` each.
    pub fn uniform(rows: u64, w: f64) -> Cell {
        Cell {
            weight: rows as f64 * w,
            weight_sq: rows as f64 * w * w,
            rows,
        }
    }

    /// Adds one event of weight `w`.
    pub fn add(&mut self, w: f64) {
        self.weight += w;
        self.weight_sq += w * w;
        self.rows += 1;
    }

    /// `(Σw)² / Σw²`: how many unweighted events this cell is worth for variance.
    pub fn effective(&self) -> f64 {
        if self.weight_sq > 0.0 {
            self.weight * self.weight / self.weight_sq
        } else {
            0.0
        }
    }

    /// `Σw² / Σw`: the weight of an event picked with probability proportional to its
    /// weight (0 for an empty cell).
    pub fn typical_weight(&self) -> f64 {
        if self.weight > 0.0 {
            self.weight_sq / self.weight
        } else {
            0.0
        }
    }

    pub fn minus(&self, other: &Cell) -> Cell {
        Cell {
            weight: (self.weight - other.weight).max(0.0),
            weight_sq: (self.weight_sq - other.weight_sq).max(0.0),
            rows: self.rows.saturating_sub(other.rows),
        }
    }

    pub fn plus(&self, other: &Cell) -> Cell {
        Cell {
            weight: self.weight + other.weight,
            weight_sq: self.weight_sq + other.weight_sq,
            rows: self.rows + other.rows,
        }
    }
}

/// The guard rails of eligibility.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub min_raw_events: u64,
    pub min_effective: f64,
    /// The `z` of the confidence bound (1.96: 95%, two-sided).
    pub z: f64,
    /// The false discovery rate the reported explanations are held to ([`fdr_cutoff`]).
    pub false_discovery_rate: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_raw_events: 10,
            min_effective: 5.0,
            z: 1.96,
            false_discovery_rate: 0.05,
        }
    }
}

/// What a candidate's four cells say.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assessment {
    /// Share of the selection's weight the candidate matches.
    pub support: f64,
    /// Share of the baseline's weight the candidate matches.
    pub baseline_share: f64,
    pub risk_ratio: f64,
    /// Lower end of the confidence interval of the risk ratio.
    pub lower: f64,
    pub upper: f64,
    /// One-sided p-value of `RR <= 1`.
    pub p_value: f64,
    /// Enough stored and effective events in the selection to count.
    pub eligible: bool,
    /// For a selection that is a threshold on a measure, how the candidate's measure compares
    /// with the rest's (see [`super::shift`]); `p_value` then covers both tests.
    pub shift: Option<super::shift::Shift>,
}

impl Assessment {
    /// This assessment with the measure's evidence added: `p_value` becomes that of either
    /// test ([`super::shift::either`]).
    pub fn with_shift(self, shift: Option<super::shift::Shift>) -> Assessment {
        Assessment {
            p_value: super::shift::either(self.p_value, shift),
            shift,
            ..self
        }
    }
}

/// Assesses a candidate from the weighted cells `a` (selection, matching) and `b` (baseline,
/// matching) and the selection's and baseline's totals.
pub fn assess(a: Cell, b: Cell, selection: Cell, baseline: Cell, t: &Thresholds) -> Assessment {
    let c = selection.minus(&a);
    let d = baseline.minus(&b);
    let ratio = |a: f64, b: f64, c: f64, d: f64| (a / (a + b)) / (c / (c + d));
    let point = ratio(a.weight, b.weight, c.weight, d.weight);
    // Katz's interval on effective counts, with the Haldane-Anscombe half when a cell is
    // empty (the point estimate stays uncorrected: infinite when c is empty).
    let (ea, eb, ec, ed) = (a.effective(), b.effective(), c.effective(), d.effective());
    let empty = [ea, eb, ec, ed].contains(&0.0);
    let h = if empty { 0.5 } else { 0.0 };
    let (ea, eb, ec, ed) = (ea + h, eb + h, ec + h, ed + h);
    let katz = 1.0 / ea - 1.0 / (ea + eb) + 1.0 / ec - 1.0 / (ec + ed);
    // The design-based (linearization) variance of the two weighted proportions, which sees
    // that a few heavy events on one side of a row make its proportion uncertain even when
    // the other side has many light ones. The larger of the two is used, so neither kind of
    // thin evidence looks stronger than it is.
    let typical = Typical::of(&selection, &baseline);
    let var = katz.max(linearized(a, b, c, d, h, typical));
    // The interval is centred on the ratio of the effective-count table when a cell is empty,
    // which is finite; otherwise on the weighted ratio itself.
    let centre = if empty {
        ratio(ea, eb, ec, ed).ln()
    } else {
        point.ln()
    };
    let se = var.max(0.0).sqrt();
    let share = |x: &Cell, of: &Cell| {
        if of.weight > 0.0 {
            x.weight / of.weight
        } else {
            0.0
        }
    };
    Assessment {
        support: share(&a, &selection),
        baseline_share: share(&b, &baseline),
        risk_ratio: point,
        lower: (centre - t.z * se).exp(),
        upper: (centre + t.z * se).exp(),
        p_value: likelihood_ratio_p(a, b, c, d, typical),
        eligible: a.rows >= t.min_raw_events && a.effective() >= t.min_effective,
        shift: None,
    }
}

/// `P(Z > z)` for a standard normal `Z`: `erfc(z / sqrt 2) / 2`, with `erfc` by the Chebyshev
/// fit of Press et al., Numerical Recipes (2nd ed., 1992, section 6.2, `erfcc`), whose
/// *relative* error is under 1.2e-7 everywhere, so the tiny p-values of strong candidates
/// keep their order.
pub fn upper_tail(z: f64) -> f64 {
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc = t * (-x * x + poly).exp();
    let erfc = if x >= 0.0 { erfc } else { 2.0 - erfc };
    erfc / 2.0
}

/// The Benjamini-Hochberg cut-off for `tested` hypotheses of which `p_values` are the ones
/// that can pass (the rest count as p = 1): the largest `p_(k)` with `p_(k) <= k q / tested`,
/// or 0 when none passes. A candidate is reported when its p-value is at most the cut-off.
pub fn fdr_cutoff(mut p_values: Vec<f64>, tested: usize, q: f64) -> f64 {
    p_values.sort_by(f64::total_cmp);
    let m = tested.max(p_values.len()) as f64;
    p_values
        .iter()
        .enumerate()
        .rfind(|&(k, &p)| p <= (k + 1) as f64 * q / m)
        .map(|(_, &p)| p)
        .unwrap_or(0.0)
}

/// One-sided p-value of "matching events are selected no more often than the others"
/// (`RR <= 1`), from the signed root of the likelihood-ratio statistic of the 2x2 table,
/// `G = 2 Σ O ln(O / E)` (Wilks 1938; the G-test of Sokal and Rohlf, Biometry, 1995).
///
/// Why not the Wald z of the interval (`ln RR / se`): its variance is taken at the observed
/// counts, which in the far tail (where thousands of candidates tested put the cut-off,
/// p ~ 1e-5) is badly anti-conservative for small cells: 25 selected of 200 where 10 are
/// expected gets p = 4.9e-7 from Wald and 1.8e-5 from G, against an exact binomial 2.6e-5.
/// Measured on coin-flip selections (`benches/outliers_quality`), Wald p-values let
/// false explanations through the false discovery rate in most runs.
///
/// With weights, each row (matching, not) becomes the table of its weighted proportion on
/// its design-effective size, `p (1 - p) / Var(p)` with `Var(p)` linearized as in
/// [`linearized`]: exactly the counts for unit weights, and a row of a few heavy events
/// counts as few.
fn likelihood_ratio_p(a: Cell, b: Cell, c: Cell, d: Cell, typical: Typical) -> f64 {
    let row = |sel: Cell, other: Cell| -> (f64, f64) {
        let total = sel.weight + other.weight;
        if total <= 0.0 {
            return (0.0, 0.0);
        }
        let p = sel.weight / total;
        let var_p = (sel.weight_sq * (1.0 - p) * (1.0 - p)
            + other.weight_sq * p * p
            + typical.missing(&sel, &other, p))
            / (total * total);
        let n = if var_p > 0.0 {
            p * (1.0 - p) / var_p
        } else {
            // One side empty: the row's Kish size.
            total * total / (sel.weight_sq + other.weight_sq).max(f64::MIN_POSITIVE)
        };
        (p * n, (1.0 - p) * n)
    };
    let (x11, x12) = row(a, b);
    let (x21, x22) = row(c, d);
    let (n1, n2) = (x11 + x12, x21 + x22);
    let n = n1 + n2;
    if n1 <= 0.0 || n2 <= 0.0 {
        return 1.0;
    }
    let (s, o) = (x11 + x21, x12 + x22);
    let term = |x: f64, e: f64| {
        if x > 0.0 && e > 0.0 {
            x * (x / e).ln()
        } else {
            0.0
        }
    };
    let g = 2.0
        * (term(x11, n1 * s / n)
            + term(x12, n1 * o / n)
            + term(x21, n2 * s / n)
            + term(x22, n2 * o / n));
    let z = g.max(0.0).sqrt();
    if x11 / n1 > x21 / n2 {
        upper_tail(z)
    } else {
        1.0 - upper_tail(z)
    }
}

/// `Var(ln RR)` by the delta method: `RR = p1 / p2` with `p1 = a / (a + b)` and
/// `p2 = c / (c + d)` weighted proportions of independent rows, and for each
/// `Var(p) = Σ w² (y - p)² / (Σ w)²` (a ratio estimator's linearization; Särndal, Swensson and
/// Wretman, Model Assisted Survey Sampling, 1992, ch. 5), so `Var(ln p) = Var(p) / p²`. With
/// unit weights this is exactly Katz's variance. `h` is the Haldane-Anscombe half, added to
/// each cell as half an event of weight 1 when one is empty.
fn linearized(a: Cell, b: Cell, c: Cell, d: Cell, h: f64, typical: Typical) -> f64 {
    let row = |sel: Cell, other: Cell| {
        let (sw, sw2) = (sel.weight + h, sel.weight_sq + h);
        let (ow, ow2) = (other.weight + h, other.weight_sq + h);
        let total = sw + ow;
        let p = sw / total;
        let var_p = (sw2 * (1.0 - p) * (1.0 - p) + ow2 * p * p + typical.missing(&sel, &other, p))
            / (total * total);
        var_p / (p * p)
    };
    row(a, b) + row(c, d)
}

/// The typical weight of a selected and of a baseline event (`Σw² / Σw` of each side's total:
/// the weight an event picked by weight has), for [`Typical::missing`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Typical {
    selection: f64,
    baseline: f64,
}

impl Typical {
    fn of(selection: &Cell, baseline: &Cell) -> Typical {
        Typical {
            selection: selection.typical_weight(),
            baseline: baseline.typical_weight(),
        }
    }

    /// What a row's linearized `Σ w² (y - p)²` misses when a kind of event the row has is
    /// absent from one of its cells. The jobs of a dynamic sampler's busiest key, kept 1 in
    /// 250: none of their few heavy stored events was slow, their slow ones in the store are
    /// light (errors, kept whole), and the plug-in variance counts that zero as certain, so
    /// their weighted rate of being slow looks precisely low, and the values they lack
    /// (`job.attempt IS NULL`) precisely over-represented. Haldane and Anscombe add half an
    /// event to an empty cell; here a stratum of a cell is empty while the cell is not, so
    /// half an event of the missing weight goes into the variance (not the estimate): of the
    /// row's other cell's typical weight, at most the side's (a heavy selected event must be
    /// possible at all: when the selection is errors kept whole, it is not), for as much as the
    /// cell's own events are lighter. With every weight alike nothing is added: the counts
    /// are Katz's.
    fn missing(&self, sel: &Cell, other: &Cell, p: f64) -> f64 {
        let short = |side: f64, cell: &Cell, beside: &Cell| {
            if cell.rows == 0 {
                // An empty cell has its Haldane half already.
                return 0.0;
            }
            let possible = beside.typical_weight().min(side);
            let own = cell.typical_weight();
            0.5 * (possible * possible - own * own).max(0.0)
        };
        short(self.selection, sel, other) * (1.0 - p) * (1.0 - p)
            + short(self.baseline, other, sel) * p * p
    }
}

/// The cells of a conjunction's complement are what the totals leave; a helper for callers
/// that count `a` and `b` and know the totals.
pub fn totals(a: Cell, c: Cell) -> Cell {
    a.plus(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Katz's interval computed from first principles for an unweighted table.
    fn katz(a: f64, b: f64, c: f64, d: f64) -> (f64, f64, f64) {
        let rr = (a / (a + b)) / (c / (c + d));
        let se = (1.0 / a - 1.0 / (a + b) + 1.0 / c - 1.0 / (c + d)).sqrt();
        (rr, (rr.ln() - 1.96 * se).exp(), (rr.ln() + 1.96 * se).exp())
    }

    fn close(x: f64, y: f64) -> bool {
        (x - y).abs() <= 1e-9 * y.abs().max(1.0)
    }

    #[test]
    fn the_normal_tail_matches_known_values() {
        // Φ(-1.96) = 0.0249979, Φ(-3) = 0.0013499, Φ(-6) = 9.8659e-10 (standard tables).
        for (z, want) in [
            (0.0, 0.5),
            (1.96, 0.024_997_9),
            (3.0, 0.001_349_9),
            (6.0, 9.865_9e-10),
        ] {
            let got = upper_tail(z);
            assert!(
                (got / want - 1.0).abs() < 1e-4,
                "P(Z > {z}) = {got}, want {want}"
            );
            assert!((upper_tail(-z) - (1.0 - want)).abs() < 1e-6);
        }
    }

    #[test]
    fn benjamini_hochberg_steps_up_from_the_largest_passing_p() {
        // m = 10, q = 0.05: bars are 0.005, 0.01, 0.015, ... The third p (0.012) is under its
        // bar 0.015 though the second (0.011) is over its bar 0.01: step-up keeps all three.
        let cut = fdr_cutoff(vec![0.012, 0.001, 0.011, 0.5], 10, 0.05);
        assert_eq!(cut, 0.012);
        // Among a million tests the same p-values pass nothing.
        assert_eq!(fdr_cutoff(vec![0.012, 0.001, 0.011], 1_000_000, 0.05), 0.0);
        assert_eq!(fdr_cutoff(Vec::new(), 0, 0.05), 0.0);
    }

    #[test]
    fn a_strong_candidate_has_a_tiny_p_value_and_a_null_one_does_not() {
        let r = assess(
            Cell::uniform(300, 1.0),
            Cell::uniform(100, 1.0),
            Cell::uniform(1_000, 1.0),
            Cell::uniform(9_000, 1.0),
            &Thresholds::default(),
        );
        assert!(r.p_value < 1e-12, "{r:?}");
        let null = assess(
            Cell::uniform(100, 1.0),
            Cell::uniform(900, 1.0),
            Cell::uniform(1_000, 1.0),
            Cell::uniform(9_000, 1.0),
            &Thresholds::default(),
        );
        assert!((null.p_value - 0.5).abs() < 0.01, "{null:?}");
    }

    #[test]
    fn the_p_value_holds_in_the_far_tail_where_wald_does_not() {
        // 25 of 200 matching events selected where the rest select 5%: the exact binomial
        // tail P(X >= 25 | n = 200, p = 0.05) is 2.607e-5 (summed term by term).
        let table = |rest_rows: f64, w: f64| {
            let (a, b) = (Cell::uniform(25, 1.0), Cell::uniform(175, 1.0));
            let c = Cell::uniform((0.05 * rest_rows) as u64, w);
            let d = Cell::uniform((0.95 * rest_rows) as u64, w);
            assess(a, b, a.plus(&c), b.plus(&d), &Thresholds::default())
        };
        let r = table(1_000_000.0, 1.0);
        let exact = 2.607e-5;
        assert!(r.p_value > exact / 2.0 && r.p_value < exact * 2.0, "{r:?}");
        // The Wald z of the interval would claim 50x more certainty.
        let se = (r.upper.ln() - r.lower.ln()) / (2.0 * 1.96);
        let wald = upper_tail(r.risk_ratio.ln() / se);
        assert!(wald < exact / 20.0, "{wald}");
        // The other row at twenty times the weight on a twentieth of the events is the same
        // evidence as those events alone, not twenty times more.
        let heavy = table(50_000.0, 20.0);
        let light = table(50_000.0, 1.0);
        assert!(close(heavy.p_value, light.p_value), "{heavy:?} {light:?}");
        assert!(heavy.p_value > r.p_value, "{heavy:?} {r:?}");
    }

    #[test]
    fn unweighted_counts_give_katz_s_interval() {
        // 30 of 100 slow requests and 10 of 900 others run the bad kernel.
        let (a, b) = (Cell::uniform(30, 1.0), Cell::uniform(10, 1.0));
        let (s, base) = (Cell::uniform(100, 1.0), Cell::uniform(900, 1.0));
        let r = assess(a, b, s, base, &Thresholds::default());
        let (rr, lo, hi) = katz(30.0, 10.0, 70.0, 890.0);
        assert!(
            close(r.risk_ratio, rr) && close(r.lower, lo) && close(r.upper, hi),
            "{r:?}"
        );
        assert!(close(r.support, 0.3) && close(r.baseline_share, 10.0 / 900.0));
        assert!(r.eligible);
        assert!(r.lower > 1.0, "a real cause is significant");
    }

    #[test]
    fn constant_weights_change_nothing_but_the_totals() {
        // Every event stands for 20: the ratio and, by effective counts, the interval are the
        // unweighted ones; the weighted shares are the same too.
        let w = 20.0;
        let r1 = assess(
            Cell::uniform(30, 1.0),
            Cell::uniform(10, 1.0),
            Cell::uniform(100, 1.0),
            Cell::uniform(900, 1.0),
            &Thresholds::default(),
        );
        let rw = assess(
            Cell::uniform(30, w),
            Cell::uniform(10, w),
            Cell::uniform(100, w),
            Cell::uniform(900, w),
            &Thresholds::default(),
        );
        assert!(close(r1.risk_ratio, rw.risk_ratio));
        assert!(close(r1.lower, rw.lower) && close(r1.upper, rw.upper));
    }

    #[test]
    fn weights_move_the_ratio_the_way_the_events_they_stand_for_do() {
        // The baseline's matching events were sampled 1 in 20 (45 stored rows stand for 900
        // events), its other events kept whole (900). Half the selection matches. Weighted,
        // the value is as common among selected as among other events: no cause. Unweighted,
        // it looks like a 10x cause.
        let s = Cell::uniform(100, 1.0);
        let a = Cell::uniform(50, 1.0);
        let b = Cell::uniform(45, 20.0);
        let base = totals(b, Cell::uniform(900, 1.0));
        let weighted = assess(a, b, s, base, &Thresholds::default());
        assert!(close(weighted.risk_ratio, 1.0), "{weighted:?}");
        assert!(weighted.lower < 1.0 && weighted.upper > 1.0);
        let unweighted = assess(
            a,
            Cell::uniform(45, 1.0),
            s,
            Cell::uniform(945, 1.0),
            &Thresholds::default(),
        );
        assert!(close(unweighted.risk_ratio, 10.0), "{unweighted:?}");
        assert!(unweighted.lower > 5.0);
    }

    #[test]
    fn one_heavy_event_explains_nothing() {
        // One stored slow event of weight 1000 matches: a huge ratio, but not eligible, and
        // its interval is as wide as one event's.
        let mut a = Cell::default();
        a.add(1000.0);
        let mut s = Cell::uniform(99, 1.0);
        s.add(1000.0);
        let r = assess(
            a,
            Cell::uniform(5, 1.0),
            s,
            Cell::uniform(5000, 1.0),
            &Thresholds::default(),
        );
        assert!(r.risk_ratio > 50.0, "{r:?}");
        assert!(!r.eligible);
        assert!(r.lower < r.risk_ratio / 5.0, "{r:?}");
    }

    #[test]
    fn a_candidate_that_covers_the_whole_selection_has_a_finite_bound() {
        // c = 0: the point ratio is infinite; the corrected interval is finite and large.
        let s = Cell::uniform(40, 1.0);
        let r = assess(
            s,
            Cell::uniform(10, 1.0),
            s,
            Cell::uniform(1000, 1.0),
            &Thresholds::default(),
        );
        assert!(r.risk_ratio.is_infinite());
        assert!(r.lower.is_finite() && r.lower > 10.0, "{r:?}");
        assert!(close(r.support, 1.0));
    }

    #[test]
    fn a_few_heavy_events_on_one_side_widen_the_interval() {
        // 729 selected events of weight 1 match, and 11 baseline events of weight 20: the
        // baseline side of the row is 11 events, and the interval must say so.
        let a = Cell::uniform(729, 1.0);
        let b = Cell::uniform(11, 20.0);
        let s = totals(a, Cell::uniform(12_000, 1.0));
        let base = totals(b, Cell::uniform(3_000, 20.0));
        let r = assess(a, b, s, base, &Thresholds::default());
        let width = (r.upper / r.lower).ln();
        // Katz on effective counts alone would give ±1.2% here; the 11 heavy events give more
        // than ±10%.
        assert!(width > 0.2, "{r:?}");
        // and the unit-weight case is still Katz's exactly
        let u = assess(
            Cell::uniform(30, 1.0),
            Cell::uniform(10, 1.0),
            Cell::uniform(100, 1.0),
            Cell::uniform(900, 1.0),
            &Thresholds::default(),
        );
        assert!(close(
            linearized(
                Cell::uniform(30, 1.0),
                Cell::uniform(10, 1.0),
                Cell::uniform(70, 1.0),
                Cell::uniform(890, 1.0),
                0.0,
                Typical::of(&Cell::uniform(100, 1.0), &Cell::uniform(900, 1.0)),
            ),
            (u.upper / u.risk_ratio).ln().powi(2) / (1.96f64 * 1.96)
        ));
    }

    #[test]
    fn effective_sample_size_is_kish_s() {
        let mut c = Cell::default();
        for w in [1.0, 1.0, 2.0, 4.0] {
            c.add(w);
        }
        assert!(close(c.effective(), 64.0 / 22.0));
        assert_eq!(Cell::default().effective(), 0.0);
        assert_eq!(totals(Cell::uniform(2, 1.0), Cell::uniform(3, 1.0)).rows, 5);
    }

    #[test]
    fn a_cell_missing_the_heavy_events_its_row_has_is_not_taken_as_certain() {
        // A dynamic sampler keeps its busiest key (jobs) 1 in 250 and the rest 1 in 50. Of the
        // jobs, the store has 50 heavy baseline events and, selected, only 10 errors kept
        // whole: no heavy job happened to be slow. `job.attempt IS NULL` (every other event)
        // then looks 60x over-represented, with a tight interval if that zero is certain.
        let (a, b) = (Cell::uniform(400, 50.0), Cell::uniform(7_600, 50.0));
        let (c, d) = (Cell::uniform(10, 1.0), Cell::uniform(50, 250.0));
        let r = assess(a, b, a.plus(&c), b.plus(&d), &Thresholds::default());
        assert!(r.risk_ratio > 50.0, "{r:?}");
        // Not past the bar of thousands of tests, nor the 95% bound.
        assert!(r.lower < 1.0 && r.p_value > 1e-4, "{r:?}");
        // The same rows with the jobs' selected events as heavy as their others (5 of them):
        // that is evidence, and it is read as such.
        let c = Cell::uniform(5, 250.0);
        let r = assess(a, b, a.plus(&c), b.plus(&d), &Thresholds::default());
        assert!(r.lower < 1.5, "{r:?}");
        // And errors, all light, against heavy successes: nothing is missing.
        let (a, b) = (Cell::uniform(30, 1.0), Cell::uniform(100, 20.0));
        let (c, d) = (Cell::uniform(970, 1.0), Cell::uniform(9_900, 20.0));
        let t = Thresholds::default();
        let r = assess(a, b, a.plus(&c), b.plus(&d), &t);
        let no_correction = Typical {
            selection: 0.0,
            baseline: 0.0,
        };
        let plain = linearized(a, b, c, d, 0.0, no_correction);
        let typical = Typical::of(&a.plus(&c), &b.plus(&d));
        assert!(close(linearized(a, b, c, d, 0.0, typical), plain), "{r:?}");
    }
}
