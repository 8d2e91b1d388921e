//! Step (d): the SLOs answered from the raw events with one DataFusion query each, and the
//! check that those answers are the buckets' (so the comparison is of the same work).

use std::collections::BTreeMap;

use loupe_query::QueryEngine;
use loupe_query::slo::budget::{Policy, Tally};
use loupe_query::slo::definition::{Budgeting, Slo, Window};
use loupe_query::slo::status::SloStatus;
use loupe_query::slo::window::{MINUTE_US, Span, period_at, trailing};

use super::{DATASET, SLICE_US};
use crate::common::Res;

pub(crate) const WEIGHT: &str = "coalesce(CAST(sample_rate AS DOUBLE), 1.0)";

/// An SLO's numbers as the baseline computes them: per objective, the error ratio of the
/// period so far and of each policy window (by length).
pub(crate) struct Answer {
    period: Vec<Option<f64>>,
    windows: Vec<BTreeMap<i64, Option<f64>>>,
}

/// The spans a status reads: the period so far, then the policy's windows.
fn spans(slo: &Slo, now_us: i64) -> (Span, Vec<Span>) {
    let period = period_at(&slo.window, now_us);
    let so_far = Span {
        start_us: period.start_us,
        end_us: period.end_us.min(trailing(MINUTE_US, now_us).end_us),
    };
    let mut lengths: Vec<i64> = Policy::default()
        .rules
        .iter()
        .flat_map(|r| [r.long_us, r.short_us])
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    let windows = lengths.iter().map(|l| trailing(*l, now_us)).collect();
    (so_far, windows)
}

fn error_ratio(good: f64, total: f64) -> Option<f64> {
    Tally {
        good,
        total,
        ..Tally::default()
    }
    .error_ratio()
}

/// One query over the raw events for `slo` at `now_us`.
pub(crate) async fn baseline(engine: &QueryEngine, slo: &Slo, now_us: i64) -> Res<Answer> {
    let (period, windows) = spans(slo, now_us);
    let all: Vec<Span> = std::iter::once(period).chain(windows.clone()).collect();
    let from = all
        .iter()
        .map(|s| s.start_us)
        .min()
        .unwrap_or(period.start_us);
    let to = all.iter().map(|s| s.end_us).max().unwrap_or(period.end_us);
    let mut inner = vec![
        "CAST(\"timestamp\" AS BIGINT) AS t".to_owned(),
        format!("{WEIGHT} AS w"),
    ];
    for (i, o) in slo.objectives.iter().enumerate() {
        inner.push(format!("({}) AS g{i}", slo.good_sql(o)));
    }
    let scan = format!(
        "FROM (SELECT {} FROM {DATASET} WHERE \"timestamp\" >= to_timestamp_micros({from}) \
         AND \"timestamp\" < to_timestamp_micros({to}) AND {}) AS e",
        inner.join(", "),
        slo.total_sql()
    );
    let objectives = slo.objectives.len();
    let rows = |out: &loupe_query::QueryOutput| -> Res<Vec<serde_json::Value>> {
        let v: serde_json::Value = serde_json::from_slice(&loupe_query::rows_json(&out.batches)?)?;
        Ok(v.as_array().cloned().unwrap_or_default())
    };
    let num = |row: &serde_json::Value, col: &str| row[col].as_f64().unwrap_or(0.0);
    if slo.method == Budgeting::Occurrences {
        // one row: per span, the total and per objective the good
        let mut cols = Vec::new();
        for (k, s) in all.iter().enumerate() {
            let inside = format!("t >= {} AND t < {}", s.start_us, s.end_us);
            cols.push(format!(
                "sum(CASE WHEN {inside} THEN w ELSE 0.0 END) AS total{k}"
            ));
            for i in 0..objectives {
                cols.push(format!(
                    "sum(CASE WHEN {inside} AND g{i} THEN w ELSE 0.0 END) AS good{k}_{i}"
                ));
            }
        }
        let out = engine
            .sql(&format!("SELECT {} {scan}", cols.join(", ")), 10)
            .await?;
        let row = rows(&out)?.into_iter().next().ok_or("no row")?;
        let ratio = |k: usize, i: usize| {
            error_ratio(
                num(&row, &format!("good{k}_{i}")),
                num(&row, &format!("total{k}")),
            )
        };
        return Ok(Answer {
            period: (0..objectives).map(|i| ratio(0, i)).collect(),
            windows: (0..objectives)
                .map(|i| {
                    windows
                        .iter()
                        .enumerate()
                        .map(|(k, w)| (w.len_us(), ratio(k + 1, i)))
                        .collect()
                })
                .collect(),
        });
    }
    // Time slices: the same sums per slice, judged as the status judges them.
    let origin = match slo.window {
        Window::Rolling(_) => 0,
        Window::Calendar { .. } => period.start_us,
    };
    assert_eq!(
        origin.rem_euclid(SLICE_US),
        0,
        "{}: slices are counted from the epoch",
        slo.name
    );
    let mut cols = vec![
        format!("t / {SLICE_US} * {SLICE_US} AS slice"),
        "sum(w) AS total".to_owned(),
    ];
    for i in 0..objectives {
        cols.push(format!(
            "sum(CASE WHEN g{i} THEN w ELSE 0.0 END) AS good{i}"
        ));
    }
    let out = engine
        .sql(
            &format!("SELECT {} {scan} GROUP BY 1", cols.join(", ")),
            usize::MAX,
        )
        .await?;
    let mut slices: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    for row in rows(&out)? {
        let slice = row["slice"].as_i64().ok_or("a slice start")?;
        let mut sums = vec![num(&row, "total")];
        sums.extend((0..objectives).map(|i| num(&row, &format!("good{i}"))));
        slices.insert(slice, sums);
    }
    let judge = |span: &Span, i: usize| -> Option<f64> {
        let o = &slo.objectives[i];
        let offset = (span.start_us - origin).rem_euclid(SLICE_US);
        let mut start = if offset == 0 {
            span.start_us
        } else {
            span.start_us + SLICE_US - offset
        };
        let mut ratios = Vec::new();
        while start < span.end_us {
            if let Some(s) = slices.get(&start) {
                ratios.push(error_ratio(s[1 + i], s[0]).map(|e| 1.0 - e));
            }
            start += SLICE_US;
        }
        let with_data: Vec<f64> = ratios.into_iter().flatten().collect();
        if with_data.is_empty() {
            return None;
        }
        let n = with_data.len() as f64;
        if slo.method == Budgeting::Timeslices {
            let target = o.time_slice_target.unwrap_or(1.0);
            let bad = with_data.iter().filter(|r| **r < target).count();
            Some(bad as f64 / n)
        } else {
            Some((1.0 - with_data.iter().sum::<f64>() / n).max(0.0))
        }
    };
    Ok(Answer {
        period: (0..objectives).map(|i| judge(&period, i)).collect(),
        windows: (0..objectives)
            .map(|i| windows.iter().map(|w| (w.len_us(), judge(w, i))).collect())
            .collect(),
    })
}

/// The baseline and the buckets answered the same: fails loudly where they do not.
pub(crate) fn check_agreement(slo: &Slo, st: &SloStatus, a: &Answer) {
    let same = |x: Option<f64>, y: Option<f64>, what: &str| match (x, y) {
        (Some(x), Some(y)) => assert!(
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300) || x == y,
            "{}: {what}: buckets {x} vs raw events {y}",
            slo.name
        ),
        (x, y) => assert_eq!(x, y, "{}: {what}", slo.name),
    };
    for (i, o) in st.objectives.iter().enumerate() {
        same(
            o.sli,
            a.period[i].map(|e| 1.0 - e),
            &format!("objective {i}: the period's SLI"),
        );
        for (len, e) in &a.windows[i] {
            let w = o.window(*len).expect("every policy window is reported");
            same(
                w.error_ratio,
                *e,
                &format!("objective {i}: error ratio over {} min", len / MINUTE_US),
            );
        }
    }
}
