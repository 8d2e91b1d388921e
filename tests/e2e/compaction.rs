//! Compaction of a real `loupe serve`: small files are merged while readers read, and a
//! SIGKILL at any point of a merge loses nothing and stores nothing twice.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::{
    POLL_DEADLINE, ServerProcess, client, poll_sql, published_files, sql_json, temp_data_dir,
};

const DATASET: &str = "cmp";

/// NDJSON events `seq` in `first..first + n`, about 250 bytes each.
fn body(first: u64, n: u64) -> String {
    (first..first + n)
        .map(|seq| format!("{{\"seq\": {seq}, \"pad\": \"{}\"}}\n", "x".repeat(200)))
        .collect()
}

/// Posts a batch; true once it is acknowledged (every event accepted).
async fn post(client: &reqwest::Client, url: &str, body: String, n: u64) -> bool {
    let resp = client
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await;
    match resp {
        Ok(r) if r.status().is_success() => r
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|b| b["accepted"] == n),
        _ => false,
    }
}

fn partitions(data: &Path) -> Vec<std::path::PathBuf> {
    let ds =
        loupe_store::Store::new(data).dataset(&loupe_store::DatasetName::new(DATASET).unwrap());
    loupe_store::compact::partition_dirs(&ds).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_never_see_double_or_missing_rows_while_files_are_merged() {
    let (_tmp, data) = temp_data_dir();
    // A file per flush every 20 ms, merged four at a time every 50 ms: the reader below
    // overlaps with many swaps.
    let config = "[collector]\n\
                  flush_interval_ms = 20\n\
                  [collector.compaction]\n\
                  interval_ms = 50\n\
                  target_file_bytes = 16777216\n\
                  min_files = 4\n";
    let server = Arc::new(ServerProcess::start(&data, Some(config)));
    const SENDERS: u64 = 2;
    const BATCHES: u64 = 500;
    const BATCH: u64 = 20;
    // The table exists once the first batch is in Parquet; the reader starts after that.
    const SEED: u64 = 1 << 40;
    let url = server.url(&format!("/v1/events/{DATASET}"));
    assert!(post(&client(), &url, body(SEED, BATCH), BATCH).await);
    poll_sql(
        &server,
        &format!("SELECT count(*) AS n FROM {DATASET}"),
        |rows| rows[0]["n"] == BATCH,
    )
    .await;
    let acked = Arc::new(AtomicU64::new(BATCH));
    let writing = Arc::new(AtomicBool::new(true));
    // Set by the reader once it has run enough queries alongside the writers and seen a merge:
    // the writers send at least BATCHES each, then go on until then (however fast each side
    // runs on the machine), up to a hang guard.
    let seen_enough = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (server, acked, seen_enough) = (server.clone(), acked.clone(), seen_enough.clone());
        senders.push(tokio::spawn(async move {
            let client = client();
            let url = server.url(&format!("/v1/events/{DATASET}"));
            let mut deadline = None;
            for b in 0u64.. {
                if b >= BATCHES {
                    if seen_enough.load(Ordering::SeqCst) {
                        return b;
                    }
                    let deadline =
                        *deadline.get_or_insert_with(|| std::time::Instant::now() + POLL_DEADLINE);
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the reader saw no merge, or under 10 queries, in {POLL_DEADLINE:?} \
                         more of writing"
                    );
                }
                let first = (b * SENDERS + s) * BATCH;
                assert!(post(&client, &url, body(first, BATCH), BATCH).await);
                acked.fetch_add(BATCH, Ordering::SeqCst);
            }
            unreachable!("the batch counter ran out")
        }));
    }
    let reader = {
        let (server, writing, data, seen_enough) = (
            server.clone(),
            writing.clone(),
            data.clone(),
            seen_enough.clone(),
        );
        tokio::spawn(async move {
            let client = client();
            let query = format!("SELECT count(*) AS n, count(DISTINCT seq) AS d FROM {DATASET}");
            let (mut last_n, mut queries, mut peak_files, mut drops, mut last_files) =
                (0u64, 0u64, 0usize, 0u64, 0usize);
            // One more query after the writers stop, so the last files are read too.
            let mut last_round = false;
            loop {
                if !writing.load(Ordering::SeqCst) {
                    last_round = true;
                }
                let resp = client
                    .post(server.url("/api/v1/sql"))
                    .body(query.clone())
                    .send()
                    .await
                    .unwrap();
                let status = resp.status().as_u16();
                let json: serde_json::Value = resp.json().await.unwrap();
                // A query that raced a swap is run again by the engine: no error reaches us.
                assert_eq!(status, 200, "query failed during compaction: {json}");
                let rows = json["rows"].as_array().unwrap();
                let (n, d) = (
                    rows[0]["n"].as_u64().unwrap(),
                    rows[0]["d"].as_u64().unwrap(),
                );
                // Every listing shows a partition's old set or its new one: never both (double
                // rows), never a part (fewer rows than an earlier query saw).
                assert_eq!(n, d, "rows stored twice in the view of query {queries}");
                assert!(n >= last_n, "query {queries} saw {n} rows after {last_n}");
                last_n = n;
                queries += 1;
                let files = published_files(&data, DATASET);
                if files < last_files {
                    drops += 1; // only a merge removes files
                }
                peak_files = peak_files.max(files);
                last_files = files;
                if queries >= 10 && drops > 0 {
                    seen_enough.store(true, Ordering::SeqCst);
                }
                if last_round {
                    return (queries, peak_files, drops);
                }
            }
        })
    };
    let mut sent = 1; // the seed batch
    for s in senders {
        sent += s.await.unwrap();
    }
    writing.store(false, Ordering::SeqCst);
    let (queries, peak_files, drops) = reader.await.unwrap();
    let acked = acked.load(Ordering::SeqCst);
    assert_eq!(acked, sent * BATCH);
    assert!(
        queries >= 10,
        "only {queries} queries ran alongside the writers"
    );
    assert!(
        drops > 0,
        "no merge happened while the reader read: the test tested nothing"
    );

    // Once ingest stops, every event is flushed and merged: at most three small files (fewer
    // than min_files) per partition remain.
    let bound = 3 * partitions(&data).len();
    let deadline = std::time::Instant::now() + POLL_DEADLINE;
    let mut files = published_files(&data, DATASET);
    while files > bound {
        assert!(
            std::time::Instant::now() < deadline,
            "{files} files left after {POLL_DEADLINE:?}, more than {bound}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        files = published_files(&data, DATASET);
    }
    eprintln!(
        "compaction under readers: {queries} queries, {drops} merges seen, files peaked at \
         {peak_files}, {files} left"
    );
    assert!(files < peak_files);
    Arc::into_inner(server).unwrap().terminate();
    let rows = sql_json(
        &data,
        &format!("SELECT count(*) AS n, count(DISTINCT seq) AS d FROM {DATASET}"),
    );
    assert_eq!(
        (rows[0]["n"].as_u64(), rows[0]["d"].as_u64()),
        (Some(acked), Some(acked))
    );
}

/// What a killed server left in a dataset's `_tmp/`, by compaction step.
#[derive(Debug, Default)]
struct Leftovers {
    /// A merged file being written (the kill landed inside a merge).
    merging: usize,
    /// A staged set not yet swapped in (the kill landed between staging and the exchange).
    staged: usize,
    /// An old set waiting for its grace period (a swap happened before the kill).
    old_sets: usize,
}

fn leftovers(data: &Path) -> Leftovers {
    let tmp = data.join(DATASET).join("_tmp");
    let mut out = Leftovers::default();
    let Ok(entries) = std::fs::read_dir(&tmp) else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(stamp) = name.strip_prefix(loupe_store::compact::CONTAINER_PREFIX) else {
            continue;
        };
        let merged = format!("{stamp}-m.parquet");
        let part = e.path().join(loupe_store::compact::STAGING_DIR);
        if e.path().join(&merged).exists() {
            out.merging += 1;
        } else if part.join(&merged).exists() {
            out.staged += 1;
        } else if part.exists() {
            out.old_sets += 1;
        }
    }
    out
}

/// Every entry of every partition is a Parquet file, or the summary of a merged one beside
/// it: no directories, no hidden files, no merged file without its summary nor summary
/// without its file (compaction swaps both in and takes the inputs' away, whenever the process
/// is killed).
fn assert_no_strays(data: &Path) {
    for p in partitions(data) {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let summary_of_a_file = name
                .strip_suffix(".summary")
                .is_some_and(|stem| p.join(format!("{stem}.parquet")).is_file());
            assert!(
                e.file_type().unwrap().is_file()
                    && (name.ends_with(".parquet") || summary_of_a_file)
                    && !name.starts_with(['.', '_']),
                "stray entry {} in {}",
                name,
                p.display()
            );
            // Every merged file has its summary (published before it); a flushed one none.
            if let Some(stem) = name.strip_suffix(".parquet") {
                assert_eq!(
                    p.join(format!("{stem}.summary")).is_file(),
                    stem.ends_with("-m"),
                    "{name} in {}: a summary if and only if merged",
                    p.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_compaction_loses_and_duplicates_nothing() {
    const CYCLES: u64 = 16;
    const SENDERS: u64 = 3;
    const BATCH: u64 = 50;
    let (_tmp, data) = temp_data_dir();
    // Flush every 10 ms and compact every 5 ms with two files enough: merges run nearly all
    // the time, each rewriting the partition's small files, so kills land inside them.
    let config = "[collector]\n\
                  flush_interval_ms = 10\n\
                  [collector.compaction]\n\
                  interval_ms = 5\n\
                  target_file_bytes = 67108864\n\
                  min_files = 2\n";
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let sent: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut caught = Leftovers::default();
    // A fixed-seed generator for where the kills land (not for synchronisation).
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for cycle in 0..CYCLES {
        let server = ServerProcess::start(&data, Some(config));
        let url = server.url(&format!("/v1/events/{DATASET}"));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for s in 0..SENDERS {
            let (url, acked, sent, stop) = (url.clone(), acked.clone(), sent.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let client = client();
                for b in 0u64.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let first = ((cycle * SENDERS + s) << 32) | (b * BATCH);
                    sent.lock().unwrap().extend(first..first + BATCH);
                    if !post(&client, &url, body(first, BATCH), BATCH).await {
                        return; // killed under this request
                    }
                    acked.lock().unwrap().extend(first..first + BATCH);
                }
            }));
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = 300 + rng % 900;
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        server.kill();
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await.unwrap();
        }
        let left = leftovers(&data);
        caught.merging += left.merging;
        caught.staged += left.staged;
        caught.old_sets += left.old_sets;
        assert_no_strays(&data);
    }
    eprintln!("kills during compaction: {caught:?}");
    assert!(
        caught.merging + caught.staged > 0,
        "no kill landed inside a merge: the test tested nothing ({caught:?})"
    );
    assert!(
        caught.old_sets > 0,
        "no merge was ever swapped in ({caught:?})"
    );

    // A last start (compaction off, so `_tmp` stays as start-up leaves it) replays the WAL;
    // a graceful stop flushes it.
    let server = ServerProcess::start(&data, Some("[collector.compaction]\nenabled = false\n"));
    let tmp = data.join(DATASET).join("_tmp");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "start-up empties _tmp"
    );
    assert!(server.terminate().success());
    assert_no_strays(&data);

    let acked = acked.lock().unwrap().clone();
    let sent: HashSet<u64> = sent.lock().unwrap().iter().copied().collect();
    let counts = sql_json(
        &data,
        &format!("SELECT count(*) AS n, count(DISTINCT seq) AS d FROM {DATASET}"),
    );
    let (n, d) = (
        counts[0]["n"].as_u64().unwrap(),
        counts[0]["d"].as_u64().unwrap(),
    );
    assert_eq!(n, d, "events stored twice");
    let stored: HashSet<u64> = sql_json(&data, &format!("SELECT seq FROM {DATASET}"))
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    let lost: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|s| !stored.contains(s))
        .take(10)
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged events lost: {lost:?} (of {})",
        acked.len()
    );
    // Stored beyond the acknowledged: only requests in flight at a kill, which were sent.
    assert!(stored.is_subset(&sent));
    assert!(n as usize >= acked.len() && acked.len() as u64 >= CYCLES * BATCH);
    let files = published_files(&data, DATASET);
    eprintln!(
        "after {CYCLES} kills: {n} events stored ({} acknowledged) in {files} files",
        acked.len()
    );
}

/// Files, merge time and query time for 200 flushed files of 1,000 standard events each in
/// one partition. A measurement, not a test; run it in release:
/// `cargo test --release --test e2e compaction::measure -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn measure_merging_200_files_of_1000_standard_events() {
    use loupe_bench::{DEFAULT_START_US, Generator, WorkloadConfig};
    use loupe_collector::{Collector, CollectorConfig, CompactionConfig, Encoding};
    use std::time::{Duration, Instant};

    const FILES: usize = 200;
    const EVENTS: usize = 1_000;
    let tmp = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        compaction: CompactionConfig {
            enabled: false,
            ..CompactionConfig::default()
        },
        ..CollectorConfig::default()
    };
    let collector = Collector::open(tmp.path(), config).unwrap();
    // 1,000 events a second from 10 s past the hour (timestamps jitter up to 4 s earlier):
    // 200 s of traffic, one partition.
    let mut generator = Generator::new(WorkloadConfig {
        start_us: DEFAULT_START_US + 10_000_000,
        ..WorkloadConfig::default()
    });
    for _ in 0..FILES {
        let mut body = Vec::new();
        generator.write_ndjson(EVENTS, &mut body);
        collector
            .ingest_body(
                "bench",
                &body,
                Encoding::Identity,
                loupe_event::BodyFormat::Ndjson,
            )
            .await
            .unwrap();
        collector.flush_all().await.unwrap();
    }
    let store = loupe_store::Store::new(tmp.path());
    let ds = store.dataset(&loupe_store::DatasetName::new("bench").unwrap());
    let bytes = |files: &[std::path::PathBuf]| -> u64 {
        files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum()
    };
    let query =
        r#"SELECT "http.route", count(*) AS n, avg(duration_ms) AS avg_ms FROM bench GROUP BY 1"#;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let time_queries = async |store: &loupe_store::Store| {
        // A new engine per run: DataFusion's caches (file footers) are cold; the OS's are not.
        let mut cold = Vec::new();
        for _ in 0..5 {
            let engine = loupe_query::QueryEngine::new(store.clone());
            let t = Instant::now();
            let out = engine.sql(query, 1_000).await.unwrap();
            cold.push(t.elapsed());
            assert!(out.row_count() > 1);
        }
        let engine = loupe_query::QueryEngine::new(store.clone());
        let mut warm = Vec::new();
        for _ in 0..6 {
            let t = Instant::now();
            engine.sql(query, 1_000).await.unwrap();
            warm.push(t.elapsed());
        }
        (median(cold), median(warm[1..].to_vec()))
    };
    let before = ds.parquet_files().unwrap();
    assert_eq!(before.len(), FILES);
    let (cold_before, warm_before) = time_queries(&store).await;
    let t = Instant::now();
    let stats = collector.compact_all().await.unwrap();
    let merge_time = t.elapsed();
    let after = ds.parquet_files().unwrap();
    let (cold_after, warm_after) = time_queries(&store).await;
    let total = sql_count(&store).await;
    assert_eq!(total, (FILES * EVENTS) as i64);
    eprintln!(
        "compaction of {FILES} files x {EVENTS} standard events, one partition:\n  \
         files {} -> {} ({} -> {} bytes), merge {:.2} s ({stats:?})\n  \
         GROUP BY query, fresh engine: {:.1} ms -> {:.1} ms; same engine: {:.1} ms -> {:.1} ms",
        before.len(),
        after.len(),
        bytes(&before),
        bytes(&after),
        merge_time.as_secs_f64(),
        cold_before.as_secs_f64() * 1e3,
        cold_after.as_secs_f64() * 1e3,
        warm_before.as_secs_f64() * 1e3,
        warm_after.as_secs_f64() * 1e3,
    );
    collector.shutdown().await;
}

async fn sql_count(store: &loupe_store::Store) -> i64 {
    let engine = loupe_query::QueryEngine::new(store.clone());
    let out = engine
        .sql("SELECT count(*) AS n FROM bench", 1)
        .await
        .unwrap();
    out.batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}
