//! flagd's `fractional` bucketing, in each version an evaluator may run, so a probe can tell
//! which bucket a key belongs in and catch evaluators that disagree.
//!
//! All versions hash with MurmurHash3 (x86, 32-bit, seed 0). They differ in what is hashed and
//! how the hash picks a variant:
//!
//! | version | hashed bytes (shorthand form) | bucket |
//! |---|---|---|
//! | v1 | UTF-8 of `flagKey + targetingKey` | `abs(int32(h)) / MaxInt32 * 100`, against ranges of `100 * weight / total` |
//! | v2 | UTF-8 of `flagKey + targetingKey` | `(uint32(h) * total) >> 32`, against integer weight ranges |
//! | v3 | CBOR of `[flagKey, targetingKey]` | as v2 |
//!
//! When the rule names its own bucketing value (for example `{"cat": [...]}`), v1 and v2 hash
//! that string and v3 hashes its CBOR encoding (see [`cbor`](super::cbor)). The flagd-testbed
//! tags its test vectors `@fractional-v1`, `-v2` and `-v3` after the same versions.

use std::io::Cursor;

use serde_json::{Value, json};

use super::cbor;
use crate::api::{FlagdBucketing, Percent};

/// Largest total weight flagd accepts from v2 on.
const MAX_TOTAL_WEIGHT: i64 = i32::MAX as i64;

/// MurmurHash3, x86 32-bit variant, seed 0.
pub fn murmur3_32(bytes: &[u8]) -> u32 {
    // Reading from an in-memory cursor cannot fail.
    murmur3::murmur3_32(&mut Cursor::new(bytes), 0).unwrap_or_default()
}

/// The bytes a version hashes for the shorthand form (`fractional` without a bucketing
/// value), which buckets on the flag key and the targeting key.
pub fn shorthand_input(version: FlagdBucketing, flag_key: &str, targeting_key: &str) -> Vec<u8> {
    match version {
        FlagdBucketing::V1 | FlagdBucketing::V2 => {
            format!("{flag_key}{targeting_key}").into_bytes()
        }
        FlagdBucketing::V3 => cbor::encode(&json!([flag_key, targeting_key])),
    }
}

/// The bytes a version hashes for an explicit bucketing value; `None` where the version
/// cannot bucket on it (v1 and v2 take only strings; v3 takes anything but null and arrays).
pub fn value_input(version: FlagdBucketing, value: &Value) -> Option<Vec<u8>> {
    match (version, value) {
        (FlagdBucketing::V1 | FlagdBucketing::V2, Value::String(s)) => Some(s.as_bytes().to_vec()),
        (FlagdBucketing::V1 | FlagdBucketing::V2, _) => None,
        (FlagdBucketing::V3, Value::Null | Value::Array(_)) => None,
        (FlagdBucketing::V3, value) => Some(cbor::encode(value)),
    }
}

/// The index of the variant a hash falls in, given the variants' weights in rule order;
/// `None` where flagd resolves no variant (and the flag's default variant is served).
pub fn distribute(version: FlagdBucketing, hash: u32, weights: &[i64]) -> Option<usize> {
    match version {
        FlagdBucketing::V1 => distribute_v1(hash, weights),
        FlagdBucketing::V2 | FlagdBucketing::V3 => distribute_v2(hash, weights),
    }
}

fn distribute_v1(hash: u32, weights: &[i64]) -> Option<usize> {
    let total: i64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let signed = hash as i32;
    let bucket = f64::from(signed).abs() / f64::from(i32::MAX) * 100.0;
    let mut range_end = 0.0;
    for (index, weight) in weights.iter().enumerate() {
        range_end += 100.0 * *weight as f64 / total as f64;
        if bucket < range_end {
            return Some(index);
        }
    }
    None
}

fn distribute_v2(hash: u32, weights: &[i64]) -> Option<usize> {
    let clamped: Vec<u64> = weights.iter().map(|w| (*w).max(0) as u64).collect();
    let total: u64 = clamped.iter().sum();
    if total == 0 || total > MAX_TOTAL_WEIGHT as u64 {
        return None;
    }
    let bucket = (u64::from(hash) * total) >> 32;
    let mut range_end = 0;
    for (index, weight) in clamped.iter().enumerate() {
        range_end += weight;
        if bucket < range_end {
            return Some(index);
        }
    }
    None
}

/// The variant index of the shorthand `fractional` rule for a targeting key.
pub fn fractional(
    version: FlagdBucketing,
    flag_key: &str,
    targeting_key: &str,
    weights: &[i64],
) -> Option<usize> {
    let hash = murmur3_32(&shorthand_input(version, flag_key, targeting_key));
    distribute(version, hash, weights)
}

/// Whether a key has the flag under the rule rollgate's flagd target writes for a percent:
/// `fractional` over the targeting key with weights in basis points, `[on, 100 · percent]`,
/// `[off, 10000 - 100 · percent]` (for a whole percent the same users as the weights
/// `[on, percent]`, `[off, 100 - percent]` written before: `tests/targets/flagd_bucketing.rs` proves
/// it for every version).
pub fn rollout_has_flag(
    version: FlagdBucketing,
    flag_key: &str,
    targeting_key: &str,
    percent: Percent,
) -> bool {
    let on = percent.min(Percent::HUNDRED);
    let weights = [on, on.complement()].map(|p| i64::from(p.basis_points()));
    fractional(version, flag_key, targeting_key, &weights) == Some(0)
}
