//! The percent as decimal text in a plain ConfigMap key.
//!
//! The text is read strictly: exactly the canonical decimal form of a whole number from 0 to
//! 100 (`0`, `5`, `100`), nothing else — no sign, no leading zero (`05`), no fraction (`5.0`),
//! no whitespace or trailing newline (` 5`, `5\n`). The application that reads the key parses
//! it with its own rules; the canonical form is the only one every parser reads the same way,
//! so anything else is reported (as drift) instead of being guessed at. The controller writes
//! the canonical form.

/// The text written for `percent`.
pub fn format_percent(percent: u8) -> String {
    percent.to_string()
}

/// The percent the text holds, or why it holds none.
pub fn parse_percent(text: &str) -> Result<u8, String> {
    let canonical = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    match text.parse::<u8>() {
        Ok(percent) if canonical && percent <= 100 => Ok(percent),
        _ => Err(format!(
            "{} is not a percent: expected a whole number from 0 to 100 written plainly, \
             such as 5 (no sign, leading zero, fraction or spaces)",
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
        for percent in 0..=100u8 {
            assert_eq!(parse_percent(&format_percent(percent)), Ok(percent));
        }
    }

    #[test]
    fn anything_else_is_refused_with_the_text_quoted() {
        for text in [
            "", " 5", "5 ", "5\n", "05", "00", "+5", "-0", "5.0", "5%", "101", "255", "256",
            "1000", "0x5", "５", "five", "1e1",
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
