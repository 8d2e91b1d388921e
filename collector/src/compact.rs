//! Background compaction: which partitions are merged when, and under which lock. How a merge
//! and its atomic swap work, and why a crash at any point is safe, is in `loupe_store::compact`.
//!
//! Each round, per dataset: delete old file sets that compactions left in `_tmp/` once readers
//! have had time to finish with them, then for each partition plan the merges
//! ([`Policy`](loupe_store::compact::Policy)), write each merged file without any lock, and
//! swap it in under the dataset's flush lock, from the partition's listing at that moment.
//! A merged file gets its summary as it is written; after the merges, a round gives at most one
//! file too big to merge (written before summaries) the summary it lacks.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use loupe_store::compact::{
    self, CONTAINER_PREFIX, CompactError, CompactStats, Merged, Policy, Swapped,
};
use loupe_store::{Catalog, fsutil};

use crate::Collector;
use crate::dataset::DatasetHandle;

/// How long an old file set stays in `_tmp/` after its swap. A reader that opened the
/// partition directory just before the swap lists the old set; deleting it while the reader
/// still lists would show it the kept files without the inputs. Listing takes microseconds;
/// this is generous, and costs only the disk of one interval's inputs.
pub(crate) const OLD_SET_GRACE: Duration = Duration::from_secs(5);

/// Files too big to merge that are given their missing summary per round, at most: each is
/// read whole (seconds for a merged file), so a directory written before summaries catches up
/// over many rounds without taking ingest's CPU at once. `loupe summarize` does all at once.
const SUMMARIES_PER_ROUND: usize = 1;

/// Big files that had no summary to give (no rows) or could not be read, so later rounds do
/// not read them again (`loupe summarize` still tries them).
static PASSED_OVER: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// One compaction at a time in the process: a round must not sweep another's container, and
/// merges hold one batch per open input, so two at once would double the memory.
static COMPACTING: Mutex<()> = Mutex::new(());
/// Makes container and merged-file names unique within the process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Collector {
    /// Merges the small Parquet files of every partition of every dataset, as configured in
    /// `[collector.compaction]` (whether or not the background task is enabled). Returns what
    /// it did, or the first error after trying every partition (a failed merge leaves its
    /// partition as it was). On a filesystem that cannot swap directories atomically it does
    /// nothing and returns [`CompactError::ExchangeUnsupported`].
    pub async fn compact_all(&self) -> Result<CompactStats, CompactError> {
        let this = self.clone();
        off_the_runtime(move || this.compact_blocking()).await
    }

    /// Writes the summary (see `loupe_store::summary`) of every Parquet file of every dataset
    /// that has none, with the configured summarizer: files written before summaries, and
    /// flushed files that compaction leaves alone (an hour's last few). Compaction summarizes
    /// what it merges; this reads the others whole, once, on request (`loupe summarize`).
    /// Under the compaction lock, so no merge swaps a partition while a summary goes into it.
    /// A file that cannot be read is passed over, named with its error in the stats: the
    /// others are still summarized.
    /// `progress` is told, before the first file and after each, how far it has come.
    pub async fn summarize_existing(
        &self,
        progress: impl Fn(SummarizeProgress) + Send + 'static,
    ) -> Result<SummarizeStats, CompactError> {
        let this = self.clone();
        off_the_runtime(move || this.summarize_blocking(progress)).await
    }

    fn summarize_blocking(
        &self,
        progress: impl Fn(SummarizeProgress),
    ) -> Result<SummarizeStats, CompactError> {
        let _one_at_a_time = COMPACTING.lock().unwrap_or_else(|p| p.into_inner());
        let mut stats = SummarizeStats::default();
        let Some(summarize) = self.inner.config.summarize.get() else {
            return Ok(stats);
        };
        // What there is to do first, so progress has a total.
        let mut todo = Vec::new();
        for handle in self.handles() {
            let dir = handle.dir();
            for file in dir.parquet_files()? {
                if loupe_store::layout::summary_path(&file).exists() {
                    stats.had_one += 1;
                    continue;
                }
                let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
                todo.push((dir.tmp_dir(), file, bytes));
            }
        }
        let mut done = SummarizeProgress {
            files_total: todo.len(),
            bytes_total: todo.iter().map(|(.., b)| b).sum(),
            ..SummarizeProgress::default()
        };
        progress(done);
        for (tmp, file, bytes) in todo {
            if self.inner.shutting_down.load(Ordering::Relaxed) {
                return Err(CompactError::Cancelled);
            }
            match loupe_store::summary::summarize_file(summarize, &file, &tmp) {
                Ok(Some(_)) => stats.summarized += 1,
                Ok(None) => stats.without += 1,
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e,
                        "no summary written for this file");
                    stats.failed.push((file, e.to_string()));
                }
            }
            done.files_done += 1;
            done.bytes_done += bytes;
            progress(done);
        }
        Ok(stats)
    }

    /// Gives up to [`SUMMARIES_PER_ROUND`] files that no merge will take (half the target
    /// size or more) the summary they lack: files merged before summaries existed. A file that
    /// cannot be summarized is named in a warning and passed over by later rounds.
    fn summarize_big_files(
        &self,
        handles: &[std::sync::Arc<DatasetHandle>],
        policy: &Policy,
        stats: &mut CompactStats,
    ) {
        let Some(summarize) = self.inner.config.summarize.get() else {
            return;
        };
        for handle in handles {
            let dir = handle.dir();
            let Ok(partitions) = compact::partition_dirs(dir) else {
                continue;
            };
            for partition in partitions {
                let Ok(files) = compact::partition_files(&partition) else {
                    continue;
                };
                for f in files {
                    if stats.summarized >= SUMMARIES_PER_ROUND
                        || self.inner.shutting_down.load(Ordering::Relaxed)
                    {
                        return;
                    }
                    if f.bytes < policy.target_file_bytes / 2
                        || loupe_store::layout::summary_path(&f.path).exists()
                        || passed_over().contains(&f.path)
                    {
                        continue;
                    }
                    match loupe_store::summary::summarize_file(summarize, &f.path, &dir.tmp_dir()) {
                        Ok(Some(_)) => stats.summarized += 1,
                        Ok(None) => {
                            passed_over().insert(f.path);
                        }
                        Err(e) => {
                            tracing::warn!(file = %f.path.display(), error = %e,
                                "no summary written for this file; compaction will not try again");
                            passed_over().insert(f.path);
                        }
                    }
                }
            }
        }
    }

    /// Runs [`Collector::compact_all`] every `compaction.interval_ms` until
    /// [`Collector::shutdown`], if `compaction.enabled`. Stops for good, with a warning, on a
    /// filesystem that cannot swap directories atomically.
    pub fn spawn_background_compaction(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        let config = self.inner.config.compaction.clone();
        tokio::spawn(async move {
            if !config.enabled {
                return;
            }
            let interval = Duration::from_millis(config.interval_ms);
            loop {
                tokio::time::sleep(interval).await;
                if this.inner.shutting_down.load(Ordering::Relaxed) {
                    break;
                }
                match this.compact_all().await {
                    Ok(stats) if stats.merges > 0 || stats.summarized > 0 => {
                        tracing::debug!(?stats, "compacted");
                    }
                    Ok(_) | Err(CompactError::Cancelled) => {}
                    Err(e @ CompactError::ExchangeUnsupported { .. }) => {
                        tracing::warn!(error = %e, "compaction disabled; small files stay as they are");
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "compaction failed; will retry"),
                }
            }
        })
    }

    fn compact_blocking(&self) -> Result<CompactStats, CompactError> {
        // A panic while holding it cannot leave anything half-done that the next round would
        // trip on (every step is crash-safe), so a poisoned lock is still a good lock.
        let _one_at_a_time = COMPACTING.lock().unwrap_or_else(|p| p.into_inner());
        let policy = self.inner.config.compaction.policy();
        let cancel = &self.inner.shutting_down;
        let mut stats = CompactStats::default();
        let mut first_err = None;
        let handles = self.handles();
        for handle in &handles {
            match self.compact_dataset(handle, &policy, cancel, &mut stats) {
                Ok(()) => {}
                Err(e @ (CompactError::ExchangeUnsupported { .. } | CompactError::Cancelled)) => {
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(dataset = %handle.dir().name(), error = %e, "compaction failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        self.summarize_big_files(&handles, &policy, &mut stats);
        match first_err {
            Some(e) => Err(e),
            None => Ok(stats),
        }
    }

    fn compact_dataset(
        &self,
        handle: &DatasetHandle,
        policy: &Policy,
        cancel: &AtomicBool,
        stats: &mut CompactStats,
    ) -> Result<(), CompactError> {
        let dir = handle.dir();
        let tmp = dir.tmp_dir();
        compact::sweep(&tmp, OLD_SET_GRACE)?;
        compact::probe_exchange(&tmp)?;
        let mut first_err = None;
        for partition in compact::partition_dirs(dir)? {
            let groups = compact::plan(&compact::partition_files(&partition)?, policy);
            if groups.is_empty() {
                continue;
            }
            // Loaded after the listing: the catalog is saved before a file that uses a change
            // is published, so it knows every column of the files just listed.
            let catalog = Catalog::load(&dir.catalog_dir())?;
            for group in groups {
                if cancel.load(Ordering::Relaxed) {
                    return Err(CompactError::Cancelled);
                }
                let inputs: Vec<_> = group.into_iter().map(|f| f.path).collect();
                match self.merge_and_swap(handle, &partition, &inputs, &catalog, cancel) {
                    Ok(Some((merged, swapped))) => {
                        tracing::debug!(partition = %partition.display(), inputs = inputs.len(),
                            kept = swapped.kept, rows = merged.rows, "merged");
                        stats.add(&merged);
                    }
                    Ok(None) => {}
                    Err(
                        e @ (CompactError::ExchangeUnsupported { .. } | CompactError::Cancelled),
                    ) => {
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::warn!(partition = %partition.display(), error = %e,
                            "merge failed; the partition is as it was");
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// One merge: the slow part without a lock, the swap under the flush lock. `None` when the
    /// swap was skipped (an input is gone, or a failed flush waits for its retry). Whatever
    /// happens before the exchange, the container is removed and the partition is untouched.
    fn merge_and_swap(
        &self,
        handle: &DatasetHandle,
        partition: &std::path::Path,
        inputs: &[std::path::PathBuf],
        catalog: &Catalog,
        cancel: &AtomicBool,
    ) -> Result<Option<(Merged, Swapped)>, CompactError> {
        let tmp = handle.dir().tmp_dir();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let stamp = format!("{:016x}-{:x}-{n:x}", self.now_us(), std::process::id());
        let container = tmp.join(format!("{CONTAINER_PREFIX}{stamp}"));
        std::fs::create_dir(&container).map_err(|source| CompactError::Io {
            op: "create directory",
            path: container.clone(),
            source,
        })?;
        // `m` is not a hex digit: no flush ever names a file like this.
        let out = container.join(format!("{stamp}-m.parquet"));
        let summarize = self.inner.config.summarize.get();
        let result = compact::merge(inputs, catalog, &out, cancel, summarize).and_then(|merged| {
            let swapped = handle
                .without_flushes(|| compact::stage(partition, &merged, &container)?.exchange());
            match swapped {
                Some(Ok(s)) => Ok(Some((merged, s))),
                Some(Err(CompactError::InputGone { path })) => {
                    tracing::debug!(input = %path.display(), "input merged elsewhere; discarding");
                    Ok(None)
                }
                Some(Err(e)) => Err(e),
                None => Ok(None),
            }
        });
        // The container now holds the old set (swept after the grace period), or nothing
        // anyone references.
        if !matches!(result, Ok(Some(_))) {
            if let Err(e) = std::fs::remove_dir_all(&container) {
                tracing::warn!(path = %container.display(), error = %e,
                    "could not remove a compaction's leftovers; the next round will");
            }
            let _ = fsutil::fsync_dir(&tmp);
        }
        result
    }
}

fn passed_over() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    // A set of paths is whole after any panic: a poisoned lock is still a good set.
    PASSED_OVER.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `work` (file work that blocks) on tokio's blocking threads; its panic is passed on.
async fn off_the_runtime<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CompactError> + Send + 'static,
) -> Result<T, CompactError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Cancelled: the runtime is shutting down.
            Err(_) => Err(CompactError::Cancelled),
        },
    }
}

/// How far [`Collector::summarize_existing`] has come: files (and their bytes) summarized or
/// passed over, of those without a summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SummarizeProgress {
    pub files_done: usize,
    pub files_total: usize,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// What [`Collector::summarize_existing`] did, in files.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SummarizeStats {
    /// Summaries written.
    pub summarized: usize,
    /// Files that had one already.
    pub had_one: usize,
    /// Files whose rows have no summary (no rows, or no `timestamp` column).
    pub without: usize,
    /// Files that could not be read or whose summary could not be written, with why.
    pub failed: Vec<(std::path::PathBuf, String)>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use loupe_store::{DatasetName, Store};

    use crate::{Clock, CollectorConfig, CompactionConfig};

    use super::*;

    /// A clock stopped mid-hour, so every event lands in one hourly partition however long
    /// the test takes (the system clock could cross the top of the hour and split them).
    struct FixedClock;
    impl Clock for FixedClock {
        fn now_us(&self) -> i64 {
            1_795_400_000_000_000 // 2026-11-23T02:13:20Z
        }
    }

    fn config(min_files: usize) -> CollectorConfig {
        CollectorConfig {
            compaction: CompactionConfig {
                enabled: false,
                min_files,
                ..CompactionConfig::default()
            },
            ..CollectorConfig::default()
        }
    }

    async fn send(c: &Collector, dataset: &str, from: u64, n: u64) {
        let body: String = (from..from + n)
            .map(|i| format!("{{\"seq\": {i}, \"v{}\": {i}}}\n", i % 3))
            .collect();
        c.ingest_body(
            dataset,
            body.as_bytes(),
            crate::Encoding::Identity,
            loupe_event::BodyFormat::Ndjson,
        )
        .await
        .unwrap();
    }

    fn files(root: &Path, dataset: &str) -> Vec<std::path::PathBuf> {
        Store::new(root)
            .dataset(&DatasetName::new(dataset).unwrap())
            .parquet_files()
            .unwrap()
    }

    fn seqs(root: &Path, dataset: &str) -> Vec<i64> {
        use arrow::array::AsArray;
        let mut out = Vec::new();
        for f in files(root, dataset) {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(f).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
            for b in reader {
                let b = b.unwrap();
                let col = b.column_by_name("seq").unwrap();
                out.extend(col.as_primitive::<arrow::datatypes::Int64Type>().values());
            }
        }
        out.sort();
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn compact_all_merges_flushed_files_and_keeps_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) =
            Collector::open_with_clock(dir.path(), config(4), Arc::new(FixedClock)).unwrap();
        for i in 0..6 {
            send(&c, "api", i * 10, 10).await;
            c.flush_all().await.unwrap();
        }
        assert_eq!(files(dir.path(), "api").len(), 6);
        let stats = c.compact_all().await.unwrap();
        assert_eq!((stats.merges, stats.files_in, stats.rows), (1, 6, 60));
        assert_eq!(files(dir.path(), "api").len(), 1);
        assert_eq!(seqs(dir.path(), "api"), (0..60).collect::<Vec<_>>());
        // Nothing left to do: one file is not a merge.
        assert_eq!(c.compact_all().await.unwrap(), CompactStats::default());
        // Later flushes and the merged file merge again once there are enough of them.
        for i in 6..9 {
            send(&c, "api", i * 10, 10).await;
            c.flush_all().await.unwrap();
        }
        let stats = c.compact_all().await.unwrap();
        assert_eq!((stats.merges, stats.files_in), (1, 4));
        assert_eq!(seqs(dir.path(), "api"), (0..90).collect::<Vec<_>>());
        c.shutdown().await;
    }

    /// A summarizer whose summary of a file is its row count, in decimal.
    #[derive(Debug)]
    struct RowCount;
    struct Counting(u64);
    impl loupe_store::summary::Summarize for RowCount {
        fn start(&self, _: &arrow::datatypes::SchemaRef) -> Box<dyn SummaryWriter> {
            Box::new(Counting(0))
        }
    }
    impl SummaryWriter for Counting {
        fn add(&mut self, batch: &arrow::record_batch::RecordBatch) {
            self.0 += batch.num_rows() as u64;
        }
        fn finish(self: Box<Self>) -> Option<Vec<u8>> {
            Some(self.0.to_string().into_bytes())
        }
    }
    use loupe_store::summary::SummaryWriter;

    /// The rows each file's summary says it has ([`RowCount`]'s), sorted.
    fn summarized_rows(files: &[std::path::PathBuf]) -> Vec<u64> {
        let mut rows: Vec<u64> = files
            .iter()
            .map(|f| {
                let s = std::fs::read_to_string(loupe_store::layout::summary_path(f)).unwrap();
                s.parse().unwrap()
            })
            .collect();
        rows.sort();
        rows
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn files_without_a_summary_get_one_and_a_bad_file_does_not_stop_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectorConfig {
            summarize: loupe_store::summary::Summarizer(Some(Arc::new(RowCount))),
            ..config(4)
        };
        let (c, _) = Collector::open_with_clock(dir.path(), config, Arc::new(FixedClock)).unwrap();
        for (i, n) in [(0, 10), (1, 7), (2, 3)] {
            send(&c, "api", i * 100, n).await;
            c.flush_all().await.unwrap();
        }
        send(&c, "web", 0, 5).await;
        c.flush_all().await.unwrap();
        let mut all = files(dir.path(), "api");
        all.extend(files(dir.path(), "web"));
        assert_eq!(all.len(), 4);
        // Flushes write none.
        assert!(
            all.iter()
                .all(|f| !loupe_store::layout::summary_path(f).exists())
        );
        // A file that is not Parquet, beside them, listed first (`.` sorts before digits).
        let bad = all[0].with_file_name("0.parquet");
        std::fs::write(&bad, b"not parquet").unwrap();

        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let stats = c
            .summarize_existing(move |p| record.lock().unwrap().push(p))
            .await
            .unwrap();
        assert_eq!((stats.summarized, stats.had_one, stats.without), (4, 0, 0));
        // Told before the first file and after each of the five (the bad one too).
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 6);
        let last = seen[5];
        assert_eq!((last.files_done, last.files_total), (5, 5));
        assert_eq!(last.bytes_done, last.bytes_total);
        assert!(seen.windows(2).all(|w| w[0].bytes_done < w[1].bytes_done));
        assert_eq!(stats.failed.len(), 1);
        assert_eq!(stats.failed[0].0, bad);
        assert_eq!(
            summarized_rows(&all),
            vec![3, 5, 7, 10],
            "each summary is of its own file's rows"
        );
        // No temporary file left in the partition or in `_tmp`.
        let partition = all[0].parent().unwrap();
        let names: Vec<String> = std::fs::read_dir(partition)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| n.ends_with(".parquet") || n.ends_with(".summary")),
            "{names:?}"
        );
        let tmp = Store::new(dir.path())
            .dataset(&DatasetName::new("api").unwrap())
            .tmp_dir();
        assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);

        // Once is enough.
        std::fs::remove_file(&bad).unwrap();
        let again = c.summarize_existing(|_| {}).await.unwrap();
        assert_eq!((again.summarized, again.had_one), (0, 4));
        assert!(again.failed.is_empty());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn compaction_summarizes_files_too_big_to_merge_one_a_round() {
        let dir = tempfile::tempdir().unwrap();
        // Every file is at least half the target: none is ever merged.
        let config = CollectorConfig {
            summarize: loupe_store::summary::Summarizer(Some(Arc::new(RowCount))),
            compaction: CompactionConfig {
                enabled: false,
                target_file_bytes: 2,
                min_files: 2,
                ..CompactionConfig::default()
            },
            ..CollectorConfig::default()
        };
        let (c, _) = Collector::open_with_clock(dir.path(), config, Arc::new(FixedClock)).unwrap();
        for (i, n) in [(0, 10), (1, 7), (2, 3)] {
            send(&c, "api", i * 100, n).await;
            c.flush_all().await.unwrap();
        }
        let all = files(dir.path(), "api");
        assert_eq!(all.len(), 3);
        let summarized = |f: &std::path::PathBuf| loupe_store::layout::summary_path(f).exists();
        for round in 1..=3 {
            let stats = c.compact_all().await.unwrap();
            assert_eq!((stats.merges, stats.summarized), (0, 1), "round {round}");
            assert_eq!(all.iter().filter(|f| summarized(f)).count(), round);
        }
        assert_eq!(c.compact_all().await.unwrap(), CompactStats::default());
        assert_eq!(summarized_rows(&all), vec![3, 7, 10]);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn no_swap_while_a_failed_flush_waits_for_its_retry() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) =
            Collector::open_with_clock(dir.path(), config(2), Arc::new(FixedClock)).unwrap();
        for i in 0..3 {
            send(&c, "api", i * 10, 10).await;
            c.flush_all().await.unwrap();
        }
        // A flush that fails (its `_tmp` is a file, so its Parquet file cannot be created).
        send(&c, "api", 100, 10).await;
        let tmp = Store::new(dir.path())
            .dataset(&DatasetName::new("api").unwrap())
            .tmp_dir();
        std::fs::remove_dir_all(&tmp).unwrap();
        std::fs::write(&tmp, b"in the way").unwrap();
        assert!(c.flush_all().await.is_err());
        std::fs::remove_file(&tmp).unwrap();
        std::fs::create_dir(&tmp).unwrap();
        let stats = c.compact_all().await.unwrap();
        assert_eq!(stats.merges, 0, "{stats:?}");
        assert_eq!(files(dir.path(), "api").len(), 3);
        // Once the retry has gone through, compaction goes on.
        c.flush_all().await.unwrap();
        assert_eq!(c.compact_all().await.unwrap().merges, 1);
        assert_eq!(seqs(dir.path(), "api").len(), 40);
        c.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn opening_clears_compaction_leftovers_in_tmp_and_leaves_partitions_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (c, _) =
            Collector::open_with_clock(dir.path(), config(2), Arc::new(FixedClock)).unwrap();
        for i in 0..3 {
            send(&c, "api", i * 10, 10).await;
            c.flush_all().await.unwrap();
        }
        c.shutdown().await;
        drop(c);
        let before = files(dir.path(), "api");
        // What a crash mid-compaction leaves: a container with a staging directory holding
        // links to the partition's files and a merged file.
        let ds = Store::new(dir.path()).dataset(&DatasetName::new("api").unwrap());
        let staging = ds.tmp_dir().join("compact-1-2-3/part");
        std::fs::create_dir_all(&staging).unwrap();
        for f in &before {
            std::fs::hard_link(f, staging.join(f.file_name().unwrap())).unwrap();
        }
        std::fs::write(staging.join("x-m.parquet"), b"half").unwrap();
        let (c, _) =
            Collector::open_with_clock(dir.path(), config(2), Arc::new(FixedClock)).unwrap();
        assert_eq!(std::fs::read_dir(ds.tmp_dir()).unwrap().count(), 0);
        assert_eq!(files(dir.path(), "api"), before);
        assert_eq!(seqs(dir.path(), "api"), (0..30).collect::<Vec<_>>());
        c.shutdown().await;
    }
}
