//! SLOs through a real `loupe serve` and a real Prometheus (Debian's `prometheus` 2.42, which
//! `.ci/run` installs): Prometheus scrapes `/metrics` and receives remote write, and what it
//! stores is read back with PromQL and compared with the events sent.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::support::{POLL_DEADLINE, ServerProcess, client, temp_data_dir};

const SLO: &str = r#"
apiVersion: openslo/v1
kind: SLO
metadata: {name: checkout-availability}
spec:
  service: checkout
  indicator:
    metadata: {name: checkout-ok}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: loupe, spec: {filter: "\"http.status_code\" < 500"}}}
        total: {metricSource: {type: loupe, spec: {dataset: shop, filter: "name = 'checkout'"}}}
  timeWindow: [{duration: 30d, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{target: 0.999}]
"#;

/// A Prometheus child process.
struct Prometheus {
    child: Child,
    base: String,
}

impl Prometheus {
    /// Starts Prometheus on `port` with remote write on, scraping `scrape` every second.
    fn start(dir: &Path, port: u16, scrape: &str) -> Prometheus {
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: loupe\n    static_configs: [{{targets: ['{scrape}']}}]\n"
        );
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "the `prometheus` binary (Debian package `prometheus`, which .ci/run installs: \
                 apt-get install prometheus)",
            );
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn ready(&self) {
        let deadline = Instant::now() + POLL_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(r) = client().get(format!("{}/-/ready", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("prometheus did not become ready in {POLL_DEADLINE:?}");
    }

    /// Polls an instant PromQL query until it returns a sample; its value.
    async fn value(&self, promql: &str) -> f64 {
        let deadline = Instant::now() + POLL_DEADLINE;
        let mut last = Json::Null;
        while Instant::now() < deadline {
            let body = get_json(&format!("{}/api/v1/query", self.base), &[("query", promql)]).await;
            if let Some(v) = body["data"]["result"][0]["value"][1].as_str() {
                return v.parse().unwrap();
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no sample for {promql} in {POLL_DEADLINE:?}: {last}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_json(url: &str, query: &[(&str, &str)]) -> Json {
    let resp = client().get(url).query(query).send().await.unwrap();
    resp.json().await.unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_and_receives_slo_series_that_match_the_events() {
    let (tmp, data) = temp_data_dir();
    let slo_file = tmp.path().join("slos.yaml");
    std::fs::write(&slo_file, SLO).unwrap();
    // Prometheus's port is chosen first, so loupe can push to it from its first refresh.
    let prom_port = free_port();
    let config = format!(
        "[slo]\ndefinitions = \"{}\"\nrefresh_interval_secs = 1\n\
         remote_write_url = \"http://127.0.0.1:{prom_port}/api/v1/write\"\n",
        slo_file.display()
    );
    let server = ServerProcess::start(&data, Some(&config));

    // 400 checkout requests over the last 20 minutes, successes sampled 1 in 10 upstream
    // (weight 10), errors kept (weight 1); and other events the SLO does not count.
    let now = now_us();
    let mut events = Vec::new();
    let (mut good, mut total) = (0.0, 0.0);
    for i in 0..400i64 {
        let error = i % 16 == 0;
        let w = if error { 1.0 } else { 10.0 };
        total += w;
        if !error {
            good += w;
        }
        events.push(json!({
            "timestamp": (now - 20 * 60_000_000 + i * 3_000_000) as f64 / 1e6,
            "name": "checkout",
            "http.status_code": if error { 503 } else { 200 },
            "sample_rate": w,
        }));
        events.push(json!({
            "timestamp": (now - 20 * 60_000_000 + i * 3_000_000) as f64 / 1e6,
            "name": "health",
            "http.status_code": 500,
        }));
    }
    let resp = client()
        .post(server.url("/v1/events/shop"))
        .json(&events)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
    let error_ratio = (total - good) / total;

    // The JSON API, once the events are in Parquet: the weighted counts and the burn.
    let deadline = Instant::now() + POLL_DEADLINE;
    let status = loop {
        let body = get_json(
            &server.url("/api/v1/slo/checkout-availability"),
            &[("window", "2h")],
        )
        .await;
        let o = &body["objectives"][0];
        if o["period"]["events"]["total"].as_f64() == Some(total) {
            break body;
        }
        assert!(Instant::now() < deadline, "the events never showed: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let o = &status["objectives"][0];
    assert_eq!(o["period"]["events"]["good"].as_f64(), Some(good));
    assert_eq!(o["period"]["events"]["stored_total"], 400);
    let hour = o["windows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["window"] == "1h")
        .unwrap();
    let e = hour["error_ratio"].as_f64().unwrap();
    assert!((e - error_ratio).abs() < 1e-12, "{e} vs {error_ratio}");
    assert!((hour["burn_rate"].as_f64().unwrap() - error_ratio / 0.001).abs() < 1e-9);
    assert!(
        o["windows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["window"] == "2h"),
        "the window asked for is there"
    );
    // 25 bad events, 0.66% of the weight: a burn of 6.6 in every window that holds them,
    // over the 6h/30m page (6) and the 3d/6h ticket (1), under the 1h/5m page (14.4)
    assert_eq!(o["firing"], json!(["page", "ticket"]), "{o}");
    assert_eq!(o["alerts"][0]["fires"], false);

    // A real Prometheus: scrapes /metrics, and receives remote write on its own.
    let prom = Prometheus::start(
        &tmp.path().join("prometheus"),
        prom_port,
        server.base.trim_start_matches("http://"),
    );
    prom.ready().await;
    let selector = r#"sloth_slo="checkout-availability",sloth_window="1h""#;
    let scraped = prom
        .value(&format!(
            r#"slo:sli_error:ratio_rate1h{{{selector},job="loupe"}}"#
        ))
        .await;
    assert!(
        (scraped - error_ratio).abs() < 1e-12,
        "scraped {scraped} vs {error_ratio}"
    );
    // remote-written series carry no job label: only loupe's own
    let pushed = prom
        .value(&format!(
            r#"slo:sli_error:ratio_rate1h{{{selector},job=""}}"#
        ))
        .await;
    assert!(
        (pushed - error_ratio).abs() < 1e-12,
        "pushed {pushed} vs {error_ratio}"
    );
    let counted = prom
        .value(r#"loupe_slo_events_total{slo="checkout-availability",outcome="total",job="loupe"}"#)
        .await;
    assert_eq!(counted, total);
    let objective = prom
        .value(r#"slo:objective:ratio{sloth_slo="checkout-availability",job=""}"#)
        .await;
    assert_eq!(objective, 0.999);
}
