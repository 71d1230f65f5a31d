//! WATCH: replays changes after a resourceVersion (410 Gone when they are no longer kept),
//! streams new ones, sends BOOKMARKs when asked, and ends after `timeoutSeconds`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::resources::Resource;
use super::select::Selector;
use super::store::{Change, Store};

/// What a watch asked for.
pub struct WatchRequest {
    /// The resource.
    pub resource: &'static Resource,
    /// Only this namespace, when given.
    pub namespace: Option<String>,
    /// Label and field selectors.
    pub selector: Selector,
    /// `resourceVersion` (None, `""` or `"0"`: start with the current objects).
    pub resource_version: Option<String>,
    /// `allowWatchBookmarks=true`.
    pub bookmarks: bool,
    /// `sendInitialEvents=true`.
    pub send_initial_events: bool,
    /// `timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// Answer with `PartialObjectMetadata` (metadata-only watch).
    pub metadata_only: bool,
}

/// How often a watch that allows bookmarks gets one.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

struct State {
    request: WatchRequest,
    pending: VecDeque<String>,
    changes: Option<broadcast::Receiver<Arc<Change>>>,
    last_rv: u64,
    deadline: Instant,
    next_bookmark: Instant,
}

/// The streaming body of a watch.
pub fn body(store: &Mutex<Store>, request: WatchRequest) -> Body {
    let mut pending = VecDeque::new();
    let (changes, last_rv) = {
        let store = store.lock().expect("store lock");
        let rv = store.rv();
        let start = request
            .resource_version
            .as_deref()
            .filter(|v| !v.is_empty() && *v != "0");
        let initial = start.is_none() || request.send_initial_events;
        let mut receiver = Some(store.subscribe());
        if initial {
            for (_, object) in store.list(request.resource, request.namespace.as_deref()) {
                if request.selector.matches(object) {
                    pending.push_back(line("ADDED", &shape(&request, object)));
                }
            }
            if request.send_initial_events {
                pending.push_back(bookmark(&request, rv, true));
            }
        } else {
            let from = start.and_then(|v| v.parse::<u64>().ok());
            match from.and_then(|from| store.since(from)) {
                Some(backlog) => {
                    for change in backlog {
                        if let Some(event) = event_line(&request, &change) {
                            pending.push_back(event);
                        }
                    }
                }
                None => {
                    pending.push_back(gone(start.unwrap_or_default(), store.oldest()));
                    receiver = None;
                }
            }
        }
        (receiver, rv)
    };
    let now = Instant::now();
    let deadline = now + request.timeout.unwrap_or(Duration::from_secs(1800));
    let state = State {
        request,
        pending,
        changes,
        last_rv,
        deadline,
        next_bookmark: now + BOOKMARK_EVERY,
    };
    Body::from_stream(stream::unfold(state, next))
}

async fn next(mut state: State) -> Option<(Result<Bytes, Infallible>, State)> {
    loop {
        if let Some(line) = state.pending.pop_front() {
            return Some((Ok(Bytes::from(line)), state));
        }
        let receiver = state.changes.as_mut()?;
        let wake = if state.request.bookmarks {
            state.deadline.min(state.next_bookmark)
        } else {
            state.deadline
        };
        tokio::select! {
            received = receiver.recv() => match received {
                Ok(change) => {
                    state.last_rv = change.rv;
                    if let Some(event) = event_line(&state.request, &change) {
                        state.pending.push_back(event);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    state.pending.push_back(gone(&state.last_rv.to_string(), state.last_rv + 1));
                    state.changes = None;
                }
                Err(RecvError::Closed) => state.changes = None,
            },
            () = tokio::time::sleep_until(wake) => {
                let now = Instant::now();
                if now >= state.deadline {
                    return None;
                }
                state.next_bookmark = now + BOOKMARK_EVERY;
                state.pending.push_back(bookmark(&state.request, state.last_rv, false));
            }
        }
    }
}

/// The event a change is for this watch: ADDED/MODIFIED/DELETED as seen through its
/// namespace and selector (an object leaving the selection is DELETED for it).
fn event_line(request: &WatchRequest, change: &Change) -> Option<String> {
    if !std::ptr::eq(change.resource, request.resource) {
        return None;
    }
    fn in_view<'a>(
        request: &WatchRequest,
        object: &'a Option<Arc<Value>>,
    ) -> Option<&'a Arc<Value>> {
        object.as_ref().filter(|o| {
            request
                .namespace
                .as_deref()
                .is_none_or(|ns| o["metadata"]["namespace"].as_str() == Some(ns))
                && request.selector.matches(o)
        })
    }
    let (kind, object) = match (in_view(request, &change.old), in_view(request, &change.new)) {
        (_, Some(new)) if change.old.is_none() => ("ADDED", (**new).clone()),
        (None, Some(new)) => ("ADDED", (**new).clone()),
        (Some(_), Some(new)) => ("MODIFIED", (**new).clone()),
        (Some(old), None) => {
            let mut last = change.new.as_deref().unwrap_or(old).clone();
            last["metadata"]["resourceVersion"] = json!(change.rv.to_string());
            ("DELETED", last)
        }
        (None, None) => return None,
    };
    Some(line(kind, &shape(request, &object)))
}

fn shape(request: &WatchRequest, object: &Value) -> Value {
    if request.metadata_only {
        json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": object["metadata"],
        })
    } else {
        object.clone()
    }
}

fn line(kind: &str, object: &Value) -> String {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    text
}

fn bookmark(request: &WatchRequest, rv: u64, initial_end: bool) -> String {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(
        "BOOKMARK",
        &json!({
            "apiVersion": request.resource.api_version(),
            "kind": request.resource.kind,
            "metadata": metadata,
        }),
    )
}

fn gone(requested: &str, oldest: u64) -> String {
    line(
        "ERROR",
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": format!("too old resource version: {requested} ({oldest})"),
            "reason": "Expired",
            "code": 410,
        }),
    )
}
