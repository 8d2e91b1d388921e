//! `wcount`, `wsum`, `wavg` and `wrate`: sums of weights and of weighted values.
//!
//! Every stored event stands for `sample_rate` events (the weight; a null weight counts as 1,
//! the weight of an event nobody sampled). Over the events of a group:
//! - `wcount(w)`   = Σ w, the number of events the stored ones stand for (0 for no rows);
//! - `wsum(x, w)`  = Σ x·w over rows where `x` is not null (null if there are none);
//! - `wavg(x, w)`  = Σ x·w / Σ w over rows where `x` is not null: the Horvitz-Thompson ratio
//!   estimator of the mean (null if there are none);
//! - `wrate(w, p)` = Σ w / p, events per second when `p` is the group's time span (an interval
//!   such as `INTERVAL '1 minute'`, or seconds), for use with `date_bin(p, timestamp)`.
//!
//! Each is one state of two sums per group, kept in flat vectors (DataFusion's
//! `GroupsAccumulator`), so a GROUP BY over millions of rows costs two additions per row.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, IntervalUnit};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, TypeSignature, Volatility,
};

use super::{f64_column, literal_arg};

/// Which of the four functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Count,
    Sum,
    Avg,
    Rate,
}

impl Kind {
    /// Whether the function has a value argument before the weight.
    fn has_value(self) -> bool {
        matches!(self, Kind::Sum | Kind::Avg)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct WeightedMoments {
    kind: Kind,
    signature: Signature,
}

impl WeightedMoments {
    pub(crate) fn new(kind: Kind) -> Self {
        let f = DataType::Float64;
        let signature = match kind {
            Kind::Count => Signature::uniform(1, vec![f], Volatility::Immutable),
            Kind::Sum | Kind::Avg => Signature::uniform(2, vec![f], Volatility::Immutable),
            Kind::Rate => Signature::one_of(
                vec![
                    TypeSignature::Uniform(2, vec![f.clone()]),
                    TypeSignature::Exact(vec![f, DataType::Interval(IntervalUnit::MonthDayNano)]),
                ],
                Volatility::Immutable,
            ),
        };
        WeightedMoments { kind, signature }
    }

    /// The divisor: 1, or the period of `wrate` in seconds.
    fn divisor(&self, args: &AccumulatorArgs) -> Result<f64> {
        if self.kind != Kind::Rate {
            return Ok(1.0);
        }
        let seconds = match literal_arg(args, 1, "wrate", "the period")? {
            ScalarValue::IntervalMonthDayNano(Some(i)) => {
                if i.months != 0 {
                    return plan_err!(
                        "wrate: a period in months has no fixed length in seconds; \
                         use days (INTERVAL '30 days')"
                    );
                }
                i.days as f64 * 86_400.0 + i.nanoseconds as f64 / 1e9
            }
            v => v
                .cast_to(&DataType::Float64)
                .ok()
                .and_then(|v| match v {
                    ScalarValue::Float64(Some(s)) => Some(s),
                    _ => None,
                })
                .unwrap_or(f64::NAN),
        };
        if !(seconds.is_finite() && seconds > 0.0) {
            return plan_err!("wrate: the period must be a positive interval or number of seconds");
        }
        Ok(seconds)
    }
}

impl AggregateUDFImpl for WeightedMoments {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Count => "wcount",
            Kind::Sum => "wsum",
            Kind::Avg => "wavg",
            Kind::Rate => "wrate",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn is_nullable(&self) -> bool {
        self.kind.has_value()
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(One {
            kind: self.kind,
            divisor: self.divisor(&args)?,
            sum_xw: 0.0,
            sum_w: 0.0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "sum_xw"),
                DataType::Float64,
                false,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "sum_w"),
                DataType::Float64,
                false,
            )),
        ])
    }

    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups {
            kind: self.kind,
            divisor: self.divisor(&args)?,
            sum_xw: Vec::new(),
            sum_w: Vec::new(),
        }))
    }
}

/// The value and weight columns of a batch of input rows.
struct Inputs<'a> {
    x: Option<&'a Float64Array>,
    w: &'a Float64Array,
}

impl<'a> Inputs<'a> {
    fn of(kind: Kind, values: &'a [ArrayRef]) -> Result<Self> {
        let col = |i: usize| f64_column(values, i, "an argument");
        Ok(if kind.has_value() {
            Inputs {
                x: Some(col(0)?),
                w: col(1)?,
            }
        } else {
            Inputs {
                x: None,
                w: col(0)?,
            }
        })
    }

    /// Row `i` as (x·w, w), or `None` when it does not count (a null value).
    #[inline]
    fn row(&self, i: usize) -> Option<(f64, f64)> {
        let w = if self.w.is_null(i) {
            1.0
        } else {
            self.w.value(i)
        };
        match self.x {
            None => Some((0.0, w)),
            Some(x) if x.is_null(i) => None,
            Some(x) => Some((x.value(i) * w, w)),
        }
    }
}

fn passes(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

/// The answer from the two sums.
fn finish(kind: Kind, divisor: f64, sum_xw: f64, sum_w: f64) -> Option<f64> {
    match kind {
        Kind::Count => Some(sum_w),
        Kind::Rate => Some(sum_w / divisor),
        Kind::Sum => (sum_w > 0.0).then_some(sum_xw),
        Kind::Avg => (sum_w > 0.0).then(|| sum_xw / sum_w),
    }
}

fn states(values: &[ArrayRef]) -> Result<(&Float64Array, &Float64Array)> {
    Ok((
        f64_column(values, 0, "the state sum_xw")?,
        f64_column(values, 1, "the state sum_w")?,
    ))
}

/// Every group's two sums, indexed by group.
struct Groups {
    kind: Kind,
    divisor: f64,
    sum_xw: Vec<f64>,
    sum_w: Vec<f64>,
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sum_xw.resize(total_num_groups, 0.0);
        self.sum_w.resize(total_num_groups, 0.0);
        let inputs = Inputs::of(self.kind, values)?;
        let no_nulls = inputs.w.null_count() == 0 && inputs.x.is_none_or(|x| x.null_count() == 0);
        if no_nulls && opt_filter.is_none() {
            // The common case, without a branch per row.
            let w = inputs.w.values();
            match inputs.x {
                None => {
                    for (&g, &w) in group_indices.iter().zip(w.iter()) {
                        self.sum_w[g] += w;
                    }
                }
                Some(x) => {
                    for ((&g, &w), &x) in group_indices.iter().zip(w.iter()).zip(x.values().iter())
                    {
                        self.sum_xw[g] += x * w;
                        self.sum_w[g] += w;
                    }
                }
            }
            return Ok(());
        }
        for (i, &g) in group_indices.iter().enumerate() {
            if !passes(opt_filter, i) {
                continue;
            }
            if let Some((xw, w)) = inputs.row(i) {
                self.sum_xw[g] += xw;
                self.sum_w[g] += w;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sum_xw = emit_to.take_needed(&mut self.sum_xw);
        let sum_w = emit_to.take_needed(&mut self.sum_w);
        let out: Float64Array = sum_xw
            .into_iter()
            .zip(sum_w)
            .map(|(xw, w)| finish(self.kind, self.divisor, xw, w))
            .collect();
        Ok(Arc::new(out))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let sum_xw = emit_to.take_needed(&mut self.sum_xw);
        let sum_w = emit_to.take_needed(&mut self.sum_w);
        Ok(vec![
            Arc::new(Float64Array::from(sum_xw)),
            Arc::new(Float64Array::from(sum_w)),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.sum_xw.resize(total_num_groups, 0.0);
        self.sum_w.resize(total_num_groups, 0.0);
        let (xw, w) = states(values)?;
        for ((&g, &xw), &w) in group_indices
            .iter()
            .zip(xw.values().iter())
            .zip(w.values().iter())
        {
            self.sum_xw[g] += xw;
            self.sum_w[g] += w;
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let inputs = Inputs::of(self.kind, values)?;
        let n = inputs.w.len();
        let mut xw = Vec::with_capacity(n);
        let mut w = Vec::with_capacity(n);
        for i in 0..n {
            let (a, b) = if passes(opt_filter, i) {
                inputs.row(i).unwrap_or((0.0, 0.0))
            } else {
                (0.0, 0.0)
            };
            xw.push(a);
            w.push(b);
        }
        Ok(vec![
            Arc::new(Float64Array::from(xw)),
            Arc::new(Float64Array::from(w)),
        ])
    }

    fn size(&self) -> usize {
        (self.sum_xw.capacity() + self.sum_w.capacity()) * size_of::<f64>()
    }
}

/// One group's two sums, for aggregates without GROUP BY (and window frames).
#[derive(Debug)]
struct One {
    kind: Kind,
    divisor: f64,
    sum_xw: f64,
    sum_w: f64,
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let inputs = Inputs::of(self.kind, values)?;
        for i in 0..inputs.w.len() {
            if let Some((xw, w)) = inputs.row(i) {
                self.sum_xw += xw;
                self.sum_w += w;
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(finish(
            self.kind,
            self.divisor,
            self.sum_xw,
            self.sum_w,
        )))
    }

    fn size(&self) -> usize {
        size_of::<Self>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.sum_xw)),
            ScalarValue::Float64(Some(self.sum_w)),
        ])
    }

    fn merge_batch(&mut self, states_in: &[ArrayRef]) -> Result<()> {
        let (xw, w) = states(states_in)?;
        self.sum_xw += xw.values().iter().sum::<f64>();
        self.sum_w += w.values().iter().sum::<f64>();
        Ok(())
    }
}
