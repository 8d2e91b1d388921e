//! Durable ingest throughput of the real `loupe serve`, and the in-process ceiling of the same
//! events, in one run.
//!
//! Run (the server binary is not built by `cargo bench`: build it first, same target dir):
//!
//! ```text
//! cargo build --release --bin loupe
//! cargo bench -p loupe-bench --bench throughput
//! DURATION=10 CLIENTS=4 BATCH=500 cargo bench -p loupe-bench --bench throughput   # a short trial
//! ```
//!
//! What it does, in order:
//!
//! 1. **Corpus** (untimed). `CORPUS_EVENTS` standard wide events (`loupe_bench::Generator`, seed
//!    42, timestamps 100,000 events/s apart so a corpus spans the time a server takes to ingest
//!    it) rendered as NDJSON requests of `BATCH` events, each compressed with zstd level 1 as the
//!    SDK's exporter does. Only the compressed bodies are kept; the raw JSON size is counted.
//! 2. **Ceiling** (timed). The same bodies through the collector's own steps with no HTTP and
//!    no WAL: zstd decompression (`loupe_collector::decompress`), decode and validate
//!    (`loupe_event::for_each_event`, `Event::validate`), buffering until the collector's flush
//!    threshold (`flush_max_events` or `flush_max_bytes` of `approx_mem_bytes`, the defaults of
//!    `CollectorConfig`), then per hour partition `loupe_store::events_to_batch` and
//!    `write_parquet` (which fsyncs each file). On 1 thread, then on 2 threads each taking half
//!    of the bodies with its own catalog. Events/s is events over wall time.
//! 3. **Server** (timed). The `loupe serve` binary (`LOUPE_BIN`, by default `loupe` next to this
//!    bench's own directory, i.e. `target/release/loupe`) with default settings on a fresh
//!    temporary data directory, on loopback, an ephemeral port and an API key. `CLIENTS` tasks,
//!    each with its own keep-alive connection, POST the bodies round-robin to
//!    `/v1/events/bench` (`Content-Encoding: zstd`, `Content-Type: application/x-ndjson`) for
//!    `WARMUP` seconds, then for the measured `DURATION` seconds. A 429 or 503 is retried after
//!    its `Retry-After` and counted. The server's `VmHWM`/`VmRSS` are sampled from `/proc` every
//!    100 ms, its CPU time and this process's at the window's edges.
//! 4. **Storage**. After the load, SIGTERM (the server flushes everything to Parquet and exits),
//!    then `loupe sql` counts the stored rows, which must equal the acknowledged events; Parquet
//!    bytes are the sizes of the dataset's published files.
//!
//! The numbers (a Markdown table on stdout, the same as JSON in `<target dir>/throughput.json`,
//! or `THROUGHPUT_JSON`):
//!
//! - **durable events/s**: events in requests acknowledged (200, every event accepted, so
//!   fsynced in the WAL) with their answer inside the measured window, over its length.
//!   "Slowest second" is the fewest acknowledged in one second of the window.
//! - **JSON MB/s** and **wire MB/s**: the same requests' NDJSON before and after zstd
//!   (MB = 10^6 bytes).
//! - **request latency** p50/p99/max: from sending a request to having read its answer, for the
//!   acknowledged requests of the window. A request answered 429/503 is not in it; its retries are.
//! - **peak RSS**: the server's `VmHWM` (the kernel's high-water mark of resident memory) over
//!   the whole life of the process, shutdown flush included.
//! - **Parquet bytes/event**: the dataset's Parquet files (after the shutdown flush; compaction
//!   may have merged some) over rows stored. **JSON bytes/event** is the corpus's NDJSON over its
//!   events; the **compression ratio** is the one over the other.
//! - **ceiling** 1-thread and 2-thread events/s, and **durable / ceiling** for each.
//! - **server CPU**: the server's user+system CPU seconds in the window over the window (2.0 is
//!   both cores); the same for this process (the load generator).
//!
//! What limits it: the generator shares the two cores with the server (it sends pre-compressed
//! bodies, so it costs little, and its CPU is reported). The corpus repeats during a long run
//! (with defaults about every 2 s of ingest): the server stores repeated trace ids, but no Parquet
//! file is larger than a corpus, so no file sees an event twice. The ceiling omits the WAL, HTTP,
//! the per-event answer and the collector's own telemetry by design, and its files hold as many
//! events as the collector's flush thresholds allow (a server under load may flush smaller files
//! on its 2 s interval). The fsyncs go to whatever disk holds the temporary directory (`TMPDIR`).
//! Other processes on the machine change everything: the run prints the load average and how
//! many `cargo`/`rustc` processes were running at its start and end.
//!
//! Knobs (environment): `DURATION` (s, 60), `WARMUP` (s, 5), `CLIENTS` (8), `BATCH` (events per
//! request, 1000), `CORPUS_EVENTS` (200000), `LOUPE_BIN`, `LOUPE_COMMIT` (the label of the
//! binary's source when it is not this working tree), `KEEP_DATA=1` (keep and print the data
//! directory), `THROUGHPUT_JSON` (where the JSON goes), `SERVER_CONFIG` (a `loupe.toml` for the
//! server instead of its defaults: what-if runs; the table then says so).

/// `loupe serve`'s allocator and its option, so the ceiling and the server compare like for like.
#[path = "../../src/allocator.rs"]
mod allocator;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use loupe_bench::{Generator, WorkloadConfig};
use loupe_collector::{CollectorConfig, Encoding, decompress};
use loupe_event::{BodyFormat, ValidEvent, for_each_event};
use loupe_store::{Catalog, DatasetName, Partition, Store, events_to_batch, write_parquet};
use serde_json::json;

const DATASET: &str = "bench";
/// Timestamps of the corpus advance as if events arrived at this rate.
const CORPUS_EVENTS_PER_SECOND: f64 = 100_000.0;
/// zstd level of the request bodies: the SDK exporter's.
const WIRE_ZSTD_LEVEL: i32 = 1;
/// `/proc/<pid>/stat` times are in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;
const GIB_KB: u64 = 1 << 20;

/// The targets of issue 4 item 7.
const TARGET_EVENTS_PER_SECOND: f64 = 100_000.0;
const TARGET_CEILING_FRACTION: f64 = 0.5;
const TARGET_PEAK_RSS_KB: u64 = GIB_KB;
const TARGET_COMPRESSION: f64 = 8.0;

struct Settings {
    duration: Duration,
    warmup: Duration,
    clients: usize,
    batch: usize,
    corpus_events: usize,
    bin: PathBuf,
    /// A `loupe.toml` for the server instead of the defaults (for what-if runs).
    server_config: Option<PathBuf>,
    keep: bool,
    json_out: PathBuf,
}

fn env_or<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().unwrap_or_else(|_| {
            eprintln!("error: {name}={v:?} is not a valid value");
            std::process::exit(2)
        }),
        _ => default,
    }
}

impl Settings {
    fn from_env() -> Settings {
        // cargo runs benches from <target>/release/deps/.
        let exe = std::env::current_exe().expect("current exe");
        let release_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("bench binary in <target>/<profile>/deps")
            .to_path_buf();
        let target_dir = release_dir.parent().unwrap_or(&release_dir).to_path_buf();
        let s = Settings {
            duration: Duration::from_secs_f64(env_or("DURATION", 60.0)),
            warmup: Duration::from_secs_f64(env_or("WARMUP", 5.0)),
            clients: env_or("CLIENTS", 8),
            batch: env_or("BATCH", 1000),
            corpus_events: env_or("CORPUS_EVENTS", 200_000),
            bin: std::env::var_os("LOUPE_BIN")
                .map_or_else(|| release_dir.join("loupe"), PathBuf::from),
            server_config: std::env::var_os("SERVER_CONFIG").map(PathBuf::from),
            keep: env_or("KEEP_DATA", 0u8) == 1,
            json_out: std::env::var_os("THROUGHPUT_JSON")
                .map_or_else(|| target_dir.join("throughput.json"), PathBuf::from),
        };
        if s.clients == 0 || s.batch == 0 || s.corpus_events < s.batch || s.duration.is_zero() {
            eprintln!("error: CLIENTS, BATCH and DURATION must be > 0 and CORPUS_EVENTS >= BATCH");
            std::process::exit(2);
        }
        s
    }
}

/// One pre-built request.
struct Body {
    wire: &'static [u8],
    json_bytes: usize,
    events: usize,
}

struct Corpus {
    bodies: Vec<Body>,
    events: usize,
    json_bytes: usize,
    wire_bytes: usize,
}

fn build_corpus(s: &Settings) -> Corpus {
    let mut generator = Generator::new(WorkloadConfig {
        events_per_second: CORPUS_EVENTS_PER_SECOND,
        ..WorkloadConfig::default()
    });
    let mut json = Vec::with_capacity(s.batch * 2_000);
    let mut bodies = Vec::new();
    for _ in 0..s.corpus_events / s.batch {
        json.clear();
        generator.write_ndjson(s.batch, &mut json);
        let wire = zstd::bulk::compress(&json, WIRE_ZSTD_LEVEL).expect("zstd");
        bodies.push(Body {
            // Leaked: the bodies live as long as the process, and requests borrow them without
            // copying.
            wire: Box::leak(wire.into_boxed_slice()),
            json_bytes: json.len(),
            events: s.batch,
        });
    }
    Corpus {
        events: bodies.iter().map(|b| b.events).sum(),
        json_bytes: bodies.iter().map(|b| b.json_bytes).sum(),
        wire_bytes: bodies.iter().map(|b| b.wire.len()).sum(),
        bodies,
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

// ---------------------------------------------------------------------------------------------
// The in-process ceiling.

#[derive(Debug, Clone, Copy, Default)]
struct Ceiling {
    events: usize,
    seconds: f64,
    files: usize,
    parquet_bytes: u64,
}

impl Ceiling {
    fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds
    }
}

fn ceiling(bodies: &[Body], threads: usize, dir: &Path) -> Ceiling {
    let config = CollectorConfig::default();
    let per_thread = bodies.len().div_ceil(threads);
    let started = Instant::now();
    let parts: Vec<Ceiling> = std::thread::scope(|scope| {
        let handles: Vec<_> = bodies
            .chunks(per_thread)
            .enumerate()
            .map(|(i, chunk)| {
                let dir = dir.join(format!("t{threads}-{i}"));
                let config = &config;
                scope.spawn(move || pipeline(chunk, config, &dir))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("ceiling thread"))
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    Ceiling {
        seconds,
        events: parts.iter().map(|p| p.events).sum(),
        files: parts.iter().map(|p| p.files).sum(),
        parquet_bytes: parts.iter().map(|p| p.parquet_bytes).sum(),
    }
}

/// What the collector does with these bodies, minus HTTP and the WAL.
fn pipeline(bodies: &[Body], config: &CollectorConfig, dir: &Path) -> Ceiling {
    std::fs::create_dir_all(dir).expect("ceiling dir");
    let limits = config.limits;
    let now = now_us();
    let mut catalog = Catalog::default();
    let mut out = Ceiling::default();
    let mut buffer: Vec<ValidEvent> = Vec::new();
    let mut buffer_bytes = 0usize;
    for body in bodies {
        let json = decompress(body.wire, Encoding::Zstd, limits.max_body_bytes).expect("zstd");
        for_each_event(&json, BodyFormat::Ndjson, &limits, |r| {
            let v = r
                .and_then(|e| e.validate(&limits, now))
                .expect("the standard event is valid");
            buffer_bytes += v.approx_mem_bytes();
            buffer.push(v);
        })
        .expect("body");
        if buffer.len() >= config.flush_max_events || buffer_bytes >= config.flush_max_bytes {
            flush(&mut buffer, &mut catalog, dir, &mut out);
            buffer_bytes = 0;
        }
    }
    flush(&mut buffer, &mut catalog, dir, &mut out);
    out
}

/// The collector's flush: one file per hour partition.
fn flush(buffer: &mut Vec<ValidEvent>, catalog: &mut Catalog, dir: &Path, out: &mut Ceiling) {
    let now = now_us();
    buffer.sort_by_key(|e| Partition::of(e.timestamp_us()));
    for chunk in
        buffer.chunk_by(|a, b| Partition::of(a.timestamp_us()) == Partition::of(b.timestamp_us()))
    {
        let batch = events_to_batch(chunk, catalog, now).expect("batch");
        let path = dir.join(format!("{:06}.parquet", out.files));
        out.parquet_bytes += write_parquet(&path, &batch).expect("write parquet");
        out.files += 1;
        out.events += chunk.len();
    }
    buffer.clear();
}

// ---------------------------------------------------------------------------------------------
// The server.

struct Server {
    child: Child,
    pid: u32,
    base: String,
    key: String,
    data: PathBuf,
}

impl Drop for Server {
    /// A panic mid-run must not leave the server running; after a graceful exit this is a
    /// no-op.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn start_server(s: &Settings, tmp: &Path) -> Server {
    if !s.bin.is_file() {
        eprintln!(
            "error: no loupe binary at {}.\n\
             Build it first, into the same target directory as this bench:\n    \
             cargo build --release --bin loupe\n\
             or point LOUPE_BIN at one.",
            s.bin.display()
        );
        std::process::exit(1);
    }
    let data = tmp.join("data");
    // The server wants keys of at least 16 characters.
    let key = format!("loupe-bench-key-{:010}", std::process::id());
    let log = std::fs::File::create(tmp.join("server.log")).expect("server log");
    let mut cmd = Command::new(&s.bin);
    if let Some(config) = &s.server_config {
        let config = std::fs::canonicalize(config)
            .unwrap_or_else(|e| panic!("SERVER_CONFIG {}: {e}", config.display()));
        cmd.arg("--config").arg(config);
    }
    let mut child = cmd
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .args(["--http", "127.0.0.1:0", "--api-key", &key])
        // No stray ./loupe.toml: the defaults are what is measured.
        .current_dir(tmp)
        .env("LOUPE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", s.bin.display()));
    // The server prints its address once it listens; EOF means it died first.
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("server stdout");
    let Some(addr) = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
    else {
        let log = std::fs::read_to_string(tmp.join("server.log")).unwrap_or_default();
        panic!("loupe serve did not start: {line:?}\n{log}");
    };
    let base = format!("http://{addr}");
    // Keep reading its stdout so it can never block on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Server {
        pid: child.id(),
        child,
        base,
        key,
        data,
    }
}

/// `VmHWM` and `VmRSS` of a process, in KiB.
fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// User + system CPU seconds a process has used.
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at field 3, the state.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    match (f.get(11), f.get(12)) {
        (Some(u), Some(s)) => (u + s) as f64 / TICKS_PER_SECOND,
        _ => 0.0,
    }
}

#[derive(Default)]
struct MemoryPeak {
    hwm_kb: AtomicU64,
    rss_kb: AtomicU64,
}

impl MemoryPeak {
    fn sample(&self, pid: u32) -> bool {
        let Some((hwm, rss)) = memory_kb(pid) else {
            return false;
        };
        self.hwm_kb.fetch_max(hwm, Ordering::Relaxed);
        self.rss_kb.fetch_max(rss, Ordering::Relaxed);
        true
    }
}

// ---------------------------------------------------------------------------------------------
// The load.

/// One acknowledged request.
struct Ack {
    done: Instant,
    latency: Duration,
    events: usize,
    json_bytes: usize,
    wire_bytes: usize,
}

#[derive(Default)]
struct ClientLog {
    acks: Vec<Ack>,
    busy: usize,
}

async fn client(
    id: usize,
    server: Arc<(String, String)>,
    bodies: Arc<Vec<Body>>,
    clients: usize,
    stop_at: Instant,
) -> ClientLog {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(1)
        .build()
        .expect("http client");
    let url = format!("{}/v1/events/{DATASET}", server.0);
    let mut log = ClientLog::default();
    let mut next = id;
    while Instant::now() < stop_at {
        let body = &bodies[next % bodies.len()];
        next += clients;
        loop {
            let started = Instant::now();
            let resp = http
                .post(&url)
                .bearer_auth(&server.1)
                .header("content-encoding", "zstd")
                .header("content-type", "application/x-ndjson")
                .body(body.wire)
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {url}: {e}"));
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            let answer = resp
                .bytes()
                .await
                .unwrap_or_else(|e| panic!("reading answer: {e}"));
            let done = Instant::now();
            if status == 429 || status == 503 {
                log.busy += 1;
                tokio::time::sleep(Duration::from_secs_f64(retry_after)).await;
                continue;
            }
            let accepted = serde_json::from_slice::<serde_json::Value>(&answer)
                .ok()
                .and_then(|v| v["accepted"].as_u64());
            if status != 200 || accepted != Some(body.events as u64) {
                panic!(
                    "the server answered {status}, accepted {accepted:?} of {}: {}",
                    body.events,
                    String::from_utf8_lossy(&answer[..answer.len().min(500)])
                );
            }
            log.acks.push(Ack {
                done,
                latency: done - started,
                events: body.events,
                json_bytes: body.json_bytes,
                wire_bytes: body.wire.len(),
            });
            break;
        }
    }
    log
}

struct Load {
    window: Duration,
    events: usize,
    json_bytes: usize,
    wire_bytes: usize,
    requests: usize,
    latencies: Vec<Duration>,
    slowest_second: usize,
    busy: usize,
    acked_total: usize,
    server_cpu: f64,
    bench_cpu: f64,
}

fn drive(s: &Settings, server: &Server, corpus: Corpus, peak: &MemoryPeak) -> Load {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let bodies = Arc::new(corpus.bodies);
    let start = Instant::now();
    let window_start = start + s.warmup;
    let window_end = window_start + s.duration;
    let pid = server.pid.to_string();
    let (logs, server_cpu, bench_cpu) = rt.block_on(async {
        let target = Arc::new((server.base.clone(), server.key.clone()));
        let tasks: Vec<_> = (0..s.clients)
            .map(|id| {
                tokio::spawn(client(
                    id,
                    target.clone(),
                    bodies.clone(),
                    s.clients,
                    window_end,
                ))
            })
            .collect();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut cpu_at_start = None;
        let mut cpu_at_end = None;
        while cpu_at_end.is_none() {
            tick.tick().await;
            peak.sample(server.pid);
            let now = Instant::now();
            if cpu_at_start.is_none() && now >= window_start {
                cpu_at_start = Some((now, cpu_seconds(&pid), cpu_seconds("self")));
            }
            if now >= window_end {
                cpu_at_end = Some((now, cpu_seconds(&pid), cpu_seconds("self")));
            }
        }
        let mut logs = Vec::new();
        for t in tasks {
            logs.push(t.await.expect("client task"));
        }
        let ((t0, s0, b0), (t1, s1, b1)) = (cpu_at_start.unwrap(), cpu_at_end.unwrap());
        let secs = (t1 - t0).as_secs_f64();
        (logs, (s1 - s0) / secs, (b1 - b0) / secs)
    });
    peak.sample(server.pid);

    let mut load = Load {
        window: s.duration,
        events: 0,
        json_bytes: 0,
        wire_bytes: 0,
        requests: 0,
        latencies: Vec::new(),
        slowest_second: 0,
        busy: logs.iter().map(|l| l.busy).sum(),
        acked_total: 0,
        server_cpu,
        bench_cpu,
    };
    let seconds = s.duration.as_secs().max(1) as usize;
    let mut per_second = vec![0usize; seconds];
    for ack in logs.iter().flat_map(|l| &l.acks) {
        load.acked_total += ack.events;
        if ack.done < window_start || ack.done >= window_end {
            continue;
        }
        load.events += ack.events;
        load.json_bytes += ack.json_bytes;
        load.wire_bytes += ack.wire_bytes;
        load.requests += 1;
        load.latencies.push(ack.latency);
        let i = ((ack.done - window_start).as_secs() as usize).min(seconds - 1);
        per_second[i] += ack.events;
    }
    load.slowest_second = per_second.iter().copied().min().unwrap_or(0);
    load.latencies.sort_unstable();
    load
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// SIGTERM, then waits for the graceful exit (which flushes), sampling memory until it ends.
fn terminate(mut server: Server, peak: &MemoryPeak) -> Duration {
    let started = Instant::now();
    let sent = Command::new("kill")
        .args(["-TERM", &server.pid.to_string()])
        .status()
        .expect("kill -TERM");
    assert!(sent.success(), "kill -TERM {} failed", server.pid);
    loop {
        peak.sample(server.pid);
        if let Some(status) = server.child.try_wait().expect("wait for server") {
            assert!(status.success(), "loupe serve exited with {status}");
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Stored {
    rows: u64,
    files: usize,
    parquet_bytes: u64,
    dataset_bytes: u64,
}

fn stored(s: &Settings, data: &Path) -> Stored {
    let out = Command::new(&s.bin)
        .args(["sql", "--format", "json", "--data-dir"])
        .arg(data)
        .arg(format!("SELECT count(*) AS n FROM {DATASET}"))
        .output()
        .expect("loupe sql");
    assert!(
        out.status.success(),
        "loupe sql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("sql json");
    let dir = Store::new(data).dataset(&DatasetName::new(DATASET).expect("name"));
    let files = dir.parquet_files().expect("list parquet files");
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Stored {
        rows: rows[0]["n"].as_u64().expect("count"),
        files: files.len(),
        parquet_bytes: files.iter().map(|p| size(p)).sum(),
        dataset_bytes: dir_bytes(dir.path()),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The machine.

struct Machine {
    cores: usize,
    mem_gib: f64,
    cpu: String,
    commit: String,
    binary_age_min: f64,
}

fn machine(bin: &Path) -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // The working tree's commit, "-dirty" with uncommitted changes; LOUPE_COMMIT names the
    // server binary's source instead when it was built elsewhere (a clean export, say).
    let commit = std::env::var("LOUPE_COMMIT").unwrap_or_else(|_| {
        let mut c = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        if git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty()) {
            c.push_str("-dirty");
        }
        c
    });
    let binary_age_min = std::fs::metadata(bin)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or(f64::NAN, |d| d.as_secs_f64() / 60.0);
    Machine {
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_gib: mem_kb / (1u64 << 20) as f64,
        cpu,
        commit,
        binary_age_min,
    }
}

/// The 1-minute load average and how many `cargo`/`rustc` processes are running.
fn busyness() -> (f64, usize) {
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN);
    let builds = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let mut comm = String::new();
                    std::fs::File::open(e.path().join("comm"))
                        .and_then(|mut f| f.read_to_string(&mut comm))
                        .is_ok()
                        && matches!(comm.trim(), "cargo" | "rustc")
                })
                .count()
        })
        .unwrap_or(0);
    (load, builds)
}

// ---------------------------------------------------------------------------------------------

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn main() {
    allocator::configure();
    // `cargo bench` passes `--bench`; a filter that is not ours means another bench was asked for.
    if std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"throughput".contains(a.as_str()))
    {
        return;
    }
    let s = Settings::from_env();
    let m = machine(&s.bin);
    let busy_before = busyness();
    eprintln!(
        "throughput: {} clients, {} events per request, {} s after {} s of warm-up, corpus of {} events",
        s.clients,
        s.batch,
        s.duration.as_secs_f64(),
        s.warmup.as_secs_f64(),
        s.corpus_events
    );

    let started = Instant::now();
    let corpus = build_corpus(&s);
    eprintln!(
        "corpus: {} requests, {:.1} MB of NDJSON, {:.1} MB zstd-{WIRE_ZSTD_LEVEL} ({:.1} s, untimed)",
        corpus.bodies.len(),
        corpus.json_bytes as f64 / 1e6,
        corpus.wire_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let json_per_event = corpus.json_bytes as f64 / corpus.events as f64;
    let wire_per_event = corpus.wire_bytes as f64 / corpus.events as f64;

    let tmp = tempfile::Builder::new()
        .prefix("loupe-throughput-")
        .tempdir()
        .expect("temp dir");
    let ceiling_1 = ceiling(&corpus.bodies, 1, &tmp.path().join("ceiling"));
    eprintln!(
        "ceiling, 1 thread: {:.0} events/s ({} files)",
        ceiling_1.events_per_second(),
        ceiling_1.files
    );
    let ceiling_2 = ceiling(&corpus.bodies, 2, &tmp.path().join("ceiling"));
    eprintln!(
        "ceiling, 2 threads: {:.0} events/s ({} files)",
        ceiling_2.events_per_second(),
        ceiling_2.files
    );
    std::fs::remove_dir_all(tmp.path().join("ceiling")).expect("remove ceiling files");

    let server = start_server(&s, tmp.path());
    eprintln!(
        "server: {} pid {} at {}",
        s.bin.display(),
        server.pid,
        server.base
    );
    let peak = MemoryPeak::default();
    let (corpus_events, corpus_json) = (corpus.events, corpus.json_bytes);
    let load = drive(&s, &server, corpus, &peak);
    let data = server.data.clone();
    let shutdown = terminate(server, &peak);
    let stored = stored(&s, &data);
    let busy_after = busyness();
    if s.keep {
        let kept = tmp.keep();
        eprintln!("data kept in {}", kept.join("data").display());
    }

    let secs = load.window.as_secs_f64();
    let events_per_second = load.events as f64 / secs;
    let parquet_per_event = stored.parquet_bytes as f64 / stored.rows.max(1) as f64;
    let ratio = json_per_event / parquet_per_event;
    let of_ceiling_1 = events_per_second / ceiling_1.events_per_second();
    let of_ceiling_2 = events_per_second / ceiling_2.events_per_second();
    let hwm_kb = peak.hwm_kb.load(Ordering::Relaxed);
    let p = |q| percentile(&load.latencies, q).as_secs_f64() * 1e3;
    let (p50, p99, pmax) = (p(0.5), p(0.99), p(1.0));
    let verified = stored.rows == load.acked_total as u64;

    let mut table = String::new();
    let mut row = |what: &str, value: String, target: String| {
        table.push_str(&format!("| {what} | {value} | {target} |\n"));
    };
    row(
        "durable ingest (fsync on), events/s",
        format!(
            "{events_per_second:.0} (slowest second {})",
            load.slowest_second
        ),
        format!(
            ">= 100,000: {}",
            met(events_per_second >= TARGET_EVENTS_PER_SECOND)
        ),
    );
    row(
        "JSON MB/s (uncompressed) / wire MB/s (zstd-1)",
        format!(
            "{:.1} / {:.1}",
            load.json_bytes as f64 / secs / 1e6,
            load.wire_bytes as f64 / secs / 1e6
        ),
        String::new(),
    );
    row(
        "request latency p50 / p99 / max",
        format!("{p50:.1} / {p99:.1} / {pmax:.1} ms"),
        format!("{} requests of {} events", load.requests, s.batch),
    );
    row(
        "429/503 answers (retried)",
        load.busy.to_string(),
        String::new(),
    );
    row(
        "server peak RSS (VmHWM)",
        format!("{:.0} MiB", hwm_kb as f64 / 1024.0),
        format!("< 1 GiB: {}", met(hwm_kb < TARGET_PEAK_RSS_KB)),
    );
    row(
        "Parquet bytes/event",
        format!(
            "{parquet_per_event:.1} ({} files, {} rows)",
            stored.files, stored.rows
        ),
        String::new(),
    );
    row(
        "JSON bytes/event (zstd-1 on the wire)",
        format!("{json_per_event:.0} ({wire_per_event:.0})"),
        String::new(),
    );
    row(
        "JSON / Parquet",
        format!("{ratio:.1}x"),
        format!(">= 8x: {}", met(ratio >= TARGET_COMPRESSION)),
    );
    row(
        "ceiling, 1 thread / 2 threads, events/s",
        format!(
            "{:.0} / {:.0}",
            ceiling_1.events_per_second(),
            ceiling_2.events_per_second()
        ),
        format!(
            "decode + validate + Arrow + Parquet, {} events, {:.0} per file",
            ceiling_1.events,
            ceiling_1.events as f64 / ceiling_1.files as f64
        ),
    );
    row(
        "durable / ceiling (2 threads; 1 thread)",
        format!("{of_ceiling_2:.2} ({of_ceiling_1:.2})"),
        format!(
            ">= 0.5 of 2 threads: {}",
            met(of_ceiling_2 >= TARGET_CEILING_FRACTION)
        ),
    );
    row(
        "CPU in the window: server / load generator",
        format!("{:.2} / {:.2} cores", load.server_cpu, load.bench_cpu),
        String::new(),
    );
    row(
        "stored rows == acknowledged events",
        format!("{} == {}: {verified}", stored.rows, load.acked_total),
        format!(
            "shutdown flush {:.1} s; dataset dir {:.1} MB",
            shutdown.as_secs_f64(),
            stored.dataset_bytes as f64 / 1e6
        ),
    );

    println!();
    println!(
        "machine: {} cores ({}), {:.1} GiB; commit {}; loupe binary built {:.0} min ago",
        m.cores, m.cpu, m.mem_gib, m.commit, m.binary_age_min
    );
    println!(
        "load average before / after: {:.2} / {:.2}; cargo/rustc processes before / after: {} / {}",
        busy_before.0, busy_after.0, busy_before.1, busy_after.1
    );
    println!(
        "{} clients, {} events per request, {} s measured after {} s warm-up; generator and server share the machine; server config: {}",
        s.clients,
        s.batch,
        secs,
        s.warmup.as_secs_f64(),
        s.server_config
            .as_ref()
            .map_or("defaults".to_owned(), |p| p.display().to_string())
    );
    println!();
    println!("| | measured | target / note |");
    println!("|---|---|---|");
    print!("{table}");

    let report = json!({
        "commit": m.commit,
        "machine": { "cores": m.cores, "mem_gib": m.mem_gib, "cpu": m.cpu,
            "loadavg_before": busy_before.0, "loadavg_after": busy_after.0,
            "builds_before": busy_before.1, "builds_after": busy_after.1 },
        "settings": { "duration_s": secs, "warmup_s": s.warmup.as_secs_f64(),
            "clients": s.clients, "batch": s.batch, "corpus_events": corpus_events,
            "server_config": s.server_config.as_ref().map(|p| p.display().to_string()),
            "corpus_json_bytes": corpus_json },
        "durable": {
            "events_per_second": events_per_second,
            "slowest_second_events": load.slowest_second,
            "json_mb_per_second": load.json_bytes as f64 / secs / 1e6,
            "wire_mb_per_second": load.wire_bytes as f64 / secs / 1e6,
            "requests": load.requests,
            "latency_ms": { "p50": p50, "p99": p99, "max": pmax },
            "busy_answers": load.busy,
            "server_cpu_cores": load.server_cpu,
            "generator_cpu_cores": load.bench_cpu,
        },
        "memory": { "peak_rss_kib": hwm_kb, "peak_sampled_rss_kib": peak.rss_kb.load(Ordering::Relaxed) },
        "storage": { "rows": stored.rows, "acked": load.acked_total, "verified": verified,
            "files": stored.files, "parquet_bytes": stored.parquet_bytes,
            "parquet_bytes_per_event": parquet_per_event, "json_bytes_per_event": json_per_event,
            "wire_bytes_per_event": wire_per_event, "compression_ratio": ratio,
            "dataset_dir_bytes": stored.dataset_bytes, "shutdown_s": shutdown.as_secs_f64() },
        "ceiling": {
            "one_thread_events_per_second": ceiling_1.events_per_second(),
            "two_threads_events_per_second": ceiling_2.events_per_second(),
            "events": ceiling_1.events, "files_one_thread": ceiling_1.files,
            "parquet_bytes_one_thread": ceiling_1.parquet_bytes,
            "durable_over_two_threads": of_ceiling_2, "durable_over_one_thread": of_ceiling_1,
        },
        "targets": {
            "events_per_second_100k": events_per_second >= TARGET_EVENTS_PER_SECOND,
            "half_of_ceiling": of_ceiling_2 >= TARGET_CEILING_FRACTION,
            "peak_rss_under_1gib": hwm_kb < TARGET_PEAK_RSS_KB,
            "parquet_8x_smaller": ratio >= TARGET_COMPRESSION,
        },
    });
    if let Some(dir) = s.json_out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &s.json_out,
        serde_json::to_string_pretty(&report).expect("json"),
    )
    .expect("write throughput.json");
    println!("\n(also in {})", s.json_out.display());
    assert!(
        verified,
        "stored rows ({}) differ from acknowledged events ({})",
        stored.rows, load.acked_total
    );
}
