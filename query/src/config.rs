//! `[query]` in `loupe.toml`: the guard rails every query runs inside.
//!
//! ```toml
//! [query]
//! memory_limit_bytes = 1073741824   # per query; sorts and aggregations spill to disk first
//! timeout_ms = 60000                # a query still running after this is stopped
//! threads = 2                       # the query runtime's threads (0: one per core)
//! ```

use serde::Deserialize;

/// The limits and the runtime of queries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Memory one query's operators (aggregations, sorts, joins) may hold. Past it, they spill
    /// to disk where they can; a query that still needs more fails with an error naming this
    /// option, and other queries and ingest go on. Reading Parquet holds a few buffers per
    /// file beyond this.
    pub memory_limit_bytes: u64,
    /// Wall time one query may take, from planning to its last row.
    pub timeout_ms: u64,
    /// Threads of the runtime queries execute on, apart from ingest's, so a heavy query
    /// competes with ingest for cores as one more thread and never occupies the threads that
    /// answer ingest requests. 0: one per core.
    pub threads: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            memory_limit_bytes: 1 << 30,
            timeout_ms: 60_000,
            threads: 0,
        }
    }
}

impl QueryConfig {
    /// Every problem with these settings, each naming its option.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.memory_limit_bytes < 1 << 20 {
            out.push(format!(
                "query.memory_limit_bytes: {} is too small to run a query (at least 1048576)",
                self.memory_limit_bytes
            ));
        }
        if self.timeout_ms == 0 {
            out.push("query.timeout_ms: must be at least 1".to_owned());
        }
        out
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms)
    }
}
