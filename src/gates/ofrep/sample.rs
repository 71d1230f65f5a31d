//! The probe's deterministic sample of targeting keys, and the tolerance its share of "on" is
//! held to.

use crate::api::Percent;

/// Seed of the sample; fixed, so every checkpoint (and every controller replica) probes the
/// same keys and keys can be remembered by index.
const SEED: u64 = 0x726f_6c6c_6761_7465; // "rollgate"

/// How many standard deviations of the binomial the share of "on" may stray from the percent.
pub const SIGMAS: f64 = 4.0;

/// Keys the share may stray by on top of [`SIGMAS`], for small samples and the 0 and 100 edges
/// (where the standard deviation is 0 but a legacy evaluator may serve the default variant to
/// a key whose hash sits on the boundary).
pub const FLOOR_KEYS: f64 = 2.0;

/// The `index`-th key of the sample: a stable pseudo-random id such as
/// `rollgate-probe-3c5f0d4e9a81b2f6`. A key depends on its index only, so a larger sample
/// starts with the keys of a smaller one.
pub fn sample_key(index: u32) -> String {
    format!(
        "rollgate-probe-{:016x}",
        splitmix64(SEED.wrapping_add(u64::from(index)))
    )
}

/// The first `size` keys of the sample.
pub fn sample_keys(size: u32) -> Vec<String> {
    (0..size).map(sample_key).collect()
}

/// How many keys of a sample of `size` may have the flag beyond or short of `percent` before
/// the share counts as a violation: `SIGMAS * sqrt(n p (1 - p)) + FLOOR_KEYS`. With a correct
/// evaluator a fixed sample lands outside 4 sigma for about one flag in 16,000.
pub fn share_tolerance(size: usize, percent: Percent) -> f64 {
    let p = percent.min(Percent::HUNDRED).fraction();
    let n = size as f64;
    SIGMAS * (n * p * (1.0 - p)).sqrt() + FLOOR_KEYS
}

/// SplitMix64: a small, well-mixed generator step.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_and_distinct() {
        let keys = sample_keys(1000);
        assert_eq!(keys[7], sample_key(7));
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 1000);
    }

    #[test]
    fn tolerance_grows_with_the_spread() {
        assert_eq!(share_tolerance(1000, Percent::whole(0)), FLOOR_KEYS);
        assert_eq!(share_tolerance(1000, Percent::whole(100)), FLOOR_KEYS);
        let ten = share_tolerance(1000, Percent::whole(10));
        assert!((ten - (4.0 * 90f64.sqrt() + 2.0)).abs() < 1e-9);
        assert!(share_tolerance(1000, Percent::whole(50)) > ten);
    }
}
