//! The generator's source of randomness: xoshiro256++ seeded through SplitMix64.
//!
//! It is defined here, not taken from `rand::rngs`, so that the bytes a seed produces do not
//! change with a `rand` upgrade or from one platform to another (`rand`'s `SmallRng` promises
//! neither). It implements [`rand::RngCore`], so `rand_distr` distributions can draw from it.

use rand::RngCore;

/// xoshiro256++: 256 bits of state, period 2^256 - 1, a few cycles per draw.
#[derive(Debug, Clone)]
pub(crate) struct WorkloadRng {
    s: [u64; 4],
}

impl WorkloadRng {
    /// A generator whose whole stream is determined by `seed`.
    pub(crate) fn seeded(seed: u64) -> Self {
        // SplitMix64 spreads any seed (0 included) over the state, which must not be all zero.
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            mix64(x)
        };
        WorkloadRng {
            s: [next(), next(), next(), next()],
        }
    }

    /// A uniform float in `[0, 1)` with 53 bits of precision.
    #[inline]
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A uniform integer in `0..n` (`n > 0`), by multiply-shift: the bias is below 2^-32 for
    /// the small ranges used here.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

impl RngCore for WorkloadRng {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        let [s0, s1, s2, s3] = self.s;
        let out = s0.wrapping_add(s3).rotate_left(23).wrapping_add(s0);
        let t = s1 << 17;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        let s1 = s1 ^ s2;
        let s0 = s0 ^ s3;
        self.s = [s0, s1, s2 ^ t, s3.rotate_left(45)];
        out
    }

    #[inline]
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

/// The SplitMix64 finalizer: a bijective mix of 64 bits. Used to seed, and to derive stable
/// per-user attributes (plan, country, flags) from a user's number without storing them.
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `mix64` as a float in `[0, 1)`.
#[inline]
pub(crate) fn hash_unit(x: u64) -> f64 {
    (mix64(x) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_seeds_differ() {
        let a: Vec<u64> = {
            let mut r = WorkloadRng::seeded(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = WorkloadRng::seeded(7);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = WorkloadRng::seeded(8);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn unit_and_below_stay_in_range_and_look_uniform() {
        let mut r = WorkloadRng::seeded(1);
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 10.0) as usize] += 1;
            assert!(r.below(7) < 7);
        }
        for b in buckets {
            assert!((9_000..11_000).contains(&b), "{buckets:?}");
        }
    }
}
