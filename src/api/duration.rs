//! Durations: one grammar, Go's `time.ParseDuration`, for every duration rollgate reads — the
//! spec's fields (which the CRD's CEL rules, the API server and kube-cel read too), the
//! scenario's offsets and the command line's flags — and a parser that never panics.
//!
//! The grammar: an optional sign (`-` or `+`), then `0` or one or more `<number><unit>`, where
//! a number is `12`, `1.5`, `.5` or `5.` and a unit is `ns`, `us` (or `µs`, `μs`), `ms`, `s`,
//! `m` or `h`. A scenario's `at` and `until` also take `d` (24 hours), which Go lacks. The value
//! is counted in integer nanoseconds, so the limit is exact: at most 2^63 - 1 nanoseconds
//! (`2562047h47m16.854775807s`, about 292 years), as in Go; `-0s` is zero, not negative.
//!
//! kube's own [`Duration`] parser is never called on outside text (it panics on values too
//! large for [`std::time::Duration`] and on a sign inside the string); a [`Duration`] is built
//! from the nanoseconds this parser counted.
//!
//! kube writes durations under a millisecond with `µs` (`Duration::from_micros(10)` is `10µs`),
//! and Go reads `µs` and `μs`, but kube-cel's `duration()` does not; the CEL rules that compare
//! durations spell those units `us` first, and drop a leading `+`, which kube-cel reads only
//! before a number.

use kube::core::Duration;
use serde::{Deserialize, Deserializer};

/// The grammar of a duration in a spec, as an RE2 pattern: Go's `time.ParseDuration`.
macro_rules! duration_pattern {
    () => {
        "^[-+]?(0|(([0-9]+([.][0-9]*)?|[.][0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$"
    };
}

/// CEL: the duration's text as kube-cel's `duration()` reads it (`us` for `µs` and `μs`, no
/// leading `+`; the pattern allows a `+` only there).
macro_rules! cel_duration {
    () => {
        "duration(self.replace('µ', 'u').replace('μ', 'u').replace('+', ''))"
    };
}

/// The grammar of a duration in a spec, as an RE2 pattern (Go's `time.ParseDuration`).
pub const DURATION_PATTERN: &str = duration_pattern!();

/// CEL rule: the string is a duration of the spec's grammar.
pub(crate) const DURATION_FORMAT_RULE: &str = concat!("self.matches('", duration_pattern!(), "')");

/// CEL rule: the duration is not negative (a string of another grammar is left to
/// [`DURATION_FORMAT_RULE`]).
pub(crate) const DURATION_NOT_NEGATIVE_RULE: &str = concat!(
    "!self.matches('",
    duration_pattern!(),
    "') || ",
    cel_duration!(),
    " >= duration('0s')"
);

/// CEL rule: the duration is greater than zero (a string of another grammar is left to
/// [`DURATION_FORMAT_RULE`]).
pub(crate) const DURATION_POSITIVE_RULE: &str = concat!(
    "!self.matches('",
    duration_pattern!(),
    "') || ",
    cel_duration!(),
    " > duration('0s')"
);

/// CEL rule: the duration is at least one second (a string of another grammar is left to
/// [`DURATION_FORMAT_RULE`]).
pub(crate) const DURATION_AT_LEAST_1S_RULE: &str = concat!(
    "!self.matches('",
    duration_pattern!(),
    "') || ",
    cel_duration!(),
    " >= duration('1s')"
);

/// CEL rule: the duration is at most 30 seconds, the checkpoint's own deadline (a gate's
/// `timeout`; a string of another grammar is left to [`DURATION_FORMAT_RULE`]).
pub(crate) const DURATION_AT_MOST_30S_RULE: &str = concat!(
    "!self.matches('",
    duration_pattern!(),
    "') || ",
    cel_duration!(),
    " <= duration('30s')"
);

/// CEL rule: the duration is at most 10 seconds (a webhook target's `timeout`; a string of
/// another grammar is left to [`DURATION_FORMAT_RULE`]).
pub(crate) const DURATION_AT_MOST_10S_RULE: &str = concat!(
    "!self.matches('",
    duration_pattern!(),
    "') || ",
    cel_duration!(),
    " <= duration('10s')"
);

/// The longest gate timeout: a checkpoint's gates share one 30 s deadline.
pub const MAX_GATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The longest webhook target timeout.
pub const MAX_WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The problem reported for a duration of another grammar.
const DURATION_FORMAT_PROBLEM: &str =
    "is not a Go duration such as 90s, 2h or 1h30m (units ns, us, ms, s, m and h)";

/// The problem reported for a duration of another grammar where days are allowed.
const DURATION_WITH_DAYS_PROBLEM: &str =
    "is not a duration such as 90s, 2h, 1h30m or 3d (units ns, us, ms, s, m, h and d)";

/// The longest positive duration Go accepts, in nanoseconds: 2^63 - 1, about 292 years.
const MAX_NANOS: u128 = i64::MAX as u128;

/// The longest duration text, in characters (the schema's `maxLength` of duration fields).
pub const MAX_LENGTH: usize = 64;

/// Which units a duration may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    /// Go's: `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m`, `h`.
    Go,
    /// Go's and `d` (24 hours): a scenario's `at` and `until`.
    GoAndDays,
}

/// Parses a duration of [`Units`] into signed nanoseconds, exactly: at most [`MAX_LENGTH`]
/// characters and Go's range (-2^63 to 2^63 - 1 nanoseconds). `-0s` is 0.
pub fn parse_nanos(text: &str, units: Units) -> Result<i128, String> {
    let problem = || match units {
        Units::Go => format!("{text:?} {DURATION_FORMAT_PROBLEM}"),
        Units::GoAndDays => format!("{text:?} {DURATION_WITH_DAYS_PROBLEM}"),
    };
    let length = text.chars().count();
    if length > MAX_LENGTH {
        return Err(format!(
            "a duration must be at most {MAX_LENGTH} characters, not {length}"
        ));
    }
    let (negative, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if body == "0" {
        return Ok(0);
    }
    if body.is_empty() {
        return Err(problem());
    }
    let limit = if negative { MAX_NANOS + 1 } else { MAX_NANOS };
    let too_long = || {
        format!(
            "{text:?} is too long a duration (at most 2562047h47m16.854775807s, about 292 years)"
        )
    };
    let mut rest = body;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(problem)?;
        let (number, after) = rest.split_at(number_len);
        let (whole, fraction) = split_number(number).ok_or_else(problem)?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" if units == Units::GoAndDays => 86_400_000_000_000,
            _ => return Err(problem()),
        };
        total = total
            .checked_add(whole_nanos(whole, per_unit).ok_or_else(too_long)?)
            .and_then(|t| t.checked_add(fraction_nanos(fraction, per_unit)))
            .filter(|t| *t <= limit)
            .ok_or_else(too_long)?;
        rest = after;
    }
    // `total` is at most 2^63, so it fits an i128 either way.
    let signed = i128::try_from(total).map_err(|_| too_long())?;
    Ok(if negative { -signed } else { signed })
}

/// Splits `12.5` into (`12`, `5`); `.5`, `5.` and `5` are numbers too, `.` and `1.2.3` are not.
fn split_number(number: &str) -> Option<(&str, &str)> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty()))
        .then_some((whole, fraction))
}

/// `whole` units in nanoseconds; `None` beyond u128 (far beyond any limit).
fn whole_nanos(whole: &str, per_unit: u128) -> Option<u128> {
    let mut value: u128 = 0;
    for digit in whole.bytes() {
        value = value
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
        if value > MAX_NANOS + 1 {
            return None;
        }
    }
    value.checked_mul(per_unit)
}

/// The nanoseconds of a fraction of a unit, rounded down; as in Go, digits past the 18th are
/// ignored (they cannot add a nanosecond to any unit up to a day).
fn fraction_nanos(fraction: &str, per_unit: u128) -> u128 {
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    for digit in fraction.bytes().take(18) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    numerator * per_unit / denominator
}

/// A [`Duration`] of `nanos` nanoseconds (negative below zero).
fn to_duration(nanos: i128) -> Duration {
    let magnitude = nanos.unsigned_abs();
    let secs = u64::try_from(magnitude / 1_000_000_000).unwrap_or(u64::MAX);
    let subsec = u32::try_from(magnitude % 1_000_000_000).unwrap_or(0);
    let duration = std::time::Duration::new(secs, subsec);
    if nanos >= 0 {
        return duration.into();
    }
    negative(duration)
}

/// `-duration`. kube's [`Duration`] has no constructor for a negative value but its parser;
/// the text given it here is digits and a unit only, well within its range. Its magnitude may be
/// off by a nanosecond (kube reads the number as a float): no field takes a negative duration,
/// so it only ever shows in a refusal.
fn negative(duration: std::time::Duration) -> Duration {
    let text = format!("-{}.{:09}s", duration.as_secs(), duration.subsec_nanos());
    text.parse().unwrap_or_else(|_| duration.into())
}

/// Parses a spec duration (Go's grammar and range) into a [`Duration`].
pub fn parse(text: &str) -> Result<Duration, String> {
    parse_nanos(text, Units::Go).map(to_duration)
}

/// Reads a spec duration with [`parse`], for `#[serde(deserialize_with)]`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// Reads an optional spec duration with [`parse`], for `#[serde(deserialize_with)]`.
pub(crate) fn deserialize_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(text) => parse(&text).map(Some).map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

/// Whether a duration is below zero.
pub(crate) fn is_negative(duration: Duration) -> bool {
    duration.is_negative() && !std::time::Duration::from(duration).is_zero()
}

/// Whether a duration is above zero.
pub(crate) fn is_positive(duration: Duration) -> bool {
    !duration.is_negative() && !std::time::Duration::from(duration).is_zero()
}

/// Whether a duration is at least one second.
pub(crate) fn is_at_least_one_second(duration: Duration) -> bool {
    !duration.is_negative()
        && std::time::Duration::from(duration) >= std::time::Duration::from_secs(1)
}

/// Whether a duration is at most `limit` (a negative one is).
pub(crate) fn is_at_most(duration: Duration, limit: std::time::Duration) -> bool {
    duration.is_negative() || std::time::Duration::from(duration) <= limit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> Result<i128, String> {
        parse_nanos(text, Units::Go)
    }

    const MAX: i128 = i64::MAX as i128;

    #[test]
    fn reads_go_durations() {
        for (text, expected) in [
            ("0", 0),
            ("+0", 0),
            ("-0", 0),
            ("0s", 0),
            ("-0s", 0),
            ("2h", 7_200_000_000_000),
            ("90m", 5_400_000_000_000),
            ("1h30m", 5_400_000_000_000),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("5.s", 5_000_000_000),
            ("+5s", 5_000_000_000),
            ("250ms", 250_000_000),
            ("10us", 10_000),
            ("10\u{b5}s", 10_000),
            ("10\u{3bc}s", 10_000),
            ("1ns", 1),
            ("-5m", -300_000_000_000),
            ("2562047h47m16.854775807s", MAX),
            ("9223372036854775807ns", MAX),
            ("-9223372036854775808ns", -MAX - 1),
            ("0.000000001s", 1),
            ("0.0000000009s", 0),
            ("1.0000000000000000000000001h", 3_600_000_000_000),
        ] {
            assert_eq!(nanos(text), Ok(expected), "{text:?}");
        }
        assert_eq!(nanos(&"0s".repeat(32)), Ok(0));
    }

    #[test]
    fn days_only_where_allowed() {
        assert_eq!(
            parse_nanos("2d", Units::GoAndDays),
            Ok(2 * 86_400_000_000_000)
        );
        assert_eq!(
            parse_nanos("1d12h", Units::GoAndDays),
            Ok(36 * 3_600_000_000_000)
        );
        let refused = nanos("1d").expect_err("plans take no days");
        assert!(refused.contains("\"1d\" is not a Go duration"), "{refused}");
    }

    #[test]
    fn refuses_other_grammars_and_overflow_without_panicking() {
        for text in [
            "",
            "-",
            "+",
            "2",
            "00",
            "2 h",
            "2hours",
            "+-5s",
            "--5s",
            ".s",
            "1h-5m",
            "1h+5m",
            "1e3s",
            "12 us",
            "12Us",
            "NaNs",
            "infh",
            "99999999999999999999h",
            "18446744073709551615s",
            "2562048h",
            "2562047h47m16.854775808s",
            "9223372036854775808ns",
            "-9223372036854775809ns",
            "18446744073709551615s1s",
            &"1s".repeat(33),
        ] {
            assert!(nanos(text).is_err(), "{text:?} was accepted");
            assert!(
                parse_nanos(text, Units::GoAndDays).is_err(),
                "{text:?} was accepted"
            );
        }
        let too_long = nanos("2562047h47m16.854775808s").expect_err("above the limit");
        assert!(too_long.contains("too long"), "{too_long}");
    }

    #[test]
    fn builds_kube_durations_with_sign_and_exact_magnitude() {
        let max = parse("2562047h47m16.854775807s").expect("Go's maximum");
        assert_eq!(std::time::Duration::from(max).as_nanos(), MAX as u128);
        assert!(!max.is_negative());
        let minus_zero = parse("-0s").expect("parses");
        assert!(!minus_zero.is_negative(), "-0s is zero, not negative");
        let minus = parse("-1h30m").expect("parses");
        assert!(is_negative(minus));
        assert_eq!(std::time::Duration::from(minus).as_secs(), 5400);
    }

    #[test]
    fn the_pattern_and_the_rules_agree() {
        assert!(DURATION_PATTERN.starts_with('^') && DURATION_PATTERN.ends_with('$'));
        for rule in [
            DURATION_FORMAT_RULE,
            DURATION_NOT_NEGATIVE_RULE,
            DURATION_POSITIVE_RULE,
            DURATION_AT_LEAST_1S_RULE,
            DURATION_AT_MOST_30S_RULE,
            DURATION_AT_MOST_10S_RULE,
        ] {
            assert!(rule.contains(DURATION_PATTERN), "{rule}");
        }
    }

    #[test]
    fn sign_helpers() {
        let one = parse("1s").expect("parses");
        assert!(is_positive(one) && !is_negative(one) && is_at_least_one_second(one));
        let tiny = parse("999ms").expect("parses");
        assert!(is_positive(tiny) && !is_at_least_one_second(tiny));
        let minus_one = parse("-1s").expect("parses");
        assert!(is_negative(minus_one) && !is_positive(minus_one));
        assert!(!is_at_least_one_second(minus_one));
        let thirty = parse("30s").expect("parses");
        assert!(is_at_most(thirty, MAX_GATE_TIMEOUT));
        assert!(!is_at_most(
            parse("30001ms").expect("parses"),
            MAX_GATE_TIMEOUT
        ));
        assert!(is_at_most(minus_one, MAX_WEBHOOK_TIMEOUT));
    }
}
