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

/// Removes everything inside `dir` (files, and directories with their contents), keeping `dir`
/// itself, then syncs it. A missing `dir` is already clear. For scratch directories such as a
/// dataset's `_tmp/`, which hold both a flush's half-written files and a compaction's staging
/// directories (see [`crate::compact`]) and are emptied at start-up.
pub fn clear_dir(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).ctx("list", dir),
    };
    for entry in entries {
        let entry = entry.ctx("list", dir)?;
        let path = entry.path();
        // `file_type` does not follow symlinks: a link to a directory is removed, not emptied.
        if entry.file_type().ctx("stat", &path)?.is_dir() {
            fs::remove_dir_all(&path).ctx("remove directory", &path)?;
        } else {
            fs::remove_file(&path).ctx("remove", &path)?;
        }
    }
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_dir_removes_nested_directories_and_keeps_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("_tmp");
        fs::create_dir_all(dir.join("compact-1/part")).unwrap();
        fs::write(dir.join("compact-1/part/a.parquet"), b"x").unwrap();
        fs::write(dir.join("b.parquet"), b"x").unwrap();
        clear_dir(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        clear_dir(&tmp.path().join("missing")).unwrap();
    }
}
