//! [`TracePropagation`]: a `reqwest-middleware` middleware that carries the current trace to the
//! services a request calls, and times each call as a child span `http.client`.

use reqwest_middleware::{Middleware, Next};
use tracing::Instrument;
use tracing::field::Empty;

use crate::current::{insert_context, trace_context_of};

/// Adds `traceparent`/`tracestate` to each outgoing request and wraps it in a child span named
/// `http.client`, so the caller's wide event gets `http.client.duration_ms`,
/// `http.client.count`, and the last call's `http.client.url`, `http.client.method`,
/// `http.client.status_code` (or `http.client.failure`).
///
/// ```
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(loupe_sdk::TracePropagation)
///     .build();
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct TracePropagation;

#[async_trait::async_trait]
impl Middleware for TracePropagation {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = req.url();
        // Without the query string: it holds ids and secrets more often than it helps grouping.
        let shown = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or(""),
            url.port().map(|p| format!(":{p}")).unwrap_or_default()
        ) + url.path();
        let span = tracing::info_span!(
            "http.client",
            method = %req.method(),
            url = shown,
            status_code = Empty,
            failure = Empty,
        );
        if let Some(ctx) = trace_context_of(&span) {
            insert_context(req.headers_mut(), &ctx);
        }
        let result = next.run(req, extensions).instrument(span.clone()).await;
        match &result {
            Ok(resp) => {
                span.record("status_code", resp.status().as_u16());
            }
            Err(e) => {
                span.record("failure", tracing::field::display(e));
            }
        }
        result
    }
}
