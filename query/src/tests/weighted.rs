//! The weighted functions against an independent computation over the same generated events:
//! plain loops over the events in Rust, an exact sort for quantiles.

use super::lcg;
use std::collections::BTreeMap;

use loupe_event::Event;
use loupe_store::Store;
use serde_json::Value as Json;

use super::{HOUR, T0, ev, rows, write};
use crate::QueryEngine;
use crate::weighted::sketch::{RELATIVE_ACCURACY, exact_quantile};

/// One generated event, as the test knows it.
#[derive(Clone)]
struct Truth {
    ts: i64,
    route: &'static str,
    duration: Option<f64>,
    weight: f64,
}

const ROUTES: [&str; 3] = ["/cart", "/pay", "/search"];

/// 6,000 events over two hours in 12 files (so aggregation runs in several partitions and
/// merges their states), routes with different latency scales and sampling weights, and some
/// events without a duration.
fn generate() -> Vec<Truth> {
    let mut seed = 11;
    (0..6000)
        .map(|i| {
            let r = (lcg(&mut seed) * 3.0) as usize;
            let scale = [20.0, 150.0, 60.0][r];
            let duration =
                (lcg(&mut seed) > 0.05).then(|| scale * (lcg(&mut seed) * 4.0 - 1.0).exp());
            let weight = [1.0, 2.5, 10.0, 20.0, 50.0][(lcg(&mut seed) * 5.0) as usize];
            Truth {
                ts: T0 + (i as i64) * (2 * HOUR / 6000),
                route: ROUTES[r],
                duration,
                weight,
            }
        })
        .collect()
}

fn engine_over(truth: &[Truth]) -> (tempfile::TempDir, QueryEngine) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    for (f, chunk) in truth.chunks(500).enumerate() {
        let events = chunk
            .iter()
            .map(|t| {
                let mut e = Event::new()
                    .with("http.route", t.route)
                    .with("sample_rate", t.weight);
                if let Some(d) = t.duration {
                    e = e.with("duration_ms", d);
                }
                ev(t.ts, e)
            })
            .collect();
        write(&store, "api", events, &format!("f{f}"));
    }
    (dir, QueryEngine::new(store))
}

struct Expected {
    count: f64,
    sum: f64,
    avg: f64,
    values: Vec<(f64, f64)>,
}

fn expected<'a>(events: impl Iterator<Item = &'a Truth>) -> Expected {
    let mut count = 0.0;
    let mut sum = 0.0;
    let mut sum_w = 0.0;
    let mut values = Vec::new();
    for t in events {
        count += t.weight;
        if let Some(d) = t.duration {
            sum += d * t.weight;
            sum_w += t.weight;
            values.push((d, t.weight));
        }
    }
    Expected {
        count,
        sum,
        avg: sum / sum_w,
        values,
    }
}

fn f(row: &Json, col: &str) -> f64 {
    row[col]
        .as_f64()
        .unwrap_or_else(|| panic!("{col} in {row}"))
}

fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-9 * want.abs().max(1.0),
        "{what}: {got} vs {want}"
    );
}

fn within_accuracy(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= RELATIVE_ACCURACY * want.abs() * (1.0 + 1e-9),
        "{what}: {got} vs exact {want}"
    );
}

const SELECT: &str = "wcount(sample_rate) AS n, wsum(duration_ms, sample_rate) AS s, \
    wavg(duration_ms, sample_rate) AS a, wp50(duration_ms, sample_rate) AS p50, \
    wquantile(duration_ms, sample_rate, 0.9) AS p90, wp99(duration_ms, sample_rate) AS p99, \
    wp999(duration_ms, sample_rate) AS p999, count(*) AS rows";

fn check(row: &Json, want: &Expected, raw_rows: usize, what: &str) {
    close(f(row, "n"), want.count, &format!("{what} wcount"));
    close(f(row, "s"), want.sum, &format!("{what} wsum"));
    close(f(row, "a"), want.avg, &format!("{what} wavg"));
    for (col, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
        within_accuracy(
            f(row, col),
            exact_quantile(&want.values, q),
            &format!("{what} {col}"),
        );
    }
    // Plain COUNT(*) stays a count of stored rows.
    assert_eq!(
        row["rows"].as_u64(),
        Some(raw_rows as u64),
        "{what} count(*)"
    );
}

#[tokio::test]
async fn grouped_weighted_aggregates_match_an_independent_computation() {
    let truth = generate();
    let (_dir, engine) = engine_over(&truth);
    let out = rows(
        &engine,
        &format!(r#"SELECT "http.route" AS route, {SELECT} FROM api GROUP BY 1 ORDER BY 1"#),
    )
    .await;
    assert_eq!(out.len(), ROUTES.len());
    for row in &out {
        let route = row["route"].as_str().unwrap();
        let mine: Vec<&Truth> = truth.iter().filter(|t| t.route == route).collect();
        check(row, &expected(mine.iter().copied()), mine.len(), route);
    }
    // The weights matter: the unweighted mean is a different number.
    let plain = rows(&engine, "SELECT avg(duration_ms) AS a FROM api").await;
    let weighted = expected(truth.iter());
    assert!((f(&plain[0], "a") - weighted.avg).abs() > 0.01 * weighted.avg);
}

#[tokio::test]
async fn ungrouped_and_filtered_aggregates_match_too() {
    let truth = generate();
    let (_dir, engine) = engine_over(&truth);
    let out = rows(&engine, &format!("SELECT {SELECT} FROM api")).await;
    check(&out[0], &expected(truth.iter()), truth.len(), "all");

    // FILTER (WHERE ...) takes the accumulators' filtered path.
    let out = rows(
        &engine,
        r#"SELECT "http.route" AS route,
                  wcount(sample_rate) FILTER (WHERE duration_ms > 100) AS slow,
                  wp99(duration_ms, sample_rate) FILTER (WHERE duration_ms > 100) AS slow_p99
           FROM api GROUP BY 1 ORDER BY 1"#,
    )
    .await;
    for row in &out {
        let route = row["route"].as_str().unwrap();
        let slow = expected(
            truth
                .iter()
                .filter(|t| t.route == route && t.duration.is_some_and(|d| d > 100.0)),
        );
        close(f(row, "slow"), slow.count, "filtered wcount");
        within_accuracy(
            f(row, "slow_p99"),
            exact_quantile(&slow.values, 0.99),
            "filtered wp99",
        );
    }

    // No rows: a count of zero, and no sum, mean or quantile.
    let out = rows(
        &engine,
        "SELECT wcount(sample_rate) AS n, wsum(duration_ms, sample_rate) AS s, \
         wp99(duration_ms, sample_rate) AS p FROM api WHERE duration_ms < 0",
    )
    .await;
    assert_eq!(out[0]["n"].as_f64(), Some(0.0));
    assert_eq!(out[0]["s"], Json::Null);
    assert_eq!(out[0]["p"], Json::Null);
}

#[tokio::test]
async fn many_groups_take_the_skip_partial_aggregation_path_and_still_match() {
    // With a group per event, DataFusion stops pre-aggregating and hands each row on as its
    // own state (`convert_to_state`); the answers must not change.
    let truth = generate();
    let (_dir, engine) = engine_over(&truth);
    let ctx = engine.context();
    for set in [
        "SET datafusion.execution.skip_partial_aggregation_probe_rows_threshold = 10",
        "SET datafusion.execution.skip_partial_aggregation_probe_ratio_threshold = 0.0",
        "SET datafusion.execution.target_partitions = 4",
    ] {
        ctx.sql(set).await.unwrap().collect().await.unwrap();
    }
    let out = rows(
        &engine,
        "SELECT timestamp, wcount(sample_rate) AS n, wavg(duration_ms, sample_rate) AS a, \
         wp50(duration_ms, sample_rate) AS p FROM api GROUP BY timestamp ORDER BY timestamp",
    )
    .await;
    // (`rows` caps at 1,000; the first thousand are checked one by one.)
    for (row, t) in out.iter().zip(&truth) {
        close(f(row, "n"), t.weight, "per-event wcount");
        match t.duration {
            Some(d) => {
                close(f(row, "a"), d, "per-event wavg");
                within_accuracy(f(row, "p"), d, "per-event wp50");
            }
            None => assert_eq!(row["a"], Json::Null),
        }
    }
    let total = rows(
        &engine,
        "SELECT sum(n) AS n FROM (SELECT timestamp, wcount(sample_rate) AS n FROM api GROUP BY 1)",
    )
    .await;
    close(
        f(&total[0], "n"),
        expected(truth.iter()).count,
        "sum of groups",
    );
}

#[tokio::test]
async fn wrate_and_heatmap_buckets() {
    let truth = generate();
    let (_dir, engine) = engine_over(&truth);
    let out = rows(
        &engine,
        "SELECT date_bin(INTERVAL '1 hour', timestamp) AS h, \
                wrate(sample_rate, INTERVAL '1 hour') AS per_s, \
                wrate(sample_rate, 3600) AS per_s_num \
         FROM api GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(out.len(), 2);
    for (i, row) in out.iter().enumerate() {
        let lo = T0 + i as i64 * HOUR;
        let n = expected(truth.iter().filter(|t| t.ts >= lo && t.ts < lo + HOUR)).count;
        close(f(row, "per_s"), n / 3600.0, "wrate");
        close(f(row, "per_s_num"), n / 3600.0, "wrate in seconds");
    }

    // A heatmap: 10-minute columns x log buckets (4 per decade), weighted.
    let cells = rows(
        &engine,
        "SELECT date_bin(INTERVAL '10 minutes', timestamp) AS t, \
                log_bucket(duration_ms, 4) AS b, wcount(sample_rate) AS n \
         FROM api WHERE duration_ms IS NOT NULL GROUP BY 1, 2",
    )
    .await;
    let mut want: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    for t in &truth {
        if let Some(d) = t.duration {
            let col = (t.ts - T0) / (10 * 60 * 1_000_000);
            // The bucket index, computed independently: floor(log10(d) * 4).
            let k = (d.log10() * 4.0).floor() as i64;
            *want.entry((col, k)).or_default() += t.weight;
        }
    }
    assert_eq!(cells.len(), want.len(), "one cell per (column, bucket)");
    let mut got: BTreeMap<(i64, i64), f64> = BTreeMap::new();
    for c in &cells {
        let b = f(c, "b");
        let k = (b.log10() * 4.0).round() as i64;
        let t = chrono_free_micros(c["t"].as_str().unwrap());
        got.insert(((t - T0) / (10 * 60 * 1_000_000), k), f(c, "n"));
    }
    for (key, n) in &want {
        close(got[key], *n, "heatmap cell");
    }
}

/// `2026-11-23T01:20:00` (what the JSON writer prints for a timestamp) as microseconds.
fn chrono_free_micros(s: &str) -> i64 {
    let time = s.split('T').nth(1).unwrap();
    let mut parts = time.trim_end_matches('Z').split(':');
    let h: i64 = parts.next().unwrap().parse().unwrap();
    let m: i64 = parts.next().unwrap().parse().unwrap();
    assert!(s.starts_with("2026-11-23"), "{s}");
    T0 + (h * 3600 + m * 60) * 1_000_000
}

#[tokio::test]
async fn bad_arguments_are_clear_errors() {
    let truth = generate();
    let (_dir, engine) = engine_over(&truth[..10]);
    for (sql, needle) in [
        (
            "SELECT wquantile(duration_ms, sample_rate, 1.5) FROM api",
            "between 0 and 1",
        ),
        (
            "SELECT wquantile(duration_ms, sample_rate, duration_ms) FROM api",
            "must be a constant",
        ),
        (
            "SELECT wrate(sample_rate, INTERVAL '1 month') FROM api",
            "months",
        ),
        ("SELECT wsum(\"http.route\", sample_rate) FROM api", "wsum"),
        ("SELECT log_bucket(duration_ms, 0) FROM api", "log_bucket"),
    ] {
        match engine.sql(sql, 10).await {
            Err(e) => assert!(e.to_string().contains(needle), "{sql}: {e}"),
            Ok(_) => panic!("{sql}: accepted"),
        }
    }
}

#[test]
fn the_readme_documents_every_weighted_function() {
    // The function list in the README is checked against what `register` installs, so the
    // two cannot drift apart.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for name in crate::weighted::AGGREGATES.iter().chain(&["log_bucket"]) {
        assert!(
            readme.contains(&format!("`{name}("))
                || readme.contains(&format!("`{name}`"))
                || readme.contains(&format!(", `{name}")),
            "README.md does not document {name}"
        );
    }
}
