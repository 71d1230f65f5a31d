//! Query variables: `{{rollout}}`, `{{namespace}}`, `{{flag}}`, `{{percent}}` and `{{stage}}`,
//! replaced by plain text. No template engine: any other `{{...}}` is an error naming it.

use super::GateContext;

/// The variables a query may use.
pub const VARIABLES: [&str; 5] = ["rollout", "namespace", "flag", "percent", "stage"];

/// A query whose variables cannot be replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VarError {
    /// A name outside [`VARIABLES`].
    #[error(
        "unknown query variable {{{{{0}}}}}; the known ones are {{{{rollout}}}}, {{{{namespace}}}}, {{{{flag}}}}, {{{{percent}}}} and {{{{stage}}}}"
    )]
    Unknown(String),
    /// `{{flag}}` for a target that names no flag.
    #[error("the query uses {{{{flag}}}} but the rollout's target names no flag")]
    NoFlag,
    /// `{{` without `}}`.
    #[error("the query has a {{{{ without a closing }}}}")]
    Unclosed,
}

/// `template` with every `{{name}}` (spaces inside the braces allowed) replaced by its value
/// in `ctx`. Values are inserted as they are, without quoting.
pub fn substitute(template: &str, ctx: &GateContext<'_>) -> Result<String, VarError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or(VarError::Unclosed)?;
        let name = after[..close].trim();
        match name {
            "rollout" => out.push_str(ctx.rollout),
            "namespace" => out.push_str(ctx.namespace),
            "flag" => out.push_str(ctx.flag.ok_or(VarError::NoFlag)?),
            "percent" => out.push_str(&ctx.percent.to_string()),
            "stage" => out.push_str(&ctx.stage.to_string()),
            _ => return Err(VarError::Unknown(name.to_owned())),
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
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
            percent: 10,
            at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn every_variable_is_replaced() {
        let query = r#"x{rollout="{{rollout}}",ns="{{ namespace }}",flag="{{flag}}"} * {{percent}} + {{stage}}"#;
        assert_eq!(
            substitute(query, &ctx(Some("fav"))).unwrap(),
            r#"x{rollout="checkout",ns="shop",flag="fav"} * 10 + 2"#
        );
    }

    #[test]
    fn plain_queries_are_untouched() {
        let query = r#"sum(rate(http_requests_total{code=~"5.."}[5m]))"#;
        assert_eq!(substitute(query, &ctx(None)).unwrap(), query);
    }

    #[test]
    fn unknown_missing_and_unclosed_are_errors() {
        let err = substitute("up{user=\"{{user}}\"}", &ctx(None)).unwrap_err();
        assert_eq!(err, VarError::Unknown("user".into()));
        assert!(err.to_string().contains("{{user}}"), "{err}");
        assert_eq!(substitute("{{flag}}", &ctx(None)), Err(VarError::NoFlag));
        assert_eq!(
            substitute("up {{rollout", &ctx(None)),
            Err(VarError::Unclosed)
        );
    }
}
