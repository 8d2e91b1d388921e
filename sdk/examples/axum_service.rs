//! A small axum service instrumented with loupe: three lines of setup, one layer on the router,
//! one middleware on the HTTP client.
//!
//! ```text
//! loupe serve &                                   # the collector on 127.0.0.1:4318
//! cargo run -p loupe-sdk --features axum --example axum_service -- stock 127.0.0.1:8003
//! cargo run -p loupe-sdk --features axum --example axum_service -- checkout 127.0.0.1:8001 http://127.0.0.1:8003
//! curl 127.0.0.1:8001/work/42
//! loupe sql "SELECT \"service.name\", \"trace.trace_id\", \"trace.parent_id\", duration_ms FROM shop"
//! ```
//!
//! Set `LOUPE_URL` to send elsewhere, or `LOUPE_STDOUT=1` to print events instead.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::get;
use tracing_subscriber::prelude::*;

#[derive(Clone)]
struct App {
    downstream: Option<String>,
    client: reqwest_middleware::ClientWithMiddleware,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let service = args.next().unwrap_or_else(|| "checkout".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8001".into());
    let downstream = args.next();

    // 1. The layer, with an exporter to the collector (or stdout).
    let layer = loupe_sdk::LoupeLayer::builder(service.clone());
    let _guard = if std::env::var_os("LOUPE_STDOUT").is_some() {
        let layer = layer.build(loupe_sdk::WriterExporter::stdout());
        tracing_subscriber::registry().with(layer).init();
        None
    } else {
        let url = std::env::var("LOUPE_URL").unwrap_or_else(|_| "http://127.0.0.1:4318".into());
        let (exporter, guard) = loupe_sdk::HttpExporter::builder(url, "shop")
            .service(service.clone())
            .build()?;
        tracing_subscriber::registry()
            .with(layer.build(exporter))
            .init();
        Some(guard)
    };

    // 2. Trace context goes out with every call to another service.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(loupe_sdk::TracePropagation)
        .build();

    // 3. Each request is a unit of work.
    let app = Router::new()
        .route("/work/{id}", get(work))
        .layer(loupe_sdk::ServerLayer::new())
        .with_state(App { downstream, client });

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("{service} listening on http://{addr}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

#[tracing::instrument(name = "handler", skip(app))]
async fn work(State(app): State<App>, Path(id): Path<u64>) -> String {
    loupe_sdk::add_field("work.id", id);
    loupe_sdk::add_field("user.plan", if id % 3 == 0 { "enterprise" } else { "free" });
    {
        let _db = tracing::info_span!("db", db.system = "postgresql", rows = id % 7).entered();
        std::thread::sleep(Duration::from_millis(2));
    }
    match &app.downstream {
        Some(url) => match app.client.get(format!("{url}/work/{id}")).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "downstream call failed");
                "downstream failed".into()
            }
        },
        None => format!("done {id}"),
    }
}
