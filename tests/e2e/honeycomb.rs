//! The Honeycomb event API on a real `loupe serve`, driven by Honeycomb's own Python client
//! (libhoney, from PyPI) and by hand for the single-event door's headers.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

use crate::support::{ServerProcess, client, poll_sql, temp_data_dir};

const FAST_FLUSH: &str = "[collector]\nflush_interval_ms = 50\n";
const KEY: &str = "honeycomb-key-0123456789";
const LIBHONEY: &str = "libhoney==2.4.0";

fn libhoney_path() -> PathBuf {
    crate::support::pip_target(LIBHONEY)
}

/// Sends 100 events (sample rate 4, fixed times, a nested object) and one with a field name
/// loupe refuses, through libhoney's batching transmission; prints each response's status.
const SCRIPT: &str = r#"
import datetime, json, sys, libhoney
host, key = sys.argv[1], sys.argv[2]
libhoney.init(writekey=key, dataset="Shop", api_host=host, max_batch_size=40, send_frequency=0.05)
start = datetime.datetime(2026, 11, 23, 1, 0, 0, tzinfo=datetime.timezone.utc)
for i in range(100):
    ev = libhoney.new_event()
    ev.add({"i": i, "http.route": "/cart", "duration_ms": float(i), "user": {"plan": "pro"}})
    ev.created_at = start + datetime.timedelta(seconds=i)
    ev.sample_rate = 4
    ev.metadata = i
    ev.send_presampled()
bad = libhoney.new_event()
bad.add({"x.__raw": 1})
bad.metadata = "bad"
bad.send()
libhoney.flush()
q = libhoney.responses()
out = {}
for _ in range(101):
    r = q.get(timeout=30)
    out[str(r["metadata"])] = [r["status_code"], r.get("error") or ""]
libhoney.close()
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libhoney_batches_are_stored_with_their_weights_and_times() {
    let deps = tokio::task::spawn_blocking(libhoney_path).await.unwrap();
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start_with(&data, Some(FAST_FLUSH), &["--api-key", KEY]);
    let base = server.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", SCRIPT, &base, KEY])
            .env("PYTHONPATH", &deps)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "libhoney script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let statuses: Value = serde_json::from_slice(&out.stdout).unwrap();
    for i in 0..100 {
        assert_eq!(
            statuses[i.to_string()][0],
            202,
            "event {i}: {}",
            statuses[i.to_string()]
        );
    }
    assert_eq!(statuses["bad"][0], 400);
    assert!(
        statuses["bad"][1].as_str().unwrap().contains("__raw"),
        "{}",
        statuses["bad"]
    );

    // Dataset slugs are case-insensitive: "Shop" is the dataset shop.
    let rows = poll_sql(
        &server,
        "SELECT count(*) AS n, sum(sample_rate) AS weight, min(timestamp) AS first, \
         max(timestamp) AS last, count(DISTINCT \"user.plan\") AS plans, max(\"user.plan\") AS plan FROM shop",
        |rows| rows.first().is_some_and(|r| r["n"] == 100),
    )
    .await;
    let r = &rows[0];
    assert_eq!(r["weight"], 400.0, "each event stands for 4: {r}");
    assert_eq!(r["first"], "2026-11-23T01:00:00Z");
    assert_eq!(r["last"], "2026-11-23T01:01:39Z");
    assert_eq!(
        (r["plans"].as_i64(), r["plan"].as_str()),
        (Some(1), Some("pro"))
    );
}

#[tokio::test]
async fn the_single_event_door_reads_time_and_rate_from_headers() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start_with(&data, Some(FAST_FLUSH), &["--api-key", KEY]);
    let http = client();
    let post = |headers: Vec<(&'static str, &'static str)>, body: &'static str| {
        let mut req = http
            .post(server.url("/1/events/Orders"))
            .header("x-honeycomb-team", KEY)
            .body(body);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let r = post(
        vec![
            ("x-honeycomb-event-time", "2026-11-23T02:00:00Z"),
            ("x-honeycomb-samplerate", "10"),
        ],
        r#"{"order": {"total_cents": 1250}}"#,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = post(vec![("x-honeycomb-samplerate", "often")], r#"{"order": 1}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("X-Honeycomb-Samplerate"),
        "{body}"
    );
    let r = post(vec![], r#"[1, 2]"#).await.unwrap();
    assert_eq!(r.status(), 400, "the single-event door takes one object");

    let rows = poll_sql(
        &server,
        "SELECT timestamp, sample_rate, \"order.total_cents\" AS total FROM orders",
        |rows| rows.len() == 1,
    )
    .await;
    assert_eq!(rows[0]["timestamp"], "2026-11-23T02:00:00Z");
    assert_eq!(rows[0]["sample_rate"], 10.0);
    assert_eq!(rows[0]["total"], 1250);
}
