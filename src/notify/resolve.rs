//! Turns a Rollout's `spec.notifications` into endpoints, reading each URL from its Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::endpoint::{Endpoint, EndpointError, EndpointKind};
use crate::api::{NotificationSpec, SecretKeyRef};

/// Reads the URL of each of `specs` from its Secret (`get` only: Secrets are never listed or
/// watched; a Secret named twice is read once) and returns the endpoints that could be made
/// and, separately, an error for each that could not, naming the field
/// (`spec.notifications[1].slack.urlSecretRef`) and the problem, never the URL.
pub async fn endpoints_from_spec(
    secrets: &Api<Secret>,
    specs: &[NotificationSpec],
) -> (Vec<Endpoint>, Vec<EndpointError>) {
    let mut read: BTreeMap<String, Result<Option<Secret>, String>> = BTreeMap::new();
    let mut endpoints = Vec::new();
    let mut errors = Vec::new();
    for (index, spec) in specs.iter().enumerate() {
        let (kind, reference) = match (&spec.webhook, &spec.slack) {
            (Some(w), None) => (EndpointKind::Webhook, &w.url_secret_ref),
            (None, Some(s)) => (EndpointKind::Slack, &s.url_secret_ref),
            _ => {
                errors.push(EndpointError::Secret {
                    label: format!("spec.notifications[{index}]"),
                    problem: "set exactly one of webhook and slack".to_owned(),
                });
                continue;
            }
        };
        let label = format!("spec.notifications[{index}].{}", kind.as_str());
        let field = format!("{label}.urlSecretRef");
        if !read.contains_key(&reference.name) {
            let secret = secrets
                .get_opt(&reference.name)
                .await
                .map_err(|e| e.to_string());
            read.insert(reference.name.clone(), secret);
        }
        let url = match read.get(&reference.name) {
            Some(Ok(Some(secret))) => value_of(secret, reference),
            Some(Ok(None)) => Err(format!("Secret {:?} not found", reference.name)),
            Some(Err(error)) => Err(format!(
                "reading Secret {:?} failed: {error}",
                reference.name
            )),
            None => Err(format!("Secret {:?} was not read", reference.name)),
        };
        match url.map(|url| Endpoint::new(kind, &url, label)) {
            Ok(Ok(endpoint)) => endpoints.push(endpoint.with_filter(spec.when.clone())),
            Ok(Err(EndpointError::NotHttp { .. })) => errors.push(EndpointError::NotHttp {
                label: format!(
                    "{field} (Secret {:?}, key {:?})",
                    reference.name, reference.key
                ),
            }),
            Ok(Err(other)) => errors.push(other),
            Err(problem) => errors.push(EndpointError::Secret {
                label: field,
                problem,
            }),
        }
    }
    (endpoints, errors)
}

/// The text of the referenced key (`data` or `stringData`), or why there is none.
fn value_of(secret: &Secret, reference: &SecretKeyRef) -> Result<String, String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&reference.key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| format!("Secret {:?} has no key {:?}", reference.name, reference.key))?;
    String::from_utf8(bytes).map_err(|_| {
        format!(
            "Secret {:?} key {:?} is not UTF-8 text",
            reference.name, reference.key
        )
    })
}
