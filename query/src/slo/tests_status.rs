//! Status from materialised buckets, checked against a computation from the raw events that
//! shares nothing with the engine but the definitions (windows end with the current minute).

use crate::tests::lcg;
use loupe_event::Event;
use loupe_store::{DatasetName, Partition, Store};

use super::definition::parse;
use super::service::SloService;
use super::status::SloStatus;
use crate::QueryEngine;
use crate::slo::budget::Policy;
use crate::tests::{HOUR, T0, ev, rows, write};

const MIN: i64 = 60_000_000;
const DAY: i64 = 24 * HOUR;

/// A generated request: when, its weight, its status code, its latency.
#[derive(Debug, Clone, Copy)]
struct Req {
    ts: i64,
    w: f64,
    status: i64,
    ms: f64,
}

fn store_requests(store: &Store, reqs: &[Req], file: &str) {
    let events = reqs
        .iter()
        .map(|r| {
            ev(
                r.ts,
                Event::new()
                    .with("name", "http.request")
                    .with("http.status_code", r.status)
                    .with("duration_ms", r.ms)
                    .with("sample_rate", r.w),
            )
        })
        .collect();
    write(store, "api", events, file);
}

/// Requests over `[from, to)` at about `per_minute` stored events a minute, errors sampled
/// at 1 and successes at 1 in 10, with an error share of `bad(ts)`.
fn requests(seed: u64, from: i64, to: i64, per_minute: f64, bad: impl Fn(i64) -> f64) -> Vec<Req> {
    let mut s = seed;
    let mut out = Vec::new();
    let n = ((to - from) as f64 / MIN as f64 * per_minute) as i64;
    for _ in 0..n {
        let ts = from + (lcg(&mut s) * (to - from) as f64) as i64;
        let error = lcg(&mut s) < bad(ts);
        out.push(Req {
            ts,
            w: if error { 1.0 } else { 10.0 },
            status: if error { 503 } else { 200 },
            ms: 20.0 + 600.0 * lcg(&mut s).powi(4),
        });
    }
    out
}

/// The error ratio of the requests in `[start, end)` by weight, computed directly.
fn truth(reqs: &[Req], start: i64, end: i64, good: impl Fn(&Req) -> bool) -> Option<f64> {
    let inside = reqs.iter().filter(|r| r.ts >= start && r.ts < end);
    let (mut bad, mut total) = (0.0, 0.0);
    for r in inside {
        total += r.w;
        if !good(r) {
            bad += r.w;
        }
    }
    (total > 0.0).then(|| bad / total)
}

fn service(dir: &std::path::Path, yaml: &str) -> SloService {
    let store = Store::new(dir);
    let slos = parse(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    SloService::new(
        QueryEngine::new(store.clone()),
        store,
        slos,
        Policy::default(),
    )
}

fn ratio_slo(window: &str, method: &str, objective: &str) -> String {
    format!(
        r#"
apiVersion: openslo/v1
kind: SLO
metadata: {{name: api-availability}}
spec:
  service: api
  indicator:
    metadata: {{name: api-ok}}
    spec:
      ratioMetric:
        counter: true
        good: {{metricSource: {{type: loupe, spec: {{filter: "\"http.status_code\" < 500"}}}}}}
        total: {{metricSource: {{type: loupe, spec: {{dataset: api, filter: "name = 'http.request'"}}}}}}
  timeWindow: [{window}]
  budgetingMethod: {method}
  objectives: [{objective}]
"#
    )
}

/// Availability over a rolling day, counted by occurrences, at `target`.
fn daily(dir: &std::path::Path, target: f64) -> SloService {
    service(
        dir,
        &ratio_slo(
            "{duration: 1d, isRolling: true}",
            "Occurrences",
            &format!("{{target: {target}}}"),
        ),
    )
}

fn close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= 1e-9 * b.abs().max(1.0),
            "{what}: {a} != {b}"
        ),
        (a, b) => assert_eq!(a, b, "{what}"),
    }
}

async fn status(svc: &SloService, now: i64) -> SloStatus {
    svc.status_of(0, now, &[]).await.unwrap().0
}

#[tokio::test]
async fn occurrences_over_rolling_windows_match_the_raw_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let now = T0 + 4 * DAY + 30 * MIN + 17_000_000;
    // 0.05% of stored events fail, then 25% for the last 40 minutes: successes weigh 10,
    // so 3.2% of all requests fail, a fast burn (32x at 99.9%)
    let reqs = requests(1, T0, now, 3.0, |ts| {
        if ts > now - 40 * MIN { 0.25 } else { 0.0005 }
    });
    store_requests(&store, &reqs, "a");
    let svc = daily(dir.path(), 0.999);
    let st = status(&svc, now).await;
    let o = &st.objectives[0];
    let end = (now / MIN) * MIN + MIN;
    let ok = |r: &Req| r.status < 500;
    let period = truth(&reqs, end - DAY, end, ok);
    close(o.sli, period.map(|e| 1.0 - e), "SLI");
    close(
        o.budget_remaining,
        period.map(|e| 1.0 - e / 0.001),
        "budget remaining",
    );
    for w in &o.windows {
        let len = w.span.len_us();
        let e = truth(&reqs, end - len, end, ok);
        close(
            w.error_ratio,
            e,
            &format!("error ratio over {} min", len / MIN),
        );
        close(w.burn, e.map(|e| e / 0.001), "burn");
        close(
            w.consumed,
            e.map(|e| e / 0.001 * len as f64 / DAY as f64),
            "consumed",
        );
    }
    // the policy: both page rules see the burn in their long windows; the 1h/5m one fires
    let page = &o.alerts[0];
    assert!(page.fires, "{page:?}");
    assert!(page.long_burn.unwrap() > 14.4 && page.short_burn.unwrap() > 14.4);
    assert_eq!(o.firing(), ["page"]);
    let hour = truth(&reqs, end - HOUR, end, ok).unwrap() / 0.001;
    close(o.current_burn, Some(hour), "current burn");
    let exhaustion = o.budget_remaining.unwrap() * DAY as f64 / hour;
    assert_eq!(o.exhaustion_us, Some(exhaustion as i64));
    // the counters hold every event stored
    let all: f64 = reqs.iter().map(|r| r.w).sum();
    assert!((o.cumulative.total - all).abs() < 1e-6 * all);
    assert_eq!(o.cumulative.total_rows, reqs.len() as u64);
}

#[tokio::test]
async fn buckets_follow_late_events_and_compaction_and_an_unchanged_store_costs_no_query() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let now = T0 + 6 * HOUR + 5 * MIN;
    let mut reqs = requests(2, T0, now, 2.0, |_| 0.01);
    store_requests(&store, &reqs, "a");
    let svc = daily(dir.path(), 0.99);
    let (first, r) = svc.status_of(0, now, &[]).await.unwrap();
    assert_eq!((r.hours_counted, r.queries), (7, 1), "{r:?}");
    let (again, r) = svc.status_of(0, now, &[]).await.unwrap();
    assert_eq!((r.hours_counted, r.queries), (0, 0), "{r:?}");
    assert_eq!(first, again);

    // late events into an old hour: that hour alone is counted again, by another process
    // sharing the directory (`loupe slo status` beside a server)
    let late = requests(3, T0 + 2 * HOUR, T0 + 3 * HOUR, 1.0, |_| 0.5);
    store_requests(&store, &late, "late");
    reqs.extend(&late);
    let other = daily(dir.path(), 0.99);
    let (theirs, r) = other.status_of(0, now, &[]).await.unwrap();
    assert_eq!((r.hours_counted, r.queries), (1, 1), "{r:?}");
    // ... and this one sees their file is not the one it holds, and reads it
    let (st, r) = svc.status_of(0, now, &[]).await.unwrap();
    assert_eq!((r.hours_counted, r.queries), (0, 0), "{r:?}");
    assert_eq!(st, theirs);
    let end = (now / MIN) * MIN + MIN;
    let six = st.objectives[0].window(6 * HOUR).unwrap();
    close(
        six.error_ratio,
        truth(&reqs, end - 6 * HOUR, end, |r| r.status < 500),
        "after late events",
    );

    // compaction merges the hour's two files into one: recounted, same numbers
    let ds = store.dataset(&DatasetName::new("api").unwrap());
    let part = ds.partition_dir(&loupe_store::Partition::of(T0 + 2 * HOUR));
    for f in ["a", "late"] {
        std::fs::remove_file(part.join(format!("{f}.parquet"))).unwrap();
    }
    let hour: Vec<Req> = reqs
        .iter()
        .filter(|r| r.ts >= T0 + 2 * HOUR && r.ts < T0 + 3 * HOUR)
        .copied()
        .collect();
    store_requests(&store, &hour, "merged");
    let (merged, r) = svc.status_of(0, now, &[]).await.unwrap();
    assert_eq!(r.hours_counted, 1, "{r:?}");
    let m = merged.objectives[0].window(6 * HOUR).unwrap();
    close(m.error_ratio, six.error_ratio, "after compaction");
    assert_eq!(m.tally.total_rows, six.tally.total_rows);

    // the bucket file is not part of the table
    let n = rows(
        &QueryEngine::new(store.clone()),
        "SELECT count(*) AS n FROM api",
    )
    .await;
    assert_eq!(n[0]["n"], reqs.len());
    assert!(ds.slo_buckets_path("api-availability").exists());
}

#[tokio::test]
async fn calendar_time_slices_skip_empty_slices_and_match_the_raw_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    // a calendar day in New York (UTC-5 in November), 14 hours in
    let day_start = T0 + 5 * HOUR;
    let now = day_start + 14 * HOUR + 3 * MIN;
    // traffic until 09:00 local, none from 09:00 to 11:00, then a bad stretch 12:00-12:30
    let mut reqs = requests(4, day_start - 2 * HOUR, day_start + 9 * HOUR, 4.0, |_| {
        0.002
    });
    reqs.extend(requests(5, day_start + 11 * HOUR, now, 4.0, |ts| {
        if ts >= day_start + 12 * HOUR && ts < day_start + 12 * HOUR + 30 * MIN {
            0.4
        } else {
            0.002
        }
    }));
    store_requests(&store, &reqs, "a");
    // events after the current minute (a status asked for a past moment, or a client's
    // clock ahead) are all bad and must not count, even in the open slice
    let end = (now / MIN) * MIN + MIN;
    let later = requests(6, end, now + HOUR, 4.0, |_| 1.0);
    store_requests(&store, &later, "later");
    let calendar = r#"{duration: 1d, calendar: {startTime: "2026-11-01 00:00:00", timeZone: America/New_York}}"#;
    let ok = |r: &Req| r.status < 500;
    for (method, objective) in [
        (
            "Timeslices",
            "{target: 0.95, timeSliceTarget: 0.9, timeSliceWindow: 5m}",
        ),
        ("RatioTimeslices", "{target: 0.95, timeSliceWindow: 5m}"),
    ] {
        let svc = service(dir.path(), &ratio_slo(calendar, method, objective));
        let st = status(&svc, now).await;
        assert_eq!(st.period.start_us, day_start, "{method}");
        assert_eq!(st.period.end_us, day_start + DAY);
        let o = &st.objectives[0];
        // slices of 5 minutes from local midnight up to the current one
        let mut ratios = Vec::new();
        let mut empty = 0;
        let mut t = day_start;
        while t <= now {
            match truth(&reqs, t, (t + 5 * MIN).min(end), ok) {
                Some(e) => ratios.push(1.0 - e),
                None => empty += 1,
            }
            t += 5 * MIN;
        }
        assert!(empty >= 24, "the two quiet hours are empty slices: {empty}");
        let slices = o.period.slices.unwrap();
        assert_eq!(slices.empty, empty);
        assert_eq!((slices.good + slices.bad) as usize, ratios.len());
        let expected = if method == "Timeslices" {
            ratios.iter().filter(|r| **r >= 0.9).count() as f64 / ratios.len() as f64
        } else {
            ratios.iter().sum::<f64>() / ratios.len() as f64
        };
        close(o.sli, Some(expected), method);
        assert!(
            o.sli.unwrap() < 1.0 && o.sli.unwrap() > 0.9,
            "{method}: {:?}",
            o.sli
        );
        // no window is NaN: the quiet hours are "no data", not errors
        for w in &o.windows {
            assert!(w.error_ratio.is_none_or(|e| e.is_finite()), "{w:?}");
        }
    }
}

#[tokio::test]
async fn quiet_services_report_wide_intervals_and_do_not_page_on_one_failure() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let now = T0 + 2 * HOUR;
    // four requests in the last hour, one of them failed; nothing in the hour before
    let reqs: Vec<Req> = (0..4)
        .map(|i| Req {
            ts: now - (i + 2) * 4 * MIN,
            w: 1.0,
            status: if i == 0 { 500 } else { 200 },
            ms: 10.0,
        })
        .collect();
    store_requests(&store, &reqs, "a");
    let svc = service(
        dir.path(),
        &ratio_slo(
            "{duration: 30d, isRolling: true}",
            "Occurrences",
            "{target: 0.999}",
        ),
    );
    let st = status(&svc, now).await;
    let o = &st.objectives[0];
    let hour = o.window(HOUR).unwrap();
    close(hour.error_ratio, Some(0.25), "one in four");
    close(hour.burn, Some(250.0), "burn");
    let (lo, hi) = hour.interval.unwrap();
    assert!(lo < 0.05 && hi > 0.65, "Wilson on 4 events: [{lo}, {hi}]");
    assert!((hour.effective_size - 4.0).abs() < 1e-9);
    // 250x over both windows, but one bad event: the page needs five
    let page = &o.alerts[0];
    assert!(!page.fires && page.long_bad == 1.0, "{page:?}");
    assert!(o.firing().is_empty());
    // the five minutes before now saw nothing: no data, not an error ratio of 0 or NaN
    let five = o.window(5 * MIN).unwrap();
    assert_eq!((five.error_ratio, five.burn), (None, None));
}

#[tokio::test]
async fn a_dataset_without_events_yet_is_no_data_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let svc = daily(dir.path(), 0.99);
    let st = status(&svc, T0).await;
    let o = &st.objectives[0];
    assert_eq!(
        (o.sli, o.budget_remaining, o.current_burn),
        (None, None, None)
    );
    assert!(
        o.windows
            .iter()
            .all(|w| w.error_ratio.is_none() && w.burn.is_none())
    );
    assert!(o.firing().is_empty());
}

#[tokio::test]
async fn latency_objectives_each_get_their_own_good_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let now = T0 + 3 * HOUR;
    let reqs = requests(6, T0, now, 5.0, |_| 0.01);
    store_requests(&store, &reqs, "a");
    let yaml = r#"
apiVersion: openslo/v1
kind: SLO
metadata: {name: api-latency}
spec:
  service: api
  indicator:
    metadata: {name: api-fast}
    spec:
      thresholdMetric:
        metricSource: {type: loupe, spec: {dataset: api, field: duration_ms, filter: "name = 'http.request'"}}
  timeWindow: [{duration: 7d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives:
    - {displayName: fast, op: lte, value: 300, target: 0.9}
"#;
    let svc = service(dir.path(), yaml);
    let st = status(&svc, now).await;
    let end = (now / MIN) * MIN + MIN;
    let o = &st.objectives[0];
    assert_eq!(o.name, "fast");
    let e = truth(&reqs, end - 7 * DAY, end, |r| r.ms <= 300.0);
    close(o.sli, e.map(|e| 1.0 - e), "latency SLI");
    assert!(o.sli.unwrap() > 0.5 && o.sli.unwrap() < 1.0);
}

#[tokio::test]
async fn minutes_past_the_horizon_leave_the_file_but_not_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let reqs = requests(7, T0, T0 + 6 * HOUR, 2.0, |_| 0.05);
    store_requests(&store, &reqs, "a");
    let svc = daily(dir.path(), 0.99);
    let (before, r) = svc.status_of(0, T0 + 6 * HOUR, &[]).await.unwrap();
    assert_eq!(r.minutes_retired, 0);
    // a day of period and three of policy kept, and a day more: at 4 days and 3 hours, the
    // first three hours are past the horizon
    let later = T0 + 4 * DAY + 3 * HOUR;
    let (after, r) = svc.status_of(0, later, &[]).await.unwrap();
    let early = reqs.iter().filter(|r| r.ts < T0 + 3 * HOUR).count();
    let early_minutes: std::collections::BTreeSet<i64> = reqs
        .iter()
        .filter(|r| r.ts < T0 + 3 * HOUR)
        .map(|r| r.ts / MIN)
        .collect();
    assert_eq!(r.minutes_retired, early_minutes.len(), "{r:?}");
    assert!(early > 0);
    let (b, a) = (&before.objectives[0], &after.objectives[0]);
    assert_eq!(a.cumulative.total_rows, b.cumulative.total_rows);
    assert!((a.cumulative.total - b.cumulative.total).abs() < 1e-6);
    // and the file holds only what is kept: a new process reads the same counters
    let (fresh, r) = daily(dir.path(), 0.99)
        .status_of(0, later, &[])
        .await
        .unwrap();
    assert_eq!(r.hours_counted, 0);
    assert_eq!(fresh.objectives[0].cumulative, a.cumulative);
    let file = super::buckets::load(
        &store
            .dataset(&DatasetName::new("api").unwrap())
            .slo_buckets_path("api-availability"),
    )
    .unwrap()
    .unwrap();
    assert!(file.minutes[0].keys().all(|t| *t >= T0 + 3 * HOUR));
    assert_eq!(file.retired[0].total_rows, early as u64);
}

#[tokio::test]
async fn a_window_shorter_than_a_slice_judges_the_slice_it_is_in_and_deleted_hours_keep_counters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let now = T0 + 3 * HOUR + 40 * MIN;
    let reqs = requests(8, T0, now, 3.0, |_| 0.3);
    store_requests(&store, &reqs, "a");
    let svc = service(
        dir.path(),
        &ratio_slo(
            "{duration: 1d, isRolling: true}",
            "Timeslices",
            "{target: 0.95, timeSliceTarget: 0.99, timeSliceWindow: 1h}",
        ),
    );
    let (st, _) = svc.status_of(0, now, &[]).await.unwrap();
    let o = &st.objectives[0];
    // 40 minutes into an hour slice, the 5-minute window holds 5 minutes of it: one bad slice
    let five = o.window(5 * MIN).unwrap();
    assert_eq!(five.slices.unwrap().bad, 1, "{five:?}");
    assert_eq!(five.error_ratio, Some(1.0));
    assert!(o.alerts[0].fires, "{:?}", o.alerts[0]);
    // an hour deleted (retention) leaves the buckets, not the counters
    let before = o.cumulative;
    let ds = store.dataset(&DatasetName::new("api").unwrap());
    std::fs::remove_dir_all(ds.partition_dir(&loupe_store::Partition::of(T0 + HOUR))).unwrap();
    let (st, r) = svc.status_of(0, now, &[]).await.unwrap();
    assert_eq!(r.hours_counted, 1, "{r:?}");
    assert_eq!(st.objectives[0].cumulative.total_rows, before.total_rows);
    let two = st.objectives[0].window(6 * HOUR).unwrap();
    let kept = reqs
        .iter()
        .filter(|r| Partition::of(r.ts) != Partition::of(T0 + HOUR));
    assert_eq!(two.tally.total_rows, kept.count() as u64);
}

#[tokio::test]
async fn a_predicate_over_a_missing_field_is_named_briefly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    store_requests(&store, &requests(9, T0, T0 + HOUR, 1.0, |_| 0.0), "a");
    // a wide dataset: DataFusion lists every field it has in the error
    let wide = (0..60).fold(Event::new(), |e, i| {
        e.with(format!("a.rather.long.field.name.{i}").as_str(), i)
    });
    write(&store, "api", vec![ev(T0 + 1, wide)], "wide");
    let yaml = ratio_slo(
        "{duration: 1d, isRolling: true}",
        "Occurrences",
        "{target: 0.99}",
    )
    .replace("\\\"http.status_code\\\" < 500", "no_such_field < 500");
    let svc = service(dir.path(), &yaml);
    for err in [
        svc.status_of(0, T0 + HOUR, &[])
            .await
            .unwrap_err()
            .to_string(),
        svc.check().await.remove(0).1.unwrap_err().to_string(),
    ] {
        assert!(err.contains("SLO \"api-availability\""), "{err}");
        assert!(err.contains("no_such_field"), "{err}");
        assert!(err.contains("more."), "{err}");
        assert!(err.len() < 900, "{} bytes: {err}", err.len());
    }
}
