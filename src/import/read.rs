//! The reading side of `loupe ingest`: files (plain, gzip or zstd, told apart by their first
//! bytes) cut into chunks of whole lines, each line's number kept.
//!
//! Blank lines are skipped by the collector's own rule (a line of ASCII whitespace only), so
//! the n-th event of a chunk is its n-th recorded line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use indicatif::ProgressBar;
use loupe_event::Limits;
use tokio::sync::mpsc;

/// Most events per chunk (one request, or one `ingest_body` call).
const CHUNK_LINES: usize = 5_000;
/// A chunk is sent once it holds this many bytes of NDJSON.
const CHUNK_BYTES: usize = 4 << 20;
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A file to read, or standard input.
pub(super) struct Input {
    pub(super) file: FileRef,
    path: Option<PathBuf>,
    /// Bytes, when known (a regular file).
    pub(super) size: Option<u64>,
}

/// Which input, for messages: its position on the command line and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct FileRef {
    pub(super) index: usize,
    /// As the user wrote it, `stdin` for `-`.
    pub(super) name: Arc<str>,
}

/// Opens every file once before anything is imported, so a typo fails before half a job is done.
pub(super) fn check_inputs(files: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    files
        .iter()
        .enumerate()
        .map(|(index, p)| {
            if p.as_os_str() == "-" {
                return Ok(Input {
                    file: FileRef {
                        index,
                        name: "stdin".into(),
                    },
                    path: None,
                    size: None,
                });
            }
            let f = File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            let meta = f
                .metadata()
                .with_context(|| format!("cannot read {}", p.display()))?;
            if meta.is_dir() {
                bail!("{} is a directory, not a file", p.display());
            }
            Ok(Input {
                file: FileRef {
                    index,
                    name: p.display().to_string().into(),
                },
                path: Some(p.clone()),
                size: meta.is_file().then_some(meta.len()),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Plain,
    Gzip,
    Zstd,
}

impl Compression {
    fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::Plain
        }
    }
}

/// A file (or `-`, standard input) decompressed as its first bytes say: plain, gzip or zstd.
/// For commands that read NDJSON line by line (`loupe sampling simulate`).
pub(crate) fn open_decompressed(path: &std::path::Path) -> io::Result<Box<dyn Read + Send>> {
    let raw: Box<dyn Read + Send> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(path)?)
    };
    decoder(raw).map(|(_, r)| r)
}

/// `raw` decompressed as its first bytes say.
fn decoder(mut raw: Box<dyn Read + Send>) -> io::Result<(Compression, Box<dyn Read + Send>)> {
    let mut head = [0u8; 4];
    let mut n = 0;
    while n < head.len() {
        match raw.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let kind = Compression::sniff(&head[..n]);
    let whole: Box<dyn Read + Send> = Box::new(io::Cursor::new(head[..n].to_vec()).chain(raw));
    let out: Box<dyn Read + Send> = match kind {
        Compression::Plain => whole,
        // Concatenated members (`cat a.gz b.gz`) are one stream, as `gzip -d` reads them.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(whole)?),
    };
    Ok((kind, out))
}

/// Counts the bytes read from the file (before decompression) into the progress bar.
struct Counted<R> {
    inner: R,
    progress: ProgressBar,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// How the reader cuts files into chunks, within the collector's limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunking {
    lines: usize,
    bytes: usize,
    /// A chunk is never larger (the collector's body limit).
    max_bytes: usize,
}

impl Chunking {
    pub(super) fn for_limits(limits: &Limits) -> Self {
        Chunking {
            lines: CHUNK_LINES.min(limits.max_events_per_request).max(1),
            bytes: CHUNK_BYTES.min(limits.max_body_bytes),
            max_bytes: limits.max_body_bytes.max(2),
        }
    }

    /// Longest line that fits a chunk on its own (with its newline).
    fn max_line(&self) -> usize {
        self.max_bytes - 1
    }
}

/// Whole NDJSON lines of one file, blank lines left out.
pub(super) struct Chunk {
    pub(super) file: FileRef,
    data: Vec<u8>,
    /// File line of each event.
    pub(super) lines: Vec<u64>,
    /// Where each event's line ends in `data` (after its newline).
    ends: Vec<usize>,
}

impl Chunk {
    fn new(file: FileRef) -> Self {
        Chunk {
            file,
            data: Vec::new(),
            lines: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// The NDJSON of events `range` (not empty).
    pub(super) fn body(&self, range: std::ops::Range<usize>) -> &[u8] {
        let start = match range.start {
            0 => 0,
            i => self.ends[i - 1],
        };
        &self.data[start..self.ends[range.end - 1]]
    }
}

/// What the reader thread tells the sender, in file order.
pub(super) enum Msg {
    Chunk(Chunk),
    /// A line the reader refused itself: too long for any request.
    Reject {
        file: FileRef,
        line: u64,
        reason: String,
    },
    FileRead(FileCounts),
    /// A file that could not be read to its end: how far it got, and why.
    FileFailed(FileCounts, String),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileCounts {
    pub(super) lines: u64,
    pub(super) blank: u64,
}

/// Reads every input in turn, until the end or until the receiver goes away.
pub(super) fn read_inputs(
    inputs: Vec<Input>,
    chunking: Chunking,
    tx: &mpsc::Sender<Msg>,
    progress: &ProgressBar,
) {
    for input in inputs {
        let msg = match read_input(&input, chunking, tx, progress) {
            Ok(counts) => Msg::FileRead(counts),
            Err(SplitError::Read { counts, error }) => Msg::FileFailed(counts, error),
            Err(SplitError::Closed) => return,
        };
        if tx.blocking_send(msg).is_err() {
            return;
        }
    }
}

enum SplitError<E> {
    /// The receiver has gone (the sender hit an error of its own): nothing more to do.
    Closed,
    Read {
        counts: FileCounts,
        error: E,
    },
}

fn read_input(
    input: &Input,
    chunking: Chunking,
    tx: &mpsc::Sender<Msg>,
    progress: &ProgressBar,
) -> Result<FileCounts, SplitError<String>> {
    let name = &input.file.name;
    let failed = |why: String| SplitError::Read {
        counts: FileCounts::default(),
        error: why,
    };
    let raw: Box<dyn Read + Send> = match &input.path {
        None => Box::new(io::stdin()),
        Some(p) => Box::new(File::open(p).map_err(|e| failed(format!("cannot open {name}: {e}")))?),
    };
    let counted = Box::new(Counted {
        inner: raw,
        progress: progress.clone(),
    });
    let (kind, reader) =
        decoder(counted).map_err(|e| failed(format!("cannot read {name}: {e}")))?;
    let send = |m: Msg| tx.blocking_send(m).map_err(|_| ());
    split_lines(
        BufReader::with_capacity(256 << 10, reader),
        &input.file,
        chunking,
        |c| send(Msg::Chunk(c)),
        |line, reason| {
            send(Msg::Reject {
                file: input.file.clone(),
                line,
                reason,
            })
        },
    )
    .map_err(|e| match e {
        SplitError::Closed => SplitError::Closed,
        SplitError::Read { counts, error } => {
            let what = match kind {
                Compression::Plain => "read error",
                Compression::Gzip => "the gzip stream is truncated or corrupt",
                Compression::Zstd => "the zstd stream is truncated or corrupt",
            };
            let done = match counts.lines {
                0 => "nothing of it was imported".to_owned(),
                n => format!("its lines 1 to {n} were imported"),
            };
            SplitError::Read {
                counts,
                error: format!(
                    "{name}: {what} after line {}: {error}; {done}",
                    counts.lines
                ),
            }
        }
    })
}

/// Cuts `reader` into chunks of whole lines and hands each to `emit`. A line that cannot fit
/// any request goes to `reject` instead (and is never held in memory whole). On a read error
/// the complete lines before it are still emitted; a partial line is dropped.
fn split_lines(
    mut reader: impl BufRead,
    file: &FileRef,
    chunking: Chunking,
    mut emit: impl FnMut(Chunk) -> Result<(), ()>,
    mut reject: impl FnMut(u64, String) -> Result<(), ()>,
) -> Result<FileCounts, SplitError<io::Error>> {
    let closed = |()| SplitError::Closed;
    let mut counts = FileCounts::default();
    let mut chunk = Chunk::new(file.clone());
    loop {
        let start = chunk.data.len();
        let line = match read_line(&mut reader, &mut chunk.data, chunking.max_line()) {
            Ok(Some(l)) => l,
            Ok(None) => break,
            Err(error) => {
                chunk.data.truncate(start);
                if !chunk.lines.is_empty() {
                    emit(chunk).map_err(closed)?;
                }
                return Err(SplitError::Read { counts, error });
            }
        };
        counts.lines += 1;
        if line.too_long {
            let reason = format!(
                "line is {} bytes, over the collector's body limit of {} \
                 (collector.limits.max_body_bytes)",
                line.len, chunking.max_bytes
            );
            reject(counts.lines, reason).map_err(closed)?;
            continue;
        }
        if counts.lines == 1 && chunk.data[start..].starts_with(UTF8_BOM) {
            chunk.data.drain(start..start + UTF8_BOM.len());
        }
        if chunk.data[start..].iter().all(u8::is_ascii_whitespace) {
            chunk.data.truncate(start);
            counts.blank += 1;
            continue;
        }
        chunk.data.push(b'\n');
        if chunk.data.len() > chunking.max_bytes {
            // This line does not fit beside the others: it starts the next chunk.
            let tail = chunk.data.split_off(start);
            let full = std::mem::replace(&mut chunk, Chunk::new(file.clone()));
            emit(full).map_err(closed)?;
            chunk.data = tail;
        }
        chunk.lines.push(counts.lines);
        chunk.ends.push(chunk.data.len());
        if chunk.lines.len() >= chunking.lines || chunk.data.len() >= chunking.bytes {
            let full = std::mem::replace(&mut chunk, Chunk::new(file.clone()));
            emit(full).map_err(closed)?;
        }
    }
    if !chunk.lines.is_empty() {
        emit(chunk).map_err(closed)?;
    }
    Ok(counts)
}

struct Line {
    /// Bytes in the input, newline included.
    len: usize,
    /// Longer than the limit: nothing of it was kept.
    too_long: bool,
}

/// Appends the next line (without its `\n`) to `out`, unless it is longer than `max`.
/// `None` at the end of the input.
fn read_line(r: &mut impl BufRead, out: &mut Vec<u8>, max: usize) -> io::Result<Option<Line>> {
    let start = out.len();
    let mut line = Line {
        len: 0,
        too_long: false,
    };
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((line.len > 0).then_some(line));
        }
        let (used, content, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, &buf[..i], true),
            None => (buf.len(), buf, false),
        };
        if !line.too_long {
            if out.len() - start + content.len() > max {
                line.too_long = true;
                out.truncate(start);
            } else {
                out.extend_from_slice(content);
            }
        }
        line.len += used;
        r.consume(used);
        if done {
            return Ok(Some(line));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use loupe_event::BodyFormat;

    use super::*;

    fn file() -> FileRef {
        FileRef {
            index: 0,
            name: "f".into(),
        }
    }

    fn split(input: &[u8], chunking: Chunking) -> (Vec<Chunk>, Vec<(u64, String)>, FileCounts) {
        let mut chunks = Vec::new();
        let mut rejects = Vec::new();
        let r = split_lines(
            input,
            &file(),
            chunking,
            |c| {
                chunks.push(c);
                Ok(())
            },
            |l, r| {
                rejects.push((l, r));
                Ok(())
            },
        );
        let Ok(counts) = r else {
            panic!("reading a slice failed")
        };
        (chunks, rejects, counts)
    }

    const SMALL: Chunking = Chunking {
        lines: 2,
        bytes: 1 << 20,
        max_bytes: 1 << 20,
    };

    #[test]
    fn events_keep_their_file_lines_across_blank_lines_and_chunks() {
        let input = b"\xEF\xBB\xBF{\"a\":1}\n\n  \r\n{\"a\":2}\n{\"a\":3}\r\n{\"a\":4}";
        let (chunks, rejects, counts) = split(input, SMALL);
        assert!(rejects.is_empty());
        assert_eq!(counts, FileCounts { lines: 6, blank: 2 });
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].lines, vec![1, 4]);
        assert_eq!(chunks[0].data, b"{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(chunks[1].lines, vec![5, 6]);
        assert_eq!(chunks[1].body(1..2), b"{\"a\":4}\n");
        // the collector's decoder sees one event per recorded line
        let limits = Limits::default();
        for c in &chunks {
            let n = loupe_event::decode_body(&c.data, BodyFormat::Ndjson, &limits)
                .unwrap()
                .len();
            assert_eq!(n, c.lines.len());
        }
    }

    #[test]
    fn a_line_over_the_body_limit_is_rejected_alone_and_chunks_stay_under_it() {
        let chunking = Chunking {
            lines: 100,
            bytes: 20,
            max_bytes: 16,
        };
        let long = format!("{{\"x\":\"{}\"}}", "y".repeat(40));
        let input = format!("{{\"a\":1}}\n{long}\n{{\"b\":22}}\n{{\"c\":333}}\n");
        let (chunks, rejects, counts) = split(input.as_bytes(), chunking);
        assert_eq!(counts.lines, 4);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].0, 2);
        assert!(rejects[0].1.contains("max_body_bytes"), "{}", rejects[0].1);
        let lines: Vec<Vec<u64>> = chunks.iter().map(|c| c.lines.clone()).collect();
        assert_eq!(lines, vec![vec![1], vec![3], vec![4]]);
        assert!(chunks.iter().all(|c| c.data.len() <= 16));
    }

    #[test]
    fn a_read_error_keeps_the_complete_lines_before_it() {
        struct Broken(&'static [u8]);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "truncated"));
                }
                let n = self.0.len().min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut chunks = Vec::new();
        let r = split_lines(
            BufReader::new(Broken(b"{\"a\":1}\n{\"a\":2}\n{\"a\"")),
            &file(),
            SMALL,
            |c| {
                chunks.push(c);
                Ok(())
            },
            |_, _| Ok(()),
        );
        let Err(SplitError::Read { counts, .. }) = r else {
            panic!("expected a read error")
        };
        assert_eq!(counts.lines, 2);
        let sent: Vec<u64> = chunks.iter().flat_map(|c| c.lines.clone()).collect();
        assert_eq!(sent, vec![1, 2]);
    }

    #[test]
    fn compression_is_told_by_magic_bytes() {
        let data = b"{\"a\":1}\n".repeat(3);
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&data).unwrap();
            e.finish().unwrap()
        };
        let zs = zstd::encode_all(&data[..], 1).unwrap();
        for (bytes, kind) in [
            (data.clone(), Compression::Plain),
            (gz, Compression::Gzip),
            (zs, Compression::Zstd),
            (b"{".to_vec(), Compression::Plain),
        ] {
            let (k, mut r) = decoder(Box::new(io::Cursor::new(bytes.clone()))).unwrap();
            assert_eq!(k, kind);
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            let expected = if kind == Compression::Plain {
                &bytes
            } else {
                &data
            };
            assert_eq!(&out, expected);
        }
    }
}
