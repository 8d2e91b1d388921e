//! Query answers as JSON rows and as a text table.

use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::JsonArray;
use datafusion::arrow::record_batch::RecordBatch;
use serde::Serialize;

use crate::QueryOutput;
use crate::error::{Error, Result};

#[derive(Serialize)]
struct Column<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    ty: String,
}

/// The rows as a JSON array of objects, every column present in every row (null when null).
/// Timestamps are RFC 3339 strings.
pub fn rows_json(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer
        .write_batches(&refs)
        .map_err(|e| Error::Execution(e.to_string()))?;
    writer
        .finish()
        .map_err(|e| Error::Execution(e.to_string()))?;
    let mut out = writer.into_inner();
    if out.is_empty() {
        out.extend_from_slice(b"[]");
    }
    Ok(out)
}

/// The HTTP answer: `{"columns": [{name, type}], "rows": [...], "row_count", "truncated",
/// "elapsed_ms"}`.
pub fn response_json(out: &QueryOutput) -> Result<Vec<u8>> {
    let columns: Vec<Column<'_>> = out
        .schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name(),
            ty: f.data_type().to_string(),
        })
        .collect();
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(b"{\"columns\":");
    serde_json::to_writer(&mut body, &columns).map_err(|e| Error::Execution(e.to_string()))?;
    body.extend_from_slice(b",\"rows\":");
    body.extend_from_slice(&rows_json(&out.batches)?);
    body.extend_from_slice(
        format!(
            ",\"row_count\":{},\"truncated\":{},\"elapsed_ms\":{:.3}}}",
            out.row_count(),
            out.truncated,
            out.elapsed.as_secs_f64() * 1e3
        )
        .as_bytes(),
    );
    Ok(body)
}

/// The media type of an Arrow IPC stream (the Arrow project's registration).
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// The answer as an Arrow IPC stream: the schema, then every batch, types as computed (no
/// conversion to text), for clients such as pyarrow and polars.
pub fn arrow_ipc(out: &QueryOutput) -> Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut w = datafusion::arrow::ipc::writer::StreamWriter::try_new(&mut buf, &out.schema)
        .map_err(|e| Error::Execution(e.to_string()))?;
    for b in &out.batches {
        w.write(b).map_err(|e| Error::Execution(e.to_string()))?;
    }
    w.finish().map_err(|e| Error::Execution(e.to_string()))?;
    drop(w);
    Ok(buf)
}

/// The rows as a text table, for terminals.
pub fn table_text(batches: &[RecordBatch]) -> Result<String> {
    datafusion::arrow::util::pretty::pretty_format_batches(batches)
        .map(|t| t.to_string())
        .map_err(|e| Error::Execution(e.to_string()))
}
