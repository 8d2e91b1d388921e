//! A real `loupe serve` under a heavy query: ingest keeps answering, and the query's limits
//! end it with an error that names them.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{ServerProcess, client, temp_data_dir};

/// A query that keeps both cores busy for minutes (a billion-row aggregation, repartitioned
/// by key) until `timeout_ms` stops it.
const HEAVY: &str =
    "SELECT value % 1000 AS k, count(*) FROM generate_series(1, 1000000000000) GROUP BY 1";

async fn ingest_latencies(server: &ServerProcess, n: usize) -> Vec<Duration> {
    let c = client();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let resp = c
            .post(server.url("/v1/events/api"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"i": {i}, "duration_ms": 12.5}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        out.push(start.elapsed());
    }
    out.sort();
    out
}

#[tokio::test]
async fn ingest_keeps_answering_while_a_heavy_query_runs_and_the_timeout_ends_it() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some("[query]\ntimeout_ms = 5000\n"));
    let before = ingest_latencies(&server, 20).await;

    let url = server.url("/api/v1/sql");
    let query = tokio::spawn(async move {
        let start = Instant::now();
        let resp = client().post(url).body(HEAVY).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap();
        (status, body, start.elapsed())
    });
    // The query is running once the server's query threads are busy; one ingest round trip
    // later it certainly has been planned.
    let during = ingest_latencies(&server, 40).await;
    assert!(
        !query.is_finished(),
        "the heavy query ended before the ingest requests: the test measured nothing"
    );
    let (p50_before, p50_during) = (before[before.len() / 2], during[during.len() / 2]);
    let max_during = *during.last().unwrap();
    eprintln!(
        "ingest latency p50 {p50_before:?} alone, {p50_during:?} beside the query (max {max_during:?})"
    );
    // Latency beside the query is printed, not asserted: on a loaded 2-core CI machine the
    // ratio swings (5x seen with the query on its own runtime), so it cannot tell the
    // designs apart. Where the query's CPU went can: see below.
    assert!(max_during < Duration::from_secs(10), "{during:?}");
    let (status, body, took) = query.await.unwrap();
    assert_eq!(status, 422, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("query.timeout_ms"), "{msg}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(60),
        "{took:?}"
    );

    // The query burned its seconds on the query runtime's threads, not on the threads that
    // serve ingest: that separation is what keeps ingest answering.
    let (query_cpu, other_cpu) = cpu_ticks_by_runtime(server.pid());
    eprintln!("cpu ticks: query threads {query_cpu}, other threads {other_cpu}");
    assert!(
        query_cpu >= 100 && query_cpu > 4 * other_cpu,
        "query threads used {query_cpu} ticks, the rest {other_cpu}"
    );
}

/// CPU time (user + system, in clock ticks) of the process's `loupe-query` threads and of
/// all its other threads, from `/proc/<pid>/task/*/stat` (proc(5): fields 14 and 15).
fn cpu_ticks_by_runtime(pid: u32) -> (u64, u64) {
    let (mut query, mut other) = (0, 0);
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue; // the thread ended between listing and reading
        };
        let (head, tail) = stat.rsplit_once(')').unwrap();
        let fields: Vec<&str> = tail.split_whitespace().collect();
        // `tail` starts at field 3 (state), so utime (14) and stime (15) are at 11 and 12.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        if head.contains("(loupe-query") {
            query += ticks;
        } else {
            other += ticks;
        }
    }
    (query, other)
}

#[tokio::test]
async fn a_query_over_the_memory_limit_gets_422_naming_the_option() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some("[query]\nmemory_limit_bytes = 4194304\n"));
    let resp = client()
        .post(server.url("/api/v1/sql"))
        .body(
            "SELECT count(*) FROM generate_series(1, 2000000) a \
             JOIN generate_series(1, 2000000) b ON a.value = b.value",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("query.memory_limit_bytes") && msg.contains("4 MiB"),
        "{msg}"
    );
    // The server is fine and answers the next query.
    let resp = client()
        .post(server.url("/api/v1/sql"))
        .body("SELECT 1 AS one")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn bad_query_settings_are_refused_at_start_naming_the_option() {
    let (tmp, data) = temp_data_dir();
    let config = tmp.path().join("bad.toml");
    std::fs::write(&config, "[query]\ntimeout_ms = 0\n").unwrap();
    let out = std::process::Command::new(crate::support::LOUPE)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--http", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("query.timeout_ms"), "{err}");
}
