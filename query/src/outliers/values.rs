//! Reading a candidate field's column as discrete values, the one place that knows how each
//! Arrow type becomes a [`Value`]: booleans and integers as themselves, numeric fields with
//! bins by the bin they fall in, strings (plain, large, view or dictionary) as text. Both
//! passes ([`super::counts`], and [`super::combos`] through [`super::masks`], whose fast
//! paths for dictionaries and bins are tested against [`for_each`]) read columns through
//! here, so they cannot disagree on what a value is.

use datafusion::arrow::array::{Array, ArrayData, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type};
use datafusion::common::{Result, internal_err};

use super::counts::{Bins, Value};

/// A value borrowed from a column: strings are not copied until a pass keeps one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Str(&'a str),
    Bin(u16),
}

impl ValueRef<'_> {
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Str(s) => Value::Str(s.to_owned()),
            ValueRef::Bin(b) => Value::Bin(b),
        }
    }
}

impl Value {
    pub fn as_value_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Str(s) => ValueRef::Str(s),
            Value::Bin(b) => ValueRef::Bin(*b),
        }
    }
}

/// Calls `f(row, value)` for every row of `col`, with `bins` for a binned numeric field.
pub fn for_each(
    col: &ArrayRef,
    bins: Option<&Bins>,
    mut f: impl FnMut(usize, ValueRef<'_>),
) -> Result<()> {
    let n = col.len();
    match (col.data_type(), bins) {
        (DataType::Boolean, _) => {
            let a = col.as_boolean();
            for i in 0..n {
                f(i, nullable(a, i, || ValueRef::Bool(a.value(i))));
            }
        }
        (dt, Some(bins)) if dt.is_numeric() => {
            let a = cast(col, &DataType::Float64)?;
            let a = a.as_primitive::<Float64Type>();
            for i in 0..n {
                f(i, nullable(a, i, || ValueRef::Bin(bins.bin(a.value(i)))));
            }
        }
        (dt, None) if dt.is_integer() => {
            let a = cast(col, &DataType::Int64)?;
            let a = a.as_primitive::<Int64Type>();
            for i in 0..n {
                f(i, nullable(a, i, || ValueRef::Int(a.value(i))));
            }
        }
        (DataType::Utf8View, _) => {
            let a = col.as_string_view();
            for i in 0..n {
                f(i, nullable(a, i, || ValueRef::Str(a.value(i))));
            }
        }
        (DataType::Utf8, _) => {
            let a = col.as_string::<i32>();
            for i in 0..n {
                f(i, nullable(a, i, || ValueRef::Str(a.value(i))));
            }
        }
        (DataType::LargeUtf8, _) => {
            let a = col.as_string::<i64>();
            for i in 0..n {
                f(i, nullable(a, i, || ValueRef::Str(a.value(i))));
            }
        }
        _ => {
            // Dictionaries and anything else, as text.
            let a = cast(col, &DataType::Utf8)?;
            let a = a.as_string::<i32>();
            for i in 0..n {
                f(i, nullable(a, i, || ValueRef::Str(a.value(i))));
            }
        }
    }
    Ok(())
}

/// Gives each distinct value a slot: where a pass keeps that value's counts. The same value
/// must always get the same slot.
pub trait Slots {
    fn slot(&mut self, v: ValueRef<'_>) -> u32;
}

/// What [`slots`] writes for a row it was told not to count.
pub const UNCOUNTED: u32 = u32::MAX;

/// The slot of every row of `col` that `counted` says to count (the value as [`for_each`]
/// reads it, looked up in `slots`), [`UNCOUNTED`] for the others, into `out`. A value that
/// only uncounted rows hold is never looked up, so it gets no slot.
///
/// The point is to look up as few values as possible: per row, a hash of the value is most
/// of the work of counting it. Strings and integers go through a small direct-mapped memo of
/// the slots last seen ([`Memo`]), so a column of few distinct values (most of them) is
/// looked up in `slots` about once per value per batch, not once per row. For a `Utf8View`
/// column the memo is keyed by the 16-byte view, not the string: two rows with the same view
/// hold the same string (the same inline bytes, or the same length, buffer and offset), so
/// the view stands for the string within this column. A dictionary's values are looked up
/// once per key. Booleans and bins are few, and `Slots` implementations keep them in arrays.
pub fn slots(
    col: &ArrayRef,
    bins: Option<&Bins>,
    counted: &[bool],
    slots: &mut impl Slots,
    out: &mut Vec<u32>,
) -> Result<()> {
    sized_slots(col, bins, counted, slots, out, &mut FieldMemo::default())
}

/// What the lookups of one field's values keep from batch to batch (see [`sized_slots`]):
/// how many buckets its memo has, and for a dictionary-encoded column, the slots of the last
/// dictionary's keys. The reader hands every batch of a column chunk the same dictionary
/// (one `Arc`), so its keys are looked up once per chunk, not once per batch.
///
/// It stands for the `Slots` it was used with: a pass that gives its values new slots (a
/// field found to be an identifier, forgotten) starts a new one.
#[derive(Debug, Clone, Default)]
pub struct FieldMemo {
    size: MemoSize,
    dictionary: Option<KeySlots>,
}

/// A dictionary's values (held, so that no other dictionary can take their place in memory)
/// and the slot of each key, [`UNCOUNTED`] until a counted row holds it.
#[derive(Debug, Clone)]
struct KeySlots {
    values: ArrayRef,
    slots: Vec<u32>,
}

impl KeySlots {
    /// The key slots `memo` kept, while `values` is the dictionary they were for; else none
    /// yet.
    fn of(memo: &mut FieldMemo, values: &ArrayRef) -> KeySlots {
        match memo.dictionary.take() {
            Some(d) if same_memory(&d.values, values) => d,
            _ => KeySlots {
                values: values.clone(),
                slots: vec![UNCOUNTED; values.len()],
            },
        }
    }

    /// The slot of key `k` (its value read from `text`, the values [`as_text`]), looked up
    /// the first time; `None` when `k` is no key of the dictionary.
    fn slot(&mut self, text: &ArrayRef, k: usize, slots: &mut impl Slots) -> Option<u32> {
        let s = self.slots.get_mut(k)?;
        if *s == UNCOUNTED {
            *s = slots.slot(text_at(text, k));
        }
        Some(*s)
    }
}

/// Whether `a` and `b` are the same values in the same memory: the same type, length and
/// offset over the same buffers. The reader wraps a chunk's one dictionary in a new array for
/// every batch (the array is rebuilt from its buffers), so the arrays are not the same `Arc`;
/// the buffers are. Buffers are immutable, and `a`'s are held, so no other values can be at
/// those addresses.
pub(super) fn same_memory(a: &ArrayRef, b: &ArrayRef) -> bool {
    if Arc::ptr_eq(a, b) {
        return true;
    }
    let (a, b) = (a.to_data(), b.to_data());
    fn buffers(d: &ArrayData) -> impl Iterator<Item = *const u8> + '_ {
        d.buffers()
            .iter()
            .map(|b| b.as_ptr())
            .chain(d.nulls().map(|n| n.buffer().as_ptr()))
    }
    a.data_type() == b.data_type()
        && a.len() == b.len()
        && a.offset() == b.offset()
        && a.child_data().is_empty()
        && b.child_data().is_empty()
        && a.nulls().is_some() == b.nulls().is_some()
        && buffers(&a).eq(buffers(&b))
}

/// How many buckets a column's memo has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MemoSize {
    bits: u32,
}

impl MemoSize {
    fn grow(&mut self, misses: usize, rows: usize) {
        if misses * 8 > rows {
            self.bits = (self.bits + 2).min(MEMO_BITS.1);
        }
    }
}

impl Default for MemoSize {
    fn default() -> Self {
        MemoSize { bits: MEMO_BITS.0 }
    }
}

/// A memo starts with `2^8` buckets, and a field whose values miss it often grows it to
/// `2^12` (a customer id of 5,000 values, 600 pods): a miss costs a hash of the string and a
/// compare, ten times a hit, while 4,096 buckets cost 80 KB to clear per batch.
const MEMO_BITS: (u32, u32) = (8, 12);

/// [`slots`] for one of a field's batches, with what its earlier batches left in `memo`: a
/// memo of strings or integers grows (for the next batches) when more than an eighth of the
/// rows missed it, and a dictionary's keys keep their slots while the dictionary stays.
pub fn sized_slots(
    col: &ArrayRef,
    bins: Option<&Bins>,
    counted: &[bool],
    slots: &mut impl Slots,
    out: &mut Vec<u32>,
    memo: &mut FieldMemo,
) -> Result<()> {
    let n = col.len();
    out.clear();
    out.resize(n, UNCOUNTED);
    let size = &mut memo.size;
    let bits = size.bits;
    match col.data_type() {
        DataType::Boolean => {
            // Three values at most: each looked up on its first counted row, every other row
            // a test of its bits.
            let a = col.as_boolean();
            let (values, nulls) = (a.values(), a.nulls());
            let mut known = [UNCOUNTED; 3];
            for i in (0..n).filter(|&i| counted[i]) {
                let k = if nulls.is_some_and(|n| n.is_null(i)) {
                    2
                } else {
                    usize::from(values.value(i))
                };
                if known[k] == UNCOUNTED {
                    known[k] = slots.slot(match k {
                        2 => ValueRef::Null,
                        _ => ValueRef::Bool(k == 1),
                    });
                }
                out[i] = known[k];
            }
        }
        DataType::Utf8View => {
            let a = col.as_string_view();
            let views = a.views();
            let mut memo = Memo::new(0u128, bits);
            let mut null = None;
            for i in (0..n).filter(|&i| counted[i]) {
                out[i] = if a.is_null(i) {
                    *null.get_or_insert_with(|| slots.slot(ValueRef::Null))
                } else {
                    let view = views[i];
                    let (lo, hi) = (view as u64, (view >> 64) as u64);
                    memo.get(view, lo ^ mix(hi), || slots.slot(ValueRef::Str(a.value(i))))
                };
            }
            size.grow(memo.misses, n);
        }
        dt if bins.is_none() && dt.is_integer() => {
            let a = cast(col, &DataType::Int64)?;
            let a = a.as_primitive::<Int64Type>();
            let mut memo = Memo::new(0i64, bits);
            let mut null = None;
            for i in (0..n).filter(|&i| counted[i]) {
                out[i] = if a.is_null(i) {
                    *null.get_or_insert_with(|| slots.slot(ValueRef::Null))
                } else {
                    let v = a.value(i);
                    memo.get(v, v as u64, || slots.slot(ValueRef::Int(v)))
                };
            }
            size.grow(memo.misses, n);
        }
        DataType::Dictionary(..) => {
            let a = col.as_any_dictionary();
            let values = a.values();
            let mut known = KeySlots::of(memo, values);
            // Read as text, as `for_each` reads a dictionary; each key looked up on its
            // first counted row.
            let text = as_text(values)?;
            // The slot of a key, `None` for a null one.
            let mut null = None;
            let mut of_key = |k: Option<usize>| match k.and_then(|k| known.slot(&text, k, slots)) {
                Some(s) => s,
                // Null (or not a key of this dictionary: arrow's arrays are checked, so not
                // expected).
                None => *null.get_or_insert_with(|| slots.slot(ValueRef::Null)),
            };
            if let Some(d) = col.as_dictionary_opt::<Int32Type>() {
                // The reader's keys (see `table::Strings::Dictionaries`), read in place.
                let keys = d.keys().values();
                for i in (0..n).filter(|&i| counted[i]) {
                    out[i] = of_key(d.is_valid(i).then(|| keys[i] as usize));
                }
            } else {
                // An empty dictionary can only have null keys.
                let keys = if values.is_empty() {
                    vec![0; n]
                } else {
                    a.normalized_keys()
                };
                for i in (0..n).filter(|&i| counted[i]) {
                    out[i] = of_key(a.is_valid(i).then(|| keys[i]));
                }
            }
            memo.dictionary = Some(known);
        }
        _ => for_each(col, bins, |i, v| {
            if counted[i] {
                out[i] = slots.slot(v);
            }
        })?,
    }
    Ok(())
}

/// Codes for the rows of a column whose batch holds few values, known before its rows are
/// read: a dictionary of at most `max_values` values (a row's code is its key, null the
/// dictionary's length) or booleans (false 0, true 1, null 2). A row `counted` says not to
/// count gets the code past those, which a counter sends to a cell of its own. Returns how
/// many codes there are (without that one), `None` for any other column, whose rows are
/// looked up one by one ([`sized_slots`]).
///
/// No lookup per row: a counter sums the rows by code and looks up each code's value once a
/// batch ([`code_slots`]).
pub fn small_codes(
    col: &ArrayRef,
    counted: &[bool],
    max_values: usize,
    out: &mut Vec<u16>,
) -> Option<usize> {
    out.clear();
    let n = col.len();
    let codes = match col.data_type() {
        DataType::Boolean => {
            let a = col.as_boolean();
            let (values, nulls) = (a.values(), a.nulls().filter(|n| n.null_count() > 0));
            out.extend((0..n).map(|i| match () {
                _ if !counted[i] => 3,
                _ if nulls.is_some_and(|n| n.is_null(i)) => 2,
                _ => u16::from(values.value(i)),
            }));
            3
        }
        DataType::Dictionary(..) => {
            let d = col.as_dictionary_opt::<Int32Type>()?;
            let len = d.values().len();
            if len > max_values || len >= usize::from(u16::MAX) {
                return None;
            }
            let keys = d.keys().values();
            // Arrow checks keys against the dictionary; one past it would be read as null,
            // as `sized_slots` reads it.
            let key = |k: i32| (k as u32).min(len as u32) as u16;
            let uncounted = len as u16 + 1;
            match d.nulls().filter(|n| n.null_count() > 0) {
                None => out.extend(
                    keys.iter()
                        .zip(counted)
                        .map(|(&k, &c)| if c { key(k) } else { uncounted }),
                ),
                Some(nulls) => out.extend((0..n).map(|i| match () {
                    _ if !counted[i] => uncounted,
                    _ if nulls.is_null(i) => len as u16,
                    _ => key(keys[i]),
                })),
            }
            len + 1
        }
        _ => return None,
    };
    Some(codes)
}

/// The slot of each code [`small_codes`] gave `col`'s rows that `used` says rows hold, into
/// `out` by code ([`UNCOUNTED`] for the others), looked up in code order. A dictionary's keys
/// keep their slots in `memo` while the dictionary stays, as in [`sized_slots`].
pub fn code_slots(
    col: &ArrayRef,
    codes: usize,
    used: impl Fn(usize) -> bool,
    slots: &mut impl Slots,
    memo: &mut FieldMemo,
    out: &mut Vec<u32>,
) -> Result<()> {
    out.clear();
    out.resize(codes, UNCOUNTED);
    match col.data_type() {
        DataType::Boolean => {
            for (code, v) in [ValueRef::Bool(false), ValueRef::Bool(true), ValueRef::Null]
                .into_iter()
                .enumerate()
                .filter(|&(code, _)| used(code))
            {
                out[code] = slots.slot(v);
            }
        }
        _ => {
            let Some(d) = col.as_any_dictionary_opt() else {
                return internal_err!("code_slots: {} has no codes", col.data_type());
            };
            let values = d.values();
            let mut known = KeySlots::of(memo, values);
            let text = as_text(values)?;
            for code in (0..codes).filter(|&c| used(c)) {
                // The code past the keys is null.
                out[code] = known
                    .slot(&text, code, slots)
                    .unwrap_or_else(|| slots.slot(ValueRef::Null));
            }
            memo.dictionary = Some(known);
        }
    }
    Ok(())
}

/// The slots of the last keys seen, one per hash bucket (256 to 4,096, see [`MemoSize`]): a
/// hit costs a multiply and a compare, a miss (a value not seen in this batch, or one that
/// shares its bucket) a lookup in the `Slots` behind it. Keys are compared whole, so the hash
/// only decides speed; a set of values made to share buckets costs the lookups the memo would
/// have saved, no more.
struct Memo<K> {
    keys: Vec<K>,
    slots: Vec<u32>,
    shift: u32,
    misses: usize,
}

impl<K: Copy + PartialEq> Memo<K> {
    fn new(fill: K, bits: u32) -> Self {
        Memo {
            keys: vec![fill; 1 << bits],
            slots: vec![UNCOUNTED; 1 << bits],
            shift: 64 - bits,
            misses: 0,
        }
    }

    #[inline]
    fn get(&mut self, key: K, hash: u64, miss: impl FnOnce() -> u32) -> u32 {
        let b = (mix(hash) >> self.shift) as usize;
        if self.slots[b] != UNCOUNTED && self.keys[b] == key {
            return self.slots[b];
        }
        self.misses += 1;
        let slot = miss();
        self.keys[b] = key;
        self.slots[b] = slot;
        slot
    }
}

/// Fibonacci hashing: the top bits of the product depend on every bit of `x`.
#[inline]
fn mix(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A dictionary's values as text, the way [`for_each`] reads a dictionary (it casts the
/// whole column to `Utf8`): strings as they are, anything else cast.
pub(super) fn as_text(values: &ArrayRef) -> Result<ArrayRef> {
    match values.data_type() {
        DataType::Utf8View | DataType::Utf8 | DataType::LargeUtf8 => Ok(values.clone()),
        _ => Ok(cast(values, &DataType::Utf8)?),
    }
}

/// Row `i` of a column [`as_text`] made.
pub(super) fn text_at(a: &ArrayRef, i: usize) -> ValueRef<'_> {
    if a.is_null(i) {
        return ValueRef::Null;
    }
    ValueRef::Str(match a.data_type() {
        DataType::Utf8View => a.as_string_view().value(i),
        DataType::LargeUtf8 => a.as_string::<i64>().value(i),
        _ => a.as_string::<i32>().value(i),
    })
}

/// Generic, not `&dyn Array`: called for every row, where a call through the vtable would
/// cost more than the test of the bit.
#[inline]
fn nullable<'a, A: Array>(a: &A, i: usize, v: impl FnOnce() -> ValueRef<'a>) -> ValueRef<'a> {
    if a.is_null(i) { ValueRef::Null } else { v() }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        BooleanArray, DictionaryArray, Float64Array, Int32Array, StringArray, StringViewArray,
        make_array,
    };
    use datafusion::arrow::datatypes::{Int8Type, Int32Type};

    use super::*;

    fn read(col: ArrayRef, bins: Option<&Bins>) -> Vec<Value> {
        let mut out = Vec::new();
        for_each(&col, bins, |i, v| {
            assert_eq!(i, out.len());
            out.push(v.to_value());
        })
        .unwrap();
        out
    }

    #[test]
    fn every_encoding_of_a_column_reads_as_the_same_values() {
        let want = vec![Value::Str("a".into()), Value::Null, Value::Str("b".into())];
        let plain: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("b")]));
        let view: ArrayRef = Arc::new(StringViewArray::from(vec![Some("a"), None, Some("b")]));
        let dict: ArrayRef = Arc::new(
            vec![Some("a"), None, Some("b")]
                .into_iter()
                .collect::<DictionaryArray<Int8Type>>(),
        );
        for col in [plain, view, dict] {
            assert_eq!(read(col, None), want);
        }
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(200), None, Some(500)]));
        assert_eq!(
            read(ints.clone(), None),
            vec![Value::Int(200), Value::Null, Value::Int(500)]
        );
        // The same integers, binned: an edge belongs to the bin above it.
        let bins = Bins {
            edges: vec![200.0, 400.0],
        };
        assert_eq!(
            read(ints, Some(&bins)),
            vec![Value::Bin(1), Value::Null, Value::Bin(2)]
        );
        // NaN, above everything in SQL's order, in the last bin.
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 399.9, f64::NAN]));
        assert_eq!(
            read(floats, Some(&bins)),
            vec![Value::Bin(0), Value::Bin(1), Value::Bin(2)]
        );
        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), None]));
        assert_eq!(read(flags, None), vec![Value::Bool(true), Value::Null]);
    }

    /// Slots handed out in order of first sight, as a pass keeps them, and how many times
    /// a string's was asked for.
    #[derive(Default)]
    struct Seen(Vec<Value>, usize);

    impl Slots for Seen {
        fn slot(&mut self, v: ValueRef<'_>) -> u32 {
            self.1 += usize::from(matches!(v, ValueRef::Str(_)));
            let v = v.to_value();
            match self.0.iter().position(|s| *s == v) {
                Some(i) => i as u32,
                None => {
                    self.0.push(v);
                    (self.0.len() - 1) as u32
                }
            }
        }
    }

    #[test]
    fn slots_name_the_values_for_each_reads_and_skip_uncounted_rows() {
        // Many more values than the memo has buckets, repeating out of order, so that
        // values share buckets and evict each other; long and short strings; nulls.
        let n = 5000;
        let ints: ArrayRef = Arc::new(Int32Array::from(
            (0..n)
                .map(|i| (i % 17 != 0).then_some((i * 7919 % 1201) as i32 - 600))
                .collect::<Vec<_>>(),
        ));
        let text = |i: usize| match i % 3 {
            0 => format!("s{}", i * 31 % 700),
            _ => format!("a-string-longer-than-twelve-bytes-{}", i * 31 % 700),
        };
        let views: ArrayRef = Arc::new(StringViewArray::from(
            (0..n)
                .map(|i| (i % 13 != 0).then(|| text(i)))
                .collect::<Vec<_>>(),
        ));
        let dict: ArrayRef = Arc::new(
            (0..n)
                .map(|i| (i % 13 != 0).then(|| text(i % 100)))
                .collect::<Vec<_>>()
                .iter()
                .map(Option::as_deref)
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let bins = Bins {
            edges: vec![-100.0, 0.0, 100.0],
        };
        // Booleans with nulls, sliced so that their bits start mid-byte.
        let flags = BooleanArray::from(
            (0..n + 3)
                .map(|i| (i % 11 != 0).then_some(i * 7 % 3 == 0))
                .collect::<Vec<_>>(),
        );
        let flags: ArrayRef = Arc::new(flags.slice(3, n));
        let counted: Vec<bool> = (0..n).map(|i| i % 5 != 0).collect();
        for (col, bins) in [
            (ints.clone(), None),
            (ints, Some(&bins)),
            (views, None),
            (dict, None),
            (flags, None),
        ] {
            let mut seen = Seen::default();
            let mut out = Vec::new();
            slots(&col, bins, &counted, &mut seen, &mut out).unwrap();
            let want = read(col.clone(), bins);
            // The same through memos grown by misses: 700 values miss 256 buckets often.
            let mut memo = FieldMemo::default();
            for _ in 0..3 {
                let mut grown = Vec::new();
                sized_slots(&col, bins, &counted, &mut seen, &mut grown, &mut memo).unwrap();
                assert_eq!(grown, out);
            }
            if matches!(col.data_type(), DataType::Utf8View) {
                assert_eq!(memo.size.bits, MEMO_BITS.1, "the memo grew to its largest");
            }
            for i in 0..n {
                if counted[i] {
                    assert_eq!(seen.0[out[i] as usize], want[i], "row {i} of {col:?}");
                } else {
                    assert_eq!(out[i], UNCOUNTED);
                }
            }
            // Only values of counted rows were given a slot.
            let mut kept: Vec<&Value> = (0..n).filter(|&i| counted[i]).map(|i| &want[i]).collect();
            kept.sort();
            kept.dedup();
            assert_eq!(seen.0.len(), kept.len());
        }
    }

    #[test]
    fn a_dictionary_is_looked_up_once_per_key_while_batches_share_it() {
        let text = |i: usize| format!("value-{}", i * 7 % 50);
        let batch = |values: &ArrayRef, seed: usize| -> ArrayRef {
            let keys = Int32Array::from(
                (0..1000)
                    .map(|i| {
                        (!(i + seed).is_multiple_of(11)).then_some(((i * 13 + seed) % 50) as i32)
                    })
                    .collect::<Vec<_>>(),
            );
            Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values.clone()).unwrap())
        };
        let first: ArrayRef = Arc::new(StringArray::from((0..50).map(text).collect::<Vec<_>>()));
        // The same strings in another order: another dictionary, whose keys mean other values.
        let second: ArrayRef = Arc::new(StringArray::from(
            (0..50).rev().map(text).collect::<Vec<_>>(),
        ));
        let counted: Vec<bool> = (0..1000).map(|i| i % 3 != 0).collect();
        let mut seen = Seen::default();
        let mut memo = FieldMemo::default();
        let mut out = Vec::new();
        let mut asked = Vec::new();
        for (values, seed) in [
            (&first, 1),
            (&first, 2),
            (&first, 3),
            (&second, 4),
            (&second, 5),
        ] {
            // As the Parquet reader hands them out: a new array over the same buffers.
            let col = batch(&make_array(values.to_data()), seed);
            sized_slots(&col, None, &counted, &mut seen, &mut out, &mut memo).unwrap();
            let want = read(col.clone(), None);
            for i in 0..1000 {
                if counted[i] {
                    assert_eq!(seen.0[out[i] as usize], want[i], "row {i}, batch {seed}");
                } else {
                    assert_eq!(out[i], UNCOUNTED);
                }
            }
            asked.push(seen.1);
        }
        // 50 keys in the first batch; nothing more while the dictionary stays; the second
        // dictionary's 50 keys looked up again, once.
        assert_eq!(asked, vec![50, 50, 50, 100, 100]);
        assert_eq!(seen.0.len(), 51, "the same 50 strings and null");
    }
}
