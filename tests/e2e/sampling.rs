//! Sampling through the binary: `loupe sampling check|simulate`, a server that samples what
//! every door receives and records the weights, a reload by SIGHUP, and sampler state that
//! survives `kill -9`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{LOUPE, POLL_DEADLINE, ServerProcess, client, poll_sql, temp_data_dir};

/// `n` NDJSON events of `route`, each with its own trace id (numbered from `from`).
fn ndjson(route: &str, from: usize, n: usize, extra: &str) -> String {
    (from..from + n)
        .map(|i| {
            format!(
                "{{\"http.route\":\"{route}\",\"trace.trace_id\":\"{i:032x}\",\"duration_ms\":{}{extra}}}\n",
                10 + i % 90
            )
        })
        .collect()
}

async fn post(server: &ServerProcess, path: &str, content_type: &str, body: String) -> Value {
    let r = client()
        .post(server.url(path))
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

fn loupe(args: &[&str], config: &Path) -> std::process::Output {
    Command::new(LOUPE)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[test]
fn check_points_at_the_line_and_explains_a_valid_config() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[datasets.api.sampling]\nsampler = \"ema\"\n\n[[datasets.api.sampling.rules]]\n\
         when = \"http.status_code >= five\"\naction = \"keep\"\n",
    )
    .unwrap();
    let out = Command::new(LOUPE)
        .args(["sampling", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 5: datasets.api.sampling.rules[0].when"),
        "{err}"
    );

    let good = tmp.path().join("good.toml");
    std::fs::write(
        &good,
        "[datasets.api.sampling]\nkey_fields = [\"http.route\"]\ngoal_rate = 20\n\
         [[datasets.api.sampling.rules]]\nname = \"errors\"\nwhen = \"error = true\"\naction = \"keep\"\n",
    )
    .unwrap();
    let out = Command::new(LOUPE)
        .args(["sampling", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    // Every default is filled in: the sampler kind and its interval were not written.
    assert!(
        text.contains("\"errors\": when error = true -> keep"),
        "{text}"
    );
    assert!(
        text.contains("ema, goal_rate 20 over interval_ms 30000"),
        "{text}"
    );
}

#[test]
fn simulate_reports_seen_kept_and_weighted_per_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("loupe.toml");
    std::fs::write(
        &config,
        "[datasets.\"*\".sampling]\nsampler = \"fixed\"\nrate = 10\n\
         [[datasets.\"*\".sampling.rules]]\nname = \"errors\"\nwhen = \"error = true\"\naction = \"keep\"\n",
    )
    .unwrap();
    let events = tmp.path().join("events.ndjson");
    let body = ndjson("/a", 0, 5000, "") + &ndjson("/b", 10_000, 40, ",\"error\":true") + "{oops\n";
    std::fs::write(&events, body).unwrap();
    let out = loupe(
        &[
            "sampling",
            "simulate",
            "--dataset",
            "api",
            "--events-per-second",
            "1000",
            "--format",
            "json",
            events.to_str().unwrap(),
        ],
        &config,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["seen"], 5040);
    assert_eq!(report["rejected"], 1);
    let keys = report["keys"].as_array().unwrap();
    let errors = keys.iter().find(|k| k["rule"] == "errors").unwrap();
    assert_eq!(
        (errors["seen"].as_u64(), errors["kept"].as_u64()),
        (Some(40), Some(40))
    );
    let rest = keys.iter().find(|k| k["rule"] == "default").unwrap();
    let kept = rest["kept"].as_u64().unwrap();
    assert!((400..600).contains(&kept), "1 in 10 of 5000: {kept}");
    assert_eq!(rest["weighted"].as_f64().unwrap(), kept as f64 * 10.0);

    // A dataset no section covers is an error that says so.
    std::fs::write(
        &config,
        "[datasets.web.sampling]\nsampler = \"fixed\"\nrate = 2\n",
    )
    .unwrap();
    let out = loupe(
        &[
            "sampling",
            "simulate",
            "--dataset",
            "api",
            events.to_str().unwrap(),
        ],
        &config,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dataset api is not sampled"));
}

const FIXED: &str = "[collector]\nflush_interval_ms = 100\n\
    [datasets.api.sampling]\nsampler = \"fixed\"\nrate = 5\n\
    [[datasets.api.sampling.rules]]\nname = \"errors\"\nwhen = \"error = true\"\naction = \"keep\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn every_door_is_sampled_with_upstream_weights_multiplied_and_sighup_reloads() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(FIXED));
    let native = post(
        &server,
        "/v1/events/api",
        "application/x-ndjson",
        ndjson("/a", 0, 3000, ""),
    )
    .await;
    // Honeycomb clients that sampled 1 in 2 already say so.
    let batch: Vec<Value> = (0..3000)
        .map(|i| {
            serde_json::json!({"samplerate": 2, "data": {
                "http.route": "/hc", "trace.trace_id": format!("{:032x}", 50_000 + i)}})
        })
        .collect();
    let hc = post(
        &server,
        "/1/batch/api",
        "application/json",
        serde_json::to_string(&batch).unwrap(),
    )
    .await;
    // Honeycomb answers one status per event: sampled-out events are accepted too.
    let statuses = hc.as_array().unwrap();
    assert_eq!(statuses.len(), 3000);
    assert!(
        statuses.iter().all(|s| s["status"] == 202),
        "{:?}",
        statuses[0]
    );
    let errors = post(
        &server,
        "/v1/events/api",
        "application/x-ndjson",
        ndjson("/e", 90_000, 30, ",\"error\":true"),
    )
    .await;
    assert_eq!(errors["sampled_out"], 0);
    let native_kept = 3000 - native["sampled_out"].as_u64().unwrap();
    assert!((450..750).contains(&native_kept), "{native_kept}");

    let rows = poll_sql(
        &server,
        "SELECT \"http.route\" AS route, \"meta.sample_rule\" AS rule, count(*) AS n, \
         min(sample_rate) AS lo, max(sample_rate) AS hi, sum(sample_rate) AS w \
         FROM api GROUP BY 1, 2 ORDER BY 1",
        |rows| rows.len() == 3 && rows[0]["n"].as_u64() == Some(native_kept),
    )
    .await;
    assert_eq!(
        (rows[0]["lo"].as_f64(), rows[0]["hi"].as_f64()),
        (Some(5.0), Some(5.0))
    );
    assert_eq!(rows[1]["route"], "/e");
    assert_eq!(
        (rows[1]["rule"].as_str(), rows[1]["n"].as_u64()),
        (Some("errors"), Some(30))
    );
    assert_eq!(rows[1]["hi"].as_f64(), Some(1.0));
    // Upstream 2 x this stage's 5: each kept Honeycomb event stands for 10.
    assert_eq!(
        (rows[2]["lo"].as_f64(), rows[2]["hi"].as_f64()),
        (Some(10.0), Some(10.0))
    );
    let hc_estimate = rows[2]["w"].as_f64().unwrap();
    assert!(
        (hc_estimate - 6000.0).abs() < 0.2 * 6000.0,
        "3000 events sampled 1 in 2 upstream stand for 6000: {hc_estimate}"
    );

    // A new rate by SIGHUP; the reload counter says when it is in.
    std::fs::write(
        data.with_extension("toml"),
        FIXED.replace("rate = 5", "rate = 50"),
    )
    .unwrap();
    #[allow(unsafe_code)]
    // SAFETY: kill(2) on the child we spawned, with a valid signal; no memory effects.
    let rc = unsafe { libc::kill(server.pid() as i32, libc::SIGHUP) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        let metrics = client()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("loupe_sampling_reloads_total{result=\"ok\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reload was not applied within {POLL_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    post(
        &server,
        "/v1/events/api",
        "application/x-ndjson",
        ndjson("/z", 200_000, 5000, ""),
    )
    .await;
    let rows = poll_sql(
        &server,
        "SELECT min(sample_rate) AS lo, max(sample_rate) AS hi, count(*) AS n FROM api WHERE \"http.route\" = '/z'",
        |rows| rows.first().is_some_and(|r| r["n"].as_u64().unwrap_or(0) > 0),
    )
    .await;
    assert_eq!(
        (rows[0]["lo"].as_f64(), rows[0]["hi"].as_f64()),
        (Some(50.0), Some(50.0))
    );
}

const EMA: &str = "[collector]\nflush_interval_ms = 100\nsampling_save_interval_ms = 50\n\
    [datasets.api.sampling]\nkey_fields = [\"http.route\"]\nsampler = \"ema\"\ngoal_rate = 10\ninterval_ms = 100\n";

/// The saved state's learned rate of `key`, if the state file has one above 1.
fn saved_rate(data: &Path, key: &str) -> Option<f64> {
    let text = std::fs::read_to_string(data.join("api/_sampling/state.json")).ok()?;
    let state: Value = serde_json::from_str(&text).ok()?;
    state["samplers"][0]["keys"]
        .as_array()?
        .iter()
        .find(|k| k["key"] == key)
        .and_then(|k| k["rate"].as_f64())
        .filter(|&r| r > 1.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn learned_rates_and_every_kept_ack_survive_kill_9() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(EMA));
    let mut acked_kept = 0;
    let mut i = 0;
    // Traffic until the sampler has learned a rate for /busy and saved it.
    while saved_rate(&data, "/busy").is_none() {
        assert!(i < 2000, "no learned rate was saved");
        let out = post(
            &server,
            "/v1/events/api",
            "application/x-ndjson",
            ndjson("/busy", i * 500, 500, ""),
        )
        .await;
        acked_kept += 500 - out["sampled_out"].as_u64().unwrap();
        i += 1;
    }
    server.kill();

    let server = ServerProcess::start(&data, Some(EMA));
    // Every acknowledged kept event is there, once.
    poll_sql(&server, "SELECT count(*) AS n FROM api", |rows| {
        rows[0]["n"].as_u64() == Some(acked_kept)
    })
    .await;
    // The restored rate applies to the first request: no warm-up at rate 1.
    let out = post(
        &server,
        "/v1/events/api",
        "application/x-ndjson",
        ndjson("/busy", 10_000_000, 500, ",\"probe\":1"),
    )
    .await;
    assert!(
        out["sampled_out"].as_u64().unwrap() > 100,
        "sampled out: {}",
        out["sampled_out"]
    );
    let rows = poll_sql(
        &server,
        "SELECT min(sample_rate) AS lo FROM api WHERE probe = 1",
        |rows| rows.first().is_some_and(|r| r["lo"].is_number()),
    )
    .await;
    assert!(rows[0]["lo"].as_f64().unwrap() > 1.0, "{rows:?}");
}
