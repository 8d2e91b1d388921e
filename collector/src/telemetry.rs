//! The collector's own telemetry, two ways:
//! - one wide event per ingest request (door, dataset, events in, accepted, rejected by reason,
//!   bytes, latency, WAL commit wait, status), stored in the internal dataset `_loupe` and
//!   queryable like any other (`SELECT ... FROM _loupe`);
//! - Prometheus metrics, rendered in the text exposition format for `GET /metrics`
//!   (<https://prometheus.io/docs/instrumenting/exposition_formats/>). Names follow the
//!   Prometheus naming conventions: base units (seconds, bytes), `_total` on counters.
//!
//! Self events wait in a bounded queue and are appended once a second by
//! [`Collector::spawn_self_telemetry`](crate::Collector::spawn_self_telemetry), through the
//! same admission as everything else: under backpressure they are dropped (and counted), never
//! allowed to make the overload worse.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use loupe_event::Event;

use crate::dataset::FlushStats;
use crate::ingest::{EventStatus, IngestOutcome};

/// The internal dataset the collector's own events go to: `_loupe`.
pub const SELF_DATASET: &str = "loupe";
/// Self events held for the next append; more are dropped and counted.
const MAX_PENDING: usize = 10_000;

/// Which door an ingest request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Door {
    Native,
    HoneycombEvent,
    HoneycombBatch,
    OtlpTraces,
    OtlpLogs,
}

impl Door {
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Native => "native",
            Door::HoneycombEvent => "honeycomb_event",
            Door::HoneycombBatch => "honeycomb_batch",
            Door::OtlpTraces => "otlp_traces",
            Door::OtlpLogs => "otlp_logs",
        }
    }

    /// The door a request path leads to (the routes of [`crate::router`]).
    pub(crate) fn of_path(path: &str) -> Option<Door> {
        Some(match path {
            "/v1/traces" => Door::OtlpTraces,
            "/v1/logs" => Door::OtlpLogs,
            p if p.starts_with("/v1/events/") => Door::Native,
            p if p.starts_with("/1/events/") => Door::HoneycombEvent,
            p if p.starts_with("/1/batch/") => Door::HoneycombBatch,
            _ => return None,
        })
    }
}

/// What a door's handler learned about one request's events. Handlers leave it in the
/// response's extensions; the door middleware records it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RequestEvents {
    /// Datasets written, comma-separated (OTLP can write several).
    pub(crate) dataset: String,
    pub(crate) events_in: usize,
    pub(crate) accepted: usize,
    /// Of the accepted, dropped by the dataset's sampler.
    pub(crate) sampled_out: usize,
    pub(crate) rejected: BTreeMap<&'static str, usize>,
    /// The body after decompression.
    pub(crate) body_bytes: usize,
    /// Time spent waiting for the WAL's group commit.
    pub(crate) wal_wait: Duration,
}

impl RequestEvents {
    /// One dataset's outcome, from a body of `body_bytes` (decompressed).
    pub(crate) fn of(outcome: &IngestOutcome, body_bytes: usize) -> Self {
        let mut ev = RequestEvents::default();
        ev.add(outcome);
        ev.body_bytes = body_bytes;
        ev
    }

    pub(crate) fn add(&mut self, outcome: &IngestOutcome) {
        if !self.dataset.is_empty() {
            self.dataset.push(',');
        }
        self.dataset.push_str(&outcome.dataset);
        self.events_in += outcome.events.len();
        self.accepted += outcome.accepted;
        self.sampled_out += outcome.sampled_out;
        for s in &outcome.events {
            if let EventStatus::Rejected { code, .. } = s {
                *self.rejected.entry(code).or_default() += 1;
            }
        }
        self.body_bytes += outcome.body_bytes;
        self.wal_wait += outcome.wal_wait;
    }
}

/// The message of an error answer, left in the response's extensions for the request's event.
#[derive(Debug, Clone)]
pub(crate) struct ErrorMessage(pub(crate) String);

/// One finished ingest request, as the door middleware saw it.
pub(crate) struct RequestReport<'a> {
    pub(crate) door: Door,
    pub(crate) status: u16,
    pub(crate) duration: Duration,
    /// `Content-Length` of the request (the bytes on the wire), when it said.
    pub(crate) wire_bytes: Option<usize>,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) events: Option<&'a RequestEvents>,
    pub(crate) error: Option<&'a str>,
}

/// Request latency buckets, seconds: 1 ms to 10 s (an ack waits for an fsync).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Flush duration buckets, seconds.
const FLUSH_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative); the last one is +Inf.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// `name_bucket{labels,le=...}` lines (cumulative), `name_sum`, `name_count`.
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c;
            let le = self
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

struct Counters {
    requests: BTreeMap<(Door, u16), u64>,
    accepted: BTreeMap<Door, u64>,
    rejected: BTreeMap<(Door, &'static str), u64>,
    wire_bytes: BTreeMap<Door, u64>,
    body_bytes: BTreeMap<Door, u64>,
    latency: BTreeMap<Door, Histogram>,
    wal_wait: Histogram,
    flushes_ok: u64,
    flushes_failed: u64,
    flushed_events: u64,
    parquet_files: u64,
    parquet_bytes: u64,
    flush_duration: Histogram,
}

/// Counters and the queue of self events. One per collector.
pub(crate) struct Telemetry {
    counters: Mutex<Counters>,
    pending: Mutex<Vec<Event>>,
    dropped: AtomicU64,
}

/// Point-in-time values the collector reads when `/metrics` is scraped.
pub(crate) struct Gauges {
    pub(crate) buffered_events: usize,
    pub(crate) buffered_bytes: usize,
    pub(crate) max_buffered_bytes: usize,
    pub(crate) inflight_body_bytes: usize,
    pub(crate) max_inflight_body_bytes: usize,
    pub(crate) datasets: usize,
}

impl Telemetry {
    pub(crate) fn new() -> Self {
        Telemetry {
            counters: Mutex::new(Counters {
                requests: BTreeMap::new(),
                accepted: BTreeMap::new(),
                rejected: BTreeMap::new(),
                wire_bytes: BTreeMap::new(),
                body_bytes: BTreeMap::new(),
                latency: BTreeMap::new(),
                wal_wait: Histogram::new(LATENCY_BUCKETS),
                flushes_ok: 0,
                flushes_failed: 0,
                flushed_events: 0,
                parquet_files: 0,
                parquet_bytes: 0,
                flush_duration: Histogram::new(FLUSH_BUCKETS),
            }),
            pending: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Counts a finished request and queues its wide event (timestamped `now_us`, the end).
    pub(crate) fn record_request(&self, r: &RequestReport<'_>, now_us: i64) {
        {
            let mut c = self.counters.lock().expect("telemetry lock");
            *c.requests.entry((r.door, r.status)).or_default() += 1;
            if let Some(n) = r.wire_bytes {
                *c.wire_bytes.entry(r.door).or_default() += n as u64;
            }
            c.latency
                .entry(r.door)
                .or_insert_with(|| Histogram::new(LATENCY_BUCKETS))
                .observe(r.duration.as_secs_f64());
            if let Some(ev) = r.events {
                *c.accepted.entry(r.door).or_default() += ev.accepted as u64;
                for (code, n) in &ev.rejected {
                    *c.rejected.entry((r.door, code)).or_default() += *n as u64;
                }
                *c.body_bytes.entry(r.door).or_default() += ev.body_bytes as u64;
                if ev.accepted > 0 {
                    c.wal_wait.observe(ev.wal_wait.as_secs_f64());
                }
            }
        }
        self.queue(request_event(r, now_us));
    }

    pub(crate) fn record_flush(&self, result: Result<FlushStats, ()>, took: Duration) {
        let mut c = self.counters.lock().expect("telemetry lock");
        match result {
            Ok(s) => {
                c.flushes_ok += 1;
                c.flushed_events += s.events as u64;
                c.parquet_files += s.files as u64;
                c.parquet_bytes += s.bytes;
            }
            Err(()) => c.flushes_failed += 1,
        }
        c.flush_duration.observe(took.as_secs_f64());
    }

    fn queue(&self, e: Event) {
        let mut p = self.pending.lock().expect("telemetry lock");
        if p.len() < MAX_PENDING {
            p.push(e);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The queued self events, leaving the queue empty.
    pub(crate) fn take_pending(&self) -> Vec<Event> {
        std::mem::take(&mut *self.pending.lock().expect("telemetry lock"))
    }

    pub(crate) fn count_dropped(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Every metric, in the Prometheus text format.
    pub(crate) fn render(&self, g: &Gauges) -> String {
        let c = self.counters.lock().expect("telemetry lock");
        let mut out = String::with_capacity(8 * 1024);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        family(
            &mut out,
            "loupe_ingest_requests_total",
            "counter",
            "Ingest requests answered, by door and HTTP status code.",
        );
        for ((door, code), n) in &c.requests {
            let _ = writeln!(
                out,
                "loupe_ingest_requests_total{{door=\"{}\",code=\"{code}\"}} {n}",
                door.as_str()
            );
        }
        family(
            &mut out,
            "loupe_ingest_events_accepted_total",
            "counter",
            "Valid events acknowledged, by door: made durable, or dropped by a sampler and \
             accounted for by the weights of the kept (loupe_sampling_events_total).",
        );
        for (door, n) in &c.accepted {
            let _ = writeln!(
                out,
                "loupe_ingest_events_accepted_total{{door=\"{}\"}} {n}",
                door.as_str()
            );
        }
        family(
            &mut out,
            "loupe_ingest_events_rejected_total",
            "counter",
            "Events refused, by door and reason (the per-event error code).",
        );
        for ((door, reason), n) in &c.rejected {
            let _ = writeln!(
                out,
                "loupe_ingest_events_rejected_total{{door=\"{}\",reason=\"{reason}\"}} {n}",
                door.as_str()
            );
        }
        family(
            &mut out,
            "loupe_ingest_received_bytes_total",
            "counter",
            "Request body bytes as sent (Content-Length, before decompression), by door.",
        );
        for (door, n) in &c.wire_bytes {
            let _ = writeln!(
                out,
                "loupe_ingest_received_bytes_total{{door=\"{}\"}} {n}",
                door.as_str()
            );
        }
        family(
            &mut out,
            "loupe_ingest_decoded_bytes_total",
            "counter",
            "Request body bytes after decompression, by door.",
        );
        for (door, n) in &c.body_bytes {
            let _ = writeln!(
                out,
                "loupe_ingest_decoded_bytes_total{{door=\"{}\"}} {n}",
                door.as_str()
            );
        }
        family(
            &mut out,
            "loupe_ingest_request_duration_seconds",
            "histogram",
            "Time from a request's arrival to its answer (an ack waits for the fsync), by door.",
        );
        for (door, h) in &c.latency {
            h.render(
                &mut out,
                "loupe_ingest_request_duration_seconds",
                &format!("door=\"{}\"", door.as_str()),
            );
        }
        family(
            &mut out,
            "loupe_wal_commit_wait_seconds",
            "histogram",
            "Time a request's accepted events waited for the write-ahead log's group commit.",
        );
        c.wal_wait
            .render(&mut out, "loupe_wal_commit_wait_seconds", "");
        family(
            &mut out,
            "loupe_flushes_total",
            "counter",
            "Flushes of buffered events to Parquet, by result.",
        );
        let _ = writeln!(
            out,
            "loupe_flushes_total{{result=\"ok\"}} {}\nloupe_flushes_total{{result=\"error\"}} {}",
            c.flushes_ok, c.flushes_failed
        );
        for (name, help, v) in [
            (
                "loupe_flushed_events_total",
                "Events written to Parquet.",
                c.flushed_events,
            ),
            (
                "loupe_parquet_files_written_total",
                "Parquet files written by flushes.",
                c.parquet_files,
            ),
            (
                "loupe_parquet_written_bytes_total",
                "Bytes of Parquet written by flushes.",
                c.parquet_bytes,
            ),
            (
                "loupe_self_events_dropped_total",
                "The collector's own request events dropped (queue full or backpressure).",
                self.dropped.load(Ordering::Relaxed),
            ),
        ] {
            family(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {v}");
        }
        family(
            &mut out,
            "loupe_flush_duration_seconds",
            "histogram",
            "Time one flush of all datasets took.",
        );
        c.flush_duration
            .render(&mut out, "loupe_flush_duration_seconds", "");
        for (name, help, v) in [
            (
                "loupe_buffered_events",
                "Durable events waiting for Parquet, all datasets.",
                g.buffered_events,
            ),
            (
                "loupe_buffered_bytes",
                "Their estimated memory (what collector.max_buffered_bytes bounds).",
                g.buffered_bytes,
            ),
            (
                "loupe_buffered_bytes_limit",
                "collector.max_buffered_bytes: past it ingest answers 429.",
                g.max_buffered_bytes,
            ),
            (
                "loupe_inflight_body_bytes",
                "Request body bytes reserved by requests being read and decoded.",
                g.inflight_body_bytes,
            ),
            (
                "loupe_inflight_body_bytes_limit",
                "collector.max_inflight_body_bytes.",
                g.max_inflight_body_bytes,
            ),
            ("loupe_datasets", "Datasets open in the store.", g.datasets),
        ] {
            family(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {v}");
        }
        out
    }
}

/// The wide event of one ingest request.
fn request_event(r: &RequestReport<'_>, now_us: i64) -> Event {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut e = Event::new()
        .with("timestamp", loupe_event::time::format_timestamp(now_us))
        .with("name", "loupe.ingest")
        .with("service.name", "loupe-collector")
        .with("loupe.door", r.door.as_str())
        .with("http.status_code", i64::from(r.status))
        .with("duration_ms", ms(r.duration))
        .with("error", r.status >= 500);
    if let Some(n) = r.wire_bytes {
        e.insert("bytes", n as i64);
    }
    if let Some(ua) = r.user_agent {
        e.insert("http.user_agent", ua);
    }
    if let Some(msg) = r.error {
        e.insert("error.message", msg);
    }
    if let Some(ev) = r.events {
        if !ev.dataset.is_empty() {
            e.insert("dataset", ev.dataset.as_str());
        }
        e.insert("events_in", ev.events_in as i64);
        e.insert("accepted", ev.accepted as i64);
        e.insert("sampled_out", ev.sampled_out as i64);
        e.insert("rejected", ev.rejected.values().sum::<usize>() as i64);
        for (code, n) in &ev.rejected {
            e.insert(format!("rejected.{code}"), *n as i64);
        }
        e.insert("body_bytes", ev.body_bytes as i64);
        e.insert("wal_wait_ms", ms(ev.wal_wait));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_event::Value;

    #[test]
    fn histogram_buckets_are_cumulative_and_le_inclusive() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.0, 1.5, 3.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"1\"} 2\nx_bucket{a=\"b\",le=\"2\"} 3\n\
             x_bucket{a=\"b\",le=\"+Inf\"} 4\nx_sum{a=\"b\"} 6\nx_count{a=\"b\"} 4\n"
        );
    }

    #[test]
    fn a_request_is_counted_and_becomes_one_wide_event() {
        let t = Telemetry::new();
        let mut ev = RequestEvents::default();
        ev.add(&IngestOutcome {
            dataset: "api".into(),
            accepted: 2,
            rejected: 1,
            sampled_out: 1,
            events: vec![
                EventStatus::Accepted,
                EventStatus::Rejected {
                    code: "too_many_fields",
                    reason: "x".into(),
                },
                EventStatus::Accepted,
            ],
            body_bytes: 300,
            wal_wait: Duration::from_millis(3),
        });
        t.record_request(
            &RequestReport {
                door: Door::Native,
                status: 200,
                duration: Duration::from_millis(5),
                wire_bytes: Some(120),
                user_agent: Some("curl/8"),
                events: Some(&ev),
                error: None,
            },
            1_000,
        );
        let text = t.render(&Gauges {
            buffered_events: 7,
            buffered_bytes: 70,
            max_buffered_bytes: 700,
            inflight_body_bytes: 0,
            max_inflight_body_bytes: 1,
            datasets: 1,
        });
        for line in [
            "loupe_ingest_requests_total{door=\"native\",code=\"200\"} 1",
            "loupe_ingest_events_accepted_total{door=\"native\"} 2",
            "loupe_ingest_events_rejected_total{door=\"native\",reason=\"too_many_fields\"} 1",
            "loupe_ingest_received_bytes_total{door=\"native\"} 120",
            "loupe_ingest_decoded_bytes_total{door=\"native\"} 300",
            "loupe_ingest_request_duration_seconds_bucket{door=\"native\",le=\"0.005\"} 1",
            "loupe_ingest_request_duration_seconds_bucket{door=\"native\",le=\"0.0025\"} 0",
            "loupe_wal_commit_wait_seconds_count 1",
            "loupe_buffered_events 7",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        let events = t.take_pending();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.get("dataset"), Some(&Value::from("api")));
        assert_eq!(e.get("events_in"), Some(&Value::Int(3)));
        assert_eq!(e.get("rejected.too_many_fields"), Some(&Value::Int(1)));
        assert_eq!(e.get("sampled_out"), Some(&Value::Int(1)));
        assert_eq!(e.get("wal_wait_ms"), Some(&Value::Float(3.0)));
        assert_eq!(e.get("error"), Some(&Value::Bool(false)));
        assert!(t.take_pending().is_empty(), "taken once");
    }
}
