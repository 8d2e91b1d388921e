//! Small durable-file helpers: what "on disk" means for loupe.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{IoContext, Result};

/// Flushes a directory's entries (new names, renames, removals) to disk. Without it a rename
/// can be lost on power failure even after the file itself was synced.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// Writes `bytes` to `path` so that a reader (or a restart after a crash) sees either the old
/// file or the whole new one: write a temporary sibling, fsync it, rename over, fsync the
/// directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(bytes).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
    }
    fs::rename(&tmp, path).ctx("rename", path)?;
    fsync_dir(dir)
}

/// Creates `dir` and its missing parents, syncing each parent that gained an entry, so the
/// directory itself survives a crash.
pub fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_durable(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e).ctx("create directory", dir),
    }
    if let Some(parent) = parent {
        fsync_dir(parent)?;
    }
    Ok(())
}
