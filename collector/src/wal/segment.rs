//! Segment files and commit records on disk (formats in the `wal` module doc).

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use loupe_event::ValidEvent;
use loupe_store::fsutil;
use serde::{Deserialize, Serialize};

use super::codec::{decode_events, encode_event};
use crate::error::WalError;

const MAGIC: &[u8; 8] = b"LOUPEWAL";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 12;
const RECORD_HEADER_LEN: usize = 8;
/// A record's payload is closed once it passes this size, and the rest of a group commit goes
/// into further records (all under the same fsync), so the u32 length can never wrap.
const MAX_RECORD_PAYLOAD: usize = 64 << 20;
const SEGMENT_EXT: &str = "wal";
const COMMIT_EXT: &str = "commit";

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.{SEGMENT_EXT}"))
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> WalError {
    let path = path.to_path_buf();
    move |source| WalError::Io { op, path, source }
}

/// The open segment that appends go to.
pub(crate) struct SegmentWriter {
    file: File,
    path: PathBuf,
    seq: u64,
    /// Bytes of whole, durable records (and the header): where the next append starts.
    len: u64,
    /// Reused record buffer, so a commit does not allocate.
    buf: Vec<u8>,
}

impl SegmentWriter {
    /// Creates segment `seq` in `dir` with its header, durably (file and directory entry).
    pub(crate) fn create(dir: &Path, seq: u64) -> Result<Self, WalError> {
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io("create", &path))?;
        let init = || -> Result<(), WalError> {
            let mut header = Vec::with_capacity(HEADER_LEN);
            header.extend_from_slice(MAGIC);
            header.extend_from_slice(&VERSION.to_le_bytes());
            (&file).write_all(&header).map_err(io("write", &path))?;
            file.sync_all().map_err(io("fsync", &path))?;
            fsutil::fsync_dir(dir).map_err(WalError::Store)
        };
        if let Err(e) = init() {
            // Leave no half-made segment behind: the next attempt must be able to create it.
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        Ok(SegmentWriter {
            file,
            path,
            seq,
            len: HEADER_LEN as u64,
            buf: Vec::new(),
        })
    }

    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Appends `events` as one record (several if they pass [`MAX_RECORD_PAYLOAD`]) and waits
    /// until they are on disk (fdatasync). Only after this returns may they be acknowledged.
    pub(crate) fn append_durable<'a>(
        &mut self,
        events: impl Iterator<Item = &'a ValidEvent>,
    ) -> Result<(), WalError> {
        self.buf.clear();
        let mut record_start = 0;
        let mut count: u32 = 0;
        for e in events {
            if count == 0 {
                record_start = self.buf.len();
                self.buf.extend_from_slice(&[0; RECORD_HEADER_LEN + 4]);
            }
            encode_event(e, &mut self.buf);
            count += 1;
            if self.buf.len() - record_start - RECORD_HEADER_LEN >= MAX_RECORD_PAYLOAD {
                seal_record(&mut self.buf, record_start, count);
                count = 0;
            }
        }
        if count > 0 {
            seal_record(&mut self.buf, record_start, count);
        }
        if let Err(source) = self.file.write_all(&self.buf) {
            // A write that fails (a full disk, a file-size limit) leaves a partial record that
            // nobody was told about. Cut it off and seek back: then the log is whole again and
            // later appends may go on. If even that fails, the caller must stop writing.
            let path = self.path.clone();
            return Err(match self.rewind() {
                Ok(()) => WalError::WriteRefused { path, source },
                Err(_) => WalError::Io {
                    op: "write",
                    path,
                    source,
                },
            });
        }
        // A failed fsync is never retried: the kernel may have dropped the dirty pages and
        // a second fsync could report success for data that is gone.
        self.file.sync_data().map_err(io("fsync", &self.path))?;
        self.len += self.buf.len() as u64;
        // Do not keep a huge buffer around after one large commit.
        if self.buf.capacity() > 16 << 20 {
            self.buf = Vec::new();
        }
        Ok(())
    }
}

impl SegmentWriter {
    /// Truncates the segment back to its last durable record and moves the write position
    /// there, durably.
    fn rewind(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.len)?;
        self.file.seek(SeekFrom::Start(self.len))?;
        self.file.sync_all()
    }
}

/// Fills in the header of the record that starts at `start` and runs to the end of `buf`.
fn seal_record(buf: &mut [u8], start: usize, count: u32) {
    let payload = start + RECORD_HEADER_LEN;
    buf[payload..payload + 4].copy_from_slice(&count.to_le_bytes());
    let len = u32::try_from(buf.len() - payload).expect("record payload is capped far below 4 GiB");
    let crc = crc32fast::hash(&buf[payload..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Cuts a segment back to its last whole record (`valid_len` bytes), durably. Used at start-up
/// on the newest segment when it ends in a torn write: those bytes were never acknowledged, and
/// once the segment is no longer the newest a torn tail would read as corruption.
pub(crate) fn truncate_segment(dir: &Path, seq: u64, valid_len: u64) -> Result<(), WalError> {
    let path = segment_path(dir, seq);
    let f = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(io("open", &path))?;
    f.set_len(valid_len).map_err(io("truncate", &path))?;
    f.sync_all().map_err(io("fsync", &path))
}

/// The segments in `dir`, by sequence number.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    list_with_ext(dir, SEGMENT_EXT)
}

fn list_with_ext(dir: &Path, ext: &str) -> Result<Vec<u64>, WalError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("list", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(io("list", dir))?.path();
        let seq = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| u64::from_str_radix(s, 16).ok());
        if let Some(seq) = seq.filter(|_| path.extension().is_some_and(|e| e == ext)) {
            out.push(seq);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// What replaying one segment produced.
pub(crate) struct ReplayedSegment {
    pub(crate) events: Vec<ValidEvent>,
    /// Whole records read (one per group commit, or more for a very large one).
    pub(crate) records: usize,
    /// Bytes up to the end of the last whole record.
    pub(crate) valid_len: u64,
    /// Why replay of this segment stopped early, if it did.
    pub(crate) stopped: Option<String>,
}

/// Reads every valid record of segment `seq`, stopping at the first invalid one.
pub(crate) fn read_segment(dir: &Path, seq: u64) -> Result<ReplayedSegment, WalError> {
    let path = segment_path(dir, seq);
    let bytes = fs::read(&path).map_err(io("read", &path))?;
    let mut events = Vec::new();
    if bytes.len() < HEADER_LEN {
        // Created but the header never reached the disk: nothing was ever appended.
        return Ok(ReplayedSegment {
            events,
            records: 0,
            valid_len: 0,
            stopped: (!bytes.is_empty()).then(|| "truncated header".to_owned()),
        });
    }
    if &bytes[..8] != MAGIC || bytes[8..12] != VERSION.to_le_bytes() {
        return Ok(ReplayedSegment {
            events,
            records: 0,
            valid_len: 0,
            stopped: Some("bad magic or version".to_owned()),
        });
    }
    let mut pos = HEADER_LEN;
    let mut stopped = None;
    let mut records = 0;
    while pos < bytes.len() {
        let Some(header) = bytes.get(pos..pos + RECORD_HEADER_LEN) else {
            stopped = Some(format!("torn record header at byte {pos}"));
            break;
        };
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().unwrap());
        let start = pos + RECORD_HEADER_LEN;
        let Some(payload) = bytes.get(start..start + len) else {
            stopped = Some(format!("torn record at byte {pos} (length {len})"));
            break;
        };
        if crc32fast::hash(payload) != crc {
            stopped = Some(format!("checksum mismatch in record at byte {pos}"));
            break;
        }
        match decode_events(payload) {
            Ok(mut evs) => {
                events.append(&mut evs);
                records += 1;
            }
            Err(e) => {
                stopped = Some(format!("undecodable record at byte {pos}: {e}"));
                break;
            }
        }
        pos = start + len;
    }
    Ok(ReplayedSegment {
        events,
        records,
        valid_len: pos as u64,
        stopped,
    })
}

/// Renames a segment that failed replay in the middle of the log, keeping it for inspection.
pub(crate) fn quarantine_segment(dir: &Path, seq: u64) -> Result<PathBuf, WalError> {
    let from = segment_path(dir, seq);
    let to = from.with_extension("wal.corrupt");
    fs::rename(&from, &to).map_err(io("rename", &from))?;
    Ok(to)
}

/// Deletes every segment numbered `<= upto`, then syncs the directory.
pub(crate) fn remove_segments_upto(dir: &Path, upto: u64) -> Result<(), WalError> {
    for seq in list_segments(dir)? {
        if seq <= upto {
            let p = segment_path(dir, seq);
            fs::remove_file(&p).map_err(io("remove", &p))?;
        }
    }
    fsutil::fsync_dir(dir).map_err(WalError::Store)
}

/// One flush's promise: these temporary files become these published files, and then segments
/// `..= upto` are no longer needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CommitRecord {
    pub(crate) upto: u64,
    /// `(temporary path, published path)`, both relative to the dataset directory.
    pub(crate) renames: Vec<(PathBuf, PathBuf)>,
}

fn commit_path(dir: &Path, upto: u64) -> PathBuf {
    dir.join(format!("{upto:016x}.{COMMIT_EXT}"))
}

/// Writes the commit record durably. From this point the flush is decided.
pub(crate) fn write_commit_record(wal_dir: &Path, record: &CommitRecord) -> Result<(), WalError> {
    let bytes = serde_json::to_vec(record).expect("commit record serializes");
    fsutil::write_atomic(&commit_path(wal_dir, record.upto), &bytes).map_err(WalError::Store)
}

/// Whether the commit record for `upto` is in place: if it is, that flush is decided and only
/// its completion ([`apply_commit_records`]) may follow.
pub(crate) fn commit_record_exists(wal_dir: &Path, upto: u64) -> bool {
    commit_path(wal_dir, upto).exists()
}

/// Carries out every commit record in `wal_dir` (in order): publish its files, drop its
/// segments, delete the record. Idempotent, so it is both the end of a flush and the start-up
/// redo of a flush that a crash interrupted.
pub(crate) fn apply_commit_records(dataset_dir: &Path, wal_dir: &Path) -> Result<usize, WalError> {
    let mut applied = 0;
    for upto in list_with_ext(wal_dir, COMMIT_EXT)? {
        let path = commit_path(wal_dir, upto);
        let bytes = fs::read(&path).map_err(io("read", &path))?;
        let record: CommitRecord =
            serde_json::from_slice(&bytes).map_err(|e| WalError::Decode(e.to_string()))?;
        let mut dirs = Vec::new();
        for (tmp, fin) in &record.renames {
            let (tmp, fin) = (dataset_dir.join(tmp), dataset_dir.join(fin));
            let parent = fin.parent().unwrap_or(dataset_dir).to_path_buf();
            if tmp.exists() {
                fsutil::create_dir_durable(&parent).map_err(WalError::Store)?;
                fs::rename(&tmp, &fin).map_err(io("rename", &tmp))?;
            } else if !fin.exists() {
                return Err(WalError::Decode(format!(
                    "commit record {} names {} but neither it nor {} exists",
                    path.display(),
                    tmp.display(),
                    fin.display()
                )));
            }
            // The partition directory and each ancestor up to the dataset: a directory made by
            // an earlier process that crashed before syncing its parent must not vanish on power
            // loss after the WAL segments that held its events are gone.
            let mut d = parent;
            while d.starts_with(dataset_dir) {
                if !dirs.contains(&d) {
                    dirs.push(d.clone());
                }
                if !d.pop() {
                    break;
                }
            }
        }
        for d in &dirs {
            fsutil::fsync_dir(d).map_err(WalError::Store)?;
        }
        remove_segments_upto(wal_dir, record.upto)?;
        fs::remove_file(&path).map_err(io("remove", &path))?;
        fsutil::fsync_dir(wal_dir).map_err(WalError::Store)?;
        applied += 1;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_event::{Event, Limits};

    fn events(n: usize, base: i64) -> Vec<ValidEvent> {
        (0..n)
            .map(|i| {
                Event::new()
                    .with("i", i as i64)
                    .validate(&Limits::default(), base + i as i64)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn records_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 7).unwrap();
        w.append_durable(events(3, 0).iter()).unwrap();
        w.append_durable(events(2, 100).iter()).unwrap();
        assert_eq!(list_segments(dir.path()).unwrap(), vec![7]);
        let r = read_segment(dir.path(), 7).unwrap();
        assert!(r.stopped.is_none());
        assert_eq!(r.records, 2);
        let ts: Vec<_> = r.events.iter().map(|e| e.timestamp_us()).collect();
        assert_eq!(ts, vec![0, 1, 2, 100, 101]);
    }

    #[test]
    fn a_torn_tail_keeps_every_whole_record_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        w.append_durable(events(3, 0).iter()).unwrap();
        let whole = fs::metadata(segment_path(dir.path(), 1)).unwrap().len();
        w.append_durable(events(3, 10).iter()).unwrap();
        let full = fs::read(segment_path(dir.path(), 1)).unwrap();
        // every cut inside the second record loses exactly that record
        for cut in whole as usize..full.len() {
            fs::write(segment_path(dir.path(), 1), &full[..cut]).unwrap();
            let r = read_segment(dir.path(), 1).unwrap();
            assert_eq!(r.events.len(), 3, "cut at {cut}");
            assert_eq!(r.stopped.is_some(), cut > whole as usize, "cut at {cut}");
            assert_eq!(r.valid_len, whole, "cut at {cut}");
        }
    }

    #[test]
    fn truncating_a_torn_tail_leaves_a_clean_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        w.append_durable(events(3, 0).iter()).unwrap();
        let path = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        bytes.extend_from_slice(&[7, 0, 0, 0, 1, 2]); // half a record header and payload
        fs::write(&path, &bytes).unwrap();
        let r = read_segment(dir.path(), 1).unwrap();
        assert!(r.stopped.is_some());
        truncate_segment(dir.path(), 1, r.valid_len).unwrap();
        let r = read_segment(dir.path(), 1).unwrap();
        assert!(r.stopped.is_none());
        assert_eq!(r.events.len(), 3);
    }

    #[test]
    fn a_group_larger_than_a_record_is_split_into_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        // 40 events of ~2 MiB each: over the 64 MiB record cap
        let big: Vec<ValidEvent> = (0..40)
            .map(|i| {
                Event::new()
                    .with("pad", "x".repeat(2 << 20))
                    .validate(
                        &Limits {
                            max_value_bytes: 4 << 20,
                            ..Limits::default()
                        },
                        i,
                    )
                    .unwrap()
            })
            .collect();
        w.append_durable(big.iter()).unwrap();
        let r = read_segment(dir.path(), 1).unwrap();
        assert!(r.stopped.is_none());
        assert_eq!(r.events.len(), 40);
        assert_eq!(r.records, 2, "split at the cap");
    }

    #[test]
    fn a_flipped_bit_is_caught_by_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SegmentWriter::create(dir.path(), 1).unwrap();
        w.append_durable(events(2, 0).iter()).unwrap();
        let mut bytes = fs::read(segment_path(dir.path(), 1)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        fs::write(segment_path(dir.path(), 1), &bytes).unwrap();
        let r = read_segment(dir.path(), 1).unwrap();
        assert!(r.events.is_empty());
        assert!(r.stopped.unwrap().contains("checksum"));
    }

    #[test]
    fn commit_records_are_idempotent() {
        let ds = tempfile::tempdir().unwrap();
        let wal = ds.path().join("_wal");
        fs::create_dir_all(&wal).unwrap();
        fs::create_dir_all(ds.path().join("_tmp")).unwrap();
        SegmentWriter::create(&wal, 1).unwrap();
        SegmentWriter::create(&wal, 2).unwrap();
        SegmentWriter::create(&wal, 3).unwrap();
        fs::write(ds.path().join("_tmp/a.parquet"), b"x").unwrap();
        let record = CommitRecord {
            upto: 2,
            renames: vec![("_tmp/a.parquet".into(), "date=x/hour=00/a.parquet".into())],
        };
        write_commit_record(&wal, &record).unwrap();
        assert_eq!(apply_commit_records(ds.path(), &wal).unwrap(), 1);
        assert!(ds.path().join("date=x/hour=00/a.parquet").exists());
        assert_eq!(list_segments(&wal).unwrap(), vec![3]);
        // a crash after the renames but before the record was removed: applying again is safe
        write_commit_record(&wal, &record).unwrap();
        assert_eq!(apply_commit_records(ds.path(), &wal).unwrap(), 1);
        assert!(ds.path().join("date=x/hour=00/a.parquet").exists());
        assert_eq!(apply_commit_records(ds.path(), &wal).unwrap(), 0);
    }
}
