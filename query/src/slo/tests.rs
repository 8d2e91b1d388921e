//! Definitions: what is read, and every way a definition is refused, by path.

use super::definition::{Budgeting, Indicator, Op, Window, parse};

const CHECKOUT: &str = r#"
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-availability
  displayName: Checkout availability
  labels: {team: payments, tier: [one, two]}
spec:
  description: 99.9% of checkout requests succeed over 28 days
  service: checkout
  indicator:
    metadata: {name: checkout-ok}
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: loupe
            spec: {filter: "http.status_code < 500"}
        total:
          metricSource:
            type: loupe
            spec: {dataset: api, filter: "\"service.name\" = 'checkout'"}
  timeWindow:
    - duration: 28d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: availability
      target: 0.999
    - targetPercent: 99
  alertPolicies:
    - alertPolicyRef: fast-burn
"#;

#[test]
fn a_ratio_slo_is_read_whole() {
    let slos = parse(CHECKOUT, "checkout.yaml").unwrap();
    let [slo] = slos.as_slice() else {
        panic!("{slos:?}")
    };
    assert_eq!(slo.name, "checkout-availability");
    assert_eq!(slo.service, "checkout");
    assert_eq!(slo.dataset, "api");
    assert_eq!(slo.labels["tier"], "one,two");
    assert_eq!(slo.method, Budgeting::Occurrences);
    assert!(matches!(slo.window, Window::Rolling(d) if d.to_string() == "28d"));
    let targets: Vec<f64> = slo.objectives.iter().map(|o| o.target).collect();
    assert_eq!(targets, [0.999, 0.99]);
    assert!((slo.objectives[0].budget() - 0.001).abs() < 1e-12);
    assert_eq!(
        slo.total_sql(),
        "coalesce((\"service.name\" = 'checkout'), false)"
    );
    assert_eq!(
        slo.good_sql(&slo.objectives[0]),
        "coalesce((http.status_code < 500), false)"
    );
    let paths: Vec<&str> = slo.predicates().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.indicator.spec.ratioMetric.good.metricSource.spec.filter",
            "spec.indicator.spec.ratioMetric.total.metricSource.spec.filter"
        ]
    );
}

#[test]
fn a_latency_slo_with_calendar_time_slices_is_read() {
    let text = r#"
apiVersion: openslo/v1
kind: SLI
metadata: {name: fast-requests}
spec:
  thresholdMetric:
    metricSource:
      type: loupe
      spec: {dataset: api, field: duration_ms, filter: "name = 'http.request'"}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: fast}
spec:
  service: api
  indicatorRef: fast-requests
  timeWindow:
    - duration: 1M
      calendar: {startTime: "2026-01-01 00:00:00", timeZone: Europe/Berlin}
  budgetingMethod: Timeslices
  objectives:
    - {op: lte, value: 300, target: 0.99, timeSliceTarget: 0.95, timeSliceWindow: 5}
"#;
    let slos = parse(text, "fast.yaml").unwrap();
    let slo = &slos[0];
    assert_eq!(slo.dataset, "api");
    assert!(matches!(&slo.indicator, Indicator::Threshold { field, .. } if field == "duration_ms"));
    let o = &slo.objectives[0];
    assert_eq!(o.threshold, Some((Op::Lte, 300.0)));
    assert_eq!(o.time_slice_target, Some(0.95));
    // a bare number is minutes
    assert_eq!(o.time_slice_window.unwrap().to_string(), "5m");
    match &slo.window {
        Window::Calendar {
            length,
            start,
            zone,
        } => {
            assert_eq!(length.to_string(), "1M");
            assert_eq!(start.to_string(), "2026-01-01 00:00:00");
            assert_eq!(*zone, chrono_tz::Europe::Berlin);
        }
        w => panic!("{w:?}"),
    }
    assert_eq!(
        slo.total_sql(),
        "coalesce((name = 'http.request'), false) AND \"duration_ms\" IS NOT NULL"
    );
    assert_eq!(slo.good_sql(o), "\"duration_ms\" <= 300.0");
}

/// The paths of every problem `text` has.
fn problems(text: &str) -> Vec<String> {
    let err = parse(text, "bad.yaml").unwrap_err();
    err.problems
        .iter()
        .map(|p| format!("{} | {}", p.path, p.message))
        .collect()
}

#[test]
fn every_problem_is_named_by_its_path() {
    let text = CHECKOUT
        .replace("target: 0.999", "target: 1.5")
        .replace("targetPercent: 99", "targetPercent: 99\n      op: lte")
        .replace("duration: 28d", "duration: 28x")
        .replace(
            "type: loupe\n            spec: {filter",
            "type: prometheus\n            spec: {filter",
        );
    let got = problems(&text);
    let want = [
        "bad.yaml: spec.indicator.spec.ratioMetric.good.metricSource.type | \"prometheus\"",
        "bad.yaml: spec.timeWindow[0].duration | \"28x\" is not a duration",
        "bad.yaml: spec.objectives[0].target | 1.5: a target is at least 0 and below 1",
        "bad.yaml: spec.objectives[1].op | op and value belong to a threshold SLI",
    ];
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for w in want {
        assert!(got.iter().any(|g| g.starts_with(w)), "{w}\nnot in {got:#?}");
    }
}

#[test]
fn structural_problems_are_named_by_serde_s_path() {
    // a misspelt field
    let got = problems(&CHECKOUT.replace("target: 0.999", "targt: 0.999"));
    assert!(
        got[0].starts_with("bad.yaml: spec.objectives[0].targt | unknown field `targt`"),
        "{got:?}"
    );
    // a wrong type
    let got = problems(&CHECKOUT.replace("target: 0.999", "target: high"));
    assert!(
        got[0].starts_with("bad.yaml: spec.objectives[0].target |"),
        "{got:?}"
    );
    // an unknown budgeting method
    let got = problems(&CHECKOUT.replace("Occurrences", "Events"));
    assert!(
        got[0].starts_with("bad.yaml: spec.budgetingMethod | unknown variant `Events`"),
        "{got:?}"
    );
    // not YAML at all
    let got = problems("kind: [");
    assert!(got[0].starts_with("bad.yaml"), "{got:?}");
    // another version of the spec
    let got = problems(&CHECKOUT.replace("openslo/v1", "openslo/v2alpha"));
    assert!(
        got[0].starts_with("bad.yaml: apiVersion | \"openslo/v2alpha\""),
        "{got:?}"
    );
}

#[test]
fn time_slices_windows_and_references_are_checked() {
    let timeslices = CHECKOUT.replace("Occurrences", "Timeslices");
    let got = problems(&timeslices);
    for w in [
        "bad.yaml: spec.objectives[0].timeSliceTarget | Timeslices needs timeSliceTarget",
        "bad.yaml: spec.objectives[0].timeSliceWindow | time slices need a timeSliceWindow",
        "bad.yaml: spec.objectives[1].timeSliceTarget",
    ] {
        assert!(got.iter().any(|g| g.starts_with(w)), "{w}\nnot in {got:#?}");
    }
    let two = CHECKOUT.replace(
        "    - duration: 28d\n      isRolling: true",
        "    - duration: 28d\n      isRolling: true\n    - duration: 7d\n      isRolling: true",
    );
    assert!(
        problems(&two)[0]
            .starts_with("bad.yaml: spec.timeWindow | exactly one time window, found 2")
    );
    let zone = CHECKOUT.replace(
        "    - duration: 28d\n      isRolling: true",
        "    - duration: 1M\n      calendar: {startTime: \"2026-01-01 00:00:00\", timeZone: Mars/Olympus}",
    );
    assert!(
        problems(&zone)[0]
            .starts_with("bad.yaml: spec.timeWindow[0].calendar.timeZone | \"Mars/Olympus\"")
    );
    let rolling_calendar = CHECKOUT.replace("      isRolling: true", "      isRolling: false");
    assert!(problems(&rolling_calendar)[0].starts_with(
        "bad.yaml: spec.timeWindow[0].calendar | a window that is not rolling needs a calendar"
    ));
    let no_dataset = CHECKOUT.replace("dataset: api, ", "");
    assert!(problems(&no_dataset)[0].starts_with(
        "bad.yaml: spec.indicator.spec.ratioMetric.total.metricSource.spec.dataset | the total names the dataset"
    ));
    let name = CHECKOUT.replace("name: checkout-availability", "name: Checkout_Availability");
    assert!(problems(&name)[0].starts_with("bad.yaml: metadata.name | \"Checkout_Availability\""));
    let by_ref = CHECKOUT.replace(
        "  indicator:\n    metadata: {name: checkout-ok}",
        "  indicatorRef: nowhere\n  indicatorX:\n    metadata: {name: checkout-ok}",
    );
    let got = problems(&by_ref);
    assert!(
        got.iter()
            .any(|g| g.starts_with("bad.yaml: spec.indicatorX | unknown field")),
        "{got:?}"
    );
}

#[test]
fn capitalised_booleans_from_public_examples_are_read() {
    let text = CHECKOUT.replace("isRolling: true", "isRolling: True");
    match parse(&text, "caps.yaml") {
        Ok(slos) => assert!(matches!(slos[0].window, Window::Rolling(_))),
        Err(e) => assert!(
            e.to_string()
                .starts_with("caps.yaml: spec.timeWindow[0].isRolling"),
            "{e}"
        ),
    }
}
