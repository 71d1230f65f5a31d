//! `/version`, `/api`, `/apis` and per-group resource lists, built from what is served.

use serde_json::{Value, json};

use super::resources::SERVED;

/// The discovery document at `path`, if it is one.
pub fn answer(path: &str) -> Option<Value> {
    let path = path.trim_end_matches('/');
    match path {
        "/version" => Some(json!({
            "major": "1", "minor": "34", "gitVersion": "v1.34.0-rollgate-stand-in",
            "platform": "linux/amd64"
        })),
        "/api" => Some(
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        ),
        "/apis" => {
            let mut groups: Vec<Value> = Vec::new();
            for r in SERVED.iter().filter(|r| !r.group.is_empty()) {
                if !groups.iter().any(|g| g["name"] == r.group) {
                    let version = json!({"groupVersion": r.api_version(), "version": r.version});
                    groups.push(json!({"name": r.group, "versions": [version], "preferredVersion": version}));
                }
            }
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        _ => {
            let group_version = path
                .strip_prefix("/apis/")
                .or_else(|| path.strip_prefix("/api/"))?;
            let resources: Vec<Value> = SERVED
                .iter()
                .filter(|r| r.api_version() == group_version)
                .flat_map(|r| {
                    let main = json!({
                        "name": r.plural, "singularName": r.kind.to_lowercase(), "namespaced": r.namespaced, "kind": r.kind,
                        "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]
                    });
                    let status = r.status_subresource.then(|| json!({
                        "name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": ["get", "patch", "update"]
                    }));
                    std::iter::once(main).chain(status)
                })
                .collect();
            (!resources.is_empty()).then(|| {
                json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
            })
        }
    }
}
