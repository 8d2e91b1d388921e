//! What the harnesses that write a store and query it share: their error plumbing, where
//! their data lives, their knobs, and writing events as the store's own writer lays them out.
//!
//! Each harness uses some of it, so what one leaves unused is not dead.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use loupe_event::ValidEvent;
use loupe_store::{Catalog, DatasetDir, Partition, events_to_batch, fsutil};

/// The sampling a collector applies to the harnesses' stores (loupe-sampling's config): errors
/// and requests over 500 ms kept, the rest 1 in 4, so `sample_rate` varies (1 or 4) and
/// weighted answers differ from unweighted ones.
pub(crate) const SAMPLING: &str = r#"
sampler = "fixed"
rate = 4

[[rules]]
name = "errors"
when = "error = true"
action = "keep"

[[rules]]
name = "slow"
when = "duration_ms > 500"
action = "keep"
"#;

/// Whether `root` holds a complete data directory built by `recipe` (its `COMPLETE` marker
/// says so). If not, `root` is emptied for a new build, which [`mark_complete`] seals.
pub(crate) fn reuse_data(root: &Path, recipe: &str) -> Res<bool> {
    let marker = root.join("COMPLETE");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(recipe) {
        eprintln!("data: reusing {}", root.display());
        return Ok(true);
    }
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root)?;
    Ok(false)
}

/// Marks `root` as completely built by `recipe` (see [`reuse_data`]).
pub(crate) fn mark_complete(root: &Path, recipe: &str) -> Res<()> {
    Ok(std::fs::write(root.join("COMPLETE"), recipe)?)
}

/// A harness's error plumbing: any error, printed.
pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// An environment knob, or its default when unset or not a number.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Where the benches keep the data they generate: `BENCH_DATA`, or `bench-data` in the build's
/// target directory (the bench binary lives in `<target>/release/deps`). The variable is for a
/// binary copied out of `target/` (to compare two builds, see `benches/ab_outliers.sh`), which
/// would otherwise look three directories above wherever it was copied to.
pub(crate) fn bench_data() -> PathBuf {
    if let Some(dir) = std::env::var_os("BENCH_DATA") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("own path");
    exe.ancestors()
        .nth(3)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("bench-data")
}

/// Writes `events` (drained) as one file per hour partition they fall in, named after `file`,
/// rows in time order, with the store's own batch builder and Parquet writer.
pub(crate) fn write_files(
    ds: &DatasetDir,
    catalog: &mut Catalog,
    events: &mut Vec<ValidEvent>,
    file: usize,
) -> Res<()> {
    events.sort_by_key(ValidEvent::timestamp_us);
    let mut parts: BTreeMap<Partition, Vec<ValidEvent>> = BTreeMap::new();
    for e in events.drain(..) {
        parts
            .entry(Partition::of(e.timestamp_us()))
            .or_default()
            .push(e);
    }
    for (p, evs) in parts {
        let batch = events_to_batch(&evs, catalog, 0)?;
        let dir = ds.partition_dir(&p);
        fsutil::create_dir_durable(&dir)?;
        loupe_store::write_parquet(&dir.join(format!("{file:06}.parquet")), &batch)?;
    }
    Ok(())
}
