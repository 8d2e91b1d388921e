//! The loupe collector: receives wide events over HTTP, validates them, makes them durable in a
//! write-ahead log before answering, and writes them to Parquet in the background.
//!
//! `HTTP request -> decode -> validate -> (sample) -> WAL append (group commit, fsync) -> ack`,
//! then `buffer -> Parquet file (fsync, commit record, rename) -> retire WAL segments`.
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use loupe_collector::{Collector, CollectorConfig, Encoding};
//! use loupe_event::BodyFormat;
//!
//! let dir = tempfile::tempdir()?;
//! let collector = Collector::open(dir.path(), CollectorConfig::default())?;
//! let body = br#"{"http.route": "/cart", "duration_ms": 48}"#;
//! let outcome = collector.ingest_body("api", body, Encoding::Identity, BodyFormat::Auto).await?;
//! assert_eq!(outcome.accepted, 1); // on disk now
//! collector.flush_all().await?;    // and in Parquet now
//! collector.shutdown().await;
//! # Ok(()) }
//! ```

mod buffered;
mod clock;
mod compact;
mod config;
mod dataset;
mod error;
pub mod honeycomb;
mod http;
mod ingest;
pub mod otlp;
mod sampling;
mod telemetry;
mod wal;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use loupe_event::ValidEvent;
use loupe_store::{DatasetName, Store};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

pub use clock::{Clock, SystemClock};
pub use compact::{SummarizeProgress, SummarizeStats};
pub use config::{CollectorConfig, CompactionConfig, MAX_NAME_BYTES_CEILING};
pub use dataset::FlushStats;
pub use error::{Error, Result, WalError};
pub use http::{error_response, router};
pub use ingest::{Encoding, EventStatus, IngestOutcome, decompress, format_from_content_type};
pub use sampling::{ALL_DATASETS, DatasetConfig, DatasetConfigs, ReloadReport, dataset_problems};
pub use telemetry::{Door, SELF_DATASET};

use buffered::Buffered;
use dataset::DatasetHandle;
use sampling::SamplingStage;
use telemetry::{Gauges, RequestReport, Telemetry};

/// The collector. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct Collector {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Held for the collector's life: an exclusive lock on `<root>/.lock`, released by the OS
    /// when the process ends however it ends.
    _lock: std::fs::File,
    /// Serialises the creation of datasets (not their use).
    creating: tokio::sync::Mutex<()>,
    config: CollectorConfig,
    clock: Arc<dyn Clock>,
    datasets: RwLock<HashMap<DatasetName, Arc<DatasetHandle>>>,
    /// Durable events not yet in Parquet, all datasets: the memory bound.
    buffered: Arc<Buffered>,
    /// Room for request bodies being read and decoded, in KiB (see
    /// `CollectorConfig::max_inflight_body_bytes`).
    inflight: Arc<Semaphore>,
    flush_needed: Arc<Notify>,
    /// Woken after every flush: requests waiting at the memory bound look again.
    room: Notify,
    shutting_down: AtomicBool,
    telemetry: Telemetry,
    sampling: SamplingStage,
}

/// What start-up recovered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub datasets: usize,
    /// Events replayed from the WAL into the buffers.
    pub events_replayed: usize,
    /// WAL records (group commits) they came in.
    pub records_replayed: usize,
    /// Flushes that a crash interrupted after their commit record and that were finished now.
    pub commits_applied: usize,
}

impl Collector {
    /// Opens the store at `root` with the system clock, recovering every dataset on disk.
    pub fn open(root: impl AsRef<Path>, config: CollectorConfig) -> Result<Self> {
        Self::open_with_clock(root, config, Arc::new(SystemClock)).map(|(c, _)| c)
    }

    /// Opens the store with an injected clock, and reports what recovery did.
    pub fn open_with_clock(
        root: impl AsRef<Path>,
        config: CollectorConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, RecoveryReport)> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(Error::InvalidConfig { problems });
        }
        let store = Store::new(root.as_ref());
        loupe_store::fsutil::create_dir_durable(store.root())?;
        let lock = lock_root(store.root())?;
        let buffered = Arc::new(Buffered::default());
        let flush_needed = Arc::new(Notify::new());
        let mut datasets = HashMap::new();
        let mut report = RecoveryReport::default();
        for name in store.datasets()? {
            let (handle, rec) = DatasetHandle::open(
                store.dataset(&name),
                buffered.clone(),
                flush_needed.clone(),
                config.flush_at(),
            )?;
            report.datasets += 1;
            report.events_replayed += rec.events;
            report.records_replayed += rec.records;
            report.commits_applied += rec.commits_applied;
            datasets.insert(name, handle);
        }
        if report.events_replayed > 0 || report.commits_applied > 0 {
            tracing::info!(?report, "recovered from the write-ahead log");
        }
        let inflight = Arc::new(Semaphore::new(kib(config.max_inflight_body_bytes)));
        let sampling = SamplingStage::new(store.clone(), &config.datasets);
        let inner = Inner {
            sampling,
            store,
            _lock: lock,
            creating: tokio::sync::Mutex::new(()),
            config,
            clock,
            datasets: RwLock::new(datasets),
            buffered,
            inflight,
            flush_needed,
            room: Notify::new(),
            shutting_down: AtomicBool::new(false),
            telemetry: Telemetry::new(),
        };
        Ok((
            Collector {
                inner: Arc::new(inner),
            },
            report,
        ))
    }

    pub fn config(&self) -> &CollectorConfig {
        &self.inner.config
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn now_us(&self) -> i64 {
        self.inner.clock.now_us()
    }

    /// Durable events waiting for Parquet, all datasets.
    pub fn buffered_events(&self) -> usize {
        self.inner.buffered.events()
    }

    /// Their estimated memory, in bytes: what `max_buffered_bytes` bounds.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.buffered.bytes()
    }

    /// Whether a new ingest request may start: not while shutting down, and not while the
    /// buffers are at their bound (then a flush is asked for, and the error says when to come
    /// back). Checked before a request's body is read, so a refusal costs nothing.
    pub fn admit(&self) -> Result<()> {
        if self.inner.shutting_down.load(Ordering::Relaxed) {
            return Err(Error::ShuttingDown);
        }
        let buffered_bytes = self.buffered_bytes();
        let limit = self.inner.config.max_buffered_bytes;
        if buffered_bytes >= limit {
            self.inner.flush_needed.notify_one();
            return Err(Error::Overloaded {
                buffered_bytes,
                limit,
                // A flush of a full buffer takes about a second on this class of machine.
                retry_after_s: 1,
            });
        }
        Ok(())
    }

    /// [`Collector::admit`], but at the memory bound it first waits up to
    /// `admission_wait_ms` for a flush to make room; only then is the request refused.
    pub async fn admit_waiting(&self) -> Result<()> {
        let wait = Duration::from_millis(self.inner.config.admission_wait_ms);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the check, so a flush that ends between the check and the
            // wait still wakes us.
            let room = self.inner.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.admit() {
                Err(Error::Overloaded { .. }) if tokio::time::Instant::now() < deadline => {}
                other => return other,
            }
            if tokio::time::timeout_at(deadline, room).await.is_err() {
                return self.admit();
            }
        }
    }

    /// Waits for room to read and decode a body of `len` bytes (see
    /// `CollectorConfig::max_inflight_body_bytes`); the room is given back when the permit
    /// drops. A body larger than the whole room waits until it has all of it.
    pub async fn reserve_body(&self, len: usize) -> OwnedSemaphorePermit {
        let want = kib(len.min(self.inner.config.max_inflight_body_bytes)).max(1);
        self.inner
            .inflight
            .clone()
            .acquire_many_owned(u32::try_from(want).unwrap_or(u32::MAX))
            .await
            .expect("the in-flight semaphore is never closed")
    }

    fn dataset(&self, name: &DatasetName) -> Option<Arc<DatasetHandle>> {
        self.inner
            .datasets
            .read()
            .expect("datasets lock")
            .get(name)
            .cloned()
    }

    async fn dataset_or_create(&self, name: &DatasetName) -> Result<Arc<DatasetHandle>> {
        if let Some(d) = self.dataset(name) {
            return Ok(d);
        }
        // Opening a dataset fsyncs several times: do it outside the map's lock, so ingest into
        // existing datasets goes on meanwhile, one creation at a time.
        let _creating = self.inner.creating.lock().await;
        if let Some(d) = self.dataset(name) {
            return Ok(d);
        }
        let limit = self.inner.config.max_datasets;
        if self.inner.datasets.read().expect("datasets lock").len() >= limit {
            return Err(Error::TooManyDatasets {
                name: name.to_string(),
                limit,
            });
        }
        let this = self.clone();
        let dir = self.inner.store.dataset(name);
        let (handle, _) = tokio::task::spawn_blocking(move || {
            DatasetHandle::open(
                dir,
                this.inner.buffered.clone(),
                this.inner.flush_needed.clone(),
                this.inner.config.flush_at(),
            )
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        self.inner
            .datasets
            .write()
            .expect("datasets lock")
            .insert(name.clone(), handle.clone());
        Ok(handle)
    }

    /// Appends validated events to `dataset`'s WAL; returns when they are on disk.
    pub async fn append_durable(
        &self,
        dataset: &DatasetName,
        events: Vec<ValidEvent>,
    ) -> Result<()> {
        if events.is_empty() {
            return self.admit();
        }
        // Checked again here for callers that did not come through the HTTP doors (and for
        // requests that waited while others filled the buffers).
        self.admit()?;
        let handle = self.dataset_or_create(dataset).await?;
        handle.append_durable(events).await?;
        Ok(())
    }

    fn handles(&self) -> Vec<Arc<DatasetHandle>> {
        let map = self.inner.datasets.read().expect("datasets lock");
        map.values().cloned().collect()
    }

    /// Stops every WAL writer thread once it has finished what was sent to it.
    async fn stop_writers(&self) {
        let handles = self.handles();
        let _ = tokio::task::spawn_blocking(move || handles.iter().for_each(|h| h.stop())).await;
    }

    pub(crate) fn record_request(&self, report: &RequestReport<'_>) {
        self.inner.telemetry.record_request(report, self.now_us());
    }

    /// The collector's metrics in the Prometheus text exposition format (for `GET /metrics`;
    /// names and labels are documented in the README).
    pub fn render_metrics(&self) -> String {
        let config = &self.inner.config;
        let free_kib = self.inner.inflight.available_permits();
        let mut out = self.inner.telemetry.render(&Gauges {
            buffered_events: self.buffered_events(),
            buffered_bytes: self.buffered_bytes(),
            max_buffered_bytes: config.max_buffered_bytes,
            inflight_body_bytes: kib(config.max_inflight_body_bytes)
                .saturating_sub(free_kib)
                .saturating_mul(1024),
            max_inflight_body_bytes: config.max_inflight_body_bytes,
            datasets: self.inner.datasets.read().expect("datasets lock").len(),
        });
        self.inner.sampling.render_metrics(&mut out);
        out
    }

    /// Installs new per-dataset settings (a config reload). Nothing changes unless all of them
    /// are valid; running samplers carry what they learned over to their new settings.
    pub fn reload_datasets(&self, datasets: &DatasetConfigs) -> Result<ReloadReport> {
        self.inner
            .sampling
            .reload(datasets)
            .map_err(|problems| Error::InvalidConfig {
                problems: problems.iter().map(ToString::to_string).collect(),
            })
    }

    /// The effective sampling of `dataset` in words (rules, samplers, every default filled
    /// in), or `None` when it is not sampled.
    pub fn explain_sampling(&self, dataset: &str) -> Result<Option<String>> {
        let name = DatasetName::new(dataset).map_err(Error::InvalidDataset)?;
        Ok(self.inner.sampling.explain(&name))
    }

    /// Saves what the samplers learned (those that decided anything since their last save).
    pub async fn save_sampling_state(&self) -> Result<usize> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.inner.sampling.save_blocking())
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .map_err(Error::Store)
    }

    /// Every `sampling_save_interval_ms`, until [`Collector::shutdown`]: ends idle samplers'
    /// intervals and saves what the samplers learned.
    pub fn spawn_background_sampling(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let interval = Duration::from_millis(self.inner.config.sampling_save_interval_ms);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if this.inner.shutting_down.load(Ordering::Relaxed) {
                    break;
                }
                this.inner.sampling.advance(this.now_us());
                if let Err(e) = this.save_sampling_state().await {
                    tracing::warn!(error = %e, "could not save the sampler state; will retry");
                }
            }
        })
    }

    /// Appends the collector's own request events to the internal dataset `_loupe` every
    /// `interval`, until [`Collector::shutdown`]. They go through admission like any other
    /// events: under backpressure they are dropped and counted.
    pub fn spawn_self_telemetry(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                if this.inner.shutting_down.load(Ordering::Relaxed) {
                    break;
                }
                this.append_self_events().await;
            }
        })
    }

    /// Appends the queued self events now (the background task's step; for tests).
    #[doc(hidden)]
    pub async fn append_self_events(&self) {
        let pending = self.inner.telemetry.take_pending();
        if pending.is_empty() {
            return;
        }
        let n = pending.len();
        let limits = self.config().limits;
        let now = self.now_us();
        let valid: Vec<ValidEvent> = pending
            .into_iter()
            .filter_map(|e| e.validate(&limits, now).ok())
            .collect();
        let invalid = n - valid.len();
        let name = DatasetName::internal(telemetry::SELF_DATASET).expect("a valid internal name");
        if let Err(e) = self.append_durable(&name, valid).await {
            tracing::debug!(error = %e, "dropping the collector's own request events");
            self.inner.telemetry.count_dropped(n);
        } else {
            self.inner.telemetry.count_dropped(invalid);
        }
    }

    /// Writes every buffered event of every dataset to Parquet.
    pub async fn flush_all(&self) -> Result<FlushStats> {
        let started = std::time::Instant::now();
        let result = self.flush_all_inner().await;
        self.inner.room.notify_waiters();
        if !matches!(&result, Ok(s) if s.events == 0) {
            let outcome = result.as_ref().map(|s| *s).map_err(|_| ());
            self.inner
                .telemetry
                .record_flush(outcome, started.elapsed());
        }
        result
    }

    async fn flush_all_inner(&self) -> Result<FlushStats> {
        let handles = self.handles();
        let clock = self.inner.clock.clone();
        tokio::task::spawn_blocking(move || {
            let mut total = FlushStats::default();
            let mut first_err = None;
            for h in handles {
                match h.flush_blocking(clock.as_ref()) {
                    Ok(s) => {
                        total.events += s.events;
                        total.files += s.files;
                        total.bytes += s.bytes;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "flush failed; will retry");
                        first_err.get_or_insert(e);
                    }
                }
            }
            match first_err {
                Some(e) => Err(Error::Wal(e)),
                None => Ok(total),
            }
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
    }

    /// Flushes every `flush_interval_ms`, or sooner when a dataset's buffer fills, until
    /// [`Collector::shutdown`].
    pub fn spawn_background_flush(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let interval = Duration::from_millis(self.inner.config.flush_interval_ms);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = this.inner.flush_needed.notified() => {}
                }
                if this.inner.shutting_down.load(Ordering::Relaxed) {
                    break;
                }
                if this.buffered_events() > 0 && this.flush_all().await.is_err() {
                    // Back off: a failing flush (a full disk) must not spin on every commit's
                    // wake-up. The events are safe in the WAL meanwhile.
                    tokio::time::sleep(interval).await;
                }
            }
        })
    }

    /// Stops the WAL writers without flushing: what a crash right after the last
    /// acknowledgement would leave behind. For recovery tests.
    #[doc(hidden)]
    pub async fn abandon(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        self.stop_writers().await;
    }

    /// Stops taking writes, flushes what is buffered, and stops the WAL writers. What a flush
    /// fails to write stays in the WAL for the next start.
    pub async fn shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
        self.inner.flush_needed.notify_one();
        if let Err(e) = self.flush_all().await {
            tracing::error!(error = %e, "final flush failed; the WAL keeps the events for the next start");
        }
        if let Err(e) = self.save_sampling_state().await {
            tracing::warn!(error = %e, "could not save the sampler state; the samplers will warm up again");
        }
        self.stop_writers().await;
    }
}

/// `bytes` in KiB, rounded up: the in-flight semaphore's unit, so its permits fit a `u32`.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024)
}

/// Takes the exclusive lock on `<root>/.lock`, or says who has it.
fn lock_root(root: &Path) -> Result<std::fs::File> {
    let path = root.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Internal(format!("opening {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked { path }),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::Internal(format!("locking {}: {e}", path.display())))
        }
    }
}

#[cfg(test)]
mod sampling_tests;
#[cfg(test)]
mod tests;
