//! The gate rules only Rust can check, run when a plan is loaded so that a mistake is refused
//! with the field named instead of surfacing as a gate error at every checkpoint: query
//! variables, alert matchers, addresses that parse as URLs, JSONPath expressions, header names,
//! and connection settings that need the gate's own address.

use serde_json_path::JsonPath;

use super::gate::{Gate, PrometheusConnection};
use super::matcher::Matcher;
use super::query_vars::{check_compare_query, check_query, check_text};
use super::spec::RolloutSpec;
use super::validate::SpecError;

/// Checks every gate of `spec`; each problem names its field.
pub fn check_gates(spec: &RolloutSpec) -> Vec<SpecError> {
    let has_flag = spec.target.flag_name().is_some();
    let mut errors = Vec::new();
    for (i, gate) in spec.analysis.gates.iter().enumerate() {
        let field = format!("spec.analysis.gates[{i}]");
        check_gate(&field, gate, has_flag, &mut errors);
    }
    errors
}

fn check_gate(field: &str, gate: &Gate, has_flag: bool, errors: &mut Vec<SpecError>) {
    let mut push = |path: String, problem: String| {
        errors.push(SpecError {
            field: path,
            problem,
        })
    };
    if let Some(p) = &gate.prometheus {
        let field = format!("{field}.prometheus");
        if let Err(e) = check_query(&p.query, has_flag) {
            push(format!("{field}.query"), e.to_string());
        }
        if let Some(sample) = &p.sample_query
            && let Err(e) = check_query(sample, has_flag)
        {
            push(format!("{field}.sampleQuery"), e.to_string());
        }
        check_connection(&p.connection, &field, &mut push);
    }
    if let Some(a) = &gate.alerts {
        let field = format!("{field}.alerts");
        for (j, text) in a.matchers.iter().enumerate() {
            let at = format!("{field}.matchers[{j}]");
            match Matcher::parse(text) {
                Err(e) => push(at, e.to_string()),
                Ok(m) if m.label == "alertstate" => push(
                    at,
                    "selects alertstate, which the gate sets to \"firing\" itself".into(),
                ),
                Ok(m) => {
                    if let Err(e) = check_text(&m.value, has_flag) {
                        push(at, e.to_string());
                    }
                }
            }
        }
        check_connection(&a.connection, &field, &mut push);
    }
    if let Some(c) = &gate.compare {
        let field = format!("{field}.compare");
        for (name, query) in [("units", &c.units), ("events", &c.events)] {
            if let Err(e) = check_compare_query(query, has_flag) {
                push(format!("{field}.{name}"), e.to_string());
            }
        }
        check_connection(&c.connection, &field, &mut push);
    }
    if let Some(o) = &gate.ofrep
        && let Some(problem) = url_problem(&o.address)
    {
        push(format!("{field}.ofrep.address"), problem);
    }
    if let Some(h) = &gate.http {
        if let Some(problem) = url_problem(&h.url) {
            push(format!("{field}.http.url"), problem);
        }
        // validate_spec already refuses a path that does not start with `$`.
        if h.json_path.starts_with('$')
            && let Err(e) = JsonPath::parse(&h.json_path)
        {
            push(
                format!("{field}.http.jsonPath"),
                format!("{:?} is not RFC 9535 JSONPath: {e}", h.json_path),
            );
        }
    }
}

/// Checks a Prometheus, alerts or compare gate's connection fields.
fn check_connection(
    connection: &PrometheusConnection,
    field: &str,
    push: &mut impl FnMut(String, String),
) {
    if let Some(address) = connection.address.as_deref()
        && let Some(problem) = url_problem(address)
    {
        push(format!("{field}.address"), problem);
    }
    if let Some(secret) = &connection.secret_ref
        && !super::limits::is_object_name(&secret.name)
    {
        push(
            format!("{field}.secretRef.name"),
            format!(
                "{:?} is not a Kubernetes object name: at most {} lowercase letters, digits, \
                     '-' and '.', starting and ending with a letter or digit",
                secret.name,
                super::limits::MAX_OBJECT_NAME
            ),
        );
    }
    for (name, value) in &connection.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            push(
                format!("{field}.headers"),
                format!("{name:?} is not a valid HTTP header name"),
            );
        } else if http::HeaderValue::from_str(value).is_err() {
            push(
                format!("{field}.headers.{name}"),
                "is not a valid HTTP header value (control characters or non-ASCII)".into(),
            );
        }
    }
    if connection.address.is_none() {
        let own = [
            (!connection.headers.is_empty(), "headers"),
            (connection.secret_ref.is_some(), "secretRef"),
            (connection.insecure_skip_verify, "insecureSkipVerify"),
        ];
        for (_, name) in own.iter().filter(|(set, _)| *set) {
            push(
                format!("{field}.{name}"),
                format!(
                    "{name} applies only to the gate's own Prometheus: set {field}.address \
                         too (the controller's default Prometheus is only ever called with its \
                         own credentials and TLS settings)"
                ),
            );
        }
    }
}

/// Why `address` is not a usable http(s) URL, if it is not. An address that does not even
/// start with `http://` or `https://` is left to `validate_spec`'s own rule.
pub(crate) fn url_problem(address: &str) -> Option<String> {
    if !(address.starts_with("http://") || address.starts_with("https://")) {
        return None;
    }
    match reqwest::Url::parse(address) {
        Err(e) => Some(format!("{address:?} is not a URL: {e}")),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            Some(format!("{address:?} must start with http:// or https://"))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            Some(format!("{address:?} names no host"))
        }
        Ok(url) if !url.username().is_empty() || url.password().is_some() => Some(format!(
            "{:?} carries credentials in the URL; put them in the gate's secretRef",
            redact_userinfo(&url)
        )),
        Ok(_) => None,
    }
}

fn redact_userinfo(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("***");
    let _ = url.set_password(None);
    url.to_string()
}
