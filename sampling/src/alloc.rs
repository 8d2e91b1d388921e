//! Water-filling: sharing an interval's budget of kept events among keys so that the total
//! really is the budget.
//!
//! Every dynamic sampler ends an interval with a per-key count `c_k` (events seen, or a
//! smoothed count) and a budget `B` of events to keep next interval. Each key gets a kept
//! budget `b_k`, and its rate is `c_k / b_k`. How `B` is shared is the sampler's policy:
//!
//! - [`log_share`] (average-rate and EMA samplers): `b_k` proportional to `ln c_k`. This is the
//!   allocation of Honeycomb's dynsampler-go `AvgSampleRate` and `EMASampleRate`
//!   (<https://github.com/honeycombio/dynsampler-go>, also Refinery's `AvgSampleRate` and
//!   `EMADynamicSampler`): a key ten times as frequent gets only a little more budget, so
//!   frequent keys are sampled hard and rare keys are kept nearly whole.
//! - [`max_min`] (throughput sampler): every key the same share. dynsampler-go's
//!   `TotalThroughput` gives each key `budget / number of keys`; we make it max-min fair, so
//!   what small keys cannot use goes to the large ones.
//!
//! The published samplers compute each key's share once and round it. A key whose share is
//! larger than its count cannot use it (it cannot keep more events than it has), so the unused
//! part is lost and, with many small keys, the overall goal rate is missed by a wide margin. We
//! solve the allocation as a water-filling problem instead: find the level `λ` such that
//!
//! ```text
//! b_k = clamp(λ · w_k, floor_k, cap_k)     and     Σ b_k = B
//! ```
//!
//! where `w_k` is the key's weight (`ln c_k`, or 1), `cap_k = c_k` (the key kept whole, at
//! rate 1) and `floor_k` the least a key gets. It is the same as the iterative description
//! "keys whose share exceeds their count are kept whole, the leftover is shared again among
//! the rest, until nothing changes", computed exactly: the total `S(λ)` is piecewise linear
//! and nondecreasing in `λ`, so one sweep over the sorted breakpoints (where a key leaves its
//! floor or reaches its cap) finds the level in `O(n log n)`.
//!
//! The samplers pass `B` already multiplied by their budget correction (see
//! [`crate::sampler`]), so the sum of the budgets is exactly what they ask for.
//!
//! When the floors alone exceed the budget every key gets its floor, and when the caps fit in
//! the budget every key is kept whole: then no level can meet the budget, and the samplers
//! document what that means for them.

/// What one key asks of the budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    /// Share of the budget per unit of level; 0 keeps the key at its floor.
    pub weight: f64,
    /// The least budget this key gets.
    pub floor: f64,
    /// The most budget this key can use (its count).
    pub cap: f64,
}

impl Demand {
    /// Non-finite or negative inputs become 0, and the floor never exceeds the cap, so the
    /// sweep below always has a well-defined answer.
    fn sanitized(self) -> Demand {
        let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
        let cap = clean(self.cap);
        Demand {
            weight: clean(self.weight),
            floor: clean(self.floor).min(cap),
            cap,
        }
    }
}

/// The budget of each demand, in order: `clamp(λ · weight, floor, cap)` with `λ` chosen so that
/// the budgets sum to `budget` (see the module doc). Never panics; non-finite inputs count as 0.
pub fn water_fill(demands: &[Demand], budget: f64) -> Vec<f64> {
    let demands: Vec<Demand> = demands.iter().map(|d| d.sanitized()).collect();
    let floor_sum: f64 = demands.iter().map(|d| d.floor).sum();
    let cap_sum: f64 = demands.iter().map(|d| d.cap).sum();
    if budget.is_nan() || budget <= floor_sum {
        return demands.iter().map(|d| d.floor).collect();
    }
    if budget >= cap_sum {
        return demands.iter().map(|d| d.cap).collect();
    }

    // Breakpoints: at λ = floor/w a key starts to grow, at λ = cap/w it stops.
    // `false` (leaving the floor) sorts before `true` (reaching the cap) at equal λ.
    let mut events: Vec<(f64, bool, usize)> = Vec::with_capacity(2 * demands.len());
    for (i, d) in demands.iter().enumerate() {
        if d.weight > 0.0 {
            events.push((d.floor / d.weight, false, i));
            events.push((d.cap / d.weight, true, i));
        }
    }
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));

    // Between breakpoints S(λ) = constant + slope · λ.
    let mut constant = floor_sum;
    let mut slope = 0.0;
    let mut level = None;
    for &(at, reaches_cap, i) in &events {
        if slope > 0.0 && constant + slope * at >= budget {
            level = Some((budget - constant) / slope);
            break;
        }
        let d = demands[i];
        if reaches_cap {
            constant += d.cap;
            slope -= d.weight;
        } else {
            constant -= d.floor;
            slope += d.weight;
        }
    }
    match level {
        Some(level) => demands
            .iter()
            .map(|d| (level * d.weight).clamp(d.floor, d.cap))
            .collect(),
        // Only reachable through rounding when the budget is a hair under the caps' sum.
        None => demands.iter().map(|d| d.cap).collect(),
    }
}

/// Log-proportional allocation of the average-rate and EMA samplers: weight `ln c`, floor
/// `min(1, c)` (a key seen once keeps its one event: rate 1), cap `c`.
///
/// With more keys than budget (`Σ min(1, c_k) > budget`) every key keeps about one event
/// per interval and the budget is exceeded; keeping a key's only event wins over the goal.
pub fn log_share(counts: &[f64], budget: f64) -> Vec<f64> {
    let demands: Vec<Demand> = counts
        .iter()
        .map(|&c| Demand {
            weight: if c > 1.0 { c.ln() } else { 0.0 },
            floor: c.min(1.0),
            cap: c,
        })
        .collect();
    water_fill(&demands, budget)
}

/// Max-min fair allocation of the throughput sampler: every key the same level, keys below it
/// kept whole. No floor: the budget is a hard throughput goal.
pub fn max_min(counts: &[f64], budget: f64) -> Vec<f64> {
    let demands: Vec<Demand> = counts
        .iter()
        .map(|&c| Demand {
            weight: 1.0,
            floor: 0.0,
            cap: c,
        })
        .collect();
    water_fill(&demands, budget)
}

/// The highest rate a key can get: beyond it the weight would lose integer precision.
pub const MAX_RATE: f64 = 9_007_199_254_740_992.0; // 2^53

/// A key's rate from its count and kept budget: `count / budget`, at least 1, finite.
pub fn rate(count: f64, budget: f64) -> f64 {
    if count.is_nan() || count <= 0.0 {
        return 1.0;
    }
    if budget.is_nan() || budget <= 0.0 {
        return MAX_RATE;
    }
    (count / budget).clamp(1.0, MAX_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn water_filling_meets_the_budget_and_respects_bounds() {
        // Counts from one very hot key down to many singletons.
        let mut counts = vec![100_000.0, 20_000.0, 5_000.0, 300.0, 40.0, 7.0, 2.0];
        counts.extend(std::iter::repeat_n(1.0, 50));
        let total: f64 = counts.iter().sum();
        for goal in [2.0, 10.0, 50.0, 200.0] {
            let budget = total / goal;
            for budgets in [log_share(&counts, budget), max_min(&counts, budget)] {
                let sum: f64 = budgets.iter().sum();
                assert!(
                    close(sum, budget),
                    "goal {goal}: kept {sum}, budget {budget}"
                );
                for (&c, &b) in counts.iter().zip(&budgets) {
                    assert!(b <= c + 1e-9, "budget {b} above count {c}");
                    assert!(rate(c, b) >= 1.0);
                }
            }
            // log share: singletons are kept whole, and rates grow with the count.
            let budgets = log_share(&counts, budget);
            for (&c, &b) in counts.iter().zip(&budgets) {
                if c == 1.0 {
                    assert_eq!(rate(c, b), 1.0);
                }
            }
            let rates: Vec<f64> = counts
                .iter()
                .zip(&budgets)
                .map(|(&c, &b)| rate(c, b))
                .collect();
            assert!(rates.windows(2).all(|w| w[0] >= w[1] - 1e-9), "{rates:?}");
        }
    }

    #[test]
    fn leftover_of_small_keys_goes_to_the_others() {
        // A naive log share gives key 2 (count 3) ln3/(ln1000+ln3) ≈ 14% of 100 = 14 > 3:
        // the 11 it cannot use must go to the big key.
        let budgets = log_share(&[1000.0, 3.0], 100.0);
        assert!(close(budgets[1], 3.0));
        assert!(close(budgets[0], 97.0));
        // Max-min: the small key is kept whole and the rest is the big key's.
        let budgets = max_min(&[1000.0, 10.0, 10.0], 100.0);
        assert_eq!(budgets, vec![80.0, 10.0, 10.0]);
    }

    #[test]
    fn out_of_range_budgets_and_bad_inputs() {
        assert_eq!(log_share(&[5.0, 1.0], 100.0), vec![5.0, 1.0]);
        assert_eq!(log_share(&[5.0, 1.0, 1.0], 1.0), vec![1.0, 1.0, 1.0]);
        assert_eq!(max_min(&[5.0, 1.0], 0.0), vec![0.0, 0.0]);
        assert_eq!(
            max_min(&[f64::NAN, -1.0, f64::INFINITY, 4.0], 2.0),
            vec![0.0, 0.0, 0.0, 2.0]
        );
        assert_eq!(log_share(&[4.0], f64::NAN), vec![1.0]);
        assert!(water_fill(&[], 10.0).is_empty());
        assert_eq!(rate(0.0, 0.0), 1.0);
        assert_eq!(rate(10.0, 0.0), MAX_RATE);
        assert_eq!(rate(10.0, 4.0), 2.5);
    }
}
