//! Events to Arrow: one [`RecordBatch`] per Parquet file, columns typed by the catalog, rows
//! sorted by `timestamp`.

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use loupe_event::{ValidEvent, Value, fields};

use crate::catalog::{
    Catalog, FieldType, Observed, Placement, fits, place, raw_column, timestamp_type,
};
use crate::error::Result;

/// Updates `catalog` with every field of `events` (adding, widening, adding `.__raw` siblings),
/// then builds one batch holding exactly the columns these events use, rows in timestamp order
/// (stable, so events with equal timestamps keep their arrival order). Values that can have no
/// column because the dataset is at its field limit go, per event, into the overflow column as
/// a JSON object: nothing accepted is dropped.
///
/// The catalog must be saved before a file holding this batch is published.
pub fn events_to_batch(
    events: &[ValidEvent],
    catalog: &mut Catalog,
    now_us: i64,
) -> Result<RecordBatch> {
    catalog.ensure(fields::TIMESTAMP, FieldType::Timestamp, now_us);
    // Pass 1: settle the types, so a field that widens mid-batch is float for the whole batch.
    // Fx hashing (rustc-hash): two lookups per field per event, on names we generated or
    // validated; SipHash's flood resistance buys nothing here and cost 5% of ingest.
    let mut used: Vec<&str> = Vec::new();
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    let mut overflow = false;
    for e in events {
        for (name, value) in e.fields() {
            if catalog.observe(name, value, now_us) == Observed::OverLimit {
                // No column (or no `.__raw` sibling) for it: its values go to the overflow column.
                overflow = true;
                if catalog.get(name).is_none() {
                    continue;
                }
            }
            if !value.is_null() && seen.insert(name.as_str()) {
                used.push(name.as_str());
            }
        }
    }
    // Raw siblings of the used fields, if the catalog has them, may receive values.
    let mut columns: Vec<(String, FieldType)> = Vec::new();
    for &name in &used {
        if let Some(info) = catalog.get(name) {
            columns.push((name.to_owned(), info.ty));
            let raw = raw_column(name);
            if catalog.get(&raw).is_some() {
                columns.push((raw, FieldType::String));
            }
        }
    }
    if overflow {
        catalog.ensure(fields::OVERFLOW, FieldType::String, now_us);
        columns.push((fields::OVERFLOW.to_owned(), FieldType::String));
    }
    columns.sort_by(|a, b| a.0.cmp(&b.0));
    columns.dedup_by(|a, b| a.0 == b.0);
    let index: FxHashMap<&str, usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.as_str(), i))
        .collect();

    // Pass 2: rows in timestamp order.
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].timestamp_us());

    let mut builders: Vec<Column> = columns
        .iter()
        .map(|(_, ty)| Column::new(*ty, events.len()))
        .collect();
    let mut times = Vec::with_capacity(events.len());
    let overflow_col = index.get(fields::OVERFLOW).copied();
    let mut spilled = serde_json::Map::new();
    for (row, &i) in order.iter().enumerate() {
        let e = &events[i];
        times.push(e.timestamp_us());
        for (name, value) in e.fields() {
            if value.is_null() {
                continue;
            }
            let Some(&col) = index.get(name.as_str()) else {
                // A field with no column: the dataset is at its field limit.
                spilled.insert(name.clone(), json_value(value));
                continue;
            };
            if fits(columns[col].1, value) {
                builders[col].put(row, value);
                continue;
            }
            match place(columns[col].1, value) {
                Placement::Typed(Value::Null) => {}
                Placement::Typed(v) => builders[col].put(row, &v),
                Placement::Raw(text) => match index.get(raw_column(name).as_str()) {
                    Some(&raw) => builders[raw].put(row, &Value::Str(text)),
                    None => {
                        spilled.insert(name.clone(), json_value(value));
                    }
                },
            }
        }
        if !spilled.is_empty() {
            let text = serde_json::Value::Object(std::mem::take(&mut spilled)).to_string();
            if let Some(col) = overflow_col {
                builders[col].put(row, &Value::Str(text));
            }
        }
    }

    let mut schema_fields = vec![Field::new(fields::TIMESTAMP, timestamp_type(), false)];
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(
        TimestampMicrosecondArray::from(times).with_timezone("UTC"),
    )];
    for ((name, ty), b) in columns.iter().zip(builders) {
        schema_fields.push(Field::new(name, ty.arrow_type(), true));
        arrays.push(b.finish(events.len()));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(schema_fields)),
        arrays,
    )?)
}

fn json_value(v: &Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// A column being built; rows without a value are padded with nulls.
enum Column {
    Bool(BooleanBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Str(StringBuilder),
}

impl Column {
    fn new(ty: FieldType, rows: usize) -> Self {
        match ty {
            FieldType::Bool => Column::Bool(BooleanBuilder::with_capacity(rows)),
            FieldType::Int => Column::Int(Int64Builder::with_capacity(rows)),
            FieldType::Float => Column::Float(Float64Builder::with_capacity(rows)),
            FieldType::String | FieldType::Timestamp => {
                Column::Str(StringBuilder::with_capacity(rows, rows * 8))
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Column::Bool(b) => b.len(),
            Column::Int(b) => b.len(),
            Column::Float(b) => b.len(),
            Column::Str(b) => b.len(),
        }
    }

    fn pad_to(&mut self, row: usize) {
        let missing = row - self.len();
        if missing == 0 {
            return;
        }
        match self {
            Column::Bool(b) => b.append_nulls(missing),
            Column::Int(b) => b.append_nulls(missing),
            Column::Float(b) => b.append_nulls(missing),
            Column::Str(b) => (0..missing).for_each(|_| b.append_null()),
        }
    }

    /// Sets row `row` to `v`, which `place` has already converted to this column's type.
    fn put(&mut self, row: usize, v: &Value) {
        self.pad_to(row);
        match (self, v) {
            (Column::Bool(b), Value::Bool(x)) => b.append_value(*x),
            (Column::Int(b), Value::Int(x)) => b.append_value(*x),
            (Column::Float(b), Value::Float(x)) => b.append_value(*x),
            (Column::Str(b), Value::Str(x)) => b.append_value(x),
            (c, _) => c.pad_to(row + 1),
        }
    }

    fn finish(mut self, rows: usize) -> ArrayRef {
        self.pad_to(rows);
        match self {
            Column::Bool(mut b) => Arc::new(b.finish()),
            Column::Int(mut b) => Arc::new(b.finish()),
            Column::Float(mut b) => Arc::new(b.finish()),
            Column::Str(mut b) => Arc::new(b.finish()),
        }
    }
}
