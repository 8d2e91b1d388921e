//! One pass over the window's events, counting for every candidate field how much weight each
//! of its values has in the selection and in the baseline.
//!
//! The pass reads batches of `(selected, weight, field...)` columns, as a DataFusion query
//! produces them, and keeps per field a map from value to two [`Cell`]s. All fields are
//! counted in the same pass (one scan of the data, where one GROUP BY per field would be sixty
//! scans). A field whose values are nearly all distinct (a trace id, a request id, a
//! timestamp) identifies events rather than describing them: once it has more than
//! [`Limits::max_distinct`] values it is marked as an identifier and no longer counted, which
//! also bounds the memory a pass takes.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;

use super::stats::Cell;
use super::values::{self, ValueRef};

/// A value of a candidate field, as counted. Floats are counted by the bin they fall in (see
/// [`Bins`]), so every value here is discrete.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    /// The `i`th bin of a numeric field.
    Bin(u16),
}

/// Bounds of a numeric field's bins: bin `i` holds values in `[edges[i-1], edges[i])`, bin 0
/// everything below `edges[0]`, the last bin everything from the last edge up.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bins {
    pub edges: Vec<f64>,
}

impl Bins {
    pub fn bin(&self, x: f64) -> u16 {
        self.edges.partition_point(|e| *e <= x) as u16
    }
}

/// Bounds on one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// A field with more distinct values than this is an identifier, not a description.
    pub max_distinct: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_distinct: 5000 }
    }
}

/// The counts of one field.
#[derive(Debug, Clone, Default)]
pub struct FieldCounts {
    pub name: String,
    /// `[selection, baseline]` per value, strings apart (see [`FieldCounts::entries`]).
    values: HashMap<Value, [Cell; 2]>,
    /// String values, looked up by `&str` so that a value seen before costs no allocation
    /// (a `Value::Str` key would allocate for every row of every string field).
    strings: HashMap<String, [Cell; 2]>,
    /// Too many distinct values: the field identifies events and is left out.
    pub identifier: bool,
    /// Numeric: counted by bins.
    pub bins: Option<Bins>,
}

/// The counts of a pass: the two totals and each field's.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub selection: Cell,
    pub baseline: Cell,
    pub fields: Vec<FieldCounts>,
}

impl Counts {
    /// Counts for `names`, with `bins` for the numeric ones (by field position).
    pub fn new(names: &[String], bins: Vec<Option<Bins>>) -> Counts {
        Counts {
            selection: Cell::default(),
            baseline: Cell::default(),
            fields: names
                .iter()
                .zip(bins.into_iter().chain(std::iter::repeat(None)))
                .map(|(n, b)| FieldCounts {
                    name: n.clone(),
                    bins: b,
                    ..FieldCounts::default()
                })
                .collect(),
        }
    }

    /// Adds a batch whose column 0 says whether each event is selected (true), baseline
    /// (false) or neither (null), column 1 is its weight (null counts as 1), and the rest are
    /// the fields, in the order given to [`Counts::new`].
    pub fn add(&mut self, batch: &RecordBatch, limits: &Limits) -> Result<()> {
        let selected = cast(batch.column(0), &DataType::Boolean)?;
        let selected = selected.as_boolean();
        let weights = cast(batch.column(1), &DataType::Float64)?;
        let weights = weights.as_primitive::<Float64Type>();
        let mut side: Vec<Option<(usize, f64)>> = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            if selected.is_null(i) {
                side.push(None);
                continue;
            }
            let w = if weights.is_null(i) {
                1.0
            } else {
                weights.value(i)
            };
            let s = if selected.value(i) { 0 } else { 1 };
            if s == 0 {
                self.selection.add(w);
            } else {
                self.baseline.add(w);
            }
            side.push(Some((s, w)));
        }
        for (f, col) in self.fields.iter_mut().zip(batch.columns().iter().skip(2)) {
            if !f.identifier {
                f.add(col, &side, limits)?;
            }
        }
        Ok(())
    }

    /// Merges another pass's counts (of the same fields) into this one.
    pub fn merge(&mut self, other: Counts, limits: &Limits) {
        self.selection = super::stats::totals(self.selection, other.selection);
        self.baseline = super::stats::totals(self.baseline, other.baseline);
        for (mine, theirs) in self.fields.iter_mut().zip(other.fields) {
            mine.identifier |= theirs.identifier;
            if mine.identifier {
                mine.values = HashMap::new();
                mine.strings = HashMap::new();
                continue;
            }
            let add = |e: &mut [Cell; 2], cells: [Cell; 2]| {
                for s in 0..2 {
                    e[s] = super::stats::totals(e[s], cells[s]);
                }
            };
            for (v, cells) in theirs.values {
                add(mine.values.entry(v).or_default(), cells);
            }
            for (v, cells) in theirs.strings {
                add(mine.strings.entry(v).or_default(), cells);
            }
            mine.check(limits);
        }
    }
}

impl FieldCounts {
    /// Every value with its `[selection, baseline]` cells.
    pub fn entries(&self) -> impl Iterator<Item = (Value, [Cell; 2])> + '_ {
        self.values.iter().map(|(v, c)| (v.clone(), *c)).chain(
            self.strings
                .iter()
                .map(|(v, c)| (Value::Str(v.clone()), *c)),
        )
    }

    /// The cells of one value, if it was seen.
    pub fn get(&self, v: &Value) -> Option<[Cell; 2]> {
        match v {
            Value::Str(s) => self.strings.get(s.as_str()).copied(),
            v => self.values.get(v).copied(),
        }
    }

    /// How many distinct values were counted.
    pub fn distinct(&self) -> usize {
        self.values.len() + self.strings.len()
    }

    fn add(
        &mut self,
        col: &ArrayRef,
        side: &[Option<(usize, f64)>],
        limits: &Limits,
    ) -> Result<()> {
        let (values, strings) = (&mut self.values, &mut self.strings);
        values::for_each(col, self.bins.as_ref(), |i, v| {
            let Some((s, w)) = side[i] else { return };
            match v {
                ValueRef::Str(v) => match strings.get_mut(v) {
                    Some(e) => e[s].add(w),
                    None => {
                        let mut e = [Cell::default(); 2];
                        e[s].add(w);
                        strings.insert(v.to_owned(), e);
                    }
                },
                v => values.entry(v.to_value()).or_default()[s].add(w),
            }
        })?;
        self.check(limits);
        Ok(())
    }

    fn check(&mut self, limits: &Limits) {
        if self.distinct() > limits.max_distinct {
            self.identifier = true;
            self.values = HashMap::new();
            self.strings = HashMap::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    fn batch(
        sel: Vec<Option<bool>>,
        w: Vec<f64>,
        kernel: Vec<&str>,
        id: Vec<i64>,
        ms: Vec<f64>,
    ) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("sel", DataType::Boolean, true),
            Field::new("w", DataType::Float64, false),
            Field::new("kernel", DataType::Utf8, true),
            Field::new("id", DataType::Int64, false),
            Field::new("mem", DataType::Float64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(BooleanArray::from(sel)),
                Arc::new(Float64Array::from(w)),
                Arc::new(StringArray::from(kernel)),
                Arc::new(Int64Array::from(id)),
                Arc::new(Float64Array::from(ms)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn values_are_counted_by_side_with_weights_and_ids_are_recognised() {
        let names: Vec<String> = ["kernel", "id", "mem"].map(String::from).to_vec();
        let limits = Limits { max_distinct: 3 };
        let mut c = Counts::new(
            &names,
            vec![
                None,
                None,
                Some(Bins {
                    edges: vec![100.0, 200.0],
                }),
            ],
        );
        c.add(
            &batch(
                vec![Some(true), Some(true), Some(false), Some(false), None],
                vec![1.0, 1.0, 20.0, 20.0, 5.0],
                vec!["6.8", "6.8", "6.8", "6.5", "6.8"],
                vec![1, 2, 3, 4, 5],
                vec![50.0, 150.0, 250.0, 100.0, 1.0],
            ),
            &limits,
        )
        .unwrap();
        assert_eq!(c.selection, Cell::uniform(2, 1.0));
        assert_eq!(c.baseline, Cell::uniform(2, 20.0));
        let kernel = &c.fields[0];
        assert_eq!(
            kernel.get(&Value::Str("6.8".into())).unwrap(),
            [Cell::uniform(2, 1.0), Cell::uniform(1, 20.0)]
        );
        assert_eq!(
            kernel.get(&Value::Str("6.5".into())).unwrap()[0],
            Cell::default()
        );
        // four distinct ids among the counted rows: more than 3, an identifier
        assert!(c.fields[1].identifier && c.fields[1].distinct() == 0);
        // mem by bins: 50 -> 0, 150 -> 1, 250 -> 2, 100 -> 1 (an edge belongs above it)
        let mem = &c.fields[2];
        assert_eq!(
            mem.get(&Value::Bin(1)).unwrap(),
            [Cell::uniform(1, 1.0), Cell::uniform(1, 20.0)]
        );
        assert_eq!(mem.get(&Value::Bin(2)).unwrap()[1], Cell::uniform(1, 20.0));
    }

    #[test]
    fn merging_two_passes_is_counting_both() {
        let names: Vec<String> = ["kernel", "id", "mem"].map(String::from).to_vec();
        let limits = Limits::default();
        let b1 = batch(vec![Some(true)], vec![2.0], vec!["a"], vec![1], vec![1.0]);
        let b2 = batch(
            vec![Some(true), Some(false)],
            vec![3.0, 4.0],
            vec!["a", "b"],
            vec![2, 3],
            vec![1.0, 1.0],
        );
        let mut whole = Counts::new(&names, vec![]);
        whole.add(&b1, &limits).unwrap();
        whole.add(&b2, &limits).unwrap();
        let mut p1 = Counts::new(&names, vec![]);
        p1.add(&b1, &limits).unwrap();
        let mut p2 = Counts::new(&names, vec![]);
        p2.add(&b2, &limits).unwrap();
        p1.merge(p2, &limits);
        assert_eq!(p1.selection, whole.selection);
        for f in [0, 2] {
            let sorted = |c: &Counts| {
                let mut v: Vec<_> = c.fields[f].entries().collect();
                v.sort_by(|a, b| a.0.cmp(&b.0));
                v
            };
            assert_eq!(sorted(&p1), sorted(&whole));
        }
    }
}
