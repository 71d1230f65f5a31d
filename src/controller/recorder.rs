//! The event recorder: kube-runtime's `Recorder` (events.k8s.io/v1, repeats folded into a
//! series), with a compact cache.
//!
//! kube-runtime's recorder keeps every Event it published in the last 6 minutes as a whole
//! `Event` object keyed by a whole copy of its key: about 2.5 KiB per Rollout once 10,000 have
//! started, some 25 MiB (issue 11, "Measured"). This one publishes the same requests — a POST
//! for a new event, a merge PATCH of the cached event with its `series` for a repeat within 6
//! minutes — and keeps per cached event a 64-bit digest of its key, the time it was last
//! observed and the event as compact JSON.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// How long a published event is remembered to fold a repeat into its series (as
/// kube-runtime's recorder does).
const CACHE_TTL: SignedDuration = SignedDuration::from_mins(6);

/// One remembered event.
struct Cached {
    /// When it was last published (its `series.lastObservedTime`, or its `eventTime`).
    last: Timestamp,
    /// The event as published, JSON.
    event: Box<str>,
}

/// Publishes Events for the controller; clones share the cache.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    reporter: Reporter,
    cache: Arc<Mutex<HashMap<u64, Cached>>>,
}

impl Recorder {
    /// A recorder that publishes through `client` as `reporter`.
    pub fn new(client: kube::Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            cache: Arc::default(),
        }
    }

    /// How many events are remembered for folding repeats.
    pub fn cached(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Cached>> {
        // The cache only folds repeats; a poisoned one is still a sound map.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The digest of what makes two events the same (kube-runtime's `EventKey`).
    fn key(&self, ev: &Event, regarding: &ObjectReference) -> u64 {
        let mut hasher = DefaultHasher::new();
        matches!(ev.type_, EventType::Warning).hash(&mut hasher);
        ev.action.hash(&mut hasher);
        ev.reason.hash(&mut hasher);
        self.reporter.controller.hash(&mut hasher);
        self.reporter.instance.hash(&mut hasher);
        hash_reference(Some(regarding), &mut hasher);
        hash_reference(ev.secondary.as_ref(), &mut hasher);
        hasher.finish()
    }

    /// Whether `cached` is the event `ev` about `regarding` (a digest collision is not).
    fn same(&self, cached: &K8sEvent, ev: &Event, regarding: &ObjectReference) -> bool {
        cached.reason.as_deref() == Some(ev.reason.as_str())
            && cached.action.as_deref() == Some(ev.action.as_str())
            && cached.type_.as_deref() == Some(type_name(ev.type_))
            && cached.reporting_controller.as_deref() == Some(self.reporter.controller.as_str())
            && same_reference(cached.regarding.as_ref(), Some(regarding))
            && same_reference(cached.related.as_ref(), ev.secondary.as_ref())
    }

    fn generate_event(&self, ev: &Event, reference: &ObjectReference, now: Timestamp) -> K8sEvent {
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(format!(
                    "{}.{:x}",
                    reference.name.as_ref().unwrap_or(&self.reporter.controller),
                    now.as_nanosecond()
                )),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(type_name(ev.type_).to_owned()),
            related: ev.secondary.clone(),
            ..K8sEvent::default()
        }
    }

    /// Publishes `ev` about `reference`: a new Event, or the series of the same event published
    /// less than 6 minutes ago.
    pub async fn publish(
        &self,
        ev: &Event,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = self.key(ev, reference);
        let earlier = {
            let mut cache = self.lock();
            cache.retain(|_, cached| cached.last + CACHE_TTL > now);
            cache
                .get(&key)
                .and_then(|cached| serde_json::from_str::<K8sEvent>(&cached.event).ok())
                .filter(|cached| self.same(cached, ev, reference))
        };
        let event = match earlier {
            Some(mut event) => {
                let count = event.series.as_ref().map_or(2, |s| s.count + 1);
                event.series = Some(EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                });
                event
            }
            None => self.generate_event(ev, reference, now),
        };
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        if event.series.is_some() {
            let name = event.metadata.name.clone().unwrap_or_default();
            events
                .patch(&name, &PatchParams::default(), &Patch::Merge(&event))
                .await?;
        } else {
            events.create(&PostParams::default(), &event).await?;
        }
        // Serialising an Event cannot fail (plain data); one that did is not remembered, and
        // its repeat becomes a new Event rather than a series.
        if let Ok(json) = serde_json::to_string(&event) {
            self.lock().insert(
                key,
                Cached {
                    last: now,
                    event: json.into_boxed_str(),
                },
            );
        }
        Ok(())
    }
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("reporter", &self.reporter)
            .field("cached", &self.cached())
            .finish_non_exhaustive()
    }
}

fn type_name(type_: EventType) -> &'static str {
    match type_ {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}

/// Hashes what kube-runtime's `Reference` compares: apiVersion, kind, name, namespace, uid.
fn hash_reference(reference: Option<&ObjectReference>, hasher: &mut DefaultHasher) {
    reference
        .map(|r| (&r.api_version, &r.kind, &r.name, &r.namespace, &r.uid))
        .hash(hasher);
}

fn same_reference(a: Option<&ObjectReference>, b: Option<&ObjectReference>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.api_version == b.api_version
                && a.kind == b.kind
                && a.name == b.name
                && a.namespace == b.namespace
                && a.uid == b.uid
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::Value;

    use super::*;

    fn regarding(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("rollgate.dev/v1alpha1".into()),
            kind: Some("Rollout".into()),
            name: Some(name.into()),
            namespace: Some("team".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("7".into()),
            field_path: None,
        }
    }

    fn event(action: &str, note: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: "Advanced".into(),
            note: Some(note.into()),
            action: action.into(),
            secondary: None,
        }
    }

    /// Publishes `events` in order through a mock API server that answers each request with
    /// its own body; returns the requests seen (method, path, body) and the recorder.
    async fn run(
        events: Vec<(Event, ObjectReference)>,
    ) -> (Vec<(String, String, Value)>, Recorder) {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let recorder = Recorder::new(
            kube::Client::new(service, "default"),
            Reporter {
                controller: "rollgate".into(),
                instance: Some("pod-1".into()),
            },
        );
        let count = events.len();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..count {
                let Some((request, send)) = handle.next_request().await else {
                    break;
                };
                let method = request.method().to_string();
                let path = request.uri().path().to_owned();
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let answer = serde_json::to_vec(&body).unwrap_or_default();
                send.send_response(
                    Response::builder()
                        .status(if method == "POST" { 201 } else { 200 })
                        .body(Body::from(answer))
                        .expect("a response"),
                );
                seen.push((method, path, body));
            }
            seen
        });
        for (ev, reference) in &events {
            recorder
                .publish(ev, reference)
                .await
                .unwrap_or_else(|e| panic!("published: {e}"));
        }
        let seen = server.await.unwrap_or_default();
        (seen, recorder)
    }

    #[tokio::test]
    async fn a_repeat_patches_the_series_of_the_first_event_and_anything_else_is_new() {
        let a = regarding("a");
        let (seen, recorder) = run(vec![
            (event("AdvanceTo2", "advanced (stage 2)"), a.clone()),
            (event("AdvanceTo2", "advanced again"), a.clone()),
            (event("AdvanceTo2", "and again"), a.clone()),
            (event("AdvanceTo3", "advanced (stage 3)"), a.clone()),
            (event("AdvanceTo2", "advanced (stage 2)"), regarding("b")),
        ])
        .await;
        let methods: Vec<&str> = seen.iter().map(|(m, _, _)| m.as_str()).collect();
        assert_eq!(methods, ["POST", "PATCH", "PATCH", "POST", "POST"]);
        let (_, path, first) = &seen[0];
        assert_eq!(path, "/apis/events.k8s.io/v1/namespaces/team/events");
        assert_eq!(first["reason"], "Advanced");
        assert_eq!(first["action"], "AdvanceTo2");
        assert_eq!(first["type"], "Normal");
        assert_eq!(first["note"], "advanced (stage 2)");
        assert_eq!(first["reportingController"], "rollgate");
        assert_eq!(first["reportingInstance"], "pod-1");
        assert_eq!(first["regarding"]["name"], "a");
        assert_eq!(first["regarding"]["uid"], "uid-a");
        let name = first["metadata"]["name"].as_str().unwrap_or_default();
        assert!(name.starts_with("a."), "{name}");

        // The repeats patch the first event (its name, its note) with a growing series.
        for (i, count) in [(1, 2), (2, 3)] {
            let (_, path, patch) = &seen[i];
            assert_eq!(
                path,
                &format!("/apis/events.k8s.io/v1/namespaces/team/events/{name}")
            );
            assert_eq!(patch["series"]["count"], count);
            assert!(patch["series"]["lastObservedTime"].is_string());
            assert_eq!(patch["note"], "advanced (stage 2)");
            assert_eq!(patch["eventTime"], first["eventTime"]);
        }
        // Another action, and the same action about another object, are events of their own.
        assert_eq!(seen[3].2["action"], "AdvanceTo3");
        assert_eq!(seen[4].2["regarding"]["name"], "b");
        assert_eq!(recorder.cached(), 3);
    }

    #[tokio::test]
    async fn a_warning_is_not_a_repeat_of_a_normal_event() {
        let a = regarding("a");
        let mut warning = event("AdvanceTo2", "advanced (stage 2)");
        warning.type_ = EventType::Warning;
        let (seen, _) = run(vec![
            (event("AdvanceTo2", "advanced (stage 2)"), a.clone()),
            (warning, a),
        ])
        .await;
        let methods: Vec<&str> = seen.iter().map(|(m, _, _)| m.as_str()).collect();
        assert_eq!(methods, ["POST", "POST"]);
        assert_eq!(seen[1].2["type"], "Warning");
    }

    #[test]
    fn a_cached_event_weighs_a_digest_a_time_and_its_json() {
        // The whole point of this recorder: no inline `Event` per entry.
        assert!(std::mem::size_of::<(u64, Cached)>() <= 48);
        assert!(std::mem::size_of::<(u64, Cached)>() * 8 < std::mem::size_of::<K8sEvent>());
    }
}
