//! The question asked of a dataset: which fields' values does the selection over-represent?
//! A probe of the window's first rows for fields that identify events (see
//! [`PROBE_ROWS_PER_VALUE`]), then two passes of DataFusion over the window, each folded
//! partition by partition on every core: one that hands `(selected, weight, fields..., measures...)` batches to [`Counts`]
//! (numbers by fine buckets, binned by their deciles at the end, and correlated with the
//! measures, see [`numeric`]), then one for pairs and triples of the candidate values (see
//! [`rank::combination_candidates`]).
//!
//! [`numeric`]: super::numeric

use std::collections::HashMap;

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch};
use datafusion::arrow::compute::{cast, filter_record_batch, is_null};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::DFSchema;
use datafusion::logical_expr::ExprSchemable;

use super::combos::{self, Combination, Combos, Term};
use super::counts::{self, Bins, Counting, Counts, FieldCounts};
use super::numeric;
use super::order;
use super::rank::{self, Explanation};
use super::stats::{self, Cell, Thresholds};
use super::summary::{self, Summary};
use super::view::{self, FieldView};
use crate::{Error, QueryEngine, Result};

/// What to compare.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub dataset: String,
    /// An SQL predicate over the events: `duration_ms > 800`, `error`.
    pub selection: String,
    /// The events to compare with; the rest of the window when `None`.
    pub baseline: Option<String>,
    /// The window, in microseconds since the Unix epoch; open ends when `None`.
    pub since_us: Option<i64>,
    pub until_us: Option<i64>,
    pub thresholds: Thresholds,
    pub limits: counts::Limits,
    /// Most explanations reported.
    pub top: usize,
    /// Whether files with summaries are counted from them (see [`summary`]): the same
    /// answer either way, so only to compare (the benchmark) or to rule them out.
    pub summaries: bool,
}

impl Question {
    pub fn new(dataset: &str, selection: &str) -> Question {
        Question {
            dataset: dataset.to_owned(),
            selection: selection.to_owned(),
            baseline: None,
            since_us: None,
            until_us: None,
            thresholds: Thresholds::default(),
            limits: counts::Limits::default(),
            top: 20,
            summaries: true,
        }
    }
}

/// The answer.
#[derive(Debug, Clone)]
pub struct Report {
    pub selection: Cell,
    pub baseline: Cell,
    /// The fields compared.
    pub fields: Vec<String>,
    /// Fields left out because they identify events (too many distinct values).
    pub identifiers: Vec<String>,
    /// Fields left out because the selection or baseline is defined on them.
    pub defining: Vec<String>,
    /// The measure the selection is a threshold on, when it is one (`duration_ms`): each
    /// finding's [`super::shift::Shift`] compares its events' measure with the rest's.
    pub measure: Option<String>,
    /// Numeric fields left out because they follow a numeric field the selection is defined
    /// on (`cpu.time_ms` when the selection is `duration_ms > 800`): `(field, measure, r)`,
    /// see [`FOLLOWS_MEASURE`].
    pub following: Vec<(String, String, f64)>,
    /// Fields that separate the selection from the baseline by definition (see
    /// [`rank::restating`]): compared and drawn, never ranked.
    pub restating: Vec<String>,
    /// Values always selected, with their share of the selection (see
    /// [`rank::always_selected`]): named, never ranked.
    pub always_selected: Vec<(String, counts::Value, f64)>,
    pub explanations: Vec<Explanation>,
    /// `(candidates, combined)`: how many values the conjunction pass was to combine, and how
    /// many it did. Fewer when the events' distinct sets of candidates passed
    /// [`combos::MAX_SETS`] and the weakest were dropped to bound memory: conjunctions of the
    /// dropped ones were not tried.
    pub conjunction_candidates: (usize, usize),
    /// Conjunctions of two or three values whose evidence beats each of their terms'.
    pub combinations: Vec<Combination>,
    /// The bin edges of each binned (numeric) field, to show a bin as its range.
    pub bins: Vec<(String, Bins)>,
    /// Field by field, the selection's and the baseline's values (BubbleUp's view).
    pub by_field: Vec<FieldView>,
    /// Files the window held whole whose rows were counted from their summaries (only their
    /// selected rows read one by one; see [`summary`]).
    pub files_summarized: usize,
}

/// One entry of the ranked answer: a value or a conjunction, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub terms: Vec<(String, counts::Value)>,
    pub selection: Cell,
    pub baseline: Cell,
    pub assessment: super::stats::Assessment,
    /// Values a single term implies, or terms a conjunction's are interchangeable with,
    /// folded into it.
    pub implies: Vec<(String, counts::Value)>,
    /// What the answer is ranked by (see [`Explanation::score`]).
    pub score: f64,
    /// Other conjunctions that match exactly the same events.
    pub same_events: Vec<Vec<(String, counts::Value)>>,
    /// Findings that are nearly the same events (see [`super::order::nearly_same`]).
    pub nearly_same: Vec<Vec<(String, counts::Value)>>,
}

impl Report {
    /// Single values and conjunctions in one list, best first (by the lower bound of the risk
    /// ratio, a finding explained by another just after it: see [`super::order`]), at most
    /// `top` of them.
    pub fn ranked(&self, top: usize) -> Vec<Finding> {
        let singles = self.explanations.iter().map(|e| Finding {
            terms: vec![(e.field.clone(), e.value.clone())],
            selection: e.selection,
            baseline: e.baseline,
            assessment: e.assessment,
            implies: e.implies.clone(),
            score: e.score,
            same_events: e.same_events.clone(),
            nearly_same: e.nearly_same.clone(),
        });
        let combos = self.combinations.iter().map(|c| Finding {
            terms: c.terms.clone(),
            selection: c.selection,
            baseline: c.baseline,
            assessment: c.assessment,
            implies: c.implies.clone(),
            score: c.score,
            same_events: c.same_events.clone(),
            nearly_same: c.nearly_same.clone(),
        });
        let mut all: Vec<Finding> = singles.chain(combos).collect();
        // Stable: among equal bounds, singles (listed first) before conjunctions.
        all.sort_by(|a, b| b.score.total_cmp(&a.score));
        all.truncate(top);
        all
    }

    /// Where (1-based, within the first `top`) the report names exactly `terms`, given as
    /// `(field, value)` with the value as its plain text (`6.8`, `true`, `42`, a bin's range):
    /// the same terms, directly, through the values a single term implies, or as another
    /// name for exactly the finding's events (`same_events`). For a UI that
    /// highlights a known suspect, and for scoring the engine against planted causes.
    pub fn rank_of(&self, terms: &[(String, String)], top: usize) -> Option<usize> {
        let plain = |field: &str, v: &counts::Value| match v {
            counts::Value::Str(s) => s.clone(),
            counts::Value::Bool(b) => b.to_string(),
            counts::Value::Int(i) => i.to_string(),
            other => self.value_text(field, other),
        };
        let names_in = |these: &[(String, counts::Value)], implies: &[(String, counts::Value)]| {
            these.len() == terms.len() && {
                let named: Vec<(String, String)> = these
                    .iter()
                    .chain(implies)
                    .map(|(field, v)| (field.clone(), plain(field, v)))
                    .collect();
                terms.iter().all(|t| named.contains(t))
            }
        };
        // The finding's own terms, or another name for exactly its events.
        let names = |f: &Finding| {
            names_in(&f.terms, &f.implies) || f.same_events.iter().any(|s| names_in(s, &[]))
        };
        self.ranked(top).iter().position(names).map(|i| i + 1)
    }

    /// `field = value` as a reader (and SQL) writes it: `os.kernel = '6.8'`,
    /// `build.memory_mb in [7800, 8200)`, `error.type IS NULL`.
    pub fn term_text(&self, field: &str, value: &counts::Value) -> String {
        use counts::Value as V;
        match (value, self.describe(field, value)) {
            (V::Null, _) => format!("{field} IS NULL"),
            (V::Str(s), _) => format!("{field} = '{}'", s.replace('\'', "''")),
            (V::Bin(_), serde_json::Value::String(range)) => match range.split_once(' ') {
                // `< 100`, `>= 900`
                Some((op, _)) if op == "<" || op == ">=" => format!("{field} {range}"),
                _ => format!("{field} in {range}"),
            },
            (_, v) => format!("{field} = {v}"),
        }
    }

    /// `value` alone, written the way [`Report::term_text`] writes it (SQL literals, so a
    /// reader can paste it into `--where`).
    pub fn value_text(&self, field: &str, value: &counts::Value) -> String {
        use counts::Value as V;
        match (value, self.describe(field, value)) {
            (V::Null, _) => "NULL".to_owned(),
            (V::Str(s), _) => format!("'{}'", s.replace('\'', "''")),
            (_, serde_json::Value::String(range)) => range,
            (_, v) => v.to_string(),
        }
    }

    /// The terms of a finding joined with AND.
    pub fn finding_text(&self, terms: &[(String, counts::Value)]) -> String {
        terms
            .iter()
            .map(|(f, v)| self.term_text(f, v))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// `value` of `field` as a reader wants it: a bin as its range (`[7800, 8200)`).
    pub fn describe(&self, field: &str, value: &counts::Value) -> serde_json::Value {
        use counts::Value as V;
        match value {
            V::Null => serde_json::Value::Null,
            V::Bool(b) => (*b).into(),
            V::Int(i) => (*i).into(),
            V::Str(s) => s.as_str().into(),
            V::Bin(i) => {
                let edges = self
                    .bins
                    .iter()
                    .find(|(f, _)| f == field)
                    .map(|(_, b)| b.edges.as_slice())
                    .unwrap_or(&[]);
                let i = usize::from(*i);
                let lo = i.checked_sub(1).and_then(|j| edges.get(j));
                let hi = edges.get(i);
                match (lo, hi) {
                    (Some(lo), Some(hi)) => format!("[{lo}, {hi})"),
                    (None, Some(hi)) => format!("< {hi}"),
                    (Some(lo), None) => format!(">= {lo}"),
                    (None, None) => "any".to_owned(),
                }
                .into()
            }
        }
    }

    /// The report as JSON: totals, the fields compared and left out, the single-field
    /// explanations and the conjunctions, each with its shares, ratio, bound and raw counts.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let cell =
            |c: &Cell| json!({"weight": c.weight, "rows": c.rows, "effective": c.effective()});
        let stats = |a: &super::stats::Assessment, sel: &Cell, base: &Cell| {
            json!({
                "selection_share": a.support,
                "baseline_share": a.baseline_share,
                "risk_ratio": if a.risk_ratio.is_finite() { json!(a.risk_ratio) } else { json!("inf") },
                "risk_ratio_95": [a.lower, a.upper],
                "p_value": a.p_value,
                "measure_shift": a.shift.map(|s| json!({"ratio": s.ratio, "p_value": s.p_value})),
                "selection": cell(sel),
                "baseline": cell(base),
            })
        };
        let term = |f: &str, v: &counts::Value| json!({"field": f, "value": self.describe(f, v)});
        let same_events = |sets: &[Vec<(String, counts::Value)>]| -> serde_json::Value {
            sets.iter()
                .map(|s| {
                    s.iter()
                        .map(|(f, v)| term(f, v))
                        .collect::<serde_json::Value>()
                })
                .collect()
        };
        json!({
            "selection": cell(&self.selection),
            "baseline": cell(&self.baseline),
            "fields": self.fields,
            "measure": self.measure,
            "left_out": {
                "identifiers": self.identifiers,
                "defining_the_selection": self.defining,
                "following_the_measure": self.following.iter().map(|(f, m, r)| {
                    json!({"field": f, "measure": m, "correlation": r})
                }).collect::<Vec<_>>(),
                "restating_the_selection": self.restating,
                "always_selected": self.always_selected.iter().map(|(f, v, share)| {
                    json!({"field": f, "value": self.describe(f, v), "selection_share": share})
                }).collect::<Vec<_>>(),
            },
            "files_summarized": self.files_summarized,
            "conjunction_candidates": {
                "candidates": self.conjunction_candidates.0,
                "combined": self.conjunction_candidates.1,
            },
            "explanations": self.explanations.iter().map(|e| {
                let mut j = stats(&e.assessment, &e.selection, &e.baseline);
                j["terms"] = json!([term(&e.field, &e.value)]);
                j["implies"] = e.implies.iter().map(|(f, v)| term(f, v)).collect();
                j["same_events"] = same_events(&e.same_events);
                j["nearly_same_events"] = same_events(&e.nearly_same);
                j
            }).collect::<Vec<_>>(),
            "combinations": self.combinations.iter().map(|c| {
                let mut j = stats(&c.assessment, &c.selection, &c.baseline);
                j["terms"] = c.terms.iter().map(|(f, v)| term(f, v)).collect();
                j["implies"] = c.implies.iter().map(|(f, v)| term(f, v)).collect();
                j["same_events"] = same_events(&c.same_events);
                j["nearly_same_events"] = same_events(&c.nearly_same);
                j
            }).collect::<Vec<_>>(),
            "by_field": self.by_field.iter().map(|v| {
                let share = |c: &Cell, total: &Cell| {
                    if total.weight > 0.0 { c.weight / total.weight } else { 0.0 }
                };
                let side = |s: &Cell, b: &Cell| json!({
                    "selection_share": share(s, &self.selection),
                    "baseline_share": share(b, &self.baseline),
                    "selection_rows": s.rows,
                    "baseline_rows": b.rows,
                });
                json!({
                    "field": v.field,
                    "difference": v.difference,
                    "values": v.values.iter().map(|(val, s, b)| {
                        let mut j = side(s, b);
                        j["value"] = self.describe(&v.field, val);
                        j
                    }).collect::<Vec<_>>(),
                    "rest": side(&v.rest[0], &v.rest[1]),
                })
            }).collect::<Vec<_>>(),
        })
    }
}

/// The correlation (of logs, over the events compared) at which a numeric field is taken to follow
/// the measure the selection is defined on. A share of it (CPU time, 10-60% of duration)
/// correlates at ~0.9; fields that merely tend to come with slow requests (row counts,
/// payload sizes, a database's time capped by the request's) stay well below.
pub const FOLLOWS_MEASURE: f64 = 0.7;

/// The measure a selection is a threshold on (`"duration_ms" > 812.5`, which `--above p95
/// duration_ms` becomes, or `>=`): a numeric column compared with a literal, nothing else.
/// Then whether a candidate's events have a higher measure is evidence too (see
/// [`super::shift`]).
fn threshold_measure(expr: &datafusion::logical_expr::Expr, schema: &DFSchema) -> Option<String> {
    use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else {
        return None;
    };
    let literal = |e: &Expr| match e {
        Expr::Literal(..) => true,
        Expr::Cast(c) => matches!(*c.expr, Expr::Literal(..)),
        _ => false,
    };
    let column = match (left.as_ref(), op, right.as_ref()) {
        (Expr::Column(c), Operator::Gt | Operator::GtEq, r) if literal(r) => c,
        (l, Operator::Lt | Operator::LtEq, Expr::Column(c)) if literal(l) => c,
        _ => return None,
    };
    let field = schema.field_with_unqualified_name(&column.name).ok()?;
    field.data_type().is_numeric().then(|| column.name.clone())
}

/// Fields that are never explanations: the time, the weight, trace linkage and the partition
/// columns (all identify or merely locate events).
const NEVER: &[&str] = &[
    "timestamp",
    "sample_rate",
    "trace.trace_id",
    "trace.span_id",
    "trace.parent_id",
    "date",
    "hour",
];

/// ` WHERE ...` for a window of `[since, until)` microseconds, or nothing for an open one.
pub(crate) fn window_filter(since_us: Option<i64>, until_us: Option<i64>) -> String {
    let mut window = Vec::new();
    if let Some(s) = since_us {
        window.push(format!("timestamp >= to_timestamp_micros({s})"));
    }
    if let Some(u) = until_us {
        window.push(format!("timestamp < to_timestamp_micros({u})"));
    }
    if window.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", window.join(" AND "))
    }
}

/// `name` as an SQL identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether a field of this name and type is compared between the sides (its values can be
/// explanations), whatever the question: not one of [`NEVER`], nor loupe's own (`meta.`), nor
/// the raw text kept beside a field whose value did not fit its type (`.__raw`), and of a
/// type whose values can be counted.
pub(crate) fn compared(name: &str, dt: &DataType) -> bool {
    !NEVER.contains(&name)
        && !name.starts_with("meta.")
        && !name.ends_with(".__raw")
        && comparable(dt)
}

fn comparable(dt: &DataType) -> bool {
    match dt {
        DataType::Dictionary(_, v) => comparable(v),
        dt => {
            dt.is_numeric()
                || matches!(
                    dt,
                    DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Boolean
                )
        }
    }
}

/// The findings (strongest first) whose overlaps are measured for the order of the answer
/// (see [`order`]): enough for the top of any report, few enough that the walk over the
/// conjunction pass's sets stays a fraction of the pass.
const OVERLAPS_AMONG: usize = 64;

/// The first rows of the window read for identifiers before the counting pass, per value a
/// field may have (`Limits::max_distinct`): 20,000 rows by default, a few milliseconds.
const PROBE_ROWS_PER_VALUE: usize = 4;

/// How long each phase of a question took, for the debug log (`LOUPE_LOG=loupe_query=debug`).
struct Phases {
    last: std::time::Instant,
    took: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn start() -> Phases {
        Phases {
            last: std::time::Instant::now(),
            took: Vec::new(),
        }
    }

    /// Ends the phase `name`: the time since the last mark.
    fn mark(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.took.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, took)) in self.took.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {} ms", took.as_millis())?;
        }
        Ok(())
    }
}

/// The numbers' bins: their weighted deciles over the counted events.
pub const DECILES: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

impl QueryEngine {
    /// Every row of `sql` (a pass, see `Counts::add`) counted.
    async fn count_rows(
        &self,
        sql: &str,
        plan: &[(String, Counting)],
        measures: usize,
        limits: counts::Limits,
    ) -> Result<Counts> {
        let plan = plan.to_vec();
        self.fold_partitions(
            sql,
            move || Counts::counting(plan.clone(), measures),
            move |c, b| c.add(b, &limits),
            move |c, other| c.merge(other, &limits),
        )
        .await
    }

    /// The rows of `sql` (a pass whose rows are selected or on neither side) counted apart,
    /// `(selected, neither)`, each on the selection side.
    async fn count_selected_rows(
        &self,
        sql: &str,
        plan: &[(String, Counting)],
        measures: usize,
        limits: counts::Limits,
    ) -> Result<(Counts, Counts)> {
        let plan = plan.to_vec();
        self.fold_partitions(
            sql,
            move || {
                (
                    Counts::counting(plan.clone(), measures),
                    Counts::counting(plan.clone(), measures),
                )
            },
            move |(chosen, neither), b| {
                // The selected rows (a null side is not counted).
                chosen.add(b, &limits)?;
                let side = cast(b.column(0), &DataType::Boolean)?;
                let none = is_null(&side)?;
                if none.true_count() > 0 {
                    let rows = filter_record_batch(b, &none)?;
                    let mut columns = rows.columns().to_vec();
                    columns[0] = Arc::new(BooleanArray::from(vec![true; rows.num_rows()]));
                    let mut fields: Vec<Field> = rows
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.as_ref().clone())
                        .collect();
                    fields[0] = Field::new("__selected", DataType::Boolean, false);
                    let rows = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
                    neither.add(&rows, &limits)?;
                }
                Ok(())
            },
            move |(chosen, neither), (c, n)| {
                chosen.merge(c, &limits);
                neither.merge(n, &limits);
            },
        )
        .await
    }

    /// The summaries (see `summary`) of the files of `q`'s dataset that its window holds
    /// whole, usable for its question (correlated with `measures`), with the files' paths in
    /// the dataset. Read through the engine's cache (see `summary_cache`), off the caller's
    /// threads (listing and reading files block).
    /// A summary that cannot be read is passed over (its file is counted row by row).
    async fn whole_file_summaries(
        &self,
        q: &Question,
        plan: &[(String, Counting)],
        measures: &[&str],
    ) -> Vec<(String, Arc<Summary>)> {
        let Ok(name) = loupe_store::DatasetName::from_dir_name(&q.dataset) else {
            return Vec::new();
        };
        let dir = self.store().dataset(&name);
        let cache = self.summaries.clone();
        let (since, until) = (q.since_us, q.until_us);
        let overlaps = move |part: loupe_store::Partition| {
            since.is_none_or(|s| s < part.end_us()) && until.is_none_or(|u| part.start_us() < u)
        };
        let read = tokio::task::spawn_blocking(move || {
            let files = dir.parquet_files().ok()?;
            cache.retain_listed(dir.path(), &files);
            let found = files
                .into_iter()
                .filter(|p| {
                    p.parent()
                        .and_then(loupe_store::Partition::from_dir)
                        .is_none_or(overlaps)
                })
                .filter_map(|p| {
                    let s = cache
                        .get(&loupe_store::layout::summary_path(&p))
                        .inspect_err(|e| {
                            tracing::warn!(file = %p.display(), error = %e, "a summary not read");
                        })
                        .ok()??;
                    // Its path in the dataset, as `read_dictionaries` takes it.
                    let path = p.strip_prefix(dir.path()).ok()?.to_str()?.to_owned();
                    Some((path, s))
                })
                .collect::<Vec<_>>();
            Some(found)
        })
        .await;
        let Ok(Some(found)) = read else {
            return Vec::new();
        };
        let holds = |first: i64, last: i64| {
            since.is_none_or(|s| s <= first) && until.is_none_or(|u| last < u)
        };
        found
            .into_iter()
            .filter(|(_, s)| {
                // A number the file has no column for (a field added since) has no
                // co-moments in its summary: that file is counted event by event.
                let numbers_held = plan
                    .iter()
                    .filter(|(_, c)| matches!(c, Counting::Deciles | Counting::IntegersUpTo(_)))
                    .all(|(n, _)| s.fields.iter().any(|f| f.name == *n));
                s.version == summary::VERSION
                    && s.max_distinct == q.limits.max_distinct
                    && holds(s.first_us, s.last_us)
                    && measures.iter().all(|m| s.measures.iter().any(|x| x == m))
                    && numbers_held
            })
            .collect()
    }

    /// Answers `q` (see the module doc). A question whose files compaction merged while it
    /// read them (its passes, or a file it counts from its summary) is asked again, up to
    /// eight times in all, as [`QueryEngine::sql`] runs a query again.
    pub async fn outliers(&self, q: &Question) -> Result<Report> {
        let mut attempt = 1;
        loop {
            match self.outliers_once(q).await {
                Err(Error::FilesMerged(e)) if attempt < crate::engine::ATTEMPTS => {
                    tracing::debug!(attempt, error = %e, "files merged under the question; asking again");
                    attempt += 1;
                }
                answer => return answer,
            }
        }
    }

    async fn outliers_once(&self, q: &Question) -> Result<Report> {
        let table = ident(&q.dataset);
        let (schema, _) = self
            .describe(&format!("SELECT * FROM {table} LIMIT 0"))
            .await?;
        let df_schema = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|e| Error::Execution(e.to_string()))?;
        let mut defining: Vec<String> = Vec::new();
        let mut threshold_on: Option<String> = None;
        for (what, pred) in [
            ("selection", Some(&q.selection)),
            ("baseline", q.baseline.as_ref()),
        ] {
            let Some(pred) = pred else { continue };
            let expr = self
                .context()
                .parse_sql_expr(pred, &df_schema)
                .map_err(|e| {
                    Error::Query(format!("the {what} `{pred}`: {}", e.strip_backtrace()))
                })?;
            // A predicate: true, false or null per event (the passes read it as such).
            match expr.get_type(&df_schema) {
                Ok(DataType::Boolean | DataType::Null) => {}
                Ok(other) => {
                    return Err(Error::Query(format!(
                        "the {what} `{pred}` is not a predicate: it is {other}, where true \
                         or false is wanted (a comparison such as `duration_ms > 800`)"
                    )));
                }
                Err(e) => {
                    return Err(Error::Query(format!(
                        "the {what} `{pred}`: {}",
                        e.strip_backtrace()
                    )));
                }
            }
            for c in expr.column_refs() {
                if !defining.contains(&c.name) {
                    defining.push(c.name.clone());
                }
            }
            if what == "selection" && q.baseline.is_none() {
                threshold_on = threshold_measure(&expr, &df_schema);
            }
        }
        let fields: Vec<(String, DataType)> = schema
            .fields()
            .iter()
            .filter(|f| compared(f.name(), f.data_type()) && !defining.contains(f.name()))
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();

        let filter = window_filter(q.since_us, q.until_us);

        let measures: Vec<&str> = defining
            .iter()
            .filter(|d| {
                schema
                    .field_with_name(d)
                    .is_ok_and(|f| f.data_type().is_numeric())
            })
            .map(String::as_str)
            .collect();
        // True for the selection, false for the baseline, null for neither. Against the rest
        // of the window that is the selection predicate itself (null where it is null, as
        // the `CASE` would give), which DataFusion evaluates faster than the `CASE`.
        let selected = match &q.baseline {
            Some(b) => format!(
                "CASE WHEN ({sel}) THEN true WHEN ({b}) THEN false END",
                sel = q.selection
            ),
            None => format!("({})", q.selection),
        };
        // The passes read strings as dictionaries: a value is looked up once per column chunk
        // and each row is a key (see `values::sized_slots`), where a view would be built and
        // hashed per row.
        let source = format!(
            "{}('{}')",
            crate::table::READ_DICTIONARIES,
            q.dataset.replace('\'', "''")
        );
        // `(selected, weight, fields..., measures...)` for the fields named, from `source`,
        // of the rows in the window that `condition` (if any) holds for.
        let pass_sql_over =
            |source: &str, names: &[String], measures: &[&str], condition: Option<&str>| {
                let columns: Vec<String> = names
                    .iter()
                    .map(|n| ident(n))
                    .chain(
                        measures
                            .iter()
                            .enumerate()
                            .map(|(k, m)| format!("CAST({} AS DOUBLE) AS __measure{k}", ident(m))),
                    )
                    .collect();
                let filter = match (condition, filter.is_empty()) {
                    (None, _) => filter.clone(),
                    (Some(c), true) => format!(" WHERE {c}"),
                    (Some(c), false) => format!("{filter} AND {c}"),
                };
                format!(
                    "SELECT {selected} AS __selected, sample_rate{sep}{cols} FROM {source}{filter}",
                    sep = if columns.is_empty() { "" } else { ", " },
                    cols = columns.join(", "),
                )
            };
        let pass_sql =
            |names: &[String], measures: &[&str]| pass_sql_over(&source, names, measures, None);
        let limits = q.limits;
        // Fields that identify events, told from the window's first rows: one with more than
        // `max_distinct` values among them has more in the window, so the counting pass would
        // give up on it after a batch or two and still read its column to the end (a user id,
        // a client address: the costliest columns to read).
        let texts: Vec<String> = fields
            .iter()
            .filter(|(_, dt)| numeric::counting(dt) == Counting::Values)
            .map(|(n, _)| n.clone())
            .collect();
        let probe_rows = limits.max_distinct.saturating_mul(PROBE_ROWS_PER_VALUE);
        let mut phases = Phases::start();
        let probe = self
            .fold_batches(
                &format!("{} LIMIT {probe_rows}", pass_sql(&texts, &[])),
                Counts::new(&texts, vec![]),
                move |c, b| c.add(b, &limits),
            )
            .await?;
        phases.mark("probe");
        let order: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
        let early: Vec<String> = probe
            .fields
            .iter()
            .filter(|f| f.identifier)
            .map(|f| f.name.clone())
            .collect();
        let fields: Vec<(String, DataType)> = fields
            .into_iter()
            .filter(|(n, _)| !early.contains(n))
            .collect();
        let names: Vec<String> = fields.iter().map(|(n, _)| n.clone()).collect();
        // One scan counts every field, numbers by fine buckets (their bins are the compared
        // events' deciles, known at the end), and correlates the numbers with the measures.
        // Counting is most of the pass's work: each partition counts apart, on its own core.
        let plan: Vec<(String, Counting)> = fields
            .iter()
            .map(|(n, dt)| (n.clone(), numeric::counting(dt)))
            .collect();
        // The files the window holds whole and that have summaries: only their selected
        // rows and those on neither side are counted (see `summary`). With a baseline of its
        // own, the rows on neither side may be most of them: counting those costs about what
        // counting the baseline would, so summaries are still no slower.
        let whole = match q.summaries {
            true => self.whole_file_summaries(q, &plan, &measures).await,
            false => Vec::new(),
        };
        phases.mark("summaries");
        let dataset = q.dataset.replace('\'', "''");
        let listed = whole
            .iter()
            .map(|(name, _)| name.replace('\'', "''"))
            .collect::<Vec<_>>()
            .join(",");
        let files = |which: &str| {
            format!(
                "{}('{dataset}', '{which}', '{listed}')",
                crate::table::READ_DICTIONARIES
            )
        };
        let rest_sql = match whole.is_empty() {
            true => pass_sql(&names, &measures),
            false => pass_sql_over(&files("except"), &names, &measures, None),
        };
        let mut counts = self
            .count_rows(&rest_sql, &plan, measures.len(), limits)
            .await?;
        let mut files_summarized = whole.len();
        if !whole.is_empty() {
            let condition = format!("({selected}) IS NOT FALSE");
            let sql = pass_sql_over(&files("only"), &names, &measures, Some(&condition));
            let (chosen, neither) = self
                .count_selected_rows(&sql, &plan, measures.len(), limits)
                .await?;
            let summaries: Vec<&Summary> = whole.iter().map(|(_, s)| s.as_ref()).collect();
            match summary::counts_of_whole_files(
                &plan, &measures, &summaries, chosen, neither, &limits,
            ) {
                Some(mut of_whole) => {
                    of_whole.merge(counts, &limits);
                    counts = of_whole;
                }
                None => {
                    // A summary not of its file: every row of every file counted, as
                    // without summaries.
                    tracing::warn!(
                        dataset = %q.dataset,
                        "a file's summary does not match its rows; counting every row"
                    );
                    let sql = pass_sql(&names, &measures);
                    counts = self.count_rows(&sql, &plan, measures.len(), limits).await?;
                    files_summarized = 0;
                }
            }
        }
        phases.mark("counting pass");
        counts.finish(&DECILES);
        // The probe's identifiers back among the fields, in the schema's order.
        counts
            .fields
            .extend(early.iter().map(|n| FieldCounts::identifier(n)));
        counts
            .fields
            .sort_by_key(|f| order.iter().position(|n| *n == f.name));
        // Numbers that follow a measure: left out, and named with their correlation.
        let mut following: Vec<(String, String, f64)> = Vec::new();
        for (m, measure) in measures.iter().enumerate() {
            for f in &counts.fields {
                if let Some(r) = f.correlation(m).filter(|r| *r >= FOLLOWS_MEASURE)
                    && !following.iter().any(|(o, _, _)| *o == f.name)
                {
                    following.push((f.name.clone(), (*measure).to_owned(), r));
                }
            }
        }
        counts
            .fields
            .retain(|f| !following.iter().any(|(o, _, _)| *o == f.name));
        let names: Vec<String> = counts.fields.iter().map(|f| f.name.clone()).collect();
        let bins: Vec<Option<Bins>> = counts.fields.iter().map(|f| f.bins.clone()).collect();
        let report_bins: Vec<(String, Bins)> = names
            .iter()
            .zip(&bins)
            .filter_map(|(n, b)| Some((n.clone(), b.clone()?)))
            .collect();
        let (mut explanations, mut tested) = rank::single_fields(&counts, &q.thresholds);
        let restating = rank::restating(&counts, &q.thresholds);
        let always_selected = rank::always_selected(&counts, &q.thresholds, &restating);
        explanations.retain(|e| {
            !restating.contains(&e.field)
                && !always_selected
                    .iter()
                    .any(|(f, v, _)| *f == e.field && *v == e.value)
        });
        let by_field = view::by_field(&counts, &explanations);

        // Pairs and triples of the candidates, in a second scan.
        let left_out = |f: &str, v: &counts::Value| {
            restating.iter().any(|r| r == f)
                || always_selected.iter().any(|(af, av, _)| af == f && av == v)
        };
        phases.mark("single fields");
        let candidates =
            rank::combination_candidates(&counts, &q.thresholds, left_out, combos::MAX_CANDIDATES);
        let mut combinations = Vec::new();
        // The conjunction pass's sets, kept to find the events findings share.
        let mut sets: Option<Combos> = None;
        // `(a, b)`: every event with value `a` has value `b` (a pod its host's zone).
        let mut implied_terms: Vec<(order::Term, order::Term)> = Vec::new();
        if candidates.len() >= 2 {
            // Only the candidates' fields are read (some of the columns), so their positions
            // are among those.
            let mut used: Vec<usize> = candidates.iter().map(|(f, ..)| *f).collect();
            used.sort_unstable();
            used.dedup();
            let used_names: Vec<String> = used.iter().map(|&i| names[i].clone()).collect();
            let used_bins: Vec<Option<Bins>> = used.iter().map(|&i| bins[i].clone()).collect();
            let terms: Vec<Term> = candidates
                .iter()
                .map(|(field, value, _)| Term {
                    field: used.binary_search(field).unwrap_or(0),
                    value: value.clone(),
                })
                .collect();
            // Each candidate's `[selection, baseline]` cells: the parts a conjunction is
            // tested against, and what an implication is told by.
            let cells: Vec<[Cell; 2]> = candidates.iter().map(|(.., c)| *c).collect();
            // Each partition finds its rows' sets on its own core.
            let with_measure = threshold_on.is_some();
            let max_sets = q.limits.max_sets;
            let combos = self
                .fold_partitions(
                    &pass_sql(&used_names, threshold_on.as_deref().as_slice()),
                    move || Combos::new(terms.clone(), with_measure).with_max_sets(max_sets),
                    move |c, b| c.add(b, &used_bins),
                    |c, other| c.merge(other),
                )
                .await?;
            phases.mark("conjunction pass");
            let found = combos.rank(
                &cells,
                &used_names,
                counts.selection,
                counts.baseline,
                &q.thresholds,
            );
            combinations = found.combinations;
            tested += found.tested;
            phases.mark("conjunctions");
            // The measure's evidence for the candidates that are explanations alone.
            for ((field, value, _), shift) in candidates.iter().zip(&found.single_shifts) {
                if let Some(e) = explanations
                    .iter_mut()
                    .find(|e| e.field == names[*field] && e.value == *value)
                {
                    e.assessment = e.assessment.with_shift(*shift);
                }
            }
            let term = |c: usize| {
                let (field, value, _) = &candidates[c];
                (names[*field].clone(), value.clone())
            };
            implied_terms = found
                .implications
                .iter()
                .map(|&(x, y)| (term(x), term(y)))
                .collect();
            sets = Some(combos);
        }
        // Held to the false discovery rate over every candidate tried, singles and
        // conjunctions alike (see `stats`): only what passes is reported.
        let p_values = explanations
            .iter()
            .map(|e| e.assessment.p_value)
            .chain(combinations.iter().map(|c| c.assessment.p_value))
            .collect();
        let cutoff = stats::fdr_cutoff(p_values, tested, q.thresholds.false_discovery_rate);
        explanations.retain(|e| e.assessment.p_value <= cutoff);
        combinations.retain(|c| c.assessment.p_value <= cutoff);
        // A value implied by a stronger one and over-represented only through it (a host's
        // zone) is folded into it. After the cut, so nothing is folded into a value that
        // is then dropped.
        let position = |(field, value): &order::Term| {
            explanations
                .iter()
                .position(|e| e.field == *field && e.value == *value)
        };
        let implications: Vec<(usize, usize)> = implied_terms
            .iter()
            .filter_map(|(x, y)| Some((position(x)?, position(y)?)))
            .collect();
        rank::fold_implied(
            &mut explanations,
            &implications,
            counts.selection,
            counts.baseline,
            &q.thresholds,
        );
        rank::fold_same_events(&mut explanations, &mut combinations);
        // Where findings nest, the one that explains the other first.
        let single_terms: Vec<[order::Term; 1]> = explanations
            .iter()
            .map(|e| [(e.field.clone(), e.value.clone())])
            .collect();
        let items: Vec<order::Item<'_>> = explanations
            .iter()
            .zip(&single_terms)
            .map(|(e, terms)| order::Item {
                terms,
                implies: &e.implies,
                cells: [e.selection, e.baseline],
                lower: e.assessment.lower,
            })
            .chain(combinations.iter().map(|c| order::Item {
                terms: &c.terms,
                implies: &c.implies,
                cells: [c.selection, c.baseline],
                lower: c.assessment.lower,
            }))
            .collect();
        // The events each pair of findings shares, where both are made of candidates: the
        // conjunction of their terms, summed from the conjunction pass's sets.
        let shared = match &sets {
            Some(sets) => {
                let candidate = |field: &str, value: &counts::Value| {
                    candidates
                        .iter()
                        .position(|(f, v, _)| names[*f] == field && v == value)
                        .filter(|&i| i < sets.terms.len())
                };
                let as_set = |terms: &[order::Term]| {
                    terms.iter().try_fold(0u128, |set, (field, value)| {
                        Some(set | 1 << candidate(field, value)?)
                    })
                };
                // The strongest findings only: the walk costs sets x findings.
                let mut strongest: Vec<usize> = (0..items.len()).collect();
                strongest.sort_by(|&a, &b| items[b].lower.total_cmp(&items[a].lower));
                strongest.truncate(OVERLAPS_AMONG);
                let finding_sets: Vec<u128> = (0..items.len())
                    .map(|i| {
                        if strongest.contains(&i) {
                            as_set(items[i].terms).unwrap_or(0)
                        } else {
                            0
                        }
                    })
                    .collect();
                sets.intersections(&finding_sets)
            }
            None => HashMap::new(),
        };
        // Asked for every pair of findings and each of their terms: looked up, not scanned.
        let mut implied_by: HashMap<&order::Term, Vec<&order::Term>> = HashMap::new();
        for (x, y) in &implied_terms {
            implied_by.entry(x).or_default().push(y);
        }
        let implies =
            |a: &order::Term, b: &order::Term| implied_by.get(a).is_some_and(|ys| ys.contains(&b));
        let shared = |i: usize, j: usize| shared.get(&(i.min(j), i.max(j))).copied();
        let keys = order::keys(
            &items,
            implies,
            shared,
            counts.selection,
            counts.baseline,
            &q.thresholds,
            q.thresholds.false_discovery_rate / tested.max(1) as f64,
        );
        let nearly_same = order::nearly_same(&items, implies, shared, &q.thresholds);
        let (single_keys, combo_keys) = keys.split_at(explanations.len());
        for (e, k) in explanations.iter_mut().zip(single_keys) {
            e.score = *k;
        }
        for (c, k) in combinations.iter_mut().zip(combo_keys) {
            c.score = *k;
        }
        rank::fold_nearly_same(&mut explanations, &mut combinations, &nearly_same);
        explanations.sort_by(|a, b| b.score.total_cmp(&a.score));
        combinations.sort_by(|a, b| b.score.total_cmp(&a.score));
        explanations.truncate(q.top);
        combinations.truncate(q.top);
        phases.mark("order");
        tracing::debug!(dataset = %q.dataset, phases = %phases, "outliers: where the time went");
        Ok(Report {
            selection: counts.selection,
            baseline: counts.baseline,
            identifiers: counts
                .fields
                .iter()
                .filter(|f| f.identifier)
                .map(|f| f.name.clone())
                .collect(),
            fields: names,
            defining,
            measure: threshold_on,
            following,
            restating,
            always_selected,
            explanations,
            conjunction_candidates: (candidates.len(), sets.as_ref().map_or(0, |s| s.terms.len())),
            combinations,
            bins: report_bins,
            by_field,
            files_summarized,
        })
    }
}
