//! Backpressure: past the memory bound ingest answers 429 and recovers by itself; a full disk
//! answers 503 and recovers by itself; reads go on meanwhile; nothing acknowledged is lost.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use loupe_bench::{Generator, WorkloadConfig};

use crate::support::{LOUPE, POLL_DEADLINE, ServerProcess, client, sql_json, temp_data_dir};

/// What a batch's POST came back with.
enum Answer {
    Accepted(usize),
    Refused { status: u16, retry_after: String },
}

async fn post_batch(server: &ServerProcess, body: Vec<u8>) -> Answer {
    let resp = client()
        .post(server.url("/v1/events/api"))
        .header("Content-Type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let json: serde_json::Value = resp.json().await.unwrap();
    match status {
        200 => {
            let n = json["accepted"].as_u64().unwrap() as usize;
            assert_eq!(json["rejected"], 0, "standard events are all valid: {json}");
            Answer::Accepted(n)
        }
        429 | 503 => {
            assert!(json["error"].is_string(), "{json}");
            Answer::Refused {
                status,
                retry_after,
            }
        }
        other => panic!("unexpected {other}: {json}"),
    }
}

fn batches(seed: u64, n: usize, per_batch: usize) -> Vec<Vec<u8>> {
    let mut g = Generator::new(WorkloadConfig {
        seed,
        ..WorkloadConfig::default()
    });
    (0..n)
        .map(|_| {
            let mut body = Vec::new();
            g.write_ndjson(per_batch, &mut body);
            body
        })
        .collect()
}

/// Peak resident memory of a process, from /proc (kB -> bytes).
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024
}

/// What is stored, counted after a restart replays the WAL and a graceful stop flushes it.
fn stored(data_dir: &std::path::Path) -> (u64, u64) {
    let server = ServerProcess::start(data_dir, None);
    assert!(server.terminate().success());
    let rows = sql_json(
        data_dir,
        r#"SELECT count(*) AS n, count(DISTINCT "trace.span_id") AS ids FROM api"#,
    );
    (
        rows[0]["n"].as_u64().unwrap(),
        rows[0]["ids"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_memory_bound_ingest_answers_429_serves_reads_and_keeps_every_ack() {
    // Batches of 500 events per client (4 clients).
    const BATCHES: usize = 40;
    let (_tmp, data) = temp_data_dir();
    // A small bound, and no flush but the one the bound asks for: without backpressure the
    // collector would hold every event sent (over 300 MB) until the next interval. Refused at
    // once at the bound (no admission wait), so the 429 path is what is tested.
    let config = "[collector]\n\
                  max_buffered_bytes = 8388608\n\
                  admission_wait_ms = 0\n\
                  max_inflight_body_bytes = 2097152\n\
                  flush_interval_ms = 600000\n\
                  flush_max_bytes = 1073741824\n\
                  flush_max_events = 10000000\n";
    let server = Arc::new(ServerProcess::start(&data, Some(config)));
    let baseline_rss = peak_rss_bytes(server.pid());
    let acked = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let reads_while_refusing = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..4u64 {
        let (server, acked, refused, reads) = (
            server.clone(),
            acked.clone(),
            refused.clone(),
            reads_while_refusing.clone(),
        );
        clients.push(tokio::spawn(async move {
            for body in batches(c, BATCHES, 500) {
                // A hang guard, not a timing bound: a server that never admits again fails
                // here rather than hanging the suite.
                let deadline = std::time::Instant::now() + POLL_DEADLINE;
                loop {
                    match post_batch(&server, body.clone()).await {
                        Answer::Accepted(n) => {
                            acked.fetch_add(n, Ordering::Relaxed);
                            break;
                        }
                        Answer::Refused {
                            status,
                            retry_after,
                        } => {
                            assert_eq!((status, retry_after.as_str()), (429, "1"));
                            let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
                            assert!(
                                std::time::Instant::now() < deadline,
                                "not admitted again within {POLL_DEADLINE:?} ({n} refusals)"
                            );
                            // Reads are served while ingest refuses.
                            let resp = client()
                                .post(server.url("/api/v1/sql"))
                                .body("SELECT 1 AS one")
                                .send()
                                .await
                                .unwrap();
                            assert_eq!(resp.status().as_u16(), 200);
                            reads.fetch_add(1, Ordering::Relaxed);
                            // The client's own retry pace; the server asked for 1 s.
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let peak = peak_rss_bytes(server.pid());
    let acked = acked.load(Ordering::Relaxed);
    assert_eq!(acked, 4 * BATCHES * 500, "every batch got in in the end");
    assert!(
        refused.load(Ordering::Relaxed) > 0,
        "the bound was never reached: the test did not test it"
    );
    assert!(reads_while_refusing.load(Ordering::Relaxed) > 0);
    eprintln!(
        "backpressure: {} refusals, peak RSS {} MiB (idle {} MiB)",
        refused.load(Ordering::Relaxed),
        peak >> 20,
        baseline_rss >> 20
    );
    // 8 MiB of buffers (plus the request that crossed the bound), 2 MiB of bodies in flight
    // (decoded: about 4x that), a flush's Arrow copy, and allocator slack: mimalloc keeps freed
    // pages for a second before giving them back, and measured 120-150 MiB over idle here
    // (glibc: ~80). Without the bound the 80,000 events (~8 KB each in memory) would take over
    // 600 MiB.
    assert!(
        peak < baseline_rss + (192 << 20),
        "peak RSS {} MiB over idle {} MiB",
        peak >> 20,
        baseline_rss >> 20
    );
    // An ack means on disk: kill without a flush, and every acknowledged event is there once.
    Arc::into_inner(server).unwrap().kill();
    assert_eq!(stored(&data), (acked as u64, acked as u64));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_answers_503_and_recovers_by_itself_keeping_every_ack() {
    let (_tmp, data) = temp_data_dir();
    // The disk "fills" at 2 MiB per file (RLIMIT_FSIZE: writes past it fail with EFBIG, as
    // they would with ENOSPC; SIGXFSZ is ignored so the write returns the error). Only the
    // flush that a refused write asks for retires the full WAL segment.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        r#"trap '' XFSZ; exec prlimit --fsize=2097152 -- "$0" "$@""#,
        LOUPE,
    ]);
    let config = "[collector]\n\
                  flush_interval_ms = 600000\n\
                  flush_max_bytes = 1073741824\n\
                  flush_max_events = 10000000\n";
    let server = ServerProcess::start_command(cmd, &data, Some(config), &[]);
    let mut acked = 0;
    let mut refused = 0;
    for body in batches(9, 24, 250) {
        // A hang guard, not a timing bound: a server that never recovers fails here.
        let deadline = std::time::Instant::now() + POLL_DEADLINE;
        loop {
            match post_batch(&server, body.clone()).await {
                Answer::Accepted(n) => {
                    acked += n;
                    break;
                }
                Answer::Refused {
                    status,
                    retry_after,
                } => {
                    assert_eq!((status, retry_after.as_str()), (503, "5"));
                    refused += 1;
                    assert!(
                        std::time::Instant::now() < deadline,
                        "did not recover within {POLL_DEADLINE:?} ({refused} refusals)"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }
    assert_eq!(acked, 24 * 250);
    // About 450 KB of WAL per batch: the 2 MiB file limit is reached several times.
    assert!(
        refused > 0,
        "the write never failed: the test did not test it"
    );
    server.kill();
    assert_eq!(stored(&data), (acked as u64, acked as u64));
}
