//! The order of the ranked answer, where findings nest: a finding whose events all lie within
//! another's (a conjunction within each of its terms; a pod within its service's version on
//! its host's kernel, through the values it implies) is placed by what the two together say,
//! not by each one's bound alone.
//!
//! Ranking by the lower bound of the risk ratio alone goes wrong in both directions:
//! - a general finding over a specific one: the true cause `os.kernel = k AND
//!   service.version = v` below its term `os.kernel = k`, which covers more events with a
//!   diluted ratio, when the cause has few events;
//! - a specific finding over a general one: one pod of the cause (a subset of its events) with
//!   a ratio that is higher by chance, found among hundreds of pods (the winner's curse), and
//!   the cause, whose ratio is the same in truth, below it.
//!
//! For `x` within `y` (`y`'s events with `x` and `y`'s without it, the rest):
//! - `x` **explains** `y` when, within `y`, `x`'s events are selected more often than the
//!   rest's (the conditional bound is over 1 and its p-value under `bar`) and the rest is
//!   not selected more often than the events outside `y` (its bound is not over 1): `y` is
//!   over-represented only through `x`, so `x` is the better answer and comes first.
//! - `y` **explains** `x` when, within `y`, `x`'s events are not shown to be selected more
//!   often than the rest's, and the rest is over-represented itself: `x` is a part of `y`'s
//!   effect, no more. (When the rest is not, `y` has nothing to say beyond `x`, and `x` not
//!   being shown different from a rest of a hundred events is no reason to put `y` first: an
//!   image and its namespace with its runtime, which is little more than the image.)
//!
//! `bar` is Bonferroni's for the tests of the whole analysis, as for a conjunction's terms
//! (see [`super::combos::Combos::rank`]): a zone has dozens of pods, and the luckiest of
//! them passes a 95% bound within it by chance; ranked on its own bound, a pod with few
//! stored events and a high ratio would come before the zone that is the cause.
//! - Otherwise (both over-represented: the cause and, within it, a decoy that rides along on
//!   half its events) each keeps its own place.
//!
//! Findings that overlap without nesting (the cause, and the decoy that rides along on half
//! its events joined with one of the cause's terms) are placed by the same question asked
//! of their shared events `s`: `x` **explains** `y` when `y`'s events outside `x` (`y - s`)
//! are not selected more often than the events outside `x`, while `x`'s outside `y` (`x - s`)
//! are, more than the events outside `y`: all of `y`'s excess lies within `x`, and `x` has
//! more to say.
//!
//! A finding explained by another is placed just after it, whatever its own bound.

use super::combos::same_cells;
use super::counts::Value;
use super::stats::{self, Cell, Thresholds};

/// A term: `(field, value)`.
pub type Term = (String, Value);

/// One finding to be ordered.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub terms: &'a [Term],
    /// Values the terms imply, folded in (they hold on every event of the finding).
    pub implies: &'a [Term],
    /// `[selection, baseline]`.
    pub cells: [Cell; 2],
    /// The finding's own key: the lower bound of its risk ratio.
    pub lower: f64,
}

/// Whether every event of `x` is an event of `y`: each of `y`'s terms is one of `x`'s, or
/// implied by one.
fn within(x: &Item<'_>, y: &Item<'_>, implies: impl Fn(&Term, &Term) -> bool) -> bool {
    y.terms.iter().all(|ty| {
        x.terms.contains(ty) || x.implies.contains(ty) || x.terms.iter().any(|tx| implies(tx, ty))
    })
}

/// The share of each of two findings' stored events that they must share to be "nearly the
/// same events" (see [`nearly_same`]).
pub const NEARLY: f64 = 0.95;

/// Pairs `(head, other)` of findings that are nearly the same events, `other` to be named
/// beside `head` rather than ranked on its own: each has fewer than `min_raw_events` stored
/// events outside the other, and those are at most `1 - NEARLY` of its own. The two cannot
/// be told apart by these events: nothing can be shown about so few. Which of them ranks
/// higher on its own bound is chance (a database time bin that is `db.system = 'none'` and
/// two fast calls; a locale that is its country but for a handful of travellers), and ranked
/// apart, the chance winner takes the place and its twin the next, where the reader takes it
/// for a second finding. The head is the one with the higher bound (the first, on a tie).
/// Pairs that share no events, or whose shared events are not known, are never folded; nor
/// exactly the same events, which [`super::rank`] folds by their cells.
pub fn nearly_same(
    items: &[Item<'_>],
    implies: impl Fn(&Term, &Term) -> bool,
    shared: impl Fn(usize, usize) -> Option<[Cell; 2]>,
    t: &Thresholds,
) -> Vec<(usize, usize)> {
    let rows = |c: &[Cell; 2]| c[0].rows + c[1].rows;
    // `part`'s rows outside the shared `s` are few, absolutely and as a share of `part`.
    let few_outside = |part: &[Cell; 2], s: &[Cell; 2]| {
        let outside = rows(part).saturating_sub(rows(s));
        outside < t.min_raw_events && outside as f64 <= (1.0 - NEARLY) * rows(part) as f64
    };
    let mut pairs = Vec::new();
    for (i, x) in items.iter().enumerate() {
        for (j, y) in items.iter().enumerate().skip(i + 1) {
            let s = if within(x, y, &implies) {
                x.cells
            } else if within(y, x, &implies) {
                y.cells
            } else {
                match shared(i, j) {
                    Some(s) => s,
                    None => continue,
                }
            };
            if rows(&s) == 0 || same_cells(&x.cells, &y.cells) {
                continue;
            }
            if few_outside(&x.cells, &s) && few_outside(&y.cells, &s) {
                pairs.push(if y.lower > x.lower { (j, i) } else { (i, j) });
            }
        }
    }
    pairs
}

/// The key of each of `items` to rank them by (descending): its own `lower`, or just under
/// that of a finding that explains it (see the module doc). `implies(a, b)` says whether
/// every event with term `a` has term `b`; `shared(i, j)` gives the `[selection, baseline]`
/// cells of the events items `i` and `j` share, when known; `bar` is the p-value a finding's
/// excess within another must be under.
pub fn keys(
    items: &[Item<'_>],
    implies: impl Fn(&Term, &Term) -> bool,
    shared: impl Fn(usize, usize) -> Option<[Cell; 2]>,
    selection: Cell,
    baseline: Cell,
    t: &Thresholds,
    bar: f64,
) -> Vec<f64> {
    let within = |x: &Item<'_>, y: &Item<'_>| within(x, y, &implies);
    // (first, after): `after` is explained by `first`.
    let mut explained: Vec<(usize, usize)> = Vec::new();
    // Over-represented compared with the events outside `of`: the lower bound over 1. No
    // events are not (the half event an empty cell gets for its interval would say so).
    let elevated_outside = |part: [Cell; 2], of: &Item<'_>| {
        part[0].rows + part[1].rows > 0
            && stats::assess(
                part[0],
                part[1],
                selection.minus(&of.cells[0]),
                baseline.minus(&of.cells[1]),
                t,
            )
            .lower
                > 1.0
    };
    let minus = |a: [Cell; 2], b: [Cell; 2]| [a[0].minus(&b[0]), a[1].minus(&b[1])];
    for (i, x) in items.iter().enumerate() {
        for (j, y) in items.iter().enumerate() {
            if i == j {
                continue;
            }
            if !within(x, y) {
                // Overlapping, not nested: does `x` hold all of `y`'s excess, and more?
                if !within(y, x)
                    && let Some(s) = shared(i, j)
                    && s[0].rows + s[1].rows > 0
                    && !elevated_outside(minus(y.cells, s), x)
                    && elevated_outside(minus(x.cells, s), y)
                {
                    explained.push((i, j));
                }
                continue;
            }
            let rest = [y.cells[0].minus(&x.cells[0]), y.cells[1].minus(&x.cells[1])];
            let rest_rows = rest[0].rows + rest[1].rows;
            if rest_rows == 0 {
                // The same events: folding names them once (see `rank::fold_implied`).
                continue;
            }
            if rest_rows < t.min_raw_events {
                // Nearly the same events: too few outside `x` to say it adds anything.
                explained.push((j, i));
                continue;
            }
            let inside = stats::assess(x.cells[0], x.cells[1], y.cells[0], y.cells[1], t);
            if inside.lower > 1.0 && inside.p_value <= bar {
                if !elevated_outside(rest, x) {
                    explained.push((i, j));
                }
            } else if elevated_outside(rest, x) {
                explained.push((j, i));
            }
        }
    }
    let mut keys: Vec<f64> = items.iter().map(|i| i.lower).collect();
    // Each pass lowers keys only; chains settle in as many passes as they are long.
    for _ in 0..items.len() {
        let mut changed = false;
        for &(first, after) in &explained {
            let below = keys[first] * (1.0 - 1e-9);
            if keys[after] > below {
                keys[after] = below;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(f: &str, v: &str) -> Term {
        (f.to_owned(), Value::Str(v.to_owned()))
    }

    fn cells(sel: u64, base: u64) -> [Cell; 2] {
        [Cell::uniform(sel, 1.0), Cell::uniform(base, 1.0)]
    }

    fn item<'a>(terms: &'a [Term], cells: [Cell; 2], t: &Thresholds) -> Item<'a> {
        let (selection, baseline) = totals();
        let lower = stats::assess(cells[0], cells[1], selection, baseline, t).lower;
        Item {
            terms,
            implies: &[],
            cells,
            lower,
        }
    }

    fn totals() -> (Cell, Cell) {
        (Cell::uniform(800, 1.0), Cell::uniform(19_200, 1.0))
    }

    #[test]
    fn a_cause_comes_before_a_lucky_subset_of_it_and_a_decoy_keeps_its_place() {
        let t = Thresholds::default();
        let (selection, baseline) = totals();
        // Kernel K on 1,000 events, 4% selected but for the cause: K with version V, 100
        // events, 40% selected. Pod P: 30 of the cause's events, 16 selected by chance.
        // Decoy D: on half the cause's events and 100 other events of K.
        let k = [term("os.kernel", "K")];
        let kv = [term("os.kernel", "K"), term("service.version", "V")];
        let pod = [term("k8s.pod.name", "P")];
        let kd = [term("os.kernel", "K"), term("deploy.canary", "true")];
        let items = [
            item(&k, cells(40 + 36, 60 + 864), &t),
            item(&kv, cells(40, 60), &t),
            item(&pod, cells(16, 14), &t),
            item(&kd, cells(20 + 4, 30 + 96), &t),
        ];
        // The pod implies the version and the kernel (its host's).
        let implies = |a: &Term, b: &Term| a == &pod[0] && (b == &kv[0] || b == &kv[1]);
        let keys = keys(&items, implies, |_, _| None, selection, baseline, &t, 1.0);
        // On their own bounds the pod would come first.
        assert!(items[2].lower > items[1].lower, "{items:#?}");
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| keys[b].total_cmp(&keys[a]));
        assert_eq!(order[0], 1, "the cause first: {keys:?}");
        // The pod, no riskier than the rest of the cause, comes right after it.
        assert_eq!(order[1], 2, "{keys:?}");
        assert!(keys[2] < keys[1] && keys[2] > 0.999 * keys[1], "{keys:?}");
        // The kernel with the decoy: within K, over-represented, and so is the rest of K
        // (the other half of the cause): neither explains the other, its key is its own.
        assert_eq!(keys[3], items[3].lower, "{keys:?}");
        assert_eq!(keys[0], items[0].lower, "{keys:?}");
    }

    #[test]
    fn a_subset_lucky_at_95_percent_but_not_past_the_bar_comes_after_its_cause() {
        let t = Thresholds::default();
        let (selection, baseline) = totals();
        // Zone Z is the cause (300 + 1,700 events, four times the window's rate). Pod P, one
        // of its dozens of pods, has 12 of 30 selected: over Z's rate at 95%, not past a
        // bar for thousands of tests.
        let z = [term("availability_zone", "Z")];
        let p = [term("k8s.pod.name", "P")];
        let items = [item(&z, cells(300, 1_700), &t), item(&p, cells(12, 18), &t)];
        let implies = |a: &Term, b: &Term| a == &p[0] && b == &z[0];
        let inside = stats::assess(
            items[1].cells[0],
            items[1].cells[1],
            items[0].cells[0],
            items[0].cells[1],
            &t,
        );
        assert!(inside.lower > 1.0 && inside.p_value > 1e-5, "{inside:?}");
        assert!(items[1].lower > items[0].lower, "{items:#?}");
        // At 95% alone the pod keeps its own (first) place; past the bar it follows Z.
        let loose = keys(&items, implies, |_, _| None, selection, baseline, &t, 1.0);
        assert!(loose[1] > loose[0], "{loose:?}");
        let held = keys(
            &items,
            implies,
            |_, _| None,
            selection,
            baseline,
            &t,
            0.05 / 5_000.0,
        );
        assert!(held[1] < held[0] && held[0] == items[0].lower, "{held:?}");
    }

    #[test]
    fn a_cause_comes_before_an_overlapping_finding_whose_excess_lies_within_it() {
        let t = Thresholds::default();
        let (selection, baseline) = totals();
        // The cause: route R with flag E (80 + 120). A decoy, the canary C, rides along on
        // half the cause's events, which by chance were slower (50 + 50), and on 10 other
        // events of R: C with R (50 + 60) has the higher bound, its excess all in the cause.
        let cause = [term("http.route", "R"), term("feature.e", "true")];
        let decoy = [term("http.route", "R"), term("deploy.canary", "true")];
        let items = [
            item(&cause, cells(80, 120), &t),
            item(&decoy, cells(50, 60), &t),
        ];
        assert!(items[1].lower > items[0].lower, "{items:#?}");
        let shared = |i: usize, j: usize| (i != j).then(|| cells(50, 50));
        let keys = keys(&items, |_, _| false, shared, selection, baseline, &t, 1.0);
        assert!(keys[1] < keys[0] && keys[0] == items[0].lower, "{keys:?}");
        // Unknown overlap: each keeps its own bound.
        let own = super::keys(
            &items,
            |_, _| false,
            |_, _| None,
            selection,
            baseline,
            &t,
            1.0,
        );
        assert_eq!(own, [items[0].lower, items[1].lower]);
    }

    #[test]
    fn a_superset_with_nothing_more_to_say_does_not_go_first() {
        let t = Thresholds::default();
        let (selection, baseline) = totals();
        // Image I (215 + 643) is the cause; its namespace with its runtime (the conjunction
        // N, R) is I and 31 other events selected at the window's rate. Within N, R, I is not
        // shown past the bar to differ from so small a rest, and the rest is not
        // over-represented: N, R has nothing to say beyond I, which keeps its (first) place.
        let image = [term("container.image", "I")];
        let pair = [term("k8s.namespace", "N"), term("runtime.version", "R")];
        let items = [
            item(&image, cells(215, 643), &t),
            item(&pair, cells(216, 673), &t),
        ];
        let implies = |a: &Term, b: &Term| a == &image[0] && (b == &pair[0] || b == &pair[1]);
        let inside = stats::assess(
            items[0].cells[0],
            items[0].cells[1],
            items[1].cells[0],
            items[1].cells[1],
            &t,
        );
        let bar = 0.05 / 5_000.0;
        assert!(inside.p_value > bar, "{inside:?}");
        let keys = keys(&items, implies, |_, _| None, selection, baseline, &t, bar);
        assert_eq!(keys, [items[0].lower, items[1].lower]);
        assert!(keys[0] > keys[1], "{keys:?}");
    }

    #[test]
    fn findings_with_a_handful_of_events_apart_are_nearly_the_same() {
        let t = Thresholds::default();
        // The cause K, I with no database (66 + 151), and the same with the database time's
        // lowest bin, which holds two fast database calls more: which ranks higher is chance.
        let none = [
            term("os.kernel", "K"),
            term("container.image", "I"),
            term("db.count", "0"),
        ];
        let bin = [
            term("os.kernel", "K"),
            term("container.image", "I"),
            term("db.duration_ms", "lowest bin"),
        ];
        let items = [
            item(&bin, cells(66, 153), &t),
            item(&none, cells(66, 151), &t),
        ];
        let implies = |a: &Term, b: &Term| a == &none[2] && b == &bin[2];
        // Named once, under the higher bound.
        assert!(items[1].lower > items[0].lower, "{items:#?}");
        assert_eq!(nearly_same(&items, implies, |_, _| None, &t), [(1, 0)]);
        // Without knowing that one lies within the other, nothing is folded.
        assert!(nearly_same(&items, |_, _| false, |_, _| None, &t).is_empty());
        // Overlapping, not nested, with the events they share known: the same.
        let shared = |_, _| Some(cells(66, 150));
        assert_eq!(nearly_same(&items, |_, _| false, shared, &t), [(1, 0)]);
        // Ten events apart are enough to tell them apart (`min_raw_events`), and so are
        // five of forty (more than 5%).
        let apart = [
            item(&bin, cells(66, 161), &t),
            item(&none, cells(66, 151), &t),
        ];
        assert!(nearly_same(&apart, implies, |_, _| None, &t).is_empty());
        let small = [
            item(&bin, cells(20, 25), &t),
            item(&none, cells(20, 20), &t),
        ];
        assert!(nearly_same(&small, implies, |_, _| None, &t).is_empty());
    }
}
