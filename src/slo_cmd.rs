//! `loupe slo check` and `loupe slo status`: SLO definitions read, checked, and evaluated
//! against a data directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use loupe_query::QueryEngine;
use loupe_query::slo::definition::{self, Slo};
use loupe_query::slo::duration::Shorthand;
use loupe_query::slo::report;
use loupe_query::slo::service::SloService;
use loupe_store::Store;

use crate::cli::{OutliersFormat, SloStatusArgs};
use crate::config::Config;

/// The definitions at `path`, or at `slo.definitions` in the config.
pub(crate) fn load(path: Option<&Path>, config: &Config) -> anyhow::Result<(PathBuf, Vec<Slo>)> {
    let Some(path) = path.or(config.slo.definitions.as_deref()) else {
        bail!("no SLO definitions: pass a file or directory, or set slo.definitions in the config");
    };
    let slos = definition::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((path.to_path_buf(), slos))
}

pub(crate) async fn check(
    path: Option<&Path>,
    data_dir: &Path,
    config: &Config,
) -> anyhow::Result<()> {
    let (path, slos) = load(path, config)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: {} SLOs read", path.display(), slos.len())?;
    if !data_dir.is_dir() {
        writeln!(
            out,
            "(data directory {} not found: predicates not checked against datasets)",
            data_dir.display()
        )?;
        return Ok(());
    }
    let store = Store::new(data_dir);
    let policy = config
        .slo
        .policy()
        .map_err(|p| anyhow::anyhow!(p.join("\n")))?;
    let svc = SloService::new(QueryEngine::new(store.clone()), store, slos, policy);
    let mut failed = 0;
    for (name, result) in svc.check().await {
        match result {
            Ok(()) => writeln!(out, "  {name}: ok")?,
            Err(e) => {
                failed += 1;
                writeln!(out, "  {name}: {e}")?;
            }
        }
    }
    if failed > 0 {
        bail!("{failed} SLOs do not run against their datasets");
    }
    Ok(())
}

pub(crate) async fn status(
    args: &SloStatusArgs,
    data_dir: &Path,
    config: &Config,
) -> anyhow::Result<()> {
    if !data_dir.is_dir() {
        bail!(
            "data directory {} does not exist (use --data-dir)",
            data_dir.display()
        );
    }
    let (_, slos) = load(args.slo.as_deref(), config)?;
    let policy = config
        .slo
        .policy()
        .map_err(|p| anyhow::anyhow!(p.join("\n")))?;
    let now_us = match &args.at {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .with_context(|| format!("--at {t:?}: expected RFC 3339, like 2026-12-04T10:00:00Z"))?
            .timestamp_micros(),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_micros() as i64,
    };
    let mut windows = Vec::new();
    for w in &args.window {
        let d = Shorthand::parse(w, false).map_err(|e| anyhow::anyhow!("--window: {e}"))?;
        if d.is_calendar() {
            bail!("--window {w}: use m, h, d or w (months have no fixed length)");
        }
        windows.push(d.micros());
    }
    let store = Store::new(data_dir);
    let svc = SloService::new(QueryEngine::new(store.clone()), store, slos, policy);
    let statuses = match &args.name {
        Some(n) => {
            let i = svc.find(n).with_context(|| format!("no SLO named {n:?}"))?;
            vec![(n.clone(), svc.status_of(i, now_us, &windows).await)]
        }
        // each dataset listed once for all its SLOs
        None => svc.status_all(now_us, &windows).await,
    };
    let mut out = std::io::stdout().lock();
    let mut json = Vec::new();
    let mut failed = 0;
    for (name, status) in statuses {
        match status {
            Ok((s, _)) => match args.format {
                OutliersFormat::Json => json.push(report::to_json(&s)),
                OutliersFormat::Table => writeln!(out, "{}", report::text(&s))?,
            },
            Err(e) => {
                failed += 1;
                match args.format {
                    OutliersFormat::Json => {
                        json.push(serde_json::json!({"name": name, "error": e.to_string()}))
                    }
                    OutliersFormat::Table => writeln!(out, "{name}: {e}\n")?,
                }
            }
        }
    }
    if matches!(args.format, OutliersFormat::Json) {
        writeln!(out, "{:#}", serde_json::Value::Array(json))?;
    }
    if failed > 0 {
        bail!("{failed} SLOs could not be evaluated");
    }
    Ok(())
}
