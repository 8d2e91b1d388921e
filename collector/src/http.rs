//! The collector's HTTP doors: the native `POST /v1/events/{dataset}`, and the Honeycomb event
//! API (`POST /1/events/{dataset}`, `POST /1/batch/{dataset}`; see [`crate::honeycomb`]), and
//! OTLP/HTTP (`POST /v1/traces`, `POST /v1/logs`; see [`crate::otlp`]).

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::Collector;
use crate::error::Error;
use crate::ingest::{Encoding, EventStatus, decompress, format_from_content_type};
use crate::telemetry::{Door, ErrorMessage, RequestEvents, RequestReport};
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
        .route_layer(middleware::from_fn_with_state(collector.clone(), door))
        .with_state(collector)
}

/// How many times larger a compressed body is assumed to be once decompressed.
const COMPRESSION_ESTIMATE: usize = 10;

/// Every ingest door's way in: admission, then the handler, then the request's telemetry (its
/// metrics and its wide event in `_loupe`).
async fn door(State(collector): State<Collector>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let door = Door::of_path(request.uri().path());
    let declared = header(request.headers(), header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let user_agent = header(request.headers(), header::USER_AGENT.as_str()).map(str::to_owned);
    let response = admit(&collector, request, declared, next).await;
    if let Some(door) = door {
        collector.record_request(&RequestReport {
            door,
            status: response.status().as_u16(),
            duration: started.elapsed(),
            wire_bytes: declared,
            user_agent: user_agent.as_deref(),
            events: response.extensions().get::<RequestEvents>(),
            error: response
                .extensions()
                .get::<ErrorMessage>()
                .map(|m| m.0.as_str()),
        });
    }
    response
}

/// Backpressure at the door, before a body is read: a request is refused with 429 and
/// `Retry-After` while the buffers stay at their bound (after waiting up to
/// `admission_wait_ms` for a flush to make room), and otherwise waits for room to hold its
/// body (its `Content-Length`, or the body limit when it does not say) while it is decoded.
async fn admit(
    collector: &Collector,
    request: Request,
    declared: Option<usize>,
    next: Next,
) -> Response {
    let max = collector.config().limits.max_body_bytes;
    if let Err(e) = collector.admit_waiting().await {
        drain(request.into_body(), max).await;
        return error_response(&e);
    }
    // A compressed body is counted at the ratio wide-event NDJSON typically compresses by
    // (the SDK's zstd batches: about 20x; see the README's demo figures), less for safety.
    // It is an estimate: a bomb still stops at the body limit when it is decompressed.
    let compressed = header(request.headers(), header::CONTENT_ENCODING.as_str())
        .is_some_and(|v| !v.trim().eq_ignore_ascii_case("identity"));
    let len = match declared {
        Some(n) if compressed => n.saturating_mul(COMPRESSION_ESTIMATE).min(max),
        Some(n) => n.min(max),
        None => max,
    };
    let _room = collector.reserve_body(len).await;
    next.run(request).await
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
            let events = RequestEvents::of(&outcome, outcome.body_bytes);
            with_events((status, axum::Json(outcome)).into_response(), events)
        }
        Err(e) => error_response(&e),
    }
}

/// Reads and discards a refused request's body (up to `limit` bytes), a chunk at a time. An
/// answer sent while the client is still writing makes the server close the connection, and
/// most clients then see a broken pipe instead of the 429 and its `Retry-After`.
async fn drain(mut body: axum::body::Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen > limit {
            break;
        }
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
            let events = RequestEvents::of(&outcome, body.len());
            with_events(axum::Json(statuses).into_response(), events)
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
        Ok(outcome) => {
            let response = match outcome.events.first() {
                Some(EventStatus::Rejected { reason, .. }) => (
                    axum::http::StatusCode::BAD_REQUEST,
                    axum::Json(json!({ "error": reason })),
                )
                    .into_response(),
                _ => axum::http::StatusCode::OK.into_response(),
            };
            with_events(response, RequestEvents::of(&outcome, body.len()))
        }
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
        let mut seen = RequestEvents {
            body_bytes: body.len(),
            ..RequestEvents::default()
        };
        for (dataset, events) in by_dataset {
            let outcome = collector.ingest_events(&dataset, events).await?;
            seen.add(&outcome);
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
        Ok::<_, Error>((rejected, reason, seen))
    }
    .await;
    match result {
        Ok((rejected, reason, seen)) => {
            let (bytes, content_type) = match signal {
                Signal::Traces => otlp::traces_response(format, rejected, &reason),
                Signal::Logs => otlp::logs_response(format, rejected, &reason),
            };
            with_events(
                ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
                seen,
            )
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
    let mut resp = (status, axum::Json(json!({ "error": msg }))).into_response();
    resp.extensions_mut().insert(ErrorMessage(msg));
    resp
}

/// Leaves what the handler learned about the request's events for the door's telemetry.
fn with_events(mut response: Response, events: RequestEvents) -> Response {
    response.extensions_mut().insert(events);
    response
}

/// An error as JSON `{"error": "..."}` with its status and, when it passes, `Retry-After`.
pub fn error_response(e: &Error) -> Response {
    let msg = e.to_string();
    let mut resp = (e.status(), axum::Json(json!({ "error": msg }))).into_response();
    resp.extensions_mut().insert(ErrorMessage(msg));
    if let Some(s) = e.retry_after_s() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    resp
}
