//! A weighted quantile sketch with a relative-error guarantee: the log-bucket histogram of
//! DDSketch (Masson, Rim and Lee, "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with
//! Relative-Error Guarantees", VLDB 2019), with a weight per value instead of a count.
//!
//! A positive value `x` falls in bucket `i = ceil(log_γ x)`, which holds `(γ^(i-1), γ^i]`, with
//! `γ = (1 + α) / (1 - α)`. Every value of a bucket is within a relative distance `α` of the
//! bucket's representative `2 γ^i / (γ + 1)`. Walking the buckets in order and summing their
//! weights finds the bucket that holds the value at any weighted rank exactly, so the estimate
//! of a quantile is within `α` (relative) of the true weighted quantile: for `α` = 1%, the p99
//! of latencies near 800 ms is reported within 8 ms. Negative values mirror positive ones;
//! zero (and values too small to take a logarithm of) has a bucket of its own.
//!
//! Memory is bounded: a store keeps at most [`MAX_BINS`] contiguous buckets (about 41 powers
//! of `e` at `α` = 1%: from nanoseconds to centuries); past that, the lowest buckets are folded
//! into one ("collapsing lowest" in the paper), which keeps the guarantee for the upper
//! quantiles that latency questions ask about. Merging two sketches adds their buckets, so the
//! result does not depend on how rows were split between partitions.

/// The relative accuracy `α` of every quantile estimate.
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Most buckets one side (positive or negative values) keeps.
pub const MAX_BINS: usize = 2048;

/// Values whose magnitude is below this are counted as zero (their logarithm is not useful).
const MIN_MAGNITUDE: f64 = 1e-9;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// Contiguous buckets `offset .. offset + bins.len()`, dense.
#[derive(Debug, Clone, Default, PartialEq)]
struct Store {
    offset: i32,
    bins: Vec<f64>,
}

impl Store {
    fn add(&mut self, index: i32, weight: f64) {
        if self.bins.is_empty() {
            self.offset = index;
            self.bins.push(weight);
            return;
        }
        let index = index.max(self.collapsed_floor());
        if index < self.offset {
            let grow = (self.offset - index) as usize;
            self.bins.splice(0..0, std::iter::repeat_n(0.0, grow));
            self.offset = index;
        } else if index >= self.offset + self.bins.len() as i32 {
            let len = (index - self.offset) as usize + 1;
            self.bins.resize(len, 0.0);
        }
        self.bins[(index - self.offset) as usize] += weight;
        self.collapse();
    }

    /// Once collapsed, the lowest bucket stands for everything below it: indexes under it go
    /// into it. Before that, any index is its own bucket.
    fn collapsed_floor(&self) -> i32 {
        if self.bins.len() >= MAX_BINS {
            self.offset
        } else {
            i32::MIN
        }
    }

    /// Folds the lowest buckets into one until at most `MAX_BINS` remain.
    fn collapse(&mut self) {
        if self.bins.len() <= MAX_BINS {
            return;
        }
        let extra = self.bins.len() - MAX_BINS;
        let folded: f64 = self.bins[..=extra].iter().sum();
        self.bins.drain(..extra);
        self.bins[0] = folded;
        self.offset += extra as i32;
    }

    fn merge(&mut self, other: &Store) {
        for (i, w) in other.bins.iter().enumerate() {
            if *w != 0.0 {
                self.add(other.offset + i as i32, *w);
            }
        }
    }

    fn total(&self) -> f64 {
        self.bins.iter().sum()
    }
}

/// A weighted quantile sketch (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Sketch {
    positive: Store,
    negative: Store,
    zero: f64,
    total: f64,
    min: f64,
    max: f64,
}

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            positive: Store::default(),
            negative: Store::default(),
            zero: 0.0,
            total: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }
}

fn index_of(magnitude: f64) -> i32 {
    // ceil(ln x / ln γ); magnitudes are in [MIN_MAGNITUDE, f64::MAX], so this is in i32.
    (magnitude.ln() / gamma().ln()).ceil() as i32
}

fn value_of(index: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(index) / (g + 1.0)
}

impl Sketch {
    /// Adds `value` standing for `weight` values. NaN and infinite values, and weights that
    /// are not positive and finite, are ignored: they have no place on the scale.
    pub fn add(&mut self, value: f64, weight: f64) {
        if !(value.is_finite() && weight.is_finite() && weight > 0.0) {
            return;
        }
        if value >= MIN_MAGNITUDE {
            self.positive.add(index_of(value), weight);
        } else if value <= -MIN_MAGNITUDE {
            self.negative.add(index_of(-value), weight);
        } else {
            self.zero += weight;
        }
        self.total += weight;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Sketch) {
        if other.total == 0.0 {
            return;
        }
        self.positive.merge(&other.positive);
        self.negative.merge(&other.negative);
        self.zero += other.zero;
        self.total += other.total;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The total weight added.
    pub fn weight(&self) -> f64 {
        self.total
    }

    /// The smallest value whose cumulative weight reaches `q` of the total, within the relative
    /// accuracy; `None` when nothing was added. `q` is clamped to `[0, 1]`; `q = 0` and `q = 1`
    /// are the exact minimum and maximum.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total <= 0.0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        if q == 0.0 {
            return Some(self.min);
        }
        if q == 1.0 {
            return Some(self.max);
        }
        let rank = q * self.total;
        let mut cumulative = 0.0;
        // Negative values, from the most negative (the highest index) up.
        let neg = &self.negative;
        for (i, w) in neg.bins.iter().enumerate().rev() {
            cumulative += w;
            if cumulative >= rank && *w > 0.0 {
                return Some(self.clamp(-value_of(neg.offset + i as i32)));
            }
        }
        cumulative += self.zero;
        if cumulative >= rank && self.zero > 0.0 {
            return Some(0.0_f64.clamp(self.min, self.max));
        }
        let pos = &self.positive;
        for (i, w) in pos.bins.iter().enumerate() {
            cumulative += w;
            if cumulative >= rank && *w > 0.0 {
                return Some(self.clamp(value_of(pos.offset + i as i32)));
            }
        }
        // Rounding left the rank a hair above the sum: the answer is the top.
        Some(self.max)
    }

    /// A representative is never outside the values actually seen.
    fn clamp(&self, v: f64) -> f64 {
        v.clamp(self.min, self.max)
    }

    /// Heap bytes held.
    pub fn heap_size(&self) -> usize {
        (self.positive.bins.capacity() + self.negative.bins.capacity()) * size_of::<f64>()
    }

    /// The sketch as bytes, for DataFusion's intermediate aggregate state.
    ///
    /// Layout (little-endian): `zero, min, max` as f64, then each store (positive, negative) as
    /// `offset: i32, len: u32, len × f64`. The total is the sum of the parts, recomputed.
    pub fn to_bytes(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.zero.to_le_bytes());
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        for s in [&self.positive, &self.negative] {
            out.extend_from_slice(&s.offset.to_le_bytes());
            out.extend_from_slice(&(s.bins.len() as u32).to_le_bytes());
            for b in &s.bins {
                out.extend_from_slice(&b.to_le_bytes());
            }
        }
    }

    /// Reads [`Sketch::to_bytes`]; `None` if the bytes are not such a sketch.
    pub fn from_bytes(mut bytes: &[u8]) -> Option<Sketch> {
        fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
            let (head, rest) = b.split_first_chunk::<N>()?;
            *b = rest;
            Some(*head)
        }
        let zero = f64::from_le_bytes(take(&mut bytes)?);
        let min = f64::from_le_bytes(take(&mut bytes)?);
        let max = f64::from_le_bytes(take(&mut bytes)?);
        let mut stores = [Store::default(), Store::default()];
        for s in &mut stores {
            s.offset = i32::from_le_bytes(take(&mut bytes)?);
            let len = u32::from_le_bytes(take(&mut bytes)?) as usize;
            if len > MAX_BINS || bytes.len() < len * 8 {
                return None;
            }
            s.bins = (0..len)
                .map(|_| take(&mut bytes).map(f64::from_le_bytes))
                .collect::<Option<_>>()?;
        }
        if !bytes.is_empty() {
            return None;
        }
        let [positive, negative] = stores;
        let total = zero + positive.total() + negative.total();
        Some(Sketch {
            positive,
            negative,
            zero,
            total,
            min,
            max,
        })
    }
}

/// The exact weighted quantile: the smallest value whose cumulative weight reaches `q` of the
/// total. The reference the sketch and the SQL functions are tested against.
#[cfg(test)]
pub(crate) fn exact_quantile(values: &[(f64, f64)], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = v.iter().map(|p| p.1).sum();
    let mut cum = 0.0;
    for (x, w) in &v {
        cum += w;
        if cum >= q * total {
            return *x;
        }
    }
    v.last().map_or(f64::NAN, |p| p.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::lcg;

    use super::exact_quantile as exact;

    #[test]
    fn quantiles_are_within_the_relative_accuracy_of_the_exact_weighted_ones() {
        let mut seed = 7;
        let values: Vec<(f64, f64)> = (0..20_000)
            .map(|_| {
                // lognormal-ish latencies over four decades, weights 1..50
                let x = (lcg(&mut seed) * 9.0).exp() * 0.1;
                let w = 1.0 + (lcg(&mut seed) * 49.0).floor();
                (x, w)
            })
            .collect();
        let mut s = Sketch::default();
        for (x, w) in &values {
            s.add(*x, *w);
        }
        for q in [0.01, 0.1, 0.5, 0.9, 0.99, 0.999] {
            let truth = exact(&values, q);
            let est = s.quantile(q).unwrap();
            assert!(
                (est - truth).abs() <= RELATIVE_ACCURACY * truth * (1.0 + 1e-9),
                "q={q}: {est} vs {truth}"
            );
        }
        assert_eq!(s.quantile(0.0), Some(exact(&values, 0.0)));
        assert_eq!(s.quantile(1.0), values.iter().map(|v| v.0).reduce(f64::max));
    }

    #[test]
    fn weights_move_the_quantile() {
        // 99 values of 10 and one value of 1000 with weight 99: the median is 1000-ish only
        // because of the weight.
        let mut s = Sketch::default();
        for _ in 0..99 {
            s.add(10.0, 1.0);
        }
        s.add(1000.0, 99.0);
        let p50 = s.quantile(0.5).unwrap();
        assert!((p50 - 10.0).abs() <= 0.1, "{p50}");
        let p60 = s.quantile(0.6).unwrap();
        assert!((p60 - 1000.0).abs() <= 10.0, "{p60}");
    }

    #[test]
    fn negatives_zero_and_mixed_signs_are_ordered() {
        let values = [
            (-50.0, 1.0),
            (-1.0, 2.0),
            (0.0, 3.0),
            (2.0, 2.0),
            (70.0, 2.0),
        ];
        let mut s = Sketch::default();
        for (x, w) in values {
            s.add(x, w);
        }
        for q in [0.05, 0.2, 0.3, 0.5, 0.7, 0.8, 0.95] {
            let truth = exact(&values, q);
            let est = s.quantile(q).unwrap();
            assert!(
                (est - truth).abs() <= RELATIVE_ACCURACY * truth.abs() + 1e-12,
                "q={q}: {est} vs {truth}"
            );
        }
    }

    #[test]
    fn merging_is_the_same_as_adding_everything_to_one() {
        let mut seed = 3;
        let mut whole = Sketch::default();
        let mut parts = [Sketch::default(), Sketch::default(), Sketch::default()];
        for i in 0..3000 {
            let x = lcg(&mut seed) * 1000.0 - 100.0;
            whole.add(x, 2.0);
            parts[i % 3].add(x, 2.0);
        }
        let mut merged = Sketch::default();
        for p in &parts {
            merged.merge(p);
        }
        for q in [0.1, 0.5, 0.99] {
            assert_eq!(merged.quantile(q), whole.quantile(q));
        }
        assert_eq!(merged.weight(), whole.weight());
    }

    #[test]
    fn bytes_round_trip_and_garbage_is_refused() {
        let mut s = Sketch::default();
        for x in [-3.0, 0.0, 1.0, 5.0, 1e6] {
            s.add(x, 1.5);
        }
        let mut bytes = Vec::new();
        s.to_bytes(&mut bytes);
        assert_eq!(Sketch::from_bytes(&bytes), Some(s));
        assert_eq!(Sketch::from_bytes(&bytes[..bytes.len() - 1]), None);
        assert_eq!(Sketch::from_bytes(b"short"), None);
    }

    #[test]
    fn memory_is_bounded_and_upper_quantiles_stay_accurate() {
        let mut s = Sketch::default();
        // 1e-8 .. 1e300: far more than MAX_BINS buckets.
        let mut values = Vec::new();
        let mut x = 1e-8;
        while x < 1e300 {
            values.push((x, 1.0));
            s.add(x, 1.0);
            x *= 1.01;
        }
        assert!(s.positive.bins.len() <= MAX_BINS);
        let truth = exact(&values, 0.99);
        let est = s.quantile(0.99).unwrap();
        assert!((est - truth).abs() <= RELATIVE_ACCURACY * truth * (1.0 + 1e-9));
        assert!((s.weight() - values.len() as f64).abs() < 1e-6);
    }

    #[test]
    fn nothing_added_has_no_quantile_and_bad_input_is_ignored() {
        let mut s = Sketch::default();
        assert_eq!(s.quantile(0.5), None);
        s.add(f64::NAN, 1.0);
        s.add(f64::INFINITY, 1.0);
        s.add(1.0, 0.0);
        s.add(1.0, f64::NAN);
        assert_eq!(s.quantile(0.5), None);
    }
}
