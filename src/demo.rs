//! `loupe demo`: a fresh directory, an embedded server, simulated services instrumented with the
//! loupe SDK sending their traffic (with an incident in it) over HTTP, and what loupe shows of it
//! at this stage of the project.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loupe_bench::{CAUSE_FIELDS, DEFAULT_START_US, Effect, Generator, Incident, WorkloadConfig};
use loupe_collector::CollectorConfig;
use loupe_query::QueryEngine;
use tracing_subscriber::prelude::*;

use crate::cli::DemoArgs;
use crate::serve::Server;

const DATASET: &str = "shop";
const BATCH_EVENTS: usize = 1_000;
/// Simulated service instances, each with its own SDK exporter.
const SERVICES: usize = 4;
const QUEUE_EVENTS: usize = 20_000;
/// The simulated traffic spans two hours; the incident is 20 minutes in the middle.
const SPAN_S: f64 = 2.0 * 3600.0;
const INCIDENT_START_S: i64 = 50 * 60;
const INCIDENT_END_S: i64 = 70 * 60;
const LATENCY_MULTIPLIER: f64 = 8.0;

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.events < 2 * BATCH_EVENTS {
        bail!("--events must be at least {}", 2 * BATCH_EVENTS);
    }
    let started = Instant::now();
    // Removed on drop, error paths included, unless --keep.
    let tmp = tempfile::Builder::new()
        .prefix("loupe-demo-")
        .tempdir()
        .context("creating the demo's directory")?;
    let data_dir = tmp.path().join("data");
    let server = Server::start(
        &data_dir,
        "127.0.0.1:0".parse()?,
        CollectorConfig::default(),
        crate::auth::Keys::default(),
    )
    .await?;
    let base = format!("http://{}", server.addr);

    let us = |s: i64| DEFAULT_START_US + s * 1_000_000;
    let incident = Incident::planted(
        args.seed,
        us(INCIDENT_START_S),
        us(INCIDENT_END_S),
        Effect::Latency {
            multiplier: LATENCY_MULTIPLIER,
        },
        2,
    );
    let config = WorkloadConfig {
        seed: args.seed,
        start_us: DEFAULT_START_US,
        events_per_second: args.events as f64 / SPAN_S,
        incident: Some(incident.clone()),
        pre_sample_rate: None,
    };

    println!(
        "loupe demo: a simulated shop (12 services, ~60 fields per event) with an incident in it"
    );
    println!("  server   {base}  (collector and query engine in this process)");
    println!("  data     {}", data_dir.display());
    println!();

    // 1. Ingest over HTTP.
    let traffic_base = base.clone();
    let (generator, ingest) =
        tokio::task::spawn_blocking(move || send_traffic(&traffic_base, config, args.events))
            .await??;
    let truth = generator.truth().clone();
    let secs = ingest.elapsed.as_secs_f64();
    let sent = ingest.stats.sent;
    println!(
        "1. Ingest: {SERVICES} simulated services instrumented with the loupe SDK (a tracing layer), one wide"
    );
    println!(
        "   event per request, batched ({BATCH_EVENTS}), zstd-compressed and POSTed to {base}/v1/events/{DATASET}"
    );
    println!(
        "   {} events ({:.0} MB of JSON) acknowledged in {:.1} s: {:.0} events/s, {:.1} MB/s.",
        sent,
        ingest.json_bytes as f64 / 1e6,
        secs,
        sent as f64 / secs,
        ingest.json_bytes as f64 / 1e6 / secs
    );
    println!(
        "   The SDK's own count: {} sent, {} refused, {} dropped.",
        sent,
        ingest.stats.rejected,
        ingest.stats.dropped_queue_full + ingest.stats.dropped_failed
    );
    println!("   Each answer came after its events were in the write-ahead log and fsynced.");
    let bad = send_bad_batch(&base).await?;
    println!("   A batch with two broken events in it: {bad}");
    println!();

    // 2. Storage.
    server.collector.flush_all().await?;
    let files = server
        .collector
        .store()
        .dataset(&loupe_store::DatasetName::new(DATASET)?)
        .parquet_files()?;
    let disk: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let engine = QueryEngine::new(server.collector.store().clone());
    let fields = engine
        .sql(&format!("SELECT count(*) AS n FROM information_schema.columns WHERE table_name = '{DATASET}'"), 1)
        .await?;
    let nfields = first_i64(&fields)?;
    println!(
        "2. Storage: {} Parquet files (zstd, dictionaries, page index, sorted by time) in date=/hour= partitions",
        files.len()
    );
    println!(
        "   {:.1} MB on disk, {:.0} bytes per event: {:.1}x smaller than the JSON. {nfields} columns in the merged schema.",
        disk as f64 / 1e6,
        disk as f64 / sent as f64,
        ingest.json_bytes as f64 / disk as f64
    );
    println!();

    // 3. SQL.
    println!("3. SQL, as an analyst would ask it (loupe sql '...', or POST {base}/api/v1/sql):");
    println!();
    let window = format!(
        "timestamp >= '{}' AND timestamp < '{}'",
        loupe_event::time::format_timestamp(us(INCIDENT_START_S)),
        loupe_event::time::format_timestamp(us(INCIDENT_END_S))
    );
    show(
        &engine,
        "Which services take the traffic, and how fast are they?",
        &format!(
            r#"SELECT "service.name", count(*) AS events,
       round(100.0 * avg(CASE WHEN error THEN 1.0 ELSE 0.0 END), 2) AS error_pct,
       round(approx_percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), 1) AS p50_ms,
       round(approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms), 1) AS p99_ms
FROM {DATASET} GROUP BY 1 ORDER BY events DESC LIMIT 6"#
        ),
    )
    .await?;
    show(
        &engine,
        "Is something wrong? p99 latency in 10-minute buckets:",
        &format!(
            r#"SELECT date_bin(INTERVAL '10 minutes', timestamp) AS bucket, count(*) AS events,
       round(approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms), 1) AS p99_ms
FROM {DATASET} GROUP BY 1 ORDER BY 1"#
        ),
    )
    .await?;
    let p99 = engine
        .sql(
            &format!("SELECT approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) FROM {DATASET} WHERE timestamp < '{}'", loupe_event::time::format_timestamp(us(INCIDENT_START_S))),
            1,
        )
        .await?;
    let threshold = first_f64(&p99)?;
    let common = show(
        &engine,
        &format!(
            "What do the slow requests (> {threshold:.0} ms, the p99 before the spike) in the spike have in common?\n   \
             Every categorical field's values, share among slow vs. all other requests in the window:"
        ),
        &common_values_sql(&window, threshold),
    )
    .await?;
    let top: Vec<(String, String)> = rows_as_strings(&common)?;

    // 4. The truth.
    println!("4. What was planted: {incident}");
    println!(
        "   It matched {} of the {} events in its window ({:.1}%), each made {LATENCY_MULTIPLIER}x slower.",
        truth.matched,
        truth.in_window,
        100.0 * truth.matched_share()
    );
    let found: Vec<String> = incident
        .cause
        .iter()
        .filter_map(|(f, v)| {
            top.iter()
                .position(|(tf, tv)| tf == f && tv == v)
                .map(|i| format!("{f} = {v} (row {})", i + 1))
        })
        .collect();
    println!(
        "   In the last table, {} of the cause's {} terms appear: {}.",
        found.len(),
        incident.cause.len(),
        if found.is_empty() {
            "none".to_owned()
        } else {
            found.join(", ")
        }
    );
    println!(
        "   That table looks at one field at a time, unweighted. The outliers engine (planned) will rank"
    );
    println!("   combinations of fields, weighted by sample rate, with a significance guard.");
    println!();

    server.stop().await?;
    if args.keep {
        let _ = tmp.keep();
        println!(
            "Kept the data directory: {}  (try: loupe sql --data-dir {} 'SELECT * FROM {DATASET} LIMIT 3')",
            data_dir.display(),
            data_dir.display()
        );
    } else {
        tmp.close().context("removing the demo's directory")?;
    }
    println!("Done in {:.1} s.", started.elapsed().as_secs_f64());
    Ok(())
}

struct Ingested {
    stats: loupe_sdk::ExportStats,
    json_bytes: u64,
    elapsed: Duration,
}

/// Generates the traffic on one thread and replays it through [`SERVICES`] simulated service
/// instances, each a thread instrumented the way a real service is: a `tracing` subscriber with
/// the loupe SDK's layer, whose exporter batches, compresses and POSTs to the collector. Each
/// generated event is one request: a root span whose fields are the event's, added with
/// `loupe_sdk::add_fields` (recorded fields win over the SDK's own timestamp and trace ids, so
/// the simulated clock and trace tree survive).
fn send_traffic(
    base: &str,
    config: WorkloadConfig,
    events: usize,
) -> anyhow::Result<(Generator, Ingested)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<loupe_event::Event>>(SERVICES * 2);
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let start = Instant::now();
    let mut services = Vec::new();
    for _ in 0..SERVICES {
        let (exporter, guard) = loupe_sdk::HttpExporter::builder(base, DATASET)
            .service("loupe-demo")
            .queue_capacity(QUEUE_EVENTS)
            .batch_max_events(BATCH_EVENTS)
            .build()?;
        let layer = loupe_sdk::LoupeLayer::builder("loupe-demo").build(exporter.clone());
        let subscriber = tracing_subscriber::registry().with(layer);
        let rx = rx.clone();
        services.push(std::thread::spawn(move || {
            let _default = tracing::subscriber::set_default(subscriber);
            // One chunk at a time; the lock is held only while waiting for the next.
            let next = || rx.lock().ok()?.recv().ok();
            while let Some(chunk) = next() {
                for event in chunk {
                    // The demo must not lose events, and the exporter (rightly) never waits:
                    // the simulated service slows down instead while the queue is half full.
                    while exporter.stats().pending > QUEUE_EVENTS as u64 / 2 {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    let request = tracing::info_span!("request");
                    let _in = request.enter();
                    loupe_sdk::add_fields(event);
                }
            }
            // Dropping the guard delivers what is queued.
            drop(guard);
            exporter.stats()
        }));
    }
    let mut generator = Generator::new(config);
    let mut left = events;
    while left > 0 {
        let n = left.min(BATCH_EVENTS);
        let chunk = (0..n).map(|_| generator.next_event()).collect();
        if tx.send(chunk).is_err() {
            break;
        }
        left -= n;
    }
    drop(tx);
    let mut total = loupe_sdk::ExportStats::default();
    for s in services {
        let stats = s
            .join()
            .map_err(|_| anyhow::anyhow!("a simulated service panicked"))?;
        total.sent += stats.sent;
        total.rejected += stats.rejected;
        total.dropped_queue_full += stats.dropped_queue_full;
        total.dropped_failed += stats.dropped_failed;
        total.sent_bytes += stats.sent_bytes;
    }
    Ok((
        generator,
        Ingested {
            stats: total,
            json_bytes: total.sent_bytes,
            elapsed: start.elapsed(),
        },
    ))
}

/// Sends three events, two of them broken, and summarises the per-event answer.
async fn send_bad_batch(base: &str) -> anyhow::Result<String> {
    let body = concat!(
        "{\"timestamp\": \"2026-11-23T00:00:00Z\", \"service.name\": \"checkout\", \"duration_ms\": 12.5}\n",
        "{\"service.name\": \"checkout\", \"duration_ms\": \n",
        "{\"service.name\": \"cart\", \"sample_rate\": 0}\n",
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/v1/events/{DATASET}"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?
        .json()
        .await?;
    let mut out = format!(
        "{} accepted, {} rejected",
        answer["accepted"], answer["rejected"]
    );
    for e in answer["events"].as_array().into_iter().flatten() {
        if let Some(reason) = e["reason"].as_str() {
            let _ = write!(out, "\n     rejected: {reason}");
        }
    }
    Ok(out)
}

/// One UNION ALL over every categorical field: for each value, its share among the slow
/// requests of the window and among the others, ranked by the difference.
fn common_values_sql(window: &str, threshold_ms: f64) -> String {
    let per_field: Vec<String> = CAUSE_FIELDS
        .iter()
        .map(|f| {
            format!(
                r#"SELECT '{f}' AS field, CAST("{f}" AS VARCHAR) AS value,
       sum(CASE WHEN slow THEN 1 ELSE 0 END) AS slow_n, sum(CASE WHEN slow THEN 0 ELSE 1 END) AS other_n
FROM w GROUP BY 2"#
            )
        })
        .collect();
    format!(
        r#"WITH w AS (SELECT *, duration_ms > {threshold_ms} AS slow FROM {DATASET} WHERE {window}),
totals AS (SELECT sum(CASE WHEN slow THEN 1 ELSE 0 END) AS slow_t, sum(CASE WHEN slow THEN 0 ELSE 1 END) AS other_t FROM w),
v AS ({})
SELECT field, value, round(100.0 * slow_n / slow_t, 1) AS pct_of_slow, round(100.0 * other_n / other_t, 1) AS pct_of_others
FROM v, totals WHERE value IS NOT NULL
ORDER BY 1.0 * slow_n / slow_t - 1.0 * other_n / other_t DESC LIMIT 6"#,
        per_field.join("\nUNION ALL\n")
    )
}

async fn show(
    engine: &QueryEngine,
    title: &str,
    sql: &str,
) -> anyhow::Result<loupe_query::QueryOutput> {
    let out = engine
        .sql(sql, 100)
        .await
        .with_context(|| format!("demo query failed:\n{sql}"))?;
    println!("   {title}");
    if !sql.contains("UNION ALL") {
        for line in sql.lines() {
            println!("     {line}");
        }
    }
    for line in loupe_query::table_text(&out.batches)?.lines() {
        println!("     {line}");
    }
    println!(
        "     ({} rows, {:.0} ms)",
        out.row_count(),
        out.elapsed.as_secs_f64() * 1e3
    );
    println!();
    Ok(out)
}

/// The first two columns of every row, as strings.
fn rows_as_strings(out: &loupe_query::QueryOutput) -> anyhow::Result<Vec<(String, String)>> {
    use datafusion::arrow::util::display::array_value_to_string;
    let mut rows = Vec::new();
    for b in &out.batches {
        for i in 0..b.num_rows() {
            rows.push((
                array_value_to_string(b.column(0), i)?,
                array_value_to_string(b.column(1), i)?,
            ));
        }
    }
    Ok(rows)
}

fn first_i64(out: &loupe_query::QueryOutput) -> anyhow::Result<i64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    let b = out.batches.first().context("empty answer")?;
    Ok(b.column(0).as_primitive::<Int64Type>().value(0))
}

fn first_f64(out: &loupe_query::QueryOutput) -> anyhow::Result<f64> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Float64Type;
    let b = out.batches.first().context("empty answer")?;
    Ok(b.column(0).as_primitive::<Float64Type>().value(0))
}
