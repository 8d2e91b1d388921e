//! The query engine: one DataFusion session whose default schema is the store's datasets.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::CatalogProvider;
use datafusion::catalog::{MemoryCatalogProvider, SchemaProvider};
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::TableProvider;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::memory_pool::{GreedyMemoryPool, TrackConsumersPool};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionState;
use datafusion::object_store;
use futures::StreamExt;
use loupe_store::{DatasetName, Store};

use crate::config::QueryConfig;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::outliers::summary_cache::SummaryCache;
use crate::table::dataset_table;

/// Most runs of one query whose files vanish under it (see [`QueryEngine::sql`]).
pub(crate) const ATTEMPTS: usize = 8;

/// Catalog and schema that hold the datasets; queries name datasets without qualification.
pub const CATALOG: &str = "loupe";
pub const SCHEMA: &str = "public";

/// Runs read-only SQL over a store.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    /// The store the datasets are in, for what a query reads beside its files (summaries).
    store: Store,
    config: QueryConfig,
    /// Where queries execute; `None`: on the caller's runtime.
    executor: Option<Executor>,
    /// The files' summaries read so far (outliers questions).
    pub(crate) summaries: SummaryCache,
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
    /// An engine over the store with the default limits, executing queries on the caller's
    /// runtime (commands and tests; a server wants [`QueryEngine::with_config`]).
    pub fn new(store: Store) -> Self {
        Self::build(store, QueryConfig::default(), None)
    }

    /// An engine with these limits, executing queries on a runtime of its own (see
    /// `executor`), so that a heavy query leaves the caller's threads to ingest.
    pub fn with_config(store: Store, config: QueryConfig) -> Result<Self> {
        let executor = Executor::new(config.threads)
            .map_err(|e| Error::Execution(format!("starting the query runtime: {e}")))?;
        Ok(Self::build(store, config, Some(executor)))
    }

    /// Datasets, their schemas and their files are looked up at each query, so new data and
    /// new fields show up without a restart.
    fn build(store: Store, config: QueryConfig, executor: Option<Executor>) -> Self {
        let session = SessionConfig::new()
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
        let ctx = SessionContext::new_with_config_rt(session, runtime);
        // One cache for the engine, its clones and its `outliers(...)` table function.
        let summaries = SummaryCache::default();
        ctx.register_udtf(
            crate::table::READ_DICTIONARIES,
            Arc::new(crate::table::DictionariesFunction {
                store: store.clone(),
            }),
        );
        let catalog = MemoryCatalogProvider::new();
        catalog
            .register_schema(
                SCHEMA,
                Arc::new(StoreSchema {
                    store: store.clone(),
                }),
            )
            .expect("memory catalog accepts schemas");
        ctx.register_catalog(CATALOG, Arc::new(catalog));
        crate::weighted::register(&ctx);
        crate::pg::functions::register(&ctx);
        ctx.register_udtf(
            "outliers",
            Arc::new(crate::outliers::table_fn::OutliersFunction {
                config: config.clone(),
                store: store.clone(),
                summaries: summaries.clone(),
            }),
        );
        // Listings that see a partition's old file set or its new one, whole (see `LocalStore`).
        ctx.register_object_store(
            ObjectStoreUrl::local_filesystem().as_ref(),
            Arc::new(LocalStore::default()),
        );
        QueryEngine {
            ctx,
            store,
            config,
            executor,
            summaries,
        }
    }

    /// An engine over the session a query runs in (a table function's), on the caller's
    /// runtime: what it runs shares that session's catalog and functions.
    pub(crate) fn within(
        state: SessionState,
        store: Store,
        config: QueryConfig,
        summaries: SummaryCache,
    ) -> Self {
        QueryEngine {
            ctx: SessionContext::new_with_state(state),
            store,
            config,
            executor: None,
            summaries,
        }
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
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
    ///
    /// A query that listed a partition just before compaction swapped it finds the files it
    /// listed gone ("not found"; see `loupe_store::compact`). Queries are read-only, so such a
    /// query is run again from the start (which lists again), up to eight times in all. At the
    /// default round a minute one retry is enough; a server told to compact every few tens of
    /// milliseconds (the e2e test's 50 ms) swaps a partition again and again, and on a loaded
    /// machine three runs in a row were each caught by a swap (the test failed once in CI with
    /// three runs). A file that stays missing is reported after those runs, within the timeout.
    ///
    /// The query runs within the engine's limits: `timeout_ms` for the whole of it, retries
    /// included, and `memory_limit_bytes` for each run. Dropping the returned future stops it.
    pub async fn sql(&self, query: &str, max_rows: usize) -> Result<QueryOutput> {
        self.sql_with_params(query, Vec::new(), max_rows).await
    }

    /// [`QueryEngine::sql`] with values for the query's positional parameters (`$1`, `$2`,
    /// ...), as the PostgreSQL door's extended protocol sends them.
    pub async fn sql_with_params(
        &self,
        query: &str,
        params: Vec<ScalarValue>,
        max_rows: usize,
    ) -> Result<QueryOutput> {
        let start = Instant::now();
        let this = self.clone();
        let query = query.to_owned();
        let (schema, batches, truncated) = self
            .limited(async move { this.with_retries(&query, &params, max_rows).await })
            .await?;
        Ok(QueryOutput {
            schema,
            batches,
            truncated,
            elapsed: start.elapsed(),
        })
    }

    /// Runs `query` and folds its batches into `init` with `f` as they stream out, without
    /// holding the answer: for analyses (outliers) that read every row of a window. The same
    /// limits as [`QueryEngine::sql`] apply. Not run again when compaction swaps a file
    /// under it: the error is [`Error::FilesMerged`] and the caller may ask again.
    pub async fn fold_batches<T, F>(&self, query: &str, init: T, mut f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&mut T, &RecordBatch) -> DfResult<()> + Send + 'static,
    {
        let this = self.clone();
        let query = query.to_owned();
        self.limited(async move {
            let work = async {
                let df = this
                    .query_context()
                    .sql_with_options(&query, Self::sql_options())
                    .await?;
                let mut stream = df.execute_stream().await?;
                let mut acc = init;
                while let Some(batch) = stream.next().await {
                    f(&mut acc, &batch?)?;
                }
                Ok::<T, DataFusionError>(acc)
            };
            work.await.map_err(from_fold)
        })
        .await
    }

    /// [`QueryEngine::fold_batches`] for a fold whose work is heavier than the scan: each of
    /// the plan's output partitions is folded into its own `init()` on a task of its own (on
    /// the query runtime when there is one), so the folding runs on every core as the scan
    /// does, and the partitions' accumulators are then combined with `merge`, in no particular
    /// order (`merge` must not care). The same limits apply; dropping the returned future, or
    /// the timeout, stops every task. Not run again when compaction swaps a file under it
    /// (the error is [`Error::FilesMerged`]).
    pub async fn fold_partitions<T, I, F, M>(
        &self,
        query: &str,
        init: I,
        fold: F,
        mut merge: M,
    ) -> Result<T>
    where
        T: Send + 'static,
        I: Fn() -> T + Send + Sync + 'static,
        F: Fn(&mut T, &RecordBatch) -> DfResult<()> + Send + Sync + 'static,
        M: FnMut(&mut T, T) + Send + 'static,
    {
        let this = self.clone();
        let query = query.to_owned();
        self.limited(async move {
            let df = this
                .query_context()
                .sql_with_options(&query, Self::sql_options())
                .await
                .map_err(from_fold)?;
            let streams = df.execute_stream_partitioned().await.map_err(from_fold)?;
            let (init, fold) = (Arc::new(init), Arc::new(fold));
            // A `JoinSet` aborts what is still running when it is dropped: on the first
            // error, on the timeout and when the caller goes away.
            let mut tasks = tokio::task::JoinSet::new();
            for mut stream in streams {
                let (init, fold) = (init.clone(), fold.clone());
                tasks.spawn(async move {
                    let mut acc = init();
                    while let Some(batch) = stream.next().await {
                        fold(&mut acc, &batch?)?;
                    }
                    Ok::<T, DataFusionError>(acc)
                });
            }
            let mut out: Option<T> = None;
            while let Some(done) = tasks.join_next().await {
                let part = done
                    .map_err(|e| Error::Execution(format!("a partition's fold failed: {e}")))?
                    .map_err(from_fold)?;
                match &mut out {
                    Some(acc) => merge(acc, part),
                    None => out = Some(part),
                }
            }
            // A plan has at least one partition; an empty one folds nothing.
            Ok(out.unwrap_or_else(|| init()))
        })
        .await
    }

    /// Runs `work` within the engine's timeout, on the query runtime when there is one.
    async fn limited<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let timeout = self.config.timeout();
        let limited = async move { tokio::time::timeout(timeout, work).await };
        let outcome = match &self.executor {
            Some(executor) => executor
                .run(limited)
                .await
                .map_err(|e| Error::Execution(format!("the query task failed: {e}")))?,
            None => limited.await,
        };
        outcome.map_err(|_| Error::Timeout {
            limit_ms: self.config.timeout_ms,
        })?
    }

    /// Plans `query` without running it: the schema of its answer and the types DataFusion
    /// infers for its parameters (`$1` first; `None` where it cannot tell).
    pub async fn describe(&self, query: &str) -> Result<(SchemaRef, Vec<Option<DataType>>)> {
        let df = self
            .ctx
            .sql_with_options(query, Self::sql_options())
            .await
            .map_err(Error::from_datafusion)?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let mut types: Vec<(usize, Option<DataType>)> = df
            .logical_plan()
            .get_parameter_types()
            .map_err(Error::from_datafusion)?
            .into_iter()
            .filter_map(|(name, t)| Some((name.strip_prefix('$')?.parse().ok()?, t)))
            .collect();
        types.sort_by_key(|(i, _)| *i);
        let n = types.last().map_or(0, |(i, _)| *i);
        let mut out = vec![None; n];
        for (i, t) in types {
            if i >= 1 {
                out[i - 1] = t;
            }
        }
        Ok((schema, out))
    }

    async fn with_retries(
        &self,
        query: &str,
        params: &[ScalarValue],
        max_rows: usize,
    ) -> Result<(SchemaRef, Vec<RecordBatch>, bool)> {
        let mut attempt = 1;
        loop {
            match self.attempt(query, params, max_rows).await {
                Ok(out) => return Ok(out),
                Err(e) if attempt < ATTEMPTS && is_not_found(&e) => {
                    tracing::debug!(attempt, error = %e, "a file vanished under the query (merged by compaction); running it again");
                    attempt += 1;
                }
                Err(e) => {
                    return Err(match Error::from_datafusion(e) {
                        Error::ResourcesExhausted(detail) => Error::ResourcesExhausted(format!(
                            "the query needed more than the {} MiB of memory one query may use \
                             (query.memory_limit_bytes), even after spilling to disk; narrow its \
                             time range or group by fewer values ({detail})",
                            self.config.memory_limit_bytes >> 20
                        )),
                        other => other,
                    });
                }
            }
        }
    }

    /// A session for one query: the engine's, with a memory pool of its own, so one query's
    /// limit is not shared with (or exhausted by) the others.
    fn query_context(&self) -> SessionContext {
        let state = self.ctx.state();
        let base = state.runtime_env().clone();
        let pool = TrackConsumersPool::new(
            GreedyMemoryPool::new(self.config.memory_limit_bytes as usize),
            NonZeroUsize::new(3).expect("3 is not zero"),
        );
        let runtime = RuntimeEnv {
            memory_pool: Arc::new(pool),
            disk_manager: base.disk_manager.clone(),
            cache_manager: base.cache_manager.clone(),
            object_store_registry: base.object_store_registry.clone(),
        };
        SessionContext::new_with_state(
            SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(Arc::new(runtime))
                .build(),
        )
    }

    /// One run of [`QueryEngine::sql`]: the schema, the batches, and whether they were cut.
    async fn attempt(
        &self,
        query: &str,
        params: &[ScalarValue],
        max_rows: usize,
    ) -> DfResult<(SchemaRef, Vec<RecordBatch>, bool)> {
        let mut df = self
            .query_context()
            .sql_with_options(query, Self::sql_options())
            .await?;
        if !params.is_empty() {
            df = df.with_param_values(ParamValues::List(
                params
                    .iter()
                    .cloned()
                    .map(ScalarAndMetadata::from)
                    .collect(),
            ))?;
        }
        let schema = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await?;
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            if rows + batch.num_rows() > max_rows {
                batches.push(batch.slice(0, max_rows - rows));
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        Ok((schema, batches, truncated))
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

/// The local filesystem as the engine reads it: `LocalFileSystem`, except for listings.
///
/// `LocalFileSystem` lists a directory by reading its names and then looking each one up *by
/// path*, silently skipping names that are gone by then. When compaction swaps a partition
/// directory between the two steps, the merged-away files are skipped and the query answers
/// from the partition's other files alone: rows missing, and no error to run it again on.
/// Here each name is looked up in the directory that was read (`DirEntry::metadata`, which is
/// `fstatat` on the open directory), whose entries compaction keeps for a grace period after
/// the swap. So a listing shows a partition's old set or its new one, whole, and reading a
/// merged-away file fails as "not found", which [`QueryEngine::sql`] answers by running the
/// query again.
#[derive(Debug, Default)]
struct LocalStore {
    inner: object_store::local::LocalFileSystem,
}

impl std::fmt::Display for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalStore({})", self.inner)
    }
}

/// `bytes::Bytes`, named through object_store (loupe-query does not depend on `bytes`).
type Bytes = <object_store::PutPayload as IntoIterator>::Item;

#[async_trait]
impl object_store::ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &object_store::path::Path,
        ranges: &[std::ops::Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        use futures::TryStreamExt;
        let dir = self.dir_of(prefix);
        futures::stream::once(async move {
            let dir: std::path::PathBuf = dir?;
            let listed = tokio::task::spawn_blocking(move || {
                let mut listing = Listing::default();
                listing.read(&dir, true).map(|()| listing.objects)
            })
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "LocalStore",
                source: Box::new(e),
            })?;
            listed.map(|objects| futures::stream::iter(objects.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        let dir = self.dir_of(prefix)?;
        let listing = tokio::task::spawn_blocking(move || {
            let mut listing = Listing::default();
            listing.read(&dir, false).map(|()| listing)
        })
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "LocalStore",
            source: Box::new(e),
        })??;
        Ok(object_store::ListResult {
            common_prefixes: listing.prefixes,
            objects: listing.objects,
        })
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

impl LocalStore {
    fn dir_of(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<std::path::PathBuf> {
        match prefix {
            Some(p) if !p.as_ref().is_empty() => self.inner.path_to_filesystem(p),
            _ => Ok(std::path::PathBuf::from("/")),
        }
    }
}

/// What a listing found: files, and (when not recursive) subdirectories.
#[derive(Default)]
struct Listing {
    objects: Vec<object_store::ObjectMeta>,
    prefixes: Vec<object_store::path::Path>,
}

impl Listing {
    /// Reads `dir`, looking every name up in the directory read (see [`LocalStore`]), and its
    /// subdirectories too if `recursive`. Names gone by the time they are looked up were
    /// deleted from this very directory (old file sets after their grace period, temporary
    /// files): they are skipped, as `LocalFileSystem` does. A missing `dir` lists nothing.
    fn read(&mut self, dir: &std::path::Path, recursive: bool) -> object_store::Result<()> {
        use std::io::ErrorKind::NotFound;
        match std::fs::read_dir(dir) {
            Ok(entries) => self.read_entries(dir, entries, recursive),
            Err(e) if e.kind() == NotFound => Ok(()),
            Err(e) => Err(io(e, dir)),
        }
    }

    /// [`Listing::read`] of a directory already opened.
    fn read_entries(
        &mut self,
        dir: &std::path::Path,
        entries: std::fs::ReadDir,
        recursive: bool,
    ) -> object_store::Result<()> {
        use std::io::ErrorKind::NotFound;
        for entry in entries {
            let entry = entry.map_err(|e| io(e, dir))?;
            let path = entry.path();
            let meta = match entry.metadata() {
                // Links are followed, like `LocalFileSystem` does; a broken one is skipped.
                Ok(m) if m.is_symlink() => match std::fs::metadata(&path) {
                    Ok(m) => m,
                    Err(_) => continue,
                },
                Ok(m) => m,
                Err(e) if e.kind() == NotFound => continue,
                Err(e) => return Err(io(e, &path)),
            };
            let location = object_store::path::Path::from_absolute_path(&path)
                .map_err(|e| object_store::Error::InvalidPath { source: e })?;
            if meta.is_dir() {
                if recursive {
                    self.read(&path, true)?;
                } else {
                    self.prefixes.push(location);
                }
            } else if meta.is_file() {
                let mtime = meta.modified().map_err(|e| io(e, &path))?;
                let micros = mtime
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_micros();
                self.objects.push(object_store::ObjectMeta {
                    location,
                    last_modified: mtime.into(),
                    size: meta.len(),
                    // `LocalFileSystem`'s scheme, so its reads and these listings agree.
                    e_tag: Some(format!(
                        "{:x}-{micros:x}-{:x}",
                        std::os::unix::fs::MetadataExt::ino(&meta),
                        meta.len()
                    )),
                    version: None,
                });
            }
        }
        self.prefixes.sort();
        Ok(())
    }
}

fn io(source: std::io::Error, path: &std::path::Path) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalStore",
        source: format!("listing {}: {source}", path.display()).into(),
    }
}

/// A fold's error: a file gone under it (merged by compaction) is [`Error::FilesMerged`], for
/// the caller to ask again; the rest as [`Error::from_datafusion`] sorts them.
fn from_fold(e: DataFusionError) -> Error {
    if is_not_found(&e) {
        Error::FilesMerged(e.strip_backtrace())
    } else {
        Error::from_datafusion(e)
    }
}

/// Whether `e` says a file or object was not found, anywhere in its chain of causes: what a
/// query that listed a file merged away by compaction fails with.
fn is_not_found(e: &DataFusionError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(object_store::Error::NotFound { .. }) = c.downcast_ref::<object_store::Error>()
        {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::NotFound {
                return true;
            }
            // `io::Error::source` skips the error it wraps; look at it too.
            if let Some(inner) = io.get_ref() {
                cause = Some(inner);
                continue;
            }
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use std::fmt;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use datafusion::execution::object_store::ObjectStoreUrl;
    use futures::stream::BoxStream;
    use loupe_event::{Event, Limits};
    use loupe_store::compact;
    use loupe_store::{Catalog, DatasetDir, Partition, events_to_batch, fsutil, write_parquet};
    use object_store::path::Path as ObjectPath;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
        PutMultipartOptions, PutOptions, PutPayload, PutResult,
    };

    use super::*;

    const HOUR: i64 = 1_795_406_400_000_000;

    /// Four files of 25 events each in one partition of dataset `api`.
    fn dataset(root: &Path) -> (DatasetDir, PathBuf) {
        let ds = Store::new(root).dataset(&DatasetName::new("api").unwrap());
        let partition = ds.partition_dir(&Partition::of(HOUR));
        fsutil::create_dir_durable(&partition).unwrap();
        fsutil::create_dir_durable(&ds.tmp_dir()).unwrap();
        let mut catalog = Catalog::default();
        for f in 0..4 {
            let events: Vec<_> = (0..25)
                .map(|i| {
                    let id = f * 25 + i;
                    Event::new()
                        .with("id", id)
                        .validate(&Limits::default(), HOUR + id)
                        .unwrap()
                })
                .collect();
            let batch = events_to_batch(&events, &mut catalog, 0).unwrap();
            catalog.save_if_changed(&ds.catalog_dir()).unwrap();
            write_parquet(&partition.join(format!("{f}.parquet")), &batch).unwrap();
        }
        (ds, partition)
    }

    /// Merges every file of `partition` into one and leaves it staged, not swapped in.
    fn stage_merge(ds: &DatasetDir, partition: &Path) -> compact::Staged {
        let inputs: Vec<PathBuf> = compact::partition_files(partition)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        let container = ds.tmp_dir().join("compact-test");
        std::fs::create_dir(&container).unwrap();
        let catalog = Catalog::load(&ds.catalog_dir()).unwrap();
        let merged = compact::merge(
            &inputs,
            &catalog,
            &container.join("merged.parquet"),
            &AtomicBool::new(false),
            None,
        )
        .unwrap();
        compact::stage(partition, &merged, &container).unwrap()
    }

    async fn counts(engine: &QueryEngine) -> Result<(i64, i64)> {
        let out = engine
            .sql("SELECT count(*) AS n, count(DISTINCT id) AS d FROM api", 10)
            .await?;
        let b = &out.batches[0];
        let get = |i: usize| {
            b.column(i)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap()
                .value(0)
        };
        Ok((get(0), get(1)))
    }

    /// The local filesystem, except that `on_read` runs before every read of a file (so after
    /// the query listed its partitions), and the read fails as "not found" if it says so.
    struct HookedStore {
        inner: LocalStore,
        on_read: Box<dyn Fn(&ObjectPath) -> bool + Send + Sync>,
    }

    impl HookedStore {
        fn check(&self, location: &ObjectPath) -> object_store::Result<()> {
            if (self.on_read)(location) {
                return Err(object_store::Error::NotFound {
                    path: location.to_string(),
                    source: Box::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
                });
            }
            Ok(())
        }

        /// Runs `hook` once, before the first read.
        fn once(hook: impl FnOnce() + Send + 'static) -> Arc<HookedStore> {
            let hook: Mutex<Option<Box<dyn FnOnce() + Send>>> = Mutex::new(Some(Box::new(hook)));
            Arc::new(HookedStore {
                inner: LocalStore::default(),
                on_read: Box::new(move |_| {
                    if let Some(h) = hook.lock().unwrap().take() {
                        h();
                    }
                    false
                }),
            })
        }
    }

    impl fmt::Debug for HookedStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("HookedStore")
        }
    }

    impl fmt::Display for HookedStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("HookedStore")
        }
    }

    #[async_trait]
    impl ObjectStore for HookedStore {
        async fn put_opts(
            &self,
            location: &ObjectPath,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(location, payload, opts).await
        }

        async fn put_multipart_opts(
            &self,
            location: &ObjectPath,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }

        async fn get_opts(
            &self,
            location: &ObjectPath,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.check(location)?;
            self.inner.get_opts(location, options).await
        }

        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<ObjectPath>>,
        ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
            self.inner.delete_stream(locations)
        }

        fn list(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }

        async fn list_with_delimiter(
            &self,
            prefix: Option<&ObjectPath>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }

        async fn copy_opts(
            &self,
            from: &ObjectPath,
            to: &ObjectPath,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// An engine over a fresh dataset whose four files a merge swaps out at the first read
    /// of any file; the flag says whether it did, the path is the partition.
    fn engine_merged_at_first_read(tmp: &Path) -> (QueryEngine, Arc<AtomicBool>, PathBuf) {
        let (ds, partition) = dataset(tmp);
        let engine = QueryEngine::new(Store::new(tmp));
        let swapped = Arc::new(AtomicBool::new(false));
        let (part2, flag) = (partition.clone(), swapped.clone());
        let store = HookedStore::once(move || {
            stage_merge(&ds, &part2).exchange().unwrap();
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        engine
            .context()
            .register_object_store(ObjectStoreUrl::local_filesystem().as_ref(), store);
        (engine, swapped, partition)
    }

    #[tokio::test]
    async fn a_query_that_listed_files_merged_away_under_it_is_run_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (engine, swapped, partition) = engine_merged_at_first_read(tmp.path());
        // The first run listed the four files; the merge swapped them out before it read any,
        // so it failed to open them. The second run listed the merged file.
        assert_eq!(counts(&engine).await.unwrap(), (100, 100));
        assert!(swapped.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(compact::partition_files(&partition).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_outliers_question_whose_files_were_merged_under_it_is_asked_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (engine, swapped, _) = engine_merged_at_first_read(tmp.path());
        let question = crate::outliers::analyze::Question::new("api", "id >= 60");
        let report = engine.outliers(&question).await.unwrap();
        assert!(swapped.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!((report.selection.rows, report.baseline.rows), (40, 60));
    }

    #[tokio::test]
    async fn a_not_found_that_persists_is_reported_after_a_bounded_number_of_runs() {
        let tmp = tempfile::tempdir().unwrap();
        dataset(tmp.path());
        let engine = QueryEngine::new(Store::new(tmp.path()));
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = reads.clone();
        let store = Arc::new(HookedStore {
            inner: LocalStore::default(),
            on_read: Box::new(move |_| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                true
            }),
        });
        engine
            .context()
            .register_object_store(ObjectStoreUrl::local_filesystem().as_ref(), store);
        let err = counts(&engine).await.unwrap_err();
        assert!(matches!(err, Error::Execution(_)), "{err}");
        // Each run fails at its first reads (up to one per file, in parallel).
        let reads = reads.load(std::sync::atomic::Ordering::SeqCst);
        assert!((ATTEMPTS..=ATTEMPTS * 4).contains(&reads), "{reads} reads");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn folding_partitions_apart_and_merging_is_folding_the_whole_stream() {
        let tmp = tempfile::tempdir().unwrap();
        dataset(tmp.path());
        let engine = QueryEngine::new(Store::new(tmp.path()));
        // Four partitions over four files, whatever the machine's cores.
        engine
            .context()
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .execution
            .target_partitions = 4;
        let query = "SELECT id FROM api";
        let ids = |acc: &mut Vec<i64>, b: &RecordBatch| {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap();
            acc.extend(a.values().iter().copied());
            Ok(())
        };
        let mut whole = engine.fold_batches(query, Vec::new(), ids).await.unwrap();
        whole.sort_unstable();
        assert_eq!(whole, (0..100).collect::<Vec<i64>>());
        let merges = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = merges.clone();
        let mut parts = engine
            .fold_partitions(query, Vec::new, ids, move |acc, other| {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                acc.extend(other);
            })
            .await
            .unwrap();
        parts.sort_unstable();
        assert_eq!(parts, whole);
        // Folded apart: one accumulator per partition, merged into the first.
        assert_eq!(merges.load(std::sync::atomic::Ordering::SeqCst), 3);
        // An error in one partition's fold is the answer's.
        let err = engine
            .fold_partitions(
                query,
                || (),
                |_, _| Err(DataFusionError::Execution("the fold refused".into())),
                |_, _| {},
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("the fold refused"), "{err}");
    }

    #[tokio::test]
    async fn a_staged_set_in_tmp_is_not_part_of_the_table() {
        let tmp = tempfile::tempdir().unwrap();
        let (ds, partition) = dataset(tmp.path());
        let engine = QueryEngine::new(Store::new(tmp.path()));
        // Staged: `_tmp/compact-test/part/` holds the merged file (all 100 rows).
        let staged = stage_merge(&ds, &partition);
        assert_eq!(counts(&engine).await.unwrap(), (100, 100));
        // Swapped: the old set is now in `_tmp/`, and still not read.
        staged.exchange().unwrap();
        assert_eq!(counts(&engine).await.unwrap(), (100, 100));
    }

    #[test]
    fn a_listing_that_a_swap_overtakes_shows_the_old_set_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let (ds, partition) = dataset(tmp.path());
        // The listing opened the partition before the swap and reads its names after it.
        let opened = std::fs::read_dir(&partition).unwrap();
        stage_merge(&ds, &partition).exchange().unwrap();
        let mut listing = Listing::default();
        listing.read_entries(&partition, opened, false).unwrap();
        let mut names: Vec<String> = listing
            .objects
            .iter()
            .map(|o| o.location.filename().unwrap().to_owned())
            .collect();
        names.sort();
        // Looked up by path, as `LocalFileSystem` does, all four would be skipped as gone,
        // and the query would count no rows for the partition without any error.
        assert_eq!(names, ["0.parquet", "1.parquet", "2.parquet", "3.parquet"]);
        assert!(listing.objects.iter().all(|o| o.size > 0));
        for o in &listing.objects {
            assert!(
                !Path::new(&format!("/{}", o.location)).exists(),
                "merged away"
            );
        }
        // A listing now shows the new set.
        let mut now = Listing::default();
        now.read(&partition, false).unwrap();
        assert_eq!(now.objects.len(), 1);
    }

    #[test]
    fn not_found_is_recognised_through_the_wrappers_datafusion_adds() {
        let os = object_store::Error::NotFound {
            path: "date=x/hour=00/a.parquet".into(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::NotFound)),
        };
        let wrapped = DataFusionError::ParquetError(Box::new(
            datafusion::parquet::errors::ParquetError::External(Box::new(os)),
        ));
        assert!(is_not_found(&wrapped));
        let in_io = DataFusionError::External(Box::new(std::io::Error::other(
            DataFusionError::IoError(std::io::Error::from(std::io::ErrorKind::NotFound)),
        )));
        assert!(is_not_found(&DataFusionError::Context(
            "reading".into(),
            Box::new(in_io)
        )));
        assert!(!is_not_found(&DataFusionError::Plan(
            "no such column".into()
        )));
        assert!(!is_not_found(&DataFusionError::IoError(
            std::io::Error::from(std::io::ErrorKind::PermissionDenied)
        )));
    }
}
