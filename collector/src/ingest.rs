//! From request bytes to durable events: decompress, decode, validate, sample, append.
//!
//! Each step keeps per-event outcomes, so one bad event never sinks its neighbours.

use std::io::Read;

use loupe_event::{BodyFormat, Event, EventError, Limits, ValidEvent, for_each_event};
use loupe_store::DatasetName;
use serde::Serialize;

use crate::Collector;
use crate::error::{Error, Result};

/// How the request body is compressed (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// Parses a `Content-Encoding` header value.
    pub fn from_header(value: Option<&str>) -> Result<Self> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "identity") => Ok(Encoding::Identity),
            Some("gzip" | "x-gzip") => Ok(Encoding::Gzip),
            // Honeycomb's API documents "zst" as well.
            Some("zstd" | "zst") => Ok(Encoding::Zstd),
            Some(other) => Err(Error::UnsupportedEncoding {
                found: other.to_owned(),
            }),
        }
    }
}

/// Parses a `Content-Type` header value into the body format. A missing header means "look at
/// the bytes".
pub fn format_from_content_type(value: Option<&str>) -> Result<BodyFormat> {
    let Some(v) = value else {
        return Ok(BodyFormat::Auto);
    };
    let mime = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "text/json" | "text/plain" | "" => Ok(BodyFormat::Auto),
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/jsonlines"
        | "application/x-jsonlines" => Ok(BodyFormat::Ndjson),
        _ => Err(Error::UnsupportedContentType {
            found: v.to_owned(),
        }),
    }
}

/// Decompresses `body`, refusing to produce more than `limit` bytes (a decompression bomb is an
/// error, not an allocation).
pub fn decompress(
    body: &[u8],
    encoding: Encoding,
    limit: usize,
) -> Result<std::borrow::Cow<'_, [u8]>> {
    let (name, reader): (&'static str, Box<dyn Read + '_>) = match encoding {
        Encoding::Identity => return Ok(std::borrow::Cow::Borrowed(body)),
        Encoding::Gzip => ("gzip", Box::new(flate2::read::MultiGzDecoder::new(body))),
        Encoding::Zstd => (
            "zstd",
            Box::new(zstd::stream::read::Decoder::with_buffer(body).map_err(|e| {
                Error::Decompress {
                    encoding: "zstd",
                    reason: e.to_string(),
                }
            })?),
        ),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Decompress {
            encoding: name,
            reason: e.to_string(),
        })?;
    if out.len() > limit {
        return Err(loupe_event::BodyError::TooLarge {
            len: out.len(),
            limit,
        }
        .into());
    }
    Ok(std::borrow::Cow::Owned(out))
}

/// One event's outcome, in request order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum EventStatus {
    Accepted,
    Rejected { code: &'static str, reason: String },
}

/// The answer to an ingest request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestOutcome {
    pub dataset: String,
    /// Valid events taken: stored, or dropped by the dataset's sampler and accounted for by
    /// the weights of the events it kept.
    pub accepted: usize,
    pub rejected: usize,
    /// Of the accepted, how many the sampler dropped (0 for a dataset that is not sampled).
    pub sampled_out: usize,
    /// One entry per event in the body, in order.
    pub events: Vec<EventStatus>,
    /// Bytes of the body after decompression (0 when the events came decoded).
    #[serde(skip)]
    pub body_bytes: usize,
    /// Time spent waiting for the WAL's group commit.
    #[serde(skip)]
    pub wal_wait: std::time::Duration,
}

impl Collector {
    /// Ingests a request body into `dataset`. Returns once every accepted event is durable.
    pub async fn ingest_body(
        &self,
        dataset: &str,
        body: &[u8],
        encoding: Encoding,
        format: BodyFormat,
    ) -> Result<IngestOutcome> {
        let name = DatasetName::new(dataset).map_err(Error::InvalidDataset)?;
        let limits = self.config().limits;
        let body = decompress(body, encoding, limits.max_body_bytes)?;
        let mut intake = Intake::new(limits, self.now_us());
        // Validate each event as it is parsed, while it is still in cache.
        for_each_event(&body, format, &limits, |r| intake.take(r))?;
        let mut outcome = intake.commit(self, name).await?;
        outcome.body_bytes = body.len();
        Ok(outcome)
    }

    /// Ingests events another door decoded (the Honeycomb API, OTLP): validated, sampled and
    /// appended exactly like the native door's. Returns once every accepted event is durable.
    pub async fn ingest_events(
        &self,
        dataset: &str,
        events: impl IntoIterator<Item = std::result::Result<Event, EventError>>,
    ) -> Result<IngestOutcome> {
        let name = DatasetName::new(dataset).map_err(Error::InvalidDataset)?;
        let mut intake = Intake::new(self.config().limits, self.now_us());
        events.into_iter().for_each(|r| intake.take(r));
        intake.commit(self, name).await
    }
}

/// One request's events on their way in: each validated or refused on its own.
struct Intake {
    limits: Limits,
    now_us: i64,
    statuses: Vec<EventStatus>,
    accepted: Vec<ValidEvent>,
}

impl Intake {
    fn new(limits: Limits, now_us: i64) -> Self {
        Intake {
            limits,
            now_us,
            statuses: Vec::new(),
            accepted: Vec::new(),
        }
    }

    fn take(&mut self, r: std::result::Result<Event, EventError>) {
        match r.and_then(|e| e.validate(&self.limits, self.now_us)) {
            Ok(v) => {
                self.accepted.push(v);
                self.statuses.push(EventStatus::Accepted);
            }
            Err(e) => self.statuses.push(rejected(&e)),
        }
    }

    async fn commit(mut self, collector: &Collector, name: DatasetName) -> Result<IngestOutcome> {
        let n = self.accepted.len();
        // Between validation and the WAL, so dropped events never cost a write; kept events
        // carry their weight. Decided at the receive time, not the events' own timestamps.
        let sampled = collector
            .inner
            .sampling
            .apply(&name, &mut self.accepted, self.now_us);
        let started = std::time::Instant::now();
        collector.append_durable(&name, self.accepted).await?;
        Ok(IngestOutcome {
            dataset: name.to_string(),
            accepted: n,
            rejected: self.statuses.len() - n,
            sampled_out: sampled.dropped,
            events: self.statuses,
            body_bytes: 0,
            wal_wait: started.elapsed(),
        })
    }
}

fn rejected(e: &EventError) -> EventStatus {
    EventStatus::Rejected {
        code: e.code(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn content_types() {
        assert_eq!(format_from_content_type(None).unwrap(), BodyFormat::Auto);
        assert_eq!(
            format_from_content_type(Some("application/json; charset=utf-8")).unwrap(),
            BodyFormat::Auto
        );
        assert_eq!(
            format_from_content_type(Some("application/x-ndjson")).unwrap(),
            BodyFormat::Ndjson
        );
        let err = format_from_content_type(Some("application/x-www-form-urlencoded")).unwrap_err();
        assert!(err.to_string().contains("Content-Type"), "{err}");
    }

    #[test]
    fn encodings() {
        assert_eq!(Encoding::from_header(Some("GZIP")).unwrap(), Encoding::Gzip);
        assert_eq!(Encoding::from_header(None).unwrap(), Encoding::Identity);
        assert!(matches!(
            Encoding::from_header(Some("br")),
            Err(Error::UnsupportedEncoding { .. })
        ));
    }

    #[test]
    fn decompression_round_trips_and_is_bounded() {
        let data = b"{\"a\":1}\n".repeat(1000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&data).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            &*decompress(&gz, Encoding::Gzip, 1 << 20).unwrap(),
            &data[..]
        );
        let zs = zstd::encode_all(&data[..], 3).unwrap();
        assert_eq!(
            &*decompress(&zs, Encoding::Zstd, 1 << 20).unwrap(),
            &data[..]
        );
        // a bomb: 8000 bytes out with a 100-byte limit
        assert!(matches!(
            decompress(&zs, Encoding::Zstd, 100),
            Err(Error::Body(loupe_event::BodyError::TooLarge { .. }))
        ));
        // garbage is a clear error
        let err = decompress(b"not gzip", Encoding::Gzip, 100).unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
    }
}
