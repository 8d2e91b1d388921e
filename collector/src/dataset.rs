//! One dataset's write path: a writer thread that group-commits appends to the WAL, the buffer
//! of durable events waiting for Parquet, and the flush that publishes them.
//!
//! Appends and rotations travel through one channel to the writer thread, so a rotation is
//! ordered exactly between the appends before it (their events leave with the sealed
//! segments) and the ones after it (they go to the new segment and the new buffer).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use loupe_event::ValidEvent;
use loupe_store::{Catalog, DatasetDir, Partition, events_to_batch, fsutil, write_parquet};
use tokio::sync::{Notify, oneshot};

use crate::buffered::{Buffered, FlushAt, mem_bytes};
use crate::clock::Clock;
use crate::error::WalError;
use crate::wal::{self, CommitRecord, SegmentWriter};

/// Most events one WAL record (one group commit) holds; bigger groups are split.
const MAX_EVENTS_PER_COMMIT: usize = 65_536;

enum Command {
    Append {
        events: Vec<ValidEvent>,
        reply: oneshot::Sender<Result<(), Failure>>,
    },
    Rotate {
        reply: oneshot::Sender<Result<Option<Sealed>, WalError>>,
    },
}

/// Events whose segments (`..= upto`) are closed and which now wait for Parquet.
pub(crate) struct Sealed {
    upto: u64,
    events: Vec<ValidEvent>,
    /// Their estimated memory, as counted when they were buffered.
    bytes: usize,
}

/// Why an append was not made durable.
#[derive(Debug, Clone, PartialEq)]
enum Failure {
    /// This write failed and was undone; the log goes on (a full disk: retry later).
    Refused(String),
    /// The log failed earlier in a way that cannot be undone and refuses all writes.
    Broken(String),
}

/// What one flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushStats {
    pub events: usize,
    pub files: usize,
    pub bytes: u64,
}

pub(crate) struct DatasetHandle {
    dir: DatasetDir,
    tx: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Durable events not yet in Parquet: this dataset's, and all datasets'.
    buffered: Arc<Buffered>,
    total_buffered: Arc<Buffered>,
    /// Serialises flushes and holds what they need: the catalog, and a sealed set whose flush
    /// failed and must be retried before anything else.
    flush: Mutex<FlushState>,
}

struct FlushState {
    catalog: Catalog,
    retry: Option<Retry>,
}

/// A flush that failed and must be finished before anything else is flushed.
struct Retry {
    sealed: Sealed,
    /// Its commit record is on disk: the flush is decided, its files are (being) published,
    /// and a retry may only finish it. Publishing its events again would store them twice.
    decided: bool,
}

/// Everything recovered from disk when a dataset is opened.
pub(crate) struct Recovered {
    pub(crate) events: usize,
    pub(crate) records: usize,
    pub(crate) commits_applied: usize,
}

static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

impl DatasetHandle {
    /// Opens (creating if needed) a dataset: finishes any interrupted flush, clears temporary
    /// files, replays the WAL into the buffer, and starts the writer thread on a new segment.
    pub(crate) fn open(
        dir: DatasetDir,
        total_buffered: Arc<Buffered>,
        flush_needed: Arc<Notify>,
        flush_at: FlushAt,
    ) -> Result<(Arc<Self>, Recovered), WalError> {
        let wal_dir = dir.wal_dir();
        fsutil::create_dir_durable(&wal_dir)?;
        fsutil::create_dir_durable(&dir.tmp_dir())?;
        let commits_applied = wal::apply_commit_records(dir.path(), &wal_dir)?;
        // Half-written flush files and compaction containers (staging directories, old file
        // sets): none is referenced once the commit records above are applied. Leftovers are
        // harmless (readers skip `_tmp`), so a failure to remove them only warns.
        if let Err(e) = fsutil::clear_dir(&dir.tmp_dir()) {
            tracing::warn!(dataset = %dir.name(), error = %e, "could not empty the dataset's _tmp");
        }

        let segments = wal::list_segments(&wal_dir)?;
        let mut events = Vec::new();
        let mut records = 0;
        for (i, &seq) in segments.iter().enumerate() {
            let replayed = wal::read_segment(&wal_dir, seq)?;
            events.extend(replayed.events);
            records += replayed.records;
            let Some(why) = replayed.stopped else {
                continue;
            };
            if i + 1 == segments.len() {
                tracing::warn!(dataset = %dir.name(), segment = seq, %why,
                    "WAL ends in a torn record (a write interrupted by a crash, never acknowledged); truncating it");
                wal::truncate_segment(&wal_dir, seq, replayed.valid_len)?;
            } else {
                let kept = wal::quarantine_segment(&wal_dir, seq)?;
                tracing::error!(dataset = %dir.name(), segment = seq, %why, kept = %kept.display(),
                    "WAL segment is corrupt in the middle of the log; events after the damage are lost");
            }
        }
        if events.is_empty() {
            // Nothing to replay: segments that hold only headers (or torn writes) are done with.
            if let Some(&last) = segments.last() {
                wal::remove_segments_upto(&wal_dir, last)?;
            }
        }
        let next = segments.last().map_or(1, |s| s + 1);
        let segment = SegmentWriter::create(&wal_dir, next)?;
        let catalog = Catalog::load(&dir.catalog_dir())?;

        let buffer_bytes = mem_bytes(&events);
        let buffered = Arc::new(Buffered::default());
        buffered.add(events.len(), buffer_bytes);
        total_buffered.add(events.len(), buffer_bytes);
        let recovered = Recovered {
            events: events.len(),
            records,
            commits_applied,
        };
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            name: dir.name().to_string(),
            segment,
            buffer: events,
            buffer_bytes,
            broken: None,
            buffered: buffered.clone(),
            total_buffered: total_buffered.clone(),
            flush_needed,
            flush_at,
        };
        let thread = std::thread::Builder::new()
            .name(format!("wal-{}", dir.name()))
            .spawn(move || writer.run(rx))
            .map_err(|e| WalError::Io {
                op: "spawn writer thread for",
                path: wal_dir.clone(),
                source: e,
            })?;
        let handle = DatasetHandle {
            dir,
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            buffered,
            total_buffered,
            flush: Mutex::new(FlushState {
                catalog,
                retry: None,
            }),
        };
        Ok((Arc::new(handle), recovered))
    }

    fn send(&self, cmd: Command) -> Result<(), WalError> {
        let tx = self.tx.lock().expect("sender lock");
        let stopped = || WalError::Stopped(self.dir.name().to_string());
        tx.as_ref()
            .ok_or_else(stopped)?
            .send(cmd)
            .map_err(|_| stopped())
    }

    /// Appends `events` to the WAL and returns once they are on disk. Only then may they be
    /// acknowledged. Concurrent calls share one fsync (group commit).
    pub(crate) async fn append_durable(&self, events: Vec<ValidEvent>) -> Result<(), WalError> {
        if events.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        self.send(Command::Append { events, reply })?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(Failure::Refused(cause))) => Err(WalError::Refused {
                dataset: self.dir.name().to_string(),
                cause,
            }),
            Ok(Err(Failure::Broken(cause))) => Err(WalError::Broken {
                dataset: self.dir.name().to_string(),
                cause,
            }),
            Err(_) => Err(WalError::Stopped(self.dir.name().to_string())),
        }
    }

    /// Writes every buffered event to Parquet and retires its WAL segments. Blocking: call it
    /// from a blocking thread.
    pub(crate) fn flush_blocking(&self, clock: &dyn Clock) -> Result<FlushStats, WalError> {
        let mut state = self.flush.lock().expect("flush lock");
        let wal_dir = self.dir.wal_dir();
        let (mut sealed, decided) = match state.retry.take() {
            Some(r) => (r.sealed, r.decided),
            None => {
                let (reply, rx) = oneshot::channel();
                self.send(Command::Rotate { reply })?;
                match rx.blocking_recv() {
                    Ok(r) => match r? {
                        Some(s) => (s, false),
                        None => return Ok(FlushStats::default()),
                    },
                    Err(_) => return Err(WalError::Stopped(self.dir.name().to_string())),
                }
            }
        };
        let (n, bytes) = (sealed.events.len(), sealed.bytes);
        let result = if decided {
            wal::apply_commit_records(self.dir.path(), &wal_dir).map(|_| FlushStats {
                events: n,
                ..FlushStats::default()
            })
        } else {
            publish(&self.dir, &mut state.catalog, &mut sealed, clock)
        };
        match result {
            Ok(stats) => {
                self.buffered.sub(n, bytes);
                self.total_buffered.sub(n, bytes);
                Ok(stats)
            }
            Err(e) => {
                let decided = decided || wal::commit_record_exists(&wal_dir, sealed.upto);
                state.retry = Some(Retry { sealed, decided });
                Err(e)
            }
        }
    }

    pub(crate) fn dir(&self) -> &DatasetDir {
        &self.dir
    }

    /// Runs `f` while no flush of this dataset can publish files (compaction's swap of a
    /// partition must not race a flush's renames into it). Returns `None` without running `f`
    /// while a failed flush waits for its retry: its commit record may name a published file,
    /// and redoing the record after a merge removed that file would fail.
    pub(crate) fn without_flushes<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        let state = self.flush.lock().expect("flush lock");
        if state.retry.is_some() {
            return None;
        }
        Some(f())
    }

    /// Stops the writer thread after it has finished what was sent to it.
    pub(crate) fn stop(&self) {
        self.tx.lock().expect("sender lock").take();
        if let Some(t) = self.thread.lock().expect("thread lock").take() {
            let _ = t.join();
        }
    }
}

/// Writes the sealed events as one Parquet file per hour partition and publishes them through
/// a commit record (see the `wal` module doc for why that order is crash-safe).
fn publish(
    dir: &DatasetDir,
    catalog: &mut Catalog,
    sealed: &mut Sealed,
    clock: &dyn Clock,
) -> Result<FlushStats, WalError> {
    let wal_dir = dir.wal_dir();
    let now = clock.now_us();
    // Group by hour in place (stable, so arrival order holds within an hour): no copy of the
    // events, which are most of the collector's memory.
    sealed
        .events
        .sort_by_key(|e| Partition::of(e.timestamp_us()));
    let parts = sealed
        .events
        .chunk_by(|a, b| Partition::of(a.timestamp_us()) == Partition::of(b.timestamp_us()))
        .map(|chunk| (Partition::of(chunk[0].timestamp_us()), chunk));
    let mut stats = FlushStats {
        events: sealed.events.len(),
        ..FlushStats::default()
    };
    let mut renames = Vec::new();
    let result = (|| -> Result<(), WalError> {
        for (partition, events) in parts {
            let batch = events_to_batch(events, catalog, now)?;
            let name = format!(
                "{now:016x}-{:x}-{:x}.parquet",
                std::process::id(),
                FILE_COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let tmp = PathBuf::from(loupe_store::layout::TMP_DIR).join(&name);
            // Listed before it is written, so a failed write leaves nothing behind either.
            renames.push((tmp.clone(), partition.relative_path().join(&name)));
            stats.bytes += write_parquet(&dir.path().join(&tmp), &batch)?;
            stats.files += 1;
        }
        fsutil::fsync_dir(&dir.tmp_dir())?;
        catalog.save_if_changed(&dir.catalog_dir())?;
        wal::write_commit_record(
            &wal_dir,
            &CommitRecord {
                upto: sealed.upto,
                renames: renames.clone(),
            },
        )
    })();
    if let Err(e) = result {
        // If the commit record made it into place despite the error, the flush is decided and
        // its files must stay for the retry (or the start-up redo) to publish.
        if !wal::commit_record_exists(&wal_dir, sealed.upto) {
            for (tmp, _) in &renames {
                let _ = std::fs::remove_file(dir.path().join(tmp));
            }
        }
        return Err(e);
    }
    wal::apply_commit_records(dir.path(), &wal_dir)?;
    Ok(stats)
}

/// The state owned by the writer thread.
struct Writer {
    name: String,
    segment: SegmentWriter,
    buffer: Vec<ValidEvent>,
    /// The estimated memory of `buffer`.
    buffer_bytes: usize,
    /// Set after a failed write or fsync. A failed fsync leaves the file in an unknown state
    /// (the kernel may have dropped the dirty pages), so the log refuses further writes rather
    /// than acknowledge on top of a hole.
    broken: Option<String>,
    buffered: Arc<Buffered>,
    total_buffered: Arc<Buffered>,
    flush_needed: Arc<Notify>,
    flush_at: FlushAt,
}

type PendingAppend = (Vec<ValidEvent>, oneshot::Sender<Result<(), Failure>>);

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Command>) {
        let mut pending: Vec<PendingAppend> = Vec::new();
        let mut pending_events = 0;
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            // Take whatever else is already waiting: that is the group of this commit.
            while let Some(cmd) = next.take().or_else(|| rx.try_recv().ok()) {
                match cmd {
                    Command::Append { events, reply } => {
                        pending_events += events.len();
                        pending.push((events, reply));
                        if pending_events >= MAX_EVENTS_PER_COMMIT {
                            self.commit(&mut pending);
                            pending_events = 0;
                        }
                    }
                    Command::Rotate { reply } => {
                        self.commit(&mut pending);
                        pending_events = 0;
                        let _ = reply.send(self.rotate());
                    }
                }
            }
            self.commit(&mut pending);
            pending_events = 0;
        }
    }

    fn commit(&mut self, pending: &mut Vec<PendingAppend>) {
        if pending.is_empty() {
            return;
        }
        let result = match &self.broken {
            Some(cause) => Err(Failure::Broken(cause.clone())),
            None => {
                let all = pending.iter().flat_map(|(e, _)| e.iter());
                match self.segment.append_durable(all) {
                    Ok(()) => Ok(()),
                    Err(e @ WalError::WriteRefused { .. }) => {
                        tracing::warn!(dataset = %self.name, error = %e, "WAL write refused and undone; answering 503");
                        // A full disk is often full of WAL that a flush would retire.
                        self.flush_needed.notify_one();
                        Err(Failure::Refused(e.to_string()))
                    }
                    Err(e) => {
                        tracing::error!(dataset = %self.name, error = %e, "WAL write failed; refusing writes");
                        self.broken = Some(e.to_string());
                        Err(Failure::Broken(e.to_string()))
                    }
                }
            }
        };
        // Account for the events before anyone hears of them, so a caller that was just
        // acknowledged never sees a buffer count without its own events.
        if result.is_ok() {
            let added: usize = pending.iter().map(|(e, _)| e.len()).sum();
            let bytes = mem_bytes(pending.iter().flat_map(|(e, _)| e.iter()));
            self.buffered.add(added, bytes);
            self.total_buffered.add(added, bytes);
            self.buffer_bytes += bytes;
        }
        for (events, reply) in pending.drain(..) {
            if result.is_ok() {
                self.buffer.extend(events);
            }
            let _ = reply.send(result.clone());
        }
        if self.buffer.len() >= self.flush_at.events || self.buffer_bytes >= self.flush_at.bytes {
            self.flush_needed.notify_one();
        }
    }

    /// Seals the current segment (and any older ones) and hands over the buffer.
    fn rotate(&mut self) -> Result<Option<Sealed>, WalError> {
        if let Some(cause) = &self.broken {
            return Err(WalError::Broken {
                dataset: self.name.clone(),
                cause: cause.clone(),
            });
        }
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let upto = self.segment.seq();
        let dir = self.segment.dir().to_path_buf();
        self.segment = SegmentWriter::create(&dir, upto + 1)?;
        let events = std::mem::take(&mut self.buffer);
        let bytes = std::mem::take(&mut self.buffer_bytes);
        Ok(Some(Sealed {
            upto,
            events,
            bytes,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_event::{Event, Limits};

    fn writer(dir: &std::path::Path, flush_max_events: usize) -> (Writer, Arc<Notify>) {
        writer_at(
            dir,
            FlushAt {
                events: flush_max_events,
                bytes: usize::MAX,
            },
        )
    }

    fn writer_at(dir: &std::path::Path, flush_at: FlushAt) -> (Writer, Arc<Notify>) {
        let notify = Arc::new(Notify::new());
        let w = Writer {
            name: "t".into(),
            segment: SegmentWriter::create(dir, 1).unwrap(),
            buffer: Vec::new(),
            buffer_bytes: 0,
            broken: None,
            buffered: Arc::default(),
            total_buffered: Arc::default(),
            flush_needed: notify.clone(),
            flush_at,
        };
        (w, notify)
    }

    fn events(n: usize) -> Vec<ValidEvent> {
        (0..n)
            .map(|i| {
                Event::new()
                    .with("i", i as i64)
                    .validate(&Limits::default(), 0)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn appends_that_wait_together_share_one_record_and_one_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = writer(dir.path(), usize::MAX);
        let (buffered, total) = (w.buffered.clone(), w.total_buffered.clone());
        let (tx, rx) = mpsc::channel();
        let mut acks = Vec::new();
        for n in 1..=5 {
            let (reply, ack) = oneshot::channel();
            tx.send(Command::Append {
                events: events(n),
                reply,
            })
            .unwrap();
            acks.push(ack);
        }
        drop(tx);
        w.run(rx); // drains the five waiting appends, then the closed channel ends it
        for ack in acks {
            assert_eq!(ack.blocking_recv().unwrap(), Ok(()));
        }
        let replayed = wal::read_segment(dir.path(), 1).unwrap();
        assert_eq!(replayed.records, 1, "one group commit");
        assert_eq!(replayed.events.len(), 15);
        assert_eq!(buffered.events(), 15);
        assert_eq!(total.events(), 15);
        // Each of these events has the same shape, so the same estimate.
        let bytes = mem_bytes(&events(1)) * 15;
        assert!(bytes > 0);
        assert_eq!((buffered.bytes(), total.bytes()), (bytes, bytes));
    }

    #[test]
    fn a_rotation_splits_the_group_where_it_was_sent() {
        let dir = tempfile::tempdir().unwrap();
        let (w, _) = writer(dir.path(), usize::MAX);
        let (tx, rx) = mpsc::channel();
        let (a1, _k1) = oneshot::channel();
        let (rot, sealed) = oneshot::channel();
        let (a2, _k2) = oneshot::channel();
        tx.send(Command::Append {
            events: events(2),
            reply: a1,
        })
        .unwrap();
        tx.send(Command::Rotate { reply: rot }).unwrap();
        tx.send(Command::Append {
            events: events(3),
            reply: a2,
        })
        .unwrap();
        drop(tx);
        w.run(rx);
        let sealed = sealed.blocking_recv().unwrap().unwrap().unwrap();
        assert_eq!(
            (sealed.upto, sealed.events.len()),
            (1, 2),
            "only what came before"
        );
        assert_eq!(wal::read_segment(dir.path(), 1).unwrap().events.len(), 2);
        assert_eq!(wal::read_segment(dir.path(), 2).unwrap().events.len(), 3);
    }

    #[test]
    fn a_full_buffer_asks_for_a_flush() {
        let dir = tempfile::tempdir().unwrap();
        let (w, notify) = writer(dir.path(), 3);
        let (tx, rx) = mpsc::channel();
        let (reply, _ack) = oneshot::channel();
        tx.send(Command::Append {
            events: events(3),
            reply,
        })
        .unwrap();
        drop(tx);
        w.run(rx);
        // notify_one stores a permit when nobody waits yet: the flusher will see it.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), notify.notified())
                .await
                .expect("flush requested");
        });
    }
}
