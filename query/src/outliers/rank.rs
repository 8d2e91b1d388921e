//! Single-field explanations ranked: every value of every counted field, assessed by
//! [`stats::assess`], the eligible ones that the selection over-represents, best first.
//!
//! The order is by the lower confidence bound of the risk ratio (what the evidence guarantees,
//! not what it suggests), then by support. Values the selection does not over-represent
//! (`lower <= 1`) are not explanations.

use super::combos::{Combination, same_cells};
use super::counts::{Counts, Value};
use super::stats::{self, Assessment, Cell, Thresholds};

/// One explanation: `field = value`, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub field: String,
    pub value: Value,
    pub selection: Cell,
    pub baseline: Cell,
    pub assessment: Assessment,
    /// Values this one implies (every event with it has them too, on both sides) that explain
    /// no more than it does: folded in here rather than listed again (`host.name = h-7`
    /// carries its `availability_zone`).
    pub implies: Vec<(String, Value)>,
    /// What the answer is ranked by (descending): the lower bound, or just under that of a
    /// finding that explains this one (see [`super::order`]).
    pub score: f64,
    /// Conjunctions that match exactly the same events (a pod and its zone with its build),
    /// folded into this value (see [`fold_same_events`]).
    pub same_events: Vec<Vec<(String, Value)>>,
    /// Findings that are nearly the same events, folded into this one (see
    /// [`fold_nearly_same`]).
    pub nearly_same: Vec<Vec<(String, Value)>>,
}

/// The single-field explanations of `counts` whose 95% bound is above 1, best first, and how
/// many values were eligible (tested), for the false discovery rate.
pub fn single_fields(counts: &Counts, t: &Thresholds) -> (Vec<Explanation>, usize) {
    let mut tested = 0;
    let mut out: Vec<Explanation> = counts
        .fields
        .iter()
        .filter(|f| !f.identifier)
        .flat_map(|f| {
            f.entries().map(move |(v, [sel, base])| Explanation {
                field: f.name.clone(),
                value: v,
                selection: sel,
                baseline: base,
                assessment: stats::assess(sel, base, counts.selection, counts.baseline, t),
                implies: Vec::new(),
                score: 0.0,
                same_events: Vec::new(),
                nearly_same: Vec::new(),
            })
        })
        .filter(|e| e.assessment.eligible)
        .inspect(|_| tested += 1)
        .filter(|e| e.assessment.lower > 1.0)
        .map(|e| Explanation {
            score: e.assessment.lower,
            ..e
        })
        .collect();
    out.sort_by(|a, b| {
        b.assessment
            .lower
            .total_cmp(&a.assessment.lower)
            .then(b.assessment.support.total_cmp(&a.assessment.support))
            .then_with(|| (&a.field, &a.value).cmp(&(&b.field, &b.value)))
    });
    (out, tested)
}

/// The values conjunctions are built from, at most `max`: the eligible values the selection
/// over-represents at all (risk ratio over 1, not necessarily significantly), the strongest
/// first, then (a quarter of the places) the commonest in the selection among the rest,
/// whatever their ratio. `(field position, value, [selection, baseline])`; values for which
/// `left_out` says so are not used.
///
/// Why not only the explanations: a term of a true conjunction can be diluted alone past
/// significance (a service version slow only on one kernel), and a common one (a region, a
/// feature flag on half the traffic) can be barely over-represented alone, or even under,
/// however strong the conjunction (the flag's other half slow for a reason of its own).
/// Support is what bounds a conjunction's (Apriori), so the common values are kept even when
/// the strongest take most places. Common, but not on most of the baseline (over [`MOST`] of
/// it): a conjunction with a value nearly every event has (`cloud.provider = 'aws'`,
/// `debug.flags IS NULL`) is its other term, nearly. Those took every common place, and the
/// terms of small conjunctions (a runtime on a third of the traffic, slow on one route) had
/// none: five of the six causes the quality bench missed at 0.1-0.4% support.
pub fn combination_candidates(
    counts: &Counts,
    t: &Thresholds,
    left_out: impl Fn(&str, &Value) -> bool,
    max: usize,
) -> Vec<(usize, Value, [Cell; 2])> {
    let mut all: Vec<(usize, Value, [Cell; 2], Assessment)> = counts
        .fields
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.identifier)
        .flat_map(|(i, f)| {
            f.entries()
                .map(move |(v, cells)| (i, v, cells))
                .filter(|(_, v, _)| !left_out(&f.name, v))
        })
        .map(|(i, v, [sel, base])| {
            let a = stats::assess(sel, base, counts.selection, counts.baseline, t);
            (i, v, [sel, base], a)
        })
        .filter(|(.., a)| a.eligible)
        .collect();
    // Over-represented first, strongest first.
    all.sort_by(|a, b| {
        (b.3.risk_ratio > 1.0)
            .cmp(&(a.3.risk_ratio > 1.0))
            .then(b.3.lower.total_cmp(&a.3.lower))
            .then_with(|| (a.0, &a.1).cmp(&(b.0, &b.1)))
    });
    let over = all.iter().filter(|c| c.3.risk_ratio > 1.0).count();
    let strongest = (max - max / 4).min(over);
    let mut rest = all.split_off(strongest);
    // Not values that describe most events: a conjunction with one is most of its other
    // term (`cloud.provider = 'aws'`, `debug.flags IS NULL`, `error = false`).
    rest.retain(|c| c.3.baseline_share <= MOST);
    rest.sort_by(|a, b| {
        b.3.support
            .total_cmp(&a.3.support)
            .then_with(|| (a.0, &a.1).cmp(&(b.0, &b.1)))
    });
    all.extend(rest.into_iter().take(max / 4));
    all.into_iter().map(|(i, v, c, _)| (i, v, c)).collect()
}

/// Share of the baseline above which a value describes most events: not taken as a common
/// candidate for conjunctions (see [`combination_candidates`]).
pub const MOST: f64 = 0.5;

/// Share of a value's events (by weight) that must be selected for the value to be "purely
/// selected".
pub const PURE: f64 = 0.99;
/// Share of the selection's weight that purely selected values must hold for their field to
/// restate the selection. Below 1 because some of the selection may be defined otherwise
/// (an `error` set by a client timeout on a request that got a 200).
pub const RESTATES: f64 = 0.8;

/// The fields that restate the selection rather than explain it: most of the selection's
/// weight lies in values (each with at least `min_raw_events` selected events) that are
/// nearly always selected. `http.status_code` and `error.type` for the selection `error`:
/// every 500 is an error and most errors have a 5xx, so they separate the sides by
/// definition and would top every list with an infinite ratio. Values seen a few times
/// (unique-ish ids) do not count, so a field of near-unique values does not qualify.
///
/// A single cause that alone makes up most of the selection (a host failing every request,
/// and most of the failures) restates it too; it is named in the report as such, with its
/// values, rather than ranked.
pub fn restating(counts: &Counts, t: &Thresholds) -> Vec<String> {
    let total = counts.selection.weight;
    if total <= 0.0 {
        return Vec::new();
    }
    counts
        .fields
        .iter()
        .filter(|f| !f.identifier)
        .filter(|f| {
            let pure: f64 = f
                .entries()
                .filter(|(_, [sel, base])| {
                    sel.rows >= t.min_raw_events && sel.weight >= PURE * (sel.weight + base.weight)
                })
                .map(|(_, [sel, _])| sel.weight)
                .sum();
            pure >= RESTATES * total
        })
        .map(|f| f.name.clone())
        .collect()
}

/// The values that are always selected (a share [`PURE`] of their weight, with at least
/// `min_raw_events` selected events), outside the fields that restate the selection
/// wholesale: `http.status_code = 500` for `error` when some errors have no status (a client
/// timeout, a gRPC failure), so the field as a whole does not restate it. Such a value is a
/// consequence of the selection's definition more often than a cause, and with an infinite
/// ratio it would top every list, so it is named apart from the ranking. When it is a cause
/// (a host failing every request), the reader sees it there, with its share.
pub fn always_selected(
    counts: &Counts,
    t: &Thresholds,
    restating: &[String],
) -> Vec<(String, Value, f64)> {
    let total = counts.selection.weight;
    let mut out: Vec<(String, Value, f64)> = counts
        .fields
        .iter()
        .filter(|f| !f.identifier && !restating.contains(&f.name))
        .flat_map(|f| {
            f.entries().filter_map(move |(v, [sel, base])| {
                (sel.rows >= t.min_raw_events
                    && sel.weight >= PURE * (sel.weight + base.weight)
                    && total > 0.0)
                    .then(|| (f.name.clone(), v, sel.weight / total))
            })
        })
        .collect();
    out.sort_by(|a, b| b.2.total_cmp(&a.2));
    out
}

/// Folds each conjunction that matches exactly the same events as a single value, or as a
/// conjunction of fewer terms (or of as many, ranked before it), into that one: the reader
/// sees the events named once, with the other names beside them. (A pod is the same events
/// as its build in its zone; a rare conjunction is the same events as one host's requests.)
pub fn fold_same_events(singles: &mut [Explanation], combinations: &mut Vec<Combination>) {
    combinations.sort_by(|a, b| {
        a.terms
            .len()
            .cmp(&b.terms.len())
            .then(b.assessment.lower.total_cmp(&a.assessment.lower))
    });
    let mut kept: Vec<Combination> = Vec::with_capacity(combinations.len());
    for c in combinations.drain(..) {
        let cells = [c.selection, c.baseline];
        if let Some(e) = singles
            .iter_mut()
            .find(|e| same_cells(&[e.selection, e.baseline], &cells))
        {
            e.same_events.push(c.terms);
        } else if let Some(k) = kept
            .iter_mut()
            .find(|k| same_cells(&[k.selection, k.baseline], &cells))
        {
            k.same_events.push(c.terms);
        } else {
            kept.push(c);
        }
    }
    *combinations = kept;
}

/// Folds each finding into the head it is nearly the same events as: `pairs` are `(head,
/// other)` indexes into `singles` then `combinations` (as [`super::order::nearly_same`] gives
/// them). `other`'s terms are named in the head's `nearly_same`, with those folded into
/// `other` before; a head folded itself passes what it holds on to its own head.
pub fn fold_nearly_same(
    singles: &mut Vec<Explanation>,
    combinations: &mut Vec<Combination>,
    pairs: &[(usize, usize)],
) {
    let n = singles.len() + combinations.len();
    let mut into: Vec<Option<usize>> = vec![None; n];
    let root = |into: &[Option<usize>], mut i: usize| {
        while let Some(h) = into[i] {
            i = h;
        }
        i
    };
    for &(head, other) in pairs {
        if head < n && other < n && into[other].is_none() && root(&into, head) != other {
            into[other] = Some(head);
        }
    }
    if into.iter().all(Option::is_none) {
        return;
    }
    let terms = |i: usize| -> Vec<(String, Value)> {
        match i.checked_sub(singles.len()) {
            None => vec![(singles[i].field.clone(), singles[i].value.clone())],
            Some(c) => combinations[c].terms.clone(),
        }
    };
    let mut named: Vec<Vec<Vec<(String, Value)>>> = vec![Vec::new(); n];
    for i in (0..n).filter(|&i| into[i].is_some()) {
        named[root(&into, i)].push(terms(i));
    }
    let ns = singles.len();
    for (i, names) in named.into_iter().enumerate() {
        match i.checked_sub(ns) {
            None => singles[i].nearly_same.extend(names),
            Some(c) => combinations[c].nearly_same.extend(names),
        }
    }
    retain_unfolded(singles, &into[..ns]);
    retain_unfolded(combinations, &into[ns..]);
}

/// Keeps the items of `items` that `folded_into` (one entry per item) does not fold away.
fn retain_unfolded<T>(items: &mut Vec<T>, folded_into: &[Option<usize>]) {
    let mut folded = folded_into.iter();
    items.retain(|_| folded.next().is_some_and(Option::is_none));
}

/// Folds each explanation implied by a stronger one, and over-represented only through it,
/// into it: `implications` are pairs `(x, y)` of indexes into `ranked` where every event with
/// `x` also has `y` (a host's zone). `y`'s events without `x` (the zone's other hosts) must
/// not be selected more often than the events outside `x` (the lower bound of their ratio is
/// not over 1): then `y` says nothing `x` does not, and is named beside it. Otherwise `y`
/// explains more than `x` (a service version slow on all its builds, `x` one of them) and
/// keeps its own place; [`super::order`] decides which comes first.
pub fn fold_implied(
    ranked: &mut Vec<Explanation>,
    implications: &[(usize, usize)],
    selection: Cell,
    baseline: Cell,
    t: &Thresholds,
) {
    let explained_by = |x: &Explanation, y: &Explanation| {
        let rest = [
            y.selection.minus(&x.selection),
            y.baseline.minus(&x.baseline),
        ];
        if rest[0].rows + rest[1].rows == 0 {
            // The same events (each implies the other): nothing outside to be elevated. (The
            // half event an empty cell gets for its interval would make it look so.)
            return true;
        }
        let outside = stats::assess(
            rest[0],
            rest[1],
            selection.minus(&x.selection),
            baseline.minus(&x.baseline),
            t,
        );
        outside.lower <= 1.0
    };
    let mut folded_into: Vec<Option<usize>> = vec![None; ranked.len()];
    for &(x, y) in implications {
        // Only a weaker (or equal) consequence is folded; a consequence that explains more
        // than its cause stays on its own.
        if x != y
            && folded_into[x].is_none()
            && folded_into[y].is_none()
            && ranked[y].assessment.lower <= ranked[x].assessment.lower
            && explained_by(&ranked[x], &ranked[y])
        {
            folded_into[y] = Some(x);
        }
    }
    for y in 0..ranked.len() {
        if let Some(x) = folded_into[y] {
            let term = (ranked[y].field.clone(), ranked[y].value.clone());
            ranked[x].implies.push(term);
        }
    }
    retain_unfolded(ranked, &folded_into);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Float64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;

    use super::super::counts::Limits;
    use super::*;
    use crate::tests::lcg;

    /// 200,000 requests: 8 kernels, 40 images, a unique request id. Kernel 6.8 (1/8 of the
    /// traffic) makes requests 4x slower. The selection is requests over 500 ms. The stored
    /// events are sampled as a collector would: slow ones kept at weight 1, the rest 1 in 20 at
    /// weight 20. Image `img-7` is a decoy that fast requests over-use.
    /// Also returns the true risk ratio of the cause, from the whole (unsampled) stream.
    fn stored(seed: u64) -> (RecordBatch, f64) {
        let mut s = seed;
        let (mut sel, mut w, mut kernel, mut image, mut id) =
            (vec![], vec![], vec![], vec![], vec![]);
        // [selected, not] x [cause, not], over every generated request
        let mut truth = [[0.0f64; 2]; 2];
        for i in 0..200_000 {
            let k = (lcg(&mut s) * 8.0) as usize;
            let img = if lcg(&mut s) < 0.1 {
                7
            } else {
                (lcg(&mut s) * 40.0) as usize
            };
            let mut ms = 40.0 * (lcg(&mut s) * 3.0).exp(); // 40 .. 800 ms
            if k == 6 {
                ms *= 4.0;
            }
            if img == 7 {
                ms *= 0.5;
            }
            let slow = ms > 500.0;
            truth[usize::from(!slow)][usize::from(k != 6)] += 1.0;
            let keep = slow || lcg(&mut s) < 0.05;
            if !keep {
                continue;
            }
            sel.push(Some(slow));
            w.push(if slow { 1.0 } else { 20.0 });
            kernel.push(format!("6.{k}"));
            image.push(format!("img-{img}"));
            id.push(format!("req-{i}"));
        }
        let schema = Schema::new(vec![
            Field::new("sel", DataType::Boolean, true),
            Field::new("sample_rate", DataType::Float64, false),
            Field::new("os.kernel", DataType::Utf8, false),
            Field::new("container.image", DataType::Utf8, false),
            Field::new("request.id", DataType::Utf8, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(BooleanArray::from(sel)),
                Arc::new(Float64Array::from(w)),
                Arc::new(StringArray::from(kernel)),
                Arc::new(StringArray::from(image)),
                Arc::new(StringArray::from(id)),
            ],
        )
        .unwrap();
        let [[a, c], [b, d]] = truth;
        (batch, (a / (a + b)) / (c / (c + d)))
    }

    fn counts(batch: &RecordBatch, weighted: bool) -> Counts {
        let names: Vec<String> = ["os.kernel", "container.image", "request.id"]
            .map(String::from)
            .to_vec();
        let mut c = Counts::new(&names, vec![]);
        let batch = if weighted {
            batch.clone()
        } else {
            let ones = Float64Array::from(vec![1.0; batch.num_rows()]);
            let mut cols = batch.columns().to_vec();
            cols[1] = Arc::new(ones);
            RecordBatch::try_new(batch.schema(), cols).unwrap()
        };
        c.add(&batch, &Limits::default()).unwrap();
        c
    }

    #[test]
    fn the_planted_cause_ranks_first_and_the_id_and_decoy_do_not_explain() {
        let (batch, _) = stored(1);
        let (ranked, _) = single_fields(&counts(&batch, true), &Thresholds::default());
        let top = &ranked[0];
        assert_eq!(
            (top.field.as_str(), &top.value),
            ("os.kernel", &Value::Str("6.6".into())),
            "{ranked:#?}"
        );
        assert!(top.assessment.risk_ratio > 3.0, "{top:?}");
        assert!(ranked.iter().all(|e| e.field != "request.id"));
        assert!(
            !ranked.iter().any(|e| e.value == Value::Str("img-7".into())),
            "a value that makes requests faster is not an explanation"
        );
    }

    #[test]
    fn weighted_ratios_estimate_the_truth_and_unweighted_ones_do_not() {
        // The stored baseline is a 1-in-20 sample: counted without weights it looks 20x
        // smaller than it was, and the cause's ratio collapses toward 1.
        let (batch, truth) = stored(2);
        let ratio = |weighted: bool| {
            single_fields(&counts(&batch, weighted), &Thresholds::default())
                .0
                .iter()
                .find(|e| e.value == Value::Str("6.6".into()))
                .map(|e| e.assessment.risk_ratio)
        };
        let w = ratio(true).expect("the cause is found weighted");
        assert!(
            (w - truth).abs() < 0.1 * truth,
            "weighted {w} vs true {truth}"
        );
        // Without weights it is far off, or not an explanation at all.
        if let Some(u) = ratio(false) {
            assert!((u - truth).abs() > 0.3 * truth, "unweighted {u} vs {truth}");
        }
    }

    #[test]
    fn a_conjunction_with_the_same_events_as_a_value_is_folded_into_it() {
        let t = Thresholds::default();
        let (selection, baseline) = (Cell::uniform(1_000, 1.0), Cell::uniform(9_000, 20.0));
        let (sel, base) = (Cell::uniform(94, 1.0), Cell::uniform(195, 20.0));
        let a = stats::assess(sel, base, selection, baseline, &t);
        let mut singles = vec![explanation(
            "k8s.pod.name",
            "p-1",
            sel,
            base,
            (selection, baseline),
        )];
        let combination = |terms: Vec<(String, Value)>, sel: Cell| Combination {
            terms,
            selection: sel,
            baseline: base,
            assessment: a,
            implies: Vec::new(),
            score: a.lower,
            same_events: Vec::new(),
            nearly_same: Vec::new(),
        };
        let zone_build = vec![
            ("availability_zone".to_owned(), Value::Str("z".into())),
            ("build.id".to_owned(), Value::Str("b".into())),
        ];
        let other = vec![
            ("availability_zone".to_owned(), Value::Str("z".into())),
            ("region".to_owned(), Value::Str("r".into())),
        ];
        let mut combinations = vec![
            combination(zone_build.clone(), sel),
            // One selected event more: other events.
            combination(other.clone(), Cell::uniform(95, 1.0)),
        ];
        fold_same_events(&mut singles, &mut combinations);
        assert_eq!(singles[0].same_events, [zone_build]);
        let [kept] = combinations.as_slice() else {
            panic!("{combinations:#?}")
        };
        assert_eq!(kept.terms, other);
    }

    fn explanation(
        field: &str,
        v: &str,
        sel: Cell,
        base: Cell,
        totals: (Cell, Cell),
    ) -> Explanation {
        let a = stats::assess(sel, base, totals.0, totals.1, &Thresholds::default());
        Explanation {
            field: field.to_owned(),
            value: Value::Str(v.into()),
            selection: sel,
            baseline: base,
            assessment: a,
            implies: Vec::new(),
            score: a.lower,
            same_events: Vec::new(),
            nearly_same: Vec::new(),
        }
    }

    #[test]
    fn an_implied_value_is_folded_only_when_it_is_over_represented_only_through_its_cause() {
        let t = Thresholds::default();
        let totals = (Cell::uniform(1_000, 1.0), Cell::uniform(19_000, 1.0));
        let u = |n| Cell::uniform(n, 1.0);
        // Host H (60 + 140) is the cause; its zone Z adds 1,000 events selected at the
        // window's rate (50 + 950): Z is over-represented only through H.
        // Build B (40 + 60) is one of version V's builds; V (300 + 1,700) is slow on all of
        // them, B by chance a little more: V explains more than B.
        let mut ranked = vec![
            explanation("host.name", "H", u(60), u(140), totals),
            explanation("build.id", "B", u(40), u(60), totals),
            explanation("availability_zone", "Z", u(110), u(1_090), totals),
            explanation("service.version", "V", u(300), u(1_700), totals),
        ];
        // Both consequences have the lower bound their cause beats.
        assert!(ranked[2].assessment.lower <= ranked[0].assessment.lower);
        assert!(ranked[3].assessment.lower <= ranked[1].assessment.lower);
        // And a locale with exactly the country's events: each implies the other.
        ranked.push(explanation("user.country", "IT", u(60), u(140), totals));
        fold_implied(
            &mut ranked,
            &[(0, 2), (1, 3), (0, 4), (4, 0)],
            totals.0,
            totals.1,
            &t,
        );
        let names: Vec<&str> = ranked.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["host.name", "build.id", "service.version"]);
        assert_eq!(
            ranked[0].implies,
            [
                ("availability_zone".to_owned(), Value::Str("Z".into())),
                ("user.country".to_owned(), Value::Str("IT".into()))
            ]
        );
        assert!(ranked[1].implies.is_empty(), "{:?}", ranked[1]);
    }

    #[test]
    fn nearly_the_same_findings_are_named_under_their_head() {
        let totals = (Cell::uniform(1_000, 1.0), Cell::uniform(19_000, 1.0));
        let u = |n| Cell::uniform(n, 1.0);
        let mut singles = vec![
            explanation("user.country", "US", u(95), u(239), totals),
            explanation("app.locale", "en-US", u(95), u(243), totals),
            explanation("host.name", "h-1", u(50), u(50), totals),
        ];
        let a = singles[0].assessment;
        let mut combinations = vec![Combination {
            terms: vec![
                ("user.country".to_owned(), Value::Str("US".into())),
                ("feature.x".to_owned(), Value::Bool(true)),
            ],
            selection: u(95),
            baseline: u(238),
            assessment: a,
            implies: Vec::new(),
            score: a.lower,
            same_events: Vec::new(),
            nearly_same: Vec::new(),
        }];
        // The locale into the country, and the country (holding the locale by then) into
        // the conjunction (index 3: after the singles).
        fold_nearly_same(&mut singles, &mut combinations, &[(0, 1), (3, 0)]);
        let names: Vec<&str> = singles.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(names, ["host.name"]);
        assert!(singles[0].nearly_same.is_empty());
        let [head] = combinations.as_slice() else {
            panic!("{combinations:#?}")
        };
        assert_eq!(
            head.nearly_same,
            [
                vec![("user.country".to_owned(), Value::Str("US".into()))],
                vec![("app.locale".to_owned(), Value::Str("en-US".into()))],
            ]
        );
    }

    #[test]
    fn values_on_most_events_take_no_common_place_among_the_candidates() {
        // 1,000 events in blocks of four, one block in ten selected: every runtime has the
        // window's rate. One cloud for all. Route `slow` (one event in fifty) is always
        // selected, which lifts two runtimes a little.
        let n = 1_000;
        let slow = |i: usize| i % 50 == 1;
        let sel: Vec<Option<bool>> = (0..n).map(|i| Some((i / 4) % 10 == 0 || slow(i))).collect();
        let route: Vec<&str> = (0..n)
            .map(|i| if slow(i) { "slow" } else { "ok" })
            .collect();
        let runtime: Vec<String> = (0..n).map(|i| format!("rt-{}", i % 4)).collect();
        let schema = Schema::new(vec![
            Field::new("sel", DataType::Boolean, true),
            Field::new("sample_rate", DataType::Float64, false),
            Field::new("cloud.provider", DataType::Utf8, false),
            Field::new("http.route", DataType::Utf8, false),
            Field::new("runtime.version", DataType::Utf8, false),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(BooleanArray::from(sel)),
                Arc::new(Float64Array::from(vec![1.0; n])),
                Arc::new(StringArray::from(vec!["aws"; n])),
                Arc::new(StringArray::from(route)),
                Arc::new(StringArray::from(runtime)),
            ],
        )
        .unwrap();
        let names = ["cloud.provider", "http.route", "runtime.version"].map(String::from);
        let mut counts = Counts::new(&names, vec![]);
        counts.add(&batch, &Limits::default()).unwrap();
        let t = Thresholds::default();
        let candidates = combination_candidates(&counts, &t, |_, _| false, 4);
        let text: Vec<String> = candidates
            .iter()
            .map(|(f, v, _)| format!("{}={v:?}", names[*f]))
            .collect();
        // Three places for the over-represented (the route, two runtimes), one for the
        // commonest of the rest: a runtime, not the cloud every event is on.
        assert_eq!(candidates.len(), 4, "{text:?}");
        assert!(text[0].starts_with("http.route"), "{text:?}");
        assert!(text[3].starts_with("runtime.version"), "{text:?}");
    }
}
