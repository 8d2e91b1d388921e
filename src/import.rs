//! `loupe ingest`: bulk import of NDJSON files, into a data directory or through a running server.
//!
//! A reader thread streams each file ([`read`]: plain, gzip or zstd, told apart by their first
//! bytes), cuts it into chunks of whole lines and hands them over a bounded channel; the sender
//! ([`send`]) keeps a few chunks in flight. Memory stays constant whatever the size of the files.
//! Each chunk remembers the file line of each of its events, so the per-event statuses the
//! collector answers map back to `file:line` in the summary.
//!
//! Exit status (also in `loupe ingest --help`): 0 when every file was read to its end and every
//! event accepted; 1 on an error (a file not read to its end, a server that cannot be reached or
//! refuses the key, a data directory in use); 3 when some events were rejected, unless
//! `--allow-rejects`. A user scripting an import needs to tell "the data had bad lines" (look at
//! the summary) from "the import did not finish" (run it again for what is missing).

mod read;
mod send;

pub(crate) use read::open_decompressed;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use loupe_event::Limits;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::cli::IngestArgs;
use crate::config::Config;
use read::{Chunk, Chunking, FileCounts, FileRef, Input, Msg};
use send::{Sent, Sink, Status};

/// Exit status when every file was read to its end but some events were rejected, and
/// `--allow-rejects` was not given. (1 is an error, 2 is clap's for wrong arguments.)
const EXIT_REJECTED: i32 = 3;
/// Chunks being sent at once; with the channel's two, what bounds the importer's memory.
const IN_FLIGHT: usize = 4;
/// `file:line` examples kept per rejection reason.
const EXAMPLES: usize = 3;

pub(crate) async fn run(args: IngestArgs, config: Config) -> anyhow::Result<()> {
    loupe_store::DatasetName::new(&args.dataset)
        .with_context(|| format!("invalid --dataset {:?}", args.dataset))?;
    let inputs = read::check_inputs(&args.files)?;
    let (sink, limits, target) = match &args.url {
        Some(url) => {
            let sink = Sink::url(url, &args.dataset, args.api_key.clone())?;
            // The server's own limits are not known here; a chunk it finds too large is split.
            (sink, Limits::default(), url.clone())
        }
        None => {
            let dir = args.data_dir.clone().unwrap_or(config.data_dir);
            let collector = crate::serve::open_collector(
                &dir,
                config.collector,
                "import through it with --url http://ADDR instead (the address it printed when \
                 it started)",
            )
            .await?;
            let limits = collector.config().limits;
            let target = format!("data directory {}", dir.display());
            (Sink::dir(collector, &args.dataset), limits, target)
        }
    };
    let progress = progress_bar(&inputs);
    let started = Instant::now();

    let (tx, rx) = mpsc::channel(2);
    let reader = {
        let progress = progress.clone();
        let chunking = Chunking::for_limits(&limits);
        std::thread::Builder::new()
            .name("loupe-ingest-reader".into())
            .spawn(move || read::read_inputs(inputs, chunking, &tx, &progress))?
    };
    let mut tally = Tally {
        files: args.files.len(),
        ..Tally::default()
    };
    let fatal = pump(rx, &sink, &mut tally, &progress, started).await.err();
    if fatal.is_none() {
        // Every message has been received: the thread has returned or is about to.
        let _ = reader.join();
    }
    // Whatever happened, what was accepted is in Parquet when the command returns.
    let closed = sink.close().await;
    progress.finish_and_clear();

    print!(
        "{}",
        tally.summary(&args.dataset, &target, started.elapsed())
    );
    io::stdout().flush()?;
    if let Some(e) = fatal {
        let stored = match tally.accepted {
            0 => "nothing was stored".to_owned(),
            n => format!("the {} events accepted before stay stored", thousands(n)),
        };
        return Err(e.context(format!("the import stopped; {stored}")));
    }
    closed?;
    if !tally.failed.is_empty() {
        bail!(
            "{} of {} files could not be read to the end: {}",
            tally.failed.len(),
            tally.files,
            tally.failed.join("; ")
        );
    }
    if tally.rejected() > 0 && !args.allow_rejects {
        let n = tally.rejected();
        let what = match n {
            1 => "1 event was".to_owned(),
            n => format!("{} events were", thousands(n)),
        };
        eprintln!("{what} rejected: exit status {EXIT_REJECTED} (--allow-rejects exits 0)");
        std::process::exit(EXIT_REJECTED);
    }
    Ok(())
}

/// Receives the reader's messages and sends its chunks, a few at a time, until the reader is
/// done. An error of the sink stops the reading; the chunks already in flight are seen through
/// and counted, so the summary says exactly what was stored, and the first error is returned.
async fn pump(
    mut rx: mpsc::Receiver<Msg>,
    sink: &Sink,
    tally: &mut Tally,
    progress: &ProgressBar,
    started: Instant,
) -> anyhow::Result<()> {
    let mut tasks: JoinSet<(Chunk, anyhow::Result<Sent>)> = JoinSet::new();
    let mut failed: Option<anyhow::Error> = None;
    let mut reading = true;
    while reading || !tasks.is_empty() {
        tokio::select! {
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                match done {
                    Ok((chunk, Ok(sent))) => {
                        tally.retries += u64::from(sent.retries);
                        tally.record(&chunk, sent.statuses);
                        let secs = started.elapsed().as_secs_f64().max(1e-3);
                        progress.set_message(format!(
                            "{} events, {:.0}/s,",
                            thousands(tally.events()),
                            tally.events() as f64 / secs
                        ));
                    }
                    Ok((_, Err(e))) => {
                        failed.get_or_insert(e);
                    }
                    Err(e) => {
                        failed.get_or_insert(e.into());
                    }
                }
            }
            msg = rx.recv(), if reading && failed.is_none() && tasks.len() < IN_FLIGHT => match msg {
                None => reading = false,
                Some(Msg::Chunk(chunk)) => {
                    let sink = sink.clone();
                    tasks.spawn(async move {
                        let sent = sink.send(&chunk).await;
                        (chunk, sent)
                    });
                }
                Some(Msg::Reject { file, line, reason }) => {
                    tally.reject(&file, line, "line_too_long", &reason);
                }
                Some(Msg::FileRead(counts)) => tally.add_file(counts, true),
                Some(Msg::FileFailed(counts, why)) => {
                    tally.add_file(counts, false);
                    tally.failed.push(why);
                }
            },
            else => break,
        }
        if failed.is_some() && reading {
            // The reader's next send fails, and it stops.
            rx.close();
            reading = false;
        }
    }
    failed.map_or(Ok(()), Err)
}

/// A bar of bytes read (of the total when every input's size is known) and events per second,
/// on stderr when it is a terminal; nothing otherwise.
fn progress_bar(inputs: &[Input]) -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total: Option<u64> = inputs.iter().map(|i| i.size).sum();
    // `wide_bar` takes what the terminal has left, so the line never wraps.
    let template = if total.is_some() {
        "{spinner} {elapsed} {msg} {bytes}/{total_bytes} [{wide_bar}] eta {eta}"
    } else {
        "{spinner} {elapsed} {msg} {bytes} read ({bytes_per_sec})"
    };
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Events rejected for one reason.
#[derive(Debug, Default)]
struct RejectGroup {
    count: u64,
    /// The first few in file order (chunks finish in any order), with their reasons.
    examples: Vec<(FileRef, u64, String)>,
}

/// What the import did, for the summary.
#[derive(Debug, Default)]
struct Tally {
    files: usize,
    files_read: usize,
    lines: u64,
    blank: u64,
    accepted: u64,
    retries: u64,
    /// By reason code.
    rejects: BTreeMap<String, RejectGroup>,
    /// Files that could not be read to the end: why, and how far they got.
    failed: Vec<String>,
}

impl Tally {
    fn add_file(&mut self, c: FileCounts, whole: bool) {
        self.files_read += usize::from(whole);
        self.lines += c.lines;
        self.blank += c.blank;
    }

    fn rejected(&self) -> u64 {
        self.rejects.values().map(|g| g.count).sum()
    }

    fn events(&self) -> u64 {
        self.accepted + self.rejected()
    }

    fn record(&mut self, chunk: &Chunk, statuses: Vec<Status>) {
        for (status, &line) in statuses.into_iter().zip(&chunk.lines) {
            match status {
                Status::Accepted => self.accepted += 1,
                Status::Rejected { code, reason } => self.reject(&chunk.file, line, &code, &reason),
            }
        }
    }

    fn reject(&mut self, file: &FileRef, line: u64, code: &str, reason: &str) {
        let group = self.rejects.entry(code.to_owned()).or_default();
        group.count += 1;
        let key = (file.index, line);
        let later = |e: &(FileRef, u64, String)| (e.0.index, e.1) > key;
        if group.examples.len() < EXAMPLES || group.examples.last().is_some_and(later) {
            let at = group.examples.partition_point(|e| !later(e));
            group
                .examples
                .insert(at, (file.clone(), line, without_chunk_line(reason)));
            group.examples.truncate(EXAMPLES);
        }
    }

    fn summary(&self, dataset: &str, target: &str, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64();
        let mut s = String::new();
        let _ = writeln!(s, "ingest into dataset {dataset} ({target})");
        let _ = writeln!(
            s,
            "  files     {} ({} read to the end)",
            self.files, self.files_read
        );
        let _ = writeln!(
            s,
            "  lines     {} ({} blank)",
            thousands(self.lines),
            thousands(self.blank)
        );
        let _ = writeln!(s, "  accepted  {}", thousands(self.accepted));
        let _ = writeln!(s, "  rejected  {}", thousands(self.rejected()));
        let width = self.rejects.keys().map(String::len).max().unwrap_or(0);
        for (code, g) in &self.rejects {
            let at: Vec<String> = g
                .examples
                .iter()
                .map(|(f, line, _)| format!("{}:{line}", f.name))
                .collect();
            let first = g.examples.first().map_or("", |e| e.2.as_str());
            let _ = writeln!(
                s,
                "    {code:<width$} {:>9}  at {} ({first})",
                thousands(g.count),
                at.join(", "),
            );
        }
        for why in &self.failed {
            let _ = writeln!(s, "  failed    {why}");
        }
        if self.retries > 0 {
            let _ = writeln!(
                s,
                "  retried   {} times (the collector was full or unavailable and asked to wait)",
                self.retries
            );
        }
        let rate = (self.events() as f64 / secs.max(1e-3)).round() as u64;
        let _ = writeln!(s, "  time      {secs:.1} s ({} events/s)", thousands(rate));
        s
    }
}

/// The collector's JSON error for an NDJSON line says where in the request body the line was;
/// the summary names the file's line instead, so the body's line number would only mislead.
fn without_chunk_line(reason: &str) -> String {
    if let Some(rest) = reason.strip_prefix("invalid JSON: line ")
        && let Some(i) = rest.find(" column ")
        && rest[..i].bytes().all(|b| b.is_ascii_digit())
    {
        return format!("invalid JSON: {}", &rest[i + 1..]);
    }
    reason.to_owned()
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(index: usize) -> FileRef {
        FileRef {
            index,
            name: format!("f{index}").into(),
        }
    }

    #[test]
    fn examples_are_the_first_in_file_order_whatever_order_chunks_finish_in() {
        let mut t = Tally::default();
        for (f, line) in [(1, 5), (0, 9), (1, 1), (0, 3), (2, 1), (0, 4)] {
            t.reject(&file(f), line, "invalid_json", &format!("r{f}:{line}"));
        }
        let g = &t.rejects["invalid_json"];
        assert_eq!(g.count, 6);
        let at: Vec<(usize, u64)> = g.examples.iter().map(|e| (e.0.index, e.1)).collect();
        assert_eq!(at, vec![(0, 3), (0, 4), (0, 9)]);
        assert_eq!(g.examples[0].2, "r0:3");
        let s = t.summary("d", "here", Duration::from_secs(2));
        assert!(
            s.contains("invalid_json         6  at f0:3, f0:4, f0:9 (r0:3)"),
            "{s}"
        );
    }

    #[test]
    fn json_reasons_lose_the_chunk_line() {
        assert_eq!(
            without_chunk_line("invalid JSON: line 17 column 5: EOF while parsing"),
            "invalid JSON: column 5: EOF while parsing"
        );
        assert_eq!(
            without_chunk_line("too many fields: 3 (limit 2)"),
            "too many fields: 3 (limit 2)"
        );
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(12), "12");
    }
}
