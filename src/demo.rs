//! `loupe demo`: a fresh directory, an embedded server, simulated services instrumented with the
//! loupe SDK sending their traffic (with an incident in it) over HTTP, sampled dynamically with
//! every kept event's weight recorded, and what loupe shows of it at this stage of the project.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loupe_bench::{CAUSE_FIELDS, DEFAULT_START_US, Effect, Generator, Incident, WorkloadConfig};
use loupe_collector::{CollectorConfig, DatasetConfig};
use loupe_query::QueryEngine;
use loupe_sampling::SamplingConfig;
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
const INCIDENT_START_S: i64 = 40 * 60;
const INCIDENT_END_S: i64 = 80 * 60;
/// How much of the traffic the incident's cause matches: an incident big enough to page
/// (a slowdown of a few percent of requests never burns 2% of a month's budget in an hour).
const INCIDENT_SHARE: (f64, f64) = (0.2, 0.35);
const LATENCY_MULTIPLIER: f64 = 8.0;
/// The demo dataset's sampling, as it would be written in `loupe.toml`: errors and slow requests
/// are kept whole, the rest sampled per service and status toward 1 in 10 on average. The
/// interval is short because the demo's traffic passes in seconds of wall-clock time.
const SAMPLING: &str = r#"
key_fields = ["service.name", "http.status_code"]
sampler = "ema"
goal_rate = 10
interval_ms = 500

[[rules]]
name = "errors"
when = "error = true"
action = "keep"

[[rules]]
name = "slow"
when = "duration_ms > 300"
action = "keep"
"#;

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
    let sampling: SamplingConfig = toml::from_str(SAMPLING).context("the demo's sampling")?;
    let mut collector = CollectorConfig::default();
    collector.datasets.insert(
        DATASET.to_owned(),
        DatasetConfig {
            sampling: Some(sampling),
        },
    );
    let server = Server::start(
        &data_dir,
        "127.0.0.1:0".parse()?,
        None,
        collector,
        loupe_query::QueryConfig::default(),
        crate::auth::Keys::default(),
        None,
    )
    .await?;
    let base = format!("http://{}", server.addr);

    let us = |s: i64| DEFAULT_START_US + s * 1_000_000;
    let incident = Incident::planted_with_share(
        args.seed,
        us(INCIDENT_START_S),
        us(INCIDENT_END_S),
        Effect::Latency {
            multiplier: LATENCY_MULTIPLIER,
        },
        2,
        INCIDENT_SHARE,
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
    let (generator, mut ingest) =
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

    // 2. Sampling.
    server.collector.flush_all().await?;
    let engine = QueryEngine::new(server.collector.store().clone());
    sampling_report(&engine, &mut ingest).await?;

    // 3. Storage.
    let files = server
        .collector
        .store()
        .dataset(&loupe_store::DatasetName::new(DATASET)?)
        .parquet_files()?;
    let disk: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let fields = engine
        .sql(&format!("SELECT count(*) AS n FROM information_schema.columns WHERE table_name = '{DATASET}'"), 1)
        .await?;
    let nfields = first_i64(&fields)?;
    println!(
        "3. Storage: {} Parquet files (zstd, dictionaries, page index, sorted by time) in date=/hour= partitions",
        files.len()
    );
    println!(
        "   {:.1} MB on disk for {} stored events, {:.0} bytes per stored event. {nfields} columns in the merged schema.",
        disk as f64 / 1e6,
        ingest.stored,
        disk as f64 / ingest.stored.max(1) as f64
    );
    println!();

    // 4. SQL.
    println!("4. SQL, as an analyst would ask it (loupe sql '...', or POST {base}/api/v1/sql).");
    println!(
        "   Each stored event stands for sample_rate events: sum(sample_rate) counts events, count(*) counts rows."
    );
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
            r#"SELECT "service.name", round(sum(sample_rate)) AS events, count(*) AS stored,
       round(100.0 * sum(CASE WHEN error THEN sample_rate ELSE 0 END) / sum(sample_rate), 2) AS error_pct,
       round(approx_percentile_cont_with_weight(sample_rate, 0.5) WITHIN GROUP (ORDER BY duration_ms), 1) AS p50_ms,
       round(approx_percentile_cont_with_weight(sample_rate, 0.99) WITHIN GROUP (ORDER BY duration_ms), 1) AS p99_ms
FROM {DATASET} GROUP BY 1 ORDER BY events DESC LIMIT 6"#
        ),
    )
    .await?;
    show(
        &engine,
        "Is something wrong? p99 latency in 10-minute buckets:",
        &format!(
            r#"SELECT date_bin(INTERVAL '10 minutes', timestamp) AS bucket, round(sum(sample_rate)) AS events,
       round(approx_percentile_cont_with_weight(sample_rate, 0.99) WITHIN GROUP (ORDER BY duration_ms), 1) AS p99_ms
FROM {DATASET} GROUP BY 1 ORDER BY 1"#
        ),
    )
    .await?;
    let p99 = engine
        .sql(
            &format!("SELECT approx_percentile_cont_with_weight(sample_rate, 0.99) WITHIN GROUP (ORDER BY duration_ms) FROM {DATASET} WHERE timestamp < '{}'", loupe_event::time::format_timestamp(us(INCIDENT_START_S))),
            1,
        )
        .await?;
    let threshold = first_f64(&p99)?;
    let common = show(
        &engine,
        &format!(
            "What do the slow requests (> {threshold:.0} ms, the p99 before the spike) in the spike have in common?\n   \
             Every categorical field's values, weighted share among slow vs. all other requests in the window:"
        ),
        &common_values_sql(&window, threshold),
    )
    .await?;
    let top: Vec<(String, String)> = rows_as_strings(&common)?;

    // 5. The truth.
    println!("5. What was planted: {incident}");
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
        "   That table looks at one field at a time, and cannot tell a cause from its neighbours."
    );
    println!();

    // 6. Outliers.
    outliers_report(
        &engine,
        &incident,
        threshold,
        us(INCIDENT_START_S),
        us(INCIDENT_END_S),
    )
    .await?;

    // 7. SLOs.
    slo_report(
        &engine,
        server.collector.store(),
        us(INCIDENT_START_S),
        us(INCIDENT_END_S),
    )
    .await?;

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
    /// The truth the sampler's weights must estimate: events generated per sampling key.
    seen_per_key: HashMap<String, u64>,
    errors_seen: u64,
    /// Filled in once the events are stored.
    stored: u64,
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
            // Everything queued is delivered before the service stops: the guard's drop
            // waits only its shutdown deadline, which a slow collector can outlast.
            guard.flush(Duration::from_secs(120));
            drop(guard);
            exporter.stats()
        }));
    }
    let mut generator = Generator::new(config);
    let mut seen_per_key: HashMap<String, u64> = HashMap::new();
    let mut errors_seen = 0;
    let mut left = events;
    while left > 0 {
        let n = left.min(BATCH_EVENTS);
        let chunk = (0..n)
            .map(|_| {
                let e = generator.next_event();
                *seen_per_key.entry(demo_key(&e)).or_default() += 1;
                errors_seen += u64::from(e.get("error") == Some(&loupe_event::Value::Bool(true)));
                e
            })
            .collect();
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
            seen_per_key,
            errors_seen,
            stored: 0,
        },
    ))
}

/// The demo's sampling key of an event as the report shows it: `service|status`.
fn demo_key(e: &loupe_event::Event) -> String {
    let text = |f: &str| {
        e.get(f)
            .filter(|v| !v.is_null())
            .map_or_else(|| "-".to_owned(), |v| v.to_string())
    };
    format!("{}|{}", text("service.name"), text("http.status_code"))
}

/// Section 2: what was stored per key, and how close the weighted counts come to the truth the
/// generator counted. Grouped by the key's fields (not `meta.sample_key`), so events the rules
/// kept count with their key.
async fn sampling_report(engine: &QueryEngine, ingest: &mut Ingested) -> anyhow::Result<()> {
    let out = engine
        .sql(
            &format!(
                r#"SELECT concat(coalesce("service.name", '-'), '|', coalesce(CAST("http.status_code" AS VARCHAR), '-')) AS key,
       count(*) AS kept, sum(sample_rate) AS weighted,
       sum(CASE WHEN error THEN 1 ELSE 0 END) AS errors,
       sum(CASE WHEN "meta.sample_rule" = 'default' THEN 0 ELSE 1 END) AS by_rule
FROM {DATASET} GROUP BY 1"#
            ),
            100_000,
        )
        .await
        .context("the demo's sampling query")?;
    let mut per_key: HashMap<String, (u64, f64)> = HashMap::new();
    let (mut stored, mut weighted, mut errors_kept, mut by_rule) = (0u64, 0.0, 0u64, 0u64);
    for (key, [kept, errors, rule_kept], w) in key_rows(&out)? {
        stored += kept;
        weighted += w;
        errors_kept += errors;
        by_rule += rule_kept;
        per_key.insert(key, (kept, w));
    }
    ingest.stored = stored;
    let sent = ingest.stats.sent;
    println!(
        "2. Sampling, before the write-ahead log: {stored} of {sent} events stored ({:.1}x fewer). Each stored event",
        sent as f64 / stored.max(1) as f64
    );
    println!(
        "   records its weight (sample_rate) and why it was kept (meta.sample_key, meta.sample_rule). Rules keep"
    );
    println!(
        "   every error and every request over 300 ms ({by_rule} events); the rest is sampled per service and status"
    );
    println!("   by an EMA sampler aiming at 1 in 10 on average, rare keys kept whole.");
    println!(
        "   Errors: {} generated, {errors_kept} stored. Weighted total: {weighted:.0} events vs {sent} generated ({:+.2}%).",
        ingest.errors_seen,
        100.0 * (weighted - sent as f64) / sent.max(1) as f64
    );
    let mut keys: Vec<(&String, &u64)> = ingest.seen_per_key.iter().collect();
    keys.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    println!();
    println!(
        "     {:<28} {:>9} {:>8} {:>7} {:>11} {:>8}",
        "key (service|status)", "seen", "stored", "rate", "weighted", "error"
    );
    for &(key, &seen) in keys.iter().take(8) {
        let (kept, w) = per_key.get(key).copied().unwrap_or_default();
        println!(
            "     {:<28} {:>9} {:>8} {:>7.1} {:>11.0} {:>+7.1}%",
            key,
            seen,
            kept,
            seen as f64 / kept.max(1) as f64,
            w,
            100.0 * (w - seen as f64) / seen as f64
        );
    }
    println!(
        "     ({} keys; rate = seen / stored; weighted = sum of the stored events' sample_rate)",
        ingest.seen_per_key.len()
    );
    println!();
    Ok(())
}

/// (key, [kept, errors, kept by a rule], weighted) per row of the sampling query.
fn key_rows(out: &loupe_query::QueryOutput) -> anyhow::Result<Vec<(String, [u64; 3], f64)>> {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Float64Type, Int64Type};
    use datafusion::arrow::util::display::array_value_to_string;
    let mut rows = Vec::new();
    for b in &out.batches {
        let int = |c: usize, i: usize| b.column(c).as_primitive::<Int64Type>().value(i) as u64;
        let weighted = b.column(2).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            rows.push((
                array_value_to_string(b.column(0), i)?,
                [int(1, i), int(3, i), int(4, i)],
                weighted.value(i),
            ));
        }
    }
    Ok(rows)
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

/// The shop's latency SLO as of the spike's end, from the stored, weighted events: the
/// budget, the burn over each window of the default policy, and the page the spike sets off.
async fn slo_report(
    engine: &QueryEngine,
    store: &loupe_store::Store,
    start_us: i64,
    end_us: i64,
) -> anyhow::Result<()> {
    use loupe_query::slo::{budget::Policy, definition, report, service::SloService};
    // The objective: 99.9% of requests faster than the p99.9 before the spike (rounded up to
    // 10 ms), so the budget burns at about 1x in ordinary times.
    let p999 = engine
        .sql(
            &format!(
                "SELECT approx_percentile_cont_with_weight(sample_rate, 0.999) WITHIN GROUP (ORDER BY duration_ms) \
                 FROM {DATASET} WHERE timestamp < '{}'",
                loupe_event::time::format_timestamp(start_us)
            ),
            1,
        )
        .await?;
    let threshold = (first_f64(&p999)? / 10.0).ceil() * 10.0;
    let yaml = format!(
        r#"apiVersion: openslo/v1
kind: SLO
metadata: {{name: shop-latency, displayName: Shop requests are fast}}
spec:
  service: loupe-demo
  indicator:
    metadata: {{name: shop-fast-requests}}
    spec:
      thresholdMetric:
        metricSource: {{type: loupe, spec: {{dataset: {DATASET}, field: duration_ms}}}}
  timeWindow: [{{duration: 30d, isRolling: true}}]
  budgetingMethod: Occurrences
  objectives: [{{displayName: under {threshold} ms, op: lte, value: {threshold}, target: 0.999}}]
"#
    );
    let slos = definition::parse(&yaml, "demo").map_err(|e| anyhow::anyhow!("{e}"))?;
    let svc = SloService::new(engine.clone(), store.clone(), slos, Policy::default());
    println!(
        "7. SLOs: \"99.9% of requests under {threshold} ms\" (the p99.9 before the spike), an OpenSLO v1 definition"
    );
    println!(
        "   over the weighted events, with the SRE Workbook's multi-window burn-rate alerts. As of the"
    );
    println!(
        "   spike's end (loupe slo status, GET /api/v1/slo/shop-latency, or /metrics for Prometheus):"
    );
    let started = Instant::now();
    let (status, _) = svc.status_of(0, end_us, &[]).await?;
    let took = started.elapsed();
    for line in report::text(&status).lines() {
        println!("     {line}");
    }
    println!(
        "     ({:.0} ms, buckets included)",
        took.as_secs_f64() * 1e3
    );
    let o = &status.objectives[0];
    let fast = o.alerts.first().filter(|a| a.fires);
    match fast {
        Some(a) => println!(
            "   The spike burns the budget at {:.1}x over the last hour and {:.1}x over the last 5 minutes:",
            a.long_burn.unwrap_or_default(),
            a.short_burn.unwrap_or_default()
        ),
        None => println!("   The fast-burn rule does not fire."),
    }
    if fast.is_some() {
        println!("   the fast-burn page fires.");
    }
    println!();
    Ok(())
}

/// The outliers engine on the spike's slow requests, and where it ranks the planted cause.
async fn outliers_report(
    engine: &QueryEngine,
    incident: &Incident,
    threshold_ms: f64,
    start_us: i64,
    end_us: i64,
) -> anyhow::Result<()> {
    use loupe_query::outliers::request::OutliersRequest;
    use loupe_query::outliers::text::{TextLimits, report_text};
    let (since, until) = (
        loupe_event::time::format_timestamp(start_us),
        loupe_event::time::format_timestamp(end_us),
    );
    let request = OutliersRequest {
        dataset: DATASET.to_owned(),
        selection: Some(format!("duration_ms > {threshold_ms:.0}")),
        since: Some(since.clone()),
        until: Some(until.clone()),
        top: Some(5),
        ..OutliersRequest::default()
    };
    println!(
        "6. Outliers: what do the slow requests have in common that the others do not? Every field,"
    );
    println!(
        "   single values, numeric ranges and conjunctions of up to three, weighted by sample rate:"
    );
    println!(
        "     loupe outliers --dataset {DATASET} --where '{}' --since {since} --until {until}",
        request.selection.as_deref().unwrap_or_default()
    );
    let started = Instant::now();
    let question = engine.outliers_question(&request, end_us).await?;
    let report = engine.outliers(&question).await?;
    let took = started.elapsed();
    let limits = TextLimits {
        top: 5,
        ..TextLimits::default()
    };
    for line in report_text(&report, &question.selection, limits).lines() {
        println!("     {line}");
    }
    println!("     ({:.0} ms)", took.as_secs_f64() * 1e3);
    match report.rank_of(&incident.cause, 5) {
        Some(1) => println!("   The planted cause is the top explanation."),
        Some(r) => println!("   The planted cause is explanation {r} of 5."),
        None => println!("   The planted cause is not among the first 5 explanations."),
    }
    println!();
    Ok(())
}

/// One UNION ALL over every categorical field: for each value, its weighted share (sum of
/// `sample_rate`) among the slow requests of the window and among the others, ranked by the
/// difference.
fn common_values_sql(window: &str, threshold_ms: f64) -> String {
    let per_field: Vec<String> = CAUSE_FIELDS
        .iter()
        .map(|f| {
            format!(
                r#"SELECT '{f}' AS field, CAST("{f}" AS VARCHAR) AS value,
       sum(CASE WHEN slow THEN sample_rate ELSE 0 END) AS slow_n, sum(CASE WHEN slow THEN 0 ELSE sample_rate END) AS other_n
FROM w GROUP BY 2"#
            )
        })
        .collect();
    format!(
        r#"WITH w AS (SELECT *, duration_ms > {threshold_ms} AS slow FROM {DATASET} WHERE {window}),
totals AS (SELECT sum(CASE WHEN slow THEN sample_rate ELSE 0 END) AS slow_t, sum(CASE WHEN slow THEN 0 ELSE sample_rate END) AS other_t FROM w),
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
