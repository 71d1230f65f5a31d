//! Go durations in the spec (`2h`, `90m`, `1h30m`): the one grammar the CRD's CEL rules, the
//! API server, kube-cel and the Rust side all read the same way, and a parser that never panics.
//!
//! kube's [`Duration`] parser accepts more than Go does (an empty string, `+5s`, `.5s`) and
//! panics on values too large for [`std::time::Duration`] (`99999999999999999999h`) or on a sign
//! inside the string (`1h-5m`), so the spec's duration fields are read through
//! [`deserialize`] and [`deserialize_opt`], which check the text against [`DURATION_PATTERN`] and
//! its size first.
//!
//! kube writes durations under a millisecond with `µs` (`Duration::from_micros(10)` is `10µs`),
//! and Go reads `µs` and `μs`, but kube-cel's `duration()` does not; the CEL rules that compare
//! durations spell those units `us` first.

use kube::core::Duration;
use serde::{Deserialize, Deserializer};

/// The grammar of a duration in a spec, as an RE2 pattern: an optional `-`, then `0` or one or
/// more `<number><unit>` with units `ns`, `us` (or `µs`, `μs`), `ms`, `s`, `m` and `h`. Go and
/// kube parse every string it matches to the same value, and so does kube-cel once the micro
/// signs read `u`.
macro_rules! duration_pattern {
    () => {
        "^-?(0|([0-9]+([.][0-9]+)?(ns|us|µs|μs|ms|s|m|h))+)$"
    };
}

/// CEL: the duration's text with `us` for `µs` and `μs`, which kube-cel's `duration()` lacks.
macro_rules! cel_duration {
    () => {
        "duration(self.replace('µ', 'u').replace('μ', 'u'))"
    };
}

/// The grammar of a duration in a spec, as an RE2 pattern (see [`DURATION_FORMAT_RULE`]).
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

/// The problem reported for a duration of another grammar.
const DURATION_FORMAT_PROBLEM: &str =
    "must be a Go duration such as 90s, 2h or 1h30m (units ns, us, ms, s, m and h)";

/// The longest duration Go accepts: 2^63 - 1 nanoseconds, about 292 years.
const MAX_NANOS: f64 = i64::MAX as f64;

/// The longest duration text, in characters (the schema's `maxLength` of duration fields).
pub(crate) const MAX_LENGTH: usize = 64;

/// Parses a spec duration: [`DURATION_PATTERN`], at most [`MAX_LENGTH`] characters and about
/// 292 years (Go's limit).
pub fn parse(text: &str) -> Result<Duration, String> {
    if text.chars().count() > MAX_LENGTH {
        return Err(format!(
            "a duration must be at most {MAX_LENGTH} characters, not {}",
            text.chars().count()
        ));
    }
    let problem = || format!("{text:?} {DURATION_FORMAT_PROBLEM}");
    let body = text.strip_prefix('-').unwrap_or(text);
    if body == "0" {
        return text.parse().map_err(|_| problem());
    }
    if body.is_empty() {
        return Err(problem());
    }
    let mut rest = body;
    let mut total_nanos = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(problem)?;
        let (number, after) = rest.split_at(number_len);
        if !is_decimal(number) {
            return Err(problem());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(problem()),
        };
        let value: f64 = number.parse().map_err(|_| problem())?;
        total_nanos += value * nanos_per_unit;
        rest = after;
    }
    if !total_nanos.is_finite() || total_nanos > MAX_NANOS {
        return Err(format!(
            "{text:?} is too long a duration (at most 2562047h, about 292 years)"
        ));
    }
    // The text matches the pattern and its value is in range, so kube's parser reads it
    // without panicking.
    text.parse().map_err(|_| problem())
}

/// Digits, optionally followed by `.` and more digits.
fn is_decimal(number: &str) -> bool {
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (number, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
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

/// Whether a duration is below zero (kube's `-0s` is negative in sign only).
pub(crate) fn is_negative(duration: Duration) -> bool {
    duration.is_negative() && !std::time::Duration::from(duration).is_zero()
}

/// Whether a duration is above zero.
pub(crate) fn is_positive(duration: Duration) -> bool {
    !duration.is_negative() && !std::time::Duration::from(duration).is_zero()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> Result<(bool, f64), String> {
        parse(text).map(|d| (d.is_negative(), std::time::Duration::from(d).as_secs_f64()))
    }

    #[test]
    fn reads_go_durations() {
        assert_eq!(secs("0"), Ok((false, 0.0)));
        assert_eq!(secs("0s"), Ok((false, 0.0)));
        assert_eq!(secs("2h"), Ok((false, 7200.0)));
        assert_eq!(secs("90m"), Ok((false, 5400.0)));
        assert_eq!(secs("1h30m"), Ok((false, 5400.0)));
        assert_eq!(secs("1.5s"), Ok((false, 1.5)));
        assert_eq!(secs("250ms"), Ok((false, 0.25)));
        assert_eq!(secs("10us"), Ok((false, 1e-5)));
        assert_eq!(secs("10\u{b5}s"), Ok((false, 1e-5)));
        assert_eq!(secs("10\u{3bc}s"), Ok((false, 1e-5)));
        assert_eq!(secs("-5m"), Ok((true, 300.0)));
        assert_eq!(secs("2562047h"), Ok((false, 2562047.0 * 3600.0)));
        assert_eq!(secs(&"0s".repeat(32)), Ok((false, 0.0)));
    }

    #[test]
    fn rejects_other_grammars_without_panicking() {
        for text in [
            "",
            "-",
            "2",
            "2 h",
            "2hours",
            "1d",
            "+5s",
            ".5s",
            "5.s",
            "1h-5m",
            "1e3s",
            "12 us",
            "12Us",
            "NaNs",
            "infh",
            "99999999999999999999h",
            "2562048h",
            "18446744073709551615s1s",
            &"1s".repeat(33),
        ] {
            assert!(parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn the_pattern_and_the_parser_agree() {
        // The CEL rule and the parser implement one grammar; spot-check the pattern's shape.
        assert!(DURATION_PATTERN.starts_with('^') && DURATION_PATTERN.ends_with('$'));
        assert!(DURATION_FORMAT_RULE.contains(DURATION_PATTERN));
        assert!(DURATION_NOT_NEGATIVE_RULE.contains(DURATION_PATTERN));
        assert!(DURATION_POSITIVE_RULE.contains(DURATION_PATTERN));
    }

    #[test]
    fn sign_helpers_ignore_negative_zero() {
        let minus_zero: Duration = "-0s".parse().expect("parses");
        assert!(minus_zero.is_negative(), "kube keeps the sign of -0s");
        assert!(!is_negative(minus_zero));
        assert!(!is_positive(minus_zero));
        let minus_one: Duration = "-1s".parse().expect("parses");
        assert!(is_negative(minus_one));
        assert!(!is_positive(minus_one));
        let one: Duration = "1s".parse().expect("parses");
        assert!(is_positive(one));
        assert!(!is_negative(one));
    }
}
