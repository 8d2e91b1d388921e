//! [`ServerLayer`]: a tower layer (works with axum, hyper, tonic) that makes each incoming HTTP
//! request a unit of work: a root span `http.request` that continues the caller's W3C trace.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;

use crate::current::{continue_trace, extract_trace_context};

/// Wraps a service so each request becomes one wide event named `http.request` with
/// `http.method`, `url.path`, `http.route` (axum's matched route, with the `axum` feature),
/// `http.user_agent`, `http.request_content_length`, `http.status_code`, and `error = true` for
/// a 5xx answer. A `traceparent` header continues the caller's trace.
///
/// With axum, add it with `Router::layer` so the matched route is known:
/// `Router::new().route(...).layer(loupe_sdk::ServerLayer::new())`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerLayer;

impl ServerLayer {
    pub fn new() -> Self {
        ServerLayer
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = ServerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ServerService { inner }
    }
}

/// The service [`ServerLayer`] makes.
#[derive(Debug, Clone)]
pub struct ServerService<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for ServerService<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let span = tracing::info_span!(
            "http.request",
            http.method = %req.method(),
            url.path = req.uri().path(),
            http.route = Empty,
            http.user_agent = Empty,
            http.request_content_length = Empty,
            http.status_code = Empty,
            error = Empty,
        );
        if let Some(route) = route(&req) {
            span.record("http.route", route);
        }
        let headers = req.headers();
        if let Some(ua) = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            span.record("http.user_agent", ua);
        }
        if let Some(len) = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            span.record("http.request_content_length", len);
        }
        if let Some(ctx) = extract_trace_context(headers) {
            continue_trace(&span, &ctx);
        }
        let inner = {
            let _entered = span.enter();
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            span: Some(span),
        }
    }
}

#[cfg(feature = "axum")]
fn route<B>(req: &http::Request<B>) -> Option<&str> {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str())
}

#[cfg(not(feature = "axum"))]
fn route<B>(_req: &http::Request<B>) -> Option<&str> {
    None
}

pin_project_lite::pin_project! {
    /// Polls the inner future inside the request's span and closes the span (which exports the
    /// event) as soon as the response head is ready.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Option<Span>,
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = match this.span.as_ref() {
            Some(span) => {
                let _entered = span.enter();
                std::task::ready!(this.inner.poll(cx))
            }
            None => std::task::ready!(this.inner.poll(cx)),
        };
        if let Some(span) = this.span.take() {
            match &out {
                Ok(resp) => {
                    let status = resp.status();
                    span.record("http.status_code", status.as_u16());
                    if status.is_server_error() {
                        span.record("error", true);
                    }
                }
                // The service failed without an answer; the server will close the connection.
                Err(_) => {
                    span.record("error", true);
                }
            }
        }
        Poll::Ready(out)
    }
}
