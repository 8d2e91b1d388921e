//! Where things live under a store root.
//!
//! ```text
//! <root>/<dataset>/
//!     _catalog/schema.json       merged schema and its history (catalog.rs)
//!     _wal/<seq>.wal             write-ahead log segments (loupe-collector's wal)
//!     _wal/<seq>.commit          a flush's commit record while it is being applied
//!     _tmp/                      Parquet files being written; never read, emptied at start-up
//!     _sampling/state.json       what the collector's samplers learned (loupe-sampling's state)
//!     _slo/<slo>.parquet         an SLO's per-minute buckets, derived from the partitions by
//!                                loupe-query (slo/buckets.rs); deleting it only costs a rebuild
//!     date=YYYY-MM-DD/hour=HH/<id>.parquet
//! ```
//! Directories starting with `_` are never part of the table: DataFusion and other engines skip
//! them when they list a Hive-partitioned directory.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, Timelike};

use crate::dataset::DatasetName;
use crate::error::{IoContext, Result};

pub const CATALOG_DIR: &str = "_catalog";
pub const WAL_DIR: &str = "_wal";
pub const TMP_DIR: &str = "_tmp";
pub const SAMPLING_DIR: &str = "_sampling";
pub const SLO_DIR: &str = "_slo";
pub const PARQUET_EXT: &str = "parquet";
/// A Parquet file's summary sits beside it, named as it is with this extension (written by
/// whoever writes the file, read by the query engine; see `loupe-query`'s outliers).
pub const SUMMARY_EXT: &str = "summary";

/// Where the summary of the Parquet file at `parquet` is.
pub fn summary_path(parquet: &Path) -> PathBuf {
    parquet.with_extension(SUMMARY_EXT)
}
/// Hive partition columns, outermost first.
pub const PARTITION_COLUMNS: [&str; 2] = ["date", "hour"];

/// A store rooted in a local directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dataset(&self, name: &DatasetName) -> DatasetDir {
        DatasetDir {
            name: name.clone(),
            dir: self.root.join(name.as_str()),
        }
    }

    /// The datasets present on disk, sorted by name. Entries whose names are not valid dataset
    /// names are ignored (they were not made by loupe).
    pub fn datasets(&self) -> Result<Vec<DatasetName>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).ctx("list", &self.root),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.ctx("list", &self.root)?;
            if !entry.file_type().ctx("stat", &entry.path())?.is_dir() {
                continue;
            }
            if let Some(d) = entry
                .file_name()
                .to_str()
                .and_then(|n| DatasetName::from_dir_name(n).ok())
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// The paths of one dataset.
#[derive(Debug, Clone)]
pub struct DatasetDir {
    name: DatasetName,
    dir: PathBuf,
}

impl DatasetDir {
    pub fn name(&self) -> &DatasetName {
        &self.name
    }
    pub fn path(&self) -> &Path {
        &self.dir
    }
    pub fn catalog_dir(&self) -> PathBuf {
        self.dir.join(CATALOG_DIR)
    }
    pub fn wal_dir(&self) -> PathBuf {
        self.dir.join(WAL_DIR)
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join(TMP_DIR)
    }
    /// The sampler state snapshot: written atomically, read at start-up.
    pub fn sampling_state_path(&self) -> PathBuf {
        self.dir.join(SAMPLING_DIR).join("state.json")
    }
    /// The materialised buckets of the SLO `name` over this dataset (a derived cache).
    pub fn slo_buckets_path(&self, name: &str) -> PathBuf {
        self.dir.join(SLO_DIR).join(format!("{name}.{PARQUET_EXT}"))
    }
    pub fn partition_dir(&self, p: &Partition) -> PathBuf {
        self.dir.join(p.relative_path())
    }

    /// Every Parquet file in the dataset's partitions, sorted by path.
    pub fn parquet_files(&self) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        collect_parquet(&self.dir, 0, &mut out)?;
        out.sort();
        Ok(out)
    }
}

/// A file's name and size in bytes.
pub type FileEntry = (String, u64);

impl DatasetDir {
    /// The hour partitions on disk with their Parquet files (names and sizes, sorted by name),
    /// sorted by hour. Directories whose names are not partitions are skipped.
    pub fn partitions(&self) -> Result<Vec<(Partition, Vec<FileEntry>)>> {
        let mut out = Vec::new();
        for date_dir in list_dirs(&self.dir, "date=")? {
            for hour_dir in list_dirs(&date_dir, "hour=")? {
                let Some(partition) = Partition::from_dir(&hour_dir) else {
                    continue;
                };
                let mut files = Vec::new();
                let entries = match std::fs::read_dir(&hour_dir) {
                    Ok(e) => e,
                    // merged away by compaction between the listings
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e).ctx("list", &hour_dir),
                };
                for entry in entries {
                    let entry = entry.ctx("list", &hour_dir)?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with('.') || !name.ends_with(&format!(".{PARQUET_EXT}")) {
                        continue;
                    }
                    match entry.metadata() {
                        Ok(m) => files.push((name, m.len())),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e).ctx("stat", &entry.path()),
                    }
                }
                files.sort();
                out.push((partition, files));
            }
        }
        out.sort_by_key(|(p, _)| *p);
        Ok(out)
    }
}

/// The subdirectories of `dir` whose names start with `prefix`.
fn list_dirs(dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("list", dir),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.ctx("list", dir)?;
        if entry.file_name().to_string_lossy().starts_with(prefix) && entry.path().is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

fn collect_parquet(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("list", dir),
    };
    for entry in entries {
        let entry = entry.ctx("list", dir)?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if depth < PARTITION_COLUMNS.len() {
            if name.starts_with(PARTITION_COLUMNS[depth]) && path.is_dir() {
                collect_parquet(&path, depth + 1, out)?;
            }
        } else if path.extension().is_some_and(|e| e == PARQUET_EXT) {
            out.push(path);
        }
    }
    Ok(())
}

/// Microseconds in an hour partition.
const HOUR_US: i64 = 3_600_000_000;

/// An hour partition: `date=YYYY-MM-DD/hour=HH`, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// Hours since the Unix epoch.
    hour_index: i64,
}

impl Partition {
    pub fn of(timestamp_us: i64) -> Self {
        Partition {
            hour_index: timestamp_us.div_euclid(HOUR_US),
        }
    }

    /// First microsecond of the hour.
    pub fn start_us(&self) -> i64 {
        self.hour_index * HOUR_US
    }

    /// First microsecond past the hour.
    pub fn end_us(&self) -> i64 {
        self.start_us() + HOUR_US
    }

    /// `(date, hour)` as the partition values are written: `("2026-11-23", "04")`.
    pub fn values(&self) -> (String, String) {
        let t = DateTime::from_timestamp_micros(self.start_us()).unwrap_or_default();
        (
            format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day()),
            format!("{:02}", t.hour()),
        )
    }

    pub fn relative_path(&self) -> PathBuf {
        let (date, hour) = self.values();
        PathBuf::from(format!("date={date}")).join(format!("hour={hour}"))
    }

    /// The partition of a `.../date=YYYY-MM-DD/hour=HH` directory.
    pub fn from_dir(dir: &Path) -> Option<Partition> {
        let hour = dir.file_name()?.to_str()?.strip_prefix("hour=")?;
        let date = dir.parent()?.file_name()?.to_str()?.strip_prefix("date=")?;
        let day = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
        let hour: u32 = hour.parse().ok().filter(|h| *h < 24)?;
        let start = day.and_hms_opt(hour, 0, 0)?.and_utc().timestamp_micros();
        Some(Partition::of(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_utc_hours() {
        // 2026-11-23T04:59:59.999999Z and the next microsecond
        let t = 1_795_409_999_999_999;
        assert_eq!(
            Partition::of(t).relative_path(),
            PathBuf::from("date=2026-11-23/hour=04")
        );
        assert_eq!(
            Partition::of(t + 1).relative_path(),
            PathBuf::from("date=2026-11-23/hour=05")
        );
        assert_eq!(Partition::of(t + 1).start_us(), t + 1);
        let dir = Path::new("/x").join(Partition::of(t).relative_path());
        assert_eq!(Partition::from_dir(&dir), Some(Partition::of(t)));
        assert_eq!(
            Partition::from_dir(Path::new("/x/date=2026-11-23/hour=24")),
            None
        );
        assert_eq!(
            Partition::of(0).values(),
            ("1970-01-01".into(), "00".into())
        );
    }

    #[test]
    fn lists_datasets_and_parquet_files_skipping_internals() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        assert!(store.datasets().unwrap().is_empty());
        let api = DatasetName::new("api").unwrap();
        let d = store.dataset(&api);
        let part = d.partition_dir(&Partition::of(0));
        std::fs::create_dir_all(&part).unwrap();
        std::fs::create_dir_all(d.tmp_dir()).unwrap();
        std::fs::write(part.join("a.parquet"), b"").unwrap();
        std::fs::write(part.join(".b.parquet"), b"").unwrap();
        std::fs::write(d.tmp_dir().join("c.parquet"), b"").unwrap();
        std::fs::create_dir_all(tmp.path().join("Not A Dataset")).unwrap();
        assert_eq!(store.datasets().unwrap(), vec![api]);
        assert_eq!(d.parquet_files().unwrap(), vec![part.join("a.parquet")]);
        assert_eq!(
            d.partitions().unwrap(),
            vec![(Partition::of(0), vec![("a.parquet".to_owned(), 0)])]
        );
    }
}
