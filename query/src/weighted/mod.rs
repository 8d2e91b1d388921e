//! Weighted SQL functions: every stored event stands for `sample_rate` events, and these
//! functions answer for the events, not the stored rows.
//!
//! | function | answers | over a group |
//! |---|---|---|
//! | `wcount(sample_rate)` | how many events | Σ w (0 for no rows) |
//! | `wsum(x, sample_rate)` | the total of `x` | Σ x·w over non-null `x` |
//! | `wavg(x, sample_rate)` | the mean of `x` | Σ x·w / Σ w over non-null `x` |
//! | `wquantile(x, sample_rate, q)` | the `q` quantile of `x` | within 1% (relative) |
//! | `wp50`, `wp90`, `wp99`, `wp999(x, sample_rate)` | shorthands for `q` = 0.5 ... 0.999 | |
//! | `wrate(sample_rate, INTERVAL '1 minute')` | events per second | Σ w / seconds |
//! | `log_bucket(x, n)` | a heatmap's value axis | `n` buckets per power of ten |
//!
//! A null weight counts as 1. Plain `COUNT(*)`, `SUM`, `AVG` are left as SQL defines them:
//! they count and add stored rows. A heatmap is a GROUP BY over a time bucket and a value
//! bucket:
//!
//! ```sql
//! SELECT date_bin(INTERVAL '1 minute', timestamp) AS minute,
//!        log_bucket(duration_ms, 4) AS ms,
//!        wcount(sample_rate) AS events
//! FROM api GROUP BY 1, 2 ORDER BY 1, 2
//! ```

mod buckets;
mod moments;
mod quantile;
pub mod sketch;

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::Float64Type;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::physical_expr::expressions::Literal;
use datafusion::prelude::SessionContext;

use moments::{Kind, WeightedMoments};
use quantile::WeightedQuantile;

/// The names of the weighted aggregates, for callers that document or list them.
pub const AGGREGATES: &[&str] = &[
    "wcount",
    "wsum",
    "wavg",
    "wrate",
    "wquantile",
    "wp50",
    "wp90",
    "wp99",
    "wp999",
];

/// Registers every weighted function with the session.
pub fn register(ctx: &SessionContext) {
    for kind in [Kind::Count, Kind::Sum, Kind::Avg, Kind::Rate] {
        ctx.register_udaf(AggregateUDF::from(WeightedMoments::new(kind)));
    }
    ctx.register_udaf(AggregateUDF::from(WeightedQuantile::general()));
    for (name, q) in [
        ("wp50", 0.5),
        ("wp90", 0.9),
        ("wp99", 0.99),
        ("wp999", 0.999),
    ] {
        ctx.register_udaf(AggregateUDF::from(WeightedQuantile::fixed(name, q)));
    }
    ctx.register_udf(ScalarUDF::from(buckets::LogBucket::new()));
    debug_assert!(AGGREGATES.iter().all(|n| ctx.udaf(n).is_ok()));
}

/// Column `i` of an aggregate's arguments or intermediate state, which the signature or
/// `state_fields` made Float64; `what` names it in the error if it is not.
pub(crate) fn f64_column<'a>(
    values: &'a [ArrayRef],
    i: usize,
    what: &str,
) -> Result<&'a Float64Array> {
    match values
        .get(i)
        .and_then(|a| a.as_primitive_opt::<Float64Type>())
    {
        Some(a) => Ok(a),
        None => exec_err!(
            "weighted aggregate: {what} (column {}) is not Float64",
            i + 1
        ),
    }
}

/// The value of argument `i`, which must be a constant (a quantile, a period).
pub(crate) fn literal_arg(
    args: &AccumulatorArgs,
    i: usize,
    function: &str,
    what: &str,
) -> Result<ScalarValue> {
    match args.exprs.get(i) {
        Some(e) => match e.downcast_ref::<Literal>() {
            Some(l) => Ok(l.value().clone()),
            None => plan_err!("{function}: {what} must be a constant, not {e}"),
        },
        None => plan_err!("{function}: {what} is missing"),
    }
}
