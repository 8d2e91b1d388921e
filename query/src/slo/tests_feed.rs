//! The exposition and remote write of SLO statuses: names, labels, no NaN, the push.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use super::feed::*;
use crate::slo::budget::{BurnRule, RuleCheck, Tally};
use crate::slo::definition::Budgeting;
use crate::slo::status::{ObjectiveStatus, SloStatus, WindowStatus};
use crate::slo::window::Span;
use prost::Message as _;

const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;
const NOW: i64 = 1_767_225_600_000_000; // 2026-01-01T00:00:00Z

/// A trailing window of `len` ending at `NOW` with `total` events, `good` of them good.
fn window(len: i64, total: u64, good: u64, budget: f64) -> WindowStatus {
    let tally = Tally::uniform(total, good, 1.0);
    let error_ratio = tally.error_ratio();
    let burn = error_ratio.map(|e| e / budget);
    WindowStatus {
        span: Span {
            start_us: NOW - len,
            end_us: NOW,
        },
        tally,
        error_ratio,
        interval: tally.error_interval(1.96),
        effective_size: tally.effective_size(),
        burn,
        consumed: None,
        slices: None,
    }
}

fn objective(name: &str, target: f64, period: i64, windows: &[(i64, u64, u64)]) -> ObjectiveStatus {
    let budget = 1.0 - target;
    let windows: Vec<WindowStatus> = windows
        .iter()
        .map(|(len, total, good)| window(*len, *total, *good, budget))
        .collect();
    let period = window(period, 4000, 3990, budget);
    let rule = BurnRule {
        severity: "page".to_owned(),
        long_us: HOUR,
        short_us: 5 * MIN,
        burn: 14.4,
    };
    let alerts = vec![RuleCheck {
        rule,
        long_burn: windows.last().and_then(|w| w.burn),
        short_burn: windows[0].burn,
        long_bad: 10.0,
        fires: true,
    }];
    ObjectiveStatus {
        name: name.to_owned(),
        target,
        threshold: None,
        time_slice_target: None,
        time_slice_us: None,
        sli: period.error_ratio.map(|e| 1.0 - e),
        budget_remaining: period.burn.map(|b| 1.0 - b),
        current_burn: windows.last().and_then(|w| w.burn),
        exhaustion_us: Some(36 * HOUR),
        period,
        windows,
        alerts,
        cumulative: Tally {
            good: 12_345.5,
            good_sq: 0.0,
            good_rows: 1_000,
            total: 12_400.0,
            total_sq: 0.0,
            total_rows: 1_010,
        },
    }
}

fn status(name: &str, period: i64, objectives: Vec<ObjectiveStatus>) -> SloStatus {
    SloStatus {
        name: name.to_owned(),
        display_name: None,
        service: "shop".to_owned(),
        dataset: "api".to_owned(),
        labels: BTreeMap::new(),
        method: Budgeting::Occurrences,
        period: Span {
            start_us: NOW - period,
            end_us: NOW,
        },
        rolling: true,
        as_of_us: NOW,
        objectives,
    }
}

/// The display name that needs escaping.
const TRICKY: &str = "p99 \"fast\"\nunder\\300ms";

/// A two-objective SLO over 28 days and a one-objective SLO over 30 days whose 5m window
/// had no traffic.
fn fixture() -> Vec<SloStatus> {
    let two = status(
        "checkout",
        28 * DAY,
        vec![
            objective(
                "objective-1",
                0.999,
                28 * DAY,
                &[(5 * MIN, 100, 99), (HOUR, 1000, 996)],
            ),
            objective(
                TRICKY,
                0.9375,
                28 * DAY,
                &[(5 * MIN, 200, 150), (HOUR, 1000, 900)],
            ),
        ],
    );
    let one = status(
        "search",
        30 * DAY,
        vec![objective(
            "objective-1",
            0.5,
            30 * DAY,
            &[(5 * MIN, 0, 0), (HOUR, 8, 6)],
        )],
    );
    vec![two, one]
}

fn render(statuses: &[SloStatus]) -> String {
    let mut out = String::new();
    render_metrics(statuses, &mut out);
    out
}

type Parsed = (String, Vec<(String, String)>, u64);

/// The samples of an exposition: name, labels sorted by name, value's bits.
fn parse(text: &str) -> BTreeSet<Parsed> {
    let mut out = BTreeSet::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().expect("a float"),
        };
        let (name, mut labels) = match series.split_once('{') {
            None => (series.to_owned(), Vec::new()),
            Some((name, rest)) => {
                let mut labels = Vec::new();
                let mut chars = rest.chars();
                loop {
                    let label: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert_eq!(chars.next(), Some('"'), "{line}");
                    let mut value = String::new();
                    while let Some(c) = chars.next() {
                        match c {
                            '"' => break,
                            '\\' => match chars.next() {
                                Some('n') => value.push('\n'),
                                Some(c) => value.push(c),
                                None => panic!("{line}"),
                            },
                            c => value.push(c),
                        }
                    }
                    labels.push((label, value));
                    match chars.next() {
                        Some(',') => continue,
                        Some('}') => break,
                        other => panic!("{other:?} in {line}"),
                    }
                }
                (name.to_owned(), labels)
            }
        };
        labels.sort();
        assert!(
            out.insert((name, labels, value.to_bits())),
            "repeated: {line}"
        );
    }
    out
}

#[test]
fn prom_duration_prints_as_prometheus_does() {
    let cases = [
        (5 * MIN, "5m"),
        (30 * MIN, "30m"),
        (HOUR, "1h"),
        (6 * HOUR, "6h"),
        (90 * MIN, "1h30m"),
        (DAY, "1d"),
        (3 * DAY, "3d"),
        (7 * DAY, "1w"),
        (28 * DAY, "4w"),
        (30 * DAY, "30d"),
        (90 * DAY, "90d"),
        (365 * DAY, "1y"),
        (1_500_000, "1s500ms"),
        (0, "0s"),
        (999, "0s"),
    ];
    for (us, want) in cases {
        assert_eq!(prom_duration(us), want, "{us} µs");
    }
}

#[test]
fn exact_lines_with_labels_in_order_and_escaped() {
    let text = render(&fixture());
    let lines: Vec<&str> = text.lines().collect();
    let expect = [
        // one objective: sloth_slo is the SLO's name
        r#"slo:sli_error:ratio_rate1h{sloth_id="shop-search",sloth_service="shop",sloth_slo="search",slo="search",objective="objective-1",sloth_window="1h"} 0.25"#,
        // the period, 30 days
        r#"slo:sli_error:ratio_rate30d{sloth_id="shop-search",sloth_service="shop",sloth_slo="search",slo="search",objective="objective-1",sloth_window="30d"} 0.0025"#,
        r#"slo:time_period:days{sloth_id="shop-search",sloth_service="shop",sloth_slo="search",slo="search",objective="objective-1"} 30"#,
        // two objectives: sloth_slo names the objective, escaped
        r#"slo:objective:ratio{sloth_id="shop-checkout-p99 \"fast\"\nunder\\300ms",sloth_service="shop",sloth_slo="checkout-p99 \"fast\"\nunder\\300ms",slo="checkout",objective="p99 \"fast\"\nunder\\300ms"} 0.9375"#,
        r#"slo:sli_error:ratio_rate4w{sloth_id="shop-checkout-objective-1",sloth_service="shop",sloth_slo="checkout-objective-1",slo="checkout",objective="objective-1",sloth_window="4w"} 0.0025"#,
        r#"sloth_slo_info{sloth_id="shop-checkout-objective-1",sloth_service="shop",sloth_slo="checkout-objective-1",slo="checkout",objective="objective-1",sloth_mode="loupe",sloth_objective="99.9"} 1"#,
        r#"loupe_slo_events_total{sloth_id="shop-search",sloth_service="shop",sloth_slo="search",slo="search",objective="objective-1",outcome="good"} 12345.5"#,
        r#"loupe_slo_stored_events_total{sloth_id="shop-search",sloth_service="shop",sloth_slo="search",slo="search",objective="objective-1",outcome="total"} 1010"#,
        r#"loupe_slo_exhaustion_seconds{sloth_id="shop-search",sloth_service="shop",sloth_slo="search",slo="search",objective="objective-1"} 129600"#,
        r#"loupe_slo_alert{sloth_id="shop-search",sloth_service="shop",sloth_slo="search",slo="search",objective="objective-1",severity="page",long_window="1h",short_window="5m",burn_threshold="14.4"} 1"#,
        r#"loupe_slo_burn_rate{sloth_id="shop-search",sloth_service="shop",sloth_slo="search",slo="search",objective="objective-1",window="1h"} 0.5"#,
    ];
    for line in expect {
        assert!(lines.contains(&line), "missing {line}\nin\n{text}");
    }
    // the shortest window's burn is Sloth's current burn rate: 25% / 6.25% = 4
    assert!(lines.contains(&r#"slo:current_burn_rate:ratio{sloth_id="shop-checkout-p99 \"fast\"\nunder\\300ms",sloth_service="shop",sloth_slo="checkout-p99 \"fast\"\nunder\\300ms",slo="checkout",objective="p99 \"fast\"\nunder\\300ms"} 4"#));
    assert!(lines.contains(&"# TYPE loupe_slo_events_total counter"));
    assert!(lines.contains(&"# TYPE slo:objective:ratio gauge"));
}

#[test]
fn help_and_type_once_per_family_with_its_samples_after() {
    let text = render(&fixture());
    let mut helps = BTreeMap::new();
    let mut types = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            *helps.entry(name.clone()).or_insert(0) += 1;
            current = name;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap().to_owned();
            assert_eq!(name, current, "TYPE right after its HELP");
            *types.entry(name).or_insert(0) += 1;
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert_eq!(name, current, "{line} is under its family");
        }
    }
    assert!(helps.values().all(|n| *n == 1), "{helps:?}");
    assert_eq!(helps, types);
    // 2 SLOs (3 objectives) share the families
    assert!(helps.contains_key("slo:objective:ratio"));
    assert_eq!(text.matches("\nslo:objective:ratio{").count(), 3);
    // each window is a family of its own, the period's too
    for w in ["5m", "1h", "4w", "30d"] {
        assert!(
            helps.contains_key(&format!("slo:sli_error:ratio_rate{w}")),
            "{w}"
        );
    }
}

#[test]
fn no_traffic_is_no_sample_and_never_nan() {
    let mut statuses = fixture();
    // and a value that is NaN anyway is dropped
    statuses[1].objectives[0].budget_remaining = Some(f64::NAN);
    let text = render(&statuses);
    assert!(!text.to_lowercase().contains("nan"), "{text}");
    let search_5m = |family: &str| {
        text.lines().any(|l| {
            l.starts_with(family) && l.contains(r#"sloth_slo="search""#) && l.contains(r#""5m""#)
        })
    };
    for family in [
        "slo:sli_error:ratio_rate5m",
        "loupe_slo_burn_rate",
        "loupe_slo_error_ratio{",
        "loupe_slo_error_ratio_upper",
        "loupe_slo_error_ratio_lower",
    ] {
        assert!(!search_5m(family), "{family} has a sample without traffic");
    }
    // the effective size of no events is 0, a number
    assert!(search_5m("loupe_slo_effective_events"));
    // with no traffic, no window burns: no current burn rate for it
    assert!(!text.lines().any(
        |l| l.starts_with("slo:current_burn_rate:ratio") && l.contains(r#"sloth_slo="search""#)
    ));
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("slo:period_error_budget_remaining")
                && l.contains(r#"sloth_slo="search""#))
    );
}

#[test]
fn remote_write_carries_the_exposition_s_series() {
    let statuses = fixture();
    let req = write_request(&statuses, 1_767_225_600_000);
    let bytes = encode(&req);
    // raw block format: no stream identifier chunk (the framed format starts with 0xff)
    assert_ne!(bytes[0], 0xff);
    let raw = snap::raw::Decoder::new().decompress_vec(&bytes).unwrap();
    let back = WriteRequest::decode(raw.as_slice()).unwrap();
    assert_eq!(back, req);
    let mut from_push = BTreeSet::new();
    for ts in &back.timeseries {
        let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        assert!(
            names.is_sorted() && names.windows(2).all(|w| w[0] != w[1]),
            "{names:?}"
        );
        assert!(ts.labels.iter().all(|l| !l.value.is_empty()));
        let name = ts
            .labels
            .iter()
            .find(|l| l.name == "__name__")
            .expect("__name__");
        assert_eq!(ts.samples.len(), 1);
        assert_eq!(ts.samples[0].timestamp, 1_767_225_600_000);
        let labels = ts
            .labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| (l.name.clone(), l.value.clone()))
            .collect();
        from_push.insert((name.value.clone(), labels, ts.samples[0].value.to_bits()));
    }
    assert_eq!(from_push.len(), back.timeseries.len(), "no series twice");
    assert_eq!(from_push, parse(&render(&statuses)));
}

#[test]
fn empty_label_values_are_left_out_of_both() {
    let mut statuses = fixture();
    statuses[1].service = String::new();
    let text = render(&statuses);
    assert!(!text.contains(r#"sloth_service="""#));
    assert!(text.contains(r#"{sloth_id="-search",sloth_slo="search","#));
    let req = write_request(&statuses, 0);
    assert!(
        req.timeseries
            .iter()
            .flat_map(|t| &t.labels)
            .all(|l| !l.value.is_empty())
    );
}

/// A receiver answering `POST /{status}` with that status, recording what it got.
type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

async fn receiver() -> (String, Received) {
    async fn answer(
        State(got): State<Received>,
        Path(code): Path<u16>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, String) {
        got.lock().unwrap().push((headers, body));
        let status = StatusCode::from_u16(code).unwrap();
        (status, format!("{code}: {}", "x".repeat(1000)))
    }
    let got = Received::default();
    let app = Router::new()
        .route("/{code}", post(answer))
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), got)
}

#[tokio::test]
async fn push_sends_the_spec_s_headers_and_body() {
    let (base, got) = receiver().await;
    let client = reqwest::Client::new();
    let req = write_request(&fixture(), 1_767_225_600_000);
    let body = encode(&req);
    push(&client, &format!("{base}/204"), body.clone())
        .await
        .unwrap();
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1);
    let (headers, received) = &got[0];
    assert_eq!(headers["content-encoding"], "snappy");
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["x-prometheus-remote-write-version"], "0.1.0");
    assert_eq!(
        headers["user-agent"],
        format!("loupe/{}", env!("CARGO_PKG_VERSION")).as_str()
    );
    assert_eq!(received.as_ref(), body.as_slice());
    let raw = snap::raw::Decoder::new().decompress_vec(received).unwrap();
    assert_eq!(WriteRequest::decode(raw.as_slice()).unwrap(), req);
}

#[tokio::test]
async fn push_tells_retryable_from_rejected() {
    let (base, got) = receiver().await;
    let client = reqwest::Client::new();
    let body = encode(&write_request(&fixture(), 0));

    let e = push(&client, &format!("{base}/400"), body.clone())
        .await
        .unwrap_err();
    match &e {
        PushError::Rejected { status, body, .. } => {
            assert_eq!(*status, 400);
            assert_eq!(body.len(), BODY_EXCERPT_BYTES);
            assert!(body.starts_with("400: xxx"));
        }
        other => panic!("{other:?}"),
    }
    for code in [503, 500, 429] {
        let e = push(&client, &format!("{base}/{code}"), body.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(e, PushError::Retryable { status: Some(s), .. } if s == code),
            "{code}: {e:?}"
        );
    }
    // one request per push: push itself never sends again
    assert_eq!(got.lock().unwrap().len(), 4);

    // nobody listening: retryable, without a status
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let e = push(&client, &format!("http://{addr}/204"), body.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(e, PushError::Retryable { status: None, .. }),
        "{e:?}"
    );
    // a URL that cannot be sent to is neither
    let e = push(&client, "not a url", body).await.unwrap_err();
    assert!(matches!(e, PushError::Invalid { .. }), "{e:?}");
}
