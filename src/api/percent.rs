//! [`Percent`]: a share of users from 0 to 100 in steps of 0.01, held as basis points.
//!
//! In YAML and JSON a percent is a plain number with up to two decimals (`1`, `0.5`, `2.25`);
//! inside it is a whole number of basis points (0–10,000), so the engine never sees a float.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How far a written number may be from a two-decimal value and still be read as it: floating
/// point makes `0.29 × 100` 28.999…, so an exact test would refuse percents people write.
pub const PERCENT_TOLERANCE: f64 = 1e-6;

/// CEL rule on every spec percent: 0 to 100.
pub const PERCENT_RANGE_RULE: &str = "double(self) >= 0.0 && double(self) <= 100.0";

/// CEL rule on every spec percent: at most two decimals, within [`PERCENT_TOLERANCE`] of a
/// multiple of 0.01 (values outside 0..=100 are left to [`PERCENT_RANGE_RULE`]). Written with
/// core CEL arithmetic only (`double`, `int`), which every Kubernetes version evaluates.
pub const PERCENT_DECIMALS_RULE: &str = "double(self) < 0.0 || double(self) > 100.0 || (double(self) * 100.0 - double(int(double(self) * 100.0 + 0.5)) <= 0.0001 && double(int(double(self) * 100.0 + 0.5)) - double(self) * 100.0 <= 0.0001)";

/// The message of [`PERCENT_RANGE_RULE`].
pub const PERCENT_RANGE_MESSAGE: &str = "percent must be between 0 and 100";

/// The message of [`PERCENT_DECIMALS_RULE`].
pub const PERCENT_DECIMALS_MESSAGE: &str = "percent takes at most two decimals (steps of 0.01)";

/// A share of users from 0 to 100 % in steps of 0.01 %, held as basis points (0–10,000).
///
/// Written as a number: `1`, `0.5`, `2.25` (whole percents without a decimal point).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u16);

/// A number that is not a percent with at most two decimals from 0 to 100.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PercentError {
    /// Below 0 or above 100 (or not a finite number).
    #[error("{0} is not between 0 and 100")]
    OutOfRange(String),
    /// A finer step than 0.01.
    #[error("{0} has more than two decimals (percents take steps of 0.01)")]
    TooManyDecimals(String),
}

impl Percent {
    /// 0 %.
    pub const ZERO: Percent = Percent(0);
    /// 100 %.
    pub const HUNDRED: Percent = Percent(10_000);
    /// Basis points in one percent.
    pub const BASIS_POINTS_PER_PERCENT: u16 = 100;

    /// A whole percent; a number above 100 is taken as 100 (use [`Percent::from_integer`]
    /// for numbers read from outside, which refuses it).
    pub const fn whole(percent: u8) -> Percent {
        if percent <= 100 {
            Percent(percent as u16 * 100)
        } else {
            Percent::HUNDRED
        }
    }

    /// A percent from basis points (1/100 of a percent); `None` above 10,000.
    pub const fn from_basis_points(basis_points: u16) -> Option<Percent> {
        if basis_points <= 10_000 {
            Some(Percent(basis_points))
        } else {
            None
        }
    }

    /// The percent in basis points, 0 to 10,000.
    pub const fn basis_points(self) -> u16 {
        self.0
    }

    /// The percent as a number (`0.5` for half a percent), for output and statistics only.
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// The share of users as a fraction from 0 to 1 (`0.005` for 0.5 %).
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }

    /// Whether it is a whole percent (no decimals).
    pub const fn is_whole(self) -> bool {
        self.0.is_multiple_of(100)
    }

    /// The percent read from a number: rounded to the nearest basis point when it is within
    /// [`PERCENT_TOLERANCE`] of a two-decimal value from 0 to 100, refused otherwise.
    pub fn from_f64(value: f64) -> Result<Percent, PercentError> {
        if !value.is_finite() || !(-PERCENT_TOLERANCE..=100.0 + PERCENT_TOLERANCE).contains(&value)
        {
            return Err(PercentError::OutOfRange(format_number(value)));
        }
        let scaled = value * 100.0;
        let rounded = scaled.round();
        if (scaled - rounded).abs() > PERCENT_TOLERANCE * 100.0 {
            return Err(PercentError::TooManyDecimals(format_number(value)));
        }
        // In range after the checks above: 0 <= rounded <= 10,000.
        Ok(Percent(rounded.clamp(0.0, 10_000.0) as u16))
    }

    /// The percent read from text: `5`, `0.5`, `2.25` (surrounding blanks allowed).
    pub fn parse(text: &str) -> Result<Percent, PercentError> {
        let text = text.trim();
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == '+');
        match text.parse::<f64>() {
            Ok(value) if valid => Percent::from_f64(value),
            _ => Err(PercentError::OutOfRange(format!("{text:?}"))),
        }
    }

    /// The percent read from an integer.
    pub fn from_integer(value: i128) -> Result<Percent, PercentError> {
        match u8::try_from(value) {
            Ok(p) if p <= 100 => Ok(Percent::whole(p)),
            _ => Err(PercentError::OutOfRange(value.to_string())),
        }
    }

    /// The percent as JSON: an integer when whole, otherwise a number with its decimals.
    pub fn to_json(self) -> serde_json::Value {
        if self.is_whole() {
            serde_json::Value::from(self.0 / 100)
        } else {
            serde_json::Value::from(self.as_f64())
        }
    }

    /// The percent read from JSON: an integer or a number with up to two decimals.
    pub fn from_json(value: &serde_json::Value) -> Result<Percent, PercentError> {
        if let Some(i) = value.as_i64() {
            Percent::from_integer(i128::from(i))
        } else if let Some(u) = value.as_u64() {
            Percent::from_integer(i128::from(u))
        } else if let Some(f) = value.as_f64() {
            Percent::from_f64(f)
        } else {
            Err(PercentError::OutOfRange(value.to_string()))
        }
    }

    /// 100 % minus this percent (the share that keeps the old behaviour).
    pub const fn complement(self) -> Percent {
        Percent(10_000 - self.0)
    }
}

/// A number as people write it: `0.001`, `100.5`, `7`.
fn format_number(value: f64) -> String {
    format!("{value}")
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        let hundredths = self.0 % 100;
        let text = if hundredths == 0 {
            whole.to_string()
        } else if hundredths.is_multiple_of(10) {
            format!("{whole}.{}", hundredths / 10)
        } else {
            format!("{whole}.{hundredths:02}")
        };
        f.pad(&text)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.is_whole() {
            serializer.serialize_u64(u64::from(self.0 / 100))
        } else {
            serializer.serialize_f64(self.as_f64())
        }
    }
}

struct PercentVisitor;

impl Visitor<'_> for PercentVisitor {
    type Value = Percent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a percent from 0 to 100 with at most two decimals")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Percent, E> {
        Percent::from_integer(i128::from(v)).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Percent, E> {
        Percent::from_integer(i128::from(v)).map_err(E::custom)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Percent, E> {
        Percent::from_integer(i128::try_from(v).unwrap_or(i128::MAX)).map_err(E::custom)
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Percent, E> {
        Percent::from_integer(v).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Percent, E> {
        Percent::from_f64(v).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Percent, D::Error> {
        deserializer.deserialize_any(PercentVisitor)
    }
}

impl JsonSchema for Percent {
    fn schema_name() -> Cow<'static, str> {
        "Percent".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "number",
            "minimum": 0,
            "maximum": 100
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_two_decimals_within_the_tolerance() {
        for (value, bp) in [
            (0.0, 0),
            (0.5, 50),
            (0.29, 29),
            (2.25, 225),
            (100.0, 10_000),
            (0.01, 1),
            (33.33, 3333),
        ] {
            assert_eq!(Percent::from_f64(value).map(Percent::basis_points), Ok(bp));
        }
        assert_eq!(Percent::from_f64(0.290_000_000_1), Percent::from_f64(0.29));
    }

    #[test]
    fn refuses_more_decimals_and_out_of_range() {
        assert_eq!(
            Percent::from_f64(0.001),
            Err(PercentError::TooManyDecimals("0.001".into()))
        );
        assert_eq!(
            Percent::from_f64(100.5),
            Err(PercentError::OutOfRange("100.5".into()))
        );
        assert!(Percent::from_f64(-1.0).is_err());
        assert!(Percent::from_f64(f64::NAN).is_err());
        assert!(Percent::from_integer(101).is_err());
        assert!(Percent::from_integer(-1).is_err());
        assert_eq!(
            Percent::from_f64(0.001).unwrap_err().to_string(),
            "0.001 has more than two decimals (percents take steps of 0.01)"
        );
    }

    #[test]
    fn displays_decimals_only_when_there_are_any() {
        let shown: Vec<String> = [0, 50, 100, 225, 1050, 10_000, 1, 29]
            .into_iter()
            .filter_map(Percent::from_basis_points)
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            shown,
            ["0", "0.5", "1", "2.25", "10.5", "100", "0.01", "0.29"]
        );
        assert_eq!(format!("{:>4}", Percent::whole(5)), "   5");
    }

    #[test]
    fn serializes_as_a_json_number_and_reads_it_back() {
        for bp in [0, 1, 29, 50, 100, 225, 999, 1050, 9999, 10_000] {
            let p = Percent::from_basis_points(bp).unwrap();
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, p.to_string(), "JSON and Display agree");
            assert_eq!(serde_json::from_str::<Percent>(&json).unwrap(), p);
            assert_eq!(Percent::from_json(&p.to_json()), Ok(p));
        }
        assert!(serde_json::from_str::<Percent>("0.001").is_err());
        assert!(serde_json::from_str::<Percent>("101").is_err());
        assert!(serde_json::from_str::<Percent>("\"5\"").is_err());
        let err = serde_json::from_str::<Percent>("0.005")
            .unwrap_err()
            .to_string();
        assert!(err.contains("0.005"), "{err}");
    }

    #[test]
    fn parses_text() {
        assert_eq!(Percent::parse(" 0.5 "), Ok(Percent(50)));
        assert_eq!(Percent::parse("5"), Ok(Percent(500)));
        assert!(Percent::parse("five").is_err());
        assert!(Percent::parse("inf").is_err());
        assert!(Percent::parse("").is_err());
        assert!(Percent::parse("1e1").is_err());
    }

    #[test]
    fn orders_and_helpers() {
        let half = Percent::from_basis_points(50).unwrap();
        assert!(Percent::ZERO < half && half < Percent::whole(1));
        assert_eq!(half.as_f64(), 0.5);
        assert_eq!(half.fraction(), 0.005);
        assert_eq!(half.complement().basis_points(), 9950);
        assert_eq!(Percent::HUNDRED, Percent::whole(100));
        assert_eq!(Percent::from_basis_points(10_001), None);
        assert_eq!(Percent::whole(101), Percent::HUNDRED);
    }
}
