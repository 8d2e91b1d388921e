//! `outliers(...)`, the question as an SQL table function, so analysts can compose it:
//!
//! ```sql
//! SELECT explanation, risk_ratio, selection_share
//! FROM outliers('api', 'duration_ms > 800')
//! WHERE terms = 1 ORDER BY selection_share DESC LIMIT 10;
//!
//! SELECT * FROM outliers('api', 'p99 duration_ms', NULL, '1h');
//! SELECT * FROM outliers('api', 'error', 'NOT error AND "http.route" = ''/cart''',
//!                        '2026-11-23T01:00:00Z', '2026-11-23T02:00:00Z', 50);
//! ```
//!
//! Arguments, in order: the dataset; the selection (a predicate, or `pNN field` for the
//! events above the window's weighted percentile, as `above` in the HTTP request); then,
//! optional and `NULL` for the default: the baseline predicate (the rest of the window), since
//! and until (RFC 3339 or an age such as `1h`; open), and the most rows (20). One row per
//! finding, single values and conjunctions ranked together (see [`Report::ranked`]).
//!
//! The analysis runs when the table is scanned, not when the query is planned, within the
//! session's own limits.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue, plan_err};
use datafusion::execution::TaskContext;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use super::analyze::Report;
use super::request::{OutliersRequest, parse_above};
use crate::{QueryConfig, QueryEngine};

const USAGE: &str = "outliers(dataset, selection [, baseline [, since [, until [, top]]]])";

/// The registered function.
#[derive(Debug)]
pub(crate) struct OutliersFunction {
    pub(crate) config: QueryConfig,
    pub(crate) store: loupe_store::Store,
    /// The engine's summaries, shared by every call.
    pub(crate) summaries: super::summary_cache::SummaryCache,
}

/// The answer's columns.
pub fn schema() -> SchemaRef {
    let f = |name: &str, dt: DataType, nullable: bool| Field::new(name, dt, nullable);
    Arc::new(Schema::new(vec![
        f("rank", DataType::Int64, false),
        f("explanation", DataType::Utf8, false),
        f("terms", DataType::Int64, false),
        f("selection_share", DataType::Float64, false),
        f("baseline_share", DataType::Float64, false),
        f("risk_ratio", DataType::Float64, false),
        f("risk_ratio_low", DataType::Float64, false),
        f("risk_ratio_high", DataType::Float64, false),
        f("p_value", DataType::Float64, false),
        f("selection_events", DataType::Int64, false),
        f("baseline_events", DataType::Int64, false),
        f("selection_weight", DataType::Float64, false),
        f("baseline_weight", DataType::Float64, false),
        f("implies", DataType::Utf8, true),
        // For a threshold on a measure: how much higher it is on the finding's events (the
        // ratio of geometric means, see `outliers::shift`); NULL otherwise.
        f("measure_ratio", DataType::Float64, true),
    ]))
}

impl TableFunctionImpl for OutliersFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let request = request(args.exprs())?;
        let Some(state) = args.session().as_any().downcast_ref::<SessionState>() else {
            return plan_err!("outliers: called outside a DataFusion session");
        };
        let engine = QueryEngine::within(
            state.clone(),
            self.store.clone(),
            self.config.clone(),
            self.summaries.clone(),
        );
        let schema = schema();
        let answer = Answer {
            schema: schema.clone(),
            engine,
            request,
        };
        Ok(Arc::new(StreamingTable::try_new(
            schema,
            vec![Arc::new(answer)],
        )?))
    }
}

/// The request the arguments make, or an error naming the bad argument.
fn request(args: &[Expr]) -> DfResult<OutliersRequest> {
    if !(2..=6).contains(&args.len()) {
        return plan_err!("{USAGE}: takes 2 to 6 arguments, got {}", args.len());
    }
    let names = ["dataset", "selection", "baseline", "since", "until", "top"];
    let text = |i: usize| -> DfResult<Option<String>> {
        match args.get(i) {
            None => Ok(None),
            Some(Expr::Literal(v, _)) if v.is_null() => Ok(None),
            Some(Expr::Literal(
                ScalarValue::Utf8(Some(s))
                | ScalarValue::LargeUtf8(Some(s))
                | ScalarValue::Utf8View(Some(s)),
                _,
            )) => Ok(Some(s.clone())),
            Some(other) => plan_err!(
                "{USAGE}: {} must be a string literal, got {other}",
                names[i]
            ),
        }
    };
    let dataset = text(0)?
        .ok_or_else(|| DataFusionError::Plan(format!("{USAGE}: the dataset must not be NULL")))?;
    let selection = text(1)?
        .ok_or_else(|| DataFusionError::Plan(format!("{USAGE}: the selection must not be NULL")))?;
    let top = match args.get(5) {
        None => None,
        Some(Expr::Literal(v, _)) if v.is_null() => None,
        Some(Expr::Literal(v, _)) => match v.cast_to(&DataType::Int64) {
            Ok(ScalarValue::Int64(Some(n))) if n >= 1 => Some(n as usize),
            _ => return plan_err!("{USAGE}: top must be a positive integer, got {v}"),
        },
        Some(other) => return plan_err!("{USAGE}: top must be a positive integer, got {other}"),
    };
    // `p99 duration_ms` is not an SQL predicate, so it cannot be mistaken for one.
    let (selection, above) = if parse_above(&selection).is_ok() {
        (None, Some(selection))
    } else {
        (Some(selection), None)
    };
    Ok(OutliersRequest {
        dataset,
        selection,
        above,
        baseline: text(2)?,
        since: text(3)?,
        until: text(4)?,
        top,
    })
}

/// The one partition of the answer: the analysis, run when it is read.
struct Answer {
    schema: SchemaRef,
    engine: QueryEngine,
    request: OutliersRequest,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("request", &self.request)
            .finish()
    }
}

impl PartitionStream for Answer {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (engine, request, schema) = (
            self.engine.clone(),
            self.request.clone(),
            self.schema.clone(),
        );
        let out_schema = schema.clone();
        let answer = async move {
            let now_us = chrono::Utc::now().timestamp_micros();
            let run = async {
                let question = engine.outliers_question(&request, now_us).await?;
                let report = engine.outliers(&question).await?;
                Ok::<_, crate::Error>((report, question.top))
            };
            let (report, top) = run
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            batch(&report, top, &out_schema)
        };
        Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(answer),
        ))
    }
}

/// The ranked findings of `report` as rows of [`schema`].
fn batch(report: &Report, top: usize, schema: &SchemaRef) -> DfResult<RecordBatch> {
    let found = report.ranked(top);
    let share = |w: f64, total: f64| if total > 0.0 { w / total } else { 0.0 };
    let (sel, base) = (report.selection.weight, report.baseline.weight);
    let floats = |f: &dyn Fn(&super::analyze::Finding) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(found.iter().map(f)))
    };
    let ints = |f: &dyn Fn(&super::analyze::Finding) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(found.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(1..=found.len() as i64)),
        Arc::new(StringArray::from_iter_values(
            found.iter().map(|x| report.finding_text(&x.terms)),
        )),
        ints(&|x| x.terms.len() as i64),
        floats(&|x| share(x.selection.weight, sel)),
        floats(&|x| share(x.baseline.weight, base)),
        floats(&|x| x.assessment.risk_ratio),
        floats(&|x| x.assessment.lower),
        floats(&|x| x.assessment.upper),
        floats(&|x| x.assessment.p_value),
        ints(&|x| x.selection.rows as i64),
        ints(&|x| x.baseline.rows as i64),
        floats(&|x| x.selection.weight),
        floats(&|x| x.baseline.weight),
        Arc::new(StringArray::from_iter(found.iter().map(|x| {
            (!x.implies.is_empty()).then(|| report.finding_text(&x.implies))
        }))),
        Arc::new(Float64Array::from_iter(
            found.iter().map(|x| x.assessment.shift.map(|s| s.ratio)),
        )),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
