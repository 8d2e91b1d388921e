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
    /// eligible (tested). `single` is each term's assessment alone, `names` the fields' names.
    ///
    /// A conjunction adds to its parts when its lower bound beats the risk ratio (the point
    /// estimate, not just the bound) of each term and, for a triple, of each of its pairs:
    /// with 95% confidence it picks out events more often selected than any part does.
    /// Comparing bound with bound would let a refinement through on noise: adding a common
    /// or unrelated value to the cause (`db.count = 1`, `tls.version = 'TLSv1.2'`) keeps
    /// the cause's ratio give or take chance, and the reader is shown the cause plus noise.
    /// A true conjunction beats its diluted parts by far.
    ///
    /// Conjunctions that differ in one term and count the same events on both sides (a
    /// term swapped for one equivalent to it, `container.image` for `service.version`) are
    /// one explanation: the first keeps the other's term as implied.
    pub fn rank(
        &self,
        single: &[Assessment],
        names: &[String],
        selection: Cell,
        baseline: Cell,
        t: &Thresholds,
    ) -> (Vec<Combination>, usize) {
        let assess = |[sel, base]: [Cell; 2]| stats::assess(sel, base, selection, baseline, t);
        let pairs: HashMap<(u8, u8), Assessment> =
            self.pairs.iter().map(|(&k, &c)| (k, assess(c))).collect();
        let mut tested = 0;
        let mut out: Vec<Combination> = Vec::new();
        let entries = pairs.iter().map(|(&(a, b), &x)| (vec![a, b], x)).chain(
            self.triples
                .iter()
                .map(|(&(a, b, c), &cells)| (vec![a, b, c], assess(cells))),
        );
        for (idx, assessment) in entries {
            tested += usize::from(assessment.eligible);
            let mut parts: Vec<&Assessment> = idx.iter().map(|&i| &single[i as usize]).collect();
            if let [a, b, c] = idx[..] {
                parts.extend([(a, b), (a, c), (b, c)].iter().filter_map(|k| pairs.get(k)));
            }
            let adds = parts.iter().all(|p| assessment.lower > p.risk_ratio);
            if !(assessment.eligible && assessment.lower > 1.0 && adds) {
                continue;
            }
            let cells = match idx[..] {
                [a, b] => self.pairs[&(a, b)],
                [a, b, c] => self.triples[&(a, b, c)],
                _ => unreachable!("pairs and triples only"),
            };
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
