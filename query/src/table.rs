//! A dataset as a DataFusion table: its Parquet files under the catalog's merged schema, with
//! Hive partitions `date`/`hour` that are pruned from `timestamp` predicates too.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use loupe_event::fields;
use loupe_store::layout::{PARQUET_EXT, PARTITION_COLUMNS};
use loupe_store::{Catalog, DatasetDir, Partition};

/// The table schema for a dataset's catalog, as the reader wants it: strings as `Utf8View`
/// (what DataFusion's Parquet reader produces without a cast).
pub fn table_schema(catalog: &Catalog) -> SchemaRef {
    let stored = catalog.arrow_schema();
    let fields: Vec<Field> = stored
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Builds the table for one dataset from its catalog as it is now.
pub async fn dataset_table(dir: &DatasetDir) -> crate::Result<Arc<dyn TableProvider>> {
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
        .with_schema(table_schema(&catalog));
    let inner = ListingTable::try_new(config).map_err(crate::Error::from_datafusion)?;
    Ok(Arc::new(DatasetTable {
        inner: Arc::new(inner),
    }))
}

/// Wraps the listing table to turn `timestamp` bounds into `date`/`hour` partition filters, so
/// a query over the last hour opens only the last hour's directories.
#[derive(Debug)]
pub struct DatasetTable {
    inner: Arc<ListingTable>,
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
        self.inner.scan(state, projection, &filters, limit).await
    }
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
