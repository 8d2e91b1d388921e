//! The collector's own telemetry: one wide event per ingest request in `_loupe`, queryable like
//! any dataset, and Prometheus metrics on `/metrics` (behind the query key).

use crate::support::{ServerProcess, client, poll_sql, temp_data_dir};

const KEY: &str = "telemetry-test-key-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn each_ingest_request_is_counted_and_becomes_a_queryable_event() {
    let (_tmp, data) = temp_data_dir();
    let config = "[collector]\nflush_interval_ms = 100\n";
    let server = ServerProcess::start_with(&data, Some(config), &["--api-key", KEY]);
    let post = |path: &str, content_type: &str, body: &str| {
        client()
            .post(server.url(path))
            .bearer_auth(KEY)
            .header("Content-Type", content_type)
            .header("User-Agent", "telemetry-test/1")
            .body(body.to_owned())
            .send()
    };
    // Native: two good events and one line of broken JSON.
    let r = post(
        "/v1/events/api",
        "application/x-ndjson",
        "{\"a\":1}\n{\"a\":\n{\"a\":2}\n",
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // Honeycomb batch: two events.
    let r = post(
        "/1/batch/web",
        "application/json",
        r#"[{"data":{"b":1}},{"data":{"b":2}}]"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A content type no door takes.
    let r = post("/v1/events/api", "text/csv", "a,b\n1,2\n")
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);

    // Metrics need the query key, like SQL.
    let r = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client()
        .get(server.url("/metrics"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text().await.unwrap();
    for line in [
        r#"loupe_ingest_requests_total{door="native",code="200"} 1"#,
        r#"loupe_ingest_requests_total{door="native",code="415"} 1"#,
        r#"loupe_ingest_requests_total{door="honeycomb_batch",code="200"} 1"#,
        r#"loupe_ingest_events_accepted_total{door="native"} 2"#,
        r#"loupe_ingest_events_accepted_total{door="honeycomb_batch"} 2"#,
        r#"loupe_ingest_events_rejected_total{door="native",reason="invalid_json"} 1"#,
        r#"loupe_wal_commit_wait_seconds_count 2"#,
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
    // Every sample line is `name{labels} value` with a number, and every family is typed.
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = l.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
        let name = series.split('{').next().unwrap();
        let family = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        assert!(
            text.contains(&format!("# TYPE {family} "))
                || text.contains(&format!("# TYPE {name} ")),
            "{l} has no TYPE"
        );
    }

    // The same three requests, as wide events in the internal dataset.
    let rows = poll_sql(
        &server,
        r#"SELECT "loupe.door" AS door, dataset, "http.status_code" AS status, accepted,
                  rejected, "rejected.invalid_json" AS bad_json, "http.user_agent" AS ua,
                  "error.message" AS msg
           FROM _loupe ORDER BY timestamp"#,
        |rows| rows.len() >= 3,
    )
    .await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["door"], "native");
    assert_eq!(rows[0]["dataset"], "api");
    assert_eq!(rows[0]["status"], 200);
    assert_eq!(
        (&rows[0]["accepted"], &rows[0]["rejected"]),
        (&2.into(), &1.into())
    );
    assert_eq!(rows[0]["bad_json"], 1);
    assert_eq!(rows[0]["ua"], "telemetry-test/1");
    assert_eq!(rows[1]["door"], "honeycomb_batch");
    assert_eq!(rows[1]["dataset"], "web");
    assert_eq!(rows[2]["status"], 415);
    assert!(
        rows[2]["msg"].as_str().unwrap().contains("Content-Type"),
        "{rows:?}"
    );
}
