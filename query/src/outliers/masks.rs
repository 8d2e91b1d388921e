//! Which of a field's candidate values each row holds, as bits: how the conjunction pass
//! ([`super::combos`]) reads a column. It asks one question of each row (is its value one of
//! these few?), so the answer is looked up per distinct value and each row costs a load and
//! an OR, with no branch on the value: a candidate held by a third of the rows makes a
//! branch on "is it a candidate?" a coin flip, and a mispredicted branch costs more than the
//! rest of the row's work.
//!
//! Values are read as [`super::values`] reads them (a dictionary's values as text, a binned
//! number by [`Bins::bin`], anything else through [`values::sized_slots`]), so this pass and
//! the counting pass cannot disagree on what a row holds.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type};
use datafusion::common::Result;

use super::counts::{Bins, Value};
use super::values::{self, ValueRef};

/// A set of candidates, one bit each (see [`super::combos`]).
pub type Set = u128;

/// One field's candidates and what is kept of its lookups from batch to batch.
#[derive(Debug, Clone)]
pub struct FieldMasks {
    /// Each candidate of the field with its bit.
    candidates: Vec<(Set, Value)>,
    /// The bit of null (0 when null is not a candidate).
    null: Set,
    /// For a binned number, its bins and each bin's bit (0 for a bin that is not a
    /// candidate).
    bins: Option<(Bins, Vec<Set>)>,
    /// The last dictionary's values (held, so no other can take their memory) and each
    /// key's bit.
    dictionary: Option<(ArrayRef, Vec<Set>)>,
    /// For the other encodings: slot `0` is no candidate, slot `1 + i` candidate `i`.
    memo: values::FieldMemo,
    slot_bits: Vec<Set>,
    /// Room for the slots of those encodings, and the rows to look up (all), reused.
    codes: Vec<u32>,
    every: Vec<bool>,
}

impl FieldMasks {
    /// The masks of a field whose candidates are `candidates` (each with its bit), binned by
    /// `bins` when it is a number counted by bins.
    pub fn new(candidates: Vec<(Set, Value)>, bins: Option<&Bins>) -> FieldMasks {
        let bit_of = |v: ValueRef<'_>| bit_of(&candidates, v);
        let null = bit_of(ValueRef::Null);
        let bins = bins.map(|b| {
            let bits = (0..=b.edges.len())
                .map(|i| bit_of(ValueRef::Bin(i as u16)))
                .collect();
            (b.clone(), bits)
        });
        let slot_bits = std::iter::once(0)
            .chain(candidates.iter().map(|(bit, _)| *bit))
            .collect();
        FieldMasks {
            candidates,
            null,
            bins,
            dictionary: None,
            memo: values::FieldMemo::default(),
            slot_bits,
            codes: Vec::new(),
            every: Vec::new(),
        }
    }

    /// `matched[row] |= the bit of row's value` (nothing when it is no candidate), for every
    /// row of `col`.
    pub fn or_into(&mut self, col: &ArrayRef, matched: &mut [Set]) -> Result<()> {
        match (col.data_type(), &self.bins) {
            (DataType::Dictionary(key, _), _) if **key == DataType::Int32 => {
                self.dictionary_into(col, matched)
            }
            (dt, Some((bins, bits))) if dt.is_numeric() => {
                bins_into(col, bins, bits, self.null, matched)
            }
            _ => {
                struct Candidates<'a>(&'a [(Set, Value)]);
                impl values::Slots for Candidates<'_> {
                    fn slot(&mut self, v: ValueRef<'_>) -> u32 {
                        position_of(self.0, v).map_or(0, |p| p as u32 + 1)
                    }
                }
                self.every.resize(col.len(), true);
                values::sized_slots(
                    col,
                    self.bins.as_ref().map(|(bins, _)| bins),
                    &self.every[..col.len()],
                    &mut Candidates(&self.candidates),
                    &mut self.codes,
                    &mut self.memo,
                )?;
                for (m, &code) in matched.iter_mut().zip(&self.codes) {
                    // Every row is counted, so no code is `UNCOUNTED`; `get` keeps it so.
                    *m |= self.slot_bits.get(code as usize).copied().unwrap_or(0);
                }
                Ok(())
            }
        }
    }

    /// A dictionary's rows: each key's bit looked up once per dictionary (the reader hands
    /// a column chunk's batches the same one), each row a load of its key's.
    fn dictionary_into(&mut self, col: &ArrayRef, matched: &mut [Set]) -> Result<()> {
        let Some(d) = col.as_dictionary_opt::<Int32Type>() else {
            return Ok(());
        };
        let values = d.values();
        let key_bits = match self.dictionary.take() {
            Some((held, bits)) if values::same_memory(&held, values) => (held, bits),
            _ => {
                let text = values::as_text(values)?;
                let bits = (0..values.len())
                    .map(|k| bit_of(&self.candidates, values::text_at(&text, k)))
                    .collect();
                (values.clone(), bits)
            }
        };
        let bits = &key_bits.1;
        let keys = d.keys().values();
        // A key out of the dictionary (only where the row is null: arrow checks the others)
        // matches nothing.
        let bit = |k: i32| bits.get(k as usize).copied().unwrap_or(0);
        match d.nulls() {
            None => {
                for (m, &k) in matched.iter_mut().zip(keys.iter()) {
                    *m |= bit(k);
                }
            }
            Some(nulls) => {
                for (i, (m, &k)) in matched.iter_mut().zip(keys.iter()).enumerate() {
                    *m |= choose(nulls.is_valid(i), bit(k), self.null);
                }
            }
        }
        self.dictionary = Some(key_bits);
        Ok(())
    }
}

/// A binned number's rows: each value's bin counted against the edges (a handful; no branch
/// on the value, as a binary search would take), and the bin's bit.
fn bins_into(
    col: &ArrayRef,
    bins: &Bins,
    bits: &[Set],
    null: Set,
    matched: &mut [Set],
) -> Result<()> {
    let a = cast(col, &DataType::Float64)?;
    let a = a.as_primitive::<Float64Type>();
    let edges = bins.edges.as_slice();
    let last = edges.len();
    // `Bins::bin`: the edges at or under `x` (sorted, so `partition_point`), NaN last.
    let bit = |x: f64| {
        let bin = if x.is_nan() {
            last
        } else {
            edges.iter().map(|e| usize::from(*e <= x)).sum()
        };
        bits.get(bin).copied().unwrap_or(0)
    };
    match a.nulls() {
        None => {
            for (m, &x) in matched.iter_mut().zip(a.values().iter()) {
                *m |= bit(x);
            }
        }
        Some(nulls) => {
            for (i, (m, &x)) in matched.iter_mut().zip(a.values().iter()).enumerate() {
                *m |= choose(nulls.is_valid(i), bit(x), null);
            }
        }
    }
    Ok(())
}

/// `if valid { value } else { null }` by masks: whether a row is null is as good as random
/// in a column where some are.
#[inline]
fn choose(valid: bool, value: Set, null: Set) -> Set {
    let keep = Set::from(valid).wrapping_neg();
    (value & keep) | (null & !keep)
}

/// Where `v` is among the candidates, if it is one.
fn position_of(candidates: &[(Set, Value)], v: ValueRef<'_>) -> Option<usize> {
    candidates.iter().position(|(_, c)| c.as_value_ref() == v)
}

/// The bit of the candidate that is `v`, 0 when none is.
fn bit_of(candidates: &[(Set, Value)], v: ValueRef<'_>) -> Set {
    position_of(candidates, v).map_or(0, |p| candidates[p].0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array, StringArray,
        StringViewArray,
    };

    use super::*;
    use crate::tests::lcg;

    /// What a row matches, read the plain way: each value through `values::for_each`, as
    /// the counting pass reads it, compared with every candidate.
    fn by_values(col: &ArrayRef, bins: Option<&Bins>, candidates: &[(Set, Value)]) -> Vec<Set> {
        let mut out = vec![0; col.len()];
        values::for_each(col, bins, |i, v| out[i] |= bit_of(candidates, v)).unwrap();
        out
    }

    fn masks_of(batches: &[ArrayRef], bins: Option<&Bins>, candidates: &[(Set, Value)]) {
        let mut masks = FieldMasks::new(candidates.to_vec(), bins);
        for col in batches {
            // Bits already set by other fields stay set.
            let mut matched: Vec<Set> = (0..col.len()).map(|i| (i as Set % 3) << 100).collect();
            masks.or_into(col, &mut matched).unwrap();
            let want: Vec<Set> = by_values(col, bins, candidates)
                .iter()
                .enumerate()
                .map(|(i, b)| b | ((i as Set % 3) << 100))
                .collect();
            assert_eq!(matched, want, "{col:?}");
        }
    }

    fn words(seed: &mut u64, n: usize) -> Vec<Option<String>> {
        (0..n)
            .map(|_| {
                let u = lcg(seed);
                (u >= 0.2).then(|| format!("v{}", (u * 10.0) as u32))
            })
            .collect()
    }

    #[test]
    fn every_encoding_matches_the_rows_the_values_say() {
        let mut seed = 11;
        let candidates = |null: bool| {
            let mut c: Vec<(Set, Value)> = ["v3", "v5", "v9"]
                .iter()
                .enumerate()
                .map(|(i, s)| (1 << (2 * i + 1), Value::Str((*s).into())))
                .collect();
            if null {
                c.push((1 << 40, Value::Null));
            }
            c
        };
        for null in [false, true] {
            // Dictionaries: one shared by two batches (looked up once), then another of the
            // same length in other memory, and one without nulls.
            let texts = words(&mut seed, 500);
            let dict: DictionaryArray<Int32Type> = texts.iter().map(|s| s.as_deref()).collect();
            let other: DictionaryArray<Int32Type> =
                words(&mut seed, 500).iter().map(|s| s.as_deref()).collect();
            let names: Vec<String> = (0..300).map(|i| format!("v{}", i % 10)).collect();
            let whole: DictionaryArray<Int32Type> = names.iter().map(String::as_str).collect();
            let shared = Arc::new(dict.clone()) as ArrayRef;
            let rebuilt =
                DictionaryArray::<Int32Type>::try_new(dict.keys().clone(), dict.values().clone())
                    .unwrap();
            // A null key that points past the dictionary, as arrow allows.
            let past = DictionaryArray::<Int32Type>::try_new(
                Int32Array::from(vec![Some(0), None, Some(1)]),
                Arc::new(StringArray::from(vec!["v3", "v5"])),
            )
            .unwrap();
            let past = {
                let data = past.into_data();
                let keys = Int32Array::from(vec![0, 77, 1]).into_data();
                let data = data
                    .into_builder()
                    .buffers(keys.buffers().to_vec())
                    .build()
                    .unwrap();
                DictionaryArray::<Int32Type>::from(data)
            };
            masks_of(
                &[
                    shared.clone(),
                    Arc::new(rebuilt),
                    Arc::new(other),
                    Arc::new(whole),
                    Arc::new(past),
                ],
                None,
                &candidates(null),
            );
            // Other encodings go through the slots.
            let plain: ArrayRef = Arc::new(StringArray::from(texts.clone()));
            let views: ArrayRef = Arc::new(StringViewArray::from(texts.clone()));
            masks_of(&[plain, views], None, &candidates(null));
            let flags: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]));
            masks_of(
                &[flags],
                None,
                &[(1, Value::Bool(true)), (1 << 7, Value::Null)],
            );
        }
    }

    #[test]
    fn binned_numbers_match_their_bins_at_the_edges_nan_and_null() {
        let mut seed = 5;
        let bins = Bins {
            edges: vec![-1.0, 0.0, 2.5, 10.0, 10.5],
        };
        let mut xs: Vec<Option<f64>> = (0..1000)
            .map(|_| {
                let u = lcg(&mut seed);
                (u >= 0.1).then(|| (u * 30.0).floor() / 2.0 - 3.0)
            })
            .collect();
        xs.extend([
            Some(f64::NAN),
            Some(-0.0),
            Some(f64::INFINITY),
            Some(f64::NEG_INFINITY),
            Some(-1.0),
            Some(10.5),
        ]);
        let floats: ArrayRef = Arc::new(Float64Array::from(xs.clone()));
        let whole: ArrayRef = Arc::new(Float64Array::from(
            xs.iter().map(|x| x.unwrap_or(1.0)).collect::<Vec<_>>(),
        ));
        let ints: ArrayRef = Arc::new(Int64Array::from(
            xs.iter()
                .map(|x| x.filter(|x| x.is_finite()).map(|x| x as i64))
                .collect::<Vec<_>>(),
        ));
        for candidates in [
            vec![(1 << 3, Value::Bin(0)), (1 << 4, Value::Bin(5))],
            vec![
                (1 << 9, Value::Bin(2)),
                (1 << 10, Value::Bin(4)),
                (1 << 99, Value::Null),
            ],
        ] {
            masks_of(
                &[floats.clone(), whole.clone(), ints.clone()],
                Some(&bins),
                &candidates,
            );
        }
    }
}
