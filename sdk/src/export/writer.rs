//! [`WriterExporter`]: one JSON object per line to stdout, a file, or a buffer.

use std::io::{self, Write};
use std::sync::Mutex;

use super::Exporter;
use crate::wide_event::WideEvent;

/// Writes each event as one line of JSON (NDJSON). Synchronous: meant for local runs, tests and
/// piping into `curl --data-binary @- .../v1/events/<dataset>`, not for a busy service.
pub struct WriterExporter<W: Write + Send + 'static> {
    out: Mutex<W>,
}

impl WriterExporter<io::Stdout> {
    pub fn stdout() -> Self {
        WriterExporter::new(io::stdout())
    }
}

impl<W: Write + Send + 'static> WriterExporter<W> {
    pub fn new(out: W) -> Self {
        WriterExporter {
            out: Mutex::new(out),
        }
    }
}

impl<W: Write + Send + 'static> Exporter for WriterExporter<W> {
    fn export(&self, event: WideEvent) {
        let mut line = Vec::with_capacity(1024);
        event.write_json(&mut line);
        line.push(b'\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        // A closed stdout must not take the service down with it; the line is lost.
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
}
