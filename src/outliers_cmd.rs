//! `loupe outliers`: the outliers question against a data directory, printed.

use std::io::Write;

use loupe_query::QueryEngine;
use loupe_query::outliers::request::OutliersRequest;
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
    let json = report.to_json();
    let mut out = std::io::stdout().lock();
    if matches!(args.format, OutliersFormat::Json) {
        writeln!(out, "{json:#}")?;
        return Ok(());
    }
    let sel = &json["selection"];
    let base = &json["baseline"];
    writeln!(
        out,
        "selection: {} ({} events stand for {:.0}); baseline: {} events stand for {:.0}",
        question.selection,
        sel["rows"],
        sel["weight"].as_f64().unwrap_or(0.0),
        base["rows"],
        base["weight"].as_f64().unwrap_or(0.0)
    )?;
    let rows = |key: &str| json[key].as_array().cloned().unwrap_or_default();
    for (title, list) in [
        ("single values", rows("explanations")),
        ("combinations", rows("combinations")),
    ] {
        if list.is_empty() {
            continue;
        }
        writeln!(out, "\n{title}:")?;
        writeln!(
            out,
            "  {:<48} {:>9} {:>9} {:>22} {:>7}",
            "explanation", "in sel.", "in base.", "risk ratio (95%)", "rows"
        )?;
        for e in list {
            let terms: Vec<String> = e["terms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| format!("{} = {}", t["field"].as_str().unwrap_or(""), t["value"]))
                .collect();
            let ratio = match &e["risk_ratio"] {
                serde_json::Value::Number(n) => format!("{:.2}", n.as_f64().unwrap_or(0.0)),
                other => other.to_string(),
            };
            let ci = &e["risk_ratio_95"];
            writeln!(
                out,
                "  {:<48} {:>8.1}% {:>8.1}% {:>22} {:>7}",
                terms.join(" AND "),
                100.0 * e["selection_share"].as_f64().unwrap_or(0.0),
                100.0 * e["baseline_share"].as_f64().unwrap_or(0.0),
                format!(
                    "{ratio} [{:.2}, {:.2}]",
                    ci[0].as_f64().unwrap_or(0.0),
                    ci[1].as_f64().unwrap_or(0.0)
                ),
                e["selection"]["rows"]
            )?;
            if let Some(implied) = e["implies"].as_array().filter(|a| !a.is_empty()) {
                let v: Vec<String> = implied
                    .iter()
                    .map(|t| format!("{} = {}", t["field"].as_str().unwrap_or(""), t["value"]))
                    .collect();
                writeln!(out, "      (implies {})", v.join(", "))?;
            }
        }
    }
    let left = &json["left_out"];
    writeln!(
        out,
        "\nleft out: identifiers {}, defining the selection {}",
        left["identifiers"], left["defining_the_selection"]
    )?;
    Ok(())
}
