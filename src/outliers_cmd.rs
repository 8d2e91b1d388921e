//! `loupe outliers`: the outliers question against a data directory, printed.

use std::io::Write;

use loupe_query::QueryEngine;
use loupe_query::outliers::request::OutliersRequest;
use loupe_query::outliers::text::{TextLimits, report_text};
use loupe_store::Store;

use crate::cli::{OutliersArgs, OutliersFormat};

pub(crate) async fn run(data_dir: &std::path::Path, args: &OutliersArgs) -> anyhow::Result<()> {
    if !data_dir.is_dir() {
        anyhow::bail!(
            "data directory {} does not exist (use --data-dir)",
            data_dir.display()
        );
    }
    let engine = QueryEngine::new(Store::new(data_dir));
    let request = OutliersRequest {
        dataset: args.dataset.clone(),
        selection: args.selection.clone(),
        above: args.above.clone(),
        baseline: args.baseline.clone(),
        since: args.since.clone(),
        until: args.until.clone(),
        top: Some(args.top),
    };
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as i64;
    let question = engine.outliers_question(&request, now_us).await?;
    let report = engine.outliers(&question).await?;
    let mut out = std::io::stdout().lock();
    if matches!(args.format, OutliersFormat::Json) {
        writeln!(out, "{:#}", report.to_json())?;
        return Ok(());
    }
    let limits = TextLimits {
        top: args.top,
        ..TextLimits::default()
    };
    write!(out, "{}", report_text(&report, &question.selection, limits))?;
    Ok(())
}
