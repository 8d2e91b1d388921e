//! `GET /api/v1/slo`: every SLO's status. `GET /api/v1/slo/{name}?window=2h,1d`: one SLO's,
//! with burn rates over the windows asked for as well as the policy's.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use super::duration::Shorthand;
use super::report::to_json;
use super::service::SloService;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OneParams {
    /// Comma-separated durations: `2h,1d`.
    window: Option<String>,
}

pub fn router(slos: SloService) -> Router {
    Router::new()
        .route("/api/v1/slo", get(all))
        .route("/api/v1/slo/{name}", get(one))
        .with_state(slos)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

async fn all(State(slos): State<SloService>) -> Response {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for (name, status) in slos.status_all(now_us(), &[]).await {
        match status {
            Ok((s, _)) => ok.push(to_json(&s)),
            Err(e) => failed.push(json!({"name": name, "error": e.to_string()})),
        }
    }
    axum::Json(json!({"slos": ok, "errors": failed})).into_response()
}

async fn one(
    State(slos): State<SloService>,
    Path(name): Path<String>,
    params: Result<Query<OneParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(params)) = params else {
        return error(
            StatusCode::BAD_REQUEST,
            "unknown query parameter: the only one is window=2h,1d".to_owned(),
        );
    };
    let Some(index) = slos.find(&name) else {
        let names: Vec<&str> = slos.slos().iter().map(|s| s.name.as_str()).collect();
        return error(
            StatusCode::NOT_FOUND,
            format!("no SLO named {name:?}; there are: {}", names.join(", ")),
        );
    };
    let mut windows = Vec::new();
    for w in params.window.iter().flat_map(|w| w.split(',')) {
        match Shorthand::parse(w, false) {
            Ok(d) if !d.is_calendar() => windows.push(d.micros()),
            Ok(_) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("window={w}: use m, h, d or w (months have no fixed length)"),
                );
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("window: {e}")),
        }
    }
    match slos.status_of(index, now_us(), &windows).await {
        Ok((s, _)) => axum::Json(to_json(&s)).into_response(),
        Err(e) => error(e.status(), e.to_string()),
    }
}

fn error(status: StatusCode, msg: String) -> Response {
    (status, axum::Json(json!({ "error": msg }))).into_response()
}
