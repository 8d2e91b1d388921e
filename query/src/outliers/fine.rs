//! Numeric values counted by fine buckets in the counting pass, so that the bins (the
//! window's deciles) need no pass of their own: a bucket holds the values that agree in their
//! first three significant decimal digits (`[7800, 7810)`, `[0.0121, 0.0122)`), the deciles
//! are read off the buckets' weights once the pass is done, and each bucket then falls whole
//! into one decile bin, because every edge is a bucket's lower bound. The counts are exact;
//! only where an edge sits is rounded, to three digits, which is also what a reader takes in
//! (`build.memory_mb in [7800, 8200)`).
//!
//! Three digits keep a decile within 1% (relative) of the exact weighted one, as the DDSketch
//! of `wquantile` does, at 900 buckets per decade; the memory a field takes is bounded by the
//! decades its values span (at most 318 either side of zero, 900 slots each).
//!
//! A number's correlation with the measure (see `counts`) takes each value as its bucket's
//! lower bound, except integers while they are still counted by value: exact to the third
//! digit, and where a field switches from values to buckets depends on how rows fell into
//! batches and partitions, so `r` can move in its third digit from one run to another.
//!
//! The buckets, by lower bound:
//! - positive `x >= MIN_MAGNITUDE`: `[m·10^(d-2), (m+1)·10^(d-2))`, `m` in 100..=999 (the
//!   last of a decade ends where the next decade starts);
//! - `[0, MIN_MAGNITUDE)` and `[-MIN_MAGNITUDE, 0)`: each one bucket, as a sketch keeps
//!   magnitudes too small to take a logarithm of;
//! - negative: the mirror of the positive ones, closed the other way (`[-7810, -7800)`), so
//!   that every bucket is `[lower, upper)` as a bin is;
//! - `+inf` and `-inf` (with the negatives beyond the last decade), and NaN, each its own.
//!
//! A lower bound `m·10^(d-2)` is computed as the nearest `f64` to that decimal (an exact
//! product or quotient of exact operands, correctly rounded), which is what the literal
//! `7800` or `0.0121` parses to: an edge written out in the report selects exactly the
//! events counted under it.

use std::sync::LazyLock;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::Result;

use super::values::UNCOUNTED;

/// Magnitudes below this share the bucket next to zero.
pub const MIN_MAGNITUDE: f64 = 1e-9;

/// Decades `10^d` kept apart: from `MIN_MAGNITUDE` to the largest finite `f64` (the last
/// decade's bounds past `1.79e308` are infinite, and hold nothing finite).
const MIN_DECADE: i32 = -9;
const MAX_DECADE: i32 = 308;
const DECADES: usize = (MAX_DECADE - MIN_DECADE + 1) as usize;

/// Buckets per decade: leading digits 100..=999.
const PER_DECADE: usize = 900;

/// One bucket (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Bucket {
    /// Positive: decade `d` (index from `MIN_DECADE`) and leading digits `m - 100`.
    Pos(u16, u16),
    /// Negative: the mirror of `Pos` closed the other way.
    Neg(u16, u16),
    ZeroPos,
    ZeroNeg,
    PosInf,
    NegInf,
    NaN,
}

/// Every positive bucket's lower bound, decade by decade, and the start of the decade past
/// the last (infinite): `lower[d * 900 + m - 100]`; per decade `100 / 10^d`, which turns
/// a value into an estimate of its leading digits with a multiply; and per binary exponent
/// (the 11 bits of an `f64`) the decade its binade starts in, with where the next decade
/// starts (see [`positive_index`]).
struct Table {
    lower: Vec<f64>,
    digits: Vec<f64>,
    binades: Vec<Binade>,
}

/// The numbers `[2^e, 2^(e+1))`: the decade (index from `MIN_DECADE`) that `2^e` is in
/// (`MIN_DECADE` for those below it), and the lower bound of the next.
#[derive(Clone, Copy)]
struct Binade {
    decade: i32,
    next: f64,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    // 10^k as the nearest f64: parsed, not multiplied up (which rounds at every step).
    let pow10 = |k: i32| format!("1e{k}").parse::<f64>().expect("a power of ten");
    let mut lower = Vec::with_capacity(DECADES * PER_DECADE + 1);
    let mut digits = Vec::with_capacity(DECADES);
    for d in MIN_DECADE..=MAX_DECADE {
        let s = d - 2;
        digits.push(100.0 / pow10(d));
        for m in 100..1000u32 {
            // m·10^s: a product or quotient of two exact operands (10^|s| is exact up to
            // 10^22, and below the smallest decade |s| is at most 11), correctly rounded;
            // past 10^22 the literal itself is parsed.
            lower.push(if s > 22 {
                format!("{m}e{s}").parse::<f64>().expect("a decimal")
            } else if s >= 0 {
                f64::from(m) * pow10(s)
            } else {
                f64::from(m) / pow10(-s)
            });
        }
    }
    lower.push(f64::INFINITY);
    let start = |d: i32| lower[((d - MIN_DECADE) as usize) * PER_DECADE];
    let binades = (0..2048)
        .map(|bits: u64| {
            let least = f64::from_bits(bits << 52);
            let mut d = MIN_DECADE;
            while d < MAX_DECADE && start(d + 1) <= least {
                d += 1;
            }
            Binade {
                decade: d - MIN_DECADE,
                next: start(d + 1),
            }
        })
        .collect();
    Table {
        lower,
        digits,
        binades,
    }
});

/// The flat index of the positive bucket that holds `x` (`x >= MIN_MAGNITUDE`):
/// `lower[i] <= x < lower[i + 1]`; for +inf, the last bucket.
#[inline]
fn positive_index(x: f64, t: &Table) -> usize {
    // A binade spans a factor of 2, less than a decade's 10: its numbers are in the decade
    // its least is in, or the next, and one compare with the table's bound tells which, with
    // no loop for a branch to mispredict (`x >= MIN_MAGNITUDE`, so a binade below the first
    // decade holds only numbers of the first). Then the digits from a multiply, corrected
    // against the table: the table decides, so rounding in the estimate only costs a step.
    let b = t.binades[(x.to_bits() >> 52) as usize & 0x7ff];
    // +inf (the magnitude of -inf, see `Bucket::of_in`) is at or past every bound: kept in
    // the last decade, whose last bucket the caller then steps past.
    let d = (b.decade + i32::from(x >= b.next)).min(DECADES as i32 - 1);
    let base = (d as usize) * PER_DECADE;
    let digits = x * t.digits[d as usize];
    let mut m = (digits as usize).clamp(100, 999) - 100;
    while m > 0 && x < t.lower[base + m] {
        m -= 1;
    }
    while m < PER_DECADE - 1 && x >= t.lower[base + m + 1] {
        m += 1;
    }
    base + m
}

fn split(i: usize) -> (u16, u16) {
    ((i / PER_DECADE) as u16, (i % PER_DECADE) as u16)
}

fn flat(d: u16, m: u16) -> usize {
    usize::from(d) * PER_DECADE + usize::from(m)
}

impl Bucket {
    /// The bucket that holds `x`.
    pub fn of(x: f64) -> Bucket {
        Bucket::of_in(x, &TABLE)
    }

    #[inline]
    fn of_in(x: f64, t: &Table) -> Bucket {
        if x.is_nan() {
            Bucket::NaN
        } else if x >= 0.0 {
            if x < MIN_MAGNITUDE {
                Bucket::ZeroPos
            } else if x == f64::INFINITY {
                Bucket::PosInf
            } else {
                let (d, m) = split(positive_index(x, t));
                Bucket::Pos(d, m)
            }
        } else {
            let y = -x;
            if y <= MIN_MAGNITUDE {
                return Bucket::ZeroNeg;
            }
            // The smallest bound at or above y: y's own when y is one, else the next.
            let i = positive_index(y, t);
            let i = if t.lower[i] == y { i } else { i + 1 };
            if t.lower[i] == f64::INFINITY {
                // Beyond the largest finite bound (`1.79e308`), and -inf.
                return Bucket::NegInf;
            }
            let (d, m) = split(i);
            Bucket::Neg(d, m)
        }
    }

    /// The least value in the bucket (what a bin edge at it is written as). NaN for NaN.
    pub fn lower(self) -> f64 {
        match self {
            Bucket::Pos(d, m) => TABLE.lower[flat(d, m)],
            Bucket::Neg(d, m) => -TABLE.lower[flat(d, m)],
            Bucket::ZeroPos => 0.0,
            Bucket::ZeroNeg => -MIN_MAGNITUDE,
            Bucket::PosInf => f64::INFINITY,
            Bucket::NegInf => f64::NEG_INFINITY,
            Bucket::NaN => f64::NAN,
        }
    }
}

/// The slot of each bucket seen in one field: positive and negative buckets in tables by
/// decade, made when a decade is first seen (3.6 KB each: a field's memory is the decades its
/// values span), so a value's slot is two loads and no hashing; the rest apart.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// The bucket of each slot; `None` for null.
    pub keys: Vec<Option<Bucket>>,
    /// Per decade, slot + 1 of each positive (negative) bucket, 0 for none yet.
    pos: Vec<Option<Box<[u32; PER_DECADE]>>>,
    neg: Vec<Option<Box<[u32; PER_DECADE]>>>,
    /// Zero+, zero-, +inf, -inf, NaN, null.
    special: [u32; 6],
    /// The slots of the last values seen (see [`Memo`]).
    memo: Memo,
}

/// Numbers that repeat (an integer column counted by buckets, sizes in bytes) find their
/// slot by their bits, the slots of the last values seen kept one per hash bucket: a
/// multiply and a compare instead of the bucket's search and the decade's table. A column
/// whose values seldom repeat (a duration) misses most rows, and goes without for
/// [`MEMO_REST`] batches before it tries again.
#[derive(Debug, Clone, Default)]
struct Memo {
    keys: Vec<u64>,
    slots: Vec<u32>,
    /// Batches left to go without.
    rest: u32,
}

const MEMO_BITS: u32 = 10;
const MEMO_REST: u32 = 32;

impl Memo {
    /// Room for the slots, made on first use (an index that is never read makes none).
    fn ready(&mut self) {
        if self.keys.is_empty() {
            self.keys = vec![0; 1 << MEMO_BITS];
            self.slots = vec![UNCOUNTED; 1 << MEMO_BITS];
        }
    }

    #[inline]
    fn get(&mut self, bits: u64, miss: impl FnOnce() -> u32) -> u32 {
        // Fibonacci hashing: the top bits of the product depend on every bit.
        let b = (bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - MEMO_BITS)) as usize;
        if self.slots[b] != UNCOUNTED && self.keys[b] == bits {
            return self.slots[b];
        }
        let slot = miss();
        self.keys[b] = bits;
        self.slots[b] = slot;
        slot
    }
}

impl Index {
    pub fn new() -> Index {
        Index {
            keys: Vec::new(),
            pos: vec![None; DECADES],
            neg: vec![None; DECADES],
            special: [UNCOUNTED; 6],
            memo: Memo::default(),
        }
    }

    fn push(&mut self, key: Option<Bucket>) -> u32 {
        self.keys.push(key);
        (self.keys.len() - 1) as u32
    }

    /// The slot of `key` (`None`: null), given one if it has none.
    #[inline]
    pub fn slot(&mut self, key: Option<Bucket>) -> u32 {
        let special = match key {
            Some(Bucket::Pos(d, m)) => return self.dense(true, d, m),
            Some(Bucket::Neg(d, m)) => return self.dense(false, d, m),
            Some(Bucket::ZeroPos) => 0,
            Some(Bucket::ZeroNeg) => 1,
            Some(Bucket::PosInf) => 2,
            Some(Bucket::NegInf) => 3,
            Some(Bucket::NaN) => 4,
            None => 5,
        };
        if self.special[special] == UNCOUNTED {
            self.special[special] = self.push(key);
        }
        self.special[special]
    }

    /// The slot of `key` (`None`: null), if it has one.
    pub fn find(&self, key: Option<Bucket>) -> Option<u32> {
        let found = match key {
            Some(Bucket::Pos(d, m)) => self.pos.get(usize::from(d))?.as_ref()?[usize::from(m)],
            Some(Bucket::Neg(d, m)) => self.neg.get(usize::from(d))?.as_ref()?[usize::from(m)],
            // The others' slots as they are (UNCOUNTED for none), one past for the above.
            special => {
                let i = match special {
                    Some(Bucket::ZeroPos) => 0,
                    Some(Bucket::ZeroNeg) => 1,
                    Some(Bucket::PosInf) => 2,
                    Some(Bucket::NegInf) => 3,
                    Some(Bucket::NaN) => 4,
                    _ => 5,
                };
                return Some(self.special[i]).filter(|&s| s != UNCOUNTED);
            }
        };
        found.checked_sub(1)
    }

    #[inline]
    fn dense(&mut self, positive: bool, d: u16, m: u16) -> u32 {
        let table = if positive {
            &mut self.pos
        } else {
            &mut self.neg
        };
        let decade = table[usize::from(d)].get_or_insert_with(|| Box::new([0; PER_DECADE]));
        match decade[usize::from(m)] {
            0 => {
                let key = if positive {
                    Bucket::Pos(d, m)
                } else {
                    Bucket::Neg(d, m)
                };
                let slot = self.push(Some(key));
                let table = if positive {
                    &mut self.pos
                } else {
                    &mut self.neg
                };
                if let Some(decade) = &mut table[usize::from(d)] {
                    decade[usize::from(m)] = slot + 1;
                }
                slot
            }
            s => s - 1,
        }
    }
}

/// The bucket slot of every row of a numeric `col` that `counted` says to count, UNCOUNTED
/// for the others, into `out` (as `values::slots` does for discrete values).
pub fn slots(
    col: &ArrayRef,
    counted: &[bool],
    index: &mut Index,
    out: &mut Vec<u32>,
) -> Result<()> {
    let a = cast(col, &DataType::Float64)?;
    let a = a.as_primitive::<Float64Type>();
    let n = a.len();
    out.clear();
    out.resize(n, UNCOUNTED);
    let values = a.values();
    let t: &Table = &TABLE;
    let nulls = a.nulls().filter(|nulls| nulls.null_count() > 0);
    let mut memo = std::mem::take(&mut index.memo);
    if memo.rest > 0 {
        memo.rest -= 1;
        for i in (0..n).filter(|&i| counted[i]) {
            let valid = nulls.is_none_or(|nulls| nulls.is_valid(i));
            out[i] = index.slot(valid.then(|| Bucket::of_in(values[i], t)));
        }
    } else {
        memo.ready();
        let (mut looked, mut misses) = (0, 0);
        for i in (0..n).filter(|&i| counted[i]) {
            if nulls.is_some_and(|nulls| nulls.is_null(i)) {
                out[i] = index.slot(None);
                continue;
            }
            let x = values[i];
            looked += 1;
            out[i] = memo.get(x.to_bits(), || {
                misses += 1;
                index.slot(Some(Bucket::of_in(x, t)))
            });
        }
        if misses * 2 > looked {
            memo.rest = MEMO_REST;
        }
    }
    index.memo = memo;
    Ok(())
}

/// The weighted `qs` quantiles of buckets given with their weights, each as the lower bound
/// of the bucket that holds it (the first whose cumulative weight reaches `q` of the whole).
/// NaN is left out, as a sketch leaves it out. `None` where there is no weight.
pub fn quantiles(buckets: &[(Bucket, f64)], qs: &[f64]) -> Vec<Option<f64>> {
    let mut live: Vec<(f64, f64)> = buckets
        .iter()
        .filter(|(b, w)| *b != Bucket::NaN && *w > 0.0)
        .map(|(b, w)| (b.lower(), *w))
        .collect();
    live.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = live.iter().map(|(_, w)| w).sum();
    qs.iter()
        .map(|q| {
            if total <= 0.0 {
                return None;
            }
            let rank = q.clamp(0.0, 1.0) * total;
            let mut cumulative = 0.0;
            for (lower, w) in &live {
                cumulative += w;
                if cumulative >= rank {
                    return Some(*lower);
                }
            }
            live.last().map(|(lower, _)| *lower)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::lcg;

    /// The bucket above `b` in value order, for the tests' check that `x` lies below it.
    fn upper(b: Bucket) -> f64 {
        match b {
            Bucket::Pos(d, m) => TABLE.lower[flat(d, m) + 1],
            Bucket::Neg(d, m) => {
                let i = flat(d, m);
                if i == 0 {
                    -MIN_MAGNITUDE
                } else {
                    -TABLE.lower[i - 1]
                }
            }
            Bucket::ZeroPos => MIN_MAGNITUDE,
            Bucket::ZeroNeg => 0.0,
            Bucket::NegInf => -*TABLE.lower.iter().rev().find(|b| b.is_finite()).unwrap(),
            Bucket::PosInf => f64::INFINITY,
            Bucket::NaN => f64::NAN,
        }
    }

    #[test]
    fn every_value_lies_in_its_bucket_and_bounds_are_the_decimals_they_read_as() {
        let mut seed = 3;
        let mut xs: Vec<f64> = vec![
            0.0,
            -0.0,
            1e-9,
            -1e-9,
            1.0000000001e-9,
            7800.0,
            7809.999,
            0.0121,
            0.01209999,
            999.0,
            1000.0,
            12.46,
            f64::MAX,
            -f64::MAX,
            f64::MIN_POSITIVE,
            1e300,
        ];
        for _ in 0..200_000 {
            // Over forty decades either side of 1, and exact bounds with their neighbours.
            let x = 10f64.powf(lcg(&mut seed) * 40.0 - 20.0);
            let x = if lcg(&mut seed) < 0.3 { -x } else { x };
            xs.push(x);
            let b = Bucket::of(x).lower();
            xs.extend([b, b.next_up(), b.next_down()]);
        }
        for x in xs {
            let b = Bucket::of(x);
            assert!(
                b.lower() <= x && x < upper(b) || (x == f64::INFINITY && b == Bucket::PosInf),
                "{x} in {b:?}: [{}, {})",
                b.lower(),
                upper(b)
            );
        }
        // Each bound is the literal's f64.
        assert_eq!(Bucket::of(7805.0).lower(), "7800".parse::<f64>().unwrap());
        assert_eq!(
            Bucket::of(0.012149).lower(),
            "0.0121".parse::<f64>().unwrap()
        );
        assert_eq!(Bucket::of(-7805.0).lower(), "-7810".parse::<f64>().unwrap());
        // Past 10^22, where powers of ten are not exact f64s, too.
        assert_eq!(
            Bucket::of(1.2345e25).lower(),
            "1.23e25".parse::<f64>().unwrap()
        );
        assert_eq!(Bucket::of(1e25).lower(), "1e25".parse::<f64>().unwrap());
        // Integers below 1000 are buckets of their own.
        for i in 1..1000 {
            assert_eq!(Bucket::of(f64::from(i)).lower(), f64::from(i));
        }
        assert_eq!(Bucket::of(f64::NEG_INFINITY), Bucket::NegInf);
        assert_eq!(Bucket::of(f64::INFINITY), Bucket::PosInf);
        assert_eq!(Bucket::of(f64::NAN), Bucket::NaN);
    }

    #[test]
    fn numbers_at_the_ends_of_every_binade_and_decade_are_in_their_buckets() {
        let mut xs = Vec::new();
        for e in -30..=1023 {
            let least = 2f64.powi(e);
            xs.extend([least, least.next_up(), (2.0 * least).next_down()]);
        }
        for d in MIN_DECADE..=MAX_DECADE {
            let least = TABLE.lower[((d - MIN_DECADE) as usize) * PER_DECADE];
            xs.extend([least, least.next_up(), least.next_down()]);
        }
        for x in xs
            .into_iter()
            .filter(|x| x.is_finite() && *x >= MIN_MAGNITUDE)
        {
            let b = Bucket::of(x);
            assert!(
                b.lower() <= x && x < upper(b),
                "{x:e} in {b:?}: [{:e}, {:e})",
                b.lower(),
                upper(b)
            );
        }
    }

    #[test]
    fn buckets_are_in_value_order() {
        let mut seed = 11;
        let mut xs: Vec<f64> = (0..20_000)
            .map(|_| (lcg(&mut seed) - 0.5) * 10f64.powf(lcg(&mut seed) * 30.0 - 15.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        for w in xs.windows(2) {
            assert!(
                Bucket::of(w[0]).lower() <= Bucket::of(w[1]).lower(),
                "{w:?}"
            );
        }
    }

    #[test]
    fn slots_give_each_bucket_one_slot_and_skip_uncounted_rows() {
        use datafusion::arrow::array::Int64Array;
        let col: ArrayRef = std::sync::Arc::new(Int64Array::from(vec![
            Some(5),
            None,
            Some(7801),
            Some(7809),
            Some(-3),
            Some(5),
        ]));
        let counted = [true, true, true, true, false, true];
        let mut index = Index::new();
        let mut out = Vec::new();
        slots(&col, &counted, &mut index, &mut out).unwrap();
        assert_eq!(out[0], out[5]);
        assert_eq!(out[2], out[3], "7801 and 7809 share [7800, 7810)");
        assert_eq!(out[4], UNCOUNTED);
        assert_eq!(index.keys[out[1] as usize], None);
        assert_eq!(
            index.keys.len(),
            3,
            "5, null, [7800, 7810): -3 was not counted"
        );
    }

    #[test]
    fn values_found_by_their_bits_or_searched_get_their_buckets_slot() {
        use datafusion::arrow::array::Float64Array;
        let mut seed = 5;
        let mut index = Index::new();
        let mut out = Vec::new();
        // Repeating values (the memo finds them; 500 of them in its 1,024 buckets, some
        // sharing one),
        // then values that never repeat (it goes to rest), then repeating ones again (found
        // by the search while it rests), with nulls and rows not counted.
        let batches: Vec<Vec<Option<f64>>> = vec![
            (0..6000)
                .map(|i| (i % 11 != 0).then(|| f64::from(i % 500) * 1.5))
                .collect(),
            (0..6000)
                .map(|_| Some(crate::tests::lcg(&mut seed) * 1e4 - 10.0))
                .collect(),
            (0..6000).map(|i| Some(f64::from(i % 37) - 3.0)).collect(),
        ];
        for (b, xs) in batches.iter().enumerate() {
            let col: ArrayRef = std::sync::Arc::new(Float64Array::from(xs.clone()));
            let counted: Vec<bool> = (0..xs.len()).map(|i| i % 7 != 3).collect();
            slots(&col, &counted, &mut index, &mut out).unwrap();
            for (i, x) in xs.iter().enumerate() {
                if !counted[i] {
                    assert_eq!(out[i], UNCOUNTED);
                } else {
                    let want = x.map(Bucket::of);
                    assert_eq!(
                        index.keys[out[i] as usize], want,
                        "batch {b} row {i}: {x:?}"
                    );
                }
            }
            let resting = index.memo.rest > 0;
            assert_eq!(resting, b >= 1, "batch {b}");
        }
    }

    #[test]
    fn quantiles_are_bucket_bounds_at_the_weighted_rank() {
        let mut b: Vec<(Bucket, f64)> = [(1.0, 1.0), (2.0, 1.0), (100.0, 4.0), (-5.0, 1.0)]
            .iter()
            .map(|(x, w)| (Bucket::of(*x), *w))
            .collect();
        b.push((Bucket::NaN, 100.0));
        // 7 by weight: -5 holds 1/7, 1 to 2/7, 2 to 3/7, 100 the rest.
        assert_eq!(
            quantiles(&b, &[0.1, 0.2, 0.4, 0.5, 0.9]),
            vec![Some(-5.0), Some(1.0), Some(2.0), Some(100.0), Some(100.0)]
        );
        assert_eq!(quantiles(&[], &[0.5]), vec![None]);
    }
}
