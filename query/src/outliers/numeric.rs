//! The numeric fields: how the counting pass counts each (see [`counting`]), and how it
//! finds those that follow a measure the selection is defined on: the correlation of
//! `ln(1 + x)` (0 for `x <= 0` and for null) with the measure's, over the counted events.
//!
//! A numeric field that follows the measure (a request's CPU time, a share of its duration)
//! would explain any threshold on it, in calm and in incident alike: it answers "what is
//! slow?" with "what takes long", so it is left out and named, as the measure itself is. The
//! log makes the correlation one of orders of magnitude, which latencies and sizes are.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::Result;

use super::counts::Counting;

/// An integer field with more distinct values than this among the events compared (null
/// aside) is binned like a float; one with fewer (`http.status_code`, `retry.count`) is
/// compared value by value.
pub const MAX_EXACT_INTEGERS: usize = 64;

/// How the counting pass counts a field of type `dt`: numbers by the window's deciles
/// (integers with few values value by value), everything else value by value.
pub fn counting(dt: &DataType) -> Counting {
    if dt.is_integer() {
        Counting::IntegersUpTo(MAX_EXACT_INTEGERS)
    } else if dt.is_numeric() {
        Counting::Deciles
    } else {
        Counting::Values
    }
}

/// `ln(1 + x)` for `x > 0`, 0 otherwise, as the SQL
/// `CASE WHEN x > 0 THEN ln(CAST(x AS DOUBLE) + 1) ELSE 0 END` has it (NaN, above everything
/// in SQL's order, gives NaN).
pub fn log1p(x: f64) -> f64 {
    if x > 0.0 || x.is_nan() {
        (x + 1.0).ln()
    } else {
        0.0
    }
}

/// [`log1p`] of every row of a numeric column, 0 for null.
pub fn logs(col: &ArrayRef) -> Result<Vec<f64>> {
    let x = cast(col, &DataType::Float64)?;
    let x = x.as_primitive::<Float64Type>();
    Ok((0..x.len())
        .map(|i| {
            if x.is_valid(i) {
                log1p(x.value(i))
            } else {
                0.0
            }
        })
        .collect())
}

/// The co-moments of two variables: count, means, sums of squared deviations and of
/// products of deviations. Computed two-pass within a batch and merged between batches by
/// Chan et al.'s formulas, so neither the count nor the values' size costs precision.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comoments {
    n: f64,
    mean_x: f64,
    mean_y: f64,
    m2_x: f64,
    m2_y: f64,
    c_xy: f64,
}

impl Comoments {
    pub fn of(x: &[f64], y: &[f64]) -> Comoments {
        let n = x.len().min(y.len());
        if n == 0 {
            return Comoments::default();
        }
        let (x, y) = (&x[..n], &y[..n]);
        let mean_x = x.iter().sum::<f64>() / n as f64;
        let mean_y = y.iter().sum::<f64>() / n as f64;
        let mut c = Comoments {
            n: n as f64,
            mean_x,
            mean_y,
            ..Comoments::default()
        };
        for (a, b) in x.iter().zip(y) {
            let (dx, dy) = (a - mean_x, b - mean_y);
            c.m2_x += dx * dx;
            c.m2_y += dy * dy;
            c.c_xy += dx * dy;
        }
        c
    }

    pub fn merge(&mut self, o: &Comoments) {
        if o.n == 0.0 {
            return;
        }
        if self.n == 0.0 {
            *self = *o;
            return;
        }
        let n = self.n + o.n;
        let (dx, dy) = (o.mean_x - self.mean_x, o.mean_y - self.mean_y);
        let f = self.n * o.n / n;
        self.m2_x += o.m2_x + dx * dx * f;
        self.m2_y += o.m2_y + dy * dy * f;
        self.c_xy += o.c_xy + dx * dy * f;
        self.mean_x += dx * o.n / n;
        self.mean_y += dy * o.n / n;
        self.n = n;
    }

    /// The co-moments of this whole's rows that are not `part`'s (a subset of them): `merge`
    /// solved for the other part. Exact but for rounding, which is small beside the result
    /// where the rest is most of the whole, as it is here (a window's events less those
    /// neither side counts).
    pub fn without(&self, part: &Comoments) -> Comoments {
        if part.n == 0.0 {
            return *self;
        }
        let n = self.n - part.n;
        if n <= 0.0 {
            return Comoments::default();
        }
        let mean_x = (self.n * self.mean_x - part.n * part.mean_x) / n;
        let mean_y = (self.n * self.mean_y - part.n * part.mean_y) / n;
        let (dx, dy) = (part.mean_x - mean_x, part.mean_y - mean_y);
        let f = n * part.n / self.n;
        Comoments {
            n,
            mean_x,
            mean_y,
            m2_x: (self.m2_x - part.m2_x - dx * dx * f).max(0.0),
            m2_y: (self.m2_y - part.m2_y - dy * dy * f).max(0.0),
            c_xy: self.c_xy - part.c_xy - dx * dy * f,
        }
    }

    /// Whether every sum is a finite number (a NaN or an infinity among the values makes
    /// them NaN).
    pub fn is_finite(&self) -> bool {
        [
            self.n,
            self.mean_x,
            self.mean_y,
            self.m2_x,
            self.m2_y,
            self.c_xy,
        ]
        .iter()
        .all(|v| v.is_finite())
    }

    /// Pearson's r, as SQL's `corr` answers: `None` for fewer than two rows or a constant.
    pub fn correlation(&self) -> Option<f64> {
        if self.n < 2.0 {
            return None;
        }
        if self.mean_x.is_nan() || self.mean_y.is_nan() {
            return Some(f64::NAN);
        }
        if self.m2_x == 0.0 || self.m2_y == 0.0 {
            return None;
        }
        Some(self.c_xy / (self.m2_x.sqrt() * self.m2_y.sqrt()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pearson(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let vx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
        let vy: f64 = y.iter().map(|b| (b - my) * (b - my)).sum();
        cov / (vx * vy).sqrt()
    }

    #[test]
    fn comoments_merged_from_parts_are_the_whole_ones() {
        let x: Vec<f64> = (0..40).map(|i| (i as f64 * 1.5).ln_1p()).collect();
        let y: Vec<f64> = (0..40)
            .map(|i| ((i * i) as f64).ln_1p() + (i % 3) as f64)
            .collect();
        let mut parts = Comoments::of(&x[..13], &y[..13]);
        parts.merge(&Comoments::of(&x[13..], &y[13..]));
        let whole = Comoments::of(&x, &y).correlation().unwrap();
        assert!((parts.correlation().unwrap() - whole).abs() < 1e-12);
        assert!((whole - pearson(&x, &y)).abs() < 1e-12, "{whole}");
    }

    #[test]
    fn comoments_without_a_part_are_those_of_the_rest() {
        let x: Vec<f64> = (0..50).map(|i| (i as f64 * 2.5).ln_1p()).collect();
        let y: Vec<f64> = (0..50)
            .map(|i| ((i % 7) as f64).ln_1p() + i as f64)
            .collect();
        let whole = Comoments::of(&x, &y);
        let rest = whole.without(&Comoments::of(&x[40..], &y[40..]));
        let direct = Comoments::of(&x[..40], &y[..40]);
        assert_eq!(rest.n, direct.n);
        for (a, b) in [
            (rest.mean_x, direct.mean_x),
            (rest.mean_y, direct.mean_y),
            (rest.m2_x, direct.m2_x),
            (rest.m2_y, direct.m2_y),
            (rest.c_xy, direct.c_xy),
        ] {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "{a} against {b}");
        }
        assert_eq!(whole.without(&Comoments::default()), whole);
        assert_eq!(whole.without(&whole).n, 0.0);
    }

    #[test]
    fn a_constant_or_a_single_row_has_no_correlation() {
        assert_eq!(Comoments::of(&[1.0], &[5.0]).correlation(), None);
        assert_eq!(Comoments::of(&[1.0, 1.0], &[5.0, 6.0]).correlation(), None);
    }

    #[test]
    fn logs_are_zero_at_and_below_zero_and_for_null() {
        use datafusion::arrow::array::Int64Array;
        let col: ArrayRef =
            std::sync::Arc::new(Int64Array::from(vec![Some(-5), None, Some(0), Some(9)]));
        assert_eq!(logs(&col).unwrap(), vec![0.0, 0.0, 0.0, 10f64.ln()]);
    }
}
