//! [`HttpExporter`]: batches wide events off the request path and sends them to the collector.
//!
//! The request thread does one thing: `try_send` into a bounded queue. When the queue is full
//! (the collector is slow or down) the event is dropped and counted, never waited for. A worker
//! thread with its own small runtime batches the queue (by count or age), serialises to NDJSON,
//! compresses with zstd, and POSTs to `/v1/events/{dataset}`, retrying 429, 5xx and connection
//! failures with jittered backoff and honouring `Retry-After`. What it had to drop is reported to
//! the collector as an event of its own (`name = "loupe.sdk.dropped"`), so the loss is visible
//! where the data is.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use loupe_event::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::Exporter;
use super::retry::{Backoff, retry_after};
use crate::wide_event::WideEvent;

/// Name of the event that reports dropped events.
pub const DROPPED_EVENT_NAME: &str = "loupe.sdk.dropped";
/// Field of that event holding how many were dropped since the previous report.
pub const DROPPED_COUNT_FIELD: &str = "loupe.dropped_events";

/// Why an exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("collector URL {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("collector URL {0:?} needs TLS: enable loupe-sdk's `tls` feature")]
    NoTls(String),
    #[error("dataset name {0:?} is invalid: use 1-64 characters from a-z, 0-9, '_' and '-'")]
    BadDataset(String),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("could not start the export thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// Settings of an [`HttpExporter`]; defaults suit a service handling thousands of requests per
/// second.
#[derive(Debug, Clone)]
pub struct HttpExporterBuilder {
    base_url: String,
    dataset: String,
    api_key: Option<String>,
    service: Option<String>,
    queue_capacity: usize,
    batch_max_events: usize,
    batch_max_delay: Duration,
    request_timeout: Duration,
    retry_base: Duration,
    retry_cap: Duration,
    retry_for: Duration,
    shutdown_deadline: Duration,
}

/// Sends wide events to a loupe collector. Cheap to clone; every clone feeds the same queue.
#[derive(Clone)]
pub struct HttpExporter {
    shared: Arc<Shared>,
    tx: mpsc::Sender<WideEvent>,
}

/// Flushes and stops the exporter when dropped (within the shutdown deadline). Keep it alive for
/// as long as the service runs, as with `tracing-appender`'s guard.
pub struct ExporterGuard {
    shared: Arc<Shared>,
    ctl: mpsc::UnboundedSender<Control>,
    stop: watch::Sender<Option<Instant>>,
    deadline: Duration,
    done: Option<std::sync::mpsc::Receiver<()>>,
}

/// Counters of what happened to exported events. Every event handed to the exporter ends in
/// exactly one of `sent`, `rejected`, `dropped_queue_full`, `dropped_failed`, or is `pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportStats {
    /// Acknowledged by the collector (on its disk).
    pub sent: u64,
    /// Refused by the collector as invalid (it answered why; see `last_error`).
    pub rejected: u64,
    /// Dropped because the queue was full, or the exporter was already shut down.
    pub dropped_queue_full: u64,
    /// Dropped after retries ran out, or still unsent at the shutdown deadline.
    pub dropped_failed: u64,
    /// In the queue or in a request being sent.
    pub pending: u64,
    /// NDJSON bytes of the batches the collector answered, before compression.
    pub sent_bytes: u64,
}

#[derive(Default)]
struct Shared {
    enqueued: AtomicU64,
    sent: AtomicU64,
    sent_bytes: AtomicU64,
    rejected: AtomicU64,
    dropped_queue_full: AtomicU64,
    dropped_failed: AtomicU64,
    last_error: std::sync::Mutex<Option<String>>,
}

enum Control {
    /// Send everything queued, then answer (a std channel: the caller blocks on it, the worker
    /// only sends).
    Flush(std::sync::mpsc::Sender<()>),
    Shutdown,
}

impl HttpExporter {
    /// Sends to `base_url` (`http://collector:4318`) into `dataset`.
    pub fn builder(base_url: impl Into<String>, dataset: impl Into<String>) -> HttpExporterBuilder {
        HttpExporterBuilder {
            base_url: base_url.into(),
            dataset: dataset.into(),
            api_key: None,
            service: None,
            queue_capacity: 10_000,
            batch_max_events: 500,
            batch_max_delay: Duration::from_millis(200),
            request_timeout: Duration::from_secs(10),
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(5),
            retry_for: Duration::from_secs(30),
            shutdown_deadline: Duration::from_secs(5),
        }
    }

    pub fn stats(&self) -> ExportStats {
        self.shared.stats()
    }

    /// The collector's last complaint or the last transport error, for diagnosis.
    pub fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().ok().and_then(|e| e.clone())
    }
}

impl Shared {
    fn stats(&self) -> ExportStats {
        let sent = self.sent.load(Ordering::Acquire);
        let rejected = self.rejected.load(Ordering::Acquire);
        let dropped_failed = self.dropped_failed.load(Ordering::Acquire);
        let enqueued = self.enqueued.load(Ordering::Acquire);
        ExportStats {
            sent,
            rejected,
            dropped_queue_full: self.dropped_queue_full.load(Ordering::Acquire),
            dropped_failed,
            pending: enqueued.saturating_sub(sent + rejected + dropped_failed),
            sent_bytes: self.sent_bytes.load(Ordering::Acquire),
        }
    }

    fn set_error(&self, e: String) {
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(e);
        }
    }
}

impl Exporter for HttpExporter {
    fn export(&self, event: WideEvent) {
        match self.tx.try_send(event) {
            Ok(()) => self.shared.enqueued.fetch_add(1, Ordering::AcqRel),
            Err(_) => self
                .shared
                .dropped_queue_full
                .fetch_add(1, Ordering::AcqRel),
        };
    }
}

impl HttpExporterBuilder {
    /// Sent as `Authorization: Bearer <key>`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }
    /// `service.name` of the dropped-events report.
    pub fn service(mut self, name: impl Into<String>) -> Self {
        self.service = Some(name.into());
        self
    }
    /// Events waiting to be sent; past this, new events are dropped and counted. Default 10,000.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n;
        self
    }
    /// Most events per request. Default 500.
    pub fn batch_max_events(mut self, n: usize) -> Self {
        self.batch_max_events = n;
        self
    }
    /// Longest an event waits for its batch to fill. Default 200 ms.
    pub fn batch_max_delay(mut self, d: Duration) -> Self {
        self.batch_max_delay = d;
        self
    }
    /// Timeout of one request. Default 10 s.
    pub fn request_timeout(mut self, d: Duration) -> Self {
        self.request_timeout = d;
        self
    }
    /// Backoff between retries: first ceiling and cap. Defaults 100 ms and 5 s.
    pub fn retry_backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.retry_base = base;
        self.retry_cap = cap;
        self
    }
    /// How long one batch is retried before it is dropped and counted. Default 30 s.
    pub fn retry_for(mut self, d: Duration) -> Self {
        self.retry_for = d;
        self
    }
    /// How long the guard's drop waits to deliver what is queued. Default 5 s.
    pub fn shutdown_deadline(mut self, d: Duration) -> Self {
        self.shutdown_deadline = d;
        self
    }

    /// Starts the export thread.
    pub fn build(self) -> Result<(HttpExporter, ExporterGuard), ExporterError> {
        let base = self.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ExporterError::BadUrl(self.base_url));
        }
        if base.starts_with("https://") && !cfg!(feature = "tls") {
            return Err(ExporterError::NoTls(self.base_url));
        }
        let valid_dataset = !self.dataset.is_empty()
            && self.dataset.len() <= 64
            && self
                .dataset
                .bytes()
                .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
        if !valid_dataset {
            return Err(ExporterError::BadDataset(self.dataset));
        }
        for (n, what) in [
            (self.queue_capacity, "queue_capacity"),
            (self.batch_max_events, "batch_max_events"),
        ] {
            if n == 0 {
                return Err(ExporterError::Zero(what));
            }
        }
        let url = format!("{base}/v1/events/{}", self.dataset);
        let client = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .build()?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = mpsc::channel(self.queue_capacity);
        let (ctl_tx, ctl_rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(None);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let worker = Worker {
            shared: shared.clone(),
            rx,
            ctl: ctl_rx,
            stop: stop_rx,
            client,
            url,
            auth: self.api_key.map(|k| format!("Bearer {k}")),
            service: self.service,
            batch_max_events: self.batch_max_events,
            batch_max_delay: self.batch_max_delay,
            retry_base: self.retry_base,
            retry_cap: self.retry_cap,
            retry_for: self.retry_for,
            dropped_reported: 0,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("loupe-export".into())
            .spawn(move || {
                runtime.block_on(worker.run());
                let _ = done_tx.send(());
            })?;
        Ok((
            HttpExporter {
                shared: shared.clone(),
                tx,
            },
            ExporterGuard {
                shared,
                ctl: ctl_tx,
                stop: stop_tx,
                deadline: self.shutdown_deadline,
                done: Some(done_rx),
            },
        ))
    }
}

impl ExporterGuard {
    /// Sends everything queued now and waits for it, up to `timeout`. Returns the stats after.
    /// Blocks the calling thread: call it from shutdown code, not from a request.
    pub fn flush(&self, timeout: Duration) -> ExportStats {
        let (reply, wait) = std::sync::mpsc::channel();
        if self.ctl.send(Control::Flush(reply)).is_ok() {
            let _ = wait.recv_timeout(timeout);
        }
        self.shared.stats()
    }

    pub fn stats(&self) -> ExportStats {
        self.shared.stats()
    }
}

impl Drop for ExporterGuard {
    fn drop(&mut self) {
        let _ = self.stop.send(Some(Instant::now() + self.deadline));
        let _ = self.ctl.send(Control::Shutdown);
        if let Some(done) = self.done.take() {
            // A little past the deadline: the worker gives up at the deadline itself.
            let _ = done.recv_timeout(self.deadline + Duration::from_millis(500));
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<WideEvent>,
    ctl: mpsc::UnboundedReceiver<Control>,
    stop: watch::Receiver<Option<Instant>>,
    client: reqwest::Client,
    url: String,
    auth: Option<String>,
    service: Option<String>,
    batch_max_events: usize,
    batch_max_delay: Duration,
    retry_base: Duration,
    retry_cap: Duration,
    retry_for: Duration,
    /// Drops already reported to the collector.
    dropped_reported: u64,
}

/// How one send attempt ended.
enum Attempt {
    Done,
    Retry(Option<Duration>),
}

impl Worker {
    async fn run(mut self) {
        let mut batch: Vec<WideEvent> = Vec::with_capacity(self.batch_max_events);
        let mut due: Option<Instant> = None;
        loop {
            tokio::select! {
                biased;
                ctl = self.ctl.recv() => match ctl {
                    Some(Control::Flush(reply)) => {
                        self.drain(&mut batch).await;
                        due = None;
                        let _ = reply.send(());
                    }
                    Some(Control::Shutdown) | None => {
                        self.rx.close();
                        self.drain(&mut batch).await;
                        return;
                    }
                },
                ev = self.rx.recv() => match ev {
                    Some(ev) => {
                        batch.push(ev);
                        due.get_or_insert_with(|| Instant::now() + self.batch_max_delay);
                        if batch.len() >= self.batch_max_events {
                            self.send(&mut batch).await;
                            due = None;
                        }
                    }
                    None => {
                        self.send(&mut batch).await;
                        return;
                    }
                },
                () = sleep_until(due), if due.is_some() => {
                    self.send(&mut batch).await;
                    due = None;
                }
            }
        }
    }

    /// Sends the batch and everything queued behind it.
    async fn drain(&mut self, batch: &mut Vec<WideEvent>) {
        loop {
            while batch.len() < self.batch_max_events {
                match self.rx.try_recv() {
                    Ok(ev) => batch.push(ev),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                return;
            }
            self.send(batch).await;
        }
    }

    fn stopping_at(&self) -> Option<Instant> {
        *self.stop.borrow()
    }

    /// Sends one batch, retrying until it is delivered, refused, or out of time; empties it.
    async fn send(&mut self, batch: &mut Vec<WideEvent>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let mut body = Vec::with_capacity(batch.len() * 1024);
        for ev in batch.drain(..) {
            ev.write_json(&mut body);
            body.push(b'\n');
        }
        let event_bytes = body.len() as u64;
        let dropped = self.shared.dropped_queue_full.load(Ordering::Acquire)
            + self.shared.dropped_failed.load(Ordering::Acquire);
        let report = dropped.saturating_sub(self.dropped_reported);
        if report > 0 {
            self.dropped_event(report).write_json(&mut body);
            body.push(b'\n');
        }
        let body = match zstd::bulk::compress(&body, 1) {
            Ok(b) => bytes::Bytes::from(b),
            Err(e) => {
                self.shared
                    .set_error(format!("compressing a batch failed: {e}"));
                self.shared.dropped_failed.fetch_add(n, Ordering::AcqRel);
                return;
            }
        };
        let give_up = Instant::now() + self.retry_for;
        let mut backoff = Backoff::new(self.retry_base, self.retry_cap);
        loop {
            match self.attempt(reqwest::Body::from(body.clone()), n).await {
                Attempt::Done => {
                    self.shared
                        .sent_bytes
                        .fetch_add(event_bytes, Ordering::AcqRel);
                    if report > 0 {
                        self.dropped_reported += report;
                    }
                    return;
                }
                Attempt::Retry(asked) => {
                    let wait = asked
                        .unwrap_or_else(|| backoff.next_wait())
                        .min(self.retry_for);
                    let until = Instant::now() + wait;
                    let limit = self.stopping_at().map_or(give_up, |s| s.min(give_up));
                    if until > limit {
                        self.shared.dropped_failed.fetch_add(n, Ordering::AcqRel);
                        return;
                    }
                    // Wake early if a shutdown deadline arrives during the wait.
                    let mut stop = self.stop.clone();
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    async fn attempt(&self, body: reqwest::Body, n: u64) -> Attempt {
        let mut req = self
            .client
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/x-ndjson")
            .header(http::header::CONTENT_ENCODING, "zstd")
            .body(body);
        if let Some(auth) = &self.auth {
            req = req.header(http::header::AUTHORIZATION, auth);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.shared
                    .set_error(format!("sending to {}: {e}", self.url));
                return Attempt::Retry(None);
            }
        };
        let status = resp.status();
        let asked = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, SystemTime::now()));
        let text = resp.text().await.unwrap_or_default();
        if status.is_success() || status == http::StatusCode::BAD_REQUEST {
            // Per-event outcome: count the refusals among our events (the dropped report, if
            // any, is last and not ours to count).
            let refused = match refused_events(&text, n) {
                Some((r, reason)) => {
                    if r > 0 {
                        self.shared.set_error(reason);
                    }
                    r
                }
                // An answer we cannot read: a 2xx delivered everything, a 400 nothing.
                None if status.is_success() => 0,
                None => {
                    self.shared.set_error(text.clone());
                    n
                }
            };
            self.shared.rejected.fetch_add(refused, Ordering::AcqRel);
            self.shared.sent.fetch_add(n - refused, Ordering::AcqRel);
            return Attempt::Done;
        }
        self.shared
            .set_error(format!("{} answered {status}: {}", self.url, text.trim()));
        if status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            return Attempt::Retry(asked);
        }
        // Any other 4xx (unknown dataset, bad key, body too large) will not get better by
        // sending it again.
        self.shared.rejected.fetch_add(n, Ordering::AcqRel);
        Attempt::Done
    }

    fn dropped_event(&self, count: u64) -> WideEvent {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let mut fields = vec![
            (
                "timestamp".into(),
                Value::Str(loupe_event::time::format_timestamp(now)),
            ),
            ("name".into(), Value::from(DROPPED_EVENT_NAME)),
            (DROPPED_COUNT_FIELD.into(), Value::from(count)),
        ];
        if let Some(s) = &self.service {
            fields.push(("service.name".into(), Value::from(s.as_str())));
        }
        WideEvent::from_fields(fields)
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// From the collector's answer (`{"events": [{"status": "accepted"}, {"status": "rejected",
/// "reason": ...}]}`), how many of the first `n` events were refused, and the first reason.
fn refused_events(text: &str, n: u64) -> Option<(u64, String)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let events = v.get("events")?.as_array()?;
    let mut refused = 0;
    let mut reason = String::new();
    for e in events.iter().take(usize::try_from(n).unwrap_or(usize::MAX)) {
        if e.get("status").and_then(|s| s.as_str()) == Some("rejected") {
            refused += 1;
            if reason.is_empty() {
                reason = e
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .unwrap_or("")
                    .to_owned();
            }
        }
    }
    Some((refused, reason))
}
