//! `log_bucket(x, n)`: the lower bound of `x`'s bucket on a log scale with `n` buckets per
//! power of ten, the value axis of a latency heatmap. With `n = 4` the bounds are 1, 1.78,
//! 3.16, 5.62, 10, 17.8, ... ; every bucket spans the same ratio (`10^(1/n)`), so a heatmap
//! shows a 2 ms and a 2 s mode with the same resolution. `x <= 0` is bucket 0; null is null.

use std::sync::Arc;

use datafusion::arrow::array::{AsArray, Float64Array};
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
                     a whole number >= 1 (for example log_bucket(duration_ms, 4))"
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
                let out: Float64Array = x.iter().map(|v| v.map(|x| log_bucket(x, n))).collect();
                debug_assert_eq!(out.len(), x.len());
                Ok(ColumnarValue::Array(Arc::new(out)))
            }
            ColumnarValue::Scalar(v) => exec_err!("log_bucket: the value is not Float64: {v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(log_bucket(-5.0, 4.0), 0.0);
    }
}
