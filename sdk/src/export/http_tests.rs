//! Tests of the HTTP exporter against a fake collector that answers as scripted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use loupe_event::Value;
use serde_json::json;

use super::*;
use crate::wide_event::WideEvent;

/// What the fake answers to one request.
#[derive(Clone)]
enum Reply {
    Status(u16, Option<&'static str>),
    /// Waits until the test calls `release`, then accepts.
    Hold,
}

struct Received {
    at: Instant,
    auth: Option<String>,
    encoding: Option<String>,
    events: Vec<serde_json::Value>,
}

#[derive(Default)]
struct FakeState {
    script: Mutex<VecDeque<Reply>>,
    received: Mutex<Vec<Received>>,
    arrived: Condvar,
    release: tokio::sync::Notify,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<FakeState>,
}

impl Fake {
    fn start(script: Vec<Reply>) -> Fake {
        let state = Arc::new(FakeState {
            script: Mutex::new(script.into()),
            ..FakeState::default()
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/v1/events/{dataset}", axum::routing::post(ingest))
            .with_state(state.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        Fake { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Blocks until `n` requests have arrived (bounded: fails the test after 10 s).
    fn wait_for_requests(&self, n: usize) {
        let got = self.state.received.lock().unwrap();
        let (got, timeout) = self
            .state
            .arrived
            .wait_timeout_while(got, Duration::from_secs(10), |r| r.len() < n)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} of {n} requests arrived",
            got.len()
        );
    }

    fn received<R>(&self, f: impl FnOnce(&[Received]) -> R) -> R {
        f(&self.state.received.lock().unwrap())
    }

    fn all_events(&self) -> Vec<serde_json::Value> {
        self.received(|r| r.iter().flat_map(|r| r.events.clone()).collect())
    }
}

async fn ingest(
    State(state): State<Arc<FakeState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let raw = zstd::stream::decode_all(&body[..]).expect("the exporter sends zstd");
    let events: Vec<serde_json::Value> = raw
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("each line is JSON"))
        .collect();
    let statuses: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            if e.get("bad") == Some(&json!(true)) {
                json!({"status": "rejected", "code": "invalid", "reason": "field bad is not welcome"})
            } else {
                json!({"status": "accepted"})
            }
        })
        .collect();
    let reply = state.script.lock().unwrap().pop_front();
    {
        let mut received = state.received.lock().unwrap();
        received.push(Received {
            at: Instant::now(),
            auth: header("authorization"),
            encoding: header("content-encoding"),
            events,
        });
        state.arrived.notify_all();
    }
    match reply {
        Some(Reply::Status(code, retry_after)) => {
            let mut resp = (StatusCode::from_u16(code).unwrap(), "scripted").into_response();
            if let Some(ra) = retry_after {
                resp.headers_mut()
                    .insert("retry-after", ra.parse().unwrap());
            }
            return resp;
        }
        Some(Reply::Hold) => state.release.notified().await,
        None => {}
    }
    axum::Json(json!({"dataset": "d", "events": statuses})).into_response()
}

fn event(i: i64) -> WideEvent {
    WideEvent::from_fields([
        ("i".into(), Value::Int(i)),
        ("name".into(), Value::from("job.run")),
    ])
}

fn quick(url: String) -> HttpExporterBuilder {
    HttpExporter::builder(url, "d")
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

#[test]
fn delivers_every_event_in_compressed_authenticated_batches() {
    let fake = Fake::start(vec![]);
    let (exporter, guard) = quick(fake.url())
        .api_key("k3y")
        .batch_max_events(500)
        .build()
        .unwrap();
    for i in 0..1200 {
        exporter.export(event(i));
    }
    let stats = guard.flush(Duration::from_secs(10));
    assert_eq!(stats.sent, 1200);
    assert_eq!(stats.pending, 0);
    let json: usize = (0..1200)
        .map(|i| event(i).to_event().to_json().len() + 1)
        .sum();
    assert_eq!(stats.sent_bytes, json as u64);
    let mut seen: Vec<i64> = fake
        .all_events()
        .iter()
        .map(|e| e["i"].as_i64().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..1200).collect::<Vec<_>>());
    fake.received(|r| {
        assert!(r.len() >= 3, "1200 events in batches of at most 500");
        for req in r {
            assert!(req.events.len() <= 500);
            assert_eq!(req.auth.as_deref(), Some("Bearer k3y"));
            assert_eq!(req.encoding.as_deref(), Some("zstd"));
        }
    });
}

#[test]
fn honours_retry_after_on_429() {
    let fake = Fake::start(vec![Reply::Status(429, Some("1"))]);
    let (exporter, guard) = quick(fake.url()).build().unwrap();
    exporter.export(event(1));
    let stats = guard.flush(Duration::from_secs(10));
    assert_eq!(stats.sent, 1);
    fake.received(|r| {
        assert_eq!(r.len(), 2);
        let waited = r[1].at - r[0].at;
        // The backoff alone would have waited at most 50 ms.
        assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    });
}

#[test]
fn retries_server_errors_and_not_permanent_refusals() {
    let fake = Fake::start(vec![Reply::Status(503, None), Reply::Status(500, None)]);
    let (exporter, guard) = quick(fake.url()).build().unwrap();
    exporter.export(event(1));
    assert_eq!(guard.flush(Duration::from_secs(10)).sent, 1);
    fake.received(|r| assert_eq!(r.len(), 3));

    let fake = Fake::start(vec![Reply::Status(404, None)]);
    let (exporter, guard) = quick(fake.url()).build().unwrap();
    exporter.export(event(1));
    let stats = guard.flush(Duration::from_secs(10));
    assert_eq!((stats.sent, stats.rejected), (0, 1));
    fake.received(|r| assert_eq!(r.len(), 1, "a 404 is not retried"));
    assert!(exporter.last_error().unwrap().contains("404"));
}

#[test]
fn events_the_collector_refuses_are_counted_with_the_reason() {
    let fake = Fake::start(vec![]);
    let (exporter, guard) = quick(fake.url()).build().unwrap();
    for i in 0..10 {
        let mut e = event(i);
        if i % 5 == 0 {
            e.fields.push(("bad".into(), Value::Bool(true)));
        }
        exporter.export(e);
    }
    let stats = guard.flush(Duration::from_secs(10));
    assert_eq!((stats.sent, stats.rejected), (8, 2));
    assert_eq!(
        exporter.last_error().as_deref(),
        Some("field bad is not welcome")
    );
}

#[test]
fn a_dead_collector_costs_the_service_only_dropped_counts() {
    // A port nothing listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (exporter, guard) = HttpExporter::builder(format!("http://{addr}"), "d")
        .queue_capacity(50)
        .batch_max_events(10)
        .retry_backoff(Duration::from_millis(20), Duration::from_millis(100))
        .retry_for(Duration::from_secs(60))
        .shutdown_deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    let n = 100_000u64;
    // If export ever waited for the collector this loop would not finish.
    for i in 0..n {
        exporter.export(event(i as i64));
    }
    let during = exporter.stats();
    assert!(
        during.dropped_queue_full >= n - 50 - 10,
        "at most queue + one batch held, dropped {}",
        during.dropped_queue_full
    );
    drop(guard);
    // The drop waits for the worker only a little past the shutdown deadline; on a loaded
    // machine the worker may give up on the last batch just after. It must give up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = exporter.stats();
    while after.pending > 0 {
        assert!(
            Instant::now() < deadline,
            "shutdown accounts for every event: {after:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
        after = exporter.stats();
    }
    assert_eq!(after.sent, 0);
    assert_eq!(after.dropped_queue_full + after.dropped_failed, n);
    assert!(after.dropped_failed >= 1);
    // After shutdown, export still never blocks and still counts.
    exporter.export(event(0));
    assert_eq!(
        exporter.stats().dropped_queue_full,
        after.dropped_queue_full + 1
    );
    assert!(exporter.last_error().unwrap().contains(&addr.to_string()));
}

#[test]
fn dropped_events_are_reported_to_the_collector() {
    let fake = Fake::start(vec![Reply::Hold]);
    let (exporter, guard) = quick(fake.url())
        .queue_capacity(1)
        .batch_max_events(1)
        .build()
        .unwrap();
    exporter.export(event(0));
    // The worker is now stuck sending event 0: one more fits in the queue, eight do not.
    fake.wait_for_requests(1);
    for i in 1..10 {
        exporter.export(event(i));
    }
    assert_eq!(exporter.stats().dropped_queue_full, 8);
    fake.state.release.notify_one();
    let stats = guard.flush(Duration::from_secs(10));
    assert_eq!(stats.sent, 2);
    let events = fake.all_events();
    let report: Vec<_> = events
        .iter()
        .filter(|e| e["name"] == DROPPED_EVENT_NAME)
        .collect();
    assert_eq!(report.len(), 1, "{events:?}");
    assert_eq!(report[0][DROPPED_COUNT_FIELD], 8);
}

#[test]
fn dropping_the_guard_delivers_what_is_queued() {
    let fake = Fake::start(vec![]);
    let (exporter, guard) = quick(fake.url())
        .batch_max_delay(Duration::from_secs(3600))
        .batch_max_events(10_000)
        .build()
        .unwrap();
    for i in 0..300 {
        exporter.export(event(i));
    }
    drop(guard);
    assert_eq!(fake.all_events().len(), 300);
    assert_eq!(exporter.stats().sent, 300);
}

#[test]
fn bad_settings_are_refused_by_name() {
    let e = |b: HttpExporterBuilder| b.build().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e(HttpExporter::builder("ftp://x", "d")).contains("ftp://x"));
    if !cfg!(feature = "tls") {
        assert!(e(HttpExporter::builder("https://x", "d")).contains("`tls` feature"));
    }
    assert!(e(HttpExporter::builder("http://x", "../etc")).contains("../etc"));
    assert!(e(HttpExporter::builder("http://x", "d").queue_capacity(0)).contains("queue_capacity"));
}
