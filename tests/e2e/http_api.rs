//! The HTTP API of a real `loupe serve`: ingest in every body shape, errors, SQL.

use std::io::Write;

use serde_json::{Value, json};

use crate::support::{ServerProcess, client, poll_sql, temp_data_dir};

const FAST_FLUSH: &str = "[collector]\nflush_interval_ms = 50\n";

async fn post(
    server: &ServerProcess,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = client().post(server.url(path)).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn every_body_shape_is_ingested_and_queryable() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(FAST_FLUSH));

    let (s, r) = post(
        &server,
        "/v1/events/api",
        &[JSON],
        br#"{"k": "object", "http": {"route": "/a"}}"#.to_vec(),
    )
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)), "{r}");

    let (s, r) = post(
        &server,
        "/v1/events/api",
        &[JSON],
        br#"[{"k": "array"}, {"k": "array"}]"#.to_vec(),
    )
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(2)), "{r}");

    let nd = b"{\"k\": \"ndjson\"}\n{\"k\": \"ndjson\"}\n{\"k\": \"ndjson\"}\n".to_vec();
    let (s, r) = post(
        &server,
        "/v1/events/api",
        &[("content-type", "application/x-ndjson")],
        nd.clone(),
    )
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(3)), "{r}");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(br#"{"k": "gzip"}"#).unwrap();
    let (s, r) = post(
        &server,
        "/v1/events/api",
        &[JSON, ("content-encoding", "gzip")],
        gz.finish().unwrap(),
    )
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)), "{r}");

    let zs = zstd::encode_all(&br#"[{"k": "zstd"}, {"k": "zstd"}]"#[..], 3).unwrap();
    let (s, r) = post(
        &server,
        "/v1/events/api",
        &[JSON, ("content-encoding", "zstd")],
        zs,
    )
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(2)), "{r}");

    let rows = poll_sql(
        &server,
        "SELECT k, count(*) AS n FROM api GROUP BY k ORDER BY k",
        |r| r.iter().map(|x| x["n"].as_u64().unwrap()).sum::<u64>() == 9,
    )
    .await;
    assert_eq!(
        rows,
        vec![
            json!({"k": "array", "n": 2}),
            json!({"k": "gzip", "n": 1}),
            json!({"k": "ndjson", "n": 3}),
            json!({"k": "object", "n": 1}),
            json!({"k": "zstd", "n": 2}),
        ]
    );
    // nested objects were flattened into dotted columns
    let rows = poll_sql(
        &server,
        r#"SELECT "http.route" AS r FROM api WHERE k = 'object'"#,
        |r| r.len() == 1,
    )
    .await;
    assert_eq!(rows[0]["r"], "/a");
}

#[tokio::test]
async fn a_bad_event_is_reported_and_its_neighbours_are_stored() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(FAST_FLUSH));
    let body = b"{\"i\": 1}\n{\"i\": \n{\"i\": 3, \"sample_rate\": 0.1}\n{\"i\": 4, \"i\": 5}\n{\"i\": 6}\n".to_vec();
    let (s, r) = post(
        &server,
        "/v1/events/mixed",
        &[("content-type", "application/x-ndjson")],
        body,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(r["accepted"], 2);
    assert_eq!(r["rejected"], 3);
    let statuses: Vec<&str> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["accepted", "rejected", "rejected", "rejected", "accepted"]
    );
    assert_eq!(r["events"][1]["code"], "invalid_json");
    assert!(
        r["events"][1]["reason"]
            .as_str()
            .unwrap()
            .contains("line 2"),
        "{r}"
    );
    assert_eq!(r["events"][2]["code"], "bad_sample_rate");
    assert_eq!(r["events"][3]["code"], "duplicate_field");
    let rows = poll_sql(&server, "SELECT i FROM mixed ORDER BY i", |r| r.len() == 2).await;
    assert_eq!(rows, vec![json!({"i": 1}), json!({"i": 6})]);

    // every event rejected: 400, with the same per-event body
    let (s, r) = post(
        &server,
        "/v1/events/mixed",
        &[JSON],
        br#"{"sample_rate": -1}"#.to_vec(),
    )
    .await;
    assert_eq!((s, r["rejected"].as_u64()), (400, Some(1)), "{r}");
}

#[tokio::test]
async fn request_level_errors_are_clear() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(FAST_FLUSH));
    struct Case {
        path: &'static str,
        headers: Vec<(&'static str, &'static str)>,
        body: &'static [u8],
        status: u16,
        mentions: &'static str,
    }
    let case = |path, headers, body, status, mentions| Case {
        path,
        headers,
        body,
        status,
        mentions,
    };
    let form = ("content-type", "application/x-www-form-urlencoded");
    let cases = [
        case("/v1/events/api", vec![form], b"a=1", 415, "Content-Type"),
        case(
            "/v1/events/api",
            vec![JSON, ("content-encoding", "br")],
            b"{}",
            415,
            "Content-Encoding",
        ),
        case(
            "/v1/events/api",
            vec![JSON, ("content-encoding", "gzip")],
            b"not gzip",
            400,
            "gzip",
        ),
        case("/v1/events/api", vec![JSON], b"   ", 400, "empty"),
        case(
            "/v1/events/api",
            vec![JSON],
            b"[{\"a\": 1}, {\"b\":",
            400,
            "JSON array",
        ),
        case(
            "/v1/events/Bad%20Name",
            vec![JSON],
            b"{}",
            400,
            "dataset name",
        ),
        case(
            "/v1/events/..%2F..%2Fetc",
            vec![JSON],
            b"{}",
            400,
            "dataset name",
        ),
    ];
    for c in cases {
        let (s, r) = post(&server, c.path, &c.headers, c.body.to_vec()).await;
        assert_eq!(s, c.status, "{} {:?}: {r}", c.path, c.headers);
        let msg = r["error"].as_str().unwrap_or_default();
        assert!(
            msg.contains(c.mentions),
            "{}: {msg:?} should mention {:?}",
            c.path,
            c.mentions
        );
    }
    // nothing was created for any of them: no dataset directory, inside or outside the root
    let made: Vec<_> = std::fs::read_dir(&data)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name())
                .filter(|n| n != ".lock")
                .collect()
        })
        .unwrap_or_default();
    assert!(made.is_empty(), "{made:?}");
    assert!(!data.parent().unwrap().join("etc").exists());
}

#[tokio::test]
async fn sql_over_http_is_read_only_and_names_errors() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(FAST_FLUSH));
    post(&server, "/v1/events/api", &[JSON], br#"{"a": 1}"#.to_vec()).await;
    poll_sql(&server, "SELECT count(*) AS n FROM api", |r| r[0]["n"] == 1).await;

    let (s, r) = post(
        &server,
        "/api/v1/sql",
        &[JSON],
        serde_json::to_vec(&json!({"sql": "DROP TABLE api"})).unwrap(),
    )
    .await;
    assert_eq!(s, 403, "{r}");
    assert!(r["error"].as_str().unwrap().contains("read-only"));
    let (s, r) = post(
        &server,
        "/api/v1/sql",
        &[],
        b"SELECT nope FROM api".to_vec(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(r["error"].as_str().unwrap().contains("nope"), "{r}");
    let (s, r) = post(
        &server,
        "/api/v1/sql",
        &[JSON],
        br#"{"query": "SELECT 1"}"#.to_vec(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(r["error"].as_str().unwrap().contains("sql"), "{r}");
    let (s, r) = post(
        &server,
        "/api/v1/sql",
        &[JSON],
        br#"{"sql": "SELECT 1 AS one"}"#.to_vec(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(r["rows"], json!([{"one": 1}]));
    assert_eq!(r["columns"], json!([{"name": "one", "type": "Int64"}]));

    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_naming_the_limit() {
    let (_tmp, data) = temp_data_dir();
    let config = "[collector.limits]\nmax_body_bytes = 1000\n";
    let server = ServerProcess::start(&data, Some(config));
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(2000)).into_bytes();
    let (s, r) = post(&server, "/v1/events/api", &[JSON], big.clone()).await;
    assert_eq!(s, 413, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("max_body_bytes"),
        "{r}"
    );
    // small on the wire, over the limit once decompressed
    let zs = zstd::encode_all(&big[..], 3).unwrap();
    assert!(zs.len() < 1000);
    let (s, r) = post(
        &server,
        "/v1/events/api",
        &[JSON, ("content-encoding", "zstd")],
        zs,
    )
    .await;
    assert_eq!(s, 413, "{r}");
    assert!(r["error"].as_str().unwrap().contains("limit 1000"), "{r}");
}

#[tokio::test]
async fn sql_answers_as_an_arrow_stream_when_asked() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float64Type, Int64Type};

    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(FAST_FLUSH));
    let nd = (0..50)
        .map(|i| format!(r#"{{"i": {i}, "duration_ms": {}.5, "sample_rate": 4}}"#, i))
        .collect::<Vec<_>>()
        .join("\n");
    post(&server, "/v1/events/api", &[], nd.into_bytes()).await;
    poll_sql(&server, "SELECT count(*) AS n FROM api", |r| {
        r[0]["n"] == 50
    })
    .await;

    let sql = "SELECT i, wcount(sample_rate) AS n FROM api GROUP BY i ORDER BY i";
    for (url, accept) in [
        (server.url("/api/v1/sql"), Some(loupe_query::ARROW_STREAM)),
        (server.url("/api/v1/sql?format=arrow"), None),
    ] {
        let mut req = client().post(&url).body(sql);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.headers()["content-type"],
            loupe_query::ARROW_STREAM,
            "{url}"
        );
        assert_eq!(resp.headers()["x-loupe-truncated"], "false");
        let bytes = resp.bytes().await.unwrap();
        let reader =
            arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        let schema = reader.schema();
        assert_eq!(schema.field(0).name(), "i");
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 50);
        let b = &batches[0];
        let i = b.column(0).as_primitive::<Int64Type>();
        let n = b.column(1).as_primitive::<Float64Type>();
        assert_eq!((i.value(3), n.value(3)), (3, 4.0));
        assert_eq!(n.null_count(), 0);
    }
    // An unknown format is a clear 400, not JSON by surprise.
    let (s, r) = post(
        &server,
        "/api/v1/sql?format=xml",
        &[],
        sql.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(r["error"].as_str().unwrap().contains("xml"), "{r}");
}

#[tokio::test]
async fn with_default_settings_an_acknowledged_event_is_queryable_within_two_seconds() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, None);
    let (s, r) = post(
        &server,
        "/v1/events/api",
        &[JSON],
        br#"{"seen": "soon"}"#.to_vec(),
    )
    .await;
    assert_eq!((s, r["accepted"].as_u64()), (200, Some(1)), "{r}");
    let acked = std::time::Instant::now();
    poll_sql(
        &server,
        "SELECT count(*) AS n FROM api WHERE seen = 'soon'",
        |r| r.first().is_some_and(|x| x["n"] == 1),
    )
    .await;
    let visible = acked.elapsed();
    // The figure is printed, not asserted: a loaded CI machine can stretch any wall-clock
    // bound. poll_sql above fails the test if the event never becomes visible (a hang guard).
    eprintln!("visible {visible:?} after the acknowledgement");
    // What keeps the 2 s promise, by construction: a lone event is published by the interval
    // flush, which by default runs every second, and a flush of one event takes milliseconds.
    let defaults = loupe_collector::CollectorConfig::default();
    assert!(defaults.flush_interval_ms <= 1_000, "{defaults:?}");
}
