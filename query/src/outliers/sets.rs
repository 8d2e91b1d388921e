//! The rows of every distinct set of candidates that a conjunction pass saw, summed set by set
//! (see [`super::combos`]).
//!
//! A pass over millions of events sums them into a million distinct sets or more. Kept in one
//! hash table, that table outgrows the caches: every row's add waits on a load from memory,
//! and every time the table grows, all of it is moved into new memory. So the table is kept
//! in [`PARTS`] parts, chosen by a hash of the set, and rows are staged per part and added a
//! part at a time once [`STAGED`] have come: each part is a small table that grows where it
//! is, and takes its rows in a run. This is aggregation by partitioning, as in Müller et al.,
//! "Cache-Efficient Aggregation: Hashing Is Sorting" (SIGMOD 2015).
//!
//! Every use of the sets is a sum over them, so a set may be seen in pieces: rows still
//! staged are visited as they are, one row at a time, beside the parts (see
//! [`SetTable::for_each`]). No step has to remember to add them first.

use std::collections::HashMap;

use ahash::RandomState;

use super::masks::Set;
use super::shift::Moments;
use super::stats::Cell;

/// Parts of a table: enough that each holds a few thousand sets at the sizes that matter (a
/// million or two), little enough that staging a row is one of a few hundred buffers.
pub const PARTS: usize = 256;

/// Rows staged before they are added to their parts (48 bytes each, 3 MB in all).
pub const STAGED: usize = 1 << 16;

/// What is kept of a group of rows: its `[selection, baseline]` cells and, when the
/// selection is a threshold on a measure, the measure's sums (see [`super::shift`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Entry {
    pub cells: [Cell; 2],
    pub moments: Moments,
}

impl Entry {
    pub fn plus(&self, o: &Entry) -> Entry {
        Entry {
            cells: [
                self.cells[0].plus(&o.cells[0]),
                self.cells[1].plus(&o.cells[1]),
            ],
            moments: self.moments.plus(&o.moments),
        }
    }

    pub fn minus(&self, o: &Entry) -> Entry {
        Entry {
            cells: [
                self.cells[0].minus(&o.cells[0]),
                self.cells[1].minus(&o.cells[1]),
            ],
            moments: self.moments.minus(&o.moments),
        }
    }

    /// Adds one row: its side (0 selection, 1 baseline), weight, and measure if it has one.
    pub fn add(&mut self, side: usize, w: f64, y: Option<f64>) {
        self.cells[side].add(w);
        if let Some(y) = y {
            self.moments.add(w, y);
        }
    }
}

/// A row waiting to be added to its part.
#[derive(Debug, Clone, Copy)]
struct Staged {
    set: Set,
    w: f64,
    y: Option<f64>,
    side: u8,
}

impl Staged {
    fn entry(&self) -> Entry {
        let mut e = Entry::default();
        e.add(usize::from(self.side), self.w, self.y);
        e
    }
}

/// Every distinct set with the sum of its rows, in parts (see the module doc).
#[derive(Debug, Clone)]
pub struct SetTable {
    parts: Vec<HashMap<Set, Entry, RandomState>>,
    /// Per part, the rows not yet added to it.
    staged: Vec<Vec<Staged>>,
    staged_rows: usize,
    /// Distinct sets in the parts (staged rows aside).
    len: usize,
}

impl Default for SetTable {
    fn default() -> Self {
        SetTable {
            parts: (0..PARTS).map(|_| HashMap::default()).collect(),
            staged: vec![Vec::new(); PARTS],
            staged_rows: 0,
            len: 0,
        }
    }
}

/// The part of `set`: the high bits of a multiplicative hash of its two halves. The parts'
/// own tables hash with keys of their own, so the sets of one part still spread in it.
fn part_of(set: Set) -> usize {
    let folded = (set as u64) ^ ((set >> 64) as u64).rotate_left(29);
    let h = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> (64 - PARTS.trailing_zeros())) as usize
}

impl SetTable {
    /// Adds a row of `set`: its side (0 selection, 1 baseline), weight and measure.
    pub fn add(&mut self, set: Set, side: usize, w: f64, y: Option<f64>) {
        self.staged[part_of(set)].push(Staged {
            set,
            w,
            y,
            side: side as u8,
        });
        self.staged_rows += 1;
        if self.staged_rows >= STAGED {
            self.flush();
        }
    }

    /// Adds `e`, the sum of some rows of `set`.
    pub fn insert(&mut self, set: Set, e: &Entry) {
        let part = &mut self.parts[part_of(set)];
        let before = part.len();
        let mine = part.entry(set).or_default();
        *mine = mine.plus(e);
        self.len += part.len() - before;
    }

    /// Adds the staged rows to their parts, a part at a time.
    fn flush(&mut self) {
        for (part, staged) in self.parts.iter_mut().zip(&mut self.staged) {
            let before = part.len();
            for r in staged.iter() {
                part.entry(r.set)
                    .or_default()
                    .add(usize::from(r.side), r.w, r.y);
            }
            self.len += part.len() - before;
            staged.clear();
        }
        self.staged_rows = 0;
    }

    /// How many distinct sets the parts hold (the staged rows, at most [`STAGED`], aside).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds more than `max` distinct sets, staged rows included: they are
    /// added first when they could tip it over, so the answer is exact.
    pub fn exceeds(&mut self, max: usize) -> bool {
        if self.len + self.staged_rows > max {
            self.flush();
        }
        self.len > max
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0 && self.staged_rows == 0
    }

    /// Calls `f` with every set and the sum of its rows; a set whose rows are partly staged
    /// comes more than once (its part's sum, then each staged row), so `f` must be a sum.
    pub fn for_each(&self, mut f: impl FnMut(Set, &Entry)) {
        for part in &self.parts {
            for (&set, e) in part {
                f(set, e);
            }
        }
        for r in self.staged.iter().flatten() {
            f(r.set, &r.entry());
        }
    }

    /// Every set with the sum of all its rows, each once.
    pub fn into_sums(mut self) -> impl Iterator<Item = (Set, Entry)> {
        self.flush();
        self.parts.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::lcg;

    /// Sums by set through the table, and directly, of rows with many repeats.
    #[test]
    fn staged_and_added_rows_sum_by_set_as_one_table_would() {
        let mut seed = 7u64;
        let mut next = |n: u64| (lcg(&mut seed) * n as f64) as u64;
        let mut table = SetTable::default();
        let mut direct: HashMap<Set, Entry> = HashMap::new();
        // More rows than are staged at once, so both the parts and the stage hold some.
        let rows = STAGED * 2 + 1234;
        for _ in 0..rows {
            let set: Set = (1 << next(7)) | (1 << (64 + next(9))) | (1 << next(5));
            let side = next(2) as usize;
            let w = [1.0, 4.0, 20.0][next(3) as usize];
            let y = (next(4) != 0).then(|| next(100) as f64 / 10.0);
            table.add(set, side, w, y);
            direct.entry(set).or_default().add(side, w, y);
        }
        assert!(table.staged_rows > 0, "the last rows are still staged");
        assert_ne!(table.len(), 0, "earlier rows were added to the parts");

        let mut seen: HashMap<Set, Entry> = HashMap::new();
        table.for_each(|set, e| {
            let s = seen.entry(set).or_default();
            *s = s.plus(e);
        });
        let sums: HashMap<Set, Entry> = table.clone().into_sums().collect();
        assert_eq!(sums.len(), direct.len());
        for (set, e) in &direct {
            for got in [&seen[set], &sums[set]] {
                for side in 0..2 {
                    assert_eq!(got.cells[side].rows, e.cells[side].rows);
                    // Whole weights and tenths: the order of the adds cannot move the sums
                    // beyond rounding.
                    assert!((got.cells[side].weight - e.cells[side].weight).abs() < 1e-6);
                    assert!((got.cells[side].weight_sq - e.cells[side].weight_sq).abs() < 1e-6);
                }
                assert!((got.moments.wy - e.moments.wy).abs() < 1e-6);
                assert!((got.moments.w - e.moments.w).abs() < 1e-6);
            }
        }
        assert!(table.len() <= direct.len());
    }

    #[test]
    fn an_entry_inserted_adds_to_the_rows_of_its_set() {
        let mut table = SetTable::default();
        let set: Set = 0b1011;
        table.add(set, 0, 2.0, None);
        let mut e = Entry::default();
        e.add(1, 3.0, None);
        table.insert(set, &e);
        table.insert(set, &e);
        assert_eq!(table.len(), 1);
        // The staged row is the same set: one in all.
        assert!(table.exceeds(0) && !table.exceeds(1));
        let sums: Vec<(Set, Entry)> = table.into_sums().collect();
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[0].1.cells[0].rows, 1);
        assert_eq!(sums[0].1.cells[1].rows, 2);
        assert_eq!(sums[0].1.cells[1].weight, 6.0);
    }

    #[test]
    fn sets_spread_over_the_parts() {
        // Sets that differ only in high bits, or only in low bits, still use many parts.
        let high: std::collections::HashSet<usize> =
            (0..1000u32).map(|i| part_of(Set::from(i) << 100)).collect();
        let low: std::collections::HashSet<usize> =
            (0..1000u32).map(|i| part_of(Set::from(i))).collect();
        assert!(high.len() > PARTS / 2, "{} parts", high.len());
        assert!(low.len() > PARTS / 2, "{} parts", low.len());
    }
}
