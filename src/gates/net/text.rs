//! Remote text made safe to store in status and print in a timeline: control characters
//! (terminal escapes, line breaks) replaced, and the length capped.

/// Most characters of remote text kept in a message.
pub const MAX_REMOTE_TEXT: usize = 300;

/// `text` with every control character replaced by a space (runs of whitespace folded) and
/// cut to `max` characters, with `…` when cut.
pub fn remote_text(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max * 4));
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if c.is_control() || is_invisible(c) {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        if count == max {
            out.push('…');
            return out.trim_end().to_owned();
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out.trim_end().to_owned()
}

/// Format characters that reorder or hide text (bidirectional overrides, zero-width).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_go_and_length_is_capped() {
        assert_eq!(
            remote_text("a\x1b[31mred\x1b[0m\r\nb", 100),
            "a [31mred [0m b"
        );
        assert_eq!(remote_text("  x\u{202e}y  ", 100), "x y");
        let long = "é".repeat(10_000);
        let cut = remote_text(&long, 300);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with('…'));
        assert_eq!(remote_text("abc", 3), "abc");
    }
}
