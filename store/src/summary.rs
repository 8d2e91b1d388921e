//! A Parquet file's summary, written beside it (`<name>.summary`, see
//! [`crate::layout::summary_path`]): what its rows hold, for readers that would otherwise count
//! every row (the query engine's outliers). The store does not know what a summary holds: the
//! writer is given a [`Summarize`] (the binary gives the query engine's) and writes the bytes it
//! makes. A file without a summary is always valid (readers count its rows), so a summary that
//! cannot be made is left out, never an error of the write.
//!
//! Publication: the summary is written and fsynced before its file is published, and published
//! (renamed into the partition) before it, so a reader that sees a file sees its summary if it
//! has one. Compaction writes the merged file's summary from the merged rows, and leaves the
//! inputs' summaries behind with the inputs. A file published without one (flushed, or written
//! before summaries) can be given one later ([`summarize_file`]): the summary appears whole
//! beside it, which a reader that already listed the file may or may not see; either way it
//! counts the file's rows once.

use std::fmt::Debug;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{IoContext, Result};
use crate::layout::summary_path;

/// Makes summaries: one [`SummaryWriter`] per file, fed the file's rows as they are written.
pub trait Summarize: Send + Sync + Debug {
    fn start(&self, schema: &SchemaRef) -> Box<dyn SummaryWriter>;
}

/// One file's summary in the making.
pub trait SummaryWriter: Send {
    /// Takes a batch of the file's rows (of the schema the writer was started with).
    fn add(&mut self, batch: &RecordBatch);
    /// The summary's bytes, or `None` when the rows have none (the reason is the
    /// summarizer's to log).
    fn finish(self: Box<Self>) -> Option<Vec<u8>>;
}

/// The summarizer a writer uses, if any: cheap to clone, part of a writer's configuration
/// (equal when both have none or share one).
#[derive(Clone, Default)]
pub struct Summarizer(pub Option<Arc<dyn Summarize>>);

impl Summarizer {
    pub fn get(&self) -> Option<&dyn Summarize> {
        self.0.as_deref()
    }
}

impl Debug for Summarizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(s) => write!(f, "Summarizer({s:?})"),
            None => write!(f, "Summarizer(none)"),
        }
    }
}

impl PartialEq for Summarizer {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Writes `bytes` as the summary of the Parquet file at `parquet` (which need not exist yet)
/// and fsyncs it; returns its path.
pub fn write_summary(parquet: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let path = summary_path(parquet);
    write_summary_at(&path, bytes)?;
    Ok(path)
}

/// The summary of `batch` (one file's rows) as `summarize` makes it, written beside
/// `parquet`: its path, or `None` when there is no summarizer or no summary.
pub fn summarize_batch(
    summarize: Option<&dyn Summarize>,
    parquet: &Path,
    batch: &RecordBatch,
) -> Result<Option<PathBuf>> {
    let Some(summarize) = summarize else {
        return Ok(None);
    };
    let mut writer = summarize.start(&batch.schema());
    writer.add(batch);
    match writer.finish() {
        Some(bytes) => write_summary(parquet, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Rows read at a time when a published file is summarized.
const READ_BATCH_ROWS: usize = 65_536;

/// Writes the summary of the published Parquet file `parquet`, read back whole, as `summarize`
/// makes it: written and fsynced in `tmp_dir` (the dataset's, on the same filesystem), then
/// renamed beside the file, so a reader sees no summary or all of it (and a crash leaves the
/// temporary file where opening the dataset clears it). `None` when the rows have none. The
/// caller keeps compaction out of the partition meanwhile: a summary renamed into a partition
/// whose new set is being staged would be left with the old set.
pub fn summarize_file(
    summarize: &dyn Summarize,
    parquet: &Path,
    tmp_dir: &Path,
) -> Result<Option<PathBuf>> {
    let file = File::open(parquet).ctx("open", parquet)?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
        .with_batch_size(READ_BATCH_ROWS)
        .build()?;
    let mut writer = summarize.start(&arrow::record_batch::RecordBatchReader::schema(&reader));
    for batch in reader {
        writer.add(&batch?);
    }
    let Some(bytes) = writer.finish() else {
        return Ok(None);
    };
    let target = summary_path(parquet);
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let tmp = tmp_dir.join(format!("summary-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_summary_at(&tmp, &bytes)?;
    std::fs::rename(&tmp, &target).ctx("rename", &tmp)?;
    crate::fsutil::fsync_dir(parquet.parent().unwrap_or(Path::new(".")))?;
    Ok(Some(target))
}

/// Writes `bytes` to a new file at `path` and fsyncs it.
fn write_summary_at(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create_new(path).ctx("create", path)?;
    file.write_all(bytes).ctx("write", path)?;
    file.sync_all().ctx("fsync", path)
}
