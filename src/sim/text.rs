//! Untrusted text (gate names, provider error messages, reasons that quote them) made safe to
//! print: capped in length and, for a terminal, stripped of control characters, so no answer
//! can move the cursor, clear the screen or forge a line of the timeline.

use std::borrow::Cow;

/// The most characters of one untrusted text a timeline prints.
pub const MAX_TEXT_CHARS: usize = 300;

/// `text` cut to [`MAX_TEXT_CHARS`] characters, with `…` where it was cut.
pub fn capped(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// `text` capped as [`capped`] does, every control character (C0, DEL, C1: escape sequences,
/// line breaks, tabs) and every bidirectional override shown as `�` instead, for a terminal.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    let text = capped(text);
    if !text.chars().any(is_unsafe) {
        return text;
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_unsafe(c) { '\u{fffd}' } else { c })
            .collect(),
    )
}

fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_clean_text_is_kept_as_it_is() {
        assert!(matches!(
            for_terminal("connection refused"),
            Cow::Borrowed(_)
        ));
        assert_eq!(for_terminal("été 5xx"), "été 5xx");
    }

    #[test]
    fn long_text_is_cut() {
        let long = "é".repeat(100_000);
        let cut = capped(&long);
        assert_eq!(cut.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn control_characters_never_reach_a_terminal() {
        let hostile =
            "ok\u{1b}[2J\u{1b}]0;pwned\u{7}\r\nFAKE 2026 rollback\u{9b}31m\u{202e}x\u{7f}";
        let shown = for_terminal(hostile);
        assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        assert!(!shown.contains('\u{202e}'));
        assert!(shown.contains("FAKE"), "the text stays readable: {shown:?}");
    }
}
