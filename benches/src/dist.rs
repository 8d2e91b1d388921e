//! The distributions the workload draws from: categorical tables (weighted and Zipf),
//! lognormal, exponential and a discrete Pareto (Lomax) for heavy-tailed identifiers.

use rand::Rng;
use rand_distr::{Exp1, StandardNormal};

use crate::rng::WorkloadRng;

/// A categorical distribution over `0..len`, sampled by binary search over cumulative weights.
/// For the sizes used here (at most a few thousand values) that is a dozen comparisons.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    /// Cumulative probabilities; the last is 1.
    cum: Box<[f64]>,
}

impl Table {
    /// A table with the given (non-negative, not all zero) weights.
    pub(crate) fn weighted(weights: impl IntoIterator<Item = f64>) -> Table {
        let mut cum: Vec<f64> = weights
            .into_iter()
            .scan(0.0, |acc, w| {
                debug_assert!(w >= 0.0 && w.is_finite(), "bad weight {w}");
                *acc += w;
                Some(*acc)
            })
            .collect();
        let total = cum.last().copied().unwrap_or(0.0);
        assert!(total > 0.0, "a table needs a positive weight");
        for c in &mut cum {
            *c /= total;
        }
        Table {
            cum: cum.into_boxed_slice(),
        }
    }

    /// Zipf over `n` ranks: rank `k` (from 0) has weight `1 / (k + 1)^s`.
    pub(crate) fn zipf(n: usize, s: f64) -> Table {
        Table::weighted((1..=n).map(|k| (k as f64).powf(-s)))
    }

    pub(crate) fn len(&self) -> usize {
        self.cum.len()
    }

    /// Probability of value `i`.
    #[cfg(test)]
    pub(crate) fn probability(&self, i: usize) -> f64 {
        self.cum[i] - if i == 0 { 0.0 } else { self.cum[i - 1] }
    }

    #[inline]
    pub(crate) fn sample(&self, rng: &mut WorkloadRng) -> usize {
        self.pick(rng.unit())
    }

    /// The value at quantile `u` in `[0, 1)`: lets a hash stand in for a draw.
    #[inline]
    pub(crate) fn pick(&self, u: f64) -> usize {
        self.cum
            .partition_point(|&c| c <= u)
            .min(self.cum.len() - 1)
    }
}

/// Lognormal with the given median and sigma (of the underlying normal).
#[inline]
pub(crate) fn lognormal(rng: &mut WorkloadRng, median: f64, sigma: f64) -> f64 {
    let z: f64 = rng.sample(StandardNormal);
    median * (sigma * z).exp()
}

/// Exponential with the given mean.
#[inline]
pub(crate) fn exponential(rng: &mut WorkloadRng, mean: f64) -> f64 {
    let e: f64 = rng.sample(Exp1);
    mean * e
}

/// A heavy-tailed index in `0..n`: the floor of a Lomax (Pareto type II) variable with scale
/// `scale` and shape `shape`, so index 0 is the heaviest. Draws beyond `n` (rare) are folded
/// back uniformly.
#[inline]
pub(crate) fn lomax_index(rng: &mut WorkloadRng, n: u64, scale: f64, shape: f64) -> u64 {
    // 1 - unit() is in (0, 1], so the power is finite.
    let u = 1.0 - rng.unit();
    let x = scale * (u.powf(-1.0 / shape) - 1.0);
    if x < n as f64 { x as u64 } else { rng.below(n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_table_matches_its_weights() {
        let t = Table::weighted([7.0, 2.0, 1.0]);
        assert!((t.probability(0) - 0.7).abs() < 1e-12);
        let mut rng = WorkloadRng::seeded(3);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[t.sample(&mut rng)] += 1;
        }
        assert!((69_000..71_000).contains(&counts[0]), "{counts:?}");
        assert!((9_300..10_700).contains(&counts[2]), "{counts:?}");
        assert_eq!(t.pick(0.0), 0);
        assert_eq!(t.pick(0.999_999), 2);
    }

    #[test]
    fn zipf_ranks_fall_off() {
        let t = Table::zipf(80, 1.1);
        assert_eq!(t.len(), 80);
        let ratio = t.probability(0) / t.probability(1);
        assert!((ratio - 2f64.powf(1.1)).abs() < 1e-9);
    }

    #[test]
    fn lognormal_median_and_lomax_head() {
        let mut rng = WorkloadRng::seeded(5);
        let mut xs: Vec<f64> = (0..20_001)
            .map(|_| lognormal(&mut rng, 45.0, 0.9))
            .collect();
        xs.sort_by(f64::total_cmp);
        let median = xs[10_000];
        assert!((42.0..48.0).contains(&median), "{median}");

        let n = 1_000_000;
        let draws: Vec<u64> = (0..20_000)
            .map(|_| lomax_index(&mut rng, n, 40.0, 1.0))
            .collect();
        assert!(draws.iter().all(|&i| i < n));
        let zeros = draws.iter().filter(|&&i| i == 0).count();
        // P(index 0) = 1 - 40/41, about 2.4%
        assert!((300..700).contains(&zeros), "{zeros}");
    }
}
