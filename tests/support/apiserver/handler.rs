//! Turns an HTTP request into a store operation and answers it; logs every request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::discovery;
use super::error::ApiError;
use super::log::{Logged, Verb};
use super::ops::{self, PatchKind, WriteOptions};
use super::rbac;
use super::resources::{PathError, Target, parse_path};
use super::select::Selector;
use super::store::Store;
use super::watch::{self, WatchRequest};

/// State shared by every request.
pub struct Shared {
    /// The objects.
    pub store: Mutex<Store>,
    /// Every request answered.
    pub log: Mutex<Vec<Logged>>,
    /// Requests the stand-in does not understand (method and path).
    pub unknown: Mutex<Vec<String>>,
    /// Who may do what when a request impersonates a user.
    pub rbac: Mutex<rbac::Rbac>,
    /// For each request of `log`, in the same order: whether it asked for metadata only
    /// (`Accept: …;as=PartialObjectMetadata…`).
    pub metadata_only: Mutex<Vec<bool>>,
    /// Namespaces whose LIST and WATCH requests wait (unanswered) until released, to show
    /// what a client does while one namespace's caches have not synced.
    pub held: Mutex<Vec<String>>,
}

/// The single handler behind every path.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query: HashMap<String, String> = Query::try_from_uri(&uri)
        .map(|Query(q)| q)
        .unwrap_or_default();
    let path = uri.path().to_owned();
    let mut entry = Logged {
        at: Instant::now(),
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or_default().to_owned(),
        verb: Verb::Other,
        plural: None,
        namespace: None,
        name: None,
        subresource: None,
        dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
        field_manager: query.get("fieldManager").cloned(),
        body: None,
        status: 200,
        changed: false,
        impersonated: None,
        impersonated_groups: Vec::new(),
    };
    let (impersonated, groups) = rbac::impersonation(&headers);
    entry.impersonated = impersonated.clone();
    entry.impersonated_groups = groups;
    let response = match parse_path(&path) {
        Ok(target) => {
            if method == Method::GET && target.name.is_none() {
                hold(&shared, target.namespace.as_deref()).await;
            }
            entry.plural = Some(target.resource.plural.to_owned());
            entry.namespace = target.namespace.clone();
            entry.name = target.name.clone();
            entry.subresource = target.subresource.clone();
            let verb = rbac::verb_of(&method, &target, is_true(query.get("watch")));
            let refusal = impersonated.as_deref().and_then(|user| {
                let table = shared.rbac.lock().expect("rbac lock");
                table.check(user, verb, &target)
            });
            match refusal {
                Some(status) => {
                    entry.verb = match verb {
                        "get" => Verb::Get,
                        "list" => Verb::List,
                        "watch" => Verb::Watch,
                        "create" => Verb::Create,
                        "update" => Verb::Update,
                        "patch" => Verb::Patch,
                        "delete" => Verb::Delete,
                        _ => Verb::Other,
                    };
                    json_response(StatusCode::FORBIDDEN, &status)
                }
                None => resource_request(
                    &shared, &target, &method, &query, &headers, &body, &mut entry,
                ),
            }
        }
        Err(PathError::NotServed(what)) => {
            loud(
                &shared,
                &format!("{method} {path}: resource {what} is not served (404)"),
            );
            error(&ApiError::new(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({what})"),
            ))
        }
        Err(PathError::Unknown) => match discovery::answer(&path) {
            Some(document) => json_response(StatusCode::OK, &document),
            None => {
                loud(&shared, &format!("{method} {path}: unknown request (404)"));
                error(&ApiError::new(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                ))
            }
        },
    };
    entry.status = response.status().as_u16();
    let metadata_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
    if let Ok(mut log) = shared.log.lock() {
        log.push(entry);
        if let Ok(mut marks) = shared.metadata_only.lock() {
            marks.push(metadata_only);
        }
    }
    response
}

/// Waits while `namespace` is held (see [`Shared::held`]).
async fn hold(shared: &Shared, namespace: Option<&str>) {
    let Some(namespace) = namespace else { return };
    while shared
        .held
        .lock()
        .expect("held lock")
        .iter()
        .any(|n| n == namespace)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn loud(shared: &Shared, message: &str) {
    eprintln!("!!! stand-in API server: {message}");
    if let Ok(mut unknown) = shared.unknown.lock() {
        unknown.push(message.to_owned());
    }
}

fn resource_request(
    shared: &Shared,
    target: &Target,
    method: &Method,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
    entry: &mut Logged,
) -> Response {
    let metadata_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
    let options = WriteOptions {
        manager: query
            .get("fieldManager")
            .cloned()
            .unwrap_or_else(|| "unknown".to_owned()),
        dry_run: entry.dry_run,
        force: query.get("force").is_some_and(|v| v == "true"),
    };
    let name = target.name.as_deref();
    match (method.as_str(), name) {
        ("GET", Some(name)) => {
            entry.verb = Verb::Get;
            let store = shared.store.lock().expect("store lock");
            answer(
                ops::get(&store, target, name).map(|o| shape(&o, metadata_only)),
                StatusCode::OK,
            )
        }
        ("GET", None) if is_true(query.get("watch")) => {
            entry.verb = Verb::Watch;
            let selector = match selector(query) {
                Ok(s) => s,
                Err(e) => return error(&e),
            };
            let request = WatchRequest {
                resource: target.resource,
                namespace: target.namespace.clone(),
                selector,
                resource_version: query.get("resourceVersion").cloned(),
                bookmarks: is_true(query.get("allowWatchBookmarks")),
                send_initial_events: is_true(query.get("sendInitialEvents")),
                timeout: query
                    .get("timeoutSeconds")
                    .and_then(|t| t.parse().ok())
                    .map(Duration::from_secs),
                metadata_only,
            };
            let body = watch::body(&shared.store, request);
            Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body)
                .expect("watch response")
        }
        ("GET", None) => {
            entry.verb = Verb::List;
            match selector(query) {
                Ok(selector) => list(shared, target, &selector, query, metadata_only),
                Err(e) => error(&e),
            }
        }
        ("POST", None) => {
            entry.verb = Verb::Create;
            with_body(body, entry, |body| {
                let mut store = shared.store.lock().expect("store lock");
                ops::create(&mut store, target, body, &options)
            })
        }
        ("PUT", Some(name)) => {
            entry.verb = Verb::Update;
            with_body(body, entry, |body| {
                let mut store = shared.store.lock().expect("store lock");
                ops::update(&mut store, target, name, body, &options)
            })
        }
        ("PATCH", Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let kind = match content_type {
                "application/apply-patch+yaml" => PatchKind::Apply,
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    PatchKind::Merge
                }
                other => {
                    entry.verb = Verb::Patch;
                    return error(&ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        format!("the stand-in does not support patch type {other:?}"),
                    ));
                }
            };
            entry.verb = if kind == PatchKind::Apply {
                Verb::Apply
            } else {
                Verb::Patch
            };
            with_body(body, entry, |body| {
                let mut store = shared.store.lock().expect("store lock");
                ops::patch(&mut store, target, name, kind, body, &options)
            })
        }
        ("DELETE", Some(name)) => {
            entry.verb = Verb::Delete;
            let mut store = shared.store.lock().expect("store lock");
            let result = ops::delete(&mut store, target, name, options.dry_run);
            entry.changed = result.is_ok() && !options.dry_run;
            answer(result.map(|o| (*o).clone()), StatusCode::OK)
        }
        _ => {
            loud(
                shared,
                &format!("{method} {}: method not supported (405)", entry.path),
            );
            error(&ApiError::new(
                405,
                "MethodNotAllowed",
                "method not supported",
            ))
        }
    }
}

fn with_body(
    body: &Bytes,
    entry: &mut Logged,
    write: impl FnOnce(Value) -> Result<ops::Written, ApiError>,
) -> Response {
    let parsed: Result<Value, String> = serde_json::from_slice(body).or_else(|json_error| {
        std::str::from_utf8(body)
            .map_err(|e| e.to_string())
            .and_then(|text| serde_saphyr::from_str(text).map_err(|e| e.to_string()))
            .map_err(|yaml_error| format!("{json_error}; as YAML: {yaml_error}"))
    });
    let body = match parsed {
        Ok(body) => body,
        Err(e) => {
            return error(&ApiError::bad_request(format!(
                "cannot decode the body: {e}"
            )));
        }
    };
    entry.body = Some(body.clone());
    match write(body) {
        Ok(written) => {
            entry.changed = written.changed;
            let status = if written.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            json_response(status, &*written.object)
        }
        Err(e) => error(&e),
    }
}

fn list(
    shared: &Shared,
    target: &Target,
    selector: &Selector,
    query: &HashMap<String, String>,
    metadata_only: bool,
) -> Response {
    let store = shared.store.lock().expect("store lock");
    let skip: usize = query
        .get("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let mut matching = store
        .list(target.resource, target.namespace.as_deref())
        .filter(|(_, o)| selector.matches(o))
        .skip(skip);
    let items: Vec<Value> = matching
        .by_ref()
        .take(limit)
        .map(|(_, o)| shape(o, metadata_only))
        .collect();
    let more = matching.next().is_some();
    let mut metadata = json!({"resourceVersion": store.rv().to_string()});
    if more {
        metadata["continue"] = json!((skip + items.len()).to_string());
    }
    let (api_version, kind) = if metadata_only {
        (
            "meta.k8s.io/v1".to_owned(),
            "PartialObjectMetadataList".to_owned(),
        )
    } else {
        (
            target.resource.api_version(),
            format!("{}List", target.resource.kind),
        )
    };
    json_response(
        StatusCode::OK,
        &json!({"apiVersion": api_version, "kind": kind, "metadata": metadata, "items": items}),
    )
}

fn selector(query: &HashMap<String, String>) -> Result<Selector, ApiError> {
    Selector::parse(
        query.get("labelSelector").map(String::as_str),
        query.get("fieldSelector").map(String::as_str),
    )
    .map_err(ApiError::bad_request)
}

fn shape(object: &Value, metadata_only: bool) -> Value {
    if metadata_only {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": object["metadata"]})
    } else {
        object.clone()
    }
}

fn is_true(value: Option<&String>) -> bool {
    value.is_some_and(|v| v == "true" || v == "1")
}

fn answer<T: serde::Serialize>(result: Result<T, ApiError>, ok: StatusCode) -> Response {
    match result {
        Ok(value) => json_response(ok, &value),
        Err(e) => error(&e),
    }
}

fn error(e: &ApiError) -> Response {
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}

fn json_response<T: serde::Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}
