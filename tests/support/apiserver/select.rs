//! Label selectors (`a=b,c!=d,e in (f,g),h,!i`) and field selectors on `metadata.name` and
//! `metadata.namespace`, as LIST and WATCH take them.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug)]
enum LabelTerm {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

/// One requirement of a field selector.
#[derive(Debug)]
struct FieldTerm {
    field: String,
    value: String,
    negated: bool,
}

/// A parsed `labelSelector` and `fieldSelector`; the empty selector matches everything.
#[derive(Debug, Default)]
pub struct Selector {
    labels: Vec<LabelTerm>,
    fields: Vec<FieldTerm>,
}

impl Selector {
    /// Parses both selectors; an error names what was not understood.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, String> {
        let mut selector = Selector::default();
        for term in split_terms(labels.unwrap_or_default()) {
            selector.labels.push(parse_label_term(&term)?);
        }
        for term in split_terms(fields.unwrap_or_default()) {
            let (field, value, negated) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, false)
            } else {
                return Err(format!("invalid field selector term {term:?}"));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            selector.fields.push(FieldTerm {
                field: field.to_owned(),
                value: value.trim().to_owned(),
                negated,
            });
        }
        Ok(selector)
    }

    /// Whether `object` satisfies every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        let label = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|term| match term {
            LabelTerm::Equals(k, v) => label(k) == Some(v.as_str()),
            LabelTerm::NotEquals(k, v) => label(k) != Some(v.as_str()),
            LabelTerm::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelTerm::NotIn(k, vs) => label(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelTerm::Exists(k) => label(k).is_some(),
            LabelTerm::Absent(k) => label(k).is_none(),
        });
        let fields_ok = self.fields.iter().all(|term| {
            let pointer = format!("/{}", term.field.replace('.', "/"));
            let actual = object.pointer(&pointer).and_then(Value::as_str);
            (actual == Some(term.value.as_str())) != term.negated
        });
        labels_ok && fields_ok
    }
}

/// Splits at commas outside parentheses.
fn split_terms(text: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    terms.push(current);
    terms
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn parse_label_term(term: &str) -> Result<LabelTerm, String> {
    let set = |rest: &str| -> Result<Vec<String>, String> {
        let inner = rest
            .trim()
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| format!("invalid label selector set in {term:?}"))?;
        Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
    };
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelTerm::NotEquals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(LabelTerm::Equals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(LabelTerm::Equals(k.trim().into(), v.trim().into()));
    }
    if let Some((k, rest)) = term.split_once(" notin ") {
        return Ok(LabelTerm::NotIn(k.trim().into(), set(rest)?));
    }
    if let Some((k, rest)) = term.split_once(" in ") {
        return Ok(LabelTerm::In(k.trim().into(), set(rest)?));
    }
    if let Some(k) = term.strip_prefix('!') {
        return Ok(LabelTerm::Absent(k.trim().into()));
    }
    if term.contains(|c: char| c.is_whitespace() || "()<>".contains(c)) {
        return Err(format!("invalid label selector term {term:?}"));
    }
    Ok(LabelTerm::Exists(term.into()))
}
