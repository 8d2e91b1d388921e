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

/// Bucket `k`'s lower bound, `10^(k/n)`: the one formula every bound comes from, so the
/// value and column versions place a value on the same side of every bound.
fn bound(k: i32, n: f64) -> f64 {
    10f64.powf(f64::from(k) / n)
}

/// Moves a guess `k` to the bucket of `x`: the largest `k` with `bound(k) <= x`.
#[inline]
fn settle(mut k: i32, x: f64, b: impl Fn(i32) -> f64) -> i32 {
    while b(k) > x {
        k -= 1;
    }
    while b(k + 1) <= x {
        k += 1;
    }
    k
}

/// The bucket of `x` with `n` buckets per decade: the largest bound `10^(k/n)` not above `x`.
/// `x <= 0` and NaN are bucket 0; infinity is itself.
pub(crate) fn log_bucket(x: f64, n: f64) -> f64 {
    if x.is_nan() || x <= 0.0 {
        return 0.0;
    }
    if !x.is_finite() {
        return x;
    }
    // floor(log10(x) * n) is the bucket or next to it (rounding at an exact bound).
    let guess = (x.log10() * n).floor() as i32;
    bound(settle(guess, x, |k| bound(k, n)), n)
}

/// A guess at `floor(log10(x) * n)` from the bits of a normal positive `x`, within a bucket or
/// two for `n <= 100`: the binary exponent plus a quadratic for log2 of the mantissa (error
/// under 0.005), cheaper than `log10`. [`settle`] makes it exact.
#[inline]
fn guess_index(x: f64, n: f64) -> i32 {
    const MANTISSA: u64 = (1 << 52) - 1;
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let m = f64::from_bits((bits & MANTISSA) | (1023 << 52));
    let log2 = f64::from(e) + (-0.344_848_43 * m + 2.024_665_78) * m - 1.674_877_59;
    // Truncation, not `floor` (a libm call without SSE4.1, a sixth of a heatmap query's time
    // in a profile): a guess one too high for negatives is settled like any other.
    (log2 * std::f64::consts::LOG10_2 * n) as i32
}

/// [`log_bucket`] over a column. A `log10` and a `powf` per row were most of a heatmap query's
/// time; here the bucket comes from the bits of the value, checked against bounds that are
/// computed once per bucket of the batch (a column's values fall in a few dozen).
fn log_buckets(x: &Float64Array, n: f64) -> Float64Array {
    let normal = |v: f64| v.is_finite() && v >= f64::MIN_POSITIVE;
    // Pass 1: a guess per value (0 where the value is off the scale) and their range.
    let (mut lo, mut hi) = (i32::MAX, i32::MIN);
    let guesses: Vec<i32> = x
        .values()
        .iter()
        .map(|&v| {
            let k = if normal(v) { guess_index(v, n) } else { 0 };
            lo = lo.min(k);
            hi = hi.max(k);
            k
        })
        .collect();
    let (lo, table): (i32, Vec<f64>) = if lo <= hi && (hi as i64 - lo as i64) < 100_000 {
        // Room for settle's steps on either side.
        let lo = lo.saturating_sub(4);
        (
            lo,
            (lo..=hi.saturating_add(4)).map(|k| bound(k, n)).collect(),
        )
    } else {
        (0, Vec::new())
    };
    let b = |k: i32| {
        table
            .get((k as i64 - lo as i64) as usize)
            .copied()
            .unwrap_or_else(|| bound(k, n))
    };
    // Pass 2: each guess settled against the bounds.
    let values: Vec<f64> = x
        .values()
        .iter()
        .zip(&guesses)
        .map(|(&v, &k)| {
            if normal(v) {
                b(settle(k, v, b))
            } else {
                log_bucket(v, n)
            }
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
            Some(5e-324), // subnormal
            Some(10f64.powf(0.25)),
        ];
        let mut x = 0.0007;
        while x < 1e8 {
            values.push(Some(x));
            x *= 1.113;
        }
        let col = Float64Array::from(values.clone());
        for n in [1.0, 3.0, 4.0, 10.0, 100.0] {
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
