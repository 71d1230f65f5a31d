//! Untrusted text (gate names, provider messages, reasons, queries) made safe for a Markdown
//! table cell: one line, capped, no control characters, no markup of its own.

use crate::text::for_terminal;

/// `text` as inert Markdown inline text: line breaks and tabs become spaces, other control
/// characters `�`, at most [`MAX_TEXT_CHARS`](crate::text::REMOTE) characters,
/// and every character that could start markup (emphasis, links, code, HTML, a table's
/// column bar) escaped. An underscore inside a word is left alone, as Markdown does.
pub(super) fn inline(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| {
            if matches!(c, '\n' | '\r' | '\t') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let safe = for_terminal(one_line.trim());
    let chars: Vec<char> = safe.chars().collect();
    let mut out = String::with_capacity(safe.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '_' => {
                let inside = i > 0
                    && chars[i - 1].is_alphanumeric()
                    && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
                if !inside {
                    out.push('\\');
                }
                out.push('_');
            }
            '\\' | '`' | '*' | '[' | ']' | '|' | '~' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// A fence of backticks longer than any run of backticks in `body`, at least three, so a
/// code block holds `body` whatever it contains.
pub(super) fn fence(body: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in body.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_and_lines_joined() {
        assert_eq!(
            inline("a|b *c* [x](y) <script> `q`\nnext"),
            r"a\|b \*c\* \[x\](y) &lt;script&gt; \`q\` next"
        );
    }

    #[test]
    fn underscores_inside_words_stay_readable() {
        assert_eq!(
            inline("passenger_favorites_matching"),
            "passenger_favorites_matching"
        );
        assert_eq!(inline("_emph_"), r"\_emph\_");
    }

    #[test]
    fn control_characters_and_length_are_contained() {
        let hostile = format!("ok\u{1b}[2J{}", "x".repeat(10_000));
        let cell = inline(&hostile);
        assert!(!cell.chars().any(char::is_control), "{cell:?}");
        assert!(cell.chars().count() < 400, "{}", cell.len());
    }

    #[test]
    fn a_fence_outgrows_the_body() {
        assert_eq!(fence("sum(x)"), "```");
        assert_eq!(fence("a ```` b"), "`````");
    }
}
