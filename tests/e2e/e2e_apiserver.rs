//! The stand-in API server the end-to-end tests run the controller against, tested with
//! `kube::Client` so it is trustworthy: list and watch (resourceVersion, selectors, paging,
//! bookmarks, 410 Gone), the status subresource and generation, merge patches, server-side
//! apply with ownership and conflicts, dry runs, preconditions, 404 for resources not served,
//! and the request log.

use crate::support;

use rollgate::api::Percent;
use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use rollgate::api::Rollout;
use serde_json::{Value, json};
use support::apiserver::{ApiServer, Verb};

fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": labels.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        },
        "data": data.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
    }))
    .expect("config map")
}

fn rollout(name: &str, first_percent: u8) -> Value {
    json!({
        "apiVersion": "rollgate.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "target": {"configMap": {"name": "demo", "key": "percent"}},
            "stages": [{"percent": first_percent, "duration": "1s"}, {"percent": 50, "duration": "1s"}],
            "analysis": {"interval": "1s", "gates": [
                {"name": "error-rate", "prometheus": {"query": "vector(0)"}, "max": 0.01}
            ]}
        }
    })
}

fn status_code(error: &kube::Error) -> u16 {
    match error {
        kube::Error::Api(status) => status.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message.clone(),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_list_with_selectors_and_paging() {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for (name, team) in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "x"), ("e", "y")] {
        api.create(
            &PostParams::default(),
            &config_map(name, &[("team", team)], &[("k", name)]),
        )
        .await
        .expect("create");
    }
    let other: Api<ConfigMap> = Api::namespaced(server.client(), "other");
    other
        .create(
            &PostParams::default(),
            &config_map("a", &[("team", "x")], &[]),
        )
        .await
        .expect("create in another namespace");

    let got = api.get("c").await.expect("get");
    assert_eq!(got.data.expect("data")["k"], "c");
    assert!(got.metadata.resource_version.is_some() && got.metadata.uid.is_some());

    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        list.items
            .into_iter()
            .map(|c| c.metadata.name.expect("name"))
            .collect()
    };
    let x = api
        .list(&ListParams::default().labels("team=x"))
        .await
        .expect("list");
    assert_eq!(names(x), ["a", "c", "d"]);
    let not_x = api
        .list(&ListParams::default().labels("team!=x"))
        .await
        .expect("list");
    assert_eq!(names(not_x), ["b", "e"]);
    let set = api
        .list(&ListParams::default().labels("team in (y)"))
        .await
        .expect("list");
    assert_eq!(names(set), ["b", "e"]);
    let by_name = api
        .list(&ListParams::default().fields("metadata.name=d"))
        .await
        .expect("list");
    assert_eq!(names(by_name), ["d"]);
    let everywhere: Api<ConfigMap> = Api::all(server.client());
    assert_eq!(
        everywhere
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        6
    );

    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    let token = first.metadata.continue_.clone().expect("a continue token");
    assert_eq!(names(first), ["a", "b"]);
    let second = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");
    assert_eq!(names(second), ["c", "d"]);

    let error = api.get("missing").await.expect_err("404");
    assert_eq!(status_code(&error), 404);
    let duplicate = api
        .create(&PostParams::default(), &config_map("a", &[], &[]))
        .await
        .expect_err("409");
    assert_eq!(status_code(&duplicate), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_replays_from_a_resource_version_streams_changes_and_sends_bookmarks() {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("w", &[], &[("k", "1")]))
        .await
        .expect("create");
    let rv = created.metadata.resource_version.clone().expect("rv");
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .expect("patch");

    let params = WatchParams::default().timeout(3).disable_bookmarks();
    let mut stream = api.watch(&params, &rv).await.expect("watch").boxed();
    match stream.try_next().await.expect("event") {
        Some(WatchEvent::Modified(cm)) => assert_eq!(cm.data.expect("data")["k"], "2"),
        other => panic!("expected the replayed MODIFIED, got {other:?}"),
    }
    api.delete("w", &DeleteParams::default())
        .await
        .expect("delete");
    match stream.try_next().await.expect("event") {
        Some(WatchEvent::Deleted(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("w")),
        other => panic!("expected DELETED, got {other:?}"),
    }
    // The stream ends at timeoutSeconds.
    let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(10), stream.collect::<Vec<_>>())
        .await
        .expect("the watch ends after its timeout");
    assert!(rest.is_empty(), "no bookmarks were asked for: {rest:?}");

    let bookmarks = WatchParams::default().timeout(3);
    let mut stream = api.watch(&bookmarks, "0").await.expect("watch").boxed();
    let event = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("a bookmark within the interval")
        .expect("event");
    assert!(matches!(event, Some(WatchEvent::Bookmark(_))), "{event:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_compacted_resource_version_gets_410_and_the_watcher_relists() {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let created = api
        .create(&PostParams::default(), &config_map("g", &[], &[]))
        .await
        .expect("create");
    let rv = created.metadata.resource_version.expect("rv");
    api.create(&PostParams::default(), &config_map("h", &[], &[]))
        .await
        .expect("create");
    server.compact();
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &rv)
        .await
        .expect("watch")
        .boxed();
    match stream.try_next().await.expect("event") {
        Some(WatchEvent::Error(status)) => assert_eq!(status.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }

    // kube's watcher lists, then watches; it sees objects created later.
    let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
    let first = events.try_next().await.expect("watcher").expect("event");
    assert!(matches!(first, watcher::Event::Init), "{first:?}");
    api.create(&PostParams::default(), &config_map("later", &[], &[]))
        .await
        .expect("create");
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(event) = events.try_next().await.expect("watcher") {
            if let watcher::Event::Apply(cm) | watcher::Event::InitApply(cm) = event
                && cm.metadata.name.as_deref() == Some("later")
            {
                return true;
            }
        }
        false
    })
    .await
    .expect("the watcher sees the new object");
    assert!(seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_tracks_owners_and_refuses_to_take_a_field_without_force() {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mine = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags"},
        "data": {"percent": "1", "note": "a"}});
    let applied = api
        .patch(
            "flags",
            &PatchParams::apply("rollgate"),
            &Patch::Apply(&mine),
        )
        .await
        .expect("apply creates");
    let managers: Vec<_> = applied.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managers.len(), 1);
    assert_eq!(managers[0].manager.as_deref(), Some("rollgate"));
    assert_eq!(managers[0].operation.as_deref(), Some("Apply"));
    let owned = serde_json::to_value(&managers[0].fields_v1).expect("fields");
    assert_eq!(owned, json!({"f:data": {"f:note": {}, "f:percent": {}}}));

    // Another manager setting the same field to another value conflicts, naming the owner.
    let theirs = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags"},
        "data": {"percent": "7"}});
    let error = api
        .patch(
            "flags",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&theirs),
        )
        .await
        .expect_err("conflict");
    assert_eq!(status_code(&error), 409);
    assert!(
        message(&error).contains("conflict with \"rollgate\": .data.percent"),
        "{}",
        message(&error)
    );
    assert_eq!(
        api.get("flags").await.expect("get").data.expect("data")["percent"],
        "1"
    );

    // Setting it to the same value shares it; another field is free.
    let same = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flags"},
        "data": {"percent": "1", "other": "x"}});
    api.patch(
        "flags",
        &PatchParams::apply("kubectl"),
        &Patch::Apply(&same),
    )
    .await
    .expect("same value: no conflict");

    // With force the field moves to the new manager.
    let forced = api
        .patch(
            "flags",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .expect("forced apply");
    assert_eq!(forced.data.clone().expect("data")["percent"], "7");
    let owners: BTreeMap<String, Value> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            (
                m.manager.unwrap_or_default(),
                serde_json::to_value(m.fields_v1).expect("fields"),
            )
        })
        .collect();
    assert_eq!(owners["rollgate"], json!({"f:data": {"f:note": {}}}));
    assert_eq!(owners["kubectl"], json!({"f:data": {"f:percent": {}}}));
    // kubectl no longer applies `other`, which nobody else owns: it is removed.
    assert!(!forced.data.expect("data").contains_key("other"));

    // A merge patch (an Update) takes ownership of what it changes.
    let patched = api
        .patch(
            "flags",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"note": "b"}})),
        )
        .await
        .expect("merge patch");
    let rollgate_owns = patched
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.manager.as_deref() == Some("rollgate"))
        .count();
    assert_eq!(rollgate_owns, 0, "the edit took note from rollgate");
    let conflict = api
        .patch(
            "flags",
            &PatchParams::apply("rollgate"),
            &Patch::Apply(&mine),
        )
        .await
        .expect_err("the hand edit now owns percent and note");
    assert_eq!(status_code(&conflict), 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_generation_and_no_op_writes() {
    let server = ApiServer::start().await;
    let api: Api<Rollout> = Api::namespaced(server.client(), "default");
    let mut body = rollout("r", 1);
    body["status"] = json!({"phase": "Succeeded"});
    let created: Rollout = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).expect("rollout"),
        )
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.status.is_none(), "status in a create is ignored");

    let status = json!({"apiVersion": "rollgate.dev/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "r"}, "status": {"phase": "Progressing", "stage": 0, "percent": 1}});
    let with_status = api
        .patch_status("r", &PatchParams::apply("rollgate"), &Patch::Apply(&status))
        .await
        .expect("status apply");
    assert_eq!(
        with_status.metadata.generation,
        Some(1),
        "status writes keep the generation"
    );
    assert_eq!(
        with_status.status.as_ref().and_then(|s| s.percent),
        Some(Percent::whole(1))
    );
    let rv = with_status.metadata.resource_version.clone();

    let mark = server.mark();
    let again = api
        .patch_status("r", &PatchParams::apply("rollgate"), &Patch::Apply(&status))
        .await
        .expect("same status again");
    assert_eq!(
        again.metadata.resource_version, rv,
        "a no-op write keeps the resourceVersion"
    );
    let log = server.requests_since(mark);
    assert_eq!(log.len(), 1);
    assert!(
        !log[0].changed
            && log[0].verb == Verb::Apply
            && log[0].subresource.as_deref() == Some("status")
    );

    // A spec write bumps the generation and leaves status alone, even when it carries one.
    let spec = api
        .patch("r", &PatchParams::default(), &Patch::Merge(json!({
            "spec": {"stages": [{"percent": 2, "duration": "1s"}, {"percent": 50, "duration": "1s"}]},
            "status": {"phase": "Failed"}
        })))
        .await
        .expect("spec patch");
    assert_eq!(spec.metadata.generation, Some(2));
    assert_eq!(
        spec.status.as_ref().and_then(|s| s.percent),
        Some(Percent::whole(1))
    );
    assert_eq!(
        serde_json::to_value(spec.status.as_ref().and_then(|s| s.phase)).expect("phase"),
        json!("Progressing")
    );
    // A status merge patch changes only status.
    let patched = api
        .patch_status(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "spec": {"paused": true}, "status": {"percent": 2}
            })),
        )
        .await
        .expect("status patch");
    assert!(!patched.spec.paused, "a status write ignores spec");
    assert_eq!(
        patched.status.as_ref().and_then(|s| s.percent),
        Some(Percent::whole(2))
    );
    assert_eq!(patched.metadata.generation, Some(2));

    // Five write requests; the repeated status apply changed nothing.
    let writes = server.writes();
    let rollout_writes: Vec<_> = writes.iter().filter(|w| w.on("rollouts")).collect();
    assert_eq!(rollout_writes.len(), 5);
    assert_eq!(rollout_writes.iter().filter(|w| w.changed).count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_validates_and_changes_nothing_and_stale_writes_conflict() {
    let server = ApiServer::start().await;
    let api: Api<Rollout> = Api::namespaced(server.client(), "default");
    let dry = PostParams {
        dry_run: true,
        field_manager: None,
    };
    api.create(
        &dry,
        &serde_json::from_value(rollout("d", 1)).expect("rollout"),
    )
    .await
    .expect("a valid dry run");
    assert!(
        server.object("rollouts", "default", "d").is_none(),
        "a dry run stores nothing"
    );

    let invalid = rollout("bad", 60); // stages must increase: 60 then 50
    let apply_dry = PatchParams::apply("rollgate").dry_run();
    let error = api
        .patch("bad", &apply_dry, &Patch::Apply(&invalid))
        .await
        .expect_err("invalid");
    assert_eq!(status_code(&error), 422, "{}", message(&error));

    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let created = cms
        .create(
            &PostParams::default(),
            &config_map("p", &[], &[("percent", "1")]),
        )
        .await
        .expect("create");
    // The create's manager (`unknown`) owns the data; a dry run reports the conflict too.
    let unforced = PatchParams::apply("rollgate").dry_run();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {"percent": "5"}});
    let error = cms
        .patch("p", &unforced, &Patch::Apply(&body))
        .await
        .expect_err("conflict");
    assert_eq!(status_code(&error), 409);
    let ok = PatchParams::apply("rollgate").dry_run().force();
    let answer = cms
        .patch("p", &ok, &Patch::Apply(&body))
        .await
        .expect("dry-run apply");
    let owners: Vec<_> = answer.metadata.managed_fields.clone().unwrap_or_default();
    assert!(
        owners
            .iter()
            .any(|m| m.manager.as_deref() == Some("rollgate"))
    );
    assert_eq!(answer.data.expect("data")["percent"], "5");
    assert_eq!(
        cms.get("p").await.expect("get").data.expect("data")["percent"],
        "1"
    );
    assert!(server.writes().iter().all(|w| !w.dry_run));

    let mut stale = created.clone();
    cms.patch(
        "p",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"percent": "2"}})),
    )
    .await
    .expect("someone else writes");
    stale.data = Some(BTreeMap::from([("percent".to_owned(), "3".to_owned())]));
    let error = cms
        .replace("p", &PostParams::default(), &stale)
        .await
        .expect_err("stale");
    assert_eq!(status_code(&error), 409);
    let precondition = cms
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({
                "metadata": {"resourceVersion": created.metadata.resource_version},
                "data": {"percent": "4"}
            })),
        )
        .await
        .expect_err("a merge patch with a stale resourceVersion");
    assert_eq!(status_code(&precondition), 409);
    assert_eq!(
        cms.get("p").await.expect("get").data.expect("data")["percent"],
        "2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_not_served_are_404_and_logged_loudly() {
    let server = ApiServer::start().await;
    let gvk = GroupVersionKind::gvk("core.openfeature.dev", "v1beta1", "FeatureFlag");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "featureflags");
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &resource);
    let error = api.get("flags").await.expect_err("not served");
    assert_eq!(status_code(&error), 404);
    assert_eq!(server.unknown_requests().len(), 1);
    assert!(server.unknown_requests()[0].contains("core.openfeature.dev/v1beta1/featureflags"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_leases_are_served() {
    let server = ApiServer::start().await;
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(server.client(), "default");
    let lease = serde_json::from_value(json!({"metadata": {"name": "rollgate-controller"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}))
    .expect("lease");
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("lease create");
    leases
        .patch(
            "rollgate-controller",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"holderIdentity": "b"}})),
        )
        .await
        .expect("strategic patch");
    let got = leases.get("rollgate-controller").await.expect("get");
    assert_eq!(
        got.spec.expect("spec").holder_identity.as_deref(),
        Some("b")
    );

    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(server.client(), "default");
    let event = serde_json::from_value(json!({"metadata": {"generateName": "r."},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reason": "Started", "action": "Start",
        "reportingController": "rollgate", "reportingInstance": "x", "type": "Normal"}))
    .expect("event");
    let created = events
        .create(&PostParams::default(), &event)
        .await
        .expect("event create");
    assert!(created.metadata.name.expect("name").starts_with("r."));
    assert_eq!(server.writes().iter().filter(|w| w.on("events")).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_label_selected_watch_sees_objects_enter_and_leave_and_metadata_only_watches_work() {
    let server = ApiServer::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    api.create(&PostParams::default(), &config_map("t", &[], &[("k", "v")]))
        .await
        .expect("create");
    let list = api
        .list(&ListParams::default().labels("rollgate.dev/managed=true"))
        .await
        .expect("list");
    assert!(list.items.is_empty());
    let rv = list.metadata.resource_version.expect("list rv");
    let params = WatchParams::default()
        .labels("rollgate.dev/managed=true")
        .timeout(5)
        .disable_bookmarks();
    let mut stream = api.watch(&params, &rv).await.expect("watch").boxed();

    let label = |value: Value| json!({"metadata": {"labels": {"rollgate.dev/managed": value}}});
    api.patch(
        "t",
        &PatchParams::default(),
        &Patch::Merge(label(json!("true"))),
    )
    .await
    .expect("label");
    match stream.try_next().await.expect("event") {
        Some(WatchEvent::Added(cm)) => assert_eq!(cm.metadata.name.as_deref(), Some("t")),
        other => panic!("expected ADDED when the label appears, got {other:?}"),
    }
    api.patch(
        "t",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .expect("edit");
    assert!(matches!(
        stream.try_next().await.expect("event"),
        Some(WatchEvent::Modified(_))
    ));
    api.patch(
        "t",
        &PatchParams::default(),
        &Patch::Merge(label(Value::Null)),
    )
    .await
    .expect("unlabel");
    assert!(
        matches!(
            stream.try_next().await.expect("event"),
            Some(WatchEvent::Deleted(_))
        ),
        "leaving the selection is a DELETED for the watch"
    );

    let metadata = api
        .list_metadata(&ListParams::default())
        .await
        .expect("metadata list");
    assert_eq!(metadata.items.len(), 1);
    assert_eq!(metadata.items[0].metadata.name.as_deref(), Some("t"));
    let metadata_api: Api<kube::core::PartialObjectMeta<ConfigMap>> =
        Api::namespaced(server.client(), "default");
    let mut events = watcher(metadata_api, watcher::Config::default()).boxed();
    let mut names = Vec::new();
    while let Some(event) = events.try_next().await.expect("metadata watcher") {
        match event {
            watcher::Event::InitApply(meta) => names.push(meta.metadata.name.expect("name")),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(names, ["t"]);
}
