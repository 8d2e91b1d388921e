//! Parquet writer settings and the file writer.
//!
//! Every file: zstd (level 3: most of zstd's ratio at a fraction of the CPU of higher levels),
//! dictionary encoding on (high-cardinality strings fall back to plain by themselves when the
//! dictionary outgrows its page), statistics per page, which also writes the column and offset
//! indexes (the "page index") that let readers skip pages, rows sorted by `timestamp` and
//! declared as such in the metadata, row groups of at most [`ROW_GROUP_ROWS`] rows so
//! time-range queries prune at a useful grain.

use std::fs::File;
use std::path::Path;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{IoContext, Result};

/// Most rows in one row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// zstd level for every column.
pub const ZSTD_LEVEL: i32 = 3;

/// The writer properties for a batch whose column `timestamp_idx` holds the sort key.
pub fn writer_properties(timestamp_idx: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).expect("valid zstd level"),
        ))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_sorting_columns(Some(vec![SortingColumn {
            column_idx: timestamp_idx as i32,
            descending: false,
            nulls_first: false,
        }]))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "loupe.writer".to_owned(),
            format!("loupe-store {}", env!("CARGO_PKG_VERSION")),
        )]))
        .build()
}

/// Writes `batch` (built by [`crate::events_to_batch`], so sorted with `timestamp` first) to a
/// new file at `path` and fsyncs it. Returns the file's size. Publishing it (rename into a
/// partition) is the caller's step, so a reader never sees a partial file.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<u64> {
    let file = File::create_new(path).ctx("create", path)?;
    let props = writer_properties(0);
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(batch)?;
    let file = writer.into_inner()?;
    file.sync_all().ctx("fsync", path)?;
    Ok(file.metadata().ctx("stat", path)?.len())
}
