//! A Parquet file's summary: every compared field's values over all the file's rows, each with
//! its weighted count (Σw, Σw² and rows, `w` the `sample_rate`), numbers by [`super::fine`]
//! buckets, and each number's co-moments with every number of the file (any of which a
//! question may be a threshold on). Written beside the file when it is written.
//!
//! Why: counting every event is most of the counting pass (at 10M events on 2 cores, 4.2 s of
//! which the scan is 1.9 s; counting the selected 2% alone after the scan, 0.1 s). A question
//! whose window holds a file whole takes the baseline as the summary less the file's selected
//! events and those on neither side, and counts only those: a filtered scan. The counts are
//! the same as counting every row (sums of whole weights are exact in `f64`; otherwise they
//! differ by rounding), and so is the correlation with a measure, but for its rounding and
//! for where an integer field went from values to buckets (see [`super::fine`]).
//!
//! A summary stands for its file only as the file's rows are counted: one whose version or
//! bound on distinct values differs from the question's, or that lacks a number or a measure
//! the question needs, is not used, and the file is counted row by row as any other.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::{cast, max, min};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::counts::{Counting, Counts, Limits, Value};
use super::fine::Bucket;
use super::numeric::{self, Comoments};
use super::stats::Cell;

/// The format's version: a summary of another is not read.
pub const VERSION: u32 = 1;

/// zstd level of a summary: most of the ratio at little CPU.
const ZSTD_LEVEL: i32 = 3;

/// Most bytes a summary's JSON may take once decompressed (a summary holds at most
/// [`Limits::max_distinct`] values of each field, and the buckets of its numbers).
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Rows counted at a time, as a pass's batches come.
const BATCH_ROWS: usize = 8192;

/// What a file holds, field by field (see the module doc).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub version: u32,
    /// The bound on distinct values the fields were counted under ([`Limits::max_distinct`]):
    /// a field with more is an identifier, its values not kept.
    pub max_distinct: usize,
    /// The file's first and last `timestamp` (microseconds): a window holds the file whole
    /// when it holds both.
    pub first_us: i64,
    pub last_us: i64,
    /// All the file's rows.
    pub all: Cell,
    /// The numbers each number's co-moments are with ([`FieldSummary::with`]), in order.
    pub measures: Vec<String>,
    pub fields: Vec<FieldSummary>,
}

/// One field of a [`Summary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSummary {
    pub name: String,
    /// More distinct values than the summary's bound: none are kept.
    pub identifier: bool,
    /// Counted value by value: each value with the rows that hold it.
    pub values: Vec<(Value, Cell)>,
    /// Counted by fine buckets (a number; `None` for null): each with the rows in it.
    pub buckets: Vec<(Option<Bucket>, Cell)>,
    /// A number's co-moments with each of [`Summary::measures`], as the counting pass
    /// measures its correlation (see [`super::numeric`]).
    pub with: Vec<Comoments>,
}

/// Why a batch has no summary (its file is then counted row by row, as any file without one).
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("no rows, or no `timestamp` column of microseconds")]
    NoTimestamp,
    #[error("`{0}` holds a NaN or an infinity, which a summary cannot write")]
    NotFinite(String),
    #[error("counting the batch: {0}")]
    Counting(#[from] DataFusionError),
    #[error("a summary's encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error("a summary's compression: {0}")]
    Compression(#[from] std::io::Error),
}

/// The summary of `batch`, a file's rows (as written: `timestamp`, `sample_rate`, fields).
pub fn summarize(batch: &RecordBatch) -> Result<Summary, SummaryError> {
    let mut s = Summarizer::new(&batch.schema());
    s.add(batch)?;
    s.finish()
}

/// A summary made batch by batch, for a file written or merged from batches of one schema.
pub struct Summarizer {
    /// Positions in a batch of the fields compared and of the numbers among them.
    fields: Vec<usize>,
    measures: Vec<usize>,
    names: Vec<String>,
    weight: Option<usize>,
    counts: Counts,
    span: Option<(i64, i64)>,
    limits: Limits,
}

impl Summarizer {
    pub fn new(schema: &Schema) -> Summarizer {
        let fields: Vec<usize> = (0..schema.fields().len())
            .filter(|&i| {
                let f = schema.field(i);
                super::analyze::compared(f.name(), f.data_type())
            })
            .collect();
        let measures: Vec<usize> = fields
            .iter()
            .copied()
            .filter(|&i| schema.field(i).data_type().is_numeric())
            .collect();
        let plan: Vec<(String, Counting)> = fields
            .iter()
            .map(|&i| {
                let f = schema.field(i);
                (f.name().clone(), numeric::counting(f.data_type()))
            })
            .collect();
        Summarizer {
            names: measures
                .iter()
                .map(|&i| schema.field(i).name().clone())
                .collect(),
            counts: Counts::counting(plan, measures.len()),
            fields,
            measures,
            weight: schema.index_of("sample_rate").ok(),
            span: None,
            limits: Limits::default(),
        }
    }

    /// Counts `batch`'s rows (of the schema given to [`Summarizer::new`]).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<(), SummaryError> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        let (first, last) = time_span(batch).ok_or(SummaryError::NoTimestamp)?;
        self.span = Some(match self.span {
            None => (first, last),
            Some((a, b)) => (a.min(first), b.max(last)),
        });
        let f64s =
            |i: usize| cast(batch.column(i), &DataType::Float64).map_err(DataFusionError::from);
        // The pass's layout (see `Counts::add`): every row on the baseline side.
        let weight: ArrayRef = match self.weight {
            Some(i) => f64s(i)?,
            None => Arc::new(datafusion::arrow::array::Float64Array::from(vec![1.0; n])),
        };
        let mut columns: Vec<ArrayRef> = vec![Arc::new(BooleanArray::from(vec![false; n])), weight];
        columns.extend(self.fields.iter().map(|&i| batch.column(i).clone()));
        for &i in &self.measures {
            columns.push(f64s(i)?);
        }
        let pass_fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        let pass = RecordBatch::try_new(Arc::new(Schema::new(pass_fields)), columns)
            .map_err(DataFusionError::from)?;
        let mut start = 0;
        while start < n {
            let len = BATCH_ROWS.min(n - start);
            self.counts.add(&pass.slice(start, len), &self.limits)?;
            start += len;
        }
        Ok(())
    }

    /// The summary of every row added.
    pub fn finish(self) -> Result<Summary, SummaryError> {
        let (first_us, last_us) = self.span.ok_or(SummaryError::NoTimestamp)?;
        let summary = Summary {
            version: VERSION,
            max_distinct: self.limits.max_distinct,
            first_us,
            last_us,
            all: self.counts.baseline,
            measures: self.names,
            fields: self.counts.field_summaries(),
        };
        summary.check_finite()?;
        Ok(summary)
    }
}

/// The store's summarizer (see [`loupe_store::summary`]): the outliers' summaries, given by
/// the binary to what writes them (compaction's merges, and files caught up on later).
#[derive(Debug, Default, Clone, Copy)]
pub struct Summaries;

impl loupe_store::summary::Summarize for Summaries {
    fn start(&self, schema: &SchemaRef) -> Box<dyn loupe_store::summary::SummaryWriter> {
        Box::new(Making {
            summarizer: Summarizer::new(schema),
            failed: None,
        })
    }
}

/// One file's summary in the making, or why it has none.
struct Making {
    summarizer: Summarizer,
    failed: Option<SummaryError>,
}

impl loupe_store::summary::SummaryWriter for Making {
    fn add(&mut self, batch: &RecordBatch) {
        if self.failed.is_none()
            && let Err(e) = self.summarizer.add(batch)
        {
            self.failed = Some(e);
        }
    }

    fn finish(self: Box<Self>) -> Option<Vec<u8>> {
        let made = match self.failed {
            Some(e) => Err(e),
            None => self.summarizer.finish().and_then(|s| s.to_bytes()),
        };
        made.inspect_err(|e| {
            tracing::debug!(error = %e, "a file without a summary (its rows are counted one by one)")
        })
        .ok()
    }
}

/// The first and last `timestamp` of `batch`, if it has one of microseconds.
fn time_span(batch: &RecordBatch) -> Option<(i64, i64)> {
    let col = batch.column_by_name("timestamp")?;
    if !matches!(
        col.data_type(),
        DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, _)
    ) {
        return None;
    }
    let micros = cast(col, &DataType::Int64).ok()?;
    let micros = micros.as_primitive::<Int64Type>();
    Some((min(micros)?, max(micros)?))
}

impl Summary {
    /// The summary as written beside its file: JSON, compressed with zstd (a summary of a
    /// file of millions of events is 2-3 MB of JSON, a tenth of that compressed).
    pub fn to_bytes(&self) -> Result<Vec<u8>, SummaryError> {
        Ok(zstd::bulk::compress(
            &serde_json::to_vec(self)?,
            ZSTD_LEVEL,
        )?)
    }

    /// A summary as written by [`Summary::to_bytes`]; one that would take more than
    /// [`MAX_JSON_BYTES`] is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Summary, SummaryError> {
        Ok(Summary::from_bytes_sized(bytes)?.0)
    }

    /// [`Summary::from_bytes`], with the size of its JSON (what it takes in memory, roughly).
    pub fn from_bytes_sized(bytes: &[u8]) -> Result<(Summary, usize), SummaryError> {
        use std::io::Read;
        let mut json = Vec::new();
        zstd::stream::read::Decoder::new(bytes)?
            .take(MAX_JSON_BYTES)
            .read_to_end(&mut json)?;
        Ok((serde_json::from_slice(&json)?, json.len()))
    }

    /// JSON has no NaN nor infinity: a sum made of one is refused, naming its field.
    fn check_finite(&self) -> Result<(), SummaryError> {
        let cell = |c: &Cell| c.weight.is_finite() && c.weight_sq.is_finite();
        if !cell(&self.all) {
            return Err(SummaryError::NotFinite("sample_rate".into()));
        }
        for f in &self.fields {
            let finite = f.values.iter().all(|(_, c)| cell(c))
                && f.buckets.iter().all(|(_, c)| cell(c))
                && f.with.iter().all(Comoments::is_finite);
            if !finite {
                return Err(SummaryError::NotFinite(f.name.clone()));
            }
        }
        Ok(())
    }
}

/// The counts of files a question's window holds whole, from their `summaries`, for fields
/// counted as `plan` says and correlated with `measures` (by name): each summary's rows on
/// the baseline side, less the rows `selected` and `neither` counted (the files' selected
/// rows and those on neither side, each counted on the selection side), then `selected` on
/// the selection side. `None` when a summary cannot stand for its file (see
/// [`Counts::of_summary`]) or the rows counted are not among the summaries'.
pub fn counts_of_whole_files(
    plan: &[(String, Counting)],
    measures: &[&str],
    summaries: &[&Summary],
    selected: Counts,
    neither: Counts,
    limits: &Limits,
) -> Option<Counts> {
    let mut whole = Counts::counting(plan.to_vec(), measures.len());
    for s in summaries {
        if s.version != VERSION || s.max_distinct != limits.max_distinct {
            return None;
        }
        let at: Vec<usize> = measures
            .iter()
            .map(|m| s.measures.iter().position(|x| x == m))
            .collect::<Option<_>>()?;
        whole.merge(Counts::of_summary(plan.to_vec(), &at, s, limits)?, limits);
    }
    whole.take_out(&selected, false)?;
    // The rows on neither side are not compared: nor are they in the correlation.
    whole.take_out(&neither, true)?;
    // The selected rows' co-moments are in the summaries' already.
    whole.merge(selected.without_comoments(), limits);
    Some(whole)
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };

    use super::super::analyze::DECILES;
    use super::*;

    /// A file's rows: kernels (few values), ids (one per row: an identifier), status codes
    /// (few integers), byte counts (many integers), a sparse number, a flag, the measure
    /// `duration_ms` (null in some rows: neither side), weights 1 or 4.
    fn file(rows: usize, seed: u64) -> RecordBatch {
        let mut s = seed;
        let mut next = || crate::tests::lcg(&mut s);
        let (mut ts, mut weight, mut kernel, mut id) = (vec![], vec![], vec![], vec![]);
        let (mut status, mut bytes, mut sparse, mut flag, mut duration) =
            (vec![], vec![], vec![], vec![], vec![]);
        for i in 0..rows {
            ts.push(1_700_000_000_000_000 + (seed as i64) * 10_000_000 + i as i64);
            weight.push(if next() < 0.3 { 1.0 } else { 4.0 });
            let k = ["6.1", "6.5", "6.8"][(next() * 3.0) as usize % 3];
            kernel.push(k);
            id.push(format!("req-{seed}-{i}"));
            status.push([200, 200, 200, 404, 500][(next() * 5.0) as usize % 5]);
            let b = (next() * 1e6) as i64;
            bytes.push(b);
            sparse.push((next() < 0.05).then(|| next() * 100.0));
            flag.push(next() < 0.5);
            let slow = if k == "6.8" { 3.0 } else { 1.0 };
            duration.push((next() > 0.02).then(|| next() * 100.0 * slow + b as f64 / 1e4));
        }
        let schema = Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("sample_rate", DataType::Float64, false),
            Field::new("kernel", DataType::Utf8, true),
            Field::new("request.id", DataType::Utf8, true),
            Field::new("status", DataType::Int64, true),
            Field::new("bytes", DataType::Int64, true),
            Field::new("gc.pause_ms", DataType::Float64, true),
            Field::new("cached", DataType::Boolean, true),
            Field::new("duration_ms", DataType::Float64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(TimestampMicrosecondArray::from(ts)),
                Arc::new(Float64Array::from(weight)),
                Arc::new(StringArray::from(kernel)),
                Arc::new(StringArray::from(id)),
                Arc::new(Int64Array::from(status)),
                Arc::new(Int64Array::from(bytes)),
                Arc::new(Float64Array::from(sparse)),
                Arc::new(BooleanArray::from(flag)),
                Arc::new(Float64Array::from(duration)),
            ],
        )
        .unwrap()
    }

    /// The fields a question on `duration_ms` compares, as the engine plans them.
    fn plan(batch: &RecordBatch) -> Vec<(String, Counting)> {
        batch
            .schema()
            .fields()
            .iter()
            .filter(|f| super::super::analyze::compared(f.name(), f.data_type()))
            .filter(|f| f.name() != "duration_ms")
            .map(|f| (f.name().clone(), numeric::counting(f.data_type())))
            .collect()
    }

    /// `batch`'s rows as the counting pass reads them for `duration_ms > threshold`, those
    /// that `keep` says (by their side: Some(true) selected, Some(false) baseline, None
    /// neither), with their side as `side` says.
    fn pass(
        batch: &RecordBatch,
        threshold: f64,
        keep: impl Fn(Option<bool>) -> bool,
        side: impl Fn(Option<bool>) -> Option<bool>,
    ) -> RecordBatch {
        let duration = batch
            .column_by_name("duration_ms")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let sides: Vec<Option<bool>> = (0..batch.num_rows())
            .map(|i| duration.is_valid(i).then(|| duration.value(i) > threshold))
            .collect();
        let rows: Vec<usize> = (0..sides.len()).filter(|&i| keep(sides[i])).collect();
        let take = |col: &ArrayRef| {
            let idx = datafusion::arrow::array::UInt32Array::from(
                rows.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            );
            datafusion::arrow::compute::take(col, &idx, None).unwrap()
        };
        let selected = BooleanArray::from(rows.iter().map(|&i| side(sides[i])).collect::<Vec<_>>());
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(selected),
            take(batch.column_by_name("sample_rate").unwrap()),
        ];
        for (name, _) in plan(batch) {
            columns.push(take(batch.column_by_name(&name).unwrap()));
        }
        columns.push(take(batch.column_by_name("duration_ms").unwrap()));
        let fields: Vec<Field> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
    }

    fn count(plan: &[(String, Counting)], batches: &[RecordBatch]) -> Counts {
        let limits = Limits::default();
        let mut c = Counts::counting(plan.to_vec(), 1);
        for b in batches {
            let mut start = 0;
            while start < b.num_rows() {
                let len = 4096.min(b.num_rows() - start);
                c.add(&b.slice(start, len), &limits).unwrap();
                start += len;
            }
        }
        c
    }

    /// A field's name, whether it is an identifier, its values (after binning) with their
    /// cells, sorted, and its correlation with the measure.
    type Answer = (String, bool, Vec<(Value, [Cell; 2])>, Option<f64>);

    fn answer(mut c: Counts) -> Vec<Answer> {
        c.finish(&DECILES);
        c.fields
            .iter()
            .map(|f| {
                let mut e: Vec<_> = f.entries().collect();
                e.sort_by(|a, b| a.0.cmp(&b.0));
                (f.name.clone(), f.identifier, e, f.correlation(0))
            })
            .collect()
    }

    #[test]
    fn counts_from_summaries_less_the_selected_rows_are_counting_every_row() {
        let files = [file(20_000, 1), file(9_000, 2)];
        let threshold = 150.0;
        let plan = plan(&files[0]);
        // Every row counted, as a pass over files without summaries.
        let direct = count(
            &plan,
            &files
                .iter()
                .map(|f| pass(f, threshold, |_| true, |s| s))
                .collect::<Vec<_>>(),
        );
        // The summaries, and only the selected rows and those on neither side counted.
        let summaries: Vec<Summary> = files.iter().map(|f| summarize(f).unwrap()).collect();
        let selected = count(
            &plan,
            &files
                .iter()
                .map(|f| pass(f, threshold, |s| s == Some(true), |_| Some(true)))
                .collect::<Vec<_>>(),
        );
        let neither = count(
            &plan,
            &files
                .iter()
                .map(|f| pass(f, threshold, |s| s.is_none(), |_| Some(true)))
                .collect::<Vec<_>>(),
        );
        assert!(neither.selection.rows > 0, "some rows are on neither side");
        let from_summaries = counts_of_whole_files(
            &plan,
            &["duration_ms"],
            &summaries.iter().collect::<Vec<_>>(),
            selected,
            neither,
            &Limits::default(),
        )
        .expect("the summaries stand for their files");
        assert_eq!(from_summaries.selection, direct.selection);
        assert_eq!(from_summaries.baseline, direct.baseline);
        let (a, b) = (answer(from_summaries), answer(direct));
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            assert_eq!((&x.0, x.1), (&y.0, y.1));
            assert_eq!(x.2, y.2, "{}: values and cells", x.0);
            // An integer takes its exact value until its field goes to buckets, which
            // depends on where batches start (see `fine`): r agrees to its third digit.
            match (x.3, y.3) {
                (Some(r), Some(s)) => assert!((r - s).abs() < 1e-3, "{}: r {r} against {s}", x.0),
                (r, s) => assert_eq!(r, s, "{}", x.0),
            }
        }
        // The identifier, the integers by value and by buckets, the sparse number: each kind.
        let kinds: Vec<(&str, bool, usize)> =
            a.iter().map(|f| (f.0.as_str(), f.1, f.2.len())).collect();
        assert!(kinds.contains(&("request.id", true, 0)), "{kinds:?}");
        assert!(
            kinds.iter().any(|k| k.0 == "status" && k.2 == 3),
            "{kinds:?}"
        );
        assert!(
            kinds.iter().any(|k| k.0 == "bytes" && k.2 >= 9),
            "{kinds:?}"
        );
    }

    #[test]
    fn a_summary_is_written_and_read_back_whole() {
        let s = summarize(&file(3_000, 7)).unwrap();
        assert_eq!(Summary::from_bytes(&s.to_bytes().unwrap()).unwrap(), s);
        assert_eq!(s.all.rows, 3_000);
        assert_eq!(
            s.measures,
            ["status", "bytes", "gc.pause_ms", "duration_ms"]
        );
    }
}
