//! The sampling stage in the write path: what is stored, with which weight, and what survives
//! a restart and a reload.

use std::sync::atomic::AtomicI64;

use loupe_event::BodyFormat;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Map, Value as Json};

use super::*;

const T0: i64 = 1_795_400_000_000_000; // 2026-11-23T02:13:20Z
const SECOND: i64 = 1_000_000;

struct TestClock(AtomicI64);
impl Clock for TestClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn datasets(toml_text: &str) -> DatasetConfigs {
    #[derive(serde::Deserialize)]
    struct File {
        datasets: DatasetConfigs,
    }
    toml::from_str::<File>(toml_text)
        .expect("test config parses")
        .datasets
}

fn open(dir: &Path, toml_text: &str, clock: Arc<TestClock>) -> Collector {
    let config = CollectorConfig {
        datasets: datasets(toml_text),
        ..CollectorConfig::default()
    };
    Collector::open_with_clock(dir, config, clock).unwrap().0
}

/// Every stored row of `dataset`, as JSON objects (flushes first).
async fn stored(c: &Collector, dataset: &str) -> Vec<Map<String, Json>> {
    c.flush_all().await.unwrap();
    let ds = c.store().dataset(&DatasetName::new(dataset).unwrap());
    let mut rows = Vec::new();
    for path in ds.parquet_files().unwrap() {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            // The JSON writer cannot format a UTC timestamp without chrono-tz; the tests here
            // do not look at time.
            let mut batch = batch.unwrap();
            if let Ok(i) = batch.schema().index_of("timestamp") {
                batch.remove_column(i);
            }
            let mut w = arrow::json::ArrayWriter::new(Vec::new());
            w.write(&batch).unwrap();
            w.finish().unwrap();
            let json: Vec<Map<String, Json>> = serde_json::from_slice(&w.into_inner()).unwrap();
            rows.extend(json);
        }
    }
    rows
}

/// `n` events of `route`, each with its own trace id, as NDJSON.
fn events(route: &str, from: usize, n: usize, extra: &str) -> Vec<u8> {
    (from..from + n)
        .map(|i| {
            format!(
                "{{\"http.route\": \"{route}\", \"trace.trace_id\": \"{i:032x}\", \"duration_ms\": {}{extra}}}\n",
                i % 100
            )
        })
        .collect::<String>()
        .into_bytes()
}

async fn send(c: &Collector, dataset: &str, body: &[u8]) -> IngestOutcome {
    c.ingest_body(dataset, body, Encoding::Identity, BodyFormat::Ndjson)
        .await
        .unwrap()
}

fn weight(row: &Map<String, Json>) -> f64 {
    row["sample_rate"].as_f64().unwrap()
}

const FIXED_4: &str = r#"
[datasets.api.sampling]
sampler = "fixed"
rate = 4
[[datasets.api.sampling.rules]]
name = "errors"
when = "error = true"
action = "keep"
[[datasets.api.sampling.rules]]
when = "http.route = '/health'"
action = "drop"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn kept_events_carry_their_weight_and_why_they_were_kept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let c = open(dir.path(), FIXED_4, clock);

    let out = send(&c, "api", &events("/cart", 0, 4000, "")).await;
    assert_eq!((out.accepted, out.rejected), (4000, 0));
    assert!(out.events.iter().all(|s| *s == EventStatus::Accepted));
    // Already sampled upstream 1 in 3: the weights multiply.
    let upstream = send(
        &c,
        "api",
        &events("/cart", 10_000, 4000, ", \"sample_rate\": 3"),
    )
    .await;
    let errors = send(&c, "api", &events("/pay", 20_000, 50, ", \"error\": true")).await;
    let health = send(&c, "api", &events("/health", 30_000, 100, "")).await;
    assert_eq!(errors.sampled_out, 0, "errors are kept by rule");
    assert_eq!(health.sampled_out, 100, "health checks are dropped by rule");

    let rows = stored(&c, "api").await;
    let kept = 4000 - out.sampled_out;
    assert_eq!(
        rows.len(),
        kept + (4000 - upstream.sampled_out) + 50,
        "exactly the kept events are stored"
    );
    // 1 in 4 by the consistent hash: the kept fraction is close to a quarter.
    assert!((850..1150).contains(&kept), "kept {kept} of 4000");
    let by_route = |route: &str| -> Vec<&Map<String, Json>> {
        rows.iter().filter(|r| r["http.route"] == route).collect()
    };
    let cart = by_route("/cart");
    let plain: Vec<_> = cart.iter().filter(|r| weight(r) == 4.0).collect();
    let resampled: Vec<_> = cart.iter().filter(|r| weight(r) == 12.0).collect();
    assert_eq!(plain.len(), kept);
    assert_eq!(
        plain.len() + resampled.len(),
        cart.len(),
        "weights are 4 or 3 x 4"
    );
    assert!(cart.iter().all(|r| r["meta.sample_rule"] == "default"));
    // The weighted count estimates the 8000 /cart events sent within a few percent.
    let estimate: f64 = cart.iter().map(|r| weight(r)).sum();
    let unsampled_truth = 4000.0 + 4000.0 * 3.0;
    assert!(
        (estimate - unsampled_truth).abs() / unsampled_truth < 0.1,
        "weighted count {estimate} vs {unsampled_truth}"
    );
    let pay = by_route("/pay");
    assert_eq!(pay.len(), 50);
    assert!(
        pay.iter()
            .all(|r| weight(r) == 1.0 && r["meta.sample_rule"] == "errors")
    );
    assert!(by_route("/health").is_empty());

    let metrics = c.render_metrics();
    let kept_total = kept + (4000 - upstream.sampled_out) + 50;
    assert!(
        metrics.contains(&format!(
            "loupe_sampling_events_total{{dataset=\"api\",decision=\"kept\"}} {kept_total}"
        )),
        "{metrics}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn datasets_without_a_section_and_the_internal_one_are_not_sampled() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let c = open(
        dir.path(),
        "[datasets.api.sampling]\nsampler = \"fixed\"\nrate = 100\n",
        clock.clone(),
    );
    let out = send(&c, "web", &events("/", 0, 500, ", \"sample_rate\": 2")).await;
    assert_eq!(out.sampled_out, 0);
    let rows = stored(&c, "web").await;
    assert_eq!(rows.len(), 500);
    assert!(rows.iter().all(|r| weight(r) == 2.0));
    assert!(rows.iter().all(|r| !r.contains_key("meta.sample_rule")));
    c.shutdown().await;

    // "*" applies to every client dataset without its own section, never to `_loupe`.
    let dir = tempfile::tempdir().unwrap();
    let c = open(
        dir.path(),
        "[datasets.\"*\".sampling]\nsampler = \"fixed\"\nrate = 100\n",
        clock,
    );
    let out = send(&c, "web", &events("/", 0, 500, "")).await;
    assert!(out.sampled_out > 400, "{}", out.sampled_out);
    c.record_request(&telemetry::RequestReport {
        door: Door::Native,
        status: 200,
        duration: Duration::from_millis(1),
        wire_bytes: None,
        user_agent: None,
        events: None,
        error: None,
    });
    c.append_self_events().await;
    c.flush_all().await.unwrap();
    let internal = c
        .store()
        .dataset(&DatasetName::internal(SELF_DATASET).unwrap());
    assert_eq!(internal.parquet_files().unwrap().len(), 1);
    c.shutdown().await;
}

const EMA: &str = r#"
[datasets.api.sampling]
key_fields = ["http.route"]
sampler = "ema"
goal_rate = 10
interval_ms = 1000
"#;

/// Feeds `seconds` seconds of 2000 /busy events and 20 /rare events a second.
async fn train(c: &Collector, clock: &TestClock, seconds: i64, from: usize) {
    for s in 0..seconds {
        clock.0.store(T0 + s * SECOND, Ordering::Relaxed);
        let base = from + s as usize * 10_000;
        send(c, "api", &events("/busy", base, 2000, "")).await;
        send(c, "api", &events("/rare", base + 5000, 20, "")).await;
    }
}

/// The weights the events of one more second of `/busy` traffic get (marked `probe` = `from`).
async fn busy_weights(c: &Collector, clock: &TestClock, at: i64, from: usize) -> Vec<f64> {
    clock.0.store(at, Ordering::Relaxed);
    let out = send(
        c,
        "api",
        &events("/busy", from, 2000, &format!(", \"probe\": {from}")),
    )
    .await;
    let w: Vec<f64> = stored(c, "api")
        .await
        .iter()
        .filter(|r| r.get("probe").and_then(Json::as_u64) == Some(from as u64))
        .map(weight)
        .collect();
    assert_eq!(w.len(), 2000 - out.sampled_out);
    assert!(!w.is_empty());
    w
}

#[tokio::test(flavor = "multi_thread")]
async fn learned_rates_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let c = open(dir.path(), EMA, clock.clone());
    train(&c, &clock, 5, 0).await;
    c.shutdown().await;
    drop(c);
    let state = Store::new(dir.path())
        .dataset(&DatasetName::new("api").unwrap())
        .sampling_state_path();
    assert!(state.exists(), "shutdown saves the sampler state");

    // A fresh collector on the same directory samples /busy at once at its learned rate.
    let c = open(dir.path(), EMA, clock.clone());
    let w = busy_weights(&c, &clock, T0 + 6 * SECOND, 900_000).await;
    assert!(
        w.iter().all(|&x| x > 5.0),
        "restored rate applies at once: {:?}",
        &w[..w.len().min(5)]
    );
    c.shutdown().await;
    drop(c);

    // Without the snapshot a new sampler keeps the first interval's events whole.
    std::fs::remove_file(&state).unwrap();
    let c = open(dir.path(), EMA, clock.clone());
    let w = busy_weights(&c, &clock, T0 + 8 * SECOND, 950_000).await;
    assert!(
        w.iter().all(|&x| x == 1.0),
        "a fresh sampler warms up first"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_keeps_what_was_learned_and_refuses_a_bad_config_whole() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let c = open(dir.path(), EMA, clock.clone());
    train(&c, &clock, 5, 0).await;

    let bad = datasets(
        "[datasets.api.sampling]\nsampler = \"ema\"\ngoal_rate = 0\n\
         [[datasets.api.sampling.rules]]\nwhen = \">= 500\"\naction = \"keep\"\n",
    );
    let err = c.reload_datasets(&bad).unwrap_err().to_string();
    assert!(err.contains("datasets.api.sampling.goal_rate"), "{err}");
    assert!(err.contains("datasets.api.sampling.rules[0].when"), "{err}");
    let explained = c.explain_sampling("api").unwrap().unwrap();
    assert!(explained.contains("goal_rate 10"), "unchanged: {explained}");

    // A new goal applies at once, from the learned per-key counts.
    let report = c
        .reload_datasets(&datasets(&EMA.replace("goal_rate = 10", "goal_rate = 40")))
        .unwrap();
    assert_eq!(report.rebuilt.len(), 1);
    assert_eq!(report.rebuilt[0].1.restored, vec!["default".to_owned()]);
    assert!(
        c.explain_sampling("api")
            .unwrap()
            .unwrap()
            .contains("goal_rate 40")
    );
    let w = busy_weights(&c, &clock, T0 + 6 * SECOND, 900_000).await;
    assert!(w.iter().all(|&x| x > 20.0), "{:?}", &w[..w.len().min(5)]);

    // Removing the section stops sampling the dataset.
    let report = c.reload_datasets(&DatasetConfigs::new()).unwrap();
    assert_eq!(report.stopped, vec!["api".to_owned()]);
    let out = send(&c, "api", &events("/busy", 990_000, 100, "")).await;
    assert_eq!(out.sampled_out, 0);
    assert_eq!(c.explain_sampling("api").unwrap(), None);
    c.shutdown().await;
}

#[test]
fn dataset_sections_are_checked_at_open_with_their_paths() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        datasets: datasets(
            "[datasets.\"Bad/Name\".sampling]\nsampler = \"fixed\"\nrate = 2\n\
             [datasets.api.sampling]\nsampler = \"throughput\"\n",
        ),
        ..CollectorConfig::default()
    };
    let Err(Error::InvalidConfig { problems }) = Collector::open(dir.path(), config) else {
        panic!("invalid dataset sections must be refused");
    };
    assert!(
        problems.iter().any(|p| p.starts_with("datasets.Bad/Name")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("datasets.api.sampling.goal_events_per_second")),
        "{problems:?}"
    );
}
