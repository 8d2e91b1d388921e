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
    /// How often buffered events are written to Parquet, which is also how long an
    /// acknowledged event may wait before queries see it. One second by default: "visible
    /// within a second or two of the ack" without a second read path into the buffers (the
    /// small files this makes are merged by compaction).
    pub flush_interval_ms: u64,
    /// A dataset with this many buffered events is flushed without waiting for the interval.
    pub flush_max_events: usize,
    /// A dataset holding this many bytes of buffered events is flushed without waiting.
    pub flush_max_bytes: usize,
    /// The memory bound: bytes of events acknowledged but not yet in Parquet, all datasets
    /// (estimated by `ValidEvent::approx_mem_bytes`). At the bound, ingest answers 429 with
    /// `Retry-After` (before reading the body) and a flush starts.
    pub max_buffered_bytes: usize,
    /// How long a request that arrives at the memory bound waits (before its body is read) for
    /// a flush to make room, before it is answered 429. Waiting keeps a busy collector busy:
    /// a flush takes a fraction of a second, while `Retry-After` counts whole seconds, so
    /// clients told to come back would leave it idle. 0 answers 429 at once.
    pub admission_wait_ms: u64,
    /// Bytes of request bodies being read and decoded at once, all ingest doors. A request
    /// reserves its `Content-Length` (the body limit when it has none) and waits for room, so
    /// many large requests at once queue instead of each taking memory.
    pub max_inflight_body_bytes: usize,
    /// Most datasets one store may hold; ingest into a new dataset past it is refused. Each
    /// dataset costs a WAL writer thread and an open file.
    pub max_datasets: usize,
    /// Merging small Parquet files (the `[collector.compaction]` table).
    pub compaction: CompactionConfig,
    /// How often what the samplers learned is saved (`<dataset>/_sampling/state.json`), and
    /// idle samplers' intervals are ended. A crash loses at most this much learning.
    pub sampling_save_interval_ms: u64,
    /// Per-dataset settings. They live at the top of `loupe.toml` (`[datasets.<name>]`, see
    /// [`crate::DatasetConfig`]), not under `[collector]`: the binary moves them here.
    #[serde(skip)]
    pub datasets: crate::DatasetConfigs,
    /// What writes a merged file's summary beside it (see `loupe_store::summary`): the binary
    /// gives the query engine's. None by default (files without summaries). Compaction writes
    /// them, flushes do not: a flushed file is small and soon merged, and its summary (up to
    /// a few thousand values of every field) would cost more than its rows, in the flush
    /// that ingest waits on (measured: 8-12% fewer events/s acknowledged, the dataset's
    /// directory 2.4x larger).
    #[serde(skip)]
    pub summarize: loupe_store::summary::Summarizer,
}

/// When small Parquet files are merged (see `loupe_store::compact`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// Runs in the background every `interval_ms`. `Collector::compact_all` works either way.
    pub enabled: bool,
    /// How often every partition is looked at.
    pub interval_ms: u64,
    /// Merged files grow toward this size; only files smaller than half of it are merged.
    pub target_file_bytes: u64,
    /// A partition is compacted once it has this many small files.
    pub min_files: usize,
    /// Most files merged at once (bounds a merge's memory; more are merged over rounds).
    pub max_files: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        let policy = loupe_store::compact::Policy::default();
        CompactionConfig {
            enabled: true,
            interval_ms: 60_000,
            target_file_bytes: policy.target_file_bytes,
            min_files: policy.min_files,
            max_files: policy.max_files,
        }
    }
}

impl CompactionConfig {
    pub(crate) fn policy(&self) -> loupe_store::compact::Policy {
        loupe_store::compact::Policy {
            target_file_bytes: self.target_file_bytes,
            min_files: self.min_files,
            max_files: self.max_files,
        }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            limits: Limits::default(),
            flush_interval_ms: 1_000,
            flush_max_events: 200_000,
            flush_max_bytes: 64 << 20,
            max_buffered_bytes: 256 << 20,
            max_inflight_body_bytes: 64 << 20,
            admission_wait_ms: 1_000,
            max_datasets: 1_000,
            compaction: CompactionConfig::default(),
            sampling_save_interval_ms: 10_000,
            datasets: crate::DatasetConfigs::new(),
            summarize: loupe_store::summary::Summarizer::default(),
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
        if self.sampling_save_interval_ms == 0 {
            out.push("collector.sampling_save_interval_ms must be greater than 0".to_owned());
        }
        out.extend(
            crate::sampling::dataset_problems(&self.datasets)
                .iter()
                .map(ToString::to_string),
        );
        let c = &self.compaction;
        if c.interval_ms == 0 {
            out.push("collector.compaction.interval_ms must be greater than 0".to_owned());
        }
        if c.target_file_bytes == 0 {
            out.push("collector.compaction.target_file_bytes must be greater than 0".to_owned());
        }
        if c.min_files < 2 {
            // Merging one file into one file is work for nothing, again at every round.
            out.push(format!(
                "collector.compaction.min_files must be at least 2, is {}",
                c.min_files
            ));
        }
        if c.max_files < c.min_files {
            out.push(format!(
                "collector.compaction.max_files must be at least min_files ({}), is {}",
                c.min_files, c.max_files
            ));
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

    #[test]
    fn compaction_settings_are_checked_by_name() {
        let mut c = CollectorConfig::default();
        assert!(c.compaction.enabled);
        assert_eq!(c.compaction.target_file_bytes, 128 << 20);
        c.compaction.interval_ms = 0;
        c.compaction.min_files = 1;
        let p = c.problems();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("collector.compaction.interval_ms"));
        assert!(p[1].contains("collector.compaction.min_files"));
        c.compaction.min_files = 8;
        c.compaction.max_files = 4;
        let p = c.problems();
        assert!(p[1].contains("collector.compaction.max_files"), "{p:?}");
    }
}
