//! The key table of a dynamic sampler: per key, this interval's count and the current rate.
//!
//! Looked up by the key's 64-bit hash ([`crate::key`]), so a known key costs one hash-map probe
//! and no allocation. At most `max_keys` keys get a slot; the events of any further key are
//! counted in one extra slot, the overflow key ([`crate::key::OVERFLOW_KEY`]), which takes part
//! in the allocation like any key. Slots are freed when an interval ends (the sampler decides
//! which), so new keys get in as old ones go quiet.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::key::OVERFLOW_KEY;

/// One key's state.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slot {
    pub(crate) hash: u64,
    pub(crate) name: String,
    /// Events seen this interval.
    pub(crate) count: u64,
    /// What the current rate was computed from: last interval's count, or the smoothed
    /// count of the EMA sampler.
    pub(crate) basis: f64,
    /// The rate events of this key get now.
    pub(crate) rate: f64,
    /// No interval has ended since the key arrived (the EMA sampler starts its average at the
    /// first count instead of decaying it from 0).
    pub(crate) fresh: bool,
}

impl Slot {
    pub(crate) fn new(hash: u64, name: String) -> Self {
        Slot {
            hash,
            name,
            count: 0,
            basis: 0.0,
            rate: 1.0,
            fresh: true,
        }
    }
}

/// Keys are already uniform 64-bit hashes: hashing them again would only cost time.
#[derive(Default)]
pub(crate) struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; this fallback folds anything else in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Clone)]
pub(crate) struct KeyTable {
    index: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    slots: Vec<Slot>,
    overflow: Slot,
    max_keys: usize,
    /// Events counted this interval, all slots and the overflow together.
    total: u64,
}

impl KeyTable {
    pub(crate) fn new(max_keys: usize) -> Self {
        // u32 slot indices: cap the table well below that.
        let max_keys = max_keys.clamp(1, 1 << 24);
        KeyTable {
            index: HashMap::default(),
            slots: Vec::new(),
            overflow: Slot::new(0, OVERFLOW_KEY.to_owned()),
            max_keys,
            total: 0,
        }
    }

    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys
    }

    pub(crate) fn total(&self) -> u64 {
        self.total
    }

    /// Counts one event of the key `hash` and returns its slot (the overflow slot when the key
    /// has none and the table is full). `name` is called only for a key seen for the first time.
    pub(crate) fn count(&mut self, hash: u64, name: impl FnOnce() -> String) -> &Slot {
        self.total = self.total.saturating_add(1);
        let slot = match self.index.get(&hash) {
            Some(&i) => &mut self.slots[i as usize],
            None if self.slots.len() < self.max_keys => {
                let i = self.slots.len();
                self.index.insert(hash, i as u32);
                self.slots.push(Slot::new(hash, name()));
                &mut self.slots[i]
            }
            None => &mut self.overflow,
        };
        slot.count = slot.count.saturating_add(1);
        slot
    }

    /// The slot of a key, if it has one.
    pub(crate) fn get(&self, hash: u64) -> Option<&Slot> {
        self.index.get(&hash).map(|&i| &self.slots[i as usize])
    }

    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    pub(crate) fn overflow(&self) -> &Slot {
        &self.overflow
    }

    /// Every slot and then the overflow slot.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().chain(std::iter::once(&self.overflow))
    }

    pub(crate) fn all_mut(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.slots
            .iter_mut()
            .chain(std::iter::once(&mut self.overflow))
    }

    /// Keeps the key slots for which `keep` is true (the overflow slot always stays).
    /// Ends an interval for the samplers whose basis is the last interval's count (avg,
    /// throughput): keys that saw nothing leave, the others' counts become their bases. False
    /// when the interval saw nothing at all: then everything, rates included, stays.
    pub(crate) fn counts_become_bases(&mut self) -> bool {
        if self.total() == 0 {
            return false;
        }
        self.retain(|s| s.count > 0);
        for s in self.all_mut() {
            s.basis = s.count as f64;
            s.fresh = false;
        }
        true
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&Slot) -> bool) {
        self.slots.retain(keep);
        self.reindex();
    }

    /// Starts a new interval's counts.
    pub(crate) fn reset_counts(&mut self) {
        for s in self.all_mut() {
            s.count = 0;
        }
        self.total = 0;
    }

    /// Sets every rate from its slot's basis and the budget given to it, in `all()` order.
    pub(crate) fn set_rates(&mut self, budgets: &[f64]) {
        for (s, &b) in self.all_mut().zip(budgets) {
            s.rate = crate::alloc::rate(s.basis, b);
        }
    }

    /// Puts a restored slot in: into a free slot, else its traffic into the overflow slot.
    /// A hash already present is skipped (returns false).
    pub(crate) fn insert_restored(&mut self, slot: Slot) -> bool {
        if self.index.contains_key(&slot.hash) {
            return false;
        }
        if self.slots.len() < self.max_keys {
            self.index.insert(slot.hash, self.slots.len() as u32);
            self.total = self.total.saturating_add(slot.count);
            self.slots.push(slot);
        } else {
            self.merge_into_overflow(&slot);
        }
        true
    }

    /// Adds a slot's traffic to the overflow slot (its rate is recomputed by the caller).
    pub(crate) fn merge_into_overflow(&mut self, slot: &Slot) {
        self.overflow.count = self.overflow.count.saturating_add(slot.count);
        self.overflow.basis += slot.basis;
        self.overflow.fresh = false;
        self.total = self.total.saturating_add(slot.count);
    }

    /// Replaces the overflow slot's learned values (restore).
    pub(crate) fn set_overflow(&mut self, count: u64, basis: f64, rate: f64) {
        self.total = self
            .total
            .saturating_sub(self.overflow.count)
            .saturating_add(count);
        self.overflow.count = count;
        self.overflow.basis = basis;
        self.overflow.rate = rate;
        self.overflow.fresh = false;
    }

    fn reindex(&mut self) {
        self.index.clear();
        for (i, s) in self.slots.iter().enumerate() {
            self.index.insert(s.hash, i as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_beyond_the_bound_are_counted_in_the_overflow_slot() {
        let mut t = KeyTable::new(2);
        let mut names = 0;
        for h in [1, 2, 3, 4, 1, 3] {
            t.count(h, || {
                names += 1;
                format!("k{h}")
            });
        }
        assert_eq!(names, 2, "names are built once per admitted key");
        assert_eq!(t.slots().len(), 2);
        assert_eq!(t.get(1).map(|s| s.count), Some(2));
        assert_eq!(t.overflow().count, 3);
        assert_eq!(t.total(), 6);
        t.retain(|s| s.hash != 1);
        t.reset_counts();
        // The freed slot goes to the next new key.
        assert_eq!(t.count(9, || "k9".into()).name, "k9");
        assert_eq!(t.get(2).map(|s| s.name.as_str()), Some("k2"));
    }
}
