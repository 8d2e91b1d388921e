//! The SDK as a user runs it: three instrumented axum services calling each other, exporting to
//! a real `loupe serve`; then the stored events, their trace linkage and folded fields.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use loupe_sdk::{
    ExportStats, ExporterGuard, HttpExporter, LoupeLayer, ServerLayer, TracePropagation,
};
use serde_json::Value;
use tracing_subscriber::prelude::*;

use crate::support::{ServerProcess, client, poll_sql, temp_data_dir};

const FAST_FLUSH: &str = "[collector]\nflush_interval_ms = 50\n";

/// One service: its own thread, runtime and subscriber, like a separate process.
struct Service {
    addr: SocketAddr,
    exporter: HttpExporter,
    guard: Option<ExporterGuard>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct App {
    name: &'static str,
    downstream: Option<String>,
    client: reqwest_middleware::ClientWithMiddleware,
}

/// The handler every service runs: a database call, a field, and a call downstream if it has
/// one. `stock` fails for id 3, and the failure travels up.
async fn work(State(app): State<App>, Path(id): Path<u64>) -> (StatusCode, String) {
    loupe_sdk::add_field("work.id", id);
    loupe_sdk::add_field(format!("{}.visited", app.name), true);
    {
        let _db = tracing::info_span!("db", statement = "SELECT stock FROM items WHERE id = $1")
            .entered();
    }
    if app.name == "stock" && id == 3 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no stock service today".into(),
        );
    }
    let Some(url) = &app.downstream else {
        return (StatusCode::OK, format!("{} {id}", app.name));
    };
    match app.client.get(format!("{url}/work/{id}")).send().await {
        Ok(r) if r.status().is_success() => (StatusCode::OK, r.text().await.unwrap_or_default()),
        Ok(r) => {
            tracing::error!(status = r.status().as_u16(), "downstream failed");
            (StatusCode::BAD_GATEWAY, "downstream failed".into())
        }
        Err(e) => {
            tracing::error!(error = %e, "downstream unreachable");
            (StatusCode::BAD_GATEWAY, "downstream unreachable".into())
        }
    }
}

impl Service {
    fn start(
        name: &'static str,
        exporter: loupe_sdk::HttpExporterBuilder,
        downstream: Option<String>,
    ) -> Service {
        let (exporter, guard) = exporter.service(name).build().unwrap();
        let subscriber =
            tracing_subscriber::registry().with(LoupeLayer::builder(name).build(exporter.clone()));
        let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(TracePropagation)
            .build();
        let app = axum::Router::new()
            .route("/work/{id}", axum::routing::get(work))
            .layer(ServerLayer::new())
            .with_state(App {
                name,
                downstream,
                client,
            });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            // A current-thread runtime runs every task of this service on this thread, so the
            // thread's default subscriber is the service's.
            let _default = tracing::subscriber::set_default(subscriber);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        Service {
            addr,
            exporter,
            guard: Some(guard),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving, then drops the exporter's guard (which delivers what is queued).
    fn shutdown(&mut self) -> ExportStats {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        drop(self.guard.take());
        self.exporter.stats()
    }
}

fn exporter_to(server: &ServerProcess) -> loupe_sdk::HttpExporterBuilder {
    HttpExporter::builder(&server.base, "shop").batch_max_delay(Duration::from_millis(20))
}

fn s<'a>(row: &'a Value, field: &str) -> &'a str {
    row[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} missing in {row}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_services_make_three_linked_events_per_request() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(FAST_FLUSH));
    let mut stock = Service::start("stock", exporter_to(&server), None);
    let mut pricing = Service::start("pricing", exporter_to(&server), Some(stock.url()));
    let mut checkout = Service::start("checkout", exporter_to(&server), Some(pricing.url()));

    let http = client();
    let mut codes = Vec::new();
    for id in 1..=5 {
        codes.push(
            http.get(format!("{}/work/{id}", checkout.url()))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    // One request arrives with a trace already started by a caller outside.
    let caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let r = http
        .get(format!("{}/work/6", checkout.url()))
        .header("traceparent", caller)
        .send()
        .await
        .unwrap();
    codes.push(r.status().as_u16());
    assert_eq!(codes, [200, 200, 502, 200, 200, 200]);

    for svc in [&mut checkout, &mut pricing, &mut stock] {
        let stats = tokio::task::block_in_place(|| svc.shutdown());
        assert_eq!(
            (stats.sent, stats.pending, stats.dropped_queue_full),
            (6, 0, 0),
            "{stats:?}"
        );
    }

    let rows = poll_sql(
        &server,
        "SELECT * FROM shop WHERE name = 'http.request' ORDER BY duration_ms DESC",
        |rows| rows.len() >= 18,
    )
    .await;
    assert_eq!(rows.len(), 18);
    let mut traces: HashMap<&str, HashMap<&str, &Value>> = HashMap::new();
    for row in &rows {
        traces
            .entry(s(row, "trace.trace_id"))
            .or_default()
            .insert(s(row, "service.name"), row);
    }
    assert_eq!(traces.len(), 6, "one trace per request");
    for (trace, events) in &traces {
        assert_eq!(events.len(), 3, "trace {trace} has one event per service");
        let (c, p, st) = (events["checkout"], events["pricing"], events["stock"]);
        assert_eq!(
            s(p, "trace.parent_id"),
            s(c, "trace.span_id"),
            "pricing's parent is checkout"
        );
        assert_eq!(
            s(st, "trace.parent_id"),
            s(p, "trace.span_id"),
            "stock's parent is pricing"
        );
        // Each caller's request contains its callee's.
        let ms = |e: &Value| e["duration_ms"].as_f64().unwrap();
        assert!(
            ms(c) >= ms(p) && ms(p) >= ms(st),
            "{} {} {}",
            ms(c),
            ms(p),
            ms(st)
        );
        for e in [c, p, st] {
            assert_eq!(s(e, "http.route"), "/work/{id}");
            assert_eq!(e["db.count"], 1, "{e}");
            assert_eq!(
                s(e, "db.statement"),
                "SELECT stock FROM items WHERE id = $1"
            );
            assert!(e["db.duration_ms"].as_f64().unwrap() <= ms(e));
            let visited = format!("{}.visited", s(e, "service.name"));
            assert_eq!(e[visited.as_str()], true);
        }
        assert_eq!(c["http.client.count"], 1);
        assert_eq!(p["http.client.count"], 1);
        assert!(st["http.client.count"].is_null(), "stock calls nobody");
    }

    let by_id = |id: i64| {
        traces
            .values()
            .find(|t| t["checkout"]["work.id"] == id)
            .unwrap_or_else(|| panic!("no trace for work {id}"))
    };
    // The caller's trace was continued.
    let continued = by_id(6);
    assert_eq!(
        s(continued["checkout"], "trace.trace_id"),
        "0af7651916cd43dd8448eb211c80319c"
    );
    assert_eq!(
        s(continued["checkout"], "trace.parent_id"),
        "b7ad6b7169203331"
    );
    for id in [1, 2, 4, 5] {
        assert!(
            by_id(id)["checkout"]["trace.parent_id"].is_null(),
            "the first service starts the trace"
        );
    }
    // The failure at the bottom, and how each level saw it.
    let failed = by_id(3);
    assert_eq!(failed["stock"]["http.status_code"], 503);
    assert_eq!(failed["stock"]["error"], true);
    assert_eq!(failed["pricing"]["http.client.status_code"], 503);
    assert_eq!(failed["pricing"]["error"], true);
    assert_eq!(s(failed["pricing"], "error.message"), "downstream failed");
    assert_eq!(failed["pricing"]["http.status_code"], 502);
    assert_eq!(failed["checkout"]["http.client.status_code"], 502);
    assert_eq!(failed["checkout"]["http.status_code"], 502);
    for ok in [1, 2, 4, 5, 6] {
        assert!(
            by_id(ok)["checkout"]["error"].is_null(),
            "no error on request {ok}"
        );
        assert_eq!(by_id(ok)["checkout"]["http.status_code"], 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_costs_the_service_only_dropped_events() {
    // A collector address nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let exporter = HttpExporter::builder(format!("http://{dead}"), "shop")
        .queue_capacity(10)
        .batch_max_events(5)
        .retry_for(Duration::from_secs(60))
        .shutdown_deadline(Duration::from_millis(200));
    let mut svc = Service::start("lonely", exporter, None);
    let http = client();
    let n = 200;
    for id in 0..n {
        let r = http
            .get(format!("{}/work/{id}", svc.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {id} was served");
    }
    let mut stats = tokio::task::block_in_place(|| svc.shutdown());
    // The guard's drop waits for the worker only a little past the shutdown deadline; on a
    // loaded machine the worker may give up on the last batch just after. It must give up.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stats.pending > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "events still pending 30 s after shutdown: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        stats = svc.exporter.stats();
    }
    assert_eq!(stats.sent, 0);
    assert_eq!(
        stats.dropped_queue_full + stats.dropped_failed,
        n,
        "{stats:?}"
    );
    assert!(
        stats.dropped_queue_full >= n - 10 - 5,
        "the queue held at most 15: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_a_service_down_delivers_its_queued_events() {
    let (_tmp, data) = temp_data_dir();
    let server = ServerProcess::start(&data, Some(FAST_FLUSH));
    // Batches would wait an hour to fill: only the shutdown flush can deliver them.
    let exporter = HttpExporter::builder(&server.base, "shop")
        .batch_max_delay(Duration::from_secs(3600))
        .batch_max_events(100_000);
    let mut svc = Service::start("stock", exporter, None);
    let http = client();
    for id in 0..50 {
        http.get(format!("{}/work/{id}", svc.url()))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(svc.exporter.stats().sent, 0, "nothing sent before shutdown");
    let stats = tokio::task::block_in_place(|| svc.shutdown());
    assert_eq!(stats.sent, 50);
    let rows = poll_sql(&server, "SELECT count(*) AS n FROM shop", |rows| {
        rows.first().is_some_and(|r| r["n"] == 50)
    })
    .await;
    assert_eq!(rows[0]["n"], 50);
}
