//! Exporters: where finished wide events go.
//!
//! [`HttpExporter`] batches events on its own thread and sends them to the collector; the
//! request thread only pushes into a bounded queue and never waits. [`WriterExporter`] writes
//! NDJSON to stdout or any writer, synchronously, for local use and tests.

mod http;
#[cfg(test)]
mod http_tests;
mod retry;
mod writer;

pub use http::{
    DROPPED_COUNT_FIELD, DROPPED_EVENT_NAME, ExportStats, ExporterError, ExporterGuard,
    HttpExporter, HttpExporterBuilder,
};
pub use writer::WriterExporter;

use crate::wide_event::WideEvent;

/// Receives each finished wide event. Called on the thread that closed the root span (a request
/// thread): implementations must not block.
pub trait Exporter: Send + Sync + 'static {
    fn export(&self, event: WideEvent);
}

impl<E: Exporter> Exporter for std::sync::Arc<E> {
    fn export(&self, event: WideEvent) {
        (**self).export(event);
    }
}
