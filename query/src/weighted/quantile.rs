//! `wquantile(x, w, q)` and the shorthands `wp50`, `wp90`, `wp99`, `wp999`: weighted quantiles.
//!
//! The quantile of a group is the smallest value whose cumulative weight reaches `q` of the
//! group's total weight (null values do not count; a null weight counts as 1), estimated with
//! the log-bucket sketch of [`super::sketch`]: within 1% (relative) of the exact answer,
//! whatever the distribution, and mergeable across partitions without losing that.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray, Float64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::sketch::Sketch;
use super::{f64_column, literal_arg};

/// `wquantile` (the quantile is an argument) or a shorthand with it built in.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct WeightedQuantile {
    name: &'static str,
    /// The quantile in millionths, for the shorthands; `None` for `wquantile`.
    fixed: Option<u32>,
    signature: Signature,
}

impl WeightedQuantile {
    pub(crate) fn general() -> Self {
        WeightedQuantile {
            name: "wquantile",
            fixed: None,
            signature: Signature::uniform(3, vec![DataType::Float64], Volatility::Immutable),
        }
    }

    pub(crate) fn fixed(name: &'static str, q: f64) -> Self {
        WeightedQuantile {
            name,
            fixed: Some((q * 1e6).round() as u32),
            signature: Signature::uniform(2, vec![DataType::Float64], Volatility::Immutable),
        }
    }

    fn q(&self, args: &AccumulatorArgs) -> Result<f64> {
        if let Some(m) = self.fixed {
            return Ok(f64::from(m) / 1e6);
        }
        let q = match literal_arg(args, 2, self.name, "the quantile")? {
            ScalarValue::Float64(Some(q)) => q,
            v => return plan_err!("wquantile: the quantile must be a number, not {v}"),
        };
        if !(0.0..=1.0).contains(&q) {
            return plan_err!("wquantile: the quantile must be between 0 and 1, not {q}");
        }
        Ok(q)
    }
}

impl AggregateUDFImpl for WeightedQuantile {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(One {
            q: self.q(&args)?,
            sketch: Sketch::default(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "sketch"),
            DataType::Binary,
            false,
        ))])
    }

    fn groups_accumulator_supported(&self, _: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups {
            q: self.q(&args)?,
            sketches: Vec::new(),
            heap: 0,
        }))
    }
}

fn inputs(values: &[ArrayRef]) -> Result<(&Float64Array, &Float64Array)> {
    Ok((
        f64_column(values, 0, "the value")?,
        f64_column(values, 1, "the weight")?,
    ))
}

/// Row `i` as (value, weight), or `None` for a null value.
#[inline]
fn row(x: &Float64Array, w: &Float64Array, i: usize) -> Option<(f64, f64)> {
    if x.is_null(i) {
        return None;
    }
    let w = if w.is_null(i) { 1.0 } else { w.value(i) };
    Some((x.value(i), w))
}

fn sketches(values: &[ArrayRef]) -> Result<&BinaryArray> {
    match values.first().and_then(|a| a.as_binary_opt::<i32>()) {
        Some(a) => Ok(a),
        None => exec_err!("weighted quantile: the intermediate state is not Binary"),
    }
}

fn decode(bytes: &[u8]) -> Result<Sketch> {
    match Sketch::from_bytes(bytes) {
        Some(s) => Ok(s),
        None => exec_err!("weighted quantile: a malformed intermediate sketch"),
    }
}

fn encode<'a>(sketches: impl Iterator<Item = &'a Sketch>) -> ArrayRef {
    let mut b = BinaryBuilder::new();
    let mut buf = Vec::new();
    for s in sketches {
        buf.clear();
        s.to_bytes(&mut buf);
        b.append_value(&buf);
    }
    Arc::new(b.finish())
}

/// A sketch per group.
struct Groups {
    q: f64,
    sketches: Vec<Sketch>,
    /// Heap bytes of the sketches, kept up to date as they grow (`size` must be cheap).
    heap: usize,
}

impl Groups {
    fn add(&mut self, g: usize, value: f64, weight: f64) {
        let s = &mut self.sketches[g];
        let before = s.heap_size();
        s.add(value, weight);
        self.heap = self.heap + s.heap_size() - before;
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<Sketch> {
        let out = emit_to.take_needed(&mut self.sketches);
        self.heap = self.sketches.iter().map(Sketch::heap_size).sum();
        out
    }
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sketches.resize_with(total_num_groups, Sketch::default);
        let (x, w) = inputs(values)?;
        for (i, &g) in group_indices.iter().enumerate() {
            if opt_filter.is_some_and(|f| !(f.is_valid(i) && f.value(i))) {
                continue;
            }
            if let Some((v, wt)) = row(x, w, i) {
                self.add(g, v, wt);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let q = self.q;
        let out: Float64Array = self.take(emit_to).iter().map(|s| s.quantile(q)).collect();
        Ok(Arc::new(out))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![encode(self.take(emit_to).iter())])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.sketches.resize_with(total_num_groups, Sketch::default);
        let states = sketches(values)?;
        for (i, &g) in group_indices.iter().enumerate() {
            let other = decode(states.value(i))?;
            let s = &mut self.sketches[g];
            let before = s.heap_size();
            s.merge(&other);
            self.heap = self.heap + s.heap_size() - before;
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let (x, w) = inputs(values)?;
        let one: Vec<Sketch> = (0..x.len())
            .map(|i| {
                let mut s = Sketch::default();
                if opt_filter.is_none_or(|f| f.is_valid(i) && f.value(i))
                    && let Some((v, wt)) = row(x, w, i)
                {
                    s.add(v, wt);
                }
                s
            })
            .collect();
        Ok(vec![encode(one.iter())])
    }

    fn size(&self) -> usize {
        self.sketches.capacity() * size_of::<Sketch>() + self.heap
    }
}

/// One sketch, for aggregates without GROUP BY.
#[derive(Debug)]
struct One {
    q: f64,
    sketch: Sketch,
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (x, w) = inputs(values)?;
        for i in 0..x.len() {
            if let Some((v, wt)) = row(x, w, i) {
                self.sketch.add(v, wt);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.sketch.quantile(self.q)))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.sketch.heap_size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut buf = Vec::new();
        self.sketch.to_bytes(&mut buf);
        Ok(vec![ScalarValue::Binary(Some(buf))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let states = sketches(states)?;
        for i in 0..states.len() {
            if states.is_valid(i) {
                self.sketch.merge(&decode(states.value(i))?);
            }
        }
        Ok(())
    }
}
