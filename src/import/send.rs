//! The sending side of `loupe ingest`: a chunk's events into the data directory (the
//! collector's Rust API) or to a running server (its native door, zstd NDJSON), one status
//! per event back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use loupe_collector::{Collector, Encoding, Error, EventStatus};
use loupe_event::{BodyError, BodyFormat};
use serde::Deserialize;

use super::read::Chunk;

/// How long one chunk may wait, in all, on a collector that is at its memory bound.
const RETRY_BUDGET: Duration = Duration::from_secs(120);
/// Longest single wait, whatever `Retry-After` says.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// One event's fate, from either kind of sink: the shape of the native door's answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub(super) enum Status {
    Accepted,
    Rejected { code: String, reason: String },
}

impl From<EventStatus> for Status {
    fn from(s: EventStatus) -> Self {
        match s {
            EventStatus::Accepted => Status::Accepted,
            EventStatus::Rejected { code, reason } => Status::Rejected {
                code: code.to_owned(),
                reason,
            },
        }
    }
}

/// The answer to one body.
enum Reply {
    Statuses(Vec<Status>),
    /// Over a body or event-count limit: to be split and sent again.
    TooLarge(String),
}

/// What sending a chunk came to.
pub(super) struct Sent {
    pub(super) statuses: Vec<Status>,
    /// Times the collector was busy and the chunk was sent again.
    pub(super) retries: u32,
}

/// Where chunks go. Cheap to clone.
#[derive(Clone)]
pub(super) enum Sink {
    Dir {
        collector: Collector,
        dataset: String,
        flusher: Arc<tokio::task::JoinHandle<()>>,
    },
    Url {
        client: reqwest::Client,
        endpoint: String,
        api_key: Option<String>,
    },
}

impl Sink {
    /// Into an open collector, flushing in the background as `loupe serve` does.
    pub(super) fn dir(collector: Collector, dataset: &str) -> Self {
        let flusher = Arc::new(collector.spawn_background_flush());
        Sink::Dir {
            collector,
            dataset: dataset.to_owned(),
            flusher,
        }
    }

    pub(super) fn url(base: &str, dataset: &str, api_key: Option<String>) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") {
            bail!(
                "--url must start with http:// (for example http://127.0.0.1:4318), got {base:?}"
            );
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // A request waits for the WAL's fsync, and may queue behind others for room.
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("loupe-ingest/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sink::Url {
            client,
            endpoint: format!("{base}/v1/events/{dataset}"),
            api_key: api_key.filter(|k| !k.is_empty()),
        })
    }

    /// Sends the chunk's events and returns one status per event. A body the collector finds
    /// too large is split in halves until it fits; a single line still too large is rejected.
    pub(super) async fn send(&self, chunk: &Chunk) -> anyhow::Result<Sent> {
        let mut sent = Sent {
            statuses: Vec::with_capacity(chunk.lines.len()),
            retries: 0,
        };
        // Ranges of events still to send, the next one last.
        let mut todo = Vec::with_capacity(4);
        todo.push(0..chunk.lines.len());
        while let Some(range) = todo.pop() {
            match self
                .send_body(chunk.body(range.clone()), &mut sent.retries)
                .await?
            {
                Reply::Statuses(s) if s.len() == range.len() => sent.statuses.extend(s),
                Reply::Statuses(s) => bail!(
                    "the collector answered {} statuses for {} events ({}, lines {} to {})",
                    s.len(),
                    range.len(),
                    chunk.file.name,
                    chunk.lines[range.start],
                    chunk.lines[range.end - 1]
                ),
                Reply::TooLarge(reason) if range.len() == 1 => {
                    sent.statuses.push(Status::Rejected {
                        code: "too_large".to_owned(),
                        reason,
                    });
                }
                Reply::TooLarge(_) => {
                    let mid = range.start + range.len() / 2;
                    todo.push(mid..range.end);
                    todo.push(range.start..mid);
                }
            }
        }
        Ok(sent)
    }

    async fn send_body(&self, body: &[u8], retries: &mut u32) -> anyhow::Result<Reply> {
        match self {
            Sink::Dir {
                collector, dataset, ..
            } => send_dir(collector, dataset, body, retries).await,
            Sink::Url {
                client,
                endpoint,
                api_key,
            } => send_url(client, endpoint, api_key.as_deref(), body, retries).await,
        }
    }

    /// In the data-dir mode: everything accepted is written to Parquet, and the collector stops.
    pub(super) async fn close(&self) -> anyhow::Result<()> {
        if let Sink::Dir {
            collector, flusher, ..
        } = self
        {
            flusher.abort();
            let flushed = collector
                .flush_all()
                .await
                .context("writing the imported events to Parquet");
            collector.shutdown().await;
            flushed?;
        }
        Ok(())
    }
}

async fn send_dir(
    collector: &Collector,
    dataset: &str,
    body: &[u8],
    retries: &mut u32,
) -> anyhow::Result<Reply> {
    let started = Instant::now();
    loop {
        let r = collector
            .ingest_body(dataset, body, Encoding::Identity, BodyFormat::Ndjson)
            .await;
        match r {
            Ok(outcome) => {
                let statuses = outcome.events.into_iter().map(Status::from).collect();
                return Ok(Reply::Statuses(statuses));
            }
            // The buffers are at their bound. This process owns the collector: it flushes them
            // itself rather than wait for the background flush.
            Err(Error::Overloaded { .. }) if started.elapsed() < RETRY_BUDGET => {
                *retries += 1;
                collector
                    .flush_all()
                    .await
                    .context("flushing buffered events to make room")?;
            }
            Err(e @ Error::Body(BodyError::TooLarge { .. } | BodyError::TooManyEvents { .. })) => {
                return Ok(Reply::TooLarge(e.to_string()));
            }
            Err(e) => return Err(e).context("writing to the data directory"),
        }
    }
}

/// The native door's answer: per-event statuses ...
#[derive(Deserialize)]
struct WireOutcome {
    events: Vec<Status>,
}

/// ... or an error.
#[derive(Deserialize)]
struct WireError {
    error: String,
}

async fn send_url(
    client: &reqwest::Client,
    endpoint: &str,
    api_key: Option<&str>,
    body: &[u8],
    retries: &mut u32,
) -> anyhow::Result<Reply> {
    use reqwest::StatusCode;
    use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
    let compressed = zstd::bulk::compress(body, 1).context("compressing a chunk")?;
    let started = Instant::now();
    loop {
        let mut req = client
            .post(endpoint)
            .header(CONTENT_TYPE, "application/x-ndjson")
            .header(CONTENT_ENCODING, "zstd")
            .body(compressed.clone());
        if let Some(k) = api_key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.map_err(|e| {
            let hint = if e.is_connect() {
                " (is `loupe serve` running there?)"
            } else if e.is_timeout() {
                " (timed out: the events of this request may or may not have been stored)"
            } else {
                ""
            };
            anyhow::Error::new(e).context(format!("sending to {endpoint}{hint}"))
        })?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            // Refused before the body was taken in: nothing of it was stored, so it is safe to
            // send again.
            let wait = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .min(MAX_RETRY_WAIT);
            if started.elapsed() + wait > RETRY_BUDGET {
                let msg = error_text(&resp.bytes().await.unwrap_or_default());
                bail!(
                    "{endpoint} still answers {status} after {} s of retries: {msg}",
                    started.elapsed().as_secs()
                );
            }
            *retries += 1;
            tokio::time::sleep(wait).await;
            continue;
        }
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("reading the answer of {endpoint}"))?;
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Ok(Reply::TooLarge(error_text(&bytes)));
        }
        // 400 comes with the same per-event body when every event was rejected.
        if (status == StatusCode::OK || status == StatusCode::BAD_REQUEST)
            && let Ok(o) = serde_json::from_slice::<WireOutcome>(&bytes)
        {
            return Ok(Reply::Statuses(o.events));
        }
        let msg = error_text(&bytes);
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            bail!(
                "{endpoint} refused the request ({status}): {msg}. Pass an ingest key for \
                 this dataset with --api-key or LOUPE_API_KEY"
            );
        }
        bail!("{endpoint} answered {status}: {msg}");
    }
}

/// The `error` of a JSON error answer, or the start of the answer itself.
fn error_text(bytes: &[u8]) -> String {
    match serde_json::from_slice::<WireError>(bytes) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned(),
    }
}
