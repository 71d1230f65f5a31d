//! Reading the alerting rules Prometheus has loaded (`GET /api/v1/rules?type=alert`), for the
//! pre-check that an alerts gate's matchers select at least one rule: a typo in a matcher
//! would otherwise make the gate count nothing and pass forever.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::QueryError;
use super::answer::{envelope_data, snippet};
use crate::text::{self, REMOTE};

/// One alerting rule: its name (the `alertname` of the alerts it fires) and its labels.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct AlertingRule {
    /// The rule's name.
    pub name: String,
    /// The labels the rule attaches to its alerts.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl AlertingRule {
    /// The value of `label` on the alerts this rule fires (`alertname` is the rule's name); an
    /// absent label reads as empty, as in PromQL.
    pub fn label(&self, label: &str) -> &str {
        if label == "alertname" {
            return &self.name;
        }
        self.labels.get(label).map_or("", String::as_str)
    }
}

#[derive(Deserialize)]
struct Rules {
    #[serde(default)]
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The alerting rules of an answer to `/api/v1/rules`, or the error Prometheus reported.
pub fn parse_rules(status: u16, body: &[u8]) -> Result<Vec<AlertingRule>, QueryError> {
    let data = envelope_data(status, body)?;
    let rules: Rules = serde_json::from_value(data).map_err(|err| QueryError::NotJson {
        problem: format!("data.groups: {}", text::remote(&err.to_string(), REMOTE)),
        body: snippet(body),
    })?;
    Ok(rules
        .groups
        .into_iter()
        .flat_map(|g| g.rules)
        .filter(|r| r.kind == "alerting")
        .map(|r| AlertingRule {
            name: r.name,
            labels: r.labels,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerting_rules_are_read_and_recording_rules_skipped() {
        let body = br#"{"status":"success","data":{"groups":[
            {"name":"g","rules":[
                {"type":"alerting","name":"BackendDown","labels":{"severity":"critical"},"query":"up == 0"},
                {"type":"recording","name":"job:rate5m","query":"rate(x[5m])"}
            ]},
            {"name":"h","rules":[{"type":"alerting","name":"Slow"}]}
        ]}}"#;
        let rules = parse_rules(200, body).expect("reads");
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].name, "BackendDown");
        assert_eq!(rules[0].label("severity"), "critical");
        assert_eq!(rules[0].label("alertname"), "BackendDown");
        assert_eq!(rules[1].label("severity"), "");
    }

    #[test]
    fn bad_answers_are_errors_naming_the_place() {
        assert!(matches!(
            parse_rules(200, br#"{"status":"success","data":{"groups":7}}"#),
            Err(QueryError::NotJson { problem, .. }) if problem.starts_with("data.groups")
        ));
        assert!(matches!(
            parse_rules(200, b"<html>"),
            Err(QueryError::NotJson { .. })
        ));
        assert!(matches!(
            parse_rules(
                503,
                br#"{"status":"error","errorType":"unavailable","error":"down"}"#
            ),
            Err(QueryError::Api { status: 503, .. })
        ));
    }
}
