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
//!
//! Numeric fields are binned by the deciles of the events compared, not known until the window
//! has been read: the pass counts them by [`fine`] buckets (three significant digits) and
//! [`Counts::finish`] reads the deciles off those and folds the buckets into the bins, so
//! one scan does what two did. The same pass measures how each numeric field correlates with
//! the measures the selection is defined on (see [`numeric`]).
//!
//! [`fine`]: super::fine
//! [`numeric`]: super::numeric

use std::collections::HashMap;

use ahash::RandomState;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;

use super::fine;
use super::numeric::{self, Comoments};
use super::stats::Cell;
use super::summary::{FieldSummary, Summary};
use super::values::{self, ValueRef};

/// A value of a candidate field, as counted. Floats are counted by the bin they fall in (see
/// [`Bins`]), so every value here is discrete.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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
    /// NaN, above everything in SQL's order, is in the last bin.
    pub fn bin(&self, x: f64) -> u16 {
        if x.is_nan() {
            return self.edges.len() as u16;
        }
        self.edges.partition_point(|e| *e <= x) as u16
    }
}

/// Bounds on one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// A field with more distinct values than this is an identifier, not a description.
    pub max_distinct: usize,
    /// Most distinct sets of candidate values the conjunction pass holds (see
    /// [`super::combos::MAX_SETS`]).
    pub max_sets: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_distinct: 5000,
            max_sets: super::combos::MAX_SETS,
        }
    }
}

/// How a field's values are counted.
#[derive(Debug, Clone, PartialEq)]
pub enum Counting {
    /// Value by value (strings, booleans, integers).
    Values,
    /// By the bins given.
    Binned(Bins),
    /// A number, by the deciles of the events compared: by [`fine`] buckets in the pass,
    /// then by the bins [`Counts::finish`] makes of them.
    Deciles,
    /// An integer: value by value while it has at most this many values (null aside), then as `Deciles`
    /// (`http.status_code` by value, byte counts by bins).
    IntegersUpTo(usize),
}

/// The counts of one field.
#[derive(Debug, Clone, Default)]
pub struct FieldCounts {
    pub name: String,
    /// Every value counted, with its slot in `cells`.
    index: Index,
    /// `[selection, baseline]` per slot (of `fine` while it is counted by buckets).
    cells: Vec<[Cell; 2]>,
    /// Too many distinct values: the field identifies events and is left out.
    pub identifier: bool,
    /// Numeric: counted by bins.
    pub bins: Option<Bins>,
    /// Counted by fine buckets (until [`Counts::finish`]): the buckets' slots.
    fine: Option<fine::Index>,
    /// An integer counted by value until it has more values than this.
    integers_up_to: Option<usize>,
    /// A number whose correlation with the measures is measured: `ln(1 + x)` of each
    /// slot's value (see [`numeric::log1p`]), and per measure the co-moments.
    numeric: bool,
    logs: Vec<f64>,
    with: Vec<Comoments>,
    /// What the lookups of the field's values keep from batch to batch.
    memo: values::FieldMemo,
}

/// The values of one field, each given a slot (its position in `keys`) the first time it is
/// seen. Null, booleans and bins are few and small: arrays, no hashing. Integers and strings
/// by hash, strings looked up by `&str` so that a value seen before costs no allocation.
#[derive(Debug, Clone, Default)]
struct Index {
    keys: Vec<Value>,
    null: Option<u32>,
    bools: [Option<u32>; 2],
    bins: Vec<Option<u32>>,
    ints: HashMap<i64, u32, RandomState>,
    strings: HashMap<String, u32, RandomState>,
}

impl Index {
    /// The slot of `v`, if it was seen.
    fn find(&self, v: ValueRef<'_>) -> Option<u32> {
        match v {
            ValueRef::Null => self.null,
            ValueRef::Bool(b) => self.bools[usize::from(b)],
            ValueRef::Bin(b) => self.bins.get(usize::from(b)).copied().flatten(),
            ValueRef::Int(i) => self.ints.get(&i).copied(),
            ValueRef::Str(s) => self.strings.get(s).copied(),
        }
    }

    fn push(&mut self, v: Value) -> u32 {
        self.keys.push(v);
        (self.keys.len() - 1) as u32
    }
}

impl values::Slots for Index {
    fn slot(&mut self, v: ValueRef<'_>) -> u32 {
        if let Some(slot) = self.find(v) {
            return slot;
        }
        let slot = self.push(v.to_value());
        match v {
            ValueRef::Null => self.null = Some(slot),
            ValueRef::Bool(b) => self.bools[usize::from(b)] = Some(slot),
            ValueRef::Bin(b) => {
                let b = usize::from(b);
                if self.bins.len() <= b {
                    self.bins.resize(b + 1, None);
                }
                self.bins[b] = Some(slot);
            }
            ValueRef::Int(i) => {
                self.ints.insert(i, slot);
            }
            ValueRef::Str(s) => {
                self.strings.insert(s.to_owned(), slot);
            }
        }
        slot
    }
}

/// The counts of a pass: the two totals and each field's.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub selection: Cell,
    pub baseline: Cell,
    pub fields: Vec<FieldCounts>,
    /// How many measures follow the fields in a batch (see [`Counts::add`]).
    measures: usize,
}

impl Counts {
    /// Counts for `names`, with `bins` for the numeric ones (by field position), the others
    /// value by value.
    pub fn new(names: &[String], bins: Vec<Option<Bins>>) -> Counts {
        let counting = bins
            .into_iter()
            .chain(std::iter::repeat(None))
            .map(|b| b.map_or(Counting::Values, Counting::Binned));
        Counts::counting(names.iter().cloned().zip(counting).collect(), 0)
    }

    /// Counts for fields counted as given, correlating each number (`Deciles`,
    /// `IntegersUpTo`) with each of `measures` measures.
    pub fn counting(fields: Vec<(String, Counting)>, measures: usize) -> Counts {
        Counts {
            selection: Cell::default(),
            baseline: Cell::default(),
            fields: fields
                .into_iter()
                .map(|(name, counting)| {
                    let numeric = matches!(counting, Counting::Deciles | Counting::IntegersUpTo(_));
                    let mut f = FieldCounts {
                        name,
                        numeric,
                        with: if numeric {
                            vec![Comoments::default(); measures]
                        } else {
                            Vec::new()
                        },
                        ..FieldCounts::default()
                    };
                    match counting {
                        Counting::Values => {}
                        Counting::Binned(b) => f.bins = Some(b),
                        Counting::Deciles => f.fine = Some(fine::Index::new()),
                        Counting::IntegersUpTo(n) => f.integers_up_to = Some(n),
                    }
                    f
                })
                .collect(),
            measures,
        }
    }

    /// Adds a batch whose column 0 says whether each event is selected (true), baseline
    /// (false) or neither (null), column 1 is its weight (null counts as 1), then the
    /// fields, in the order given to [`Counts::new`], then the measures.
    pub fn add(&mut self, batch: &RecordBatch, limits: &Limits) -> Result<()> {
        let selected = cast(batch.column(0), &DataType::Boolean)?;
        let selected = selected.as_boolean();
        let weights = cast(batch.column(1), &DataType::Float64)?;
        let weights = weights.as_primitive::<Float64Type>();
        let n = batch.num_rows();
        // Per row, worked out once for every field: counted or not (neither side), its side
        // (0 selection, 1 baseline) and its weight.
        let mut rows = Rows {
            counted: vec![false; n],
            side: vec![0; n],
            weight: vec![0.0; n],
        };
        for i in 0..n {
            if selected.is_null(i) {
                continue;
            }
            let w = if weights.is_null(i) {
                1.0
            } else {
                weights.value(i)
            };
            if selected.value(i) {
                self.selection.add(w);
            } else {
                self.baseline.add(w);
                rows.side[i] = 1;
            }
            rows.counted[i] = true;
            rows.weight[i] = w;
        }
        // The measures' logs on the counted rows, which the numbers are correlated with.
        let at = batch.num_columns() - self.measures;
        let measures = batch.columns()[at..]
            .iter()
            .map(|col| {
                let logs = numeric::logs(col)?;
                Ok((0..n)
                    .filter(|&i| rows.counted[i])
                    .map(|i| logs[i])
                    .collect())
            })
            .collect::<Result<Vec<Vec<f64>>>>()?;
        let mut scratch = Scratch::default();
        for (f, col) in self.fields.iter_mut().zip(&batch.columns()[2..at]) {
            if !f.identifier {
                f.add(col, &rows, &mut scratch, &measures, limits)?;
            }
        }
        Ok(())
    }

    /// Ends the pass: each field counted by fine buckets is binned by its deciles at `qs`
    /// (the buckets' lower bounds where the weighted quantiles fall, the same edge once).
    pub fn finish(&mut self, qs: &[f64]) {
        for f in &mut self.fields {
            f.finish(qs);
        }
    }

    /// Merges another pass's counts (of the same fields) into this one.
    pub fn merge(&mut self, other: Counts, limits: &Limits) {
        self.selection = super::stats::totals(self.selection, other.selection);
        self.baseline = super::stats::totals(self.baseline, other.baseline);
        for (mine, mut theirs) in self.fields.iter_mut().zip(other.fields) {
            mine.identifier |= theirs.identifier;
            if mine.identifier {
                mine.forget();
                continue;
            }
            for (a, b) in mine.with.iter_mut().zip(&theirs.with) {
                a.merge(b);
            }
            if mine.fine.is_some() || theirs.fine.is_some() {
                mine.count_by_buckets();
                theirs.count_by_buckets();
                let (Some(index), Some(their_index)) = (&mut mine.fine, &theirs.fine) else {
                    continue;
                };
                for (key, cells) in their_index.keys.iter().zip(&theirs.cells) {
                    let slot = index.slot(*key) as usize;
                    add_cells(&mut mine.cells, slot, cells);
                }
                mine.extend_logs();
                continue;
            }
            for (v, cells) in theirs.index.keys.into_iter().zip(theirs.cells) {
                let slot = values::Slots::slot(&mut mine.index, v.as_value_ref()) as usize;
                add_cells(&mut mine.cells, slot, &cells);
            }
            mine.extend_logs();
            mine.check(limits);
        }
    }
}

/// Per-file summaries (see [`super::summary`]): made from counts, and counts made from them.
impl Counts {
    /// The fields' summaries, every row having been counted on the baseline side.
    pub(crate) fn field_summaries(&self) -> Vec<FieldSummary> {
        self.fields
            .iter()
            .map(|f| {
                let baseline = f.cells.iter().map(|c| c[1]);
                let (values, buckets) = match &f.fine {
                    Some(index) => (
                        Vec::new(),
                        index.keys.iter().copied().zip(baseline).collect(),
                    ),
                    None => (
                        f.index.keys.iter().cloned().zip(baseline).collect(),
                        Vec::new(),
                    ),
                };
                FieldSummary {
                    name: f.name.clone(),
                    identifier: f.identifier,
                    values,
                    buckets,
                    with: f.with.clone(),
                }
            })
            .collect()
    }

    /// The counts of a file from its summary `s`, every row on the baseline side, for fields
    /// counted as `plan` says and correlated with the summary's measures `measures[k]` (its
    /// positions in [`Summary::measures`]). `None` when the summary cannot stand for the rows
    /// as a pass would count them: a number it does not hold (its co-moments with the
    /// measures are unknown), a measure it has none with, or a value of another kind than
    /// the field is counted as.
    pub(crate) fn of_summary(
        plan: Vec<(String, Counting)>,
        measures: &[usize],
        s: &Summary,
        limits: &Limits,
    ) -> Option<Counts> {
        let mut counts = Counts::counting(plan, measures.len());
        counts.baseline = s.all;
        for f in &mut counts.fields {
            match s.fields.iter().find(|x| x.name == f.name) {
                // Not a column of the file: null in every row (a string or a flag).
                None if !f.numeric => f.add_summarized(&Value::Null, s.all)?,
                None => return None,
                Some(x) if x.identifier => {
                    f.identifier = true;
                    f.forget();
                    continue;
                }
                Some(x) => {
                    for (v, cell) in &x.values {
                        f.add_summarized(v, *cell)?;
                    }
                    if !x.buckets.is_empty() {
                        // An integer with more values in this file than it takes by value.
                        f.count_by_buckets();
                        let index = f.fine.as_mut()?;
                        for (b, cell) in &x.buckets {
                            let slot = index.slot(*b) as usize;
                            add_cells(&mut f.cells, slot, &[Cell::default(), *cell]);
                        }
                    }
                    if f.numeric {
                        for (w, &m) in f.with.iter_mut().zip(measures) {
                            *w = *x.with.get(m)?;
                        }
                    }
                }
            }
            f.extend_logs();
            if f.fine.is_none() {
                f.check(limits);
            }
        }
        Some(counts)
    }

    /// Takes the rows `part` counted (a subset of these counts' baseline side, on either of
    /// its sides) out of the baseline side, and out of the numbers' co-moments when
    /// `comoments`. `None` when `part` holds rows these counts do not: it is not a part of
    /// them (a summary not of the file it is beside).
    pub(crate) fn take_out(&mut self, part: &Counts, comoments: bool) -> Option<()> {
        let both = |c: &[Cell; 2]| c[0].plus(&c[1]);
        self.baseline = less(self.baseline, part.selection.plus(&part.baseline))?;
        for (mine, theirs) in self.fields.iter_mut().zip(&part.fields) {
            if mine.identifier {
                continue;
            }
            if theirs.identifier {
                return None;
            }
            if comoments {
                for (a, b) in mine.with.iter_mut().zip(&theirs.with) {
                    *a = a.without(b);
                }
            }
            let mut theirs = theirs.clone();
            if mine.fine.is_some() {
                theirs.count_by_buckets();
            }
            match (&mine.fine, &theirs.fine) {
                (Some(index), Some(their_index)) => {
                    for (key, cells) in their_index.keys.iter().zip(&theirs.cells) {
                        let slot = index.find(*key)? as usize;
                        mine.cells[slot][1] = less(mine.cells[slot][1], both(cells))?;
                    }
                }
                (None, None) => {
                    for (v, cells) in theirs.index.keys.iter().zip(&theirs.cells) {
                        let slot = mine.index.find(v.as_value_ref())? as usize;
                        mine.cells[slot][1] = less(mine.cells[slot][1], both(cells))?;
                    }
                }
                // The part by buckets and the whole by values: the part has more values.
                _ => return None,
            }
        }
        Some(())
    }

    /// Forgets the numbers' co-moments (counts whose rows are in others' already).
    pub(crate) fn without_comoments(mut self) -> Counts {
        for f in &mut self.fields {
            f.with.iter_mut().for_each(|c| *c = Comoments::default());
        }
        self
    }
}

/// `whole` less `part`, `None` when `part` has more rows.
fn less(whole: Cell, part: Cell) -> Option<Cell> {
    (part.rows <= whole.rows).then(|| whole.minus(&part))
}

impl FieldCounts {
    /// Adds a summary's value `v` with its rows, on the baseline side. `None` for a value
    /// of another kind than the field is counted as.
    fn add_summarized(&mut self, v: &Value, cell: Cell) -> Option<()> {
        let slot = match (&mut self.fine, v) {
            (Some(index), Value::Null) => index.slot(None),
            // An integer in a field now read as a float (types widen from int to float).
            (Some(index), Value::Int(i)) => index.slot(Some(fine::Bucket::of(*i as f64))),
            (Some(_), _) | (None, Value::Bin(_)) => return None,
            (None, v) if self.numeric && !matches!(v, Value::Int(_) | Value::Null) => {
                return None;
            }
            (None, v) => values::Slots::slot(&mut self.index, v.as_value_ref()),
        };
        add_cells(&mut self.cells, slot as usize, &[Cell::default(), cell]);
        Some(())
    }
}

/// Adds `cells` into `all[slot]`, growing `all` to hold it.
fn add_cells(all: &mut Vec<[Cell; 2]>, slot: usize, cells: &[Cell; 2]) {
    if all.len() <= slot {
        all.resize(slot + 1, [Cell::default(); 2]);
    }
    let e = &mut all[slot];
    for s in 0..2 {
        e[s] = super::stats::totals(e[s], cells[s]);
    }
}

/// What [`Counts::add`] knows of a batch's rows before it reads any field.
struct Rows {
    counted: Vec<bool>,
    side: Vec<u8>,
    weight: Vec<f64>,
}

/// Partial sums of one `(slot, side)` cell: one of [`LANES`] (see [`add_cells_of_rows`]).
#[derive(Debug, Clone, Copy, Default)]
struct Lane {
    /// Σw and Σw², next to each other so that one add does both.
    sums: [f64; 2],
    rows: u64,
}

/// Partial sums per cell for a field of few values.
const LANES: usize = 4;

/// Adds each counted row (its slot in `slots`) to its cell; `lanes` is room reused from
/// field to field.
///
/// Rows of one value follow each other (most columns hold one value in most rows: null in a
/// field few events have, the one cloud of a fleet, a flag's `false`). Added to one cell, each
/// row's add waits for the last one's to reach memory and come back (~10 cycles a row). So
/// for a field of few values, row `i` is added to the `i % 4`th of four partial sums of its
/// cell: four such chains run at once, and with uncounted rows sent to a cell of their own
/// (the slot past the last) the loop has no branch to mispredict. The lanes are zeroed and
/// folded into the cells once a batch, a cost in their number, hence "few": at most a
/// quarter as many lanes as rows. A field of more values spreads its rows over more cells,
/// except where one slot holds most of the batch (a sparse field's null): that slot's rows
/// are summed in registers and added once (checked on the first counted row's slot, by a count
/// the compiler vectorises), and the others in place.
fn add_cells_of_rows(cells: &mut [[Cell; 2]], slots: &[u32], rows: &Rows, lanes: &mut Vec<Lane>) {
    let trash = cells.len();
    if laned(trash, slots.len()) {
        sum_in_lanes(slots, trash, |s| s.min(trash as u32) as usize, rows, lanes);
        fold_lanes(lanes, |slot, sums| {
            for (cell, sum) in cells[slot].iter_mut().zip(sums) {
                *cell = cell.plus(&sum);
            }
        });
        return;
    }
    let counted = rows.counted.iter().filter(|&&c| c).count();
    let common = slots
        .iter()
        .copied()
        .find(|&s| s != values::UNCOUNTED)
        .filter(|&c| slots.iter().filter(|&&s| s == c).count() * 4 > counted * 3);
    let Some(common) = common else {
        for ((&slot, &side), &w) in slots.iter().zip(&rows.side).zip(&rows.weight) {
            if slot != values::UNCOUNTED {
                cells[slot as usize][usize::from(side)].add(w);
            }
        }
        return;
    };
    // Two named cells, not an array indexed by side (which would live in memory).
    let (mut selection, mut baseline) = (Cell::default(), Cell::default());
    for ((&slot, &side), &w) in slots.iter().zip(&rows.side).zip(&rows.weight) {
        if slot == common {
            if side == 0 {
                selection.add(w);
            } else {
                baseline.add(w);
            }
        } else if slot != values::UNCOUNTED {
            cells[slot as usize][usize::from(side)].add(w);
        }
    }
    let cell = &mut cells[common as usize];
    cell[0] = cell[0].plus(&selection);
    cell[1] = cell[1].plus(&baseline);
}

/// Room a batch's fields reuse, one after the other.
#[derive(Default)]
struct Scratch {
    /// Each row's slot.
    slots: Vec<u32>,
    /// Partial sums by code or slot.
    lanes: Vec<Lane>,
    /// Each row's code ([`values::small_codes`]), and each code's slot.
    codes: Vec<u16>,
    code_slots: Vec<u32>,
}

/// Whether `codes` codes are few enough for lanes over `rows` rows: at most a quarter as many
/// lanes as rows, so that zeroing and folding them costs less than the rows.
fn laned(codes: usize, rows: usize) -> bool {
    codes <= max_laned(rows)
}

/// The most codes that are few enough for lanes over `rows` rows (see [`laned`]): with the
/// one kept for rows not counted, `2 * LANES` lanes each, a quarter as many lanes as rows.
fn max_laned(rows: usize) -> usize {
    (rows / (2 * LANES * 4)).saturating_sub(1)
}

/// Sums the rows by `(code, side)` in [`LANES`] partial sums each (see [`add_cells_of_rows`]):
/// row `i`'s code is `code(codes[i])`, at most `last` (kept for rows not counted).
fn sum_in_lanes<T: Copy>(
    codes: &[T],
    last: usize,
    code: impl Fn(T) -> usize,
    rows: &Rows,
    lanes: &mut Vec<Lane>,
) {
    lanes.clear();
    lanes.resize((last + 1) * 2 * LANES, Lane::default());
    for (i, ((&c, &side), &w)) in codes.iter().zip(&rows.side).zip(&rows.weight).enumerate() {
        let lane = &mut lanes[(code(c) * 2 + usize::from(side)) * LANES + i % LANES];
        lane.sums[0] += w;
        lane.sums[1] += w * w;
        lane.rows += 1;
    }
}

/// Calls `to(code, [selection, baseline])` with the sums of each code that has rows, but the
/// last (the rows not counted).
fn fold_lanes(lanes: &[Lane], mut to: impl FnMut(usize, [Cell; 2])) {
    let per_code = 2 * LANES;
    let codes = (lanes.len() / per_code).saturating_sub(1);
    for (code, lanes) in lanes.chunks_exact(per_code).take(codes).enumerate() {
        let side = |lanes: &[Lane]| Cell {
            weight: lanes.iter().map(|l| l.sums[0]).sum(),
            weight_sq: lanes.iter().map(|l| l.sums[1]).sum(),
            rows: lanes.iter().map(|l| l.rows).sum(),
        };
        let sums = [side(&lanes[..LANES]), side(&lanes[LANES..])];
        if sums[0].rows + sums[1].rows > 0 {
            to(code, sums);
        }
    }
}

/// A code's rows, read off its lanes, are in one of the sides.
fn code_used(lanes: &[Lane], code: usize) -> bool {
    lanes[code * 2 * LANES..(code + 1) * 2 * LANES]
        .iter()
        .any(|l| l.rows > 0)
}

impl FieldCounts {
    /// Every value with its `[selection, baseline]` cells.
    pub fn entries(&self) -> impl Iterator<Item = (Value, [Cell; 2])> + '_ {
        self.index
            .keys
            .iter()
            .cloned()
            .zip(self.cells.iter().copied())
    }

    /// The cells of one value, if it was seen.
    pub fn get(&self, v: &Value) -> Option<[Cell; 2]> {
        let slot = self.index.find(v.as_value_ref())?;
        self.cells.get(slot as usize).copied()
    }

    /// A field known to identify events, not counted.
    pub fn identifier(name: &str) -> FieldCounts {
        FieldCounts {
            name: name.to_owned(),
            identifier: true,
            ..FieldCounts::default()
        }
    }

    /// How many distinct values were counted.
    pub fn distinct(&self) -> usize {
        self.index.keys.len()
    }

    /// Counts `col`'s counted rows, with room in `scratch`.
    fn add(
        &mut self,
        col: &ArrayRef,
        rows: &Rows,
        scratch: &mut Scratch,
        measures: &[Vec<f64>],
        limits: &Limits,
    ) -> Result<()> {
        let Scratch {
            slots,
            lanes,
            codes,
            code_slots,
        } = scratch;
        // A column of few values known up front (a small dictionary, booleans): rows summed
        // by code, each code looked up once. A dictionary's codes are its values and null.
        let max_values = max_laned(rows.side.len()).saturating_sub(1);
        if self.fine.is_none()
            && self.bins.is_none()
            && !self.numeric
            && let Some(last) = values::small_codes(col, &rows.counted, max_values, codes)
            && laned(last, codes.len())
        {
            sum_in_lanes(codes, last, usize::from, rows, lanes);
            values::code_slots(
                col,
                last,
                |c| code_used(lanes, c),
                &mut self.index,
                &mut self.memo,
                code_slots,
            )?;
            self.cells
                .resize(self.index.keys.len(), [Cell::default(); 2]);
            let cells = &mut self.cells;
            fold_lanes(lanes, |code, sums| {
                for (cell, sum) in cells[code_slots[code] as usize].iter_mut().zip(sums) {
                    *cell = cell.plus(&sum);
                }
            });
            self.check(limits);
            return Ok(());
        }
        let len = match &mut self.fine {
            Some(index) => {
                fine::slots(col, &rows.counted, index, slots)?;
                index.keys.len()
            }
            None => {
                values::sized_slots(
                    col,
                    self.bins.as_ref(),
                    &rows.counted,
                    &mut self.index,
                    slots,
                    &mut self.memo,
                )?;
                self.index.keys.len()
            }
        };
        self.cells.resize(len, [Cell::default(); 2]);
        add_cells_of_rows(&mut self.cells, slots, rows, lanes);
        self.extend_logs();
        // Before `check`, which may give the values new slots.
        self.correlate(slots, measures);
        if self.fine.is_none() {
            self.check(limits);
        }
        Ok(())
    }

    /// The logs of the slots that have none yet (for a number).
    fn extend_logs(&mut self) {
        if !self.numeric {
            return;
        }
        let start = self.logs.len();
        match &self.fine {
            Some(index) => self.logs.extend(
                index.keys[start..]
                    .iter()
                    .map(|k| k.map_or(0.0, |b| numeric::log1p(b.lower()))),
            ),
            None => self
                .logs
                .extend(self.index.keys[start..].iter().map(|v| match v {
                    Value::Int(i) => numeric::log1p(*i as f64),
                    _ => 0.0,
                })),
        }
    }

    /// Adds the batch's counted rows (their `slots`) to the co-moments with each measure.
    /// A value stands for its slot's: exact for an integer, its bucket's lower bound for a
    /// number counted by buckets (three digits: the correlation moves in the third).
    fn correlate(&mut self, slots: &[u32], measures: &[Vec<f64>]) {
        if !self.numeric || measures.is_empty() {
            return;
        }
        let logs: Vec<f64> = slots
            .iter()
            .filter(|&&s| s != values::UNCOUNTED)
            .map(|&s| self.logs[s as usize])
            .collect();
        for (c, ys) in self.with.iter_mut().zip(measures) {
            c.merge(&Comoments::of(&logs, ys));
        }
    }

    /// The correlation of the field's logs with measure `m`'s over the counted rows, `None`
    /// when it is not defined (fewer than two rows, or one side constant) or not measured.
    pub fn correlation(&self, m: usize) -> Option<f64> {
        self.with.get(m)?.correlation()
    }

    /// An integer counted by value that passed its bound is counted by buckets from here.
    fn check(&mut self, limits: &Limits) {
        let values = self.distinct() - usize::from(self.index.null.is_some());
        if self.integers_up_to.is_some_and(|n| values > n) {
            self.count_by_buckets();
        } else if self.distinct() > limits.max_distinct {
            self.identifier = true;
            self.forget();
        }
    }

    /// Counts by fine buckets from here, what was counted by value put in its bucket. A
    /// field counted by buckets already, or by given bins, is left as it is.
    fn count_by_buckets(&mut self) {
        if self.fine.is_some() || self.integers_up_to.is_none() {
            return;
        }
        let mut index = fine::Index::new();
        let mut cells = Vec::new();
        for (v, c) in self.index.keys.iter().zip(&self.cells) {
            let key = match v {
                Value::Int(i) => Some(fine::Bucket::of(*i as f64)),
                _ => None,
            };
            add_cells(&mut cells, index.slot(key) as usize, c);
        }
        self.index = Index::default();
        self.memo = values::FieldMemo::default();
        self.cells = cells;
        self.fine = Some(index);
        self.integers_up_to = None;
        self.logs.clear();
        self.extend_logs();
    }

    /// Bins a field counted by buckets by its deciles at `qs` (see [`Counts::finish`]).
    fn finish(&mut self, qs: &[f64]) {
        self.integers_up_to = None;
        let Some(buckets) = self.fine.take() else {
            return;
        };
        let weighted: Vec<(fine::Bucket, f64)> = buckets
            .keys
            .iter()
            .zip(&self.cells)
            .filter_map(|(k, [s, b])| Some(((*k)?, s.weight + b.weight)))
            .collect();
        let mut edges: Vec<f64> = fine::quantiles(&weighted, qs)
            .into_iter()
            .flatten()
            .collect();
        edges.dedup();
        let bins = Bins { edges };
        let mut cells = Vec::new();
        for (k, c) in buckets.keys.iter().zip(&self.cells) {
            let v = match k {
                None => ValueRef::Null,
                Some(b) => ValueRef::Bin(bins.bin(b.lower())),
            };
            add_cells(
                &mut cells,
                values::Slots::slot(&mut self.index, v) as usize,
                c,
            );
        }
        self.cells = cells;
        self.bins = Some(bins);
        self.logs.clear();
    }

    /// Drops every value counted (the field is an identifier).
    fn forget(&mut self) {
        self.index = Index::default();
        // The memo holds slots of the index.
        self.memo = values::FieldMemo::default();
        self.cells = Vec::new();
        // Nor is it correlated with the measure.
        self.numeric = false;
        self.logs = Vec::new();
        self.with = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array, StringArray};

    use super::super::numeric;
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
        let limits = Limits {
            max_distinct: 3,
            ..Limits::default()
        };
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

    /// `(field, value, cells)` of every field but the identifiers, sorted: what a pass counted.
    fn counted(c: &Counts) -> Vec<(String, Value, [Cell; 2])> {
        let mut out: Vec<_> = c
            .fields
            .iter()
            .filter(|f| !f.identifier)
            .flat_map(|f| f.entries().map(|(v, cells)| (f.name.clone(), v, cells)))
            .collect();
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        out
    }

    /// A batch of `(sel, w, text)` with the text in the column given.
    fn text_batch(sel: Vec<Option<bool>>, w: Vec<f64>, text: ArrayRef) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("sel", DataType::Boolean, true),
            Field::new("w", DataType::Float64, false),
            Field::new("text", text.data_type().clone(), true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(BooleanArray::from(sel)),
                Arc::new(Float64Array::from(w)),
                text,
            ],
        )
        .unwrap()
    }

    #[test]
    fn strings_count_the_same_in_every_encoding_views_shared_or_not() {
        use datafusion::arrow::array::{DictionaryArray, StringViewBuilder};
        use datafusion::arrow::datatypes::Int16Type;
        // Long strings (past the 12 bytes a view holds inline) that share a prefix and a
        // length, so their views differ only in where the bytes are; the same string stored
        // twice (two views) and once shared (one view, deduplicated); short ones inline.
        let texts = [
            Some("checkout-service-eu-west-1"),
            Some("checkout-service-eu-west-2"),
            Some("checkout-service-eu-west-1"),
            None,
            Some("a"),
            Some("checkout-service-eu-west-2"),
            Some("a"),
            Some("only-uncounted-row-value"),
            Some("checkout-service-eu-west-1"),
        ];
        let sel = vec![
            Some(true),
            Some(true),
            Some(false),
            Some(false),
            Some(true),
            Some(false),
            Some(false),
            None,
            Some(true),
        ];
        let w = vec![1.0, 4.0, 4.0, 1.0, 1.0, 4.0, 4.0, 1.0, 4.0];
        let mut plain_views = StringViewBuilder::new();
        let mut shared_views = StringViewBuilder::new().with_deduplicate_strings();
        for t in texts {
            plain_views.append_option(t);
            shared_views.append_option(t);
        }
        let encodings: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(texts.to_vec())),
            Arc::new(plain_views.finish()),
            Arc::new(shared_views.finish()),
            Arc::new(texts.into_iter().collect::<DictionaryArray<Int16Type>>()),
        ];
        let names = vec!["text".to_owned()];
        let limits = Limits::default();
        let mut answers = Vec::new();
        for col in encodings {
            let mut c = Counts::new(&names, vec![]);
            let b = text_batch(sel.clone(), w.clone(), col);
            // Twice, in two batches: what one batch learnt must hold in the next.
            c.add(&b, &limits).unwrap();
            c.add(&b, &limits).unwrap();
            answers.push(counted(&c));
        }
        let eu1 = Value::Str("checkout-service-eu-west-1".into());
        let want_eu1 = [
            Cell::uniform(2, 1.0).plus(&Cell::uniform(2, 4.0)),
            Cell::uniform(2, 4.0),
        ];
        assert!(
            answers[0].contains(&("text".into(), eu1, want_eu1)),
            "{:?}",
            answers[0]
        );
        // The value only a row of neither side holds is not a value of the field.
        assert_eq!(answers[0].len(), 4, "{:?}", answers[0]);
        for a in &answers[1..] {
            assert_eq!(a, &answers[0]);
        }
    }

    #[test]
    fn few_values_summed_by_code_count_as_rows_looked_up_one_by_one() {
        use datafusion::arrow::array::{DictionaryArray, Int32Array};
        use datafusion::arrow::datatypes::Int32Type;
        let mut seed = 11;
        let n = 700;
        // A dictionary with a null value and a value under two keys, null keys, a value only
        // uncounted rows hold; booleans with nulls.
        let dict_values = StringArray::from(vec![
            Some("eu-west-1"),
            Some("us-east-1"),
            None,
            Some("eu-west-1"),
            Some("only-uncounted"),
        ]);
        let sel: Vec<Option<bool>> = (0..n)
            .map(|i| match crate::tests::lcg(&mut seed) {
                x if x < 0.1 => None,
                x => Some(x < 0.3 || i % 7 == 0),
            })
            .collect();
        let keys: Vec<Option<i32>> = (0..n)
            .map(|i| match (sel[i], crate::tests::lcg(&mut seed)) {
                (None, _) if i % 2 == 0 => Some(4),
                (_, x) if x < 0.1 => None,
                (_, x) => Some((x * 4.0) as i32),
            })
            .collect();
        let flags: Vec<Option<bool>> = (0..n)
            .map(|_| match crate::tests::lcg(&mut seed) {
                x if x < 0.05 => None,
                x => Some(x < 0.6),
            })
            .collect();
        let w: Vec<f64> = (0..n)
            .map(|_| (1.0 + 20.0 * crate::tests::lcg(&mut seed)).floor())
            .collect();
        let dict =
            DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys), Arc::new(dict_values))
                .unwrap();
        let schema = Schema::new(vec![
            Field::new("sel", DataType::Boolean, true),
            Field::new("w", DataType::Float64, false),
            Field::new("region", dict.data_type().clone(), true),
            Field::new("flag", DataType::Boolean, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(BooleanArray::from(sel)),
                Arc::new(Float64Array::from(w)),
                Arc::new(dict),
                Arc::new(BooleanArray::from(flags)),
            ],
        )
        .unwrap();
        let names = vec!["region".to_owned(), "flag".to_owned()];
        let limits = Limits::default();
        // From row 60 on (so offsets into the arrays): in one batch, long enough for codes,
        // and in batches of 40 rows, too short for them.
        let mut whole = Counts::new(&names, vec![]);
        whole.add(&batch.slice(60, n - 60), &limits).unwrap();
        let mut pieces = Counts::new(&names, vec![]);
        for start in (60..n).step_by(40) {
            let len = 40.min(n - start);
            pieces.add(&batch.slice(start, len), &limits).unwrap();
        }
        let (mut got, mut want) = (counted(&whole), counted(&pieces));
        got.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        want.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        assert_eq!(got, want);
        // eu-west-1 and us-east-1, null (a null key or value), true, false, null.
        assert_eq!(got.len(), 6, "{got:?}");
        assert!(
            !got.iter()
                .any(|(_, v, _)| *v == Value::Str("only-uncounted".into()))
        );
        assert_eq!(whole.selection, pieces.selection);
    }

    #[test]
    fn counting_partitions_apart_and_merging_them_is_counting_the_whole() {
        // 600 rows: an identifier (all distinct), a few strings, a binned float, a boolean.
        let n = 600;
        let sel: Vec<Option<bool>> = (0..n).map(|i| (i % 7 != 0).then_some(i % 3 == 0)).collect();
        let w: Vec<f64> = (0..n).map(|i| [1.0, 4.0, 0.5][i % 3]).collect();
        let schema = Schema::new(vec![
            Field::new("sel", DataType::Boolean, true),
            Field::new("w", DataType::Float64, false),
            Field::new("id", DataType::Int64, false),
            Field::new("zone", DataType::Utf8View, true),
            Field::new("mem", DataType::Float64, true),
            Field::new("flag", DataType::Boolean, true),
        ]);
        let zones: Vec<Option<String>> = (0..n)
            .map(|i| (i % 11 != 0).then(|| format!("zone-with-a-long-name-{}", i % 5)))
            .collect();
        let whole = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(BooleanArray::from(sel)),
                Arc::new(Float64Array::from(w)),
                Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>())),
                Arc::new(
                    zones
                        .into_iter()
                        .collect::<datafusion::arrow::array::StringViewArray>(),
                ),
                Arc::new(Float64Array::from(
                    (0..n)
                        .map(|i| (i % 13 != 0).then_some(i as f64))
                        .collect::<Vec<_>>(),
                )),
                Arc::new(BooleanArray::from(
                    (0..n)
                        .map(|i| (i % 4 != 0).then_some(i % 2 == 0))
                        .collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let names: Vec<String> = ["id", "zone", "mem", "flag"].map(String::from).to_vec();
        let bins = vec![
            None,
            None,
            Some(Bins {
                edges: vec![100.0, 250.0, 400.0],
            }),
            None,
        ];
        let limits = Limits {
            max_distinct: 300,
            ..Limits::default()
        };
        let mut single = Counts::new(&names, bins.clone());
        for at in (0..n).step_by(64) {
            single
                .add(&whole.slice(at, 64.min(n - at)), &limits)
                .unwrap();
        }
        // Three partitions of uneven sizes, none of which sees 300 ids alone.
        let mut parts = Vec::new();
        for (at, len) in [(0, 250), (250, 100), (350, 250)] {
            let mut p = Counts::new(&names, bins.clone());
            p.add(&whole.slice(at, len), &limits).unwrap();
            parts.push(p);
        }
        let mut merged = parts.remove(2);
        for p in parts {
            merged.merge(p, &limits);
        }
        assert_eq!(merged.selection, single.selection);
        assert_eq!(merged.baseline, single.baseline);
        let identifiers = |c: &Counts| c.fields.iter().map(|f| f.identifier).collect::<Vec<_>>();
        assert_eq!(identifiers(&single), [true, false, false, false]);
        assert_eq!(identifiers(&merged), identifiers(&single));
        assert_eq!(counted(&merged), counted(&single));
        // Null zones, four bins and null mems, both flags and null: all counted.
        assert_eq!(merged.fields[1].distinct(), 6);
        assert_eq!(merged.fields[2].distinct(), 5);
        assert_eq!(merged.fields[3].distinct(), 3);
    }

    /// `(sel, w, x float, k integer, measure)` rows.
    fn numbers(n: usize, k_values: i64) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("sel", DataType::Boolean, true),
            Field::new("w", DataType::Float64, false),
            Field::new("x", DataType::Float64, true),
            Field::new("k", DataType::Int64, false),
            Field::new("m", DataType::Float64, false),
        ]);
        // x follows the measure (a share of it); k does not.
        let m: Vec<f64> = (0..n).map(|i| 10.0 + ((i * 7919) % 1000) as f64).collect();
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(BooleanArray::from(
                    (0..n).map(|i| Some(i % 10 == 0)).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    (0..n).map(|i| [1.0, 20.0][i % 2]).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    (0..n)
                        .map(|i| (i % 211 != 0).then(|| m[i] * 0.37))
                        .collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    (0..n as i64)
                        .map(|i| 10_000 + (i * 31) % k_values)
                        .collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(m)),
            ],
        )
        .unwrap()
    }

    fn plan(up_to: usize) -> Vec<(String, Counting)> {
        vec![
            ("x".to_owned(), Counting::Deciles),
            ("k".to_owned(), Counting::IntegersUpTo(up_to)),
        ]
    }

    #[test]
    fn numbers_counted_in_one_pass_are_binned_by_their_deciles_as_two_passes_would() {
        let limits = Limits::default();
        let batch = numbers(2000, 500);
        let mut c = Counts::counting(plan(64), 1);
        for at in (0..2000).step_by(300) {
            c.add(&batch.slice(at, 300.min(2000 - at)), &limits)
                .unwrap();
        }
        c.finish(&[0.1, 0.5, 0.9]);
        // 500 integers, more than 64: binned; both by three edges.
        let x_bins = c.fields[0].bins.clone().expect("x is binned");
        let k_bins = c.fields[1].bins.clone().expect("k has too many values");
        assert_eq!((x_bins.edges.len(), k_bins.edges.len()), (3, 3));
        // The weighted median of x: half the weight on each side, within a bucket (0.1%).
        let xs = batch.column(2).as_primitive::<Float64Type>();
        let ws = batch.column(1).as_primitive::<Float64Type>();
        let below: f64 = (0..2000)
            .filter(|&i| xs.is_valid(i) && xs.value(i) < x_bins.edges[1])
            .map(|i| ws.value(i))
            .sum();
        let all: f64 = (0..2000)
            .filter(|&i| xs.is_valid(i))
            .map(|i| ws.value(i))
            .sum();
        assert!((below / all - 0.5).abs() < 0.01, "{below} of {all}");
        // A second pass with those bins given counts exactly the same.
        let mut again = Counts::new(
            &["x".to_owned(), "k".to_owned()],
            vec![Some(x_bins), Some(k_bins)],
        );
        again
            .add(&batch.project(&[0, 1, 2, 3]).unwrap(), &limits)
            .unwrap();
        assert_eq!(counted(&c), counted(&again));
    }

    #[test]
    fn integers_with_few_values_are_counted_by_value_and_parts_agree_on_which() {
        let limits = Limits::default();
        let batch = numbers(600, 40);
        let whole = |up_to: usize| {
            let mut c = Counts::counting(plan(up_to), 1);
            c.add(&batch, &limits).unwrap();
            c.finish(&[0.5]);
            c
        };
        let few = whole(40);
        assert!(few.fields[1].bins.is_none());
        assert_eq!(few.fields[1].distinct(), 40);
        assert!(few.fields[1].get(&Value::Int(10_039)).is_some());
        // Two parts of 25 values each (at most 30 apart), 40 together: binned, as the whole.
        let mut parts = Counts::counting(plan(30), 1);
        parts.add(&batch.slice(0, 25), &limits).unwrap();
        let mut other = Counts::counting(plan(30), 1);
        other.add(&batch.slice(25, 575), &limits).unwrap();
        parts.merge(other, &limits);
        parts.finish(&[0.5]);
        let many = whole(30);
        assert!(many.fields[1].bins.is_some());
        assert_eq!(parts.fields[1].bins, many.fields[1].bins);
        assert_eq!(counted(&parts), counted(&many));
        // The correlations of the parts merged are the whole's.
        for f in 0..2 {
            let (a, b) = (
                parts.fields[f].correlation(0).unwrap(),
                many.fields[f].correlation(0).unwrap(),
            );
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn numbers_are_correlated_with_the_measure_over_the_counted_rows() {
        let limits = Limits::default();
        let batch = numbers(3000, 500);
        let mut c = Counts::counting(plan(64), 1);
        c.add(&batch, &limits).unwrap();
        let logs = |col: usize| numeric::logs(batch.column(col)).unwrap();
        let lm = logs(4);
        // k is an integer: its logs are exact, so its correlation is Pearson's on the rows.
        let want = Comoments::of(&logs(3), &lm).correlation().unwrap();
        let k = c.fields[1].correlation(0).unwrap();
        assert!((k - want).abs() < 1e-9, "{k} vs {want}");
        assert!(k.abs() < 0.2, "k does not follow the measure: {k}");
        // x is counted by buckets: within the third digit of the exact one, and near 1 (a
        // share of the measure where it is not null).
        let exact = Comoments::of(&logs(2), &lm).correlation().unwrap();
        let x = c.fields[0].correlation(0).unwrap();
        assert!((x - exact).abs() < 1e-2 && x > 0.7, "{x} vs {exact}");
    }

    /// Rows added to their cells one by one, as the plain loop does.
    fn added_one_by_one(len: usize, slots: &[u32], rows: &Rows) -> Vec<[Cell; 2]> {
        let mut cells = vec![[Cell::default(); 2]; len];
        for i in 0..slots.len() {
            if slots[i] != values::UNCOUNTED {
                cells[slots[i] as usize][usize::from(rows.side[i])].add(rows.weight[i]);
            }
        }
        cells
    }

    #[test]
    fn rows_summed_in_lanes_or_apart_land_in_the_cells_added_one_by_one() {
        let mut seed = 7;
        let n = 4096;
        // Whole weights, so sums in any order are exact; a second run with fractions.
        for whole in [true, false] {
            let rows = Rows {
                counted: (0..n).map(|i| i % 10 != 3).collect(),
                side: (0..n)
                    .map(|_| u8::from(crate::tests::lcg(&mut seed) > 0.1))
                    .collect(),
                weight: (0..n)
                    .map(|_| {
                        let w = 1.0 + 20.0 * crate::tests::lcg(&mut seed);
                        if whole { w.floor() } else { w }
                    })
                    .collect(),
            };
            // Share of rows in slot 2: all, most (summed apart), about half (in place).
            for common in [1.0, 0.9, 0.5] {
                let slots: Vec<u32> = (0..n)
                    .map(|i| {
                        if !rows.counted[i] {
                            values::UNCOUNTED
                        } else if i == 0 || crate::tests::lcg(&mut seed) < common {
                            2
                        } else {
                            (crate::tests::lcg(&mut seed) * 6.0) as u32
                        }
                    })
                    .collect();
                // Six slots are few enough for lanes; with 600 (most of them empty) the
                // common slot is summed apart, or every row added in place.
                for len in [6, 600] {
                    let mut cells = vec![[Cell::default(); 2]; len];
                    // Twice: the sums land on what the cells already hold.
                    let mut lanes = Vec::new();
                    add_cells_of_rows(&mut cells, &slots, &rows, &mut lanes);
                    add_cells_of_rows(&mut cells, &slots, &rows, &mut lanes);
                    assert_eq!(lanes.is_empty(), len == 600);
                    let once = added_one_by_one(len, &slots, &rows);
                    for (got, want) in cells.iter().flatten().zip(once.iter().flatten()) {
                        assert_eq!(got.rows, 2 * want.rows, "{common}");
                        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
                        if whole {
                            assert_eq!(got.weight, 2.0 * want.weight);
                            assert_eq!(got.weight_sq, 2.0 * want.weight_sq);
                        } else {
                            assert!(close(got.weight, 2.0 * want.weight), "{got:?} {want:?}");
                            assert!(
                                close(got.weight_sq, 2.0 * want.weight_sq),
                                "{got:?} {want:?}"
                            );
                        }
                    }
                    assert!(once[2][1].rows > 0);
                }
            }
        }
    }
}
