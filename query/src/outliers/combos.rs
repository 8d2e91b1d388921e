//! Conjunctions of two and three field values (Apriori's pruning, as MacroBase uses it: a
//! conjunction's support is at most its weakest term's, so only values seen often enough in
//! the selection can form an eligible conjunction).
//!
//! The candidates are many (up to [`MAX_CANDIDATES`]): not only the values that are
//! explanations alone but values that are barely over-represented, since a term of a true
//! conjunction can be diluted alone (a service version slow only on one kernel is, over all
//! kernels, nearly as fast as the others). A second pass over the same
//! `(selected, weight, fields...)` batches finds, for every row, the set of candidates it
//! matches (at most one per field) as a bitmask, and counts the rows of each distinct set on
//! each side. Every conjunction's cells are then sums over the sets that contain it: pairs for
//! all candidates, triples for those that extend the strongest pairs (level-wise, as Apriori
//! goes), without another pass. A conjunction is reported only when it adds to its parts (see
//! [`Combos::rank`]): otherwise its terms explain the selection and the conjunction adds
//! nothing.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::Result;

use super::counts::{Bins, Value};
use super::stats::{self, Assessment, Cell, Thresholds};
use super::values::{self, ValueRef};

/// Most candidates combined: the bits of a row's set.
pub const MAX_CANDIDATES: usize = 128;
/// The strongest pairs extended to triples.
pub const TRIPLE_SEEDS: usize = 96;

/// A set of candidates, one bit each.
type Set = u128;

/// Most distinct sets a pass keeps (~70 bytes each). Past it, the weakest half of the
/// candidates is dropped (`Combos::shrink`), so memory stays bounded however varied the
/// events are.
pub const MAX_SETS: usize = 2_000_000;

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
    /// What the answer is ranked by (see [`super::rank::Explanation::score`]).
    pub score: f64,
    /// Other conjunctions that match exactly the same events, folded into this one.
    pub same_events: Vec<Vec<(String, Value)>>,
}

/// What [`Combos::rank`] found.
#[derive(Debug, Clone, Default)]
pub struct Ranked {
    /// The conjunctions that add to their parts, best first.
    pub combinations: Vec<Combination>,
    /// How many conjunctions were eligible (tested), for the false discovery rate.
    pub tested: usize,
    /// Pairs `(x, y)` of candidate indexes where every event with `x` also has `y`, on both
    /// sides (the pair's cells are `x`'s own).
    pub implications: Vec<(usize, usize)>,
}

/// The rows of every distinct set of matched candidates, on each side.
#[derive(Debug, Clone)]
pub struct Combos {
    pub terms: Vec<Term>,
    sets: HashMap<Set, [Cell; 2]>,
    max_sets: usize,
}

impl Combos {
    pub fn new(mut terms: Vec<Term>) -> Combos {
        terms.truncate(MAX_CANDIDATES);
        Combos {
            terms,
            sets: HashMap::new(),
            max_sets: MAX_SETS,
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
        let mut matched: Vec<Set> = vec![0; n];
        let mut fields: Vec<usize> = self.terms.iter().map(|t| t.field).collect();
        fields.sort_unstable();
        fields.dedup();
        for f in fields {
            let mine: Vec<(Set, &Value)> = self
                .terms
                .iter()
                .enumerate()
                .filter(|(_, t)| t.field == f)
                .map(|(i, t)| (1 << i, &t.value))
                .collect();
            // Strings by `&str`, so no value is copied to be compared.
            let of = |v: ValueRef<'_>| {
                mine.iter()
                    .find(|(_, w)| w.as_value_ref() == v)
                    .map_or(0, |(bit, _)| *bit)
            };
            let bins = bins.get(f).and_then(Option::as_ref);
            values::for_each(batch.column(f + 2), bins, |i, v| matched[i] |= of(v))?;
        }
        for (i, &set) in matched.iter().enumerate() {
            // A row with one candidate or none is in no conjunction.
            if selected.is_null(i) || set.count_ones() < 2 {
                continue;
            }
            let side = usize::from(!selected.value(i));
            let w = if weights.is_null(i) {
                1.0
            } else {
                weights.value(i)
            };
            self.sets.entry(set).or_default()[side].add(w);
        }
        self.bound();
        Ok(())
    }

    /// Holds the sets to [`MAX_SETS`], dropping the weakest half of the candidates as often
    /// as it takes.
    fn bound(&mut self) {
        while self.sets.len() > self.max_sets && self.terms.len() > 2 {
            self.shrink(self.terms.len() / 2);
        }
    }

    /// Keeps only the first `keep` candidates (the strongest: see
    /// [`super::rank::combination_candidates`]) in every set, merging the sets that become
    /// equal and dropping those left with fewer than two.
    fn shrink(&mut self, keep: usize) {
        self.terms.truncate(keep);
        let mask: Set = if keep >= 128 { !0 } else { (1 << keep) - 1 };
        let old = std::mem::take(&mut self.sets);
        for (set, cells) in old {
            let set = set & mask;
            if set.count_ones() < 2 {
                continue;
            }
            let mine = self.sets.entry(set).or_default();
            for s in 0..2 {
                mine[s] = mine[s].plus(&cells[s]);
            }
        }
    }

    /// Merges another pass's sets (over the same candidates) into this one.
    pub fn merge(&mut self, mut other: Combos) {
        // Partitions that shrank keep only what all kept.
        let keep = self.terms.len().min(other.terms.len());
        if self.terms.len() > keep {
            self.shrink(keep);
        }
        if other.terms.len() > keep {
            other.shrink(keep);
        }
        for (set, cells) in other.sets {
            let mine = self.sets.entry(set).or_default();
            for s in 0..2 {
                mine[s] = mine[s].plus(&cells[s]);
            }
        }
    }

    /// Every pair's cells, `pairs[x * k + y]` for `x < y`.
    fn pairs(&self) -> Vec<[Cell; 2]> {
        let k = self.terms.len();
        let mut pairs = vec![[Cell::default(); 2]; k * k];
        let mut bits = Vec::with_capacity(k);
        for (&set, cells) in &self.sets {
            bits.clear();
            bits.extend(ones(set));
            for (i, &x) in bits.iter().enumerate() {
                for &y in &bits[i + 1..] {
                    let e = &mut pairs[x * k + y];
                    e[0] = e[0].plus(&cells[0]);
                    e[1] = e[1].plus(&cells[1]);
                }
            }
        }
        pairs
    }

    /// The cells of every triple that extends one of `seeds` (pairs, `x < y`) by a third
    /// candidate. A triple is counted once per set, through the first of its pairs that is a
    /// seed.
    fn triples(&self, seeds: &[(usize, usize)]) -> HashMap<[usize; 3], [Cell; 2]> {
        let seed_rank: HashMap<(usize, usize), usize> =
            seeds.iter().enumerate().map(|(r, &p)| (p, r)).collect();
        let mut out: HashMap<[usize; 3], [Cell; 2]> = HashMap::new();
        let mut bits = Vec::new();
        for (&set, cells) in &self.sets {
            if set.count_ones() < 3 {
                continue;
            }
            bits.clear();
            bits.extend(ones(set));
            for (r, &(x, y)) in seeds.iter().enumerate() {
                if set & (1 << x) == 0 || set & (1 << y) == 0 {
                    continue;
                }
                for &z in &bits {
                    if z == x || z == y {
                        continue;
                    }
                    let mut t = [x, y, z];
                    t.sort_unstable();
                    let first = [(t[0], t[1]), (t[0], t[2]), (t[1], t[2])]
                        .iter()
                        .filter_map(|p| seed_rank.get(p))
                        .min();
                    if first != Some(&r) {
                        continue;
                    }
                    let e = out.entry(t).or_default();
                    e[0] = e[0].plus(&cells[0]);
                    e[1] = e[1].plus(&cells[1]);
                }
            }
        }
        out
    }

    /// The conjunctions that add to their parts, best first, how many were eligible, and
    /// which candidates imply which. `single` is each candidate's `[selection, baseline]`
    /// cells alone, `names` the fields' names.
    ///
    /// A conjunction is reported when it is eligible and significant itself (lower bound of
    /// its risk ratio over 1) and it adds to each of its parts: each term and, for a triple,
    /// each of its pairs. That is MacroBase's minimality, loosely: a longer explanation is
    /// shown only when every term in it earns its place. Whether it does is a conditional
    /// question: among the events matching the part, are those that also match the rest of
    /// the conjunction selected more often than those that do not? The conjunction's cells
    /// assessed against the part's cells as the totals give exactly that conditional risk
    /// ratio, with its interval on design-effective counts (as every ratio here): its lower
    /// bound must be over 1 for every part, and its p-value under the Bonferroni bar for the
    /// conjunctions tested (thousands are, and one in forty passes a 95% bound by chance).
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
    /// Triples are counted for the [`TRIPLE_SEEDS`] strongest pairs that pass (a triple whose
    /// every term earns its place has pairs that do too). Ranked by the conjunction's own
    /// lower bound. Conjunctions that differ in one term and count the same events on both
    /// sides (a term swapped for one equivalent to it, `container.image` for
    /// `service.version`) are one explanation: the first keeps the other's term as implied.
    pub fn rank(
        &self,
        single: &[[Cell; 2]],
        names: &[String],
        selection: Cell,
        baseline: Cell,
        t: &Thresholds,
    ) -> Ranked {
        let k = self.terms.len();
        let pairs = self.pairs();
        // Within `part`'s events, how sure is it that matching the whole of `cells`'
        // conjunction raises the risk of being selected: the one-sided p-value of the
        // conditional table (1 when no event of the part is outside the conjunction).
        let adds_to = |[sel, base]: [Cell; 2], [part_sel, part_base]: [Cell; 2]| {
            let rest = (part_sel.minus(&sel), part_base.minus(&base));
            if rest.0.rows == 0 && rest.1.rows == 0 {
                return 1.0;
            }
            let conditional = stats::assess(sel, base, part_sel, part_base, t);
            if conditional.lower > 1.0 {
                conditional.p_value
            } else {
                1.0
            }
        };
        let mut implications = Vec::new();
        for x in 0..k {
            for y in x + 1..k {
                let cells = &pairs[x * k + y];
                if cells[0].rows + cells[1].rows == 0 {
                    continue;
                }
                if same_cells(cells, &single[x]) {
                    implications.push((x, y));
                }
                if same_cells(cells, &single[y]) {
                    implications.push((y, x));
                }
            }
        }
        implications.sort_unstable();
        let implied = |idx: &[usize]| {
            idx.iter().any(|&a| {
                idx.iter()
                    .any(|&b| a != b && implications.binary_search(&(a, b)).is_ok())
            })
        };
        // A conjunction's assessment, and the largest p-value of its adding to a part (see
        // above), or `None` when it cannot be reported whatever the parts say.
        let judge = |idx: &[usize], cells: [Cell; 2], parts: &[[Cell; 2]]| {
            let assessment = stats::assess(cells[0], cells[1], selection, baseline, t);
            let open = assessment.eligible && assessment.lower > 1.0 && !implied(idx);
            let adds = open.then(|| parts.iter().map(|&p| adds_to(cells, p)).fold(0.0, f64::max));
            (assessment, adds)
        };
        // Every eligible conjunction is a test, and so is each of its parts' conditional
        // tests: thousands of them, where one in forty would pass a 95% bound by chance (a
        // cause with a bin of an unrelated number that happens to be slow more often within
        // it). So a conjunction adds to its parts only when each conditional p-value is under
        // the Bonferroni bar for the conjunctions tested.
        let mut tested = 0;
        let mut open: Vec<(Vec<usize>, [Cell; 2], Assessment, f64)> = Vec::new();
        for x in 0..k {
            for y in x + 1..k {
                let cells = pairs[x * k + y];
                let (assessment, adds) = judge(&[x, y], cells, &[single[x], single[y]]);
                tested += usize::from(assessment.eligible);
                if let Some(p) = adds {
                    open.push((vec![x, y], cells, assessment, p));
                }
            }
        }
        let bar = |tested: usize| t.false_discovery_rate / tested.max(1) as f64;
        let pairs_bar = bar(tested);
        let mut seeds: Vec<(usize, usize, f64)> = open
            .iter()
            .filter(|(.., p)| *p <= pairs_bar)
            .map(|(idx, _, a, _)| (idx[0], idx[1], a.lower))
            .collect();
        seeds.sort_by(|a, b| b.2.total_cmp(&a.2));
        let seeds: Vec<(usize, usize)> = seeds
            .iter()
            .take(TRIPLE_SEEDS)
            .map(|&(x, y, _)| (x, y))
            .collect();
        let mut triples: Vec<([usize; 3], [Cell; 2])> = self.triples(&seeds).into_iter().collect();
        triples.sort_unstable_by_key(|(idx, _)| *idx);
        for ([a, b, c], cells) in triples {
            let parts = [
                single[a],
                single[b],
                single[c],
                pairs[a * k + b],
                pairs[a * k + c],
                pairs[b * k + c],
            ];
            let (assessment, adds) = judge(&[a, b, c], cells, &parts);
            tested += usize::from(assessment.eligible);
            if let Some(p) = adds {
                open.push((vec![a, b, c], cells, assessment, p));
            }
        }
        let bar = bar(tested);
        let kept = open
            .into_iter()
            .filter(|(.., p)| *p <= bar)
            .map(|(idx, cells, a, _)| (idx, cells, a));
        let mut out: Vec<Combination> = kept
            .into_iter()
            .map(|(idx, cells, assessment)| Combination {
                terms: idx
                    .iter()
                    .map(|&i| {
                        let t = &self.terms[i];
                        (names[t.field].clone(), t.value.clone())
                    })
                    .collect(),
                selection: cells[0],
                baseline: cells[1],
                assessment,
                implies: Vec::new(),
                score: assessment.lower,
                same_events: Vec::new(),
            })
            .collect();
        out.sort_by(|a, b| {
            b.assessment
                .lower
                .total_cmp(&a.assessment.lower)
                .then(a.terms.len().cmp(&b.terms.len()))
                .then_with(|| a.terms.cmp(&b.terms))
        });
        Ranked {
            combinations: fold_swaps(out),
            tested,
            implications,
        }
    }
}

/// The positions of the set bits of `set`, lowest first.
fn ones(mut set: Set) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (set != 0).then(|| {
            let i = set.trailing_zeros() as usize;
            set &= set - 1;
            i
        })
    })
}

/// Whether two findings' `[selection, baseline]` cells are the same: then they match the
/// same events (the chance that different events have equal rows and equal sums of weights on
/// both sides is negligible).
pub fn same_cells(p: &[Cell; 2], s: &[Cell; 2]) -> bool {
    (0..2).all(|k| {
        p[k].rows == s[k].rows
            && (p[k].weight - s[k].weight).abs() <= 1e-9 * s[k].weight.max(1.0)
            && (p[k].weight_sq - s[k].weight_sq).abs() <= 1e-9 * s[k].weight_sq.max(1.0)
    })
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
        let (x, y, d, z) = (0usize, 1usize, 2usize, 3usize);
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
        // The rows of each set of two or more candidates, [selection, baseline]: together
        // they give X, Y 930 + 1000, X, D 760 + 1440, Y, D 756 + 1440, X, Y, D 744 + 800.
        let bit = |i: usize| 1u128 << i;
        for (set, sel, base) in [
            (bit(x) | bit(y) | bit(d) | bit(z), 744, 800),
            (bit(x) | bit(y) | bit(z), 186, 200),
            (bit(x) | bit(d) | bit(z), 16, 640),
            (bit(x) | bit(z), 4, 160),
            (bit(y) | bit(d), 12, 640),
        ] {
            combos.sets.insert(set, cells(sel, base));
        }
        let t = Thresholds::default();
        let (selection, baseline) = (Cell::uniform(1_000, 1.0), Cell::uniform(9_000, 1.0));
        let found = combos.rank(&single, &names, selection, baseline, &t);
        let ranked = found.combinations;
        // Six pairs, and the triples that extend the pairs that pass (X, Y and its twin Y, Z),
        // each counted once: X, Y, D; X, Y, Z; Y, D, Z.
        assert_eq!(found.tested, 9);
        // Z and X imply each other.
        assert_eq!(found.implications, [(x, z), (z, x)]);
        // Only X, Y: D changes nothing within X, Y or X and Y (the pairs and the triple with
        // it are dropped); X with Z has nothing outside it within X; Y with Z is X, Y again.
        let [only] = ranked.as_slice() else {
            panic!("{ranked:#?}")
        };
        let named = |i: usize| {
            let t = &combos.terms[i];
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

    #[test]
    fn too_many_sets_drop_the_weakest_candidates_and_partitions_merge_on_what_both_kept() {
        let term = |v: &str| Term {
            field: 0,
            value: Value::Str(v.into()),
        };
        let terms = vec![term("a"), term("b"), term("c"), term("d")];
        let bit = |i: usize| 1u128 << i;
        let mut combos = Combos::new(terms.clone());
        combos.max_sets = 2;
        for (set, n) in [
            (bit(0) | bit(1) | bit(2) | bit(3), 5),
            (bit(2) | bit(3), 1),
            (bit(0) | bit(1), 2),
            (bit(1) | bit(2), 3),
        ] {
            combos.sets.insert(set, cells(n, n));
        }
        combos.bound();
        // Only a and b are left; the sets with both merge, the others are gone.
        assert_eq!(combos.terms, terms[..2]);
        assert_eq!(combos.sets.len(), 1);
        assert_eq!(combos.pairs()[1], cells(7, 7));
        // A partition that kept all four merges on the two.
        let mut other = Combos::new(terms.clone());
        other.sets.insert(bit(0) | bit(1) | bit(3), cells(1, 1));
        other.sets.insert(bit(2) | bit(3), cells(4, 4));
        combos.merge(other);
        assert_eq!(combos.terms.len(), 2);
        assert_eq!(combos.sets.len(), 1);
        assert_eq!(combos.pairs()[1], cells(8, 8));
    }
}
