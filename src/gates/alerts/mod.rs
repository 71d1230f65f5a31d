//! The alerts gate: its value is the number of firing alerts that match the gate's matchers,
//! counted from Prometheus' `ALERTS` series. No firing alert is the value 0, never no data.

pub use crate::api::{MatchOp as Op, Matcher, MatcherError};

use crate::api::{AlertsGate, VarError};
use crate::engine::Observation;

use super::GateContext;
use super::prometheus::{Answer, PrometheusClient, QueryError};
use super::query::fill_text;

mod rules;

pub use rules::{known_rules, selected_rules};

/// Why an alerts gate has no observation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertsError {
    /// A matcher with an unknown variable.
    #[error(transparent)]
    Var(#[from] VarError),
    /// A matcher that is not `label op "value"`.
    #[error(transparent)]
    Matcher(#[from] MatcherError),
    /// A matcher on `alertstate`, which the gate sets itself.
    #[error("matcher {0:?} selects alertstate, which the gate sets to \"firing\" itself")]
    AlertState(String),
    /// The query failed.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// A `=~` or `!~` matcher whose value is not a regular expression.
    #[error("matcher on {label}: {value:?} is not a regular expression ({problem})")]
    Regex {
        /// The matcher's label.
        label: String,
        /// The value as written.
        value: String,
        /// What the regex parser said.
        problem: String,
    },
}

/// The PromQL query counting the firing alerts `gate` selects: `count(ALERTS{alertstate="firing",
/// <matchers>, alertname!="<ignored>"…})`. Each matcher is parsed as written, then query
/// variables in its value are replaced; the value is re-quoted safely, so no variable can
/// change the selector.
pub fn query(gate: &AlertsGate, ctx: &GateContext<'_>) -> Result<String, AlertsError> {
    let mut selector = vec![Matcher::new("alertstate", Op::Eq, "firing")];
    selector.extend(matchers(gate, ctx)?);
    selector.extend(
        gate.ignore
            .iter()
            .map(|name| Matcher::new("alertname", Op::Ne, name)),
    );
    let selector: Vec<String> = selector.iter().map(Matcher::to_string).collect();
    Ok(format!("count(ALERTS{{{}}})", selector.join(", ")))
}

/// The gate's own matchers, parsed, with query variables in their values replaced.
pub fn matchers(gate: &AlertsGate, ctx: &GateContext<'_>) -> Result<Vec<Matcher>, AlertsError> {
    let mut matchers = Vec::with_capacity(gate.matchers.len());
    for text in &gate.matchers {
        let mut matcher = Matcher::parse(text)?;
        matcher.value = fill_text(&matcher.value, ctx)?;
        if matcher.label == "alertstate" {
            return Err(AlertsError::AlertState(text.clone()));
        }
        matchers.push(matcher);
    }
    Ok(matchers)
}

/// Observes `gate` at `ctx.at` through `client`: the number of matching firing alerts, or an
/// error.
pub async fn observe(
    client: &PrometheusClient,
    gate: &AlertsGate,
    ctx: &GateContext<'_>,
) -> Observation {
    let count = async {
        let query = query(gate, ctx)?;
        Ok::<_, AlertsError>(client.query(&query, ctx.at).await?)
    };
    match count.await {
        Ok(answer) => observation_of(Ok(answer)),
        Err(err) => Observation::Error(err.to_string()),
    }
}

/// The observation of an alerts gate from the answer to its [`query`]: the count, 0 when no
/// alert fires (never no data), or the error.
pub fn observation_of(answer: Result<Answer, QueryError>) -> Observation {
    match answer {
        Ok(Answer::Value(n)) => Observation::Value(n),
        Ok(Answer::Empty) => Observation::Value(0.0),
        Err(err) => Observation::Error(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn ctx() -> GateContext<'static> {
        GateContext {
            rollout: "checkout",
            namespace: "shop",
            flag: None,
            allowlist: &[],
            stage: 0,
            percent: crate::api::Percent::whole(1),
            at: Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn query_has_matchers_variables_and_ignores() {
        let gate = AlertsGate {
            matchers: vec![
                r#"severity="critical""#.into(),
                r#"namespace="{{namespace}}""#.into(),
            ],
            ignore: vec!["Watchdog".into(), r#"Odd"Name"#.into()],
            ..AlertsGate::default()
        };
        assert_eq!(
            query(&gate, &ctx()).unwrap(),
            r#"count(ALERTS{alertstate="firing", severity="critical", namespace="shop", alertname!="Watchdog", alertname!="Odd\"Name"})"#
        );
    }

    #[test]
    fn no_matchers_count_every_firing_alert() {
        assert_eq!(
            query(&AlertsGate::default(), &ctx()).unwrap(),
            r#"count(ALERTS{alertstate="firing"})"#
        );
    }

    #[test]
    fn bad_matchers_are_errors() {
        let gate = |m: &str| AlertsGate {
            matchers: vec![m.into()],
            ..AlertsGate::default()
        };
        assert!(matches!(
            query(&gate("severity=critical"), &ctx()),
            Err(AlertsError::Matcher(_))
        ));
        assert!(matches!(
            query(&gate(r#"alertstate="pending""#), &ctx()),
            Err(AlertsError::AlertState(_))
        ));
        assert!(matches!(
            query(&gate(r#"team="{{team}}""#), &ctx()),
            Err(AlertsError::Var(_))
        ));
    }
}
