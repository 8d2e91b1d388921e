//! The query engine: one DataFusion session whose default schema is the store's datasets.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::CatalogProvider;
use datafusion::catalog::{MemoryCatalogProvider, SchemaProvider};
use datafusion::datasource::TableProvider;
use datafusion::error::Result as DfResult;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use futures::StreamExt;
use loupe_store::{DatasetName, Store};

use crate::error::{Error, Result};
use crate::table::dataset_table;

/// Catalog and schema that hold the datasets; queries name datasets without qualification.
pub const CATALOG: &str = "loupe";
pub const SCHEMA: &str = "public";

/// Runs read-only SQL over a store.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
}

/// A query's answer.
#[derive(Debug, Clone)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Rows were cut at the caller's row limit.
    pub truncated: bool,
    pub elapsed: std::time::Duration,
}

impl QueryOutput {
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

impl QueryEngine {
    /// An engine over the store rooted at `root`. Datasets, their schemas and their files are
    /// looked up at each query, so new data and new fields show up without a restart.
    pub fn new(store: Store) -> Self {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, SCHEMA)
            .with_information_schema(true);
        // DataFusion caches directory listings forever by default; files appear here with every
        // flush, so a cached listing would hide new data. Listing is cheap next to reading, and
        // partition pruning keeps it to the directories a query needs. (File statistics and
        // footers stay cached: our files are immutable and never reuse a name.)
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .build_arc()
            .expect("runtime with default settings");
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let catalog = MemoryCatalogProvider::new();
        catalog
            .register_schema(SCHEMA, Arc::new(StoreSchema { store }))
            .expect("memory catalog accepts schemas");
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        QueryEngine { ctx }
    }

    /// The read-only rules: no DDL (`CREATE`, `DROP`), no DML (`INSERT`, `COPY ... TO`), no
    /// statements that change the session (`SET`).
    pub fn sql_options() -> SQLOptions {
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
    }

    /// Runs `query` and collects its rows, at most `max_rows` of them.
    pub async fn sql(&self, query: &str, max_rows: usize) -> Result<QueryOutput> {
        let start = Instant::now();
        let df = self
            .ctx
            .sql_with_options(query, Self::sql_options())
            .await
            .map_err(Error::from_datafusion)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await.map_err(Error::from_datafusion)?;
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(Error::from_datafusion)?;
            if rows + batch.num_rows() > max_rows {
                batches.push(batch.slice(0, max_rows - rows));
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        Ok(QueryOutput {
            schema,
            batches,
            truncated,
            elapsed: start.elapsed(),
        })
    }

    /// The session, for callers that register more (views, functions).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

/// The datasets of a store as a DataFusion schema, looked up live.
#[derive(Debug)]
struct StoreSchema {
    store: Store,
}

#[async_trait]
impl SchemaProvider for StoreSchema {
    fn table_names(&self) -> Vec<String> {
        self.store
            .datasets()
            .unwrap_or_default()
            .into_iter()
            .map(|d| d.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let Ok(name) = DatasetName::from_dir_name(name) else {
            return Ok(None);
        };
        let dir = self.store.dataset(&name);
        if !dir.path().is_dir() {
            return Ok(None);
        }
        dataset_table(&dir)
            .await
            .map(Some)
            .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
    }

    fn table_exist(&self, name: &str) -> bool {
        DatasetName::from_dir_name(name)
            .map(|n| self.store.dataset(&n).path().is_dir())
            .unwrap_or(false)
    }
}
