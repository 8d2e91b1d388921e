//! Collector settings (the `[collector]` table of `loupe.toml`).

use loupe_event::Limits;
use serde::Deserialize;

/// Longest field name the WAL format can hold (u16 length prefix), and so the upper bound on
/// `limits.max_name_bytes`.
pub const MAX_NAME_BYTES_CEILING: usize = 4096;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    pub limits: Limits,
    /// How often buffered events are written to Parquet.
    pub flush_interval_ms: u64,
    /// A dataset with this many buffered events is flushed without waiting for the interval.
    pub flush_max_events: usize,
    /// A dataset holding this many bytes of buffered events is flushed without waiting.
    pub flush_max_bytes: usize,
    /// The memory bound: bytes of events acknowledged but not yet in Parquet, all datasets
    /// (estimated by `ValidEvent::approx_mem_bytes`). At the bound, ingest answers 429 with
    /// `Retry-After` (before reading the body) and a flush starts.
    pub max_buffered_bytes: usize,
    /// Bytes of request bodies being read and decoded at once, all ingest doors. A request
    /// reserves its `Content-Length` (the body limit when it has none) and waits for room, so
    /// many large requests at once queue instead of each taking memory.
    pub max_inflight_body_bytes: usize,
    /// Most datasets one store may hold; ingest into a new dataset past it is refused. Each
    /// dataset costs a WAL writer thread and an open file.
    pub max_datasets: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            limits: Limits::default(),
            flush_interval_ms: 2_000,
            flush_max_events: 200_000,
            flush_max_bytes: 64 << 20,
            max_buffered_bytes: 256 << 20,
            max_inflight_body_bytes: 64 << 20,
            max_datasets: 1_000,
        }
    }
}

impl CollectorConfig {
    pub(crate) fn flush_at(&self) -> crate::buffered::FlushAt {
        crate::buffered::FlushAt {
            events: self.flush_max_events,
            bytes: self.flush_max_bytes,
        }
    }

    /// Every problem with the settings, each naming its option.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.limits.max_name_bytes == 0 || self.limits.max_name_bytes > MAX_NAME_BYTES_CEILING {
            out.push(format!(
                "collector.limits.max_name_bytes must be 1..={MAX_NAME_BYTES_CEILING}, is {}",
                self.limits.max_name_bytes
            ));
        }
        if self.limits.max_value_bytes > u32::MAX as usize {
            out.push("collector.limits.max_value_bytes must fit in 32 bits".to_owned());
        }
        for (name, v) in [
            (
                "collector.limits.max_body_bytes",
                self.limits.max_body_bytes,
            ),
            (
                "collector.limits.max_events_per_request",
                self.limits.max_events_per_request,
            ),
            (
                "collector.limits.max_fields_per_event",
                self.limits.max_fields_per_event,
            ),
            ("collector.flush_max_events", self.flush_max_events),
            ("collector.flush_max_bytes", self.flush_max_bytes),
            ("collector.max_buffered_bytes", self.max_buffered_bytes),
            (
                "collector.max_inflight_body_bytes",
                self.max_inflight_body_bytes,
            ),
            ("collector.max_datasets", self.max_datasets),
        ] {
            if v == 0 {
                out.push(format!("{name} must be greater than 0"));
            }
        }
        if self.flush_interval_ms == 0 {
            out.push("collector.flush_interval_ms must be greater than 0".to_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_problems_name_the_option() {
        assert!(CollectorConfig::default().problems().is_empty());
        let mut c = CollectorConfig::default();
        c.limits.max_name_bytes = 70_000;
        c.flush_interval_ms = 0;
        let p = c.problems();
        assert_eq!(p.len(), 2);
        assert!(p[0].contains("max_name_bytes"));
        assert!(p[1].contains("flush_interval_ms"));
    }
}
