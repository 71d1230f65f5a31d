//! Whether an alerts gate's matchers select any alerting rule Prometheus knows: the
//! controller's pre-check, so a misspelt label or value cannot make the gate count no alert,
//! and pass, forever.

use regex::Regex;

use super::{AlertsError, Matcher, Op, matchers};
use crate::api::AlertsGate;
use crate::gates::GateContext;
use crate::gates::prometheus::{AlertingRule, PrometheusClient};

/// A matcher ready to test label values: PromQL regexes match the whole value.
enum Test {
    Equal(String),
    NotEqual(String),
    Matches(Regex),
    NotMatches(Regex),
}

impl Test {
    fn of(matcher: &Matcher) -> Result<Self, AlertsError> {
        let regex = || {
            Regex::new(&format!("^(?:{})$", matcher.value)).map_err(|e| AlertsError::Regex {
                label: matcher.label.clone(),
                value: matcher.value.clone(),
                problem: e.to_string(),
            })
        };
        Ok(match matcher.op {
            Op::Eq => Test::Equal(matcher.value.clone()),
            Op::Ne => Test::NotEqual(matcher.value.clone()),
            Op::Re => Test::Matches(regex()?),
            Op::NotRe => Test::NotMatches(regex()?),
        })
    }

    fn accepts(&self, value: &str) -> bool {
        match self {
            Test::Equal(v) => value == v,
            Test::NotEqual(v) => value != v,
            Test::Matches(re) => re.is_match(value),
            Test::NotMatches(re) => !re.is_match(value),
        }
    }
}

/// The names of the rules in `rules` whose alerts the gate would count: every matcher accepts
/// the rule's labels (its `alertname` is the rule's name) and the rule is not ignored.
pub fn selected_rules<'r>(
    gate: &AlertsGate,
    ctx: &GateContext<'_>,
    rules: &'r [AlertingRule],
) -> Result<Vec<&'r str>, AlertsError> {
    let tests: Vec<(String, Test)> = matchers(gate, ctx)?
        .iter()
        .map(|m| Test::of(m).map(|t| (m.label.clone(), t)))
        .collect::<Result<_, _>>()?;
    Ok(rules
        .iter()
        .filter(|rule| !gate.ignore.contains(&rule.name))
        .filter(|rule| tests.iter().all(|(label, t)| t.accepts(rule.label(label))))
        .map(|rule| rule.name.as_str())
        .collect())
}

/// Asks Prometheus for its alerting rules and tells whether the gate selects at least one:
/// `Ok(())`, or a message for the pre-check that says what to fix.
pub async fn known_rules(
    client: &PrometheusClient,
    gate: &AlertsGate,
    ctx: &GateContext<'_>,
) -> Result<(), String> {
    let rules = client
        .alerting_rules()
        .await
        .map_err(|e| format!("cannot list Prometheus' alerting rules: {e}"))?;
    let selected = selected_rules(gate, ctx, &rules).map_err(|e| e.to_string())?;
    if selected.is_empty() {
        return Err(format!(
            "its matchers select none of the {} alerting rules Prometheus at {} knows: check the \
             label names and values, or the gate would count no alert and pass forever",
            rules.len(),
            client.address()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn rule(name: &str, labels: &[(&str, &str)]) -> AlertingRule {
        AlertingRule {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn ctx() -> GateContext<'static> {
        GateContext {
            rollout: "r",
            namespace: "ns",
            flag: Some("f"),
            allowlist: &[],
            stage: 0,
            percent: crate::api::Percent::whole(1),
            at: Timestamp::UNIX_EPOCH,
        }
    }

    fn gate(matchers: &[&str], ignore: &[&str]) -> AlertsGate {
        AlertsGate {
            matchers: matchers.iter().map(|m| (*m).to_owned()).collect(),
            ignore: ignore.iter().map(|m| (*m).to_owned()).collect(),
            ..AlertsGate::default()
        }
    }

    fn rules() -> Vec<AlertingRule> {
        vec![
            rule(
                "BackendDown",
                &[("severity", "critical"), ("team", "kaviar")],
            ),
            rule("BackendSlow", &[("severity", "warning")]),
            rule("DiskFull", &[("severity", "critical")]),
        ]
    }

    fn names(matchers: &[&str], ignore: &[&str]) -> Vec<String> {
        let rules = rules();
        selected_rules(&gate(matchers, ignore), &ctx(), &rules)
            .expect("valid matchers")
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn each_operator_selects_as_promql_does() {
        assert_eq!(
            names(&[r#"severity="critical""#], &[]),
            ["BackendDown", "DiskFull"]
        );
        assert_eq!(names(&[r#"severity!="critical""#], &[]), ["BackendSlow"]);
        assert_eq!(
            names(&[r#"alertname=~"Backend.*""#], &[]),
            ["BackendDown", "BackendSlow"]
        );
        assert_eq!(names(&[r#"alertname!~"Backend.*""#], &[]), ["DiskFull"]);
        assert_eq!(
            names(&[r#"severity="critical""#, r#"team="kaviar""#], &[]),
            ["BackendDown"]
        );
        assert_eq!(names(&[], &[]).len(), 3);
    }

    #[test]
    fn regexes_match_the_whole_value_and_absent_labels_are_empty() {
        assert!(names(&[r#"severity=~"crit""#], &[]).is_empty());
        assert_eq!(names(&[r#"team=~"""#], &[]), ["BackendSlow", "DiskFull"]);
        assert_eq!(names(&[r#"team="""#], &[]), ["BackendSlow", "DiskFull"]);
    }

    #[test]
    fn a_typo_or_an_ignored_rule_selects_nothing() {
        assert!(names(&[r#"severity="crtical""#], &[]).is_empty());
        assert!(names(&[r#"sevrity="critical""#], &[]).is_empty());
        assert_eq!(
            names(&[r#"severity="critical""#], &["DiskFull"]),
            ["BackendDown"]
        );
        assert!(names(&[r#"alertname="DiskFull""#], &["DiskFull"]).is_empty());
    }

    #[test]
    fn a_bad_regex_is_an_error_naming_the_label() {
        let rules = rules();
        let err =
            selected_rules(&gate(&[r#"severity=~"(""#], &[]), &ctx(), &rules).expect_err("refused");
        assert!(err.to_string().contains("severity"), "{err}");
    }
}
