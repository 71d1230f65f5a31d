//! Query variables filled in: each text value (`{{rollout}}`, `{{namespace}}`, `{{flag}}`)
//! escaped for the double-quoted PromQL string it stands in (plans that put one elsewhere are
//! refused when loaded, see [`check_query`](crate::api::check_query)), so no value can end the
//! string and change the query around it.

use crate::api::{Piece, QueryVar, VarError, parse_template};

use super::GateContext;

/// `template` (a PromQL query) with every variable replaced, text values escaped for a
/// double-quoted PromQL string.
pub fn fill_query(template: &str, ctx: &GateContext<'_>) -> Result<String, VarError> {
    fill(template, ctx, None, escape_promql_string)
}

/// A compare gate's arm: the values of `{{variant}}` and `{{window}}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArmVars<'a> {
    /// The arm's variant name.
    pub variant: &'a str,
    /// Whole seconds since the stage started; written as at least `1s`.
    pub window_secs: u64,
}

/// A compare gate's query with every variable replaced, `{{variant}}` escaped like the other
/// text values and `{{window}}` written as whole seconds (`5400s`, at least `1s`).
pub fn fill_compare_query(
    template: &str,
    ctx: &GateContext<'_>,
    arm: ArmVars<'_>,
) -> Result<String, VarError> {
    fill(template, ctx, Some(arm), escape_promql_string)
}

/// `template` (an alert matcher's value, already unquoted) with every variable replaced by its
/// plain value; the matcher is re-quoted safely when printed.
pub fn fill_text(template: &str, ctx: &GateContext<'_>) -> Result<String, VarError> {
    fill(template, ctx, None, str::to_owned)
}

fn fill(
    template: &str,
    ctx: &GateContext<'_>,
    arm: Option<ArmVars<'_>>,
    text: impl Fn(&str) -> String,
) -> Result<String, VarError> {
    let mut out = String::with_capacity(template.len());
    for piece in parse_template(template)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Var(QueryVar::Rollout) => out.push_str(&text(ctx.rollout)),
            Piece::Var(QueryVar::Namespace) => out.push_str(&text(ctx.namespace)),
            Piece::Var(QueryVar::Flag) => out.push_str(&text(ctx.flag.ok_or(VarError::NoFlag)?)),
            Piece::Var(QueryVar::Percent) => out.push_str(&ctx.percent.to_string()),
            Piece::Var(QueryVar::Stage) => out.push_str(&ctx.stage.to_string()),
            Piece::Var(var @ (QueryVar::Variant | QueryVar::Window)) => match (arm, var) {
                (Some(arm), QueryVar::Variant) => out.push_str(&text(arm.variant)),
                (Some(arm), _) => out.push_str(&format!("{}s", arm.window_secs.max(1))),
                (None, _) => return Err(VarError::CompareOnly(var.name())),
            },
        }
    }
    Ok(out)
}

/// `value` escaped to stand inside a double-quoted PromQL string: backslash, double quote and
/// every control character written as an escape.
pub fn escape_promql_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn ctx(flag: Option<&'static str>) -> GateContext<'static> {
        GateContext {
            rollout: "checkout",
            namespace: "shop",
            flag,
            allowlist: &[],
            stage: 2,
            percent: crate::api::Percent::whole(10),
            at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn every_variable_is_replaced() {
        let query = r#"x{rollout="{{rollout}}",ns="{{ namespace }}",flag="{{flag}}"} * {{percent}} + {{stage}}"#;
        assert_eq!(
            fill_query(query, &ctx(Some("fav"))).unwrap(),
            r#"x{rollout="checkout",ns="shop",flag="fav"} * 10 + 2"#
        );
        assert_eq!(fill_query("{{flag}}", &ctx(None)), Err(VarError::NoFlag));
    }

    #[test]
    fn compare_arms_fill_variant_and_window() {
        let query = r#"sum(increase(x{v="{{variant}}",f="{{flag}}"}[{{window}}]))"#;
        let arm = ArmVars {
            variant: "o\"n",
            window_secs: 5400,
        };
        assert_eq!(
            fill_compare_query(query, &ctx(Some("fav")), arm).unwrap(),
            r#"sum(increase(x{v="o\"n",f="fav"}[5400s]))"#
        );
        let first = ArmVars {
            variant: "off",
            window_secs: 0,
        };
        assert_eq!(
            fill_compare_query("x[{{window}}]", &ctx(None), first).unwrap(),
            "x[1s]"
        );
        assert_eq!(
            fill_query(query, &ctx(Some("fav"))),
            Err(VarError::CompareOnly("variant"))
        );
    }

    #[test]
    fn a_percent_with_decimals_is_decimal_text() {
        for (basis_points, text) in [(50, "x * 0.5"), (225, "x * 2.25"), (100, "x * 1")] {
            let ctx = GateContext {
                percent: crate::api::Percent::from_basis_points(basis_points).unwrap(),
                ..ctx(None)
            };
            assert_eq!(fill_query("x * {{percent}}", &ctx).unwrap(), text);
        }
    }

    #[test]
    fn a_value_cannot_break_out_of_its_string() {
        let query = r#"sum(x{flag="{{flag}}"})"#;
        for hostile in [
            r#"x"} or vector(1) or {a=""#,
            r#"x\"} or vector(1) or {a=\""#,
            "x\\",
            "x\n\"} or vector(1)",
            "x\u{0}\u{1b}",
        ] {
            let filled = fill_query(query, &ctx(Some(hostile))).unwrap();
            // Read the string back as PromQL's lexer would: it must end exactly where the
            // template's closing quote is and hold the value unchanged.
            let inner = filled
                .strip_prefix(r#"sum(x{flag=""#)
                .and_then(|rest| rest.strip_suffix(r#""})"#))
                .unwrap();
            assert_eq!(unescape(inner), Some(hostile.to_owned()), "{filled}");
        }
    }

    /// A double-quoted PromQL string's content, unescaped; `None` when an unescaped quote
    /// would end it early.
    fn unescape(inner: &str) -> Option<String> {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return None,
                '\\' => match chars.next()? {
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let hex: String = chars.by_ref().take(4).collect();
                        out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    c => out.push(c),
                },
                c => out.push(c),
            }
        }
        Some(out)
    }
}
