//! What the collector holds in memory: durable events waiting for Parquet, counted in events
//! and in (estimated) bytes, per dataset and for all datasets. The byte count is the memory
//! bound that backpressure enforces.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Buffered {
    events: AtomicUsize,
    bytes: AtomicUsize,
}

impl Buffered {
    pub(crate) fn add(&self, events: usize, bytes: usize) {
        self.events.fetch_add(events, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, events: usize, bytes: usize) {
        self.events.fetch_sub(events, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub(crate) fn events(&self) -> usize {
        self.events.load(Ordering::Relaxed)
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// When a dataset's buffer is flushed without waiting for the interval.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlushAt {
    pub(crate) events: usize,
    pub(crate) bytes: usize,
}

/// The estimated memory of `events` (see `ValidEvent::approx_mem_bytes`).
pub(crate) fn mem_bytes<'a>(
    events: impl IntoIterator<Item = &'a loupe_event::ValidEvent>,
) -> usize {
    events.into_iter().map(|e| e.approx_mem_bytes()).sum()
}
