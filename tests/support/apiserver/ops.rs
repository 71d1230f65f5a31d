//! Reads and writes with the API server's rules: identity metadata, resourceVersion
//! preconditions, the status subresource, generation, field ownership, dry runs, no-op writes.

use std::sync::Arc;

use serde_json::{Value, json};

use super::error::ApiError;
use super::fields::Scope;
use super::managed::{self, Writer};
use super::patch::merge_patch;
use super::resources::{Resource, Target};
use super::store::{Store, key};

/// Options every write takes from the query string.
pub struct WriteOptions {
    /// `fieldManager` (default `unknown`, as for a client that names none).
    pub manager: String,
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `force=true` (server-side apply only).
    pub force: bool,
}

/// The result of a write: the object as stored (or as it would be) and whether it changed.
pub struct Written {
    /// The object.
    pub object: Arc<Value>,
    /// Whether the store changed.
    pub changed: bool,
    /// Whether it was created (201).
    pub created: bool,
}

/// The kind of PATCH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` or `application/strategic-merge-patch+json`.
    Merge,
    /// `application/apply-patch+yaml`.
    Apply,
}

fn scope(target: &Target) -> Scope {
    if target.subresource.is_some() {
        Scope::Status
    } else {
        Scope::Main {
            separate_status: target.resource.status_subresource,
        }
    }
}

fn what(resource: &Resource) -> String {
    if resource.group.is_empty() {
        resource.plural.to_owned()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// GET.
pub fn get(store: &Store, target: &Target, name: &str) -> Result<Arc<Value>, ApiError> {
    store
        .get(&key(target.resource, target.namespace.as_deref(), name))
        .ok_or_else(|| ApiError::not_found(&what(target.resource), name))
}

/// POST.
pub fn create(
    store: &mut Store,
    target: &Target,
    mut body: Value,
    options: &WriteOptions,
) -> Result<Written, ApiError> {
    check_type(target.resource, &body)?;
    let meta = &body["metadata"];
    let name = match (meta["name"].as_str(), meta["generateName"].as_str()) {
        (Some(name), _) if !name.is_empty() => name.to_owned(),
        (_, Some(prefix)) => format!("{prefix}{}", suffix(store.rv())),
        _ => {
            return Err(ApiError::invalid(
                "metadata.name: Required value: name is required",
            ));
        }
    };
    let key = key(target.resource, target.namespace.as_deref(), &name);
    if store.get(&key).is_some() {
        return Err(ApiError::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", what(target.resource)),
        ));
    }
    body["metadata"]["name"] = json!(name);
    let uid = store.uid();
    let object = finish(target, None, body, options, &uid)?;
    write(store, target, key, None, object, options)
}

/// PUT (object or status).
pub fn update(
    store: &mut Store,
    target: &Target,
    name: &str,
    body: Value,
    options: &WriteOptions,
) -> Result<Written, ApiError> {
    check_type(target.resource, &body)?;
    check_name(&body, name)?;
    let key = key(target.resource, target.namespace.as_deref(), name);
    let old = store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&what(target.resource), name))?;
    check_precondition(&old, &body, target.resource, name)?;
    let object = finish(target, Some(&old), body, options, "")?;
    write(store, target, key, Some(old), object, options)
}

/// PATCH: merge patch or server-side apply.
pub fn patch(
    store: &mut Store,
    target: &Target,
    name: &str,
    kind: PatchKind,
    body: Value,
    options: &WriteOptions,
) -> Result<Written, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the patch must be a JSON object"));
    }
    let key = key(target.resource, target.namespace.as_deref(), name);
    let old = store.get(&key);
    match kind {
        PatchKind::Merge => {
            let old = old.ok_or_else(|| ApiError::not_found(&what(target.resource), name))?;
            check_precondition(&old, &body, target.resource, name)?;
            let mut candidate = (*old).clone();
            merge_patch(&mut candidate, &body);
            check_type(target.resource, &candidate)?;
            let object = finish(target, Some(&old), candidate, options, "")?;
            write(store, target, key, Some(old), object, options)
        }
        PatchKind::Apply => {
            if options.manager == "unknown" {
                return Err(ApiError::bad_request(
                    "PATCH with apply requires a fieldManager",
                ));
            }
            check_type(target.resource, &body)?;
            if body["apiVersion"].is_null() || body["kind"].is_null() {
                return Err(ApiError::bad_request(
                    "apply requires apiVersion and kind in the body",
                ));
            }
            check_name(&body, name)?;
            let uid;
            let base = match &old {
                Some(old) => {
                    check_precondition(old, &body, target.resource, name)?;
                    (**old).clone()
                }
                None => {
                    if target.subresource.is_some() {
                        return Err(ApiError::not_found(&what(target.resource), name));
                    }
                    uid = store.uid();
                    let mut base = json!({"metadata": {"name": name, "uid": uid}});
                    if let Some(ns) = &target.namespace {
                        base["metadata"]["namespace"] = json!(ns);
                    }
                    base
                }
            };
            let time = now();
            let writer = Writer {
                manager: &options.manager,
                scope: scope(target),
                api_version: &target.resource.api_version(),
                now: &time,
            };
            let applied = managed::apply(&base, &body, &writer, options.force)
                .map_err(|conflicts| conflict_error(&conflicts))?;
            let object = identity(target, old.as_deref(), applied, "")?;
            write(store, target, key, old, object, options)
        }
    }
}

/// DELETE.
pub fn delete(
    store: &mut Store,
    target: &Target,
    name: &str,
    dry_run: bool,
) -> Result<Arc<Value>, ApiError> {
    let key = key(target.resource, target.namespace.as_deref(), name);
    let old = store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&what(target.resource), name))?;
    if !dry_run {
        store.commit(target.resource, key, None);
    }
    Ok(old)
}

fn conflict_error(conflicts: &[managed::Conflict]) -> ApiError {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            format!(
                "conflict with \"{}\": {}",
                c.manager,
                super::fields::dotted(&c.field)
            )
        })
        .collect();
    let count = conflicts.len();
    let noun = if count == 1 { "conflict" } else { "conflicts" };
    ApiError::new(
        409,
        "Conflict",
        format!("Apply failed with {count} {noun}: {}", lines.join("; ")),
    )
}

fn suffix(seed: u64) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = seed.wrapping_mul(2_654_435_761) ^ 0x9e37_79b9;
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn check_type(resource: &Resource, body: &Value) -> Result<(), ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let api_version = body["apiVersion"].as_str();
    let kind = body["kind"].as_str();
    if api_version.is_some_and(|v| v != resource.api_version())
        || kind.is_some_and(|k| k != resource.kind)
    {
        return Err(ApiError::bad_request(format!(
            "the body is {}/{}, the path addresses {}/{}",
            api_version.unwrap_or_default(),
            kind.unwrap_or_default(),
            resource.api_version(),
            resource.kind
        )));
    }
    Ok(())
}

fn check_name(body: &Value, name: &str) -> Result<(), ApiError> {
    match body["metadata"]["name"].as_str() {
        Some(n) if n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

fn check_precondition(
    old: &Value,
    body: &Value,
    resource: &Resource,
    name: &str,
) -> Result<(), ApiError> {
    match body["metadata"]["resourceVersion"].as_str() {
        Some(rv) if !rv.is_empty() && Some(rv) != old["metadata"]["resourceVersion"].as_str() => {
            Err(ApiError::stale(&what(resource), name))
        }
        _ => Ok(()),
    }
}

/// The object a PUT, merge patch or create leads to: scope rules, identity, ownership.
fn finish(
    target: &Target,
    old: Option<&Value>,
    candidate: Value,
    options: &WriteOptions,
    uid: &str,
) -> Result<Value, ApiError> {
    let scope = scope(target);
    let mut object = match (scope, old) {
        (Scope::Status, Some(old)) => {
            let mut object = old.clone();
            match candidate.get("status") {
                Some(status) => object["status"] = status.clone(),
                None => {
                    if let Some(map) = object.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            object
        }
        (
            Scope::Main {
                separate_status: true,
            },
            old,
        ) => {
            let mut object = candidate;
            match old.and_then(|o| o.get("status")) {
                Some(status) => object["status"] = status.clone(),
                None => {
                    if let Some(map) = object.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            object
        }
        (_, _) => candidate,
    };
    if let Some(old) = old {
        object["metadata"]["managedFields"] = old["metadata"]["managedFields"].clone();
    } else if let Some(meta) = object["metadata"].as_object_mut() {
        meta.remove("managedFields");
    }
    let time = now();
    let writer = Writer {
        manager: &options.manager,
        scope,
        api_version: &target.resource.api_version(),
        now: &time,
    };
    managed::record_update(old, &mut object, &writer);
    identity(target, old, object, uid)
}

/// Sets apiVersion, kind, namespace, uid, creationTimestamp, generation; keeps them from `old`.
fn identity(
    target: &Target,
    old: Option<&Value>,
    mut object: Value,
    uid: &str,
) -> Result<Value, ApiError> {
    let resource = target.resource;
    object["apiVersion"] = json!(resource.api_version());
    object["kind"] = json!(resource.kind);
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    match &target.namespace {
        Some(ns) => {
            if object["metadata"]["namespace"]
                .as_str()
                .is_some_and(|n| n != ns)
            {
                return Err(ApiError::bad_request(
                    "the namespace of the object does not match the namespace on the URL",
                ));
            }
            object["metadata"]["namespace"] = json!(ns);
        }
        None if resource.namespaced => {
            return Err(ApiError::bad_request(
                "a namespaced resource needs a namespace",
            ));
        }
        None => {}
    }
    let meta = &mut object["metadata"];
    match old {
        Some(old) => {
            for field in ["uid", "creationTimestamp", "resourceVersion", "generation"] {
                meta[field] = old["metadata"][field].clone();
            }
        }
        None => {
            if meta["uid"].as_str().is_none_or(str::is_empty) {
                meta["uid"] = json!(uid);
            }
            meta["creationTimestamp"] = json!(now());
            if let Some(m) = meta.as_object_mut() {
                m.remove("resourceVersion");
                m.remove("generation");
            }
        }
    }
    if resource.status_subresource {
        let generation = old
            .and_then(|o| o["metadata"]["generation"].as_i64())
            .unwrap_or(0);
        let spec_changed =
            old.is_none_or(|o| without_meta_and_status(o) != without_meta_and_status(&object));
        object["metadata"]["generation"] = json!(generation + i64::from(spec_changed));
    }
    if let Some(meta) = object["metadata"].as_object_mut() {
        meta.retain(|_, v| !v.is_null());
    }
    validate(resource, &object)?;
    Ok(object)
}

fn without_meta_and_status(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

/// The checks a real API server makes that matter to rollgate: ConfigMap data is strings, a
/// Rollout is a valid Rollout.
fn validate(resource: &Resource, object: &Value) -> Result<(), ApiError> {
    match resource.kind {
        "ConfigMap" => {
            if let Some(data) = object.get("data")
                && !data.is_null()
            {
                let ok = data
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string));
                if !ok {
                    return Err(ApiError::invalid("ConfigMap data: values must be strings"));
                }
            }
            Ok(())
        }
        "Rollout" => {
            let rollout: rollgate::api::Rollout = serde_json::from_value(object.clone())
                .map_err(|e| ApiError::invalid(format!("Rollout: {e}")))?;
            rollgate::api::validate_spec(&rollout.spec).map_err(|errors| {
                let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
                ApiError::invalid(format!("Rollout spec: {}", messages.join("; ")))
            })
        }
        _ => Ok(()),
    }
}

/// Stores the write unless it is a dry run or changes nothing.
fn write(
    store: &mut Store,
    target: &Target,
    key: super::store::Key,
    old: Option<Arc<Value>>,
    object: Value,
    options: &WriteOptions,
) -> Result<Written, ApiError> {
    let created = old.is_none();
    if let Some(old) = &old
        && **old == object
    {
        return Ok(Written {
            object: old.clone(),
            changed: false,
            created,
        });
    }
    if options.dry_run {
        return Ok(Written {
            object: Arc::new(object),
            changed: false,
            created,
        });
    }
    let stored = store
        .commit(target.resource, key, Some(object))
        .ok_or_else(|| ApiError::new(500, "InternalError", "store lost the object"))?;
    Ok(Written {
        object: stored,
        changed: true,
        created,
    })
}
