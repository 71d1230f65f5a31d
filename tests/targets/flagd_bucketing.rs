//! flagd `fractional` bucketing against the flagd-testbed's published vectors
//! (`gherkin/targeting.feature` and `evaluator/gherkin/fractional.feature`, tags
//! `@fractional-v1`, `@fractional-v2`, `@fractional-v3`; flag definitions from
//! `flags/custom-ops.json` and `flags/edge-case-flags.json`, testbed v3.9.0).

use rollgate::api::FlagdBucketing::{self, V1, V2, V3};
use rollgate::gates::ofrep::bucketing::{
    distribute, fractional, murmur3_32, shorthand_input, value_input,
};
use serde_json::{Value, json};

const SUITS: [&str; 4] = ["clubs", "diamonds", "hearts", "spades"];

/// The variant a rule with an explicit bucketing value picks.
fn by_value<'a>(
    version: FlagdBucketing,
    value: &Value,
    variants: &[&'a str],
    weights: &[i64],
) -> Option<&'a str> {
    let input = value_input(version, value)?;
    distribute(version, murmur3_32(&input), weights).map(|i| variants[i])
}

fn cat(prefix: &str, name: &str) -> Value {
    Value::String(format!("{prefix}{name}"))
}

#[test]
fn murmur3_reference_values() {
    // Published MurmurHash3_x86_32 values (seed 0).
    assert_eq!(murmur3_32(b""), 0);
    assert_eq!(murmur3_32(b"hello"), 0x248b_fa47);
    assert_eq!(
        murmur3_32(b"The quick brown fox jumps over the lazy dog"),
        0x2e4f_f723
    );
    // The testbed's preimages of the boundary hashes.
    assert_eq!(murmur3_32(b"ejOoVL"), 0);
    assert_eq!(murmur3_32(b"bY9fO-"), 1);
    assert_eq!(murmur3_32(b"SI7p-"), 2_147_483_647);
    assert_eq!(murmur3_32(b"6LvT0"), 2_147_483_648);
    assert_eq!(murmur3_32(b"ceQdGm"), 4_294_967_295);
}

#[test]
fn fractional_flag_with_cat_of_flag_key_and_name() {
    let cases: &[(FlagdBucketing, &[(&str, &str)])] = &[
        (
            V1,
            &[
                ("jack", "spades"),
                ("queen", "clubs"),
                ("ten", "diamonds"),
                ("nine", "hearts"),
                ("3", "diamonds"),
            ],
        ),
        (
            V2,
            &[
                ("jack", "hearts"),
                ("queen", "spades"),
                ("ten", "clubs"),
                ("nine", "diamonds"),
                ("3", "clubs"),
            ],
        ),
        (
            V3,
            &[
                ("jack", "diamonds"),
                ("queen", "diamonds"),
                ("ten", "clubs"),
                ("nine", "clubs"),
                ("3", "spades"),
            ],
        ),
    ];
    for (version, rows) in cases {
        for (name, expected) in *rows {
            let got = by_value(*version, &cat("fractional-flag", name), &SUITS, &[25; 4]);
            assert_eq!(got, Some(*expected), "{version:?} {name}");
        }
    }
}

#[test]
fn shorthand_on_the_targeting_key() {
    let cases: &[(FlagdBucketing, &[(&str, &str)])] = &[
        (
            V1,
            &[("jon@company.com", "heads"), ("jane@company.com", "tails")],
        ),
        (
            V2,
            &[("jon@company.com", "heads"), ("jane@company.com", "tails")],
        ),
        (
            V3,
            &[
                ("jon@company.com", "tails"),
                ("jane@company.com", "tails"),
                ("user-1", "heads"),
                ("user-2", "tails"),
                ("user-3", "heads"),
            ],
        ),
    ];
    for (version, rows) in cases {
        for (key, expected) in *rows {
            let got = fractional(*version, "fractional-flag-shorthand", key, &[1, 1])
                .map(|i| ["heads", "tails"][i]);
            assert_eq!(got, Some(*expected), "{version:?} {key}");
        }
    }
    assert_eq!(
        fractional(
            V2,
            "fractional-single-entry-flag",
            "some-targeting-key",
            &[1]
        ),
        Some(0)
    );
}

#[test]
fn shared_seed() {
    let cases: &[(FlagdBucketing, &[(&str, &str)])] = &[
        (
            V1,
            &[
                ("jack", "hearts"),
                ("queen", "spades"),
                ("ten", "hearts"),
                ("nine", "diamonds"),
            ],
        ),
        (
            V2,
            &[
                ("seven", "hearts"),
                ("eight", "diamonds"),
                ("nine", "clubs"),
                ("two", "spades"),
            ],
        ),
        (
            V3,
            &[
                ("seven", "hearts"),
                ("eight", "hearts"),
                ("nine", "diamonds"),
                ("two", "diamonds"),
            ],
        ),
    ];
    for (version, rows) in cases {
        for (name, expected) in *rows {
            let got = by_value(*version, &cat("shared-seed", name), &SUITS, &[25; 4]);
            assert_eq!(got, Some(*expected), "{version:?} {name}");
        }
    }
}

#[test]
fn v2_hash_edge_cases() {
    for (key, expected) in [
        ("ejOoVL", "lower"),
        ("bY9fO-", "lower"),
        ("SI7p-", "lower"),
        ("6LvT0", "upper"),
        ("ceQdGm", "upper"),
    ] {
        let got = by_value(V2, &json!(key), &["lower", "upper"], &[50, 50]);
        assert_eq!(got, Some(expected), "{key}");
    }
}

#[test]
fn v2_weights_clamp_negatives_and_refuse_all_zero() {
    assert_eq!(
        fractional(
            V2,
            "fractional-negative-weight-flag",
            "any-user",
            &[-50, 100]
        ),
        Some(1)
    );
    assert_eq!(
        fractional(V2, "fractional-zero-weights-flag", "any-user", &[0, 0]),
        None
    );
}

/// `fractional-basic-flag`: 25 variants `bucket1..bucket25` of weight 4, bucketing on
/// `{"var": "hashing_input"}`.
fn basic(value: &Value) -> Option<usize> {
    let input = value_input(V3, value)?;
    distribute(V3, murmur3_32(&input), &[4; 25]).map(|i| i + 1)
}

#[test]
fn v3_basic_types_and_number_normalisation() {
    let cases: &[(Value, usize)] = &[
        (json!(true), 5),
        (json!(false), 1),
        (json!("user1"), 22),
        (json!("user2"), 16),
        (json!(123), 20),
        (json!(456), 12),
        (json!(1.23), 14),
        (json!(4.56), 18),
        (json!("123"), 22),
        (json!("true"), 24),
        (json!("false"), 1),
        (json!("null"), 8),
        (json!("1.23"), 4),
        (json!(0), 8),
        (json!(1.0), 23),
        (json!(1), 23),
        (json!(-2.0), 12),
        (json!(-2), 12),
        (json!(9007199254740992.0), 10),
        (json!(9007199254740992u64), 10),
        (json!(0.0), 8),
        (json!(-0.0), 8),
    ];
    for (value, bucket) in cases {
        assert_eq!(basic(value), Some(*bucket), "{value}");
    }
}

#[test]
fn v3_integer_limits() {
    let cases: &[(Value, usize)] = &[
        (json!(2147483647), 10),
        (json!(2147483648u64), 25),
        (json!(-2147483648i64), 8),
        (json!(-2147483649i64), 18),
        (json!(9007199254740991u64), 2),
        (json!(23), 21),
        (json!(24), 11),
        (json!(255), 13),
        (json!(256), 13),
        (json!(65535), 4),
        (json!(65536), 11),
        (json!(4294967295u64), 14),
        (json!(4294967296u64), 19),
        (json!(-24), 4),
        (json!(-25), 16),
    ];
    for (value, bucket) in cases {
        assert_eq!(basic(value), Some(*bucket), "{value}");
    }
}

#[test]
#[allow(clippy::excessive_precision)] // the testbed's literals, verbatim
fn v3_float_limits_use_the_shortest_exact_width() {
    let cases: &[(f64, usize)] = &[
        (1e20, 19),
        (-1e20, 25),
        (65504.0, 16),
        (-65504.0, 9),
        (0.00006103515625, 22),
        (0.000000059604644775390625, 23),
        (65505.0, 17),
        (-65505.0, 17),
        (3.4028234663852886e+38, 10),
        (-3.4028234663852886e+38, 3),
        (1.1754943508222875e-38, 24),
        (3.5e+38, 1),
        (-3.5e+38, 6),
        (1.7976931348623157e+308, 17),
        (-1.7976931348623157e+308, 9),
        (2.2250738585072014e-308, 11),
        (4.9406564584124654e-324, 2),
    ];
    for (value, bucket) in cases {
        assert_eq!(basic(&json!(value)), Some(*bucket), "{value:e}");
    }
}

#[test]
fn v3_maps_sort_their_keys_and_nest() {
    let cases: &[(&str, usize)] = &[
        (r#"{"a": 1, "b": 2}"#, 23),
        (r#"{"b": 2, "a": 1}"#, 23),
        (r#"{"c": 3, "a": 1, "b": 2}"#, 18),
        (r#"{"z": 1, "aa": 2}"#, 21),
        (r#"{"aa": 2, "z": 1}"#, 21),
        (r#"{"b": 2, "a": {"b": 1}}"#, 9),
        (r#"{"c": "text", "bbb": 1, "a": true, "dddd": 2.5}"#, 25),
        (r#"{"ÿ": 2, "aaa": 1}"#, 12),
        (r#"{"": 2, "abc": 1}"#, 25),
        (r#"{"key": -0.0}"#, 10),
        (r#"{"key": 0}"#, 10),
        (r#"{"c": 0.0, "b": -0.0, "a": {"b": 1}}"#, 8),
        (r#"{"café": "façade", "b": {"résumé": {"ÿ": true}}}"#, 22),
        (r#"{}"#, 3),
        (r#"{"b": 2, "a": {} }"#, 20),
        (r#"{"a": {}, "b": []}"#, 7),
        (r#"{"a": [1, [], 3], "b": null}"#, 3),
        (r#"{"a": ["a", "b", {}], "b": [1, null, 2]}"#, 23),
        (
            r#"{"a": [false, 2.5, ""], "b": [], "c": [{}], "c": null}"#,
            15,
        ),
        (r#"{"x": [{"a": {"b": null}}] }"#, 6),
        (r#"{"": "", "": [], "": {}, "": null}"#, 25),
        (r#"{"a": [[[[null]]]] }"#, 7),
        (r#"{"a": {"b": {"c": {"d": null}} } }"#, 19),
    ];
    for (text, bucket) in cases {
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(basic(&value), Some(*bucket), "{text}");
    }
}

#[test]
fn v3_strings_are_utf8_with_a_length_head() {
    let cases: &[(String, usize)] = &[
        (String::new(), 4),
        ("a".into(), 6),
        ("12345678901234567890123".into(), 4),
        ("123456789012345678901234".into(), 14),
        ("a".repeat(255), 18),
        ("a".repeat(256), 7),
        ("あいうえおかき".into(), 17),
        ("あいうえおかきく".into(), 16),
        ("é".repeat(11), 16),
        ("é".repeat(12), 19),
        ("café façade résumé café".into(), 9),
        // The testbed's runners pass these escapes through literally, backslashes and all.
        (r"A\u0000B".into(), 15),
        (r"e\u0301".into(), 7),
        (r"\uD83D\uDE00".into(), 23),
        // The characters themselves, as the Python openfeature-flagd-core 2.0.0 buckets them.
        ("A\u{0}B".into(), 14),
        ("e\u{301}".into(), 16),
        ("\u{1F600}".into(), 1),
    ];
    for (text, bucket) in cases {
        assert_eq!(basic(&json!(text)), Some(*bucket), "{text:?}");
    }
}

#[test]
fn v3_refuses_null_and_arrays_as_bucketing_values() {
    assert_eq!(value_input(V3, &Value::Null), None);
    assert_eq!(value_input(V3, &json!([1])), None);
    assert_eq!(value_input(V2, &json!(1)), None);
}

/// Keys of the no-flip proof: deterministic, spread like user ids.
fn sample_keys(n: u32) -> Vec<String> {
    (0..n)
        .map(|i| format!("user-{:08x}", i.wrapping_mul(0x9E37_79B9)))
        .collect()
}

/// Moving the flagd target from whole-percent weights `[p, 100 - p]` to basis points
/// `[100p, 10000 - 100p]` flips no user, in every bucketing version.
///
/// Why it is exact: v2 and v3 put a hash `h` in the on bucket when `(h · total) >> 32` is below
/// the on weight, that is `h · total < on · 2³²`; with `total = 10000` and `on = 100p` both
/// sides are 100 times those of `total = 100`, `on = p`. v1 compares `|int32(h)| / MaxInt32 ·
/// 100` against the float `100 · on / total`, which is exactly `p` for both weightings (the
/// products are integers below 2⁵³ and the division of `100p` or `10000p` by `100` or `10000`
/// is exact). The test checks it on 100,000 keys per version and percent, and on the hashes
/// right at each percent's boundary, where a rounding difference would show first.
#[test]
fn basis_point_weights_put_exactly_the_same_users_in_the_cohort_as_whole_percents() {
    let keys = sample_keys(100_000);
    for version in [V1, V2, V3] {
        let hashes: Vec<u32> = keys
            .iter()
            .map(|key| {
                murmur3_32(&shorthand_input(
                    version,
                    "passenger_favorites_matching",
                    key,
                ))
            })
            .collect();
        for p in 1..=100i64 {
            let old = [p, 100 - p];
            let new = [100 * p, 10_000 - 100 * p];
            let mut in_cohort = 0;
            for (key, hash) in keys.iter().zip(&hashes) {
                let before = distribute(version, *hash, &old);
                let after = distribute(version, *hash, &new);
                assert_eq!(before, after, "{version:?} at {p}%: {key} flips");
                in_cohort += usize::from(before == Some(0));
            }
            // The cohort is about p % of the keys (four binomial standard deviations).
            let expected = keys.len() as f64 * p as f64 / 100.0;
            let sd = (expected * (1.0 - p as f64 / 100.0)).sqrt();
            assert!(
                (in_cohort as f64 - expected).abs() <= 4.0 * sd + 1.0,
                "{version:?} at {p}%: {in_cohort} keys in the cohort"
            );
        }
    }
}

/// The hashes at each percent's edge, where the on bucket ends: the two weightings agree on
/// each (the hashes themselves, not keys: every hash value is some key's).
#[test]
fn basis_point_weights_agree_with_whole_percents_at_every_bucket_edge() {
    for p in 0..=100i64 {
        let old = [p, 100 - p];
        let new = [100 * p, 10_000 - 100 * p];
        // v2/v3: the first hash out of the on bucket is ceil(p · 2³² / 100).
        let edge = ((p as u128) << 32).div_ceil(100);
        // v1: |int32(h)| / MaxInt32 · 100 reaches p at |int32(h)| ≈ p · MaxInt32 / 100.
        let signed_edge = (p as u128 * i32::MAX as u128) / 100;
        let mut hashes = Vec::new();
        for delta in -3i128..=3 {
            let h = edge as i128 + delta;
            if (0..=u32::MAX as i128).contains(&h) {
                hashes.push(h as u32);
            }
            let s = signed_edge as i128 + delta;
            if (0..=i32::MAX as i128).contains(&s) {
                hashes.push(s as u32);
                hashes.push((-(s as i64)) as i32 as u32);
            }
        }
        hashes.extend([0, 1, i32::MAX as u32, i32::MIN as u32, u32::MAX]);
        for version in [V1, V2, V3] {
            for hash in &hashes {
                assert_eq!(
                    distribute(version, *hash, &old),
                    distribute(version, *hash, &new),
                    "{version:?} at {p}%: hash {hash} flips"
                );
            }
        }
    }
}

/// Half a percent in basis points, `[50, 9950]`, puts half a percent of keys in the cohort in
/// every version, and 0.5 % is inside 1 % (raising only adds users).
#[test]
fn half_a_percent_in_basis_points_is_half_a_percent_of_keys() {
    let keys = sample_keys(200_000);
    for version in [V1, V2, V3] {
        let mut half = 0usize;
        for key in &keys {
            let hash = murmur3_32(&shorthand_input(version, "f", key));
            let at_half = distribute(version, hash, &[50, 9_950]) == Some(0);
            let at_one = distribute(version, hash, &[100, 9_900]) == Some(0);
            assert!(
                !at_half || at_one,
                "{version:?}: {key} has 0.5 % but not 1 %"
            );
            half += usize::from(at_half);
        }
        let expected = keys.len() as f64 * 0.005;
        let sd = (expected * 0.995).sqrt();
        assert!(
            (half as f64 - expected).abs() <= 4.0 * sd,
            "{version:?}: {half} of {} keys at 0.5 %",
            keys.len()
        );
    }
}
