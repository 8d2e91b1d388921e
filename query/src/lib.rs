//! The loupe query engine: Apache DataFusion over the store. Each dataset is a table over its
//! Parquet files with the merged schema, pruned by the `date`/`hour` partitions (also from
//! `timestamp` predicates) and by row-group statistics. SQL is read-only.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use loupe_query::QueryEngine;
//! use loupe_store::Store;
//!
//! let dir = tempfile::tempdir()?;
//! let engine = QueryEngine::new(Store::new(dir.path()));
//! let out = engine.sql("SELECT 1 + 1 AS two", 10).await?;
//! assert_eq!(out.row_count(), 1);
//! assert!(engine.sql("CREATE TABLE t (a INT)", 10).await.is_err()); // read-only
//! # Ok(()) }
//! ```

mod config;
mod engine;
mod error;
mod executor;
mod http;
pub mod outliers;
mod output;
pub mod pg;
pub mod slo;
pub mod table;
pub mod weighted;

pub use config::QueryConfig;
pub use engine::{CATALOG, QueryEngine, QueryOutput, SCHEMA};
pub use error::{Error, Result};
pub use http::{MAX_HTTP_ROWS, router};
pub use output::{ARROW_STREAM, arrow_ipc, response_json, rows_json, table_text};

#[cfg(test)]
mod tests;
