//! SLO definitions in OpenSLO v1 YAML (<https://github.com/OpenSLO/OpenSLO>, `kind: SLO`),
//! read into [`Slo`]. The metric source is loupe itself: a dataset and SQL predicates over
//! its events.
//!
//! ```yaml
//! apiVersion: openslo/v1
//! kind: SLO
//! metadata: {name: checkout-availability}
//! spec:
//!   service: checkout
//!   indicator:
//!     metadata: {name: checkout-ok}
//!     spec:
//!       ratioMetric:
//!         counter: true
//!         good:  {metricSource: {type: loupe, spec: {filter: "http.status_code < 500"}}}
//!         total: {metricSource: {type: loupe, spec: {dataset: api, filter: "name = 'http.request'"}}}
//!   timeWindow: [{duration: 28d, isRolling: true}]
//!   budgetingMethod: Occurrences
//!   objectives: [{target: 0.999}]
//! ```
//!
//! What loupe reads, and what it decided where the spec is silent:
//! - `ratioMetric` with `good` or `bad`, and `total`: each a `metricSource` of `type: loupe`
//!   whose `spec.filter` is a SQL predicate over the dataset's fields. `spec.dataset` is
//!   required on `total` and, if given elsewhere, must name the same dataset. Good events are
//!   the total's events that match `good` (or do not match `bad`); a predicate that is NULL
//!   for an event (a missing field) counts as false. `raw` (a precomputed ratio) is refused:
//!   loupe computes ratios from events.
//! - `thresholdMetric`: `spec.field` is the measured field (`duration_ms`), `spec.filter`
//!   (optional) the valid events; each objective's `op` and `value` say which events are good
//!   (`op: lte, value: 300` is `duration_ms <= 300`). Events without the field are not valid.
//! - `indicatorRef` names a `kind: SLI` document loaded with the SLO.
//! - `timeWindow`: exactly one item, rolling (`isRolling: true`) or calendar (`calendar`
//!   with `startTime` "YYYY-MM-DD HH:MM:SS" and an IANA `timeZone`).
//! - `budgetingMethod`: `Occurrences`, `Timeslices` (needs `timeSliceTarget` and
//!   `timeSliceWindow`) or `RatioTimeslices` (needs `timeSliceWindow`).
//! - `objectives`: `target` in [0, 1) or `targetPercent` in [0, 100), one of them.
//! - `alertPolicies` are accepted and not read: loupe's burn-rate policy is configured on
//!   its own (see [`super::budget::Policy`]).
//!
//! Every problem in a file is reported at once, each with the path of the field that is
//! wrong (`spec.objectives[0].target`).

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::duration::Shorthand;

/// One problem in a definition: where and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// `file: path.to.field` (the file when known).
    pub path: String,
    pub message: String,
}

/// A definition that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct DefinitionError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}: {}", p.path, p.message)?;
        }
        Ok(())
    }
}

/// A usable SLO.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    pub name: String,
    pub display_name: Option<String>,
    pub service: String,
    pub description: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub dataset: String,
    pub indicator: Indicator,
    pub window: Window,
    pub method: Budgeting,
    pub objectives: Vec<Objective>,
}

/// A SQL predicate over a dataset's events, with the path it was written at (for errors).
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    pub sql: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Indicator {
    /// Good (or bad) events out of total events.
    Ratio {
        good: Option<Predicate>,
        bad: Option<Predicate>,
        total: Option<Predicate>,
    },
    /// The events whose `field` meets each objective's `op value`, out of the valid ones.
    Threshold {
        field: String,
        filter: Option<Predicate>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Window {
    Rolling(Shorthand),
    /// Calendar-aligned periods of `length`, the first starting at `start` in `zone`.
    Calendar {
        length: Shorthand,
        start: NaiveDateTime,
        zone: chrono_tz::Tz,
    },
}

impl Window {
    pub fn length(&self) -> Shorthand {
        match self {
            Window::Rolling(d) | Window::Calendar { length: d, .. } => *d,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Budgeting {
    Occurrences,
    Timeslices,
    RatioTimeslices,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::Lt => "<",
            Op::Lte => "<=",
            Op::Gt => ">",
            Op::Gte => ">=",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Objective {
    pub display_name: Option<String>,
    /// The share of good events (or slices) the SLO promises, in [0, 1).
    pub target: f64,
    /// For a threshold SLI: good events have `field op value`.
    pub threshold: Option<(Op, f64)>,
    /// Timeslices: a slice is good when its ratio is at least this.
    pub time_slice_target: Option<f64>,
    /// Timeslices and RatioTimeslices: the slice length.
    pub time_slice_window: Option<Shorthand>,
}

impl Objective {
    /// `1 - target`: the share of events (or slices) allowed to be bad.
    pub fn budget(&self) -> f64 {
        1.0 - self.target
    }
}

impl Slo {
    /// The SQL predicate of the events that count (the SLI's denominator).
    pub fn total_sql(&self) -> String {
        match &self.indicator {
            Indicator::Ratio { total, .. } => {
                total.as_ref().map_or("true".to_owned(), |p| truthy(&p.sql))
            }
            Indicator::Threshold { field, filter } => {
                let present = format!("{} IS NOT NULL", crate::outliers::analyze::ident(field));
                match filter {
                    Some(p) => format!("{} AND {present}", truthy(&p.sql)),
                    None => present,
                }
            }
        }
    }

    /// The SQL predicate of the good events among the total's, for `objective`.
    pub fn good_sql(&self, objective: &Objective) -> String {
        match &self.indicator {
            Indicator::Ratio { good: Some(g), .. } => truthy(&g.sql),
            Indicator::Ratio { bad: Some(b), .. } => format!("NOT {}", truthy(&b.sql)),
            Indicator::Ratio { .. } => "true".to_owned(),
            Indicator::Threshold { field, .. } => {
                let (op, value) = objective.threshold.unwrap_or((Op::Lte, f64::INFINITY));
                format!(
                    "{} {} {value:?}",
                    crate::outliers::analyze::ident(field),
                    op.sql()
                )
            }
        }
    }

    /// Every predicate of the definition, with its path, to check against the dataset.
    pub fn predicates(&self) -> Vec<&Predicate> {
        match &self.indicator {
            Indicator::Ratio { good, bad, total } => {
                [good, bad, total].into_iter().flatten().collect()
            }
            Indicator::Threshold { filter, .. } => filter.iter().collect(),
        }
    }
}

/// `(p)` that is false, not NULL, where `p` is NULL.
fn truthy(sql: &str) -> String {
    format!("coalesce(({sql}), false)")
}

// ---- The YAML, as OpenSLO writes it. ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    api_version: String,
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    #[serde(default)]
    spec: serde_yaml_ng::Value,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    name: String,
    display_name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, LabelValue>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum LabelValue {
    One(String),
    Many(Vec<String>),
}

impl LabelValue {
    fn text(&self) -> String {
        match self {
            LabelValue::One(s) => s.clone(),
            LabelValue::Many(v) => v.join(","),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SloSpec {
    description: Option<String>,
    service: String,
    indicator: Option<InlineSli>,
    indicator_ref: Option<String>,
    time_window: Vec<TimeWindow>,
    budgeting_method: Budgeting,
    objectives: Vec<RawObjective>,
    #[serde(default)]
    #[allow(dead_code)] // accepted, not read: see the module doc
    alert_policies: serde_yaml_ng::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InlineSli {
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Metadata,
    spec: SliSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SliSpec {
    #[allow(dead_code)]
    description: Option<String>,
    threshold_metric: Option<MetricHolder>,
    ratio_metric: Option<RatioMetric>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RatioMetric {
    #[serde(default)]
    #[allow(dead_code)] // events are counted, whatever the source's kind
    counter: bool,
    good: Option<MetricHolder>,
    bad: Option<MetricHolder>,
    total: Option<MetricHolder>,
    raw: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    raw_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetricHolder {
    metric_source: MetricSource,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MetricSource {
    #[serde(rename = "type")]
    kind: Option<String>,
    metric_source_ref: Option<String>,
    spec: LoupeSource,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoupeSource {
    dataset: Option<String>,
    filter: Option<String>,
    field: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TimeWindow {
    duration: String,
    #[serde(default)]
    is_rolling: Option<bool>,
    calendar: Option<Calendar>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Calendar {
    start_time: String,
    time_zone: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawObjective {
    display_name: Option<String>,
    op: Option<Op>,
    value: Option<f64>,
    target: Option<f64>,
    target_percent: Option<f64>,
    time_slice_target: Option<f64>,
    time_slice_window: Option<Shorthand>,
}

/// Reads every `kind: SLO` in `text` (one or more YAML documents; `kind: SLI` documents
/// serve `indicatorRef`, other kinds are skipped). `file` names the source in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Slo>, DefinitionError> {
    let mut problems = Vec::new();
    let mut slos: Vec<(String, SloSpec, Metadata)> = Vec::new();
    let mut slis: BTreeMap<String, SliSpec> = BTreeMap::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let prefix = if i == 0 {
            file.to_owned()
        } else {
            format!("{file} [document {}]", i + 1)
        };
        let at = |path: &str| located(&prefix, path);
        let document: Document = match serde_path_to_error::deserialize(doc) {
            Ok(d) => d,
            Err(e) => {
                problems.push(Problem {
                    path: at(&e.path().to_string()),
                    message: e.inner().to_string(),
                });
                // After a syntax error the document stream does not recover (the iterator
                // would yield the same error forever): what follows is not read.
                break;
            }
        };
        if document.api_version != "openslo/v1" {
            problems.push(Problem {
                path: at("apiVersion"),
                message: format!("{:?}: loupe reads openslo/v1", document.api_version),
            });
            continue;
        }
        match document.kind.as_str() {
            "SLO" => match serde_path_to_error::deserialize::<_, SloSpec>(document.spec) {
                Ok(spec) => slos.push((prefix.clone(), spec, document.metadata)),
                Err(e) => problems.push(Problem {
                    path: at(&format!("spec.{}", e.path())),
                    message: e.inner().to_string(),
                }),
            },
            "SLI" => match serde_path_to_error::deserialize::<_, SliSpec>(document.spec) {
                Ok(spec) => {
                    slis.insert(document.metadata.name.clone(), spec);
                }
                Err(e) => problems.push(Problem {
                    path: at(&format!("spec.{}", e.path())),
                    message: e.inner().to_string(),
                }),
            },
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (at, spec, metadata) in slos {
        match build(&at, spec, metadata, &slis) {
            Ok(slo) => out.push(slo),
            Err(mut p) => problems.append(&mut p),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(DefinitionError { problems })
    }
}

/// Reads the SLOs of a file, or of every `*.yaml` and `*.yml` file in a directory (in name
/// order; an `indicatorRef` is looked up in its own file). Every problem of every file is
/// reported, and two SLOs may not share a name (their buckets would).
pub fn load(path: &std::path::Path) -> Result<Vec<Slo>, DefinitionError> {
    let problem = |at: &std::path::Path, message: String| Problem {
        path: at.display().to_string(),
        message,
    };
    let files: Vec<std::path::PathBuf> = if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| DefinitionError {
            problems: vec![problem(path, format!("cannot list the directory: {e}"))],
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut slos: Vec<Slo> = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => match parse(&text, &file.display().to_string()) {
                Ok(mut found) => slos.append(&mut found),
                Err(mut e) => problems.append(&mut e.problems),
            },
            Err(e) => problems.push(problem(file, format!("cannot read it: {e}"))),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for slo in &slos {
        if !seen.insert(slo.name.as_str()) {
            problems.push(Problem {
                path: format!("{}: metadata.name", path.display()),
                message: format!("two SLOs are named {:?}: names must be unique", slo.name),
            });
        }
    }
    if problems.is_empty() {
        Ok(slos)
    } else {
        Err(DefinitionError { problems })
    }
}

/// `file: path`, or `file` alone for a problem with the whole document (serde's path `.`).
fn located(prefix: &str, path: &str) -> String {
    if path.is_empty() || path == "." {
        prefix.to_owned()
    } else {
        format!("{prefix}: {path}")
    }
}

/// An SLO's name: an RFC 1123 label, as OpenSLO requires of `metadata.name`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

fn build(
    at: &str,
    spec: SloSpec,
    metadata: Metadata,
    slis: &BTreeMap<String, SliSpec>,
) -> Result<Slo, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem = |path: &str, message: String| {
        problems.push(Problem {
            path: located(at, path),
            message,
        });
    };
    if !valid_name(&metadata.name) {
        problem(
            "metadata.name",
            format!(
                "{:?}: an SLO needs a name of at most 63 lowercase letters, digits and '-', \
                 starting and ending with a letter or digit",
                metadata.name
            ),
        );
    }

    // The indicator, inline or by reference.
    let (sli, sli_path) = match (&spec.indicator, &spec.indicator_ref) {
        (Some(i), None) => (Some(&i.spec), "spec.indicator.spec".to_owned()),
        (None, Some(r)) => match slis.get(r) {
            Some(s) => (Some(s), format!("spec.indicatorRef ({r})")),
            None => {
                problem(
                    "spec.indicatorRef",
                    format!("no kind: SLI named {r:?} was loaded with this SLO"),
                );
                (None, String::new())
            }
        },
        (Some(_), Some(_)) => {
            problem(
                "spec.indicator",
                "give indicator or indicatorRef, not both".to_owned(),
            );
            (None, String::new())
        }
        (None, None) => {
            problem(
                "spec.indicator",
                "an SLO needs an indicator (or an indicatorRef)".to_owned(),
            );
            (None, String::new())
        }
    };
    let mut dataset: Option<String> = None;
    let mut source = |holder: &MetricHolder, path: &str, problem: &mut dyn FnMut(&str, String)| {
        let src = &holder.metric_source;
        if let Some(kind) = &src.kind
            && kind != "loupe"
        {
            problem(
                &format!("{path}.metricSource.type"),
                format!("{kind:?}: loupe reads its own events (type: loupe)"),
            );
        }
        if src.metric_source_ref.is_some() {
            problem(
                &format!("{path}.metricSource.metricSourceRef"),
                "loupe's metric source is inline: give spec.dataset and spec.filter".to_owned(),
            );
        }
        if let Some(d) = &src.spec.dataset {
            match &dataset {
                Some(seen) if seen != d => problem(
                    &format!("{path}.metricSource.spec.dataset"),
                    format!("{d:?}: every part of an SLI reads one dataset ({seen:?} above)"),
                ),
                _ => dataset = Some(d.clone()),
            }
        }
        src.spec.filter.as_ref().map(|f| Predicate {
            sql: f.clone(),
            path: format!("{path}.metricSource.spec.filter"),
        })
    };
    let indicator = sli.and_then(|sli| match (&sli.ratio_metric, &sli.threshold_metric) {
        (Some(r), None) => {
            let path = format!("{sli_path}.ratioMetric");
            if r.raw.is_some() {
                problem(
                    &format!("{path}.raw"),
                    "loupe computes ratios from events: give good (or bad) and total".to_owned(),
                );
            }
            let total = match &r.total {
                Some(t) => {
                    if t.metric_source.spec.dataset.is_none() {
                        problem(
                            &format!("{path}.total.metricSource.spec.dataset"),
                            "the total names the dataset the SLI reads".to_owned(),
                        );
                    }
                    source(t, &format!("{path}.total"), &mut problem)
                }
                None => {
                    problem(&format!("{path}.total"), "a ratio needs a total".to_owned());
                    None
                }
            };
            let (good, bad) = match (&r.good, &r.bad) {
                (Some(g), None) => {
                    let p = source(g, &format!("{path}.good"), &mut problem);
                    if p.is_none() {
                        problem(
                            &format!("{path}.good.metricSource.spec.filter"),
                            "good needs a filter: the predicate of a good event".to_owned(),
                        );
                    }
                    (p, None)
                }
                (None, Some(b)) => {
                    let p = source(b, &format!("{path}.bad"), &mut problem);
                    if p.is_none() {
                        problem(
                            &format!("{path}.bad.metricSource.spec.filter"),
                            "bad needs a filter: the predicate of a bad event".to_owned(),
                        );
                    }
                    (None, p)
                }
                _ => {
                    problem(
                        &format!("{path}.good"),
                        "a ratio needs exactly one of good and bad".to_owned(),
                    );
                    (None, None)
                }
            };
            Some(Indicator::Ratio { good, bad, total })
        }
        (None, Some(t)) => {
            let path = format!("{sli_path}.thresholdMetric");
            if t.metric_source.spec.dataset.is_none() {
                problem(
                    &format!("{path}.metricSource.spec.dataset"),
                    "a threshold SLI names the dataset it reads".to_owned(),
                );
            }
            let filter = source(t, &path, &mut problem);
            match &t.metric_source.spec.field {
                Some(field) if !field.is_empty() => Some(Indicator::Threshold {
                    field: field.clone(),
                    filter,
                }),
                _ => {
                    problem(
                        &format!("{path}.metricSource.spec.field"),
                        "a threshold SLI names the field it measures (duration_ms)".to_owned(),
                    );
                    None
                }
            }
        }
        _ => {
            problem(
                &sli_path,
                "an SLI has exactly one of ratioMetric and thresholdMetric".to_owned(),
            );
            None
        }
    });

    // The window.
    let window = match spec.time_window.as_slice() {
        [w] => window(w, &mut problem),
        _ => {
            problem(
                "spec.timeWindow",
                format!("exactly one time window, found {}", spec.time_window.len()),
            );
            None
        }
    };

    // The objectives.
    let threshold = matches!(indicator, Some(Indicator::Threshold { .. }));
    if spec.objectives.is_empty() {
        problem("spec.objectives", "an SLO needs an objective".to_owned());
    }
    if threshold && spec.objectives.len() > 1 {
        problem(
            "spec.objectives",
            "a threshold SLI has one objective (OpenSLO)".to_owned(),
        );
    }
    let mut objectives = Vec::new();
    for (i, o) in spec.objectives.iter().enumerate() {
        let path = format!("spec.objectives[{i}]");
        let target = match (o.target, o.target_percent) {
            (Some(t), None) if (0.0..1.0).contains(&t) => Some(t),
            (Some(t), None) => {
                problem(
                    &format!("{path}.target"),
                    format!("{t}: a target is at least 0 and below 1 (0.999 is 99.9%)"),
                );
                None
            }
            (None, Some(p)) if (0.0..100.0).contains(&p) => Some(p / 100.0),
            (None, Some(p)) => {
                problem(
                    &format!("{path}.targetPercent"),
                    format!("{p}: a target percent is at least 0 and below 100"),
                );
                None
            }
            _ => {
                problem(
                    &format!("{path}.target"),
                    "give exactly one of target and targetPercent".to_owned(),
                );
                None
            }
        };
        let op_value = match (o.op, o.value) {
            (Some(op), Some(v)) if threshold => Some((op, v)),
            (None, None) if !threshold => None,
            _ if threshold => {
                problem(
                    &format!("{path}.op"),
                    "a threshold SLI's objective needs op and value".to_owned(),
                );
                None
            }
            _ => {
                problem(
                    &format!("{path}.op"),
                    "op and value belong to a threshold SLI; a ratio's good events are its \
                     good filter"
                        .to_owned(),
                );
                None
            }
        };
        match spec.budgeting_method {
            Budgeting::Timeslices => match o.time_slice_target {
                Some(t) if t > 0.0 && t <= 1.0 => {}
                Some(t) => problem(
                    &format!("{path}.timeSliceTarget"),
                    format!("{t}: a time slice target is above 0 and at most 1"),
                ),
                None => problem(
                    &format!("{path}.timeSliceTarget"),
                    "Timeslices needs timeSliceTarget: the ratio a good slice reaches".to_owned(),
                ),
            },
            _ if o.time_slice_target.is_some() => problem(
                &format!("{path}.timeSliceTarget"),
                "timeSliceTarget is read only with budgetingMethod: Timeslices".to_owned(),
            ),
            _ => {}
        }
        match (spec.budgeting_method, o.time_slice_window) {
            (Budgeting::Occurrences, Some(_)) => problem(
                &format!("{path}.timeSliceWindow"),
                "timeSliceWindow is read only with Timeslices and RatioTimeslices".to_owned(),
            ),
            (Budgeting::Timeslices | Budgeting::RatioTimeslices, None) => problem(
                &format!("{path}.timeSliceWindow"),
                "time slices need a timeSliceWindow (1m, 5m)".to_owned(),
            ),
            (_, Some(w)) if w.is_calendar() || w.micros() > 86_400_000_000 => problem(
                &format!("{path}.timeSliceWindow"),
                format!("{w}: a time slice is at most a day"),
            ),
            _ => {}
        }
        if let Some(t) = target {
            objectives.push(Objective {
                display_name: o.display_name.clone(),
                target: t,
                threshold: op_value,
                time_slice_target: o.time_slice_target,
                time_slice_window: o.time_slice_window,
            });
        }
    }

    if !problems.is_empty() {
        return Err(problems);
    }
    let (Some(indicator), Some(window), Some(dataset)) = (indicator, window, dataset) else {
        return Err(vec![Problem {
            path: located(at, ""),
            message: "incomplete definition".to_owned(),
        }]);
    };
    Ok(Slo {
        name: metadata.name,
        display_name: metadata.display_name,
        service: spec.service,
        description: spec.description,
        labels: metadata
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.text()))
            .collect(),
        dataset,
        indicator,
        window,
        method: spec.budgeting_method,
        objectives,
    })
}

fn window(w: &TimeWindow, problem: &mut impl FnMut(&str, String)) -> Option<Window> {
    let path = "spec.timeWindow[0]";
    let length = match Shorthand::parse(&w.duration, false) {
        Ok(d) => d,
        Err(e) => {
            problem(&format!("{path}.duration"), e);
            return None;
        }
    };
    // The spec: isRolling defaults to false when a calendar is given.
    match (w.is_rolling.unwrap_or(w.calendar.is_none()), &w.calendar) {
        (true, None) => Some(Window::Rolling(length)),
        (false, Some(c)) => {
            let start = NaiveDateTime::parse_from_str(&c.start_time, "%Y-%m-%d %H:%M:%S");
            let zone = c.time_zone.parse::<chrono_tz::Tz>();
            if let Err(e) = &start {
                problem(
                    &format!("{path}.calendar.startTime"),
                    format!("{:?}: expected \"YYYY-MM-DD HH:MM:SS\" ({e})", c.start_time),
                );
            }
            if zone.is_err() {
                problem(
                    &format!("{path}.calendar.timeZone"),
                    format!(
                        "{:?}: not an IANA time zone (UTC, Europe/Berlin, America/New_York)",
                        c.time_zone
                    ),
                );
            }
            if !length.is_calendar()
                && !matches!(
                    length.unit,
                    super::duration::Unit::Day | super::duration::Unit::Week
                )
            {
                problem(
                    &format!("{path}.duration"),
                    format!(
                        "{length}: a calendar window is days, weeks, months, quarters or years"
                    ),
                );
                return None;
            }
            Some(Window::Calendar {
                length,
                start: start.ok()?,
                zone: zone.ok()?,
            })
        }
        (true, Some(_)) => {
            problem(
                &format!("{path}.isRolling"),
                "a rolling window has no calendar".to_owned(),
            );
            None
        }
        (false, None) => {
            problem(
                &format!("{path}.calendar"),
                "a window that is not rolling needs a calendar (startTime, timeZone)".to_owned(),
            );
            None
        }
    }
}
