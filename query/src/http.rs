//! `POST /api/v1/outliers`: what the selected events have in common (see `outliers`).
//! `POST /api/v1/sql`: read-only SQL over HTTP. JSON rows back, or an Arrow IPC stream when the
//! request says `Accept: application/vnd.apache.arrow.stream` (or `?format=arrow`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use crate::QueryEngine;
use crate::error::Error;
use crate::output::{ARROW_STREAM, arrow_ipc, response_json};

/// Most rows one HTTP answer carries; the answer says `"truncated": true` past it.
pub const MAX_HTTP_ROWS: usize = 100_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SqlParams {
    /// `json` (the default) or `arrow`.
    format: Option<String>,
}

pub fn router(engine: QueryEngine) -> Router {
    Router::new()
        .route("/api/v1/sql", post(run_sql))
        .route("/api/v1/outliers", post(run_outliers))
        .with_state(engine)
}

/// `POST /api/v1/outliers`: the body is an [`crate::outliers::request::OutliersRequest`];
/// the answer is [`crate::outliers::analyze::Report::to_json`].
async fn run_outliers(State(engine): State<QueryEngine>, body: Bytes) -> Response {
    let request: crate::outliers::request::OutliersRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected {{\"dataset\", \"where\" or \"above\", and optionally \"baseline\", \"since\", \"until\", \"top\"}}: {e}"
                ),
            );
        }
    };
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    let report = match engine.outliers_question(&request, now_us).await {
        Ok(q) => engine.outliers(&q).await,
        Err(e) => Err(e),
    };
    match report {
        Ok(r) => axum::Json(r.to_json()).into_response(),
        Err(e) => query_error(&e),
    }
}

/// The body is `{"sql": "..."}` (JSON) or the SQL text itself (any other content type).
async fn run_sql(
    State(engine): State<QueryEngine>,
    params: Result<Query<SqlParams>, QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(Query(params)) = params else {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown query parameter: the only one is format=json|arrow",
        );
    };
    let arrow = match params.format.as_deref() {
        Some("arrow") => true,
        Some("json") => false,
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("format={other}: expected json or arrow"),
            );
        }
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains(ARROW_STREAM)),
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let sql = if is_json {
        match serde_json::from_slice::<SqlRequest>(&body) {
            Ok(r) => r.sql,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("expected {{\"sql\": \"...\"}}: {e}"),
                );
            }
        }
    } else {
        match std::str::from_utf8(&body) {
            Ok(s) => s.to_owned(),
            Err(_) => return error(StatusCode::BAD_REQUEST, "the SQL text is not UTF-8"),
        }
    };
    if sql.trim().is_empty() {
        return error(StatusCode::BAD_REQUEST, "no SQL in the request body");
    }
    let out = match engine.sql(&sql, MAX_HTTP_ROWS).await {
        Ok(out) => out,
        Err(e) => return query_error(&e),
    };
    let result = if arrow {
        arrow_ipc(&out).map(|body| {
            (
                [
                    (header::CONTENT_TYPE, ARROW_STREAM),
                    (
                        header::HeaderName::from_static("x-loupe-truncated"),
                        if out.truncated { "true" } else { "false" },
                    ),
                ],
                body,
            )
                .into_response()
        })
    } else {
        response_json(&out)
            .map(|body| ([(header::CONTENT_TYPE, "application/json")], body).into_response())
    };
    result.unwrap_or_else(|e| query_error(&e))
}

fn query_error(e: &Error) -> Response {
    error(e.status(), &e.to_string())
}

fn error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}
