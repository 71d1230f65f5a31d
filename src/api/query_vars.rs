//! Query variables: `{{rollout}}`, `{{namespace}}`, `{{flag}}`, `{{percent}}` and `{{stage}}`,
//! and in a compare gate's queries also `{{variant}}` and `{{window}}`.
//! No template engine: a query is text and placeholders, and any other `{{...}}` is an error
//! naming it. This module only reads templates; the gates fill them in (escaping each text
//! value for the PromQL string literal it stands in).

/// One variable a query may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryVar {
    /// `{{rollout}}`: the Rollout's name.
    Rollout,
    /// `{{namespace}}`: the Rollout's namespace.
    Namespace,
    /// `{{flag}}`: the flag the target rolls out.
    Flag,
    /// `{{percent}}`: the percent the target is expected to hold.
    Percent,
    /// `{{stage}}`: the index of the current stage.
    Stage,
    /// `{{variant}}`: a compare gate's arm, the variant name (compare gates only).
    Variant,
    /// `{{window}}`: the time since the stage started as a PromQL duration in whole seconds,
    /// at least `1s` (compare gates only).
    Window,
}

impl QueryVar {
    /// Every variable.
    pub const ALL: [QueryVar; 7] = [
        QueryVar::Rollout,
        QueryVar::Namespace,
        QueryVar::Flag,
        QueryVar::Percent,
        QueryVar::Stage,
        QueryVar::Variant,
        QueryVar::Window,
    ];

    /// The name written between the braces.
    pub fn name(self) -> &'static str {
        match self {
            QueryVar::Rollout => "rollout",
            QueryVar::Namespace => "namespace",
            QueryVar::Flag => "flag",
            QueryVar::Percent => "percent",
            QueryVar::Stage => "stage",
            QueryVar::Variant => "variant",
            QueryVar::Window => "window",
        }
    }

    /// Whether the value is text (and so must stand inside a double-quoted PromQL string),
    /// rather than a number.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            QueryVar::Rollout | QueryVar::Namespace | QueryVar::Flag | QueryVar::Variant
        )
    }

    /// Whether only a compare gate's queries may use the variable.
    pub fn compare_only(self) -> bool {
        matches!(self, QueryVar::Variant | QueryVar::Window)
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// A piece of a query template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text kept as written.
    Text(&'a str),
    /// A placeholder.
    Var(QueryVar),
}

/// A query whose variables cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    /// A name outside [`QueryVar::ALL`].
    #[error(
        "unknown query variable {{{{{0}}}}}; the known ones are {{{{rollout}}}}, {{{{namespace}}}}, {{{{flag}}}}, {{{{percent}}}} and {{{{stage}}}} (and {{{{variant}}}} and {{{{window}}}} in a compare gate)"
    )]
    Unknown(String),
    /// `{{variant}}` or `{{window}}` outside a compare gate.
    #[error(
        "{{{{{0}}}}} is only for a compare gate's units and events queries, which count one arm \
         since the stage started"
    )]
    CompareOnly(&'static str),
    /// `{{flag}}` for a target that names no flag.
    #[error("the query uses {{{{flag}}}} but the rollout's target names no flag")]
    NoFlag,
    /// `{{` without `}}`.
    #[error("the query has a {{{{ without a closing }}}}")]
    Unclosed,
    /// A text variable outside a double-quoted string, where its value would be PromQL code.
    #[error(
        "{{{{{0}}}}} stands outside a double-quoted string; write it inside one, for example \
         label=\"{{{{{0}}}}}\", so its value is always read as text"
    )]
    OutsideString(&'static str),
}

/// Splits `template` into text and placeholders (spaces inside the braces allowed).
pub fn parse_template(template: &str) -> Result<Vec<Piece<'_>>, VarError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            pieces.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(VarError::Unclosed)?;
        let name = after[..close].trim();
        let var = QueryVar::from_name(name).ok_or_else(|| VarError::Unknown(name.to_owned()))?;
        pieces.push(Piece::Var(var));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Checks a PromQL query template as the plan is loaded: every variable known, `{{flag}}` only
/// when the target names a flag, and every text variable inside a double-quoted string.
pub fn check_query(template: &str, has_flag: bool) -> Result<(), VarError> {
    check_template(template, has_flag, false)
}

/// Checks a compare gate's `units` or `events` query: as [`check_query`], and `{{variant}}`
/// (inside a double-quoted string) and `{{window}}` (a duration, outside strings) may be used.
pub fn check_compare_query(template: &str, has_flag: bool) -> Result<(), VarError> {
    check_template(template, has_flag, true)
}

fn check_template(template: &str, has_flag: bool, compare: bool) -> Result<(), VarError> {
    let mut lexer = Lexer::Code;
    for piece in parse_template(template)? {
        match piece {
            Piece::Text(text) => text.chars().for_each(|c| lexer = lexer.step(c)),
            Piece::Var(var) if var.compare_only() && !compare => {
                return Err(VarError::CompareOnly(var.name()));
            }
            Piece::Var(QueryVar::Flag) if !has_flag => return Err(VarError::NoFlag),
            Piece::Var(var) if var.is_text() && !matches!(lexer, Lexer::Double { .. }) => {
                return Err(VarError::OutsideString(var.name()));
            }
            Piece::Var(_) => {
                // A value is escaped text: it never ends the string nor starts an escape.
                if let Lexer::Double { escaped: true } = lexer {
                    lexer = Lexer::Double { escaped: false };
                }
            }
        }
    }
    Ok(())
}

/// Checks a template used as plain text (an alert matcher's value, already unquoted): known
/// variables, and `{{flag}}` only when the target names a flag.
pub fn check_text(template: &str, has_flag: bool) -> Result<(), VarError> {
    let pieces = parse_template(template)?;
    if let Some(var) = pieces.iter().find_map(|p| match p {
        Piece::Var(v) if v.compare_only() => Some(*v),
        _ => None,
    }) {
        return Err(VarError::CompareOnly(var.name()));
    }
    if !has_flag && pieces.contains(&Piece::Var(QueryVar::Flag)) {
        return Err(VarError::NoFlag);
    }
    Ok(())
}

/// Where a PromQL lexer stands: in code, a string of each quote, or a comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lexer {
    Code,
    Double { escaped: bool },
    Single { escaped: bool },
    Backtick,
    Comment,
}

impl Lexer {
    fn step(self, c: char) -> Self {
        match (self, c) {
            (Lexer::Code, '"') => Lexer::Double { escaped: false },
            (Lexer::Code, '\'') => Lexer::Single { escaped: false },
            (Lexer::Code, '`') => Lexer::Backtick,
            (Lexer::Code, '#') => Lexer::Comment,
            (Lexer::Double { escaped: false }, '\\') => Lexer::Double { escaped: true },
            (Lexer::Double { escaped: false }, '"') => Lexer::Code,
            (Lexer::Double { .. }, _) => Lexer::Double { escaped: false },
            (Lexer::Single { escaped: false }, '\\') => Lexer::Single { escaped: true },
            (Lexer::Single { escaped: false }, '\'') => Lexer::Code,
            (Lexer::Single { .. }, _) => Lexer::Single { escaped: false },
            (Lexer::Backtick, '`') => Lexer::Code,
            (Lexer::Comment, '\n') => Lexer::Code,
            (state, _) => state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_variables() {
        assert_eq!(
            parse_template(r#"x{a="{{ rollout }}"} * {{percent}}"#).unwrap(),
            vec![
                Piece::Text(r#"x{a=""#),
                Piece::Var(QueryVar::Rollout),
                Piece::Text(r#""} * "#),
                Piece::Var(QueryVar::Percent),
            ]
        );
        assert_eq!(parse_template("up").unwrap(), vec![Piece::Text("up")]);
    }

    #[test]
    fn unknown_missing_and_unclosed_are_errors() {
        let err = parse_template("up{user=\"{{user}}\"}").unwrap_err();
        assert_eq!(err, VarError::Unknown("user".into()));
        assert!(err.to_string().contains("{{user}}"), "{err}");
        assert_eq!(parse_template("up {{rollout"), Err(VarError::Unclosed));
        assert_eq!(
            check_query(r#"x{f="{{flag}}"}"#, false),
            Err(VarError::NoFlag)
        );
        assert_eq!(check_text("{{flag}}", false), Err(VarError::NoFlag));
        assert_eq!(check_text("{{flag}}", true), Ok(()));
    }

    #[test]
    fn variant_and_window_are_for_compare_queries_only() {
        let q = r#"sum(increase(x{feature_flag_variant="{{variant}}"}[{{window}}]))"#;
        assert_eq!(check_compare_query(q, false), Ok(()));
        assert_eq!(check_query(q, false), Err(VarError::CompareOnly("variant")));
        assert_eq!(
            check_query("sum(increase(x[{{window}}]))", false),
            Err(VarError::CompareOnly("window"))
        );
        assert_eq!(
            check_text("{{variant}}", true),
            Err(VarError::CompareOnly("variant"))
        );
        assert_eq!(
            check_compare_query("x{v={{variant}}}", false),
            Err(VarError::OutsideString("variant"))
        );
    }

    #[test]
    fn text_variables_must_stand_in_double_quoted_strings() {
        for ok in [
            r#"x{f="{{flag}}"}"#,
            r#"x{f="a-{{namespace}}-{{flag}}"} * {{percent}} + {{stage}}"#,
            r#"x{f="\"{{flag}}"}"#,
            r#"x{f="\\"} or y{g="{{rollout}}"}"#,
        ] {
            assert_eq!(check_query(ok, true), Ok(()), "{ok}");
        }
        for (bad, var) in [
            ("x{f={{flag}}}", "flag"),
            ("x{f='{{flag}}'}", "flag"),
            ("x{f=`{{rollout}}`}", "rollout"),
            (r#"x{f="a"} {{namespace}}"#, "namespace"),
            ("up # \"\n{{flag}}", "flag"),
            (r#"x{f="\\"}{{flag}}"#, "flag"),
        ] {
            assert_eq!(
                check_query(bad, true),
                Err(VarError::OutsideString(var)),
                "{bad}"
            );
        }
    }
}
