//! The promise: an acknowledgement means the events are on disk. Kill -9 the server while
//! batches are in flight, again and again; every acknowledged event must be stored exactly
//! once, and no event (acknowledged or not) twice.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::{
    POLL_DEADLINE, ServerProcess, client, published_files, sql_json, temp_data_dir,
};

const CYCLES: u64 = 20;
const SENDERS: u64 = 4;
const BATCH: u64 = 50;
// Flush often, so kills also land inside flushes and their commit records, and every cycle
// publishes files before it is killed (checked below).
const CONFIG: &str = "[collector]\nflush_interval_ms = 20\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_event_and_stores_none_twice() {
    let (_tmp, data) = temp_data_dir();
    let acked: Arc<Mutex<Vec<u64>>> = Arc::default();
    let in_flight_at_kill = Arc::new(AtomicUsize::new(0));

    for cycle in 0..CYCLES {
        let files_before = published_files(&data, "kill");
        let server = ServerProcess::start(&data, Some(CONFIG));
        let url = server.url("/v1/events/kill");
        let acked_this_cycle = Arc::new(AtomicU64::new(0));
        let threshold = 300 + cycle * 37; // vary where in the stream the kill lands
        let reached = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for sender in 0..SENDERS {
            let (url, acked, count, reached) = (
                url.clone(),
                acked.clone(),
                acked_this_cycle.clone(),
                reached.clone(),
            );
            let in_flight = in_flight_at_kill.clone();
            tasks.push(tokio::spawn(async move {
                let client = client();
                for batch in 0u64.. {
                    let first = ((cycle * SENDERS + sender) << 32) | (batch * BATCH);
                    let body: String = (first..first + BATCH)
                        .map(|seq| {
                            format!(
                                "{{\"seq\": {seq}, \"cycle\": {cycle}, \"pad\": \"{}\"}}\n",
                                "x".repeat(200)
                            )
                        })
                        .collect();
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await;
                    let ok = match resp {
                        Ok(r) if r.status().is_success() => r
                            .json::<serde_json::Value>()
                            .await
                            .is_ok_and(|b| b["accepted"] == BATCH),
                        _ => false,
                    };
                    if !ok {
                        // The server died under this request: it was in flight at the kill.
                        in_flight.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    acked.lock().unwrap().extend(first..first + BATCH);
                    if count.fetch_add(BATCH, Ordering::Relaxed) + BATCH >= threshold {
                        reached.notify_one();
                    }
                }
            }));
        }
        reached.notified().await;
        // Kill only once this run has published a file of its own (replayed events included),
        // so a replay that ignored what was already published would store events twice. The
        // senders keep sending meanwhile, so requests are in flight at the kill. The deadline
        // is a hang guard: a run that never publishes fails here instead of being killed.
        let deadline = std::time::Instant::now() + POLL_DEADLINE;
        while published_files(&data, "kill") <= files_before {
            assert!(
                std::time::Instant::now() < deadline,
                "cycle {cycle} published no file within {POLL_DEADLINE:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        server.kill();
        for t in tasks {
            t.await.unwrap();
        }
    }

    // A last start replays what is left; a graceful stop flushes it.
    let server = ServerProcess::start(&data, Some(CONFIG));
    assert!(server.terminate().success(), "graceful shutdown exits 0");

    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() as u64 >= CYCLES * 300,
        "each cycle acknowledged events"
    );
    assert!(
        in_flight_at_kill.load(Ordering::Relaxed) > 0,
        "kills must land while requests are in flight"
    );
    let dupes = sql_json(
        &data,
        "SELECT seq, count(*) AS n FROM kill GROUP BY seq HAVING count(*) > 1 LIMIT 10",
    );
    assert!(dupes.is_empty(), "events stored twice: {dupes:?}");
    let stored: HashSet<u64> = sql_json(&data, "SELECT seq FROM kill")
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
    // each cycle's kill left a WAL to replay or a flush to finish, and all of it landed
    let cycles = sql_json(&data, "SELECT count(DISTINCT cycle) AS c FROM kill");
    assert_eq!(cycles[0]["c"], CYCLES);
}
