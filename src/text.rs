//! Text the controller did not write (provider answers, Secret-free configuration excerpts,
//! gate names, error chains) made safe to store and print: capped in length and stripped of
//! control characters, in one place with named limits.
//!
//! | limit | characters | for |
//! |---|---|---|
//! | [`FIELD`] | 75 | one short structured field of an answer (Prometheus `errorType`, `resultType`, a sample value) |
//! | [`QUOTE`] | 80 | one value quoted in a message (a gate name, an OFREP `errorCode`) |
//! | [`CONFIG_EXCERPT`] | 160 | an excerpt of a target's own configuration (flagd documents) |
//! | [`REMOTE`] | 300 | one structured field of a provider's answer (Prometheus `errorType`/`error`, OFREP `errorCode`), a line of a timeline |
//! | [`ERROR_MESSAGE`] | 480 | a gate's error observation as a whole |
//! | [`REASON`] | 500 | the reason a notification carries |
//! | [`EVENT_NOTE_BYTES`] | 1000 bytes | a Kubernetes Event's note |
//!
//! Two ways to make text safe: [`remote`] folds control and invisible characters into single
//! spaces (for status, Events and notifications: one line), [`for_terminal`] shows each as `�`
//! (for a terminal, so a reader sees that something was there).

use std::borrow::Cow;

/// One short structured field of an answer, in characters.
pub const FIELD: usize = 75;
/// One value quoted in a message, in characters.
pub const QUOTE: usize = 80;
/// An excerpt of a target's own configuration, in characters.
pub const CONFIG_EXCERPT: usize = 160;
/// One structured field of a remote answer, or one text of a timeline, in characters.
pub const REMOTE: usize = 300;
/// A gate's error observation, in characters.
pub const ERROR_MESSAGE: usize = 480;
/// The reason a notification carries, in characters.
pub const REASON: usize = 500;
/// A Kubernetes Event's note, in bytes.
pub const EVENT_NOTE_BYTES: usize = 1000;

/// `text` with every control character (C0, DEL, C1: escapes, line breaks, tabs) and every
/// invisible format character (bidirectional overrides, zero-width) replaced by a space, runs
/// of spaces folded, trimmed, and cut to `max` characters with `…` when cut.
pub fn remote(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max.saturating_mul(4)));
    let mut count = 0;
    let mut last_space = true;
    for c in text.chars() {
        let c = if is_unsafe(c) { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        if count == max {
            let mut cut = out.trim_end().to_owned();
            cut.push('…');
            return cut;
        }
        last_space = c == ' ';
        out.push(c);
        count += 1;
    }
    out.trim_end().to_owned()
}

/// `text` cut to `max` characters, with `…` where it was cut; nothing else changed.
pub fn capped(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((end, _)) => Cow::Owned(format!("{}…", &text[..end])),
    }
}

/// `text` cut in place to `max` characters, ending in `…` when cut (the `…` counts): how a
/// writer keeps a text within a `maxLength` of the CRD. Cheap when the text is short.
pub fn cap_in_place(text: &mut String, max: usize) {
    // Bytes first: a text of at most `max` bytes has at most `max` characters.
    if text.len() <= max || text.chars().count() <= max {
        return;
    }
    if let Some((end, _)) = text.char_indices().nth(max.saturating_sub(1)) {
        text.truncate(end);
        text.push('…');
    }
}

/// `text` cut to at most `max` bytes on a character boundary.
pub fn cap_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` capped to [`REMOTE`] characters, every control and invisible character shown as
/// `�`, for a terminal.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    let text = capped(text, REMOTE);
    if !text.chars().any(is_unsafe) {
        return text;
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_unsafe(c) { '\u{fffd}' } else { c })
            .collect(),
    )
}

/// Control characters, and format characters that reorder or hide text.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_text_loses_control_characters_and_is_capped() {
        assert_eq!(remote("a\x1b[31mred\x1b[0m\r\nb", 100), "a [31mred [0m b");
        assert_eq!(remote("  x\u{202e}y  ", 100), "x y");
        let long = "é".repeat(10_000);
        let cut = remote(&long, REMOTE);
        assert_eq!(cut.chars().count(), REMOTE + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(remote("abc", 3), "abc");
        assert_eq!(remote("ab cd", 3), "ab…");
    }

    #[test]
    fn capping_cuts_on_characters_or_bytes() {
        assert_eq!(capped("abcdef", 3), "abc…");
        assert_eq!(capped("abc", 3), "abc");
        let mut s = "ééééé".to_owned();
        cap_in_place(&mut s, 3);
        assert_eq!(s, "éé…");
        assert_eq!(cap_bytes("é", 1), "");
        assert_eq!(cap_bytes("aé", 2), "a");
        assert_eq!(cap_bytes("ab", 5), "ab");
    }

    #[test]
    fn terminal_text_shows_what_was_there() {
        assert_eq!(for_terminal("a\x1b[2Jb\u{202e}"), "a\u{fffd}[2Jb\u{fffd}");
        assert_eq!(for_terminal("plain"), "plain");
        assert_eq!(for_terminal(&"x".repeat(1000)).chars().count(), REMOTE + 1);
    }
}
