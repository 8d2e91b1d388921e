//! Compaction: merging a partition's small Parquet files into one file of a target size, and
//! replacing the partition's file set with the merged one in a single atomic step.
//!
//! Readers (DataFusion's listing table, DuckDB, anything that reads a Hive-partitioned
//! directory) *list* a partition and then open what they listed. Deleting the inputs after
//! publishing the merged file would let a listing see both (double rows) or neither (missing
//! rows). So the partition's file set changes in one step, a swap of whole directories:
//!
//! 1. [`merge`] writes the merged file into a container `_tmp/compact-<id>/` and fsyncs it.
//!    Slow, and done without any lock.
//! 2. Under the caller's lock that keeps flushes from publishing into the partition, [`stage`]
//!    lists the partition *as it is now*, checks that every input is still there, and builds
//!    `_tmp/compact-<id>/part/` holding a hard link to every file that is not an input (so a
//!    file flushed while the merge ran is kept) plus the merged file; then fsyncs it.
//! 3. [`Staged::exchange`] swaps `part/` and the partition directory with
//!    `renameat2(RENAME_EXCHANGE)`, one atomic rename, and fsyncs both parents. The partition's
//!    path now names the new set; the old set (inputs, and the first links of the kept files)
//!    is at `_tmp/compact-<id>/part/`.
//! 4. The old set is deleted later, by [`sweep`], once it is older than a grace period, not
//!    right away: a reader that opened the old directory just before the swap may still be
//!    reading its entries, and deleting them under it would let it list the kept files without
//!    the inputs: fewer rows, and no error to retry on.
//!
//! # Crash safety
//! Before the exchange the partition is untouched and the container is garbage; after it the
//! partition holds the new set and the container holds the old one. Either way nothing is in
//! both places a reader looks, nothing is missing, and no commit record is needed: start-up
//! empties `_tmp/` ([`crate::fsutil::clear_dir`]). On ext4 the exchange is one journal
//! transaction, so power loss also leaves one of the two sets.
//!
//! # What readers see
//! A listing shows either the old set or the new one, never a partial file (the merged file is
//! complete and synced before it is linked in). A reader that listed the old set and opens an
//! input after the swap gets "not found": loupe's query engine retries such a query. This holds
//! for a lister that looks names up in the directory it read (`fstatat` on the open directory);
//! one that reads the names and then looks each up *by path*, skipping names that are gone (as
//! object_store's `LocalFileSystem` does), can list the kept files without the inputs during a
//! swap and answer with rows missing and no error: loupe's engine therefore lists with its own
//! store (see `loupe-query`'s engine). Other engines should list the partitions
//! (`date=*/hour=*/*.parquet`), not glob `_tmp/` (with `**`).
//!
//! # Filesystems
//! `RENAME_EXCHANGE` needs Linux 3.15+ and a filesystem that has it (ext4, xfs, btrfs, tmpfs do;
//! NFS and some FUSE filesystems do not). [`probe_exchange`] checks before any work is done, and
//! an exchange that the filesystem refuses leaves the partition as it was.
//!
//! # Merging
//! Files of one partition may have different columns (fields added over time) and, for a field
//! that widened from int to float, different types. The merged file has the union of the
//! inputs' columns, with the catalog's type for each (ints cast to floats), nulls where an
//! input lacked a column, `timestamp` first and the rest by name, like a flushed file. Every
//! input is sorted by `timestamp`; they are merged k-way, opening an input only when the merge
//! reaches its first timestamp, so memory holds one batch per input whose time range overlaps
//! the current one, not the whole partition. The row count is checked against the inputs'.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arrow::array::{Array, ArrayRef, AsArray, new_null_array};
use arrow::compute::{cast, interleave_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use loupe_event::fields;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

use crate::catalog::{Catalog, timestamp_type};
use crate::fsutil;
use crate::layout::{DatasetDir, PARQUET_EXT, PARTITION_COLUMNS, summary_path};
use crate::parquet_file::merged_writer_properties;
use crate::summary::{Summarize, write_summary};

/// Name prefix of a compaction's container directory in `_tmp/`.
pub const CONTAINER_PREFIX: &str = "compact-";
/// The staging directory inside a container; after the exchange, the old partition.
pub const STAGING_DIR: &str = "part";
/// Rows read from an input at a time. Inputs whose time ranges overlap are all open at once,
/// each holding a batch: with `Policy::max_files` inputs of ~60 columns this keeps a merge
/// within about a hundred MB.
const READ_BATCH_ROWS: usize = 1024;
/// Rows per batch handed to the writer.
const WRITE_BATCH_ROWS: usize = 8192;

/// What can go wrong compacting. Each failure leaves the partition as it was, except where a
/// variant says otherwise.
#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Store(#[from] crate::Error),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the filesystem of {path} cannot swap directories atomically \
         (renameat2 RENAME_EXCHANGE: {source}); compaction needs it"
    )]
    ExchangeUnsupported {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An input disappeared between the merge and the swap (another compaction got there
    /// first); the merged file is discarded.
    #[error("{path} was an input of the merge but is no longer in its partition")]
    InputGone { path: PathBuf },
    #[error("{path} holds {entry:?}, which is not a file; compaction leaves the partition alone")]
    UnexpectedEntry { path: PathBuf, entry: OsString },
    #[error("{path} has no `timestamp` column of type {expected}")]
    NoTimestamp { path: PathBuf, expected: DataType },
    #[error("{path}: column {column:?} is {found}, which cannot be read as {expected}")]
    ConflictingTypes {
        path: PathBuf,
        column: String,
        found: DataType,
        expected: DataType,
    },
    /// The merge would not be sorted by `timestamp`: an input is not (loupe writes sorted
    /// files; this one came from elsewhere).
    #[error("{path} is not sorted by timestamp")]
    NotSorted { path: PathBuf },
    #[error("merged file {path} has {actual} rows but its inputs have {expected}")]
    RowCountMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("reading or writing {path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("merging into {path}: {source}")]
    Arrow {
        path: PathBuf,
        source: arrow::error::ArrowError,
    },
    #[error("compaction was cancelled (shutting down)")]
    Cancelled,
}

type Result<T, E = CompactError> = std::result::Result<T, E>;

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CompactError {
    let path = path.to_path_buf();
    move |source| CompactError::Io { op, path, source }
}

fn pq(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> CompactError {
    let path = path.to_path_buf();
    move |source| CompactError::Parquet { path, source }
}

fn ar(path: &Path) -> impl FnOnce(arrow::error::ArrowError) -> CompactError {
    let path = path.to_path_buf();
    move |source| CompactError::Arrow { path, source }
}

/// Which files are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Merged files grow toward this size; files of half of it or more are never inputs.
    pub target_file_bytes: u64,
    /// A merge needs at least this many inputs.
    pub min_files: usize,
    /// A merge takes at most this many inputs: they may all be open at once (when their time
    /// ranges overlap, as they do when late events arrive), so this bounds a merge's memory.
    /// More small files are merged over several rounds.
    pub max_files: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            target_file_bytes: 128 << 20,
            min_files: 4,
            max_files: 32,
        }
    }
}

/// A Parquet file of a partition and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFile {
    pub path: PathBuf,
    pub bytes: u64,
}

/// The hour partitions of a dataset (`date=*/hour=*`), sorted.
pub fn partition_dirs(dataset: &DatasetDir) -> Result<Vec<PathBuf>> {
    let mut level = vec![dataset.path().to_path_buf()];
    for column in PARTITION_COLUMNS {
        let prefix = format!("{column}=");
        let mut next = Vec::new();
        for dir in &level {
            for (name, is_dir) in entries(dir)? {
                if is_dir && name.to_str().is_some_and(|n| n.starts_with(&prefix)) {
                    next.push(dir.join(name));
                }
            }
        }
        level = next;
    }
    level.sort();
    Ok(level)
}

/// `(name, is_dir)` of each entry of `dir`; a missing `dir` has none.
fn entries(dir: &Path) -> Result<Vec<(OsString, bool)>> {
    let list = match fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in list {
        let entry = entry.map_err(io("list", dir))?;
        let is_dir = entry
            .file_type()
            .map_err(io("stat", &entry.path()))?
            .is_dir();
        out.push((entry.file_name(), is_dir));
    }
    Ok(out)
}

/// The Parquet files directly in partition directory `dir`, sorted by path (which is the
/// order they were written in: names start with the writer's clock).
pub fn partition_files(dir: &Path) -> Result<Vec<PartitionFile>> {
    let mut out = Vec::new();
    for (name, is_dir) in entries(dir)? {
        let path = dir.join(&name);
        let visible = !name.to_string_lossy().starts_with(['.', '_']);
        if is_dir || !visible || path.extension().is_none_or(|e| e != PARQUET_EXT) {
            continue;
        }
        match fs::metadata(&path) {
            Ok(m) => out.push(PartitionFile {
                path,
                bytes: m.len(),
            }),
            // Merged away by a compaction since the listing: not a candidate any more.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("stat", &path)(e)),
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Groups of files to merge: the files smaller than half the target, in write order, cut into
/// runs whose sizes add up to at most the target and of at most `max_files` files; runs shorter
/// than `min_files` are left alone (a run cut short by the target is made of files big enough
/// not to matter).
pub fn plan(files: &[PartitionFile], policy: &Policy) -> Vec<Vec<PartitionFile>> {
    let mut small: Vec<&PartitionFile> = files
        .iter()
        .filter(|f| f.bytes < policy.target_file_bytes / 2)
        .collect();
    small.sort_by(|a, b| a.path.cmp(&b.path));
    let mut groups = Vec::new();
    let mut run: Vec<PartitionFile> = Vec::new();
    let mut run_bytes = 0;
    for f in small {
        let full =
            run.len() >= policy.max_files.max(2) || run_bytes + f.bytes > policy.target_file_bytes;
        if !run.is_empty() && full {
            let done = std::mem::take(&mut run);
            if done.len() >= policy.min_files.max(2) {
                groups.push(done);
            }
            run_bytes = 0;
        }
        run_bytes += f.bytes;
        run.push(f.clone());
    }
    if run.len() >= policy.min_files.max(2) {
        groups.push(run);
    }
    groups
}

/// A merged file written and synced in its container, not yet in the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    pub path: PathBuf,
    /// The merged file's summary, written beside it (see [`crate::summary`]), if it has one.
    pub summary: Option<PathBuf>,
    pub inputs: Vec<PathBuf>,
    pub rows: u64,
    pub bytes: u64,
    pub input_bytes: u64,
}

/// One input of a merge: its footer, read up front; its reader, opened when needed.
struct Source {
    path: PathBuf,
    meta: ArrowReaderMetadata,
    rows: u64,
    /// The smallest timestamp in the file, from its statistics (`i64::MIN` without them, which
    /// opens the file at the start of the merge).
    min_ts: i64,
}

/// The current batch of an input being merged.
struct Cursor {
    reader: ParquetRecordBatchReader,
    batch: RecordBatch,
    row: usize,
    /// Index of `batch` in the merge's list of batches that the next output draws from.
    slot: usize,
}

/// Merges `inputs` (all of one partition) into a new file at `out`, sorted by `timestamp`,
/// and fsyncs it. `catalog` gives each column's type; it must be loaded after the inputs were
/// listed, so that it knows every column they have (the catalog is saved before a file that
/// uses a change is published). Stops with [`CompactError::Cancelled`] soon after `cancel` is
/// set. With `summarize`, the merged rows' summary is written beside `out`. On any error `out`
/// (and its summary) is removed.
pub fn merge(
    inputs: &[PathBuf],
    catalog: &Catalog,
    out: &Path,
    cancel: &AtomicBool,
    summarize: Option<&dyn Summarize>,
) -> Result<Merged> {
    let result = merge_into(inputs, catalog, out, cancel, summarize);
    if result.is_err() {
        let _ = fs::remove_file(out);
        let _ = fs::remove_file(summary_path(out));
    }
    result
}

fn merge_into(
    inputs: &[PathBuf],
    catalog: &Catalog,
    out: &Path,
    cancel: &AtomicBool,
    summarize: Option<&dyn Summarize>,
) -> Result<Merged> {
    let mut sources = Vec::with_capacity(inputs.len());
    let mut input_bytes = 0;
    for path in inputs {
        let file = File::open(path).map_err(io("open", path))?;
        input_bytes += file.metadata().map_err(io("stat", path))?.len();
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(pq(path))?;
        let rows = meta.metadata().file_metadata().num_rows() as u64;
        let min_ts = min_timestamp(&meta).unwrap_or(i64::MIN);
        sources.push(Source {
            path: path.clone(),
            meta,
            rows,
            min_ts,
        });
    }
    let expected: u64 = sources.iter().map(|s| s.rows).sum();
    let schema = unified_schema(&sources, catalog)?;

    let file = File::create_new(out).map_err(io("create", out))?;
    let inputs_meta: Vec<&ParquetMetaData> =
        sources.iter().map(|s| s.meta.metadata().as_ref()).collect();
    let props = merged_writer_properties(0, &inputs_meta);
    let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(pq(out))?;
    let mut written = 0u64;
    let mut summary = summarize.map(|s| s.start(&schema));
    let mut emit = |batches: &[RecordBatch], picks: &mut Vec<(usize, usize)>| -> Result<()> {
        if picks.is_empty() {
            return Ok(());
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(CompactError::Cancelled);
        }
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        let batch = interleave_record_batch(&refs, picks).map_err(ar(out))?;
        writer.write(&batch).map_err(pq(out))?;
        if let Some(s) = &mut summary {
            s.add(&batch);
        }
        written += batch.num_rows() as u64;
        picks.clear();
        Ok(())
    };

    // Inputs in the order their first rows are needed.
    let mut pending: Vec<usize> = (0..sources.len()).collect();
    pending.sort_by_key(|&i| (Reverse(sources[i].min_ts), Reverse(i)));
    let mut cursors: Vec<Option<Cursor>> = (0..sources.len()).map(|_| None).collect();
    // The next row of each open input: (timestamp, input). Ties go to the earlier input, so
    // rows with equal timestamps keep the order they were written in.
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut batches: Vec<RecordBatch> = Vec::new();
    let mut picks: Vec<(usize, usize)> = Vec::with_capacity(WRITE_BATCH_ROWS);
    let mut last_ts = i64::MIN;
    loop {
        // Open every input that may hold the next row.
        while let Some(&i) = pending.last() {
            let due = heap
                .peek()
                .is_none_or(|Reverse((ts, _))| sources[i].min_ts <= *ts);
            if !due {
                break;
            }
            pending.pop();
            let src = &sources[i];
            let file = File::open(&src.path).map_err(io("open", &src.path))?;
            let mut reader =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, src.meta.clone())
                    .with_batch_size(READ_BATCH_ROWS)
                    .build()
                    .map_err(pq(&src.path))?;
            if let Some(batch) = next_batch(&mut reader, &schema, &src.path)? {
                heap.push(Reverse((timestamp_at(&batch, 0), i)));
                batches.push(batch.clone());
                cursors[i] = Some(Cursor {
                    reader,
                    batch,
                    row: 0,
                    slot: batches.len() - 1,
                });
            }
        }
        let Some(Reverse((ts, i))) = heap.pop() else {
            break;
        };
        if ts < last_ts {
            return Err(CompactError::NotSorted {
                path: sources[i].path.clone(),
            });
        }
        last_ts = ts;
        let cursor = cursors[i].as_mut().expect("an input in the heap is open");
        picks.push((cursor.slot, cursor.row));
        cursor.row += 1;
        if cursor.row == cursor.batch.num_rows() {
            match next_batch(&mut cursor.reader, &schema, &sources[i].path)? {
                Some(batch) => {
                    batches.push(batch.clone());
                    cursor.batch = batch;
                    cursor.row = 0;
                    cursor.slot = batches.len() - 1;
                }
                None => cursors[i] = None,
            }
        }
        if let Some(c) = &cursors[i] {
            heap.push(Reverse((timestamp_at(&c.batch, c.row), i)));
        }
        if picks.len() >= WRITE_BATCH_ROWS {
            emit(&batches, &mut picks)?;
            // Keep only the batches that open inputs still draw from.
            batches.clear();
            for c in cursors.iter_mut().flatten() {
                batches.push(c.batch.clone());
                c.slot = batches.len() - 1;
            }
        }
    }
    emit(&batches, &mut picks)?;
    if written != expected {
        return Err(CompactError::RowCountMismatch {
            path: out.to_path_buf(),
            expected,
            actual: written,
        });
    }
    let meta = writer.finish().map_err(pq(out))?;
    writer.inner().sync_all().map_err(io("fsync", out))?;
    let in_footer = meta.file_metadata().num_rows() as u64;
    if in_footer != expected {
        return Err(CompactError::RowCountMismatch {
            path: out.to_path_buf(),
            expected,
            actual: in_footer,
        });
    }
    let bytes = fs::metadata(out).map_err(io("stat", out))?.len();
    let summary = match summary.and_then(|s| s.finish()) {
        Some(made) => Some(write_summary(out, &made)?),
        None => None,
    };
    Ok(Merged {
        path: out.to_path_buf(),
        summary,
        inputs: inputs.to_vec(),
        rows: expected,
        bytes,
        input_bytes,
    })
}

/// The reader's next non-empty batch, conformed to the merged schema.
fn next_batch(
    reader: &mut ParquetRecordBatchReader,
    schema: &SchemaRef,
    path: &Path,
) -> Result<Option<RecordBatch>> {
    for batch in reader {
        let batch = batch.map_err(ar(path))?;
        if batch.num_rows() > 0 {
            return conform(&batch, schema, path).map(Some);
        }
    }
    Ok(None)
}

/// `batch` with the merged schema's columns: cast where the type widened, null where absent.
fn conform(batch: &RecordBatch, schema: &SchemaRef, path: &Path) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => Ok(c.clone()),
            Some(c) => cast(c, field.data_type()).map_err(ar(path)),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(ar(path))
}

/// The timestamp of row `row`; `timestamp` is column 0 of a conformed batch.
fn timestamp_at(batch: &RecordBatch, row: usize) -> i64 {
    batch
        .column(0)
        .as_primitive::<TimestampMicrosecondType>()
        .value(row)
}

/// The smallest `timestamp` in a file, if every row group has statistics for it.
fn min_timestamp(meta: &ArrowReaderMetadata) -> Option<i64> {
    let mut min: Option<i64> = None;
    for rg in meta.metadata().row_groups() {
        let col = rg
            .columns()
            .iter()
            .find(|c| c.column_path().string() == fields::TIMESTAMP)?;
        let Some(Statistics::Int64(s)) = col.statistics() else {
            return None;
        };
        let v = *s.min_opt()?;
        min = Some(min.map_or(v, |m| m.min(v)));
    }
    min
}

/// The union of the inputs' columns: `timestamp` first, then by name, each with the catalog's
/// type (or, for a column the catalog does not know, the inputs' common type, ints widening to
/// floats). Every input's column must be readable as that type.
fn unified_schema(sources: &[Source], catalog: &Catalog) -> Result<SchemaRef> {
    let mut types: BTreeMap<String, DataType> = BTreeMap::new();
    for src in sources {
        let schema = src.meta.schema();
        match schema.field_with_name(fields::TIMESTAMP) {
            Ok(f) if f.data_type() == &timestamp_type() => {}
            _ => {
                return Err(CompactError::NoTimestamp {
                    path: src.path.clone(),
                    expected: timestamp_type(),
                });
            }
        }
        for field in schema.fields() {
            if field.name() == fields::TIMESTAMP {
                continue;
            }
            let found = field.data_type();
            let want = match catalog.get(field.name()) {
                Some(info) => info.ty.arrow_type(),
                None => match types.get(field.name()) {
                    Some(t) if t == found || !widens(found, t) => t.clone(),
                    _ => found.clone(),
                },
            };
            types.insert(field.name().clone(), want);
        }
    }
    // Check every input against the final types (a later input may have widened a column).
    for src in sources {
        for field in src.meta.schema().fields() {
            let Some(want) = types.get(field.name()) else {
                continue;
            };
            let found = field.data_type();
            if found != want && !widens(found, want) {
                return Err(CompactError::ConflictingTypes {
                    path: src.path.clone(),
                    column: field.name().clone(),
                    found: found.clone(),
                    expected: want.clone(),
                });
            }
        }
    }
    let mut out = vec![Field::new(fields::TIMESTAMP, timestamp_type(), false)];
    out.extend(
        types
            .into_iter()
            .map(|(name, ty)| Field::new(name, ty, true)),
    );
    Ok(Arc::new(Schema::new(out)))
}

/// Whether a column of type `from` reads as `to` without loss of meaning: the one type change
/// the catalog makes (int to float; see the type-conflict policy in [`crate::catalog`]).
fn widens(from: &DataType, to: &DataType) -> bool {
    matches!((from, to), (DataType::Int64, DataType::Float64))
}

/// Checks that this filesystem can swap two directories atomically, with two empty
/// directories in `tmp_dir` (a dataset's `_tmp/`, on the same filesystem as its partitions).
pub fn probe_exchange(tmp_dir: &Path) -> Result<()> {
    let base = format!(".probe-exchange-{}", std::process::id());
    let (a, b) = (
        tmp_dir.join(format!("{base}-a")),
        tmp_dir.join(format!("{base}-b")),
    );
    for d in [&a, &b] {
        match fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io("create directory", d)(e)),
        }
    }
    let result = exchange_dirs(&a, &b);
    let _ = fs::remove_dir(&a);
    let _ = fs::remove_dir(&b);
    result
}

/// `renameat2(a, b, RENAME_EXCHANGE)`.
fn exchange_dirs(a: &Path, b: &Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(|errno| {
        let source = std::io::Error::from(errno);
        // EINVAL: the filesystem does not implement the flag; ENOSYS: the kernel lacks
        // renameat2; EOPNOTSUPP: some FUSE and network filesystems.
        if errno == rustix::io::Errno::INVAL
            || errno == rustix::io::Errno::NOSYS
            || errno == rustix::io::Errno::OPNOTSUPP
        {
            CompactError::ExchangeUnsupported {
                path: b.to_path_buf(),
                source,
            }
        } else {
            CompactError::Io {
                op: "exchange (renameat2 RENAME_EXCHANGE) with",
                path: b.to_path_buf(),
                source,
            }
        }
    })
}

/// A staging directory holding a partition's next file set, ready to be swapped in.
#[derive(Debug)]
#[must_use = "a staged set does nothing until it is exchanged"]
pub struct Staged {
    partition: PathBuf,
    staging: PathBuf,
    container: PathBuf,
    kept: usize,
}

/// A completed swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Swapped {
    /// Files of the partition that were not inputs and are in the new set too.
    pub kept: usize,
    /// The container now holding the old set, for [`sweep`] to delete after the grace period.
    pub container: PathBuf,
}

/// Builds `<container>/part/`: a hard link to every entry of `partition` as it is *now* that
/// is not one of `merged.inputs`, and the merged file (moved from wherever it was written, on
/// the same filesystem). Fails with [`CompactError::InputGone`] if an input is missing, and
/// with [`CompactError::UnexpectedEntry`] if the partition holds a directory. The caller must
/// hold the lock that keeps flushes out of the partition from here until the exchange.
pub fn stage(partition: &Path, merged: &Merged, container: &Path) -> Result<Staged> {
    let staging = container.join(STAGING_DIR);
    fs::create_dir(&staging).map_err(io("create directory", &staging))?;
    let mut inputs: HashSet<OsString> = HashSet::new();
    // The inputs' summaries go with them (a summary without its file is never read).
    let mut summaries: HashSet<OsString> = HashSet::new();
    for input in &merged.inputs {
        if input.parent() != Some(partition) {
            return Err(CompactError::InputGone {
                path: input.clone(),
            });
        }
        inputs.insert(input.file_name().unwrap_or_default().to_owned());
        summaries.insert(
            summary_path(input)
                .file_name()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let mut found = 0;
    let mut kept = 0;
    for (name, is_dir) in entries(partition)? {
        if inputs.contains(&name) {
            found += 1;
            continue;
        }
        if summaries.contains(&name) {
            continue;
        }
        if is_dir {
            return Err(CompactError::UnexpectedEntry {
                path: partition.to_path_buf(),
                entry: name,
            });
        }
        let (from, to) = (partition.join(&name), staging.join(&name));
        fs::hard_link(&from, &to).map_err(io("hard-link", &from))?;
        kept += 1;
    }
    if found != inputs.len() {
        let gone = merged
            .inputs
            .iter()
            .find(|p| !p.exists())
            .unwrap_or(&merged.inputs[0]);
        return Err(CompactError::InputGone { path: gone.clone() });
    }
    // The summary first: a set with the merged file has its summary.
    if let Some(summary) = &merged.summary {
        let target = staging.join(summary.file_name().unwrap_or_default());
        fs::rename(summary, &target).map_err(io("rename", summary))?;
    }
    let name = merged.path.file_name().unwrap_or_default();
    let target = staging.join(name);
    fs::rename(&merged.path, &target).map_err(io("rename", &merged.path))?;
    fsutil::fsync_dir(&staging)?;
    fsutil::fsync_dir(container)?;
    Ok(Staged {
        partition: partition.to_path_buf(),
        staging,
        container: container.to_path_buf(),
        kept,
    })
}

impl Staged {
    /// Swaps the staged set into the partition in one atomic rename and makes the swap
    /// durable. From here the partition holds the new set and the container the old one.
    pub fn exchange(self) -> Result<Swapped> {
        exchange_dirs(&self.staging, &self.partition)?;
        if let Some(parent) = self.partition.parent() {
            fsutil::fsync_dir(parent)?;
        }
        fsutil::fsync_dir(&self.container)?;
        Ok(Swapped {
            kept: self.kept,
            container: self.container,
        })
    }
}

/// Deletes compaction containers in `tmp_dir` last modified at least `grace` ago: old file
/// sets that readers have had time to finish listing, and leftovers of merges that failed.
/// Returns how many it deleted. Only call it while no compaction of this dataset runs (a
/// container being built is not old, but a merge may run for longer than `grace`).
pub fn sweep(tmp_dir: &Path, grace: Duration) -> Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    for (name, is_dir) in entries(tmp_dir)? {
        if !is_dir || !name.to_string_lossy().starts_with(CONTAINER_PREFIX) {
            continue;
        }
        let path = tmp_dir.join(&name);
        // The exchange updates the container's mtime (its entry `part` changes), so this is
        // the time since the swap. A clock that went backwards keeps it for later.
        let modified = fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(io("stat", &path))?;
        if now.duration_since(modified).is_ok_and(|age| age >= grace) {
            fs::remove_dir_all(&path).map_err(io("remove directory", &path))?;
            removed += 1;
        }
    }
    if removed > 0 {
        fsutil::fsync_dir(tmp_dir)?;
    }
    Ok(removed)
}

/// What a compaction round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CompactStats {
    /// Merges swapped in (one merged file each).
    pub merges: usize,
    /// Files merged away.
    pub files_in: usize,
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Files given the summary they lacked: files too big to be merged again (written before
    /// summaries), which compaction would otherwise never summarize.
    pub summarized: usize,
}

impl CompactStats {
    pub fn add(&mut self, merged: &Merged) {
        self.merges += 1;
        self.files_in += merged.inputs.len();
        self.rows += merged.rows;
        self.bytes_in += merged.input_bytes;
        self.bytes_out += merged.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DatasetName, Partition, Store, events_to_batch, write_parquet};
    use arrow::array::{Float64Array, Int64Array, StringArray};
    use loupe_event::{Event, Limits, Value};
    use parquet::basic::Compression;

    /// 2026-11-23T04:00:00Z, the start of the test partition's hour.
    const HOUR: i64 = 1_795_406_400_000_000;

    /// A test event: id, timestamp offset in the hour, other fields.
    type Row<'a> = (i64, i64, Vec<(&'a str, Value)>);

    struct Fixture {
        _tmp: tempfile::TempDir,
        dataset: DatasetDir,
        catalog: Catalog,
        partition: PathBuf,
        next_file: usize,
    }

    impl Fixture {
        fn new() -> Fixture {
            let tmp = tempfile::tempdir().unwrap();
            let dataset = Store::new(tmp.path()).dataset(&DatasetName::new("api").unwrap());
            let partition = dataset.partition_dir(&Partition::of(HOUR));
            fsutil::create_dir_durable(&partition).unwrap();
            fsutil::create_dir_durable(&dataset.tmp_dir()).unwrap();
            Fixture {
                _tmp: tmp,
                dataset,
                catalog: Catalog::default(),
                partition,
                next_file: 0,
            }
        }

        /// Publishes one file of `events` (`(id, timestamp offset, extra fields)`) the way a
        /// flush does: catalog first, then the file.
        fn file(&mut self, events: &[Row]) -> PathBuf {
            let valid: Vec<_> = events
                .iter()
                .map(|(id, dt, extra)| {
                    let mut e = Event::new().with("id", *id);
                    for (k, v) in extra {
                        e = e.with(*k, v.clone());
                    }
                    e.validate(&Limits::default(), HOUR + dt).unwrap()
                })
                .collect();
            let batch = events_to_batch(&valid, &mut self.catalog, 0).unwrap();
            self.catalog
                .save_if_changed(&self.dataset.catalog_dir())
                .unwrap();
            self.next_file += 1;
            let path = self
                .partition
                .join(format!("{:04}.parquet", self.next_file));
            write_parquet(&path, &batch).unwrap();
            path
        }

        fn container(&self, n: usize) -> PathBuf {
            let c = self
                .dataset
                .tmp_dir()
                .join(format!("{CONTAINER_PREFIX}{n}"));
            fs::create_dir(&c).unwrap();
            c
        }

        fn files(&self) -> Vec<PathBuf> {
            partition_files(&self.partition)
                .unwrap()
                .into_iter()
                .map(|f| f.path)
                .collect()
        }

        fn merge_all(&self, container: &Path) -> Merged {
            let catalog = Catalog::load(&self.dataset.catalog_dir()).unwrap();
            let out = container.join("merged.parquet");
            merge(&self.files(), &catalog, &out, &AtomicBool::new(false), None).unwrap()
        }
    }

    fn read(path: &Path) -> RecordBatch {
        let file = File::open(path).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
        arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
    }

    /// Every id in the partition's files, sorted (duplicates kept).
    fn ids(files: &[PathBuf]) -> Vec<i64> {
        let mut out: Vec<i64> = files
            .iter()
            .flat_map(|f| {
                let b = read(f);
                let ids = b
                    .column_by_name("id")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .clone();
                ids.values().to_vec()
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn many_small_files_become_one_sorted_file_with_the_same_rows() {
        let mut fx = Fixture::new();
        // 12 files whose time ranges interleave: file k holds ids k, k+12, k+24, ...
        for k in 0..12 {
            let events: Vec<_> = (0..50)
                .map(|j| {
                    let id = k + 12 * j;
                    (
                        id,
                        id * 1_000,
                        vec![("route", Value::from(format!("/r{}", id % 5)))],
                    )
                })
                .collect();
            fx.file(&events);
        }
        let before = ids(&fx.files());
        assert_eq!(before.len(), 600);
        let container = fx.container(1);
        let merged = fx.merge_all(&container);
        assert_eq!((merged.rows, merged.inputs.len()), (600, 12));
        assert!(merged.input_bytes > merged.bytes, "{merged:?}");
        assert!(fx.files().len() == 12, "nothing published yet");

        let swapped = stage(&fx.partition, &merged, &container)
            .unwrap()
            .exchange()
            .unwrap();
        assert_eq!(swapped.kept, 0);
        let files = fx.files();
        assert_eq!(files, vec![fx.partition.join("merged.parquet")]);
        assert_eq!(ids(&files), before);
        // Sorted by timestamp (the ids were chosen so that means by id), and declared so.
        let batch = read(&files[0]);
        let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        assert!(ts.values().windows(2).all(|w| w[0] <= w[1]));
        let ids_in_order = batch
            .column_by_name("id")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(ids_in_order.values().to_vec(), (0..600).collect::<Vec<_>>());
        let meta =
            ArrowReaderMetadata::load(&File::open(&files[0]).unwrap(), Default::default()).unwrap();
        assert!(meta.metadata().row_group(0).sorting_columns().is_some());
        // The old set waits in the container for the sweep.
        assert_eq!(
            partition_files(&container.join(STAGING_DIR)).unwrap().len(),
            12
        );
        assert_eq!(
            sweep(&fx.dataset.tmp_dir(), Duration::from_secs(3600)).unwrap(),
            0
        );
        assert_eq!(sweep(&fx.dataset.tmp_dir(), Duration::ZERO).unwrap(), 1);
        assert!(!container.exists());
        assert_eq!(ids(&fx.files()), before);
    }

    #[test]
    fn a_merged_file_compresses_only_the_columns_zstd_shrinks() {
        let mut fx = Fixture::new();
        for k in 0..4 {
            let events: Vec<_> = (0..2000)
                .map(|j| {
                    let id = k * 2000 + j;
                    let message = format!(
                        "request {id:010} failed: upstream connect error or disconnect/reset \
                         before headers"
                    );
                    (
                        id,
                        id * 1_000,
                        vec![
                            ("route", Value::from(format!("/r{}", id % 5))),
                            ("message", Value::from(message)),
                        ],
                    )
                })
                .collect();
            fx.file(&events);
        }
        let codecs = |path: &Path| -> Vec<(String, Compression)> {
            let meta =
                ArrowReaderMetadata::load(&File::open(path).unwrap(), Default::default()).unwrap();
            meta.metadata()
                .row_groups()
                .iter()
                .flat_map(|rg| rg.columns())
                .map(|c| (c.column_path().string(), c.compression()))
                .collect()
        };
        let codec_of = |codecs: &[(String, Compression)], name: &str| {
            let mine: Vec<Compression> = codecs
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, c)| *c)
                .collect();
            assert!(!mine.is_empty(), "{name}");
            assert!(mine.iter().all(|c| *c == mine[0]), "{name}: {mine:?}");
            mine[0]
        };
        // A flushed file is zstd throughout.
        let flushed = codecs(&fx.files()[0]);
        assert!(
            flushed
                .iter()
                .all(|(_, c)| matches!(c, Compression::ZSTD(_)))
        );
        let before = ids(&fx.files());
        let container = fx.container(1);
        fx.merge_all(&container);
        let out = container.join("merged.parquet");
        let merged = codecs(&out);
        // Five routes are a few bits a row: nothing for zstd to save. The messages repeat
        // most of their text: zstd keeps most of it off the disk.
        assert_eq!(codec_of(&merged, "route"), Compression::UNCOMPRESSED);
        assert!(matches!(codec_of(&merged, "message"), Compression::ZSTD(_)));
        assert_eq!(ids(&[out]), before);
    }

    /// A summary of the rows' count and their ids' sum, as text.
    #[derive(Debug)]
    struct IdSums;

    struct IdSum(u64, i64);

    impl Summarize for IdSums {
        fn start(&self, _: &SchemaRef) -> Box<dyn crate::summary::SummaryWriter> {
            Box::new(IdSum(0, 0))
        }
    }

    impl crate::summary::SummaryWriter for IdSum {
        fn add(&mut self, batch: &RecordBatch) {
            let ids = batch.column_by_name("id").unwrap();
            let ids = ids.as_primitive::<arrow::datatypes::Int64Type>();
            self.0 += batch.num_rows() as u64;
            self.1 += ids.values().iter().sum::<i64>();
        }

        fn finish(self: Box<Self>) -> Option<Vec<u8>> {
            Some(format!("{} {}", self.0, self.1).into_bytes())
        }
    }

    #[test]
    fn a_merged_file_has_the_summary_of_its_rows_and_the_inputs_take_theirs_away() {
        let mut fx = Fixture::new();
        for k in 0..3 {
            let path = fx.file(&[(k, k * 1_000, vec![]), (k + 3, (k + 3) * 1_000, vec![])]);
            crate::summary::summarize_batch(Some(&IdSums), &path, &read(&path)).unwrap();
        }
        // A file of the partition that is not merged keeps its summary.
        let inputs: Vec<PathBuf> = fx.files()[..2].to_vec();
        let catalog = Catalog::load(&fx.dataset.catalog_dir()).unwrap();
        let container = fx.container(1);
        let out = container.join("merged.parquet");
        let merged = merge(
            &inputs,
            &catalog,
            &out,
            &AtomicBool::new(false),
            Some(&IdSums),
        )
        .unwrap();
        assert_eq!(merged.summary, Some(summary_path(&out)));
        stage(&fx.partition, &merged, &container)
            .unwrap()
            .exchange()
            .unwrap();
        let mut names: Vec<String> = entries(&fx.partition)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "0003.parquet",
                "0003.summary",
                "merged.parquet",
                "merged.summary"
            ]
        );
        // Inputs 0001 (ids 0, 3) and 0002 (ids 1, 4): four rows, ids summing to 8.
        let merged_summary = fs::read(fx.partition.join("merged.summary")).unwrap();
        assert_eq!(merged_summary, b"4 8");
        // A merge that fails leaves no summary behind.
        let container = fx.container(2);
        let out = container.join("merged.parquet");
        let cancelled = merge(
            &fx.files(),
            &catalog,
            &out,
            &AtomicBool::new(true),
            Some(&IdSums),
        );
        assert!(cancelled.is_err());
        assert!(!summary_path(&out).exists() && !out.exists());
    }

    #[test]
    fn files_with_different_columns_and_widened_types_merge_into_the_catalogs_types() {
        let mut fx = Fixture::new();
        // An int field, a field added later, a widening to float, and a conflict kept in
        // `code.__raw`.
        fx.file(&[(1, 1, vec![("x", Value::Int(7)), ("code", Value::Int(200))])]);
        fx.file(&[(2, 2, vec![("y", Value::from("new field"))])]);
        fx.file(&[(
            3,
            3,
            vec![("x", Value::Float(1.5)), ("code", Value::from("OK"))],
        )]);
        fx.file(&[(4, 4, vec![])]);
        assert_eq!(fx.catalog.get("x").unwrap().ty, crate::FieldType::Float);
        let container = fx.container(1);
        let merged = fx.merge_all(&container);
        let batch = read(&merged.path);
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        // (validation gives every event its `sample_rate`)
        assert_eq!(
            names,
            [
                "timestamp",
                "code",
                "code.__raw",
                "id",
                "sample_rate",
                "x",
                "y"
            ]
        );
        let x = batch
            .column_by_name("x")
            .unwrap()
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(
            x.iter().collect::<Vec<_>>(),
            [Some(7.0), None, Some(1.5), None]
        );
        let code = batch
            .column_by_name("code")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(
            code.iter().collect::<Vec<_>>(),
            [Some(200), None, None, None]
        );
        let raw = batch
            .column_by_name("code.__raw")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            raw.iter().collect::<Vec<_>>(),
            [None, None, Some("\"OK\""), None]
        );
        let y = batch
            .column_by_name("y")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            y.iter().collect::<Vec<_>>(),
            [None, Some("new field"), None, None]
        );
    }

    #[test]
    fn a_file_flushed_between_the_merge_and_the_swap_is_kept() {
        let mut fx = Fixture::new();
        for k in 0..4 {
            fx.file(&[(k, k, vec![])]);
        }
        let container = fx.container(1);
        let merged = fx.merge_all(&container);
        // A flush publishes while the merge ran (before the caller took the flush lock).
        let late = fx.file(&[(99, 99, vec![("late", Value::Bool(true))])]);
        let swapped = stage(&fx.partition, &merged, &container)
            .unwrap()
            .exchange()
            .unwrap();
        assert_eq!(swapped.kept, 1);
        let files = fx.files();
        assert_eq!(files.len(), 2);
        assert!(files.contains(&late));
        assert_eq!(ids(&files), [0, 1, 2, 3, 99]);
        // Its one copy in the partition outlives the old set's deletion.
        sweep(&fx.dataset.tmp_dir(), Duration::ZERO).unwrap();
        assert_eq!(ids(&fx.files()), [0, 1, 2, 3, 99]);
    }

    #[test]
    fn a_crash_before_or_after_the_exchange_leaves_one_whole_set() {
        let mut fx = Fixture::new();
        for k in 0..4 {
            fx.file(&[(k, k, vec![])]);
        }
        let kept = fx.file(&[(50, 50, vec![])]);
        let before = fx.files();
        let inputs: Vec<PathBuf> = before[..4].to_vec();
        let catalog = Catalog::load(&fx.dataset.catalog_dir()).unwrap();
        let merge_inputs = |c: &Path| {
            merge(
                &inputs,
                &catalog,
                &c.join("m.parquet"),
                &AtomicBool::new(false),
                None,
            )
            .unwrap()
        };

        // Crash after staging, before the exchange: the process dies, the staged set with it.
        let container = fx.container(1);
        let staged = stage(&fx.partition, &merge_inputs(&container), &container).unwrap();
        drop(staged);
        assert_eq!(fx.files(), before);
        assert_eq!(ids(&fx.files()), [0, 1, 2, 3, 50]);
        // Start-up empties `_tmp`, staging directories included; the partition is untouched.
        fsutil::clear_dir(&fx.dataset.tmp_dir()).unwrap();
        assert_eq!(fs::read_dir(fx.dataset.tmp_dir()).unwrap().count(), 0);
        assert_eq!(fx.files(), before);
        assert_eq!(ids(&fx.files()), [0, 1, 2, 3, 50]);

        // Crash right after the exchange: the new set is in place, the old one is garbage.
        let container = fx.container(2);
        let _ = stage(&fx.partition, &merge_inputs(&container), &container)
            .unwrap()
            .exchange()
            .unwrap();
        fsutil::clear_dir(&fx.dataset.tmp_dir()).unwrap();
        let after = fx.files();
        assert_eq!(after, vec![kept, fx.partition.join("m.parquet")]);
        assert_eq!(ids(&after), [0, 1, 2, 3, 50]);
    }

    #[test]
    fn an_input_that_is_gone_aborts_the_swap() {
        let mut fx = Fixture::new();
        for k in 0..4 {
            fx.file(&[(k, k, vec![])]);
        }
        let container = fx.container(1);
        let merged = fx.merge_all(&container);
        fs::remove_file(&merged.inputs[2]).unwrap();
        let err = stage(&fx.partition, &merged, &container).unwrap_err();
        assert!(
            matches!(&err, CompactError::InputGone { path } if path == &merged.inputs[2]),
            "{err}"
        );
        assert_eq!(fx.files().len(), 3);
    }

    #[test]
    fn cancelling_stops_the_merge_and_leaves_no_output() {
        let mut fx = Fixture::new();
        for k in 0..4 {
            let events: Vec<_> = (0..WRITE_BATCH_ROWS as i64)
                .map(|j| (k * 100_000 + j, j, vec![]))
                .collect();
            fx.file(&events);
        }
        let out = fx.container(1).join("m.parquet");
        let catalog = Catalog::load(&fx.dataset.catalog_dir()).unwrap();
        let err = merge(&fx.files(), &catalog, &out, &AtomicBool::new(true), None).unwrap_err();
        assert!(matches!(err, CompactError::Cancelled), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn an_unsorted_input_is_refused_not_merged_out_of_order() {
        let mut fx = Fixture::new();
        fx.file(&[(1, 10, vec![]), (2, 20, vec![])]);
        // Written by something other than loupe: rows not in timestamp order.
        let batch = read(&fx.files()[0]);
        let reversed =
            arrow::compute::take_record_batch(&batch, &arrow::array::UInt32Array::from(vec![1, 0]))
                .unwrap();
        let odd = fx.partition.join("zz-unsorted.parquet");
        write_parquet(&odd, &reversed).unwrap();
        let out = fx.container(1).join("m.parquet");
        let catalog = Catalog::load(&fx.dataset.catalog_dir()).unwrap();
        let err = merge(&fx.files(), &catalog, &out, &AtomicBool::new(false), None).unwrap_err();
        assert!(
            matches!(&err, CompactError::NotSorted { path } if path == &odd),
            "{err}"
        );
        assert!(!out.exists());
    }

    #[test]
    fn plan_merges_runs_of_small_files_up_to_the_target() {
        let f = |name: &str, bytes| PartitionFile {
            path: PathBuf::from(name),
            bytes,
        };
        let policy = Policy {
            target_file_bytes: 100,
            min_files: 3,
            max_files: 4,
        };
        // 60 is at least half the target: never an input.
        let files = [
            f("a", 10),
            f("b", 60),
            f("c", 30),
            f("d", 30),
            f("e", 30),
            f("f", 20),
            f("g", 5),
        ];
        let groups = plan(&files, &policy);
        let names: Vec<Vec<&str>> = groups
            .iter()
            .map(|g| g.iter().map(|f| f.path.to_str().unwrap()).collect())
            .collect();
        // "f" would fit the target, but the run has max_files already.
        assert_eq!(names, [vec!["a", "c", "d", "e"]]);
        // fewer than min_files small files: nothing to do
        assert!(plan(&files[..3], &policy).is_empty());
        // a second run once the first is full
        let many: Vec<_> = (0..10).map(|i| f(&format!("{i:02}"), 20)).collect();
        let groups = plan(&many, &policy);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);
        // files so small that only max_files cuts the runs
        let tiny: Vec<_> = (0..10).map(|i| f(&format!("{i:02}"), 1)).collect();
        let groups = plan(&tiny, &policy);
        assert_eq!(groups.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);
    }

    #[test]
    fn this_filesystem_can_exchange_directories() {
        let tmp = tempfile::tempdir().unwrap();
        probe_exchange(tmp.path()).unwrap();
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        fs::write(a.join("x"), b"").unwrap();
        exchange_dirs(&a, &b).unwrap();
        assert!(b.join("x").exists() && !a.join("x").exists());
        // A missing side is an I/O error naming the path, not "unsupported".
        let err = exchange_dirs(&a, &tmp.path().join("missing")).unwrap_err();
        assert!(matches!(err, CompactError::Io { .. }), "{err}");
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn partition_dirs_lists_hours_only() {
        let mut fx = Fixture::new();
        fx.file(&[(1, 1, vec![])]);
        let other = fx
            .dataset
            .partition_dir(&Partition::of(HOUR + 3_600_000_000));
        fs::create_dir_all(&other).unwrap();
        fs::create_dir_all(fx.dataset.tmp_dir().join("compact-1/part")).unwrap();
        assert_eq!(
            partition_dirs(&fx.dataset).unwrap(),
            vec![fx.partition.clone(), other]
        );
    }
}
