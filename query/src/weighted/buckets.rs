//! `log_bucket(x, n)`: the lower bound of `x`'s bucket on a log scale with `n` buckets per
//! power of ten, the value axis of a latency heatmap. With `n = 4` the bounds are 1, 1.78,
//! 3.16, 5.62, 10, 17.8, ... ; every bucket spans the same ratio (`10^(1/n)`), so a heatmap
//! shows a 2 ms and a 2 s mode with the same resolution. `x <= 0` is bucket 0; null is null.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct LogBucket {
    signature: Signature,
}

impl LogBucket {
    pub(crate) fn new() -> Self {
        LogBucket {
            signature: Signature::uniform(2, vec![DataType::Float64], Volatility::Immutable),
        }
    }
}

/// The bucket of `x` with `n` buckets per decade.
pub(crate) fn log_bucket(x: f64, n: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    let k = (x.log10() * n).floor();
    let lo = 10f64.powf(k / n);
    // powf can land a hair above x at an exact bound (log10(1000) * 3 = 8.999...):
    // the bucket holds x, so its lower bound is never above it.
    if lo > x {
        10f64.powf((k - 1.0) / n)
    } else {
        lo
    }
}

/// The bucket index of `x`: `floor(log10(x) * n)`, or a marker for values outside the scale.
const ZERO_BUCKET: i32 = i32::MIN;
const ITSELF: i32 = i32::MAX;

fn bucket_index(x: f64, n: f64) -> i32 {
    if x.is_nan() || x <= 0.0 {
        ZERO_BUCKET
    } else if !x.is_finite() {
        ITSELF
    } else {
        // |log10| <= 324 for finite doubles; n is checked to keep this inside i32.
        (x.log10() * n).floor() as i32
    }
}

/// [`log_bucket`] over a column. `10^(k/n)` is the costly part (a `powf` per row was most of a
/// heatmap query's time), and a column's values fall in a few dozen buckets, so the bounds are
/// computed once per bucket of the batch and looked up.
fn log_buckets(x: &Float64Array, n: f64) -> Float64Array {
    let ks: Vec<i32> = x.values().iter().map(|&v| bucket_index(v, n)).collect();
    let real = ks
        .iter()
        .copied()
        .filter(|&k| k != ZERO_BUCKET && k != ITSELF);
    let (lo, hi) = real.fold((i32::MAX, i32::MIN), |(a, b), k| (a.min(k), b.max(k)));
    let table: Vec<f64> = if lo <= hi && (hi as i64 - lo as i64) < 100_000 {
        (lo..=hi).map(|k| 10f64.powf(f64::from(k) / n)).collect()
    } else {
        Vec::new()
    };
    let values: Vec<f64> = ks
        .iter()
        .zip(x.values().iter())
        .map(|(&k, &v)| match k {
            ZERO_BUCKET => 0.0,
            ITSELF => v,
            _ => match table.get((k as i64 - lo as i64) as usize) {
                // The bound can land a hair above v at an exact power (see `log_bucket`).
                Some(&b) if b <= v => b,
                _ => log_bucket(v, n),
            },
        })
        .collect();
    Float64Array::new(values.into(), x.nulls().cloned())
}

impl ScalarUDFImpl for LogBucket {
    fn name(&self) -> &str {
        "log_bucket"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let n = match &args.args[1] {
            ColumnarValue::Scalar(ScalarValue::Float64(Some(n)))
                if *n >= 1.0 && n.fract() == 0.0 =>
            {
                *n
            }
            _ => {
                return exec_err!(
                    "log_bucket: the second argument is the number of buckets per power of ten, \
                     a whole number from 1 to 1000000 (for example log_bucket(duration_ms, 4))"
                );
            }
        };
        match &args.args[0] {
            ColumnarValue::Scalar(ScalarValue::Float64(v)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Float64(v.map(|x| log_bucket(x, n))),
            )),
            ColumnarValue::Array(a) => {
                let Some(x) = a.as_primitive_opt::<Float64Type>() else {
                    return exec_err!("log_bucket: the value is not Float64");
                };
                Ok(ColumnarValue::Array(Arc::new(log_buckets(x, n))))
            }
            ColumnarValue::Scalar(v) => exec_err!("log_bucket: the value is not Float64: {v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_version_agrees_with_the_value_version() {
        let mut values: Vec<Option<f64>> = vec![
            None,
            Some(0.0),
            Some(-3.0),
            Some(f64::NAN),
            Some(f64::INFINITY),
            Some(1000.0),
            Some(1e-300),
            Some(f64::MAX),
        ];
        let mut x = 0.0007;
        while x < 1e8 {
            values.push(Some(x));
            x *= 1.113;
        }
        let col = Float64Array::from(values.clone());
        for n in [1.0, 3.0, 4.0, 10.0] {
            let out = log_buckets(&col, n);
            for (i, v) in values.iter().enumerate() {
                match v {
                    None => assert!(out.is_null(i)),
                    Some(v) => {
                        let want = log_bucket(*v, n);
                        let got = out.value(i);
                        assert!(
                            got == want || (got.is_nan() && want.is_nan()),
                            "{v}: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn every_value_is_in_its_bucket() {
        for n in [1.0, 2.0, 4.0, 10.0] {
            let mut x = 0.001;
            while x < 1e7 {
                let lo = log_bucket(x, n);
                let hi = lo * 10f64.powf(1.0 / n);
                assert!(
                    lo <= x && x < hi * (1.0 + 1e-12),
                    "{x} in [{lo}, {hi}) n={n}"
                );
                x *= 1.37;
            }
        }
        assert_eq!(log_bucket(10.0, 1.0), 10.0);
        assert_eq!(log_bucket(9.99, 1.0), 1.0);
        assert_eq!(log_bucket(250.0, 2.0), 10f64.powf(2.0));
        assert_eq!(log_bucket(350.0, 2.0), 10f64.powf(2.5));
        assert_eq!(log_bucket(0.0, 4.0), 0.0);
        assert_eq!(log_bucket(f64::INFINITY, 4.0), f64::INFINITY);
        assert_eq!(log_bucket(-5.0, 4.0), 0.0);
    }
}
