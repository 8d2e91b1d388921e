//! `loupe sampling check` and `loupe sampling simulate`: what a sampling config means, and what
//! it would do to real traffic, before it runs in a collector.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};

use anyhow::{Context, bail};
use loupe_collector::{ALL_DATASETS, DatasetConfigs};
use loupe_event::{Limits, decode_event};
use loupe_sampling::{DatasetSampler, SamplingConfig};
use serde::Serialize;

use crate::cli::{SimulateArgs, SimulateFormat};
use crate::config::Config;

/// `loupe sampling check`: the file is valid (else every problem with its line), and each
/// dataset's sampling in words, every default filled in.
pub(crate) fn check(config: &Config) -> anyhow::Result<()> {
    let source = config.source.as_deref().map_or_else(
        || "defaults (no config file)".to_owned(),
        |p| p.display().to_string(),
    );
    let datasets = &config.collector.datasets;
    let sampled: Vec<_> = datasets
        .iter()
        .filter_map(|(name, d)| d.sampling.as_ref().map(|s| (name, s)))
        .collect();
    println!(
        "{source}: valid; {} dataset section{} with sampling",
        sampled.len(),
        if sampled.len() == 1 { "" } else { "s" }
    );
    if sampled.is_empty() {
        println!(
            "no dataset is sampled: every valid event is stored with the weight it arrived with"
        );
    }
    for (name, s) in sampled {
        let title = if name == ALL_DATASETS {
            "every dataset without a section of its own (\"*\")".to_owned()
        } else {
            format!("dataset {name}")
        };
        println!("\n{title}:");
        let sampler = s.build().context("checked above")?;
        for line in sampler.explain().lines() {
            println!("  {line}");
        }
    }
    Ok(())
}

/// The sampling section that applies to `dataset`.
fn section<'a>(datasets: &'a DatasetConfigs, dataset: &str) -> Option<&'a SamplingConfig> {
    datasets
        .get(dataset)
        .and_then(|d| d.sampling.as_ref())
        .or_else(|| datasets.get(ALL_DATASETS).and_then(|d| d.sampling.as_ref()))
}

/// One row of the simulation: a rule (or the default sampler) and a key.
#[derive(Debug, Default, Clone, Serialize)]
struct Row {
    rule: String,
    key: String,
    seen: u64,
    kept: u64,
    /// What the seen events stand for (their upstream weights).
    true_weight: f64,
    /// What the kept events stand for (their recorded weights).
    weighted: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    dataset: String,
    seen: u64,
    kept: u64,
    rejected: u64,
    true_weight: f64,
    weighted: f64,
    keys: Vec<Row>,
}

/// `loupe sampling simulate`: replays NDJSON files through a dataset's sampling config.
pub(crate) fn simulate(config: &Config, args: &SimulateArgs) -> anyhow::Result<()> {
    let Some(section) = section(&config.collector.datasets, &args.dataset) else {
        bail!(
            "dataset {} is not sampled by {} (no [datasets.{}.sampling] or [datasets.\"*\".sampling])",
            args.dataset,
            config
                .source
                .as_deref()
                .map_or("the defaults".into(), |p| p.display().to_string()),
            args.dataset
        );
    };
    let mut sampler = section.build()?;
    let report = replay(&mut sampler, &args.files, config.collector.limits, args)?;
    match args.format {
        SimulateFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        SimulateFormat::Table => print!("{}", table(&report, args.top)),
    }
    Ok(())
}

fn replay(
    sampler: &mut DatasetSampler,
    files: &[std::path::PathBuf],
    limits: Limits,
    args: &SimulateArgs,
) -> anyhow::Result<Report> {
    let mut rows: HashMap<(String, String), Row> = HashMap::new();
    let mut report = Report {
        dataset: args.dataset.clone(),
        seen: 0,
        kept: 0,
        rejected: 0,
        true_weight: 0.0,
        weighted: 0.0,
        keys: Vec::new(),
    };
    // With a fixed pace, time is synthetic; otherwise each event arrives at its own timestamp
    // (events without one arrive with the one before).
    let step_us = args.events_per_second.map(|r| 1e6 / r);
    let mut now_us: i64 = 0;
    for path in files {
        let reader = crate::import::open_decompressed(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut lines = BufReader::with_capacity(256 << 10, reader);
        let mut line = Vec::new();
        let mut number = 0u64;
        loop {
            line.clear();
            let n = lines
                .read_until(b'\n', &mut line)
                .with_context(|| format!("{}: read error after line {number}", path.display()))?;
            if n == 0 {
                break;
            }
            number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let at = match step_us {
                Some(step) => (report.seen as f64 * step) as i64,
                None => now_us,
            };
            let valid = match decode_event(&line, &limits).and_then(|e| e.validate(&limits, at)) {
                Ok(v) => v,
                Err(e) => {
                    report.rejected += 1;
                    if report.rejected <= 5 {
                        eprintln!("{}:{number}: {e}", path.display());
                    }
                    continue;
                }
            };
            now_us = if step_us.is_some() {
                at
            } else {
                valid.timestamp_us()
            };
            let upstream = valid.sample_rate();
            let d = sampler.decide_valid(&valid, now_us);
            let row = rows
                .entry((d.reason().to_owned(), d.key.unwrap_or("").to_owned()))
                .or_default();
            row.seen += 1;
            row.true_weight += upstream;
            report.seen += 1;
            report.true_weight += upstream;
            if d.keep {
                let w = d.weight(upstream);
                row.kept += 1;
                row.weighted += w;
                report.kept += 1;
                report.weighted += w;
            }
        }
    }
    if report.rejected > 5 {
        eprintln!("... {} invalid lines in all", report.rejected);
    }
    report.keys = rows
        .into_iter()
        .map(|((rule, key), mut r)| {
            r.rule = rule;
            r.key = key;
            r
        })
        .collect();
    report
        .keys
        .sort_by(|a, b| b.seen.cmp(&a.seen).then_with(|| a.key.cmp(&b.key)));
    Ok(report)
}

fn ratio(seen: u64, kept: u64) -> String {
    if kept == 0 {
        "all dropped".to_owned()
    } else {
        format!("{:.2}", seen as f64 / kept as f64)
    }
}

fn error_pct(estimate: f64, truth: f64) -> String {
    if truth == 0.0 {
        "-".to_owned()
    } else {
        format!("{:+.1}%", (estimate - truth) / truth * 100.0)
    }
}

fn table(r: &Report, top: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "dataset {}: {} events seen, {} kept ({}x reduction), {} invalid lines skipped",
        r.dataset,
        r.seen,
        r.kept,
        ratio(r.seen, r.kept),
        r.rejected
    );
    let _ = writeln!(
        out,
        "weighted total {:.0} vs true {:.0} ({})\n",
        r.weighted,
        r.true_weight,
        error_pct(r.weighted, r.true_weight)
    );
    let key_width = r
        .keys
        .iter()
        .take(top)
        .map(|k| k.key.len())
        .max()
        .unwrap_or(3)
        .clamp(3, 60);
    let rule_width = r
        .keys
        .iter()
        .take(top)
        .map(|k| k.rule.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "{:<rule_width$}  {:<key_width$}  {:>10}  {:>9}  {:>11}  {:>12}  {:>8}",
        "rule", "key", "seen", "kept", "rate", "weighted", "error"
    );
    for k in r.keys.iter().take(top) {
        let key: String = if k.key.is_empty() {
            "-".to_owned()
        } else {
            k.key.chars().take(60).collect()
        };
        let _ = writeln!(
            out,
            "{:<rule_width$}  {:<key_width$}  {:>10}  {:>9}  {:>11}  {:>12.0}  {:>8}",
            k.rule,
            key,
            k.seen,
            k.kept,
            ratio(k.seen, k.kept),
            k.weighted,
            error_pct(k.weighted, k.true_weight)
        );
    }
    if r.keys.len() > top {
        let _ = writeln!(
            out,
            "... {} more keys (--top to show more, --format json for all)",
            r.keys.len() - top
        );
    }
    let _ = writeln!(
        out,
        "\nrate = seen / kept; weighted = sum of the kept events' sample_rate; error = weighted vs \
         what the seen events stand for"
    );
    out
}
