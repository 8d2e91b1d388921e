//! The 20 SLOs of the benchmark as OpenSLO v1 YAML, over fields the standard wide event has:
//! per service and per route, every budgeting method, rolling and calendar windows.

use super::DATASET;

/// A YAML scalar holding `s` exactly (a JSON string is a YAML double-quoted scalar).
fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn source(dataset: bool, filter: &str) -> String {
    let dataset = if dataset {
        format!("dataset: {DATASET}, ")
    } else {
        String::new()
    };
    format!(
        "{{metricSource: {{type: loupe, spec: {{{dataset}filter: {}}}}}}}",
        q(filter)
    )
}

/// `ratioMetric`: `total` events, good (or, with `bad`, not bad) ones among them.
fn ratio(total: &str, good: &str, bad: bool) -> String {
    format!(
        "ratioMetric:\n        counter: true\n        {}: {}\n        total: {}",
        if bad { "bad" } else { "good" },
        source(false, good),
        source(true, total)
    )
}

/// `thresholdMetric` over `duration_ms` for the events matching `filter`.
fn latency(filter: &str) -> String {
    format!(
        "thresholdMetric:\n        metricSource: {{type: loupe, spec: {{dataset: {DATASET}, \
         field: duration_ms, filter: {}}}}}",
        q(filter)
    )
}

const ROLLING_30D: &str = "{duration: 30d, isRolling: true}";

fn slo(
    name: &str,
    service: &str,
    indicator: &str,
    window: &str,
    method: &str,
    objectives: &str,
) -> String {
    format!(
        "apiVersion: openslo/v1
kind: SLO
metadata:
  name: {name}
  labels: {{team: {service}}}
spec:
  service: {service}
  indicator:
    metadata: {{name: {name}-sli}}
    spec:
      {indicator}
  timeWindow: [{window}]
  budgetingMethod: {method}
  objectives: [{objectives}]
"
    )
}

/// The 20 SLOs, one YAML stream.
pub(crate) fn definitions() -> String {
    let http = |service: &str| format!("name = 'http.request' AND \"service.name\" = '{service}'");
    let route = |route: &str| format!("name = 'http.request' AND \"http.route\" = '{route}'");
    let ok = "\"http.status_code\" < 500";
    let mut docs = Vec::new();
    // availability per service, rolling 30 days
    for service in ["api-gateway", "catalog", "search", "cart", "checkout"] {
        docs.push(slo(
            &format!("{service}-availability"),
            service,
            &ratio(&http(service), ok, false),
            ROLLING_30D,
            "Occurrences",
            "{target: 0.999}",
        ));
    }
    docs.push(slo(
        "payments-availability",
        "payments",
        &ratio(&http("payments"), "\"http.status_code\" >= 500", true),
        ROLLING_30D,
        "Occurrences",
        "{target: 0.999}",
    ));
    // latency per service
    for (service, ms, target) in [
        ("auth", 300, 0.99),
        ("search", 250, 0.98),
        ("profile", 500, 0.995),
        ("inventory", 200, 0.95),
    ] {
        docs.push(slo(
            &format!("{service}-latency"),
            service,
            &latency(&http(service)),
            ROLLING_30D,
            "Occurrences",
            &format!("{{op: lte, value: {ms}, target: {target}}}"),
        ));
    }
    // per route, two objectives; background jobs by their error flag
    docs.push(slo(
        "orders-post-availability",
        "api-gateway",
        &ratio(
            &format!("{} AND \"http.method\" = 'POST'", route("/api/v1/orders")),
            ok,
            false,
        ),
        ROLLING_30D,
        "Occurrences",
        "{displayName: 99%, target: 0.99}, {displayName: 99.9%, target: 0.999}",
    ));
    docs.push(slo(
        "jobs-success",
        "notifications",
        &ratio("name = 'job.run'", "error", true),
        ROLLING_30D,
        "Occurrences",
        "{target: 0.995}",
    ));
    // time slices of 5 minutes per route
    docs.push(slo(
        "products-timeslices",
        "catalog",
        &ratio(&route("/api/v1/products"), ok, false),
        ROLLING_30D,
        "Timeslices",
        "{target: 0.99, timeSliceTarget: 0.95, timeSliceWindow: 5m}",
    ));
    docs.push(slo(
        "cart-items-timeslices",
        "cart",
        &ratio(&route("/api/v1/cart/{id}/items"), ok, false),
        ROLLING_30D,
        "Timeslices",
        "{target: 0.99, timeSliceTarget: 0.9, timeSliceWindow: 5m}",
    ));
    docs.push(slo(
        "search-route-latency-timeslices",
        "search",
        &latency(&route("/api/v2/search")),
        ROLLING_30D,
        "Timeslices",
        "{op: lte, value: 300, target: 0.95, timeSliceTarget: 0.9, timeSliceWindow: 5m}",
    ));
    docs.push(slo(
        "payments-route-ratio",
        "payments",
        &ratio(&route("/api/v1/payments/{id}"), ok, false),
        ROLLING_30D,
        "RatioTimeslices",
        "{target: 0.99, timeSliceWindow: 5m}",
    ));
    docs.push(slo(
        "users-batch-latency-ratio",
        "profile",
        &latency(&route("/api/v1/users/batch")),
        ROLLING_30D,
        "RatioTimeslices",
        "{op: lte, value: 400, target: 0.97, timeSliceWindow: 5m}",
    ));
    docs.push(slo(
        "recommendations-grpc-ratio",
        "recommendations",
        &ratio(
            "name = 'grpc.call' AND \"service.name\" = 'recommendations'",
            "\"rpc.grpc.status_code\" = 0",
            false,
        ),
        ROLLING_30D,
        "RatioTimeslices",
        "{target: 0.99, timeSliceWindow: 5m}",
    ));
    // calendar months
    docs.push(slo(
        "fleet-availability-monthly",
        "fleet",
        &ratio("name = 'http.request'", ok, false),
        "{duration: 1M, calendar: {startTime: \"2026-01-01 00:00:00\", timeZone: UTC}}",
        "Occurrences",
        "{target: 0.999}",
    ));
    docs.push(slo(
        "checkout-latency-monthly",
        "checkout",
        &latency(&http("checkout")),
        "{duration: 1M, calendar: {startTime: \"2026-01-01 00:00:00\", timeZone: Europe/Berlin}}",
        "Timeslices",
        "{op: lte, value: 300, target: 0.95, timeSliceTarget: 0.9, timeSliceWindow: 5m}",
    ));
    docs.join("---\n")
}
