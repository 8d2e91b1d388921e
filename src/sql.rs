//! `loupe sql`: one query against a data directory, printed.

use std::io::Write;

use anyhow::Context;
use loupe_query::QueryEngine;
use loupe_store::Store;

use crate::cli::OutputFormat;

pub(crate) async fn run(
    data_dir: &std::path::Path,
    query: &str,
    format: OutputFormat,
    max_rows: usize,
) -> anyhow::Result<()> {
    if !data_dir.is_dir() {
        anyhow::bail!(
            "data directory {} does not exist (use --data-dir)",
            data_dir.display()
        );
    }
    let engine = QueryEngine::new(Store::new(data_dir));
    let out = engine.sql(query, max_rows).await?;
    let mut stdout = std::io::stdout().lock();
    match format {
        OutputFormat::Table => {
            writeln!(stdout, "{}", loupe_query::table_text(&out.batches)?)?;
            let more = if out.truncated { " (truncated)" } else { "" };
            eprintln!(
                "{} rows{more} in {:.1} ms",
                out.row_count(),
                out.elapsed.as_secs_f64() * 1e3
            );
        }
        OutputFormat::Json => {
            stdout.write_all(&loupe_query::rows_json(&out.batches)?)?;
            writeln!(stdout)?;
        }
        OutputFormat::Csv => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut stdout);
            for b in &out.batches {
                w.write(b).context("writing CSV")?;
            }
        }
    }
    Ok(())
}
