//! The collector's write path, in process: acks, flushes, recovery.

use std::sync::atomic::AtomicI64;

use loupe_event::BodyFormat;
use parquet::file::reader::{FileReader, SerializedFileReader};

use super::*;

const T0: i64 = 1_795_400_000_000_000; // 2026-11-23T02:13:20Z

struct TestClock(AtomicI64);
impl Clock for TestClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn open(dir: &Path) -> (Collector, RecoveryReport) {
    Collector::open_with_clock(
        dir,
        CollectorConfig::default(),
        Arc::new(TestClock(AtomicI64::new(T0))),
    )
    .unwrap()
}

fn rows_on_disk(dir: &Path, dataset: &str) -> usize {
    let store = Store::new(dir);
    let ds = store.dataset(&DatasetName::new(dataset).unwrap());
    ds.parquet_files()
        .unwrap()
        .iter()
        .map(|p| {
            let r = SerializedFileReader::new(std::fs::File::open(p).unwrap()).unwrap();
            r.metadata().file_metadata().num_rows() as usize
        })
        .sum()
}

/// Ingests `body` (any shape, uncompressed) into `dataset`.
async fn send(c: &Collector, dataset: &str, body: &[u8]) -> Result<IngestOutcome> {
    c.ingest_body(dataset, body, Encoding::Identity, BodyFormat::Auto)
        .await
}

fn ndjson(from: usize, n: usize) -> Vec<u8> {
    (from..from + n)
        .map(|i| format!("{{\"seq\": {i}, \"duration_ms\": {}}}\n", i % 100))
        .collect::<String>()
        .into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn accepted_events_reach_parquet_and_bad_ones_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(dir.path());
    let body = b"{\"a\": 1}\n{\"a\": \n{\"sample_rate\": 0}\n{\"a\": 2}\n";
    let out = send(&c, "api", body).await.unwrap();
    assert_eq!((out.accepted, out.rejected), (2, 2));
    assert_eq!(out.events[0], EventStatus::Accepted);
    assert!(matches!(
        out.events[1],
        EventStatus::Rejected {
            code: "invalid_json",
            ..
        }
    ));
    assert!(matches!(
        out.events[2],
        EventStatus::Rejected {
            code: "bad_sample_rate",
            ..
        }
    ));
    assert_eq!(c.buffered_events(), 2);
    let stats = c.flush_all().await.unwrap();
    assert_eq!((stats.events, stats.files), (2, 1));
    assert_eq!(c.buffered_events(), 0);
    assert_eq!(rows_on_disk(dir.path(), "api"), 2);
    // nothing left in the WAL but the fresh segment, and no temporary files
    let wal: Vec<_> = std::fs::read_dir(dir.path().join("api/_wal"))
        .unwrap()
        .collect();
    assert_eq!(wal.len(), 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("api/_tmp"))
            .unwrap()
            .count(),
        0
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_events_survive_a_crash_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(dir.path());
    send(&c, "api", &ndjson(0, 50)).await.unwrap();
    c.flush_all().await.unwrap();
    send(&c, "api", &ndjson(50, 30)).await.unwrap();
    c.abandon().await; // acked, not flushed
    drop(c);
    assert_eq!(rows_on_disk(dir.path(), "api"), 50);

    let (c, report) = open(dir.path());
    assert_eq!(
        report.events_replayed, 30,
        "only what was not yet in Parquet"
    );
    c.flush_all().await.unwrap();
    assert_eq!(rows_on_disk(dir.path(), "api"), 80);
    c.abandon().await;
    drop(c);
    let (_c, report) = open(dir.path());
    assert_eq!(
        report.events_replayed, 0,
        "flushed events are not replayed again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_flush_is_finished_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(dir.path());
    send(&c, "api", &ndjson(0, 10)).await.unwrap();
    c.flush_all().await.unwrap();
    c.abandon().await;
    drop(c);
    // Re-create the state of a crash between the commit record and its renames: move the
    // published file back to _tmp and put the record back.
    let ds = dir.path().join("api");
    let file = Store::new(dir.path())
        .dataset(&DatasetName::new("api").unwrap())
        .parquet_files()
        .unwrap()
        .remove(0);
    let name = file.file_name().unwrap().to_owned();
    let rel = file.strip_prefix(&ds).unwrap().to_path_buf();
    std::fs::rename(&file, ds.join("_tmp").join(&name)).unwrap();
    let wal_dir = ds.join("_wal");
    let seg = wal::list_segments(&wal_dir).unwrap()[0];
    wal::write_commit_record(
        &wal_dir,
        &wal::CommitRecord {
            upto: seg - 1,
            renames: vec![(Path::new("_tmp").join(&name), rel)],
        },
    )
    .unwrap();
    let (_c, report) = open(dir.path());
    assert_eq!(report.commits_applied, 1);
    assert_eq!(rows_on_disk(dir.path(), "api"), 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(dir.path());
    let mut tasks = Vec::new();
    for t in 0..32 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            send(&c, "api", &ndjson(t * 100, 100))
                .await
                .unwrap()
                .accepted
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += t.await.unwrap();
    }
    assert_eq!(acked, 3200);
    c.shutdown().await;
    assert_eq!(rows_on_disk(dir.path(), "api"), 3200);
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_bound_a_request_waits_for_the_flush_it_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        max_buffered_bytes: 2_000,
        // Only the flush that the bound asks for runs.
        flush_interval_ms: 3_600_000,
        admission_wait_ms: 60_000,
        ..CollectorConfig::default()
    };
    let (c, _) = Collector::open_with_clock(dir.path(), config, Arc::new(SystemClock)).unwrap();
    let flusher = c.spawn_background_flush();
    send(&c, "api", &ndjson(0, 8)).await.unwrap();
    assert!(c.admit().is_err(), "at the bound");
    // Waits (instead of answering 429) until the background flush it woke has made room.
    c.admit_waiting().await.unwrap();
    assert_eq!(c.buffered_events(), 0);
    assert_eq!(rows_on_disk(dir.path(), "api"), 8);
    flusher.abort();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_bound_a_request_is_refused_when_no_room_comes_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        max_buffered_bytes: 2_000,
        admission_wait_ms: 20,
        ..CollectorConfig::default()
    };
    let (c, _) = Collector::open_with_clock(dir.path(), config, Arc::new(SystemClock)).unwrap();
    send(&c, "api", &ndjson(0, 8)).await.unwrap();
    // No flusher runs: the wait ends in the 429.
    let err = c.admit_waiting().await.unwrap_err();
    assert_eq!(err.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
    c.shutdown().await;
}

#[tokio::test]
async fn full_buffers_answer_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        // Eight of these small events are about 3 KB: one request fills the bound.
        max_buffered_bytes: 2_000,
        ..CollectorConfig::default()
    };
    let (c, _) = Collector::open_with_clock(dir.path(), config, Arc::new(SystemClock)).unwrap();
    c.admit().unwrap();
    send(&c, "api", &ndjson(0, 8)).await.unwrap();
    assert!(c.buffered_bytes() >= 2_000, "{}", c.buffered_bytes());
    let err = c.admit().unwrap_err();
    assert_eq!(err.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err.retry_after_s(), Some(1));
    assert!(err.to_string().contains("max_buffered_bytes"), "{err}");
    // The Rust API goes through the same gate.
    let err = send(&c, "api", &ndjson(8, 8)).await.unwrap_err();
    assert_eq!(err.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
    c.flush_all().await.unwrap();
    assert_eq!((c.buffered_events(), c.buffered_bytes()), (0, 0));
    // recovered once flushed
    c.admit().unwrap();
    send(&c, "api", &ndjson(8, 8)).await.unwrap();
    c.shutdown().await;
    assert_eq!(rows_on_disk(dir.path(), "api"), 16);
}

#[tokio::test(flavor = "multi_thread")]
async fn request_bodies_wait_for_room_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        max_inflight_body_bytes: 8 * 1024,
        ..CollectorConfig::default()
    };
    let (c, _) = Collector::open_with_clock(dir.path(), config, Arc::new(SystemClock)).unwrap();
    let first = c.reserve_body(6 * 1024).await;
    assert_eq!(c.inner.inflight.available_permits(), 2, "counted in KiB");
    // 6 KiB of 8 are taken: a 4 KiB body must wait until they are given back.
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut waiting = std::pin::pin!(c.reserve_body(4 * 1024));
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    drop(first);
    let second = match waiting.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(p) => p,
        std::task::Poll::Pending => panic!("room was given back but the body still waits"),
    };
    assert_eq!(c.inner.inflight.available_permits(), 4);
    // A body larger than the whole room takes all of it (and so waits for all of it).
    drop(second);
    let huge = c.reserve_body(1 << 30).await;
    assert_eq!(c.inner.inflight.available_permits(), 0);
    drop(huge);
    assert_eq!(c.inner.inflight.available_permits(), 8);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_dataset_names_are_refused_before_any_io() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(dir.path());
    for bad in ["../x", "", "Has Space"] {
        let err = send(&c, bad, b"{}").await.unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{bad}");
    }
    let made: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != ".lock")
        .collect();
    assert!(made.is_empty(), "{made:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_collector_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(dir.path());
    let err = Collector::open(dir.path(), CollectorConfig::default())
        .err()
        .unwrap();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    c.abandon().await;
    drop(c);
    // released with the collector (and by the OS when a process dies)
    let (_c, _) = open(dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_torn_tail_is_truncated_so_a_later_start_does_not_call_it_corrupt() {
    // Regression (review finding): a torn tail left in place became "corruption in the middle
    // of the log" once a newer segment existed, and its events were quarantined away.
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(dir.path());
    send(&c, "api", &ndjson(0, 30)).await.unwrap();
    c.abandon().await;
    drop(c);
    let wal_dir = dir.path().join("api/_wal");
    let seg = *wal::list_segments(&wal_dir).unwrap().last().unwrap();
    let seg_path = wal_dir.join(format!("{seg:016x}.wal"));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&seg_path)
        .unwrap();
    std::io::Write::write_all(&mut f, &[9, 0, 0, 0, 1, 2, 3]).unwrap(); // a torn record
    drop(f);
    for round in 0..2 {
        let (c, report) = open(dir.path());
        assert_eq!(report.events_replayed, 30, "round {round}");
        c.abandon().await; // crash again before any flush
    }
    let corrupt = std::fs::read_dir(&wal_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".corrupt"))
        .count();
    assert_eq!(corrupt, 0);
    let (c, _) = open(dir.path());
    c.shutdown().await;
    assert_eq!(rows_on_disk(dir.path(), "api"), 30);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flush_that_fails_after_its_commit_record_is_finished_not_repeated() {
    // Regression (review finding): a retry re-published every file of a flush whose commit
    // record was already in place, storing the files published before the failure twice.
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = open(dir.path());
    // two partitions on two dates: 2026-11-23T23:30Z and 2026-11-24T00:30Z
    let body = concat!(
        "{\"timestamp\": \"2026-11-23T23:30:00Z\", \"k\": 1}\n",
        "{\"timestamp\": \"2026-11-24T00:30:00Z\", \"k\": 2}\n",
    );
    send(&c, "api", body.as_bytes()).await.unwrap();
    // A file where the second date's directory must go: its rename fails after the first
    // partition's file was published.
    let blocker = dir.path().join("api/date=2026-11-24");
    std::fs::write(&blocker, b"in the way").unwrap();
    assert!(c.flush_all().await.is_err());
    assert_eq!(
        rows_on_disk(dir.path(), "api"),
        1,
        "the first partition was published"
    );
    std::fs::remove_file(&blocker).unwrap();
    c.flush_all().await.unwrap();
    assert_eq!(rows_on_disk(dir.path(), "api"), 2, "each event once");
    assert_eq!(c.buffered_events(), 0);
    c.shutdown().await;
    drop(c);
    let (_c, report) = open(dir.path());
    assert_eq!(report.events_replayed, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn new_datasets_past_the_limit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        max_datasets: 2,
        ..CollectorConfig::default()
    };
    let (c, _) = Collector::open_with_clock(dir.path(), config, Arc::new(SystemClock)).unwrap();
    for ds in ["a", "b"] {
        send(&c, ds, b"{}").await.unwrap();
    }
    let err = send(&c, "c", b"{}").await.unwrap_err();
    assert_eq!(err.status(), axum::http::StatusCode::FORBIDDEN);
    assert!(err.to_string().contains("max_datasets"), "{err}");
    // existing datasets still take events
    send(&c, "a", b"{}").await.unwrap();
    c.shutdown().await;
}

#[test]
fn invalid_settings_are_refused_at_open_naming_each_option() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectorConfig {
        flush_interval_ms: 0,
        max_datasets: 0,
        ..CollectorConfig::default()
    };
    let err = Collector::open(dir.path(), config).err().unwrap();
    let msg = err.to_string();
    assert!(
        matches!(err, Error::InvalidConfig { ref problems } if problems.len() == 2),
        "{msg}"
    );
    assert!(
        msg.contains("flush_interval_ms") && msg.contains("max_datasets"),
        "{msg}"
    );
}
