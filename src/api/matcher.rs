//! Label matchers of the alerts gate, `label op "value"`, parsed so that a gate's matchers
//! can only ever add label matchers to the `ALERTS` selector, never change the query around it.

use std::fmt;

/// A matcher operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

impl MatchOp {
    /// The operator as PromQL writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

/// One parsed label matcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher {
    /// Label name.
    pub label: String,
    /// Operator.
    pub op: MatchOp,
    /// The value, unescaped.
    pub value: String,
}

/// A matcher that is not `label op "value"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("matcher {matcher:?} {problem}; write it as label=\"value\" (or !=, =~, !~)")]
pub struct MatcherError {
    /// The matcher as written.
    pub matcher: String,
    /// What is wrong with it.
    pub problem: String,
}

impl Matcher {
    /// A matcher on `label` with operator `op`.
    pub fn new(label: &str, op: MatchOp, value: &str) -> Self {
        Self {
            label: label.to_owned(),
            op,
            value: value.to_owned(),
        }
    }

    /// Parses `label op "value"`; the value is a PromQL string in double or single quotes
    /// (with `\\`, `\"`, `\'`, `\n`, `\t` escapes) or backticks (raw).
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let fail = |problem: &str| MatcherError {
            matcher: text.to_owned(),
            problem: problem.to_owned(),
        };
        let trimmed = text.trim();
        let label_len = trimmed
            .char_indices()
            .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
            .map_or(trimmed.len(), |(i, _)| i);
        if label_len == 0 {
            return Err(fail("does not start with a label name"));
        }
        let (label, rest) = trimmed.split_at(label_len);
        let rest = rest.trim_start();
        let op = [MatchOp::Ne, MatchOp::Re, MatchOp::NotRe, MatchOp::Eq]
            .into_iter()
            .find(|op| rest.starts_with(op.as_str()))
            .ok_or_else(|| fail("has no operator after the label"))?;
        let literal = rest[op.as_str().len()..].trim();
        let value = unquote(literal).map_err(|problem| fail(&problem))?;
        Ok(Self::new(label, op, &value))
    }
}

impl fmt::Display for Matcher {
    /// The matcher as PromQL, with the value re-quoted safely.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}\"", self.label, self.op.as_str())?;
        for c in self.value.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

/// The text of a whole quoted PromQL string literal.
fn unquote(literal: &str) -> Result<String, String> {
    let mut chars = literal.chars();
    let quote = match chars.next() {
        Some(q @ ('"' | '\'' | '`')) => q,
        _ => return Err("has no quoted value after the operator".into()),
    };
    let mut value = String::new();
    loop {
        match chars.next() {
            None => return Err("has an unterminated value".into()),
            Some(c) if c == quote => break,
            Some('\\') if quote != '`' => match chars.next() {
                Some('n') => value.push('\n'),
                Some('t') => value.push('\t'),
                Some('r') => value.push('\r'),
                Some(c @ ('\\' | '"' | '\'')) => value.push(c),
                Some(c) => return Err(format!("has an unknown escape \\{c} in its value")),
                None => return Err("has an unterminated value".into()),
            },
            Some(c) => value.push(c),
        }
    }
    if chars.as_str().trim().is_empty() {
        Ok(value)
    } else {
        Err("has text after the quoted value".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_and_print_back() {
        for (text, printed) in [
            (r#"severity="critical""#, r#"severity="critical""#),
            (r#" team != 'pay"ments' "#, r#"team!="pay\"ments""#),
            (r#"alertname=~"High.*""#, r#"alertname=~"High.*""#),
            (r#"job!~`a\d+`"#, r#"job!~"a\\d+""#),
            (r#"_x1 = "a\\b""#, r#"_x1="a\\b""#),
        ] {
            assert_eq!(Matcher::parse(text).unwrap().to_string(), printed, "{text}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for text in [
            "",
            "severity",
            "severity=critical",
            r#"1abc="x""#,
            r#"severity="critical"} or vector(1) or {a="b""#,
            r#"severity="crit"#,
            r#"severity=="x""#,
            r#"severity="\d""#,
            r#"severity="a", team="b""#,
        ] {
            let err = Matcher::parse(text).unwrap_err();
            assert!(err.to_string().contains(r#"label="value""#), "{err}");
        }
    }
}
