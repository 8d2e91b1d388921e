//! A dataset as a DataFusion table: its Parquet files under the catalog's merged schema, with
//! Hive partitions `date`/`hour` that are pruned from `timestamp` predicates too.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl};
use datafusion::common::Statistics;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfig, FileScanConfigBuilder};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use loupe_event::fields;
use loupe_store::layout::{PARQUET_EXT, PARTITION_COLUMNS};
use loupe_store::{Catalog, DatasetDir, DatasetName, Partition, Store};

/// How a table reads the store's string columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strings {
    /// As `Utf8View`: what DataFusion's Parquet reader produces without a cast, and what SQL
    /// sees.
    Views,
    /// As Arrow dictionaries (`Int32` keys): each column chunk's Parquet dictionary page read
    /// once and every row as its key, no string per row. For passes that look each row's
    /// value up (the outliers' counting): a key indexes the lookup of the chunk's values.
    /// A chunk the writer did not dictionary-encode (too many values) is read and then
    /// dictionary-encoded: right, but slower than views.
    Dictionaries,
}

impl Strings {
    fn string_type(self) -> DataType {
        match self {
            Strings::Views => DataType::Utf8View,
            Strings::Dictionaries => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
        }
    }
}

/// The table schema for a dataset's catalog, as the reader wants it: strings as `Utf8View`
/// (what DataFusion's Parquet reader produces without a cast).
pub fn table_schema(catalog: &Catalog) -> SchemaRef {
    schema_reading(&catalog.arrow_schema(), Strings::Views)
}

/// `stored` with its strings as `strings` reads them.
fn schema_reading(stored: &Schema, strings: Strings) -> SchemaRef {
    let fields: Vec<Field> = stored
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 | DataType::Utf8View => {
                f.as_ref().clone().with_data_type(strings.string_type())
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, stored.metadata().clone()))
}

/// Builds the table for one dataset from its catalog as it is now.
pub async fn dataset_table(dir: &DatasetDir) -> crate::Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(dataset_table_reading(dir, Strings::Views)?))
}

/// [`dataset_table`], its strings read as `strings` says.
pub fn dataset_table_reading(dir: &DatasetDir, strings: Strings) -> crate::Result<DatasetTable> {
    let catalog = Catalog::load(&dir.catalog_dir())?;
    let url = ListingTableUrl::parse(format!("{}/", dir.path().display()))
        .map_err(crate::Error::from_datafusion)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(format!(".{PARQUET_EXT}"))
        .with_table_partition_cols(
            PARTITION_COLUMNS
                .iter()
                .map(|c| (c.to_string(), DataType::Utf8))
                .collect(),
        );
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(schema_reading(&catalog.arrow_schema(), strings));
    let inner = ListingTable::try_new(config).map_err(crate::Error::from_datafusion)?;
    Ok(DatasetTable {
        inner: Arc::new(inner),
        strings,
        files: Files::All,
    })
}

/// Which of a dataset's files a table reads, by their paths in the dataset's directory
/// (`date=2026-11-23/hour=04/<id>.parquet`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Files {
    #[default]
    All,
    Only(Vec<String>),
    Except(Vec<String>),
}

/// Whether `path` (a whole path, as listed) is the file `name` (its path in the dataset).
fn is_file(path: &str, name: &str) -> bool {
    path.strip_suffix(name)
        .is_some_and(|head| head.is_empty() || head.ends_with('/'))
}

impl Files {
    /// Whether the file at `path` (the whole path, as listed) is read.
    fn keeps(&self, path: &str) -> bool {
        let named = |names: &[String]| names.iter().any(|n| is_file(path, n));
        match self {
            Files::All => true,
            Files::Only(names) => named(names),
            Files::Except(names) => !named(names),
        }
    }

    /// The files named, read or not.
    fn named(&self) -> &[String] {
        match self {
            Files::All => &[],
            Files::Only(names) | Files::Except(names) => names,
        }
    }
}

/// `plan` (the listing table's scan) reading only the files `files` keeps. The listing dealt
/// the files (in byte ranges) out to its partitions; the ranges kept are dealt out again,
/// largest first to the partition with the fewest bytes, so that a pass over some files
/// still keeps every core busy. The rows' order across files is not kept (no fold of the
/// outliers needs it), so the plan no longer claims one.
///
/// Every file named must be among those listed, read or not: one that is not was merged away
/// by compaction since the caller named it, and the merged file holds its rows, which the
/// caller counts another way (the outliers' summaries). That is a "not found", as a file gone
/// under a query is: the caller may ask again.
fn choose_files(plan: Arc<dyn ExecutionPlan>, files: &Files) -> DfResult<Arc<dyn ExecutionPlan>> {
    if *files == Files::All {
        return Ok(plan);
    }
    let config = plan
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>());
    let listed: Vec<String> = config
        .iter()
        .flat_map(|c| c.file_groups.iter().flat_map(|g| g.iter()))
        .map(|f| f.path().to_string())
        .collect();
    if let Some(gone) = files
        .named()
        .iter()
        .find(|n| !listed.iter().any(|p| is_file(p, n)))
    {
        return Err(DataFusionError::External(Box::new(
            datafusion::object_store::Error::NotFound {
                path: gone.clone(),
                source: format!("{gone} is no longer listed (merged by compaction)").into(),
            },
        )));
    }
    let Some(config) = config else {
        return Ok(plan);
    };
    let config = config.clone();
    let mut kept: Vec<_> = config
        .file_groups
        .iter()
        .flat_map(|g| g.iter())
        .filter(|f| files.keeps(f.path().as_ref()))
        .map(|f| {
            // A file's statistics are of the whole file, and a file may be split in ranges
            // over several groups: the plan's would count it once per range.
            let mut f = f.clone();
            f.statistics = None;
            f
        })
        .collect();
    kept.sort_by_key(|f| std::cmp::Reverse(f.effective_size()));
    let mut groups: Vec<(u64, Vec<_>)> = vec![(0, Vec::new()); config.file_groups.len().max(1)];
    for f in kept {
        if let Some(g) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            g.0 += f.effective_size();
            g.1.push(f);
        }
    }
    // The table's statistics are of every file: unknown for some of them.
    let unknown = Statistics::new_unknown(config.file_source.table_schema().table_schema());
    let config = FileScanConfigBuilder::from(config)
        .with_file_groups(groups.into_iter().map(|(_, f)| FileGroup::new(f)).collect())
        .with_output_ordering(Vec::new())
        .with_statistics(unknown)
        .build();
    Ok(DataSourceExec::from_data_source(config))
}

/// Wraps the listing table to turn `timestamp` bounds into `date`/`hour` partition filters, so
/// a query over the last hour opens only the last hour's directories.
#[derive(Debug)]
pub struct DatasetTable {
    inner: Arc<ListingTable>,
    strings: Strings,
    files: Files,
}

#[async_trait]
impl TableProvider for DatasetTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let mut filters = filters.to_vec();
        filters.extend(partition_filters(&filters));
        let plan = self.inner.scan(state, projection, &filters, limit).await?;
        let plan = choose_files(plan, &self.files)?;
        match self.strings {
            Strings::Views => Ok(plan),
            Strings::Dictionaries => read_as_dictionaries(state, plan).await,
        }
    }
}

/// `plan` (the listing table's scan) with each file told to read its strings as
/// dictionaries. The Parquet reader takes the Arrow types it produces from a schema of the
/// file's own columns (DataFusion's coercions only ever ask it for views), so each file's
/// schema is read from its footer (cached by the session, as the scan will read it anyway)
/// and given to it with its strings as dictionaries. Without that schema the file's strings
/// would be read as views and then cast to the table's dictionaries: a hash per row.
async fn read_as_dictionaries(
    state: &dyn Session,
    plan: Arc<dyn ExecutionPlan>,
) -> DfResult<Arc<dyn ExecutionPlan>> {
    let Some(config) = plan
        .downcast_ref::<DataSourceExec>()
        .and_then(|exec| exec.data_source().downcast_ref::<FileScanConfig>())
    else {
        // No files (an empty scan), or a plan this function does not know: the table's
        // schema still says dictionaries, and DataFusion casts to it.
        return Ok(plan);
    };
    let store = state.runtime_env().object_store(&config.object_store_url)?;
    let format = ParquetFormat::default();
    let mut config = config.clone();
    let mut groups = Vec::with_capacity(config.file_groups.len());
    for group in &config.file_groups {
        let files = futures::future::try_join_all(group.iter().map(|file| {
            let (format, store) = (&format, &store);
            async move {
                let own = format
                    .infer_schema(state, store, std::slice::from_ref(&file.object_meta))
                    .await?;
                Ok::<_, DataFusionError>(
                    file.clone()
                        .with_arrow_schema(schema_reading(&own, Strings::Dictionaries)),
                )
            }
        }))
        .await?;
        let mut hinted = FileGroup::new(files);
        if let Some(stats) = group.file_statistics(None) {
            hinted = hinted.with_statistics(Arc::new(stats.clone()));
        }
        groups.push(hinted);
    }
    config.file_groups = groups;
    Ok(DataSourceExec::from_data_source(config))
}

/// Microsecond bounds `[lo, hi]` that the filters put on `timestamp`, if any.
pub fn timestamp_bounds(filters: &[Expr]) -> (Option<i64>, Option<i64>) {
    let mut lo: Option<i64> = None;
    let mut hi: Option<i64> = None;
    let mut raise = |v: i64| lo = Some(lo.map_or(v, |l| l.max(v)));
    let mut lower = |v: i64| hi = Some(hi.map_or(v, |h| h.min(v)));
    let mut bounds = Vec::new();
    for f in filters {
        collect_bounds(f, &mut bounds);
    }
    // Timestamps are whole microseconds: `> v` is `>= v + 1`, `< v` is `<= v - 1` (so a
    // query up to an hour's end does not reach into the next hour's partition).
    for (op, v) in bounds {
        match op {
            Operator::GtEq => raise(v),
            Operator::Gt => raise(v.saturating_add(1)),
            Operator::LtEq => lower(v),
            Operator::Lt => lower(v.saturating_sub(1)),
            Operator::Eq => {
                raise(v);
                lower(v);
            }
            _ => {}
        }
    }
    (lo, hi)
}

/// `timestamp <op> literal` (either side) in a conjunction, normalised to timestamp on the left.
fn collect_bounds(e: &Expr, out: &mut Vec<(Operator, i64)>) {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if *op == Operator::And {
                collect_bounds(left, out);
                collect_bounds(right, out);
                return;
            }
            if let (Some(()), Some(v)) = (is_timestamp_col(left), literal_us(right)) {
                out.push((*op, v));
            } else if let (Some(v), Some(()), Some(op)) =
                (literal_us(left), is_timestamp_col(right), op.swap())
            {
                out.push((op, v));
            }
        }
        Expr::Between(b) if !b.negated && is_timestamp_col(&b.expr).is_some() => {
            if let Some(v) = literal_us(&b.low) {
                out.push((Operator::GtEq, v));
            }
            if let Some(v) = literal_us(&b.high) {
                out.push((Operator::LtEq, v));
            }
        }
        _ => {}
    }
}

fn is_timestamp_col(e: &Expr) -> Option<()> {
    match e {
        Expr::Column(c) if c.name == fields::TIMESTAMP => Some(()),
        _ => None,
    }
}

fn literal_us(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::TimestampSecond(Some(s), _) => s.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(ms), _) => ms.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(us), _) => Some(*us),
        ScalarValue::TimestampNanosecond(Some(ns), _) => Some(ns.div_euclid(1_000)),
        _ => None,
    }
}

/// Filters on `date`/`hour` implied by the `timestamp` bounds in `filters`. They never change
/// a result: every row they exclude is also excluded by the timestamp filter itself.
pub fn partition_filters(filters: &[Expr]) -> Vec<Expr> {
    let (lo, hi) = timestamp_bounds(filters);
    let mut out = Vec::new();
    // (date, hour) compared lexicographically; both are zero-padded strings.
    if let Some(lo) = lo {
        let (d, h) = Partition::of(lo).values();
        out.push(
            col("date")
                .gt_eq(lit(d.clone()))
                .and(col("date").gt(lit(d)).or(col("hour").gt_eq(lit(h)))),
        );
    }
    if let Some(hi) = hi {
        let (d, h) = Partition::of(hi).values();
        out.push(
            col("date")
                .lt_eq(lit(d.clone()))
                .and(col("date").lt(lit(d)).or(col("hour").lt_eq(lit(h)))),
        );
    }
    // DataFusion lists only the directories an equality names (ranges are applied after
    // listing every partition): a window inside one day or one hour says so exactly.
    if let (Some(lo), Some(hi)) = (lo, hi) {
        let ((d1, h1), (d2, h2)) = (Partition::of(lo).values(), Partition::of(hi).values());
        if d1 == d2 {
            out.push(col("date").eq(lit(d1)));
            if h1 == h2 {
                out.push(col("hour").eq(lit(h1)));
            }
        }
    }
    out
}

/// `read_dictionaries('api')`: the dataset with its strings read as dictionaries
/// ([`Strings::Dictionaries`]); the same rows as `api`, the strings typed
/// `Dictionary(Int32, Utf8)`. The outliers passes read through it; analysts may too (a
/// `GROUP BY` on a string of few values reads less). `read_dictionaries('api', 'only',
/// 'date=2026-11-23/hour=04/a.parquet,...')` reads only the files named (by their paths in the
/// dataset), `'except'` all but them (the outliers' files with summaries and the others).
#[derive(Debug)]
pub(crate) struct DictionariesFunction {
    pub(crate) store: Store,
}

/// The function's name in SQL.
pub const READ_DICTIONARIES: &str = "read_dictionaries";

impl TableFunctionImpl for DictionariesFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let text = |e: &Expr| match e {
            Expr::Literal(ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)), _) => {
                Some(s.clone())
            }
            _ => None,
        };
        let args: Option<Vec<String>> = args.exprs().iter().map(text).collect();
        let (name, files) = match args.as_deref() {
            Some([name]) => (name, Files::All),
            Some([name, which, list]) if which == "only" || which == "except" => {
                let names = list
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
                let files = if which == "only" {
                    Files::Only(names)
                } else {
                    Files::Except(names)
                };
                (name, files)
            }
            _ => {
                return plan_err!(
                    "{READ_DICTIONARIES}(dataset) or {READ_DICTIONARIES}(dataset, 'only' or \
                     'except', 'date=.../hour=.../file.parquet,...'): strings"
                );
            }
        };
        let dataset = DatasetName::from_dir_name(name)
            .map_err(|e| DataFusionError::Plan(format!("{READ_DICTIONARIES}: {e}")))?;
        let dir = self.store.dataset(&dataset);
        if !dir.path().is_dir() {
            return plan_err!("{READ_DICTIONARIES}: no dataset named `{name}`");
        }
        let mut table = dataset_table_reading(&dir, Strings::Dictionaries)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        table.files = files;
        Ok(Arc::new(table))
    }
}
