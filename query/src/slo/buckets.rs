//! Per-minute buckets of an SLO, materialised as Parquet next to its dataset
//! (`<dataset>/_slo/<slo>.parquet`) so a status over 30 days reads 43,200 rows per objective
//! instead of 30 days of events.
//!
//! A bucket is one minute of one objective: the weighted valid events (`Σw`, `Σw²`, rows) and
//! the good ones among them. DataFusion computes them from the dataset's Parquet with one
//! grouped query per run of changed hours.
//!
//! Kept current incrementally, and exactly: the file records, for every hour partition it
//! counted, a fingerprint of that partition's files (names and sizes). A refresh lists the
//! partitions and recounts only the hours whose files changed: the open hour after each
//! flush, an old hour that received late events, an hour compaction rewrote (same events,
//! same sums), an hour that was deleted. So the buckets always agree with what SQL over the
//! dataset sees, late events included, and an unchanged store costs one directory listing.
//! Events still in the collector's WAL are not in Parquet yet; SQL does not see them either.
//!
//! Minutes older than the SLO needs (its period and the policy's longest window) are dropped
//! from the file; their sums are kept as `retired` so the exported counters never go down.
//! A changed definition (predicates, thresholds, weight column) starts the file afresh.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::metadata::KeyValue;
use datafusion::parquet::file::properties::WriterProperties;
use loupe_store::{DatasetDir, DatasetName, Store};

use super::budget::Tally;
use super::definition::Slo;
use super::window::MINUTE_US;
use crate::outliers::analyze::ident;
use crate::{Error, QueryEngine, Result};

const HOUR_US: i64 = 3_600_000_000;
/// Key-value metadata of the bucket file.
const META_DEFINITION: &str = "loupe.slo.definition";
const META_HOURS: &str = "loupe.slo.hours";
const META_RETIRED: &str = "loupe.slo.retired";

/// An SLO's buckets and what they were computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// The SQL the buckets were computed with (see [`definition_key`]).
    pub definition: String,
    /// Per objective: minute start (µs) -> tally. Minutes without valid events are absent.
    pub minutes: Vec<BTreeMap<i64, Tally>>,
    /// Hour start (µs) -> fingerprint of the partition's files when it was counted.
    pub hours: BTreeMap<i64, u64>,
    /// Per objective: the sums of minutes dropped past the horizon.
    pub retired: Vec<Tally>,
}

/// What one refresh did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Hours recounted from events.
    pub hours_counted: usize,
    /// Grouped queries run (one per run of consecutive changed hours).
    pub queries: usize,
    /// Minutes dropped past the horizon.
    pub minutes_retired: usize,
}

/// The text that identifies how buckets are computed: when it changes, old buckets are void.
pub fn definition_key(slo: &Slo, weight: &str) -> String {
    let mut key = format!("v1\nweight: {weight}\ntotal: {}\n", slo.total_sql());
    for (i, o) in slo.objectives.iter().enumerate() {
        key.push_str(&format!("good[{i}]: {}\n", slo.good_sql(o)));
    }
    key
}

/// What a refresh needs to know of a dataset, read once for all the SLOs over it.
#[derive(Debug, Clone)]
pub struct DatasetView {
    pub dir: DatasetDir,
    /// Hour start (µs) -> fingerprint of its files; `None` while the dataset has no events.
    pub hours: Option<BTreeMap<i64, u64>>,
    /// The SQL weight of an event (see [`weight_expr`]).
    pub weight: String,
}

impl DatasetView {
    /// Lists the dataset's partitions and plans its weight column.
    pub async fn read(engine: &QueryEngine, store: &Store, dataset: &str) -> Result<DatasetView> {
        let dir = store.dataset(&DatasetName::new(dataset)?);
        if !dir.catalog_dir().exists() {
            // No event has reached the dataset yet: no data, which is not an error.
            return Ok(DatasetView {
                dir,
                hours: None,
                weight: String::new(),
            });
        }
        let hours = dir
            .partitions()?
            .iter()
            .map(|(p, files)| (p.start_us(), fingerprint(files)))
            .collect();
        Ok(DatasetView {
            weight: weight_expr(engine, dataset).await?,
            hours: Some(hours),
            dir,
        })
    }
}

/// An SLO's buckets as last written, with the file's size and modification time then: a
/// file that still has them need not be read again.
#[derive(Debug, Clone)]
pub struct Cached {
    pub buckets: Buckets,
    stamp: Option<(std::time::SystemTime, u64)>,
}

fn stamp(path: &std::path::Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Brings `slo`'s buckets up to date with the dataset's partitions as they are now and
/// returns them, keeping the minutes from `now_us - keep_us` on.
pub async fn refresh(
    engine: &QueryEngine,
    store: &Store,
    slo: &Slo,
    now_us: i64,
    keep_us: i64,
) -> Result<(Buckets, Refreshed)> {
    let view = DatasetView::read(engine, store, &slo.dataset).await?;
    let mut cache = None;
    let stats = refresh_in(engine, &view, slo, &mut cache, now_us, keep_us).await?;
    let buckets = cache.map(|c| c.buckets).unwrap_or_default();
    Ok((buckets, stats))
}

/// [`refresh`] against a view of the dataset read once for several SLOs, with the buckets
/// kept in `cache` between calls (read from the file only when it is not the one cached).
pub async fn refresh_in(
    engine: &QueryEngine,
    view: &DatasetView,
    slo: &Slo,
    cache: &mut Option<Cached>,
    now_us: i64,
    keep_us: i64,
) -> Result<Refreshed> {
    let objectives = slo.objectives.len();
    let fresh = |definition: String| Buckets {
        definition,
        minutes: vec![BTreeMap::new(); objectives],
        hours: BTreeMap::new(),
        retired: vec![Tally::default(); objectives],
    };
    let Some(listing) = &view.hours else {
        *cache = Some(Cached {
            buckets: fresh(String::new()),
            stamp: None,
        });
        return Ok(Refreshed::default());
    };
    let path = view.dir.slo_buckets_path(&slo.name);
    let definition = definition_key(slo, &view.weight);
    let on_disk = stamp(&path);
    let mut b = match cache.take() {
        Some(c) if on_disk.is_some() && c.stamp == on_disk => c.buckets,
        _ => match load(&path) {
            Ok(Some(b)) => b,
            Ok(None) => fresh(definition.clone()),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "SLO buckets unreadable; counting again");
                fresh(definition.clone())
            }
        },
    };
    if b.definition != definition || b.minutes.len() != objectives {
        b = fresh(definition);
    }
    let horizon = (now_us - keep_us).div_euclid(HOUR_US) * HOUR_US;
    let mut stats = Refreshed::default();

    // Drop what is past the horizon, keeping its sums (`split_off` moves what it keeps, so
    // only when there is something to drop: an hour in sixty).
    for (m, retired) in b.minutes.iter_mut().zip(b.retired.iter_mut()) {
        if m.first_key_value().is_some_and(|(t, _)| *t < horizon) {
            let kept = m.split_off(&horizon);
            stats.minutes_retired += m.len();
            *retired = m.values().fold(*retired, |a, t| a.plus(t));
            *m = kept;
        }
    }
    if b.hours.first_key_value().is_some_and(|(h, _)| *h < horizon) {
        b.hours = b.hours.split_off(&horizon);
    }

    // The hours whose files are not the ones counted.
    let now = listing.range(horizon..);
    let mut changed: BTreeSet<i64> = now
        .filter(|(h, fp)| b.hours.get(h) != Some(fp))
        .map(|(h, _)| *h)
        .collect();
    changed.extend(b.hours.keys().filter(|h| !listing.contains_key(h)));

    // An hour whose files are gone (deleted, retention) leaves the buckets, but its sums
    // stay in the counters, as minutes past the horizon do.
    for h in changed.iter().filter(|h| !listing.contains_key(h)) {
        for (m, retired) in b.minutes.iter_mut().zip(b.retired.iter_mut()) {
            let mut gone = m.split_off(h);
            let after = gone.split_off(&(h + HOUR_US));
            *retired = gone.values().fold(*retired, |a, t| a.plus(t));
            m.extend(after);
        }
    }
    for (from, to) in runs(&changed) {
        let counted = count(engine, slo, &view.weight, from, to).await?;
        for (m, fresh) in b.minutes.iter_mut().zip(counted) {
            let mut tail = m.split_off(&from);
            let after = tail.split_off(&to);
            m.extend(fresh);
            m.extend(after);
        }
        stats.queries += 1;
    }
    stats.hours_counted = changed.len();
    for h in &changed {
        match listing.get(h) {
            Some(fp) => b.hours.insert(*h, *fp),
            None => b.hours.remove(h),
        };
    }
    let written = if !changed.is_empty() || stats.minutes_retired > 0 || on_disk.is_none() {
        save(&path, &b)?;
        stamp(&path)
    } else {
        on_disk
    };
    *cache = Some(Cached {
        buckets: b,
        stamp: written,
    });
    Ok(stats)
}

/// The weight of an event: its `sample_rate`, or 1 where it has none (or the dataset never
/// had the field).
pub(crate) async fn weight_expr(engine: &QueryEngine, dataset: &str) -> Result<String> {
    let (schema, _) = engine
        .describe(&format!("SELECT * FROM {} LIMIT 0", ident(dataset)))
        .await?;
    Ok(if schema.field_with_name("sample_rate").is_ok() {
        "coalesce(CAST(sample_rate AS DOUBLE), 1.0)".to_owned()
    } else {
        "1.0".to_owned()
    })
}

/// Consecutive hours as `[from, to)` spans.
fn runs(hours: &BTreeSet<i64>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for h in hours {
        match out.last_mut() {
            Some((_, to)) if *to == *h => *to = h + HOUR_US,
            _ => out.push((*h, h + HOUR_US)),
        }
    }
    out
}

/// FNV-1a over the partition's file names and sizes (stable across builds, unlike std's
/// hasher; a collision would only skip one recount).
fn fingerprint(files: &[(String, u64)]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, size) in files {
        eat(name.as_bytes());
        eat(&[0]);
        eat(&size.to_le_bytes());
    }
    h
}

/// The SQL that counts `[from_us, to_us)` into minutes, one set of good columns per objective.
pub fn count_sql(slo: &Slo, weight: &str, from_us: i64, to_us: i64) -> String {
    let mut inner = vec![format!("\"timestamp\""), format!("{weight} AS w")];
    let mut outer = vec![
        format!("CAST(\"timestamp\" AS BIGINT) / {MINUTE_US} * {MINUTE_US} AS minute"),
        "sum(w) AS total".to_owned(),
        "sum(w * w) AS total_sq".to_owned(),
        "count(*) AS total_rows".to_owned(),
    ];
    for (i, o) in slo.objectives.iter().enumerate() {
        inner.push(format!("({}) AS g{i}", slo.good_sql(o)));
        outer.push(format!(
            "sum(CASE WHEN g{i} THEN w ELSE 0.0 END) AS good{i}"
        ));
        outer.push(format!(
            "sum(CASE WHEN g{i} THEN w * w ELSE 0.0 END) AS good_sq{i}"
        ));
        outer.push(format!(
            "sum(CASE WHEN g{i} THEN 1 ELSE 0 END) AS good_rows{i}"
        ));
    }
    format!(
        "SELECT {} FROM (SELECT {} FROM {} WHERE \"timestamp\" >= to_timestamp_micros({from_us}) \
         AND \"timestamp\" < to_timestamp_micros({to_us}) AND {}) AS e GROUP BY 1",
        outer.join(", "),
        inner.join(", "),
        ident(&slo.dataset),
        slo.total_sql(),
    )
}

/// Counts `[from_us, to_us)` of the dataset into per-objective minutes.
async fn count(
    engine: &QueryEngine,
    slo: &Slo,
    weight: &str,
    from_us: i64,
    to_us: i64,
) -> Result<Vec<BTreeMap<i64, Tally>>> {
    let sql = count_sql(slo, weight, from_us, to_us);
    let out = engine
        .sql(&sql, usize::MAX)
        .await
        .map_err(|e| predicate_error(slo, e))?;
    let mut minutes = vec![BTreeMap::new(); slo.objectives.len()];
    for batch in &out.batches {
        let minute = ints(batch.column(0))?;
        let total = floats(batch.column(1))?;
        let total_sq = floats(batch.column(2))?;
        let total_rows = ints(batch.column(3))?;
        for (i, m) in minutes.iter_mut().enumerate() {
            let good = floats(batch.column(4 + 3 * i))?;
            let good_sq = floats(batch.column(5 + 3 * i))?;
            let good_rows = ints(batch.column(6 + 3 * i))?;
            for r in 0..batch.num_rows() {
                m.insert(
                    minute.value(r),
                    Tally {
                        good: good.value(r),
                        good_sq: good_sq.value(r),
                        good_rows: good_rows.value(r).max(0) as u64,
                        total: total.value(r),
                        total_sq: total_sq.value(r),
                        total_rows: total_rows.value(r).max(0) as u64,
                    },
                );
            }
        }
    }
    Ok(minutes)
}

/// A query error of an SLO's counting query, naming the SLO, with DataFusion's list of
/// valid fields cut to its first ten (a wide dataset's list runs to pages).
pub(crate) fn predicate_error(slo: &Slo, e: Error) -> Error {
    const MARK: &str = "Valid fields are ";
    match e {
        Error::Query(msg) => {
            let msg = match msg.split_once(MARK) {
                Some((head, fields)) => {
                    let all: Vec<&str> = fields.trim_end_matches('.').split(", ").collect();
                    let shown = all.iter().take(10).copied().collect::<Vec<_>>().join(", ");
                    let more = all.len().saturating_sub(10);
                    if more > 0 {
                        format!("{head}{MARK}{shown}, and {more} more.")
                    } else {
                        format!("{head}{MARK}{shown}.")
                    }
                }
                None => msg,
            };
            Error::Query(format!(
                "SLO {:?}: its predicates do not run over dataset {:?}: {msg}",
                slo.name, slo.dataset
            ))
        }
        other => other,
    }
}

fn floats(a: &ArrayRef) -> Result<Float64Array> {
    let c = cast(a, &DataType::Float64).map_err(|e| Error::Execution(e.to_string()))?;
    Ok(c.as_any()
        .downcast_ref::<Float64Array>()
        .expect("cast to Float64")
        .clone())
}

fn ints(a: &ArrayRef) -> Result<Int64Array> {
    let c = cast(a, &DataType::Int64).map_err(|e| Error::Execution(e.to_string()))?;
    Ok(c.as_any()
        .downcast_ref::<Int64Array>()
        .expect("cast to Int64")
        .clone())
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("minute_us", DataType::Int64, false),
        Field::new("objective", DataType::UInt32, false),
        Field::new("good", DataType::Float64, false),
        Field::new("good_sq", DataType::Float64, false),
        Field::new("good_rows", DataType::Int64, false),
        Field::new("total", DataType::Float64, false),
        Field::new("total_sq", DataType::Float64, false),
        Field::new("total_rows", DataType::Int64, false),
    ]))
}

fn to_execution(e: impl std::fmt::Display) -> Error {
    Error::Execution(format!("SLO buckets: {e}"))
}

/// Writes the buckets whole (temporary file, fsync, rename): readers see the old file or
/// the new one.
fn save(path: &std::path::Path, b: &Buckets) -> Result<()> {
    let rows: Vec<(u32, i64, &Tally)> = b
        .minutes
        .iter()
        .enumerate()
        .flat_map(|(i, m)| m.iter().map(move |(t, tally)| (i as u32, *t, tally)))
        .collect();
    let col_f = |f: fn(&Tally) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| f(r.2))))
    };
    let col_i = |f: fn(&Tally) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| f(r.2) as i64),
        ))
    };
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.0))),
            col_f(|t| t.good),
            col_f(|t| t.good_sq),
            col_i(|t| t.good_rows),
            col_f(|t| t.total),
            col_f(|t| t.total_sq),
            col_i(|t| t.total_rows),
        ],
    )
    .map_err(to_execution)?;
    let hours: BTreeMap<String, u64> = b.hours.iter().map(|(h, f)| (h.to_string(), *f)).collect();
    let retired: Vec<[f64; 6]> = b
        .retired
        .iter()
        .map(|t| {
            [
                t.good,
                t.good_sq,
                t.good_rows as f64,
                t.total,
                t.total_sq,
                t.total_rows as f64,
            ]
        })
        .collect();
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![
            KeyValue::new(META_DEFINITION.to_owned(), b.definition.clone()),
            KeyValue::new(
                META_HOURS.to_owned(),
                serde_json::to_string(&hours).map_err(to_execution)?,
            ),
            KeyValue::new(
                META_RETIRED.to_owned(),
                serde_json::to_string(&retired).map_err(to_execution)?,
            ),
        ]))
        .build();
    let mut bytes = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut bytes, schema(), Some(props)).map_err(to_execution)?;
    writer.write(&batch).map_err(to_execution)?;
    writer.close().map_err(to_execution)?;
    let dir = path.parent().expect("bucket files live in a directory");
    loupe_store::fsutil::create_dir_durable(dir)?;
    loupe_store::fsutil::write_atomic(path, &bytes)?;
    Ok(())
}

/// Reads a bucket file; `None` when there is none.
pub fn load(path: &std::path::Path) -> Result<Option<Buckets>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(to_execution(format!("{}: {e}", path.display()))),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(to_execution)?;
    if builder.schema().fields() != schema().fields() {
        return Err(to_execution(format!(
            "{}: not a bucket file of this version",
            path.display()
        )));
    }
    let meta: BTreeMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
        .collect();
    let get = |k: &str| {
        meta.get(k)
            .ok_or_else(|| to_execution(format!("{}: no {k}", path.display())))
    };
    let definition = get(META_DEFINITION)?.clone();
    let hours: BTreeMap<String, u64> =
        serde_json::from_str(get(META_HOURS)?).map_err(to_execution)?;
    let retired: Vec<[f64; 6]> = serde_json::from_str(get(META_RETIRED)?).map_err(to_execution)?;
    let mut b = Buckets {
        definition,
        minutes: vec![BTreeMap::new(); retired.len()],
        hours: hours
            .into_iter()
            .filter_map(|(h, f)| Some((h.parse().ok()?, f)))
            .collect(),
        retired: retired
            .iter()
            .map(|r| Tally {
                good: r[0],
                good_sq: r[1],
                good_rows: r[2] as u64,
                total: r[3],
                total_sq: r[4],
                total_rows: r[5] as u64,
            })
            .collect(),
    };
    for batch in builder.build().map_err(to_execution)? {
        let batch = batch.map_err(to_execution)?;
        let c = |i: usize| batch.column(i);
        let minute = ints(c(0))?;
        let objective = cast(c(1), &DataType::Int64).map_err(to_execution)?;
        let objective = objective
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("cast to Int64");
        let (good, good_sq, good_rows) = (floats(c(2))?, floats(c(3))?, ints(c(4))?);
        let (total, total_sq, total_rows) = (floats(c(5))?, floats(c(6))?, ints(c(7))?);
        for r in 0..batch.num_rows() {
            let Some(m) = b.minutes.get_mut(objective.value(r) as usize) else {
                return Err(to_execution(format!(
                    "{}: objective {} out of range",
                    path.display(),
                    objective.value(r)
                )));
            };
            m.insert(
                minute.value(r),
                Tally {
                    good: good.value(r),
                    good_sq: good_sq.value(r),
                    good_rows: good_rows.value(r) as u64,
                    total: total.value(r),
                    total_sq: total_sq.value(r),
                    total_rows: total_rows.value(r) as u64,
                },
            );
        }
    }
    Ok(Some(b))
}
