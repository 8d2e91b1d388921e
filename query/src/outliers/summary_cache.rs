//! Summaries already read, kept for the next question (see [`super::summary`]).
//!
//! Why: a question reads the summary of every file its window holds whole, and reading one is
//! a file read, a zstd decompression and a JSON parse (about 10 ms for a 3.7M-event file's
//! 2.4 MB): tens of milliseconds a question for a day of files, all on one core before the
//! passes start. A summary kept is used while its file on disk has the same size and
//! modification time (a stat, microseconds): loupe never rewrites one, but a directory
//! restored from a backup or written by hand may. A question uses a summary only for a file
//! its listing holds, so a summary whose file compaction merged away is never used, and is
//! dropped at the next question over its dataset.
//!
//! Bounded by the summaries' decompressed sizes ([`SummaryCache::new`]), least recently used
//! out first. Reads happen outside the lock: two questions may read the same summary at
//! once, and the second copy only replaces the first.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use loupe_store::layout::summary_path;

use super::summary::{Summary, SummaryError};

/// The default bound on the summaries kept, in decompressed bytes: about a hundred
/// 3.7M-event files' summaries.
pub const DEFAULT_CAPACITY_BYTES: usize = 256 << 20;

/// Summaries by their path (shared by the engine's clones).
#[derive(Debug, Clone)]
pub struct SummaryCache {
    inner: Arc<Mutex<Kept>>,
}

/// A summary kept, with what it was read from.
#[derive(Debug)]
struct Entry {
    summary: Arc<Summary>,
    /// The summary file's size and modification time when it was read.
    file: (u64, Option<SystemTime>),
    /// Its decompressed size: what it counts against the capacity.
    size: usize,
    /// `Kept::clock` when it was last used.
    used: u64,
}

#[derive(Debug)]
struct Kept {
    capacity: usize,
    bytes: usize,
    entries: HashMap<PathBuf, Entry>,
    clock: u64,
    /// Summaries read from disk (not found in the cache), for tests and logs.
    reads: u64,
}

impl Default for SummaryCache {
    fn default() -> Self {
        SummaryCache::new(DEFAULT_CAPACITY_BYTES)
    }
}

impl SummaryCache {
    /// A cache keeping at most `capacity` decompressed bytes of summaries (0 keeps none).
    pub fn new(capacity: usize) -> SummaryCache {
        SummaryCache {
            inner: Arc::new(Mutex::new(Kept {
                capacity,
                bytes: 0,
                entries: HashMap::new(),
                clock: 0,
                reads: 0,
            })),
        }
    }

    /// The summary at `path`, from the cache or read from disk. `Ok(None)` when there is
    /// none (a file flushed and not merged yet has none).
    pub fn get(&self, path: &Path) -> Result<Option<Arc<Summary>>, SummaryError> {
        let file = match std::fs::metadata(path) {
            Ok(m) => (m.len(), m.modified().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.lock().remove(path);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(found) = self.lock().touch(path, file) {
            return Ok(Some(found));
        }
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut kept = self.lock();
        kept.reads += 1;
        kept.remove(path);
        drop(kept);
        let (summary, size) = Summary::from_bytes_sized(&bytes)?;
        let summary = Arc::new(summary);
        self.lock()
            .insert(path.to_owned(), summary.clone(), file, size);
        Ok(Some(summary))
    }

    /// Drops the summaries under `dir` whose files are not among `listed` (merged away).
    pub fn retain_listed(&self, dir: &Path, listed: &[PathBuf]) {
        let listed: HashSet<PathBuf> = listed.iter().map(|f| summary_path(f)).collect();
        let mut kept = self.lock();
        let gone: Vec<PathBuf> = kept
            .entries
            .keys()
            .filter(|p| p.starts_with(dir) && !listed.contains(*p))
            .cloned()
            .collect();
        for p in gone {
            kept.remove(&p);
        }
    }

    /// How many summaries are kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many summaries were read from disk since the cache was made.
    pub fn reads(&self) -> u64 {
        self.lock().reads
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        // A panic while holding the lock leaves the map whole (every change is one insert
        // or remove), so a poisoned lock is still a usable cache.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Kept {
    /// The summary kept for `path`, if it was read from the file as it is now (`file`).
    fn touch(&mut self, path: &Path, file: (u64, Option<SystemTime>)) -> Option<Arc<Summary>> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(path).filter(|e| e.file == file)?;
        entry.used = clock;
        Some(entry.summary.clone())
    }

    fn insert(
        &mut self,
        path: PathBuf,
        summary: Arc<Summary>,
        file: (u64, Option<SystemTime>),
        size: usize,
    ) {
        self.remove(&path);
        if size > self.capacity {
            return;
        }
        while self.bytes + size > self.capacity {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            self.remove(&oldest);
        }
        self.clock += 1;
        self.bytes += size;
        let used = self.clock;
        self.entries.insert(
            path,
            Entry {
                summary,
                file,
                size,
                used,
            },
        );
    }

    fn remove(&mut self, path: &Path) {
        if let Some(e) = self.entries.remove(path) {
            self.bytes -= e.size;
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Float64Array, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    use datafusion::arrow::record_batch::RecordBatch;

    use super::*;
    use crate::outliers::summary::summarize;

    /// A summary of `rows` rows, written at `file`'s summary path; its decompressed size.
    fn write_summary(file: &Path, rows: usize) -> usize {
        let schema = Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
            Field::new("sample_rate", DataType::Float64, false),
            Field::new("kernel", DataType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            std::sync::Arc::new(schema),
            vec![
                Arc::new(TimestampMicrosecondArray::from_iter_values(0..rows as i64)),
                Arc::new(Float64Array::from(vec![1.0; rows])),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("6.{}", i % 7)),
                )),
            ],
        )
        .unwrap();
        let bytes = summarize(&batch).unwrap().to_bytes().unwrap();
        // Replaced, not written over: a new file, as a restore would make.
        let _ = std::fs::remove_file(summary_path(file));
        std::fs::write(summary_path(file), &bytes).unwrap();
        Summary::from_bytes_sized(&bytes).unwrap().1
    }

    #[test]
    fn a_summary_read_once_is_not_read_again_until_it_is_pushed_out() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<PathBuf> = (0..3)
            .map(|i| dir.path().join(format!("f{i}.parquet")))
            .collect();
        let size = write_summary(&files[0], 10);
        for f in &files[1..] {
            assert_eq!(write_summary(f, 10), size);
        }
        // Room for two.
        let cache = SummaryCache::new(2 * size + size / 2);
        let get = |i: usize| cache.get(&summary_path(&files[i])).unwrap().unwrap();
        let first = get(0);
        assert_eq!(first.all.rows, 10);
        get(1);
        assert_eq!(cache.reads(), 2);
        // Read again from the cache, not the disk.
        assert_eq!(get(0).all.rows, 10);
        assert_eq!(cache.reads(), 2);
        // A third: the least recently used (the second) goes.
        get(2);
        assert_eq!((cache.len(), cache.reads()), (2, 3));
        assert_eq!(get(0).all.rows, 10);
        get(1);
        assert_eq!(cache.reads(), 4, "the second was pushed out and read again");
        // A summary rewritten on disk (loupe never does; a restore may) is read again.
        write_summary(&files[0], 3);
        assert_eq!(get(0).all.rows, 3);
        assert_eq!(cache.reads(), 5);
        // One removed is gone from the cache too.
        std::fs::remove_file(summary_path(&files[0])).unwrap();
        assert!(cache.get(&summary_path(&files[0])).unwrap().is_none());
        assert_eq!(cache.len(), 1);
        // No summary: none, and nothing kept.
        let none = dir.path().join("none.parquet");
        assert!(cache.get(&summary_path(&none)).unwrap().is_none());
        // A summary larger than the whole cache is read and not kept.
        let tiny = SummaryCache::new(size - 1);
        tiny.get(&summary_path(&files[1])).unwrap().unwrap();
        assert!(tiny.is_empty());
    }

    #[test]
    fn summaries_of_files_no_longer_listed_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        write_summary(&a, 5);
        write_summary(&b, 5);
        let other = tempfile::tempdir().unwrap();
        let c = other.path().join("c.parquet");
        write_summary(&c, 5);
        let cache = SummaryCache::default();
        for f in [&a, &b, &c] {
            cache.get(&summary_path(f)).unwrap().unwrap();
        }
        // `a` merged away: only `b` is listed in the first directory; the other's stay.
        cache.retain_listed(dir.path(), std::slice::from_ref(&b));
        assert_eq!(cache.len(), 2);
        cache.get(&summary_path(&b)).unwrap();
        cache.get(&summary_path(&c)).unwrap();
        assert_eq!(cache.reads(), 3);
        cache.get(&summary_path(&a)).unwrap();
        assert_eq!(cache.reads(), 4, "a's summary was dropped");
    }
}
