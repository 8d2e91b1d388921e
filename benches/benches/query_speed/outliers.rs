//! `QUERIES=outliers`: the outliers question against its univariate part as plain DuckDB SQL,
//! on query_speed's data (issue 7, item 6: single fields and pairs over 10M events x ~60
//! fields in under 3 s, and no slower than DuckDB's one GROUP BY per field).
//!
//! ```text
//! EVENTS=1000000 RUNS=3 QUERIES=outliers cargo bench -p loupe-bench --bench query_speed  # trial
//! RUNS=3 QUERIES=outliers cargo bench -p loupe-bench --bench query_speed   # 10M, ~15 min
//! OUTLIERS=full QUERIES=outliers cargo bench ...   # loupe's full question alone (to profile)
//! ```
//!
//! - The selection is `duration_ms > X`, X the weighted p99 of `duration_ms` computed once
//!   (untimed) and written as a float literal, so both engines get the same predicate.
//! - **loupe, full**: `QueryEngine::outliers` (the probe for identifiers, the counting pass
//!   over every other field with the numbers' bins and correlation, the pass over pairs and
//!   triples of the strongest values).
//! - **loupe, singles**: the same with `min_raw_events` out of reach, so no value is eligible
//!   and no combination pass runs (the engine untouched); the probe and the counting pass
//!   remain.
//! - **DuckDB**: for each field the report compared (its `fields`), `SELECT v, weight
//!   selected, weight not selected, count(*) ... GROUP BY 1`, numeric fields binned on the
//!   report's own edges by a CASE, all run in turn and summed. Identifier fields (which loupe
//!   finds in its probe and does not read) are grouped in full here; their share is shown
//!   apart, and the ratios without it too.
//! - **Where loupe's time goes** (warm medians, same engine): the counting pass as the
//!   engine runs it (the fields compared and the measure; numbers by fine buckets, binned at
//!   the end, and correlated), its scan alone (the projection streamed and dropped), and
//!   with loupe's `Counts` folded over it, both partition by partition (`fold_partitions`).
//!   Its bins are checked to be the report's.
//!
//! The DuckDB answers are checked against loupe's counts, value by value, weights within
//! 1e-9 relative, for every field that is not an identifier.

use std::path::Path;
use std::time::{Duration, Instant};

use loupe_query::outliers::analyze::DECILES;
use loupe_query::outliers::analyze::{Question, Report};
use loupe_query::outliers::counts::{self, Bins, Counting, Counts, Value};
use loupe_query::outliers::numeric;
use loupe_query::outliers::stats::Thresholds;
use loupe_query::{QueryConfig, QueryEngine};
use loupe_store::Store;

use super::{DATASET, Res, Timing, median, ms};

/// The 3 s target of issue 7.
const TARGET: Duration = Duration::from_secs(3);

/// Whether two JSON values are equal, numbers within 1e-9 of each other (relative).
fn nearly_equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::{Array, Number, Object};
    match (a, b) {
        (Number(x), Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Array(x), Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| nearly_equal(x, y))
        }
        (Object(x), Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| nearly_equal(v, w)))
        }
        (x, y) => x == y,
    }
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An engine with the default configuration but a timeout of an hour: the default minute
/// bounds each pass, and at 10M events a counting pass can take longer, which is to be
/// measured here, not failed on.
fn engine(root: &Path) -> Res<QueryEngine> {
    let config = QueryConfig {
        timeout_ms: 3_600_000,
        ..QueryConfig::default()
    };
    Ok(QueryEngine::with_config(Store::new(root), config)?)
}

/// Runs `f` once on a fresh engine (cold), then `runs` times more on it (warm, the median);
/// says each time on stderr as it comes, so a long run shows where it is.
async fn cold_warm<T>(
    root: &Path,
    what: &str,
    runs: usize,
    f: impl AsyncFn(&QueryEngine) -> Res<T>,
) -> Res<(Timing, T)> {
    eprintln!("{what}");
    let engine = engine(root)?;
    let start = Instant::now();
    let first = f(&engine).await?;
    let cold = start.elapsed();
    eprintln!("  cold {}", ms(cold));
    let mut warm = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f(&engine).await?;
        warm.push(start.elapsed());
        eprintln!("  warm {}", ms(start.elapsed()));
    }
    Ok((
        Timing {
            cold,
            warm: median(warm),
        },
        first,
    ))
}

/// The weighted p99 of `duration_ms` over the data set, as loupe computes it.
async fn p99(root: &Path) -> Res<f64> {
    let out = engine(root)?
        .sql(
            &format!(
                "SELECT wquantile(CAST(duration_ms AS DOUBLE), sample_rate, 0.99) AS t FROM {}",
                ident(DATASET)
            ),
            1,
        )
        .await?;
    let rows: serde_json::Value = serde_json::from_slice(&loupe_query::rows_json(&out.batches)?)?;
    rows[0]["t"]
        .as_f64()
        .ok_or_else(|| "no p99 of duration_ms".into())
}

/// The field's key in DuckDB: the raw column, or for a binned field the bin index as
/// `counts::Bins::bin` computes it (the number of edges at or below the value).
fn duck_key(field: &str, bins: Option<&Bins>) -> String {
    let c = ident(field);
    let Some(b) = bins else { return c };
    let mut key = format!("CASE WHEN {c} IS NULL THEN NULL");
    for (i, e) in b.edges.iter().enumerate() {
        // `{:e}` is a DOUBLE literal in DuckDB (a plain decimal would be a DECIMAL).
        key += &format!(" WHEN CAST({c} AS DOUBLE) < {e:e} THEN {i}");
    }
    key + &format!(" ELSE {} END", b.edges.len())
}

fn bins_of<'a>(report: &'a Report, field: &str) -> Option<&'a Bins> {
    report.bins.iter().find(|(f, _)| f == field).map(|(_, b)| b)
}

/// `value` as DuckDB's JSON row carries the key.
fn key_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Str(s) => s.as_str().into(),
        Value::Bin(i) => (*i).into(),
    }
}

/// Every value loupe counted for a field that is not an identifier has DuckDB's weights on
/// both sides (and DuckDB has no value loupe missed). Returns the number of values checked.
fn check_counts(counts: &Counts, fields: &[String], duck_rows: &[serde_json::Value]) -> usize {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
    let mut checked = 0;
    for f in &counts.fields {
        let at = fields.iter().position(|n| *n == f.name);
        let Some(rows) = at
            .and_then(|i| duck_rows.get(i)?.as_array())
            .filter(|_| !f.identifier)
        else {
            continue;
        };
        let entries: Vec<(Value, [loupe_query::outliers::stats::Cell; 2])> = f.entries().collect();
        assert_eq!(
            entries.len(),
            rows.len(),
            "outliers: {}: loupe counted {} values, DuckDB grouped {}",
            f.name,
            entries.len(),
            rows.len()
        );
        for (v, [sel, base]) in entries {
            let key = key_json(&v);
            let row = rows
                .iter()
                .find(|r| r["v"] == key)
                .unwrap_or_else(|| panic!("outliers: {}: DuckDB has no group {key}", f.name));
            let w = |k: &str| row[k].as_f64().unwrap_or(0.0);
            assert!(
                close(sel.weight, w("sel_w")) && close(base.weight, w("base_w")),
                "outliers: {} = {key}: loupe {} / {}, DuckDB {row}",
                f.name,
                sel.weight,
                base.weight
            );
            checked += 1;
        }
    }
    checked
}

/// Runs the comparison and prints its table.
pub(crate) fn run(rt: &tokio::runtime::Runtime, root: &Path, runs: usize) -> Res<()> {
    let x = rt.block_on(p99(root))?;
    let selection = format!("duration_ms > {x:e}");
    eprintln!("outliers: selection {selection} (the weighted p99)");
    let question = Question::new(DATASET, &selection);
    let singles = Question {
        thresholds: Thresholds {
            min_raw_events: u64::MAX,
            ..Thresholds::default()
        },
        ..question.clone()
    };

    let (full_t, report) = rt.block_on(cold_warm(
        root,
        "loupe: outliers, full",
        runs,
        async |e: &QueryEngine| Ok(e.outliers(&question).await?),
    ))?;
    // The same question with every row counted, as without the files' summaries: the
    // baseline of this run, and the same answer.
    let every_row = |q: &Question| Question {
        summaries: false,
        ..q.clone()
    };
    let (full_rows_t, rows_report) = rt.block_on(cold_warm(
        root,
        "loupe: outliers, full, every row counted",
        runs,
        async |e: &QueryEngine| Ok(e.outliers(&every_row(&question)).await?),
    ))?;
    // Equal but for the last bits of sums added in another order (a share of the rest of a
    // field's values, the measure's moments).
    let same = |a: &Report, b: &Report| {
        let (mut a, mut b) = (a.to_json(), b.to_json());
        a["files_summarized"] = serde_json::Value::Null;
        b["files_summarized"] = serde_json::Value::Null;
        nearly_equal(&a, &b)
    };
    assert!(
        same(&report, &rows_report),
        "summaries must not change the answer"
    );
    if std::env::var("OUTLIERS").is_ok_and(|v| v == "full") {
        // Loupe's full question alone: for a profiler, which should see nothing else.
        println!(
            "loupe, full ({} files from summaries): cold {}, warm {} (median of {runs}); \
             every row counted: cold {}, warm {}",
            report.files_summarized,
            ms(full_t.cold),
            ms(full_t.warm),
            ms(full_rows_t.cold),
            ms(full_rows_t.warm),
        );
        return Ok(());
    }
    let (singles_t, singles_report) = rt.block_on(cold_warm(
        root,
        "loupe: outliers, singles only",
        runs,
        async |e: &QueryEngine| Ok(e.outliers(&singles).await?),
    ))?;
    assert!(
        singles_report.explanations.is_empty() && singles_report.combinations.is_empty(),
        "the singles-only question must leave nothing to combine"
    );
    let (singles_rows_t, _) = rt.block_on(cold_warm(
        root,
        "loupe: outliers, singles only, every row counted",
        runs,
        async |e: &QueryEngine| Ok(e.outliers(&every_row(&singles)).await?),
    ))?;

    // The counting pass as the engine runs it: the fields compared (identifiers, which the
    // engine's probe leaves out, aside) and the measure, strings read as dictionaries, scanned
    // alone, then with the
    // counters folded over it (numbers by fine buckets, binned at the end, and correlated).
    let names = report.fields.clone();
    let compared: Vec<String> = names
        .iter()
        .filter(|n| !report.identifiers.contains(n))
        .cloned()
        .collect();
    let (schema, _) =
        rt.block_on(engine(root)?.describe(&format!("SELECT * FROM {} LIMIT 0", ident(DATASET))))?;
    let plan: Vec<(String, Counting)> = compared
        .iter()
        .map(|n| {
            let dt = schema.field_with_name(n).map(|f| f.data_type().clone());
            Ok((n.clone(), numeric::counting(&dt?)))
        })
        .collect::<Res<_>>()?;
    let pass_sql = format!(
        "SELECT CASE WHEN ({selection}) THEN true WHEN NOT ({selection}) THEN false END AS __selected, \
         sample_rate, {}, CAST(duration_ms AS DOUBLE) AS __measure0 FROM {}('{DATASET}')",
        compared
            .iter()
            .map(|n| ident(n))
            .collect::<Vec<_>>()
            .join(", "),
        loupe_query::table::READ_DICTIONARIES,
    );
    let (scan_t, ()) = rt.block_on(cold_warm(
        root,
        "loupe: the counting pass, its scan alone",
        runs,
        async |e: &QueryEngine| {
            Ok(
                e.fold_partitions(&pass_sql, || (), |_, _| Ok(()), |_, _| {})
                    .await?,
            )
        },
    ))?;
    let limits = counts::Limits::default();
    let (count_t, counted) = rt.block_on(cold_warm(
        root,
        "loupe: the counting pass with the counters",
        runs,
        async |e: &QueryEngine| {
            let plan = plan.clone();
            let mut counts = e
                .fold_partitions(
                    &pass_sql,
                    move || Counts::counting(plan.clone(), 1),
                    move |c, b| c.add(b, &limits),
                    move |c, other| c.merge(other, &limits),
                )
                .await?;
            counts.finish(&DECILES);
            Ok(counts)
        },
    ))?;
    // DuckDB groups every field the report names, on the bins the pass made.
    let field_bins: Vec<Option<Bins>> = names
        .iter()
        .map(|n| {
            let f = counted.fields.iter().find(|f| f.name == *n);
            f.and_then(|f| f.bins.clone())
        })
        .collect();
    for (n, b) in names.iter().zip(&field_bins) {
        assert_eq!(b.as_ref(), bins_of(&report, n), "{n}: the engine's bins");
    }

    eprintln!("duckdb: one GROUP BY per field, {} fields", names.len());
    let sqls: Vec<String> = names
        .iter()
        .zip(&field_bins)
        .map(|(n, b)| {
            format!(
                "SELECT {key} AS v, sum(CASE WHEN {selection} THEN sample_rate END) AS sel_w, \
                 sum(CASE WHEN NOT ({selection}) THEN sample_rate END) AS base_w, count(*) AS n \
                 FROM t GROUP BY 1",
                key = duck_key(n, b.as_ref()),
            )
        })
        .collect();
    let spec = vec![serde_json::json!({"name": "outliers_fields", "sqls": sqls})];
    let answer = super::duckdb(root, &spec, runs)?.remove(0);
    let duck_rows = answer["rows"].as_array().cloned().unwrap_or_default();
    let checked = check_counts(&counted, &names, &duck_rows);
    let secs = |v: &serde_json::Value| Duration::from_secs_f64(v.as_f64().unwrap_or(f64::NAN));
    let duck = Timing {
        cold: secs(&answer["cold_s"]),
        warm: secs(&answer["warm_s"]),
    };
    // DuckDB's time on the identifier fields, which loupe gives up counting.
    let ident_part = |k: &str| -> Duration {
        answer[k]
            .as_array()
            .map(|parts| {
                parts
                    .iter()
                    .zip(&names)
                    .filter(|(_, n)| report.identifiers.contains(n))
                    .map(|(p, _)| secs(p))
                    .sum()
            })
            .unwrap_or_default()
    };
    let duck_ids = Timing {
        cold: ident_part("parts_cold_s"),
        warm: ident_part("parts_warm_s"),
    };
    let identifiers: Vec<&str> = report.identifiers.iter().map(String::as_str).collect();

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let binned = field_bins.iter().flatten().count();
    println!(
        "\noutliers: selection `{selection}` (weighted p99), {} of {} events (by weight {:.0} of {:.0}); \
         {} fields compared ({binned} binned, {} identifiers: {}); {runs} warm runs (median), {cores} cores\n",
        report.selection.rows,
        report.selection.rows + report.baseline.rows,
        report.selection.weight,
        report.selection.weight + report.baseline.weight,
        names.len(),
        identifiers.len(),
        identifiers.join(", "),
    );
    println!("| outliers | cold | warm | warm / DuckDB warm | 3 s target (warm) |");
    println!("|---|---|---|---|---|");
    let row = |what: &str, t: &Timing| {
        println!(
            "| {what} | {} | {} | {:.2}x | {} |",
            ms(t.cold),
            ms(t.warm),
            t.warm.as_secs_f64() / duck.warm.as_secs_f64(),
            if t.warm < TARGET { "holds" } else { "missed" }
        );
    };
    row(
        &format!(
            "loupe, full ({} singles, {} conjunctions reported; {} of {} candidates combined; \
             {} files from summaries)",
            report.explanations.len(),
            report.combinations.len(),
            report.conjunction_candidates.1,
            report.conjunction_candidates.0,
            report.files_summarized,
        ),
        &full_t,
    );
    row(
        "loupe, full, every row counted (no summaries)",
        &full_rows_t,
    );
    row("loupe, singles only (no combination pass)", &singles_t);
    row("loupe, singles only, every row counted", &singles_rows_t);
    row(&format!("DuckDB, {} GROUP BYs, summed", names.len()), &duck);
    println!(
        "| of which DuckDB on the {} identifier fields | {} | {} | | |",
        identifiers.len(),
        ms(duck_ids.cold),
        ms(duck_ids.warm)
    );
    println!(
        "| loupe's counting pass: scan alone / with counters | {} / {} | {} / {} | | |",
        ms(scan_t.cold),
        ms(count_t.cold),
        ms(scan_t.warm),
        ms(count_t.warm)
    );
    let less = |a: Duration, b: Duration| ms(a.saturating_sub(b));
    println!(
        "\nloupe warm, by difference (every row counted): combination pass {}, probe + \
         ranking {}, counting pass {} (of which scan {}). DuckDB answers checked against \
         loupe's counts: {checked} values.",
        less(full_rows_t.warm, singles_rows_t.warm),
        less(singles_rows_t.warm, count_t.warm),
        ms(count_t.warm),
        ms(scan_t.warm),
    );
    let without = duck.warm.saturating_sub(duck_ids.warm).as_secs_f64();
    println!(
        "Against DuckDB without the identifier fields (loupe does not read them): full {:.2}x, \
         singles {:.2}x. Summaries against every row counted (warm): full {:.2}x, singles \
         {:.2}x.",
        full_t.warm.as_secs_f64() / without,
        singles_t.warm.as_secs_f64() / without,
        full_t.warm.as_secs_f64() / full_rows_t.warm.as_secs_f64(),
        singles_t.warm.as_secs_f64() / singles_rows_t.warm.as_secs_f64(),
    );
    Ok(())
}
