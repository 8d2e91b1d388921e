//! The write-ahead log: what makes an acknowledgement mean "on disk".
//!
//! # Files
//! Each dataset has its own log in `<dataset>/_wal/`: numbered segments `<seq>.wal` (16 hex
//! digits, ascending) and, while a flush is being applied, one commit record `<seq>.commit`.
//!
//! # Segment format (version 1)
//! ```text
//! header:  b"LOUPEWAL"  u32 LE version (= 1)
//! record:  u32 LE payload length | u32 LE CRC-32 (IEEE) of the payload | payload
//! payload: u32 LE event count, then per event:
//!          i64 LE timestamp_us | u32 LE field count | per field:
//!          u16 LE name length | name (UTF-8) | u8 tag | value
//!          tag 0 null, 1 false, 2 true, 3 int (i64 LE), 4 float (f64 LE),
//!          5 string (u32 LE length | UTF-8)
//! ```
//! A record holds a group commit: the events of every request that joined that commit (a group
//! past 64 MiB is split into several records, written together under one fsync).
//!
//! # Replay rules
//! - Records are read in segment order. A record is valid if its length fits in the file, its CRC
//!   matches and its payload decodes.
//! - The first invalid record of the **newest** segment ends replay: it is a torn write from a
//!   crash, never acknowledged (an ack waits for the fsync that follows the whole record). The
//!   segment is truncated to its last whole record, so it reads clean once it is no longer the
//!   newest.
//! - A segment with no events left in any segment (only headers) is deleted at start-up.
//! - An invalid record in an **older** segment is corruption (the disk lost acknowledged
//!   data): the segment is renamed to `<seq>.wal.corrupt`, kept for inspection, and the error is
//!   logged loudly; replay continues with the next segment.
//!
//! # Commit records
//! A flush turns the events of segments `..= seq` into Parquet files. It writes them under
//! `_tmp/`, fsyncs them, then writes `<seq>.commit` (JSON: the list of `tmp -> final` renames)
//! atomically, performs the renames, deletes segments `..= seq`, and deletes the commit record.
//! At start-up an existing commit record is applied again (renames whose source is gone are
//! already done), so a crash at any point leaves each event either in a segment or in a
//! published file, never both and never neither.

mod codec;
mod segment;

pub(crate) use segment::{
    CommitRecord, SegmentWriter, apply_commit_records, commit_record_exists, list_segments,
    quarantine_segment, read_segment, remove_segments_upto, truncate_segment, write_commit_record,
};
