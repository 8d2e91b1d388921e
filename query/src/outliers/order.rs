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
//!   rest's (the conditional bound is over 1) and the rest is not selected more often than
//!   the events outside `y` (its bound is not over 1): `y` is over-represented only through
//!   `x`, so `x` is the better answer and comes first.
//! - `y` **explains** `x` when, within `y`, `x`'s events are not selected more often than the
//!   rest's (the conditional bound is not over 1): `x` is a part of `y`'s effect, no more.
//! - Otherwise (both over-represented: the cause and, within it, a decoy that rides along on
//!   half its events) each keeps its own place.
//!
//! A finding explained by another is placed just after it, whatever its own bound.

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

/// The key of each of `items` to rank them by (descending): its own `lower`, or just under
/// that of a finding that explains it (see the module doc). `implies(a, b)` says whether
/// every event with term `a` has term `b`.
pub fn keys(
    items: &[Item<'_>],
    implies: impl Fn(&Term, &Term) -> bool,
    selection: Cell,
    baseline: Cell,
    t: &Thresholds,
) -> Vec<f64> {
    // Whether every event of `x` is an event of `y`: each of `y`'s terms is one of `x`'s, or
    // implied by one.
    let within = |x: &Item<'_>, y: &Item<'_>| {
        y.terms.iter().all(|ty| {
            x.terms.contains(ty)
                || x.implies.contains(ty)
                || x.terms.iter().any(|tx| implies(tx, ty))
        })
    };
    // (first, after): `after` is explained by `first`.
    let mut explained: Vec<(usize, usize)> = Vec::new();
    for (i, x) in items.iter().enumerate() {
        for (j, y) in items.iter().enumerate() {
            if i == j || !within(x, y) {
                continue;
            }
            let rest = [y.cells[0].minus(&x.cells[0]), y.cells[1].minus(&x.cells[1])];
            if rest[0].rows + rest[1].rows == 0 {
                // The same events: folding names them once (see `rank::fold_implied`).
                continue;
            }
            let inside = stats::assess(x.cells[0], x.cells[1], y.cells[0], y.cells[1], t);
            if inside.lower > 1.0 {
                let outside = stats::assess(
                    rest[0],
                    rest[1],
                    selection.minus(&x.cells[0]),
                    baseline.minus(&x.cells[1]),
                    t,
                );
                if outside.lower <= 1.0 {
                    explained.push((i, j));
                }
            } else {
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
        let keys = keys(&items, implies, selection, baseline, &t);
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
}
