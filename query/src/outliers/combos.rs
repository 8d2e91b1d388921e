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
use super::masks::{FieldMasks, Set};
use super::sets::{Entry, SetTable};
use super::shift::{self, Shift};
use super::stats::{self, Assessment, Cell, Thresholds};

/// Most candidates combined: the bits of a row's set.
pub const MAX_CANDIDATES: usize = 128;
/// The strongest pairs extended to triples.
pub const TRIPLE_SEEDS: usize = 96;

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
    /// Findings that are nearly the same events, folded into this one (see
    /// [`super::rank::fold_nearly_same`]).
    pub nearly_same: Vec<Vec<(String, Value)>>,
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
    /// For a selection that is a threshold on a measure, how each candidate's measure
    /// compares with the rest's (`None` without a measure).
    pub single_shifts: Vec<Option<Shift>>,
}

/// The rows of every distinct set of matched candidates, on each side.
#[derive(Debug, Clone)]
pub struct Combos {
    pub terms: Vec<Term>,
    /// Sets of two candidates or more, as this partition found them.
    sets: SetTable,
    /// Other partitions' sets, kept as they were merged (see [`Combos::merge`]).
    merged: Vec<SetTable>,
    /// Rows that match one candidate or none: `low[0]` none, `low[1 + i]` candidate `i`
    /// alone. Kept (in an array: they are most rows) only for the measure's sums of the
    /// candidates alone and of all rows.
    low: Vec<Entry>,
    /// Whether the batches carry the measure (last column) and the sums are kept.
    measure: bool,
    max_sets: usize,
    /// Each field that has candidates, with its candidates' bits (built on the first
    /// batch, again after [`Combos::shrink`]).
    masks: Vec<(usize, FieldMasks)>,
}

impl Combos {
    /// Counts for `terms`; with `measure`, the batches' last column is the measure the
    /// selection is a threshold on.
    pub fn new(mut terms: Vec<Term>, measure: bool) -> Combos {
        terms.truncate(MAX_CANDIDATES);
        let low = vec![Entry::default(); terms.len() + 1];
        Combos {
            terms,
            sets: SetTable::default(),
            merged: Vec::new(),
            low,
            measure,
            max_sets: MAX_SETS,
            masks: Vec::new(),
        }
    }

    /// Holds at most `max` distinct sets (rather than [`MAX_SETS`]).
    pub fn with_max_sets(mut self, max: usize) -> Combos {
        self.max_sets = max;
        self
    }

    /// Where in `low` the rows of `set` are kept: a set of one candidate or none. Others
    /// are in `sets`.
    fn low_slot(set: Set) -> Option<usize> {
        match set.count_ones() {
            0 => Some(0),
            1 => Some(1 + set.trailing_zeros() as usize),
            _ => None,
        }
    }

    /// Adds a row of `set`: its side (0 selection, 1 baseline), weight and measure.
    fn add_row(&mut self, set: Set, side: usize, w: f64, y: Option<f64>) {
        match Self::low_slot(set) {
            Some(i) => self.low[i].add(side, w, y),
            None => self.sets.add(set, side, w, y),
        }
    }

    /// Adds `e`, the sum of some rows of `set`.
    fn add_sum(&mut self, set: Set, e: &Entry) {
        match Self::low_slot(set) {
            Some(i) => self.low[i] = self.low[i].plus(e),
            None => self.sets.insert(set, e),
        }
    }

    /// Adds a batch laid out as for [`super::counts::Counts::add`]; `bins` are the fields'.
    /// With a measure, it is the column after the fields.
    pub fn add(&mut self, batch: &RecordBatch, bins: &[Option<Bins>]) -> Result<()> {
        let n = batch.num_rows();
        let selected = cast(batch.column(0), &DataType::Boolean)?;
        let selected = selected.as_boolean();
        let weights = cast(batch.column(1), &DataType::Float64)?;
        let weights = weights.as_primitive::<Float64Type>();
        let measure = if self.measure {
            Some(cast(batch.column(2 + bins.len()), &DataType::Float64)?)
        } else {
            None
        };
        let measure = measure.as_ref().map(|m| m.as_primitive::<Float64Type>());
        // Per row, the candidates it matches (at most one per field).
        let mut matched: Vec<Set> = vec![0; n];
        if self.masks.is_empty() {
            let mut fields: Vec<usize> = self.terms.iter().map(|t| t.field).collect();
            fields.sort_unstable();
            fields.dedup();
            self.masks = fields
                .into_iter()
                .map(|f| {
                    let mine = self
                        .terms
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| t.field == f)
                        .map(|(i, t)| (1 << i, t.value.clone()))
                        .collect();
                    (
                        f,
                        FieldMasks::new(mine, bins.get(f).and_then(Option::as_ref)),
                    )
                })
                .collect();
        }
        for (f, masks) in &mut self.masks {
            masks.or_into(batch.column(*f + 2), &mut matched)?;
        }
        for (i, &set) in matched.iter().enumerate() {
            // A row with one candidate or none is in no conjunction: kept only for the
            // measure's sums.
            if selected.is_null(i) || (set.count_ones() < 2 && measure.is_none()) {
                continue;
            }
            let side = usize::from(!selected.value(i));
            let w = if weights.is_null(i) {
                1.0
            } else {
                weights.value(i)
            };
            let y = measure.and_then(|m| m.is_valid(i).then(|| shift::log_measure(m.value(i))));
            self.add_row(set, side, w, y);
        }
        self.bound();
        Ok(())
    }

    /// Holds the sets to [`MAX_SETS`], dropping the weakest half of the candidates as often
    /// as it takes.
    fn bound(&mut self) {
        while self.sets.exceeds(self.max_sets) && self.terms.len() > 2 {
            self.shrink(self.terms.len() / 2);
        }
    }

    /// Keeps only the first `keep` candidates (the strongest: see
    /// [`super::rank::combination_candidates`]) in every set, merging the sets that become
    /// equal and dropping those left with fewer than two.
    fn shrink(&mut self, keep: usize) {
        let mask: Set = if keep >= 128 { !0 } else { (1 << keep) - 1 };
        let mut old = vec![std::mem::take(&mut self.sets)];
        old.append(&mut self.merged);
        let old_low = std::mem::replace(&mut self.low, vec![Entry::default(); keep + 1]);
        self.terms.truncate(keep);
        // The dropped candidates' bits are not to be set again.
        self.masks.clear();
        let low_sets = old_low.iter().enumerate().map(|(i, e)| {
            let set: Set = if i == 0 { 0 } else { 1 << (i - 1) };
            (set, *e)
        });
        for (set, e) in old
            .into_iter()
            .flat_map(SetTable::into_sums)
            .chain(low_sets)
        {
            self.add_sum(set & mask, &e);
        }
    }

    /// Merges another pass's sets (over the same candidates) into this one. Its sets are
    /// kept apart, not inserted one by one: a million random inserts into a table that
    /// outgrows the caches, where every use of the sets is a sum over them, which
    /// [`Combos::walk`] takes part by part, one part per core. A set in two parts is
    /// counted in both, as its rows are.
    pub fn merge(&mut self, mut other: Combos) {
        // Partitions that shrank keep only what all kept.
        let keep = self.terms.len().min(other.terms.len());
        if self.terms.len() > keep {
            self.shrink(keep);
        }
        if other.terms.len() > keep {
            other.shrink(keep);
        }
        self.merged.push(other.sets);
        self.merged.append(&mut other.merged);
        for (mine, e) in self.low.iter_mut().zip(&other.low) {
            *mine = mine.plus(e);
        }
    }

    /// Every set with its rows, part by part: `visit` adds each set of a part into that
    /// part's `T` (from `init`), on a thread of its own, and `combine` sums the parts' `T`s.
    /// The walks are sums (pairs, triples, shares), so the parts' order does not matter.
    fn walk<T: Send>(
        &self,
        init: impl Fn() -> T + Sync,
        visit: impl Fn(&mut T, Set, &Entry) + Sync,
        combine: impl Fn(&mut T, T),
    ) -> T {
        let parts: Vec<&SetTable> = std::iter::once(&self.sets)
            .chain(&self.merged)
            .filter(|p| !p.is_empty())
            .collect();
        let walk_part = |part: &SetTable| {
            let mut acc = init();
            part.for_each(|set, e| visit(&mut acc, set, e));
            acc
        };
        let Some((first, rest)) = parts.split_first() else {
            return init();
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = rest
                .iter()
                .map(|part| scope.spawn(|| walk_part(part)))
                .collect();
            let mut acc = walk_part(first);
            for other in others {
                // A panic in a walk is the walk's own, passed on as it was.
                let part = other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                combine(&mut acc, part);
            }
            acc
        })
    }

    /// The `[selection, baseline]` cells of the events two findings share, for every pair
    /// `(i, j)`, `i < j`, of `findings` (each the set of its candidates: their union is the
    /// shared events' conjunction). One walk over the sets: each is matched against every
    /// finding, and adds to the pairs of those it holds.
    /// A finding whose set is 0 (not made of candidates) shares nothing known.
    pub fn intersections(&self, findings: &[u128]) -> Shared {
        let active: Vec<usize> = (0..findings.len()).filter(|&f| findings[f] != 0).collect();
        let (out, _) = self.walk(
            || (HashMap::new(), Vec::with_capacity(active.len())),
            |(out, holds): &mut (Shared, Vec<usize>), set, e| {
                holds.clear();
                holds.extend(
                    active
                        .iter()
                        .copied()
                        .filter(|&f| set & findings[f] == findings[f]),
                );
                for (a, &i) in holds.iter().enumerate() {
                    for &j in &holds[a + 1..] {
                        let c = out.entry((i, j)).or_default();
                        *c = [c[0].plus(&e.cells[0]), c[1].plus(&e.cells[1])];
                    }
                }
            },
            |(out, _), (part, _)| {
                for (key, cells) in part {
                    let c = out.entry(key).or_default();
                    *c = [c[0].plus(&cells[0]), c[1].plus(&cells[1])];
                }
            },
        );
        out
    }

    /// Every pair's rows, each candidate's (alone or with others) and all rows', in one walk
    /// over the sets (each walk reads all of them from memory, a million or more).
    fn sums(&self) -> Sums {
        let k = self.terms.len();
        let init = || Sums {
            pairs: vec![Entry::default(); k * k],
            singles: vec![Entry::default(); k],
            all: Entry::default(),
        };
        let (in_sets, _) = self.walk(
            || (init(), Vec::with_capacity(k)),
            |(sums, bits), set, e| {
                sums.all = sums.all.plus(e);
                bits.clear();
                bits.extend(ones(set).filter(|&i| i < k));
                for (i, &x) in bits.iter().enumerate() {
                    sums.singles[x] = sums.singles[x].plus(e);
                    for &y in &bits[i + 1..] {
                        let p = &mut sums.pairs[x * k + y];
                        *p = p.plus(e);
                    }
                }
            },
            |(sums, _), (part, _)| {
                add_all(&mut sums.pairs, &part.pairs);
                add_all(&mut sums.singles, &part.singles);
                sums.all = sums.all.plus(&part.all);
            },
        );
        // The rows of one candidate or none are in `low`, not in the sets.
        Sums {
            singles: self.low[1..]
                .iter()
                .zip(&in_sets.singles)
                .map(|(low, sets)| low.plus(sets))
                .collect(),
            all: self.low.iter().fold(in_sets.all, |a, e| a.plus(e)),
            pairs: in_sets.pairs,
        }
    }

    /// The cells of every triple that extends one of `seeds` (pairs, `x < y`) by a third
    /// candidate. A triple is counted once per set, through the first of its pairs that is a
    /// seed.
    fn triples(&self, seeds: &[(usize, usize)]) -> HashMap<[usize; 3], Entry> {
        if seeds.is_empty() {
            // No pair to extend: nothing to walk the sets for.
            return HashMap::new();
        }
        let seed_rank: HashMap<(usize, usize), usize> =
            seeds.iter().enumerate().map(|(r, &p)| (p, r)).collect();
        let (out, _) = self.walk(
            || (HashMap::new(), Vec::new()),
            |(out, bits): &mut (HashMap<[usize; 3], Entry>, Vec<usize>), set, entry| {
                if set.count_ones() < 3 {
                    return;
                }
                bits.clear();
                bits.extend(ones(set));
                for (r, &(x, y)) in seeds.iter().enumerate() {
                    if set & (1 << x) == 0 || set & (1 << y) == 0 {
                        continue;
                    }
                    for &z in bits.iter() {
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
                        *e = e.plus(entry);
                    }
                }
            },
            |(out, _), (part, _)| {
                for (t, e) in part {
                    let mine = out.entry(t).or_default();
                    *mine = mine.plus(&e);
                }
            },
        );
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
    /// bound must be over 1 for every part, and its p-value under the Bonferroni bar of its
    /// family (thousands of pairs are tested, and one in forty passes a 95% bound by chance;
    /// the triples, tested only where a pair passed, are a family of their own).
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
    ///   other, or a swap), or all but fewer than `min_raw_events`, leaves nothing to compare
    ///   with: that is no evidence of adding, and the conjunction is not reported (the part
    ///   alone says it all).
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
        let Sums {
            pairs,
            singles: single_rows,
            all,
        } = self.sums();
        // The candidates alone: their cells as counted (the same rows), their measure's sums
        // from here.
        let single: Vec<Entry> = single
            .iter()
            .zip(&single_rows)
            .map(|(cells, e)| Entry {
                cells: *cells,
                moments: e.moments,
            })
            .collect();
        // How `group`'s measure compares with the rest of `within`'s (the measure's test).
        let shift_in = |group: &Entry, within: &Entry| {
            if self.measure {
                shift::compare(&group.moments, &within.minus(group).moments)
            } else {
                None
            }
        };
        // Within `part`'s events, how sure is it that matching the whole of `entry`'s
        // conjunction raises the risk of being selected: the one-sided p-value of the
        // conditional table, or of either test with the measure's (1 when too few of the
        // part's events are outside the conjunction).
        let adds_to = |entry: &Entry, part: &Entry| {
            let rest = part.minus(entry);
            // Too few events outside the conjunction to compare with: the part is nearly
            // the conjunction and says it alone. (A handful is no evidence, and with
            // weights it can look like some: one light selected event beside five heavy
            // baseline ones is a weighted rate of 1%.)
            if rest.cells[0].rows + rest.cells[1].rows < t.min_raw_events {
                return 1.0;
            }
            let [sel, base] = entry.cells;
            let conditional = stats::assess(sel, base, part.cells[0], part.cells[1], t);
            if conditional.risk_ratio <= 1.0 {
                return 1.0;
            }
            let table = if conditional.lower > 1.0 {
                conditional.p_value
            } else {
                1.0
            };
            shift::either(table, shift_in(entry, part))
        };
        let mut implications = Vec::new();
        for x in 0..k {
            for y in x + 1..k {
                let cells = &pairs[x * k + y].cells;
                if cells[0].rows + cells[1].rows == 0 {
                    continue;
                }
                if same_cells(cells, &single[x].cells) {
                    implications.push((x, y));
                }
                if same_cells(cells, &single[y].cells) {
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
        let judge = |idx: &[usize], entry: &Entry, parts: &[Entry]| {
            let [sel, base] = entry.cells;
            let assessment =
                stats::assess(sel, base, selection, baseline, t).with_shift(shift_in(entry, &all));
            let open = assessment.eligible && assessment.lower > 1.0 && !implied(idx);
            let adds = open.then(|| parts.iter().map(|p| adds_to(entry, p)).fold(0.0, f64::max));
            (assessment, adds)
        };
        // Every eligible conjunction is a test, and so is each of its parts' conditional
        // tests: thousands of them, where one in forty would pass a 95% bound by chance (a
        // cause with a bin of an unrelated number that happens to be slow more often within
        // it). So a conjunction adds to its parts only when each conditional p-value is under
        // a Bonferroni bar: pairs and triples are two families, each held to half of the
        // error rate over its own tests. Triples are tested only as extensions of the pairs
        // that pass, a few dozen where pairs are thousands; and whether, within a pair's
        // events, those that also match a third term are selected more often does not depend
        // on how the pair was chosen (given the pair's own counts, under no effect the split
        // is a draw), so the family's bar over the triples actually tested holds it to its
        // half. One bar over both families made a triple's third term clear the bar of the
        // thousands of pairs (a 1.5x slowdown on 2% of events, its third term at p = 1e-4,
        // was shown as two of its terms).
        let family_bar = |tested: usize| t.false_discovery_rate / 2.0 / tested.max(1) as f64;
        let mut pairs_tested = 0;
        let mut open: Vec<(Vec<usize>, [Cell; 2], Assessment, f64)> = Vec::new();
        for x in 0..k {
            for y in x + 1..k {
                let entry = &pairs[x * k + y];
                let (assessment, adds) = judge(&[x, y], entry, &[single[x], single[y]]);
                pairs_tested += usize::from(assessment.eligible);
                if let Some(p) = adds {
                    open.push((vec![x, y], entry.cells, assessment, p));
                }
            }
        }
        let pairs_bar = family_bar(pairs_tested);
        open.retain(|(.., p)| *p <= pairs_bar);
        let mut seeds: Vec<(usize, usize, f64)> = open
            .iter()
            .map(|(idx, _, a, _)| (idx[0], idx[1], a.lower))
            .collect();
        seeds.sort_by(|a, b| b.2.total_cmp(&a.2));
        let seeds: Vec<(usize, usize)> = seeds
            .iter()
            .take(TRIPLE_SEEDS)
            .map(|&(x, y, _)| (x, y))
            .collect();
        let mut triples: Vec<([usize; 3], Entry)> = self.triples(&seeds).into_iter().collect();
        triples.sort_unstable_by_key(|(idx, _)| *idx);
        let mut triples_tested = 0;
        let mut open_triples = Vec::new();
        for ([a, b, c], entry) in triples {
            let parts = [
                single[a],
                single[b],
                single[c],
                pairs[a * k + b],
                pairs[a * k + c],
                pairs[b * k + c],
            ];
            let (assessment, adds) = judge(&[a, b, c], &entry, &parts);
            triples_tested += usize::from(assessment.eligible);
            if let Some(p) = adds {
                open_triples.push((vec![a, b, c], entry.cells, assessment, p));
            }
        }
        let triples_bar = family_bar(triples_tested);
        open.extend(open_triples.into_iter().filter(|(.., p)| *p <= triples_bar));
        let tested = pairs_tested + triples_tested;
        let mut out: Vec<Combination> = open
            .into_iter()
            .map(|(idx, cells, assessment, _)| Combination {
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
                nearly_same: Vec::new(),
            })
            .collect();
        out.sort_by(|a, b| {
            b.assessment
                .lower
                .total_cmp(&a.assessment.lower)
                .then(a.terms.len().cmp(&b.terms.len()))
                .then_with(|| a.terms.cmp(&b.terms))
        });
        let single_shifts = single.iter().map(|e| shift_in(e, &all)).collect();
        Ranked {
            combinations: fold_swaps(out),
            tested,
            implications,
            single_shifts,
        }
    }
}

/// What [`Combos::sums`] adds up over the sets.
#[derive(Debug, Clone, PartialEq)]
struct Sums {
    /// `pairs[x * k + y]` for `x < y`: the rows with both candidates.
    pairs: Vec<Entry>,
    /// Each candidate's rows, alone or with others.
    singles: Vec<Entry>,
    all: Entry,
}

/// The cells of the events findings `(i, j)` share (see [`Combos::intersections`]).
pub type Shared = HashMap<(usize, usize), [Cell; 2]>;

/// `mine[i] += theirs[i]` for every `i`.
fn add_all(mine: &mut [Entry], theirs: &[Entry]) {
    for (m, t) in mine.iter_mut().zip(theirs) {
        *m = m.plus(t);
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
    use crate::outliers::shift::Moments;

    fn cells(sel: u64, base: u64) -> [Cell; 2] {
        [Cell::uniform(sel, 1.0), Cell::uniform(base, 1.0)]
    }

    fn rows(sel: u64, base: u64) -> Entry {
        Entry {
            cells: cells(sel, base),
            moments: Moments::default(),
        }
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
        let mut combos = Combos::new(
            vec![term(0, "X"), term(1, "Y"), term(2, "1"), term(3, "Z")],
            false,
        );
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
            combos.sets.insert(set, &rows(sel, base));
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
    fn a_third_term_is_held_to_the_bar_of_the_triples_tested_not_of_the_pairs() {
        // 1,000 selected and 19,000 other events (5%). Terms a, b, c: a and b together are
        // slow (20% selected), and within them the events with c more so (27.5% against
        // 16%): a third term whose conditional p-value (~1e-3) is far under the bar of the
        // one triple tested, and far over a bar shared with the 1,770 pairs of 60 values
        // that always go together and change nothing (each alone and paired at 5%).
        let (a, b, c) = (0usize, 1usize, 2usize);
        let noise = 60;
        let mut names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        names.extend((0..noise).map(|i| format!("n{i}")));
        let terms = (0..names.len())
            .map(|field| Term {
                field,
                value: Value::Bool(true),
            })
            .collect();
        let mut combos = Combos::new(terms, false);
        let bit = |i: usize| 1u128 << i;
        let all_noise = (3..3 + noise).fold(0u128, |s, i| s | bit(i));
        for (set, sel, base) in [
            (bit(a) | bit(b) | bit(c), 55, 145),
            (bit(a) | bit(b), 65, 335),
            (bit(a) | bit(c), 5, 95),
            (bit(b) | bit(c), 5, 95),
            (all_noise, 50, 950),
        ] {
            combos.sets.insert(set, &rows(sel, base));
        }
        // Each alone: its sets above, and 50 + 950 events of its own.
        let mut single = vec![cells(175, 1_525), cells(175, 1_525), cells(115, 1_285)];
        single.extend((0..noise).map(|_| cells(50, 950)));
        let t = Thresholds::default();
        let (selection, baseline) = (Cell::uniform(1_000, 1.0), Cell::uniform(19_000, 1.0));
        let found = combos.rank(&single, &names, selection, baseline, &t);
        let pairs_tested = noise * (noise - 1) / 2 + 3;
        assert_eq!(found.tested, pairs_tested + 1, "{:#?}", found.combinations);
        // What the third term's evidence is: passing the triples' bar, not one over both.
        let abc = combos.triples(&[(a, b)])[&[a, b, c]];
        let within = stats::assess(
            abc.cells[0],
            abc.cells[1],
            cells(120, 480)[0],
            cells(120, 480)[1],
            &t,
        );
        let shared_bar = t.false_discovery_rate / (pairs_tested + 1) as f64;
        assert!(
            within.p_value > 10.0 * shared_bar && within.p_value < t.false_discovery_rate / 20.0,
            "{within:?}"
        );
        let shown: Vec<Vec<String>> = found
            .combinations
            .iter()
            .map(|c| c.terms.iter().map(|(f, _)| f.clone()).collect())
            .collect();
        assert!(
            shown.contains(&vec!["a".into(), "b".into(), "c".into()]),
            "{shown:?}"
        );
        assert!(shown.contains(&vec!["a".into(), "b".into()]), "{shown:?}");
    }

    #[test]
    fn too_many_sets_drop_the_weakest_candidates_and_partitions_merge_on_what_both_kept() {
        let term = |v: &str| Term {
            field: 0,
            value: Value::Str(v.into()),
        };
        let terms = vec![term("a"), term("b"), term("c"), term("d")];
        let bit = |i: usize| 1u128 << i;
        let mut combos = Combos::new(terms.clone(), false);
        combos.max_sets = 2;
        for (set, n) in [
            (bit(0) | bit(1) | bit(2) | bit(3), 5),
            (bit(2) | bit(3), 1),
            (bit(0) | bit(1), 2),
            (bit(1) | bit(2), 3),
        ] {
            combos.sets.insert(set, &rows(n, n));
        }
        combos.bound();
        // Only a and b are left; the sets with both merge, the others are gone.
        assert_eq!(combos.terms, terms[..2]);
        assert_eq!(combos.sets.len(), 1);
        assert_eq!(combos.sums().pairs[1].cells, cells(7, 7));
        // A partition that kept all four merges on the two.
        let mut other = Combos::new(terms.clone(), false);
        other.sets.insert(bit(0) | bit(1) | bit(3), &rows(1, 1));
        other.sets.insert(bit(2) | bit(3), &rows(4, 4));
        combos.merge(other);
        assert_eq!(combos.terms.len(), 2);
        assert_eq!(combos.sets.len(), 1);
        assert_eq!(combos.sums().pairs[1].cells, cells(8, 8));
    }

    #[test]
    fn a_part_with_a_handful_of_events_outside_the_conjunction_is_no_evidence_of_adding() {
        // Build B (65 selected, 151 baseline stored events) and a value N (a null on nearly
        // every event) that B's events all have but six: one selected event of weight 1 (an
        // error, kept whole) and five baseline ones of weight 20. Weighted, the six are a
        // selected rate of 1% beside B's 30%; they are six events.
        let names: Vec<String> = ["build.id", "gc.pause_ms"].map(String::from).to_vec();
        let term = |field: usize, v: Value| Term { field, value: v };
        let mut combos = Combos::new(
            vec![term(0, Value::Str("B".into())), term(1, Value::Null)],
            false,
        );
        let heavy = |n| Cell::uniform(n, 20.0);
        combos.sets.insert(
            0b11,
            &Entry {
                cells: [heavy(64), heavy(146)],
                moments: Moments::default(),
            },
        );
        let b = [heavy(64).plus(&Cell::uniform(1, 1.0)), heavy(151)];
        let n = [heavy(6_000), heavy(120_000)];
        let (selection, baseline) = (heavy(7_000), heavy(133_000));
        let t = Thresholds::default();
        let found = combos.rank(&[b, n], &names, selection, baseline, &t);
        assert!(found.combinations.is_empty(), "{:#?}", found.combinations);
    }

    /// 200,000 requests, 1 in 20 stored (weight 20) whatever their latency, as the bench
    /// samples successes; fields `a` and `b` each on 20% of them, independently. Requests with
    /// both (4%) are 1.5x slower. The selection is the requests over the base p95.
    fn slow_pair_batch() -> RecordBatch {
        use datafusion::arrow::array::{BooleanArray, Float64Array, StringArray};
        use datafusion::arrow::datatypes::{Field, Schema};
        use std::sync::Arc;
        let mut seed = 7u64;
        let mut unit = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let p95 = 45.0 * (0.9f64 * 1.645).exp();
        let (mut sel, mut w, mut a, mut b, mut ms) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..200_000 {
            let (in_a, in_b) = (unit() < 0.2, unit() < 0.2);
            // Box-Muller: a standard normal from two uniforms.
            let z = (-2.0 * unit().ln()).sqrt() * (std::f64::consts::TAU * unit()).cos();
            let mut d = 45.0 * (0.9 * z).exp();
            if in_a && in_b {
                d *= 1.5;
            }
            if unit() >= 0.05 {
                continue;
            }
            sel.push(Some(d > p95));
            w.push(20.0);
            a.push(if in_a { "A" } else { "-" });
            b.push(if in_b { "B" } else { "-" });
            ms.push(d);
        }
        let schema = Schema::new(vec![
            Field::new("sel", DataType::Boolean, true),
            Field::new("sample_rate", DataType::Float64, false),
            Field::new("a", DataType::Utf8, false),
            Field::new("b", DataType::Utf8, false),
            Field::new("duration_ms", DataType::Float64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(BooleanArray::from(sel)),
                Arc::new(Float64Array::from(w)),
                Arc::new(StringArray::from(a)),
                Arc::new(StringArray::from(b)),
                Arc::new(Float64Array::from(ms)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn the_measure_behind_a_threshold_is_evidence_the_table_alone_does_not_give() {
        let batch = slow_pair_batch();
        let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
        let terms = vec![
            Term {
                field: 0,
                value: Value::Str("A".into()),
            },
            Term {
                field: 1,
                value: Value::Str("B".into()),
            },
        ];
        let t = Thresholds::default();
        let counted = |measure: bool| {
            let mut combos = Combos::new(terms.clone(), measure);
            // Without the measure its column is not there to be read.
            let batch = if measure {
                batch.clone()
            } else {
                batch.project(&[0, 1, 2, 3]).unwrap()
            };
            combos.add(&batch, &[None, None]).unwrap();
            combos
        };
        // The candidates' cells and the totals, as the counting pass gives them: every row
        // is kept when there is a measure.
        let Sums { singles, all, .. } = counted(true).sums();
        let single: Vec<[Cell; 2]> = singles.iter().map(|e| e.cells).collect();
        let [selection, baseline] = all.cells;
        assert_eq!(selection.rows + baseline.rows, batch.num_rows() as u64);
        let found = |measure: bool| counted(measure).rank(&single, &names, selection, baseline, &t);
        let with = found(true);
        let without = found(false);
        let [pair] = with.combinations.as_slice() else {
            panic!("{:#?}", with.combinations)
        };
        let shift = pair.assessment.shift.expect("a shift with the measure");
        assert!((shift.ratio - 1.5).abs() < 0.15, "{shift:?}");
        assert!(pair.assessment.p_value < 1e-8, "{pair:?}");
        // The table alone: the same conjunction is far less sure, if found at all.
        match without.combinations.as_slice() {
            [] => {}
            [p] => {
                assert!(p.assessment.shift.is_none());
                assert!(
                    p.assessment.p_value > 100.0 * pair.assessment.p_value,
                    "{p:?}"
                );
            }
            more => panic!("{more:#?}"),
        }
        // Each term alone is slower through the pair (1.1x): measured too.
        assert!(with.single_shifts.iter().all(|s| s.is_some()));
        assert!(without.single_shifts.iter().all(|s| s.is_none()));
    }

    #[test]
    fn rows_past_one_staging_sum_to_the_pairs_and_triples_counted_directly() {
        use datafusion::arrow::array::{BooleanArray, Float64Array, Int64Array};
        use datafusion::arrow::datatypes::{Field, Schema};
        use std::sync::Arc;
        // Three fields of four values; candidates are values 0 and 1 of each. More rows than
        // one staging holds, so both the parts and the staged rows carry sets at the end.
        let n = crate::outliers::sets::STAGED * 2 + 777;
        let mut seed = 5u64;
        let rows: Vec<(bool, f64, [i64; 3], f64)> = (0..n)
            .map(|_| {
                let mut v = || (crate::tests::lcg(&mut seed) * 4.0) as i64;
                let fields = [v(), v(), v()];
                let sel = crate::tests::lcg(&mut seed) < 0.2;
                let w = [1.0, 4.0, 20.0][(crate::tests::lcg(&mut seed) * 3.0) as usize];
                (sel, w, fields, 10.0 + crate::tests::lcg(&mut seed) * 90.0)
            })
            .collect();
        let terms: Vec<Term> = (0..3)
            .flat_map(|f| {
                (0..2).map(move |v| Term {
                    field: f,
                    value: Value::Int(v),
                })
            })
            .collect();
        let bit_of = |f: usize, v: i64| (v < 2).then(|| 1u128 << (2 * f + v as usize));
        let schema = Arc::new(Schema::new(vec![
            Field::new("sel", DataType::Boolean, true),
            Field::new("sample_rate", DataType::Float64, false),
            Field::new("f0", DataType::Int64, false),
            Field::new("f1", DataType::Int64, false),
            Field::new("f2", DataType::Int64, false),
            Field::new("duration_ms", DataType::Float64, false),
        ]));
        let mut combos = Combos::new(terms.clone(), true);
        // In batches of 8,192, as a scan gives them.
        for chunk in rows.chunks(8192) {
            let field = |f: usize| -> Arc<dyn Array> {
                Arc::new(Int64Array::from(
                    chunk.iter().map(|r| r.2[f]).collect::<Vec<_>>(),
                ))
            };
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(BooleanArray::from(
                        chunk.iter().map(|r| r.0).collect::<Vec<_>>(),
                    )),
                    Arc::new(Float64Array::from(
                        chunk.iter().map(|r| r.1).collect::<Vec<_>>(),
                    )),
                    field(0),
                    field(1),
                    field(2),
                    Arc::new(Float64Array::from(
                        chunk.iter().map(|r| r.3).collect::<Vec<_>>(),
                    )),
                ],
            )
            .unwrap();
            combos.add(&batch, &[None, None, None]).unwrap();
        }
        // Directly: each row into all, and into every candidate, pair and triple of the
        // candidates it holds.
        let k = terms.len();
        let mut all = Entry::default();
        let mut singles = vec![Entry::default(); k];
        let mut pairs = vec![Entry::default(); k * k];
        let mut triples: HashMap<[usize; 3], Entry> = HashMap::new();
        for (sel, w, fields, d) in &rows {
            let bits: Vec<usize> = (0..3)
                .filter_map(|f| bit_of(f, fields[f]))
                .map(|b| b.trailing_zeros() as usize)
                .collect();
            let mut one = Entry::default();
            one.add(usize::from(!sel), *w, Some(shift::log_measure(*d)));
            all = all.plus(&one);
            for (i, &x) in bits.iter().enumerate() {
                singles[x] = singles[x].plus(&one);
                for &y in &bits[i + 1..] {
                    pairs[x * k + y] = pairs[x * k + y].plus(&one);
                }
            }
            if bits.len() == 3 {
                let t = triples.entry([bits[0], bits[1], bits[2]]).or_default();
                *t = t.plus(&one);
            }
        }
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
        let same = |got: &Entry, want: &Entry| {
            (0..2).all(|s| {
                got.cells[s].rows == want.cells[s].rows
                    && got.cells[s].weight == want.cells[s].weight
                    && got.cells[s].weight_sq == want.cells[s].weight_sq
            }) && close(got.moments.wy, want.moments.wy)
                && close(got.moments.w2y2, want.moments.w2y2)
        };
        let got = combos.sums();
        assert!(pairs.iter().any(|p| p.cells[0].rows > 0));
        for (g, w) in got
            .pairs
            .iter()
            .zip(&pairs)
            .chain(got.singles.iter().zip(&singles))
        {
            assert!(same(g, w), "{g:?} vs {w:?}");
        }
        assert!(same(&got.all, &all), "{:?} vs {all:?}", got.all);
        assert_eq!(all.cells[0].rows + all.cells[1].rows, n as u64);
        // Every pair of different fields is a seed: every triple is counted once.
        let seeds: Vec<(usize, usize)> = (0..k)
            .flat_map(|x| (x + 1..k).map(move |y| (x, y)))
            .filter(|(x, y)| x / 2 != y / 2)
            .collect();
        let got = combos.triples(&seeds);
        assert_eq!(got.len(), triples.len());
        for (t, w) in &triples {
            assert!(same(&got[t], w), "{t:?}");
        }
    }

    #[test]
    fn partitions_merged_apart_sum_as_one_table_of_their_sets() {
        let term = |i: usize| Term {
            field: i % 3,
            value: Value::Int(i as i64),
        };
        let terms: Vec<Term> = (0..6).map(term).collect();
        let mut seed = 3;
        // Three partitions' sets, some shared, in small whole counts (exact in any order).
        let parts: Vec<Vec<(Set, Entry)>> = (0..3)
            .map(|_| {
                (0..40)
                    .map(|_| {
                        let set = (crate::tests::lcg(&mut seed) * 64.0) as Set;
                        let n = (crate::tests::lcg(&mut seed) * 9.0) as u64;
                        (set | 0b11, rows(n, 2 * n + 1))
                    })
                    .collect()
            })
            .collect();
        let mut whole = Combos::new(terms.clone(), false);
        let mut merged = Combos::new(terms.clone(), false);
        for (p, part) in parts.iter().enumerate() {
            let mut one = Combos::new(terms.clone(), false);
            for (set, e) in part {
                whole.sets.insert(*set, e);
                one.sets.insert(*set, e);
            }
            if p == 0 {
                merged = one;
            } else {
                merged.merge(one);
            }
        }
        // Kept apart: no set was inserted into the first partition's table.
        assert_eq!(merged.merged.len(), 2);
        assert_eq!(merged.sums(), whole.sums());
        let seeds = [(0, 1), (1, 2), (0, 3)];
        let sorted = |c: &Combos| {
            let mut t: Vec<([usize; 3], Entry)> = c.triples(&seeds).into_iter().collect();
            t.sort_unstable_by_key(|(k, _)| *k);
            t
        };
        assert!(!sorted(&whole).is_empty());
        assert_eq!(sorted(&merged), sorted(&whole));
        let findings = [0b11, 0b100, 0b1000, 0b10_0000];
        let mut shared: Vec<_> = merged.intersections(&findings).into_iter().collect();
        let mut want: Vec<_> = whole.intersections(&findings).into_iter().collect();
        shared.sort_unstable_by_key(|(k, _)| *k);
        want.sort_unstable_by_key(|(k, _)| *k);
        assert!(!want.is_empty());
        assert_eq!(shared, want);
    }

    #[test]
    fn the_events_two_findings_share_are_summed_from_the_sets() {
        let term = |v: &str| Term {
            field: 0,
            value: Value::Str(v.into()),
        };
        let mut combos = Combos::new(vec![term("a"), term("b"), term("c"), term("d")], false);
        let bit = |i: usize| 1u128 << i;
        for (set, n) in [
            (bit(0) | bit(1) | bit(2), 5),
            (bit(0) | bit(1) | bit(2) | bit(3), 2),
            (bit(0) | bit(2), 7),
            (bit(1) | bit(3), 3),
        ] {
            combos.sets.insert(set, &rows(n, 10 * n));
        }
        // Findings: a AND b, c, d; and one not made of candidates (0).
        let found = combos.intersections(&[bit(0) | bit(1), bit(2), bit(3), 0]);
        // a, b with c: sets 1 and 2; a, b with d: set 2; c with d: set 2.
        assert_eq!(found[&(0, 1)], cells(7, 70));
        assert_eq!(found[&(0, 2)], cells(2, 20));
        assert_eq!(found[&(1, 2)], cells(2, 20));
        assert!(!found.keys().any(|&(i, j)| i == 3 || j == 3));
    }
}
