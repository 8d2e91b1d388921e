//! Parquet writer settings and the file writer.
//!
//! Every file: dictionary encoding on (high-cardinality strings fall back to plain by
//! themselves when the dictionary outgrows its page), statistics per page, which also writes
//! the column and offset indexes (the "page index") that let readers skip pages, rows sorted
//! by `timestamp` and declared as such in the metadata, row groups of at most
//! [`ROW_GROUP_ROWS`] rows so time-range queries prune at a useful grain.
//!
//! Compression: a flushed file is zstd throughout (level 3: most of zstd's ratio at a fraction
//! of the CPU of higher levels). A merged file, which is what queries read, is zstd only in the
//! columns where its inputs show zstd saves at least [`ZSTD_MIN_SAVING`] bytes a row, and
//! uncompressed in the others ([`merged_writer_properties`]). Why: most columns of a wide
//! event are dictionary keys, already a byte or two a row, which zstd shrinks by 0-30% while
//! every read pays for a decompression context per column chunk and for the decompression
//! itself; the bytes zstd saves are in a few columns (ids, timestamps, free text, fine-grained
//! numbers). On the standard workload's 10M events (`benches/query_speed`) this keeps 14 of 78
//! columns compressed, for files 8% bigger than with zstd throughout and an outliers question
//! 10-15% faster (half a byte a row was 3.5% slower for 3% less disk; none at all 5% faster
//! for 65% more: README, Speed); ClickHouse makes the same kind of trade with its per-column
//! codecs (LZ4 by default, zstd where asked).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, ParquetMetaData, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use crate::error::{IoContext, Result};

/// Most rows in one row group.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// zstd level for every column compressed.
pub const ZSTD_LEVEL: i32 = 3;

/// Bytes a row that zstd must save in a column for a merged file to keep it compressed.
pub(crate) const ZSTD_MIN_SAVING: f64 = 1.0;

/// The writer properties for a batch whose column `timestamp_idx` holds the sort key: every
/// column zstd.
pub fn writer_properties(timestamp_idx: usize) -> WriterProperties {
    builder(timestamp_idx).build()
}

/// [`writer_properties`] for a file merged from files whose metadata is `inputs`: a column is
/// zstd where the inputs that have it compressed show that zstd saves [`ZSTD_MIN_SAVING`]
/// bytes a row or more, and where no input has it compressed (nothing to tell by: a new
/// column, or inputs merged before); uncompressed elsewhere.
pub(crate) fn merged_writer_properties(
    timestamp_idx: usize,
    inputs: &[&ParquetMetaData],
) -> WriterProperties {
    // Per column, the bytes zstd saved and the rows it saved them over.
    let mut saved: HashMap<&ColumnPath, (i64, i64)> = HashMap::new();
    for rg in inputs.iter().flat_map(|m| m.row_groups()) {
        for chunk in rg.columns() {
            if chunk.compression() != Compression::UNCOMPRESSED {
                let (bytes, rows) = saved.entry(chunk.column_path()).or_default();
                *bytes += chunk.uncompressed_size() - chunk.compressed_size();
                *rows += rg.num_rows();
            }
        }
    }
    let mut props = builder(timestamp_idx);
    for (path, (bytes, rows)) in saved {
        if (bytes as f64) < ZSTD_MIN_SAVING * rows as f64 {
            props = props.set_column_compression(path.clone(), Compression::UNCOMPRESSED);
        }
    }
    props.build()
}

fn builder(timestamp_idx: usize) -> WriterPropertiesBuilder {
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
