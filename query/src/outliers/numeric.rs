//! One pass over the numeric fields, before the counting pass: what [`super::analyze`] needs
//! to know of them to count them. For each field
//! - its weighted distribution, as the [`Sketch`] `wquantile` keeps: the deciles are its bins;
//! - for an integer field, whether it has few values (then it is counted value by value);
//! - its correlation with each measure (a numeric field the selection is defined on), of
//!   `ln(1 + x)` (0 for `x <= 0` and for null), to leave out the fields that follow one.
//!
//! One sketch per field answers all nine deciles (a `wquantile` per decile in SQL keeps nine
//! identical sketches), and one scan answers both questions; partitions are summarised apart
//! and merged ([`Numeric::merge`]).
//!
//! The batches it reads: the weight (`sample_rate`), then the measures, then the fields.

use std::collections::HashSet;

use ahash::RandomState;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;

use crate::weighted::sketch::Sketch;

/// What is kept of one field.
#[derive(Debug, Clone, Default)]
struct Field {
    /// `None` for a field that is not binned (decimals: correlated, never binned).
    sketch: Option<Sketch>,
    /// For an integer field, its distinct values (as `f64` bits) while there are at most
    /// `max_distinct`; `None` once there are more (or for a float field).
    distinct: Option<HashSet<u64, RandomState>>,
    /// Per measure, the co-moments of the field's and the measure's logs.
    with: Vec<Comoments>,
}

/// The summary of the numeric fields over a window (see the module doc).
#[derive(Debug, Clone)]
pub struct Numeric {
    fields: Vec<Field>,
    measures: usize,
    /// An integer field with more distinct values than this is binned.
    max_distinct: usize,
}

/// How a field is summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Binned by its deciles.
    Float,
    /// Binned by its deciles when it has more than `max_distinct` values.
    Integer,
    /// Only correlated (a decimal).
    Other,
}

impl Kind {
    pub fn of(dt: &DataType) -> Kind {
        if dt.is_floating() {
            Kind::Float
        } else if dt.is_integer() {
            Kind::Integer
        } else {
            Kind::Other
        }
    }
}

impl Numeric {
    /// A summary of fields of `kinds`, against `measures` measures.
    pub fn new(kinds: &[Kind], measures: usize, max_distinct: usize) -> Numeric {
        Numeric {
            fields: kinds
                .iter()
                .map(|k| Field {
                    sketch: (*k != Kind::Other).then(Sketch::default),
                    distinct: (*k == Kind::Integer).then(HashSet::default),
                    with: vec![Comoments::default(); measures],
                })
                .collect(),
            measures,
            max_distinct,
        }
    }

    /// Adds a batch laid out as the module doc says.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let weights = as_f64(batch.column(0))?;
        let weights = weights.as_primitive::<Float64Type>();
        let mut measures: Vec<Vec<f64>> = Vec::with_capacity(self.measures);
        for col in batch.columns().iter().skip(1).take(self.measures) {
            measures.push(logs(col)?);
        }
        let columns = batch.columns().iter().skip(1 + self.measures);
        for (f, col) in self.fields.iter_mut().zip(columns) {
            let x = as_f64(col)?;
            let x = x.as_primitive::<Float64Type>();
            if let Some(sketch) = &mut f.sketch {
                for i in 0..x.len() {
                    if x.is_valid(i) {
                        let w = if weights.is_null(i) {
                            1.0
                        } else {
                            weights.value(i)
                        };
                        sketch.add(x.value(i), w);
                    }
                }
            }
            if let Some(seen) = &mut f.distinct {
                // Runs of one value (a status code, a retry count) skip the set.
                let mut last = None;
                for i in 0..x.len() {
                    let bits = x.value(i).to_bits();
                    if x.is_valid(i) && last != Some(bits) {
                        last = Some(bits);
                        seen.insert(bits);
                        if seen.len() > self.max_distinct {
                            break;
                        }
                    }
                }
                if seen.len() > self.max_distinct {
                    f.distinct = None;
                }
            }
            if !measures.is_empty() {
                let lx = logs(col)?;
                for (c, ly) in f.with.iter_mut().zip(&measures) {
                    c.merge(&Comoments::of(&lx, ly));
                }
            }
        }
        Ok(())
    }

    /// Merges another part's summary (of the same fields) into this one.
    pub fn merge(&mut self, other: Numeric) {
        for (mine, theirs) in self.fields.iter_mut().zip(other.fields) {
            if let (Some(a), Some(b)) = (&mut mine.sketch, &theirs.sketch) {
                a.merge(b);
            }
            mine.distinct = match (mine.distinct.take(), theirs.distinct) {
                (Some(mut a), Some(b)) => {
                    a.extend(b);
                    (a.len() <= self.max_distinct).then_some(a)
                }
                _ => None,
            };
            for (a, b) in mine.with.iter_mut().zip(&theirs.with) {
                a.merge(b);
            }
        }
    }

    /// The `q` quantiles of field `i` (each `None` when it has no values), weighted; nothing
    /// for a field that is not binned.
    pub fn quantiles(&self, i: usize, qs: &[f64]) -> Vec<Option<f64>> {
        match &self.fields[i].sketch {
            Some(s) => qs.iter().map(|q| s.quantile(*q)).collect(),
            None => Vec::new(),
        }
    }

    /// Whether integer field `i` has at most `max_distinct` values (false for the others).
    pub fn few_values(&self, i: usize) -> bool {
        self.fields[i].distinct.is_some()
    }

    /// The correlation of field `i`'s logs with measure `m`'s, `None` when it is not defined
    /// (fewer than two rows, or one side constant), as SQL's `corr` answers.
    pub fn correlation(&self, i: usize, m: usize) -> Option<f64> {
        self.fields[i].with[m].correlation()
    }
}

fn as_f64(col: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(col, &DataType::Float64)?)
}

/// `ln(1 + x)` for `x > 0`, 0 otherwise (and for null), as the SQL
/// `CASE WHEN x > 0 THEN ln(CAST(x AS DOUBLE) + 1) ELSE 0 END` has it (NaN, above everything
/// in SQL's order, gives NaN).
fn logs(col: &ArrayRef) -> Result<Vec<f64>> {
    let x = as_f64(col)?;
    let x = x.as_primitive::<Float64Type>();
    Ok((0..x.len())
        .map(|i| {
            let v = x.value(i);
            if x.is_valid(i) && (v > 0.0 || v.is_nan()) {
                (v + 1.0).ln()
            } else {
                0.0
            }
        })
        .collect())
}

/// The co-moments of two variables: count, means, sums of squared deviations and of
/// products of deviations. Computed two-pass within a batch and merged between batches by
/// Chan et al.'s formulas, so neither the count nor the values' size costs precision.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Comoments {
    n: f64,
    mean_x: f64,
    mean_y: f64,
    m2_x: f64,
    m2_y: f64,
    c_xy: f64,
}

impl Comoments {
    fn of(x: &[f64], y: &[f64]) -> Comoments {
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

    fn merge(&mut self, o: &Comoments) {
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

    fn correlation(&self) -> Option<f64> {
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
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, Int64Array};
    use datafusion::arrow::datatypes::{Field as ArrowField, Schema};

    use super::*;

    /// (weight, measure, a float field, an integer field).
    fn batch(w: Vec<f64>, m: Vec<f64>, f: Vec<Option<f64>>, i: Vec<i64>) -> RecordBatch {
        let schema = Schema::new(vec![
            ArrowField::new("w", DataType::Float64, false),
            ArrowField::new("m", DataType::Float64, false),
            ArrowField::new("f", DataType::Float64, true),
            ArrowField::new("i", DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Float64Array::from(w)),
                Arc::new(Float64Array::from(m)),
                Arc::new(Float64Array::from(f)),
                Arc::new(Int64Array::from(i)),
            ],
        )
        .unwrap()
    }

    fn pearson(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let cov: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let vx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
        let vy: f64 = y.iter().map(|b| (b - my) * (b - my)).sum();
        cov / (vx * vy).sqrt()
    }

    #[test]
    fn one_sketch_per_field_weighted_and_the_logs_correlated_as_sql_has_them() {
        let kinds = [Kind::Float, Kind::Integer];
        let mut s = Numeric::new(&kinds, 1, 3);
        let m = vec![10.0, 20.0, 400.0, 8000.0, 0.0];
        let f = vec![Some(1.0), Some(2.0), None, Some(100.0), Some(-5.0)];
        s.add(&batch(
            vec![1.0, 1.0, 1.0, 4.0, 1.0],
            m.clone(),
            f.clone(),
            vec![1, 2, 2, 3, 3],
        ))
        .unwrap();
        // Weighted: 100 stands for 4 of the 7 events with a value, so it is the median.
        let median = s.quantiles(0, &[0.5])[0].unwrap();
        assert!((median - 100.0).abs() <= 1.0, "{median}");
        // The same sketch `wquantile` keeps, fed the same rows.
        let mut want = Sketch::default();
        for (x, w) in [(1.0, 1.0), (2.0, 1.0), (100.0, 4.0), (-5.0, 1.0)] {
            want.add(x, w);
        }
        assert_eq!(
            s.quantiles(0, &[0.1, 0.9]),
            vec![want.quantile(0.1), want.quantile(0.9)]
        );
        // Three distinct integers, no more than 3: counted value by value.
        assert!(s.few_values(1) && !s.few_values(0));
        // null and -5 count as 0, as the SQL's CASE has them.
        let log = |v: f64| if v > 0.0 { (v + 1.0).ln() } else { 0.0 };
        let lx: Vec<f64> = f.iter().map(|v| log(v.unwrap_or(0.0))).collect();
        let ly: Vec<f64> = m.iter().map(|v| log(*v)).collect();
        let r = s.correlation(0, 0).unwrap();
        assert!((r - pearson(&lx, &ly)).abs() < 1e-12, "{r}");
    }

    #[test]
    fn merging_parts_is_summarising_the_whole() {
        let kinds = [Kind::Float, Kind::Integer];
        let rows = |k: usize| {
            batch(
                (0..k).map(|i| 1.0 + (i % 4) as f64).collect(),
                (0..k).map(|i| (i * i) as f64).collect(),
                (0..k).map(|i| Some(i as f64 * 1.5)).collect(),
                (0..k).map(|i| (i % 5) as i64).collect(),
            )
        };
        let all = rows(40);
        let mut whole = Numeric::new(&kinds, 1, 4);
        whole.add(&all).unwrap();
        let mut a = Numeric::new(&kinds, 1, 4);
        a.add(&all.slice(0, 13)).unwrap();
        let mut b = Numeric::new(&kinds, 1, 4);
        b.add(&all.slice(13, 27)).unwrap();
        a.merge(b);
        let deciles = [0.1, 0.5, 0.9];
        assert_eq!(a.quantiles(0, &deciles), whole.quantiles(0, &deciles));
        // Each part saw at most 4 distinct integers; together 5: more than 4.
        assert!(!a.few_values(1) && !whole.few_values(1));
        let (ra, rw) = (
            a.correlation(0, 0).unwrap(),
            whole.correlation(0, 0).unwrap(),
        );
        assert!((ra - rw).abs() < 1e-12, "{ra} vs {rw}");
    }

    #[test]
    fn a_constant_or_a_single_row_has_no_correlation() {
        let mut s = Numeric::new(&[Kind::Float], 1, 64);
        s.add(&batch(vec![1.0], vec![5.0], vec![Some(1.0)], vec![0]).slice(0, 1))
            .unwrap();
        assert_eq!(s.correlation(0, 0), None);
        s.add(&batch(vec![1.0], vec![6.0], vec![Some(1.0)], vec![0]))
            .unwrap();
        assert_eq!(s.correlation(0, 0), None);
    }
}
