//! The collector's HTTP doors: the native `POST /v1/events/{dataset}`, and the Honeycomb event
//! API (`POST /1/events/{dataset}`, `POST /1/batch/{dataset}`; see [`crate::honeycomb`]), and
//! OTLP/HTTP (`POST /v1/traces`, `POST /v1/logs`; see [`crate::otlp`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::Collector;
use crate::error::Error;
use crate::ingest::{Encoding, EventStatus, decompress, format_from_content_type};
use crate::{honeycomb, otlp};

/// Routes for ingest. Merge them into the server's router.
pub fn router(collector: Collector) -> Router {
    // The compressed body may not be larger than the decompressed limit either.
    let limit = collector.config().limits.max_body_bytes;
    Router::new()
        .route("/v1/events/{dataset}", post(ingest_native))
        .route("/1/events/{dataset}", post(ingest_honeycomb_event))
        .route("/1/batch/{dataset}", post(ingest_honeycomb_batch))
        .route("/v1/traces", post(ingest_otlp_traces))
        .route("/v1/logs", post(ingest_otlp_logs))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(collector)
}

/// `POST /v1/events/{dataset}`: a JSON object, a JSON array of objects, or NDJSON; gzip or
/// zstd bodies. Answers 200 with one status per event when at least one event was accepted
/// (or the body held none), 400 with the same body when every event was rejected.
async fn ingest_native(
    State(collector): State<Collector>,
    Path(dataset): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            return body_rejection(&rejection, collector.config().limits.max_body_bytes);
        }
    };
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let result = async {
        let encoding = Encoding::from_header(header(header::CONTENT_ENCODING))?;
        let format = format_from_content_type(header(header::CONTENT_TYPE))?;
        collector
            .ingest_body(&dataset, &body, encoding, format)
            .await
    }
    .await;
    match result {
        Ok(outcome) => {
            let status = if outcome.accepted == 0 && outcome.rejected > 0 {
                axum::http::StatusCode::BAD_REQUEST
            } else {
                axum::http::StatusCode::OK
            };
            (status, axum::Json(outcome)).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// The body of a Honeycomb or OTLP request, decompressed per `Content-Encoding` and within the
/// body limit; an error answer when it cannot be had.
fn read_body(
    body: Result<Bytes, BytesRejection>,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Box<Response>> {
    let body = body.map_err(|rejection| Box::new(body_rejection(&rejection, limit)))?;
    let encoding = Encoding::from_header(header(headers, header::CONTENT_ENCODING.as_str()))
        .map_err(|e| Box::new(error_response(&e)))?;
    // An identity body stays the request's own buffer; only a compressed one is new bytes.
    let decompressed = match decompress(&body, encoding, limit) {
        Ok(std::borrow::Cow::Borrowed(_)) => None,
        Ok(std::borrow::Cow::Owned(v)) => Some(Bytes::from(v)),
        Err(e) => return Err(Box::new(error_response(&e))),
    };
    Ok(decompressed.unwrap_or(body))
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
}

/// `POST /1/batch/{dataset}`: answers 200 with Honeycomb's per-event statuses (`202`, or `400`
/// with the reason), in request order.
async fn ingest_honeycomb_batch(
    State(collector): State<Collector>,
    Path(dataset): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let limits = collector.config().limits;
    let body = match read_body(body, &headers, limits.max_body_bytes) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let result = async {
        let events = honeycomb::decode_batch(&body, &limits)?;
        collector
            .ingest_events(&honeycomb::dataset_name(&dataset), events)
            .await
    }
    .await;
    match result {
        Ok(outcome) => {
            let statuses: Vec<serde_json::Value> = outcome
                .events
                .iter()
                .map(|s| match s {
                    EventStatus::Accepted => json!({ "status": 202 }),
                    EventStatus::Rejected { reason, .. } => {
                        json!({ "status": 400, "error": reason })
                    }
                })
                .collect();
            axum::Json(statuses).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// `POST /1/events/{dataset}`: one event; 200 with an empty body when it is stored, 400 with
/// the reason when it is refused.
async fn ingest_honeycomb_event(
    State(collector): State<Collector>,
    Path(dataset): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let limits = collector.config().limits;
    let body = match read_body(body, &headers, limits.max_body_bytes) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let result = async {
        let event = honeycomb::single_event(
            &body,
            &limits,
            header(&headers, honeycomb::EVENT_TIME_HEADER),
            header(&headers, honeycomb::SAMPLERATE_HEADER),
        );
        collector
            .ingest_events(&honeycomb::dataset_name(&dataset), [event])
            .await
    }
    .await;
    match result {
        Ok(outcome) => match outcome.events.first() {
            Some(EventStatus::Rejected { reason, .. }) => (
                axum::http::StatusCode::BAD_REQUEST,
                axum::Json(json!({ "error": reason })),
            )
                .into_response(),
            _ => axum::http::StatusCode::OK.into_response(),
        },
        Err(e) => error_response(&e),
    }
}

#[derive(Clone, Copy)]
enum Signal {
    Traces,
    Logs,
}

async fn ingest_otlp_traces(
    State(collector): State<Collector>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    ingest_otlp(collector, headers, body, Signal::Traces).await
}

async fn ingest_otlp_logs(
    State(collector): State<Collector>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    ingest_otlp(collector, headers, body, Signal::Logs).await
}

/// OTLP/HTTP: 200 with an `Export*ServiceResponse` in the request's encoding, carrying OTLP's
/// partial success when some records were refused; 4xx/5xx with a JSON error otherwise.
async fn ingest_otlp(
    collector: Collector,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    signal: Signal,
) -> Response {
    let limits = collector.config().limits;
    let body = match read_body(body, &headers, limits.max_body_bytes) {
        Ok(b) => b,
        Err(resp) => return *resp,
    };
    let content_type = header(&headers, header::CONTENT_TYPE.as_str());
    let Some(format) = otlp::OtlpFormat::from_content_type(content_type) else {
        return error_response(&Error::UnsupportedOtlpContentType {
            found: content_type.unwrap_or("(none)").to_owned(),
        });
    };
    let result = async {
        let dataset = header(&headers, otlp::DATASET_HEADER);
        let by_dataset = match signal {
            Signal::Traces => otlp::decode_traces(&body, format, dataset, &limits)?,
            Signal::Logs => otlp::decode_logs(&body, format, dataset, &limits)?,
        };
        let mut rejected = 0u64;
        let mut reason = String::new();
        for (dataset, events) in by_dataset {
            let outcome = collector.ingest_events(&dataset, events).await?;
            rejected += outcome.rejected as u64;
            if reason.is_empty()
                && let Some(EventStatus::Rejected { reason: r, .. }) = outcome
                    .events
                    .iter()
                    .find(|s| matches!(s, EventStatus::Rejected { .. }))
            {
                reason = format!("{dataset}: {r}");
            }
        }
        Ok::<_, Error>((rejected, reason))
    }
    .await;
    match result {
        Ok((rejected, reason)) => {
            let (bytes, content_type) = match signal {
                Signal::Traces => otlp::traces_response(format, rejected, &reason),
                Signal::Logs => otlp::logs_response(format, rejected, &reason),
            };
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        Err(e) => error_response(&e),
    }
}

/// The body could not be read: too large (over the limit before decompression), or the
/// connection failed mid-body. Same JSON shape as every other error.
fn body_rejection(rejection: &BytesRejection, limit: usize) -> Response {
    let status = rejection.status();
    let msg = if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        format!("request body is over the limit of {limit} bytes (collector.limits.max_body_bytes)")
    } else {
        format!("could not read the request body: {}", rejection.body_text())
    };
    (status, axum::Json(json!({ "error": msg }))).into_response()
}

/// An error as JSON `{"error": "..."}` with its status and, when it passes, `Retry-After`.
pub fn error_response(e: &Error) -> Response {
    let mut resp = (e.status(), axum::Json(json!({ "error": e.to_string() }))).into_response();
    if let Some(s) = e.retry_after_s() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}
