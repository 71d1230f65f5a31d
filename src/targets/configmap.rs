//! The percent as decimal text in a plain ConfigMap key.
//!
//! The text is read strictly: a number from 0 to 100 in plain decimal form, with up to two
//! decimals (`0`, `5`, `100`, `0.5`, `2.25`, also `5.0` or `0.50`) — no sign, no leading zero
//! (`05`), no exponent, no more than two decimals, no whitespace or trailing newline (` 5`,
//! `5\n`). The application that reads the key parses it with its own rules; the plain form is
//! the only one every parser reads the same way, so anything else is reported (as drift)
//! instead of being guessed at. The controller writes the shortest form: `5`, `0.5`, `2.25`.

use crate::api::Percent;

/// The text written for `percent`: decimals only when there are any (`5`, `0.5`, `2.25`).
pub fn format_percent(percent: Percent) -> String {
    percent.to_string()
}

/// The percent the text holds, or why it holds none.
pub fn parse_percent(text: &str) -> Result<Percent, String> {
    let (whole, decimals) = text.split_once('.').unwrap_or((text, ""));
    let plain = !whole.is_empty()
        && whole.len() <= 3
        && whole.bytes().all(|b| b.is_ascii_digit())
        && (whole == "0" || !whole.starts_with('0'))
        && (text.len() == whole.len() || (1..=2).contains(&decimals.len()))
        && decimals.bytes().all(|b| b.is_ascii_digit());
    match Percent::parse(text) {
        Ok(percent) if plain => Ok(percent),
        _ => Err(format!(
            "{} is not a percent: expected a number from 0 to 100 with at most two decimals \
             written plainly, such as 5 or 0.5 (no sign, leading zero, exponent or spaces)",
            quote(text)
        )),
    }
}

fn quote(text: &str) -> String {
    let shown: String = text.chars().take(40).collect();
    if shown.len() < text.len() {
        format!("{shown:?}…")
    } else {
        format!("{shown:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_numbers_parse() {
        for basis_points in 0..=10_000 {
            let percent = Percent::from_basis_points(basis_points).unwrap();
            assert_eq!(parse_percent(&format_percent(percent)), Ok(percent));
        }
        assert_eq!(
            format_percent(Percent::from_basis_points(50).unwrap()),
            "0.5"
        );
        assert_eq!(format_percent(Percent::whole(1)), "1");
    }

    #[test]
    fn integer_and_decimal_forms_both_parse() {
        for (text, basis_points) in [
            ("5", 500),
            ("5.0", 500),
            ("0.5", 50),
            ("0.50", 50),
            ("2.25", 225),
            ("100.00", 10_000),
        ] {
            assert_eq!(
                parse_percent(text).map(Percent::basis_points),
                Ok(basis_points),
                "{text}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_text_quoted() {
        for text in [
            "", " 5", "5 ", "5\n", "05", "00", "+5", "-0", "5%", "101", "255", "256", "1000",
            "0x5", "５", "five", "1e1", "0.001", "0.125", ".5", "5.", "100.5", "1..2", "0.-5",
        ] {
            let err = parse_percent(text).expect_err(text);
            assert!(err.contains(&format!("{text:?}")), "{err}");
            assert!(err.contains("0 to 100"), "{err}");
        }
    }

    #[test]
    fn long_text_is_quoted_short() {
        let err = parse_percent(&"9".repeat(10_000)).expect_err("refused");
        assert!(err.len() < 200, "{err}");
    }
}
