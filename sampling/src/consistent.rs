//! The consistent keep decision: `keep(id, rate)` depends only on the id and the rate.
//!
//! Every span of a trace carries the same trace id, so every process that computes the same rate
//! makes the same decision for it: a trace is kept or dropped whole, across restarts and across
//! collectors, with no coordination. The decision is also nested: an id kept at rate `r` is kept
//! at every rate below `r`, so a trace kept by a stricter tier is kept by a looser one.
//!
//! How: the id is hashed to a uniform 64-bit number `h` and kept when `h < 2^64 / rate`, which
//! happens for a fraction `1 / rate` of ids. This is the hash-and-threshold scheme of
//! OpenTelemetry's `TraceIdRatioBased` sampler and of Refinery's deterministic sampler; unlike
//! them we hash the whole id instead of trusting some of its bits to be random, so sequential or
//! hand-made ids still spread evenly. The hash is FNV-1a (64-bit; Fowler, Noll and Vo, see
//! draft-eastlake-fnv) followed by the SplitMix64 finaliser (Steele, Lea and Flood, "Fast
//! splittable pseudorandom number generators", OOPSLA 2014), which makes every input bit affect
//! every output bit. Both are fixed here forever: changing them changes which traces are kept.

/// The 64-bit hash the decision is made on. Stable across versions and platforms.
pub fn hash_id(id: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = FNV_OFFSET;
    for &b in id {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    // SplitMix64 finaliser.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Whether the event with this id is kept at `rate` (keep 1 in `rate`; fractional rates are
/// allowed). A rate at or below 1, or not a number, keeps everything.
pub fn keep(id: &[u8], rate: f64) -> bool {
    keep_hash(hash_id(id), rate)
}

/// [`keep`] for an id already hashed with [`hash_id`].
pub fn keep_hash(hash: u64, rate: f64) -> bool {
    if rate.is_nan() || rate <= 1.0 {
        return true;
    }
    // 2^64 / rate, computed in f64: for rates > 1 it is below 2^64 and exact enough (the error is
    // at most one part in 2^53 of the kept fraction).
    let threshold = 18_446_744_073_709_551_616.0 / rate;
    (hash as f64) < threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_fixed_forever() {
        // Pinned values (computed independently from the published FNV-1a and SplitMix64
        // constants): if these change, traces kept yesterday are dropped today.
        assert_eq!(hash_id(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(
            hash_id(b"4bf92f3577b34da6a3ce929d0e0e4736"),
            0x8069_bcc9_868b_03e2
        );
    }

    #[test]
    fn rate_one_and_below_keep_everything() {
        for i in 0..1000u32 {
            let id = i.to_string();
            assert!(keep(id.as_bytes(), 1.0));
            assert!(keep(id.as_bytes(), 0.5));
            assert!(keep(id.as_bytes(), f64::NAN));
        }
    }

    #[test]
    fn kept_fraction_matches_the_rate_even_for_sequential_ids() {
        let n = 200_000u32;
        for rate in [2.0, 10.0, 100.0, 3.5] {
            let kept = (0..n)
                .filter(|i| keep(format!("{i:032x}").as_bytes(), rate))
                .count();
            let expected = f64::from(n) / rate;
            // Binomial standard deviation; 5 sigma.
            let sd = (expected * (1.0 - 1.0 / rate)).sqrt();
            assert!(
                (kept as f64 - expected).abs() < 5.0 * sd,
                "rate {rate}: kept {kept}, expected {expected:.0}"
            );
        }
    }

    #[test]
    fn decisions_nest_across_rates() {
        for i in 0..20_000u32 {
            let id = format!("trace-{i}");
            if keep(id.as_bytes(), 50.0) {
                assert!(keep(id.as_bytes(), 10.0), "{id} kept at 50 but not at 10");
            }
            if keep(id.as_bytes(), 10.0) {
                assert!(keep(id.as_bytes(), 2.0));
            }
        }
    }
}
