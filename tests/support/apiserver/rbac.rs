//! Impersonation and a small RBAC table. A request with `Impersonate-User` is checked twice,
//! as the real API server does: may the caller impersonate that user (a ServiceAccount), and
//! may the impersonated user make this request (verb, resource, namespace, name)? Requests
//! without the header are the controller's own and are always allowed (as before).

use std::collections::HashMap;

use axum::http::{HeaderMap, Method};
use serde_json::{Value, json};

use super::resources::Target;

/// One allowed request: `verb` on `resource` (plural), in `namespace` (any when `None`),
/// named `name` (any when `None`).
#[derive(Clone, Debug)]
pub struct Rule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
    /// Plural (`configmaps`).
    pub resource: String,
    /// Namespace, or any.
    pub namespace: Option<String>,
    /// Object name, or any.
    pub name: Option<String>,
}

/// Who may do what, for impersonated users.
#[derive(Debug, Default)]
pub struct Rbac {
    /// Rules per user (`system:serviceaccount:NS:NAME`).
    pub users: HashMap<String, Vec<Rule>>,
    /// The controller may not impersonate anyone.
    pub impersonation_denied: bool,
}

/// The impersonation headers of a request: the user, and any groups asked for.
pub fn impersonation(headers: &HeaderMap) -> (Option<String>, Vec<String>) {
    let user = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let groups = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    (user, groups)
}

/// The RBAC verb of a request.
pub fn verb_of(method: &Method, target: &Target, watch: bool) -> &'static str {
    match (method.as_str(), target.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", _) => "delete",
        _ => "unknown",
    }
}

impl Rbac {
    /// `None` when `user` may make the request; otherwise the 403 `Status` to answer.
    pub fn check(&self, user: &str, verb: &str, target: &Target) -> Option<Value> {
        let namespace = target.namespace.as_deref().unwrap_or_default();
        if self.impersonation_denied {
            let account = user.rsplit(':').next().unwrap_or(user);
            return Some(forbidden(
                "serviceaccounts",
                "",
                account,
                "tester",
                "impersonate",
                namespace,
            ));
        }
        let resource = target.resource.plural;
        let name = target.name.as_deref();
        let allowed = self.users.get(user).is_some_and(|rules| {
            rules.iter().any(|rule| {
                rule.verb == verb
                    && rule.resource == resource
                    && rule.namespace.as_deref().is_none_or(|ns| ns == namespace)
                    && rule.name.as_deref().is_none_or(|n| Some(n) == name)
            })
        });
        if allowed {
            None
        } else {
            Some(forbidden(
                resource,
                target.resource.group,
                name.unwrap_or_default(),
                user,
                verb,
                namespace,
            ))
        }
    }
}

/// A 403 `Status` worded as the API server words it.
fn forbidden(
    resource: &str,
    group: &str,
    name: &str,
    user: &str,
    verb: &str,
    namespace: &str,
) -> Value {
    let subject = if name.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource} \"{name}\"")
    };
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" in the namespace \"{namespace}\""
        ),
        "reason": "Forbidden",
        "details": {"name": name, "kind": resource},
        "code": 403,
    })
}
