//! Conjunctions of two and three field values, among the strongest single-field candidates
//! (Apriori's pruning, as MacroBase uses it: a conjunction's support is at most its weakest
//! term's, so only values that are eligible alone can form an eligible conjunction).
//!
//! A second pass over the same `(selected, weight, fields...)` batches finds, for every row,
//! which candidates it matches (at most one per field), and counts every pair and triple of
//! them on the row's side. Rows match few candidates, so this is a handful of additions per
//! row. A conjunction is reported only when it adds to its parts (see [`Combos::rank`]):
//! otherwise its terms explain the selection and the conjunction adds nothing.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;

use super::counts::{Bins, Value};
use super::stats::{self, Assessment, Cell, Thresholds};
use super::values::{self, ValueRef};

/// Most candidates combined (pairs grow as the square, triples as the cube).
pub const MAX_CANDIDATES: usize = 24;

/// One candidate term: the field's position among the counted fields, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub field: usize,
    pub value: Value,
}

/// A reported conjunction.
#[derive(Debug, Clone, PartialEq)]
pub struct Combination {
    /// `(field name, value)` of each term, strongest single first.
    pub terms: Vec<(String, Value)>,
    pub selection: Cell,
    pub baseline: Cell,
    pub assessment: Assessment,
    /// Terms interchangeable with one of `terms` here (they count the same events).
    pub implies: Vec<(String, Value)>,
}

/// The counts of every pair and triple of `terms`.
#[derive(Debug, Clone, Default)]
pub struct Combos {
    pub terms: Vec<Term>,
    pairs: HashMap<(u8, u8), [Cell; 2]>,
    triples: HashMap<(u8, u8, u8), [Cell; 2]>,
}

impl Combos {
    pub fn new(mut terms: Vec<Term>) -> Combos {
        terms.truncate(MAX_CANDIDATES);
        Combos {
            terms,
            ..Combos::default()
        }
    }

    /// Adds a batch laid out as for [`super::counts::Counts::add`]; `bins` are the fields'.
    pub fn add(&mut self, batch: &RecordBatch, bins: &[Option<Bins>]) -> Result<()> {
        let n = batch.num_rows();
        let selected = cast(batch.column(0), &DataType::Boolean)?;
        let selected = selected.as_boolean();
        let weights = cast(batch.column(1), &DataType::Float64)?;
        let weights = weights.as_primitive::<Float64Type>();
        // Per row, the candidates it matches (at most one per field).
        let mut matched: Vec<Vec<u8>> = vec![Vec::new(); n];
        let mut fields: Vec<usize> = self.terms.iter().map(|t| t.field).collect();
        fields.sort_unstable();
        fields.dedup();
        for f in fields {
            let mine: Vec<(u8, &Value)> = self
                .terms
                .iter()
                .enumerate()
                .filter(|(_, t)| t.field == f)
                .map(|(i, t)| (i as u8, &t.value))
                .collect();
            // Strings by `&str`, so no value is copied to be compared.
            let of = |v: ValueRef<'_>| {
                mine.iter()
                    .find(|(_, w)| w.as_value_ref() == v)
                    .map(|(i, _)| *i)
            };
            let bins = bins.get(f).and_then(Option::as_ref);
            values::for_each(batch.column(f + 2), bins, |i, v| matched[i].extend(of(v)))?;
        }
        for (i, m) in matched.iter_mut().enumerate() {
            if selected.is_null(i) || m.len() < 2 {
                continue;
            }
            let side = usize::from(!selected.value(i));
            let w = if weights.is_null(i) {
                1.0
            } else {
                weights.value(i)
            };
            m.sort_unstable();
            for x in 0..m.len() {
                for y in x + 1..m.len() {
                    self.pairs.entry((m[x], m[y])).or_default()[side].add(w);
                    for z in y + 1..m.len() {
                        self.triples.entry((m[x], m[y], m[z])).or_default()[side].add(w);
                    }
                }
            }
        }
        Ok(())
    }

    /// Pairs `(x, y)` of term indexes where every event with `x` also has `y`, on both sides:
    /// the pair's cells are `x`'s own (`single` holds each term's `[selection, baseline]`).
    pub fn implications(&self, single: &[[Cell; 2]]) -> Vec<(usize, usize)> {
        let same = |p: &[Cell; 2], s: &[Cell; 2]| {
            (0..2).all(|k| {
                p[k].rows == s[k].rows
                    && (p[k].weight - s[k].weight).abs() <= 1e-9 * s[k].weight.max(1.0)
            })
        };
        let mut out = Vec::new();
        for (&(i, j), cells) in &self.pairs {
            let (i, j) = (i as usize, j as usize);
            if same(cells, &single[i]) {
                out.push((i, j));
            }
            if same(cells, &single[j]) {
                out.push((j, i));
            }
        }
        out.sort_unstable();
        out
    }

    /// The conjunctions that add to their parts, best first, and how many conjunctions were
    /// eligible (tested). `single` is each term's `[selection, baseline]` cells alone (as for
    /// [`Combos::implications`]), `names` the fields' names.
    ///
    /// A conjunction is reported when it is eligible and significant itself (lower bound of
    /// its risk ratio over 1) and it adds to each of its parts: each term and, for a triple,
    /// each of its pairs. That is MacroBase's minimality, loosely: a longer explanation is
    /// shown only when every term in it earns its place. Whether it does is a conditional
    /// question: among the events matching the part, are those that also match the rest of
    /// the conjunction selected more often than those that do not? The conjunction's cells
    /// assessed against the part's cells as the totals give exactly that conditional risk
    /// ratio, with its interval on design-effective counts (as every ratio here), and its
    /// lower bound must be over 1 for every part.
    ///
    /// - The cause plus a common or unrelated value (`db.count = 1`, `tls.version =
    ///   'TLSv1.2'`, a decoy that rides along): within the cause, the value does not change
    ///   the risk of being selected, the bound is under 1 and the refinement is dropped. The
    ///   reader is not shown the cause plus noise.
    /// - A true conjunction whose terms are each strong alone (a kernel that mostly runs one
    ///   runtime, only the two together slow): within the kernel, the runtime's events are
    ///   selected far more often than the others'. Comparing the conjunction's ratio with its
    ///   parts' instead (its lower bound against their point estimates) would drop it, since
    ///   a part that covers most of the selection already has most of the conjunction's ratio.
    /// - A part whose events all match the conjunction on both sides (a term that implies the
    ///   other, or a swap) leaves nothing to compare with: that is no evidence of adding, and
    ///   the conjunction is not reported (the part alone says it all).
    ///
    /// Ranked by the conjunction's own lower bound. Conjunctions that differ in one term and
    /// count the same events on both sides (a term swapped for one equivalent to it,
    /// `container.image` for `service.version`) are one explanation: the first keeps the
    /// other's term as implied.
    pub fn rank(
        &self,
        single: &[[Cell; 2]],
        names: &[String],
        selection: Cell,
        baseline: Cell,
        t: &Thresholds,
    ) -> (Vec<Combination>, usize) {
        // Within `part`'s events, does matching the whole of `cells`' conjunction raise the
        // risk of being selected? Not when no event of the part is outside it.
        let adds_to = |[sel, base]: [Cell; 2], [part_sel, part_base]: [Cell; 2]| {
            let rest = (part_sel.minus(&sel), part_base.minus(&base));
            if rest.0.rows == 0 && rest.1.rows == 0 {
                return false;
            }
            stats::assess(sel, base, part_sel, part_base, t).lower > 1.0
        };
        let mut tested = 0;
        let mut out: Vec<Combination> = Vec::new();
        let entries = self
            .pairs
            .iter()
            .map(|(&(a, b), &cells)| (vec![a, b], cells))
            .chain(
                self.triples
                    .iter()
                    .map(|(&(a, b, c), &cells)| (vec![a, b, c], cells)),
            );
        for (idx, cells) in entries {
            let [sel, base] = cells;
            let assessment = stats::assess(sel, base, selection, baseline, t);
            tested += usize::from(assessment.eligible);
            if !(assessment.eligible && assessment.lower > 1.0) {
                continue;
            }
            let mut parts: Vec<[Cell; 2]> = idx.iter().map(|&i| single[i as usize]).collect();
            if let [a, b, c] = idx[..] {
                parts.extend(
                    [(a, b), (a, c), (b, c)]
                        .iter()
                        .filter_map(|k| self.pairs.get(k).copied()),
                );
            }
            if !parts.iter().all(|&p| adds_to(cells, p)) {
                continue;
            }
            out.push(Combination {
                terms: idx
                    .iter()
                    .map(|&i| {
                        let t = &self.terms[i as usize];
                        (names[t.field].clone(), t.value.clone())
                    })
                    .collect(),
                selection: cells[0],
                baseline: cells[1],
                assessment,
                implies: Vec::new(),
            });
        }
        out.sort_by(|a, b| {
            b.assessment
                .lower
                .total_cmp(&a.assessment.lower)
                .then(a.terms.len().cmp(&b.terms.len()))
                .then_with(|| a.terms.cmp(&b.terms))
        });
        (fold_swaps(out), tested)
    }
}

/// Folds each conjunction into an earlier one that has all its terms but one and the same
/// cells on both sides: the two name the same events.
fn fold_swaps(ranked: Vec<Combination>) -> Vec<Combination> {
    let mut kept: Vec<Combination> = Vec::with_capacity(ranked.len());
    for c in ranked {
        let twin = kept.iter_mut().find(|k| {
            k.terms.len() == c.terms.len()
                && k.selection == c.selection
                && k.baseline == c.baseline
                && c.terms.iter().filter(|t| !k.terms.contains(t)).count() == 1
        });
        match twin {
            Some(k) => {
                let swapped = c.terms.into_iter().filter(|t| !k.terms.contains(t));
                for t in swapped {
                    if !k.implies.contains(&t) {
                        k.implies.push(t);
                    }
                }
            }
            None => kept.push(c),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(sel: u64, base: u64) -> [Cell; 2] {
        [Cell::uniform(sel, 1.0), Cell::uniform(base, 1.0)]
    }

    #[test]
    fn a_conjunction_is_reported_when_it_adds_to_each_part_within_that_part() {
        // 1,000 selected and 9,000 other events. Kernel X and runtime Y each cover 95% of the
        // selection and mostly go together; the pair X, Y covers 93%. Zone Z is X under
        // another name (the same events); D (`db.count = 1`) is on 80% of every group.
        let (x, y, d, z) = (0u8, 1u8, 2u8, 3u8);
        let names: Vec<String> = ["os.kernel", "runtime.version", "db.count", "zone"]
            .map(String::from)
            .to_vec();
        let term = |field: usize, v: &str| Term {
            field,
            value: Value::Str(v.into()),
        };
        let mut combos = Combos::new(vec![term(0, "X"), term(1, "Y"), term(2, "1"), term(3, "Z")]);
        let single = [
            cells(950, 1800),
            cells(945, 1800),
            cells(800, 7200),
            cells(950, 1800),
        ];
        let xy = cells(930, 1000);
        let (xd, yd, xyd) = (cells(760, 1440), cells(756, 1440), cells(744, 800));
        for (k, c) in [
            ((x, y), xy),
            ((x, d), xd),
            ((y, d), yd),
            ((x, z), single[0]),
        ] {
            combos.pairs.insert(k, c);
        }
        // Z swaps for X term for term.
        combos.pairs.insert((y, z), xy);
        combos.pairs.insert((d, z), xd);
        for (k, c) in [
            ((x, y, d), xyd),
            ((x, y, z), xy),
            ((x, d, z), xd),
            ((y, d, z), xyd),
        ] {
            combos.triples.insert(k, c);
        }
        let t = Thresholds::default();
        let (selection, baseline) = (Cell::uniform(1_000, 1.0), Cell::uniform(9_000, 1.0));
        let (ranked, tested) = combos.rank(&single, &names, selection, baseline, &t);
        assert_eq!(tested, 10);
        // Only X, Y: D changes nothing within X, Y or X and Y (the pairs and the triple with
        // it are dropped); X with Z has nothing outside it within X; Y with Z is X, Y again.
        let [only] = ranked.as_slice() else {
            panic!("{ranked:#?}")
        };
        let named = |i: u8| {
            let t = &combos.terms[i as usize];
            (names[t.field].clone(), t.value.clone())
        };
        assert_eq!(only.terms, [named(x), named(y)], "{only:#?}");
        assert_eq!(only.implies, [named(z)], "{only:#?}");
        // Which "its bound beats each part's ratio" would have dropped: X alone is nearly
        // as strong.
        let x_alone = stats::assess(single[0][0], single[0][1], selection, baseline, &t);
        assert!(
            only.assessment.lower < x_alone.risk_ratio,
            "{only:?} {x_alone:?}"
        );
        assert!(
            only.assessment.lower > x_alone.lower,
            "{only:?} {x_alone:?}"
        );
    }
}
