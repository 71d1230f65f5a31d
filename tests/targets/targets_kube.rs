//! Every Kubernetes request the targets make, asserted the kube-rs way: a `tower-test` mock
//! service behind `kube::Client` checks each request's method, path, query and body and
//! answers like an API server (including 404, 409 and 403).

use rollgate::api::Percent;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::core::DynamicObject;
use rollgate::api::{ConfigMapTarget, FlagdTarget, Target, WebhookTarget};
use rollgate::targets::{
    self, MANAGED_LABEL, TargetError, TargetObject, WebhookHeaders, WriteMode, WriteOutcome, flagd,
    live_percent_from_configmap, live_percent_from_featureflag, object_of,
};
use serde_json::{Value, json};

use crate::support::verifier::{Expect, api_status as status, scenario as run};

const NS: &str = "kaviar";
const FLAG: &str = "passenger_favorites_matching";
const CM_PATH: &str = "/api/v1/namespaces/kaviar/configmaps/feature-flags";
const FF_PATH: &str = "/apis/core.openfeature.dev/v1beta1/namespaces/kaviar/featureflags/flags";

fn get(path: &'static str, status: u16, answer: Value) -> Expect {
    Expect::get(path)
        .query_exactly::<&str, &str>(&[])
        .no_body()
        .answer(status, answer)
}

/// A JSON merge patch of `path` with exactly `body` and `query`.
fn patch(
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    body: Value,
    status: u16,
    answer: Value,
) -> Expect {
    Expect::patch(path)
        .query_exactly(query)
        .content_type("application/merge-patch+json")
        .body(body)
        .answer(status, answer)
}

const APPLY: &[(&str, &str)] = &[("fieldManager", "rollgate")];
const DRY_RUN: &[(&str, &str)] = &[("fieldManager", "rollgate"), ("dryRun", "All")];

fn flagd_target(allowlist: &[&str]) -> Target {
    Target {
        flagd: Some(FlagdTarget {
            config_map: Some("feature-flags".into()),
            key: "flags.flagd.json".into(),
            flag: FLAG.into(),
            on_variant: "on".into(),
            off_variant: "off".into(),
            allowlist: allowlist.iter().map(|s| s.to_string()).collect(),
            ..FlagdTarget::default()
        }),
        ..Target::default()
    }
}

fn feature_flag_target() -> Target {
    let mut target = flagd_target(&["u-1"]);
    if let Some(f) = target.flagd.as_mut() {
        f.config_map = None;
        f.feature_flag = Some("flags".into());
    }
    target
}

fn plain_target() -> Target {
    Target {
        config_map: Some(ConfigMapTarget {
            name: "feature-flags".into(),
            key: "percent".into(),
        }),
        ..Target::default()
    }
}

fn config_map(data: Value, managed: bool) -> Value {
    let mut metadata = json!({"name": "feature-flags", "namespace": NS, "resourceVersion": "41",
                              "labels": {"app": "backend"}});
    if managed {
        metadata["labels"][MANAGED_LABEL] = json!("true");
    }
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
}

const DOC: &str = "{\n  \"flags\": {\n    \"other\": {\"state\": \"ENABLED\", \"variants\": {\"a\": 1}, \"defaultVariant\": \"a\"},\n    \"passenger_favorites_matching\": {\"state\": \"ENABLED\", \"variants\": {\"on\": true, \"off\": false}, \"defaultVariant\": \"off\", \"targeting\": {\"fractional\": [[\"on\", 1], [\"off\", 99]]}}\n  }\n}\n";

fn doc_at(percent: u8, allowlist: &[&str]) -> String {
    let target = flagd_target(allowlist);
    match flagd::write_percent(
        Some(DOC),
        target.flagd.as_ref().expect("flagd"),
        Percent::whole(percent),
    ) {
        Ok(flagd::DocumentEdit::Changed(text)) => text,
        Ok(flagd::DocumentEdit::Unchanged) => DOC.to_owned(),
        Err(e) => panic!("{e}"),
    }
}

fn no_headers() -> WebhookHeaders {
    WebhookHeaders::none()
}

#[tokio::test]
async fn flagd_in_a_config_map_is_written_with_a_merge_patch_guarded_by_its_resource_version() {
    let written = doc_at(5, &["u-1"]);
    let exchanges = vec![
        get(
            CM_PATH,
            200,
            config_map(json!({"flags.flagd.json": DOC, "other": "x"}), false),
        ),
        patch(
            CM_PATH,
            APPLY,
            json!({"metadata": {"resourceVersion": "41", "labels": {MANAGED_LABEL: "true"}},
                   "data": {"flags.flagd.json": written}}),
            200,
            config_map(json!({"flags.flagd.json": written}), true),
        ),
    ];
    let outcome = run(exchanges, |client| async move {
        targets::write(
            &client,
            NS,
            &flagd_target(&["u-1"]),
            Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await
    })
    .await;
    assert_eq!(outcome.expect("written"), WriteOutcome::Written);
}

#[tokio::test]
async fn a_target_that_already_holds_the_percent_is_not_written() {
    let exchanges = vec![get(
        CM_PATH,
        200,
        config_map(json!({"flags.flagd.json": doc_at(5, &["u-1"])}), true),
    )];
    let outcome = run(exchanges, |client| async move {
        targets::write(
            &client,
            NS,
            &flagd_target(&["u-1"]),
            Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await
    })
    .await;
    assert_eq!(outcome.expect("unchanged"), WriteOutcome::Unchanged);
}

#[tokio::test]
async fn an_unlabelled_target_at_the_percent_only_gets_the_label() {
    let exchanges = vec![
        get(
            CM_PATH,
            200,
            config_map(json!({"flags.flagd.json": DOC}), false),
        ),
        patch(
            CM_PATH,
            APPLY,
            json!({"metadata": {"resourceVersion": "41", "labels": {MANAGED_LABEL: "true"}}}),
            200,
            config_map(json!({"flags.flagd.json": DOC}), true),
        ),
    ];
    let outcome = run(exchanges, |client| async move {
        targets::write(
            &client,
            NS,
            &flagd_target(&[]),
            Percent::whole(1),
            WriteMode::Apply,
            &no_headers(),
        )
        .await
    })
    .await;
    assert_eq!(outcome.expect("labelled"), WriteOutcome::Written);
}

#[tokio::test]
async fn a_dry_run_always_asks_the_api_server() {
    let exchanges = vec![
        get(
            CM_PATH,
            200,
            config_map(json!({"flags.flagd.json": DOC}), true),
        ),
        patch(
            CM_PATH,
            DRY_RUN,
            json!({"metadata": {"resourceVersion": "41", "labels": {MANAGED_LABEL: "true"}}}),
            200,
            config_map(json!({"flags.flagd.json": DOC}), true),
        ),
    ];
    let outcome = run(exchanges, |client| async move {
        targets::write(
            &client,
            NS,
            &flagd_target(&[]),
            Percent::whole(1),
            WriteMode::DryRun,
            &no_headers(),
        )
        .await
    })
    .await;
    assert_eq!(outcome.expect("checked"), WriteOutcome::Checked);
}

#[tokio::test]
async fn a_concurrent_edit_is_a_conflict_not_a_clobber() {
    let written = doc_at(5, &[]);
    let exchanges = vec![
        get(
            CM_PATH,
            200,
            config_map(json!({"flags.flagd.json": DOC}), true),
        ),
        patch(
            CM_PATH,
            APPLY,
            json!({"metadata": {"resourceVersion": "41", "labels": {MANAGED_LABEL: "true"}},
                   "data": {"flags.flagd.json": written}}),
            409,
            status(
                409,
                "Conflict",
                "Operation cannot be fulfilled on configmaps \"feature-flags\": the object has been modified",
            ),
        ),
    ];
    let err = run(exchanges, |client| async move {
        targets::write(
            &client,
            NS,
            &flagd_target(&[]),
            Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await
    })
    .await
    .expect_err("conflict");
    assert!(matches!(err, TargetError::Conflict { .. }), "{err:?}");
    assert_eq!(err.reason(), "conflict");
    assert!(err.is_transient());
    let message = err.to_string();
    assert!(
        message.starts_with("ConfigMap kaviar/feature-flags changed while it was being written"),
        "{message}"
    );
    assert!(
        message.contains("the object has been modified"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_config_map_is_not_found() {
    let exchanges = vec![get(
        CM_PATH,
        404,
        status(404, "NotFound", "configmaps \"feature-flags\" not found"),
    )];
    let err = run(exchanges, |client| async move {
        targets::read(&client, NS, &flagd_target(&[]), &no_headers()).await
    })
    .await
    .expect_err("not found");
    assert!(matches!(err, TargetError::NotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), "ConfigMap kaviar/feature-flags not found");
    assert!(!err.is_transient());
}

#[tokio::test]
async fn a_forbidden_write_names_the_verb_object_and_rule() {
    let message = "configmaps \"feature-flags\" is forbidden: User \"system:serviceaccount:rollgate:rollgate\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"kaviar\"";
    let exchanges = vec![
        get(CM_PATH, 200, config_map(json!({"percent": "1"}), true)),
        patch(
            CM_PATH,
            DRY_RUN,
            json!({"metadata": {"resourceVersion": "41", "labels": {MANAGED_LABEL: "true"}}, "data": {"percent": "0"}}),
            403,
            status(403, "Forbidden", message),
        ),
    ];
    let err = run(exchanges, |client| async move {
        targets::write(
            &client,
            NS,
            &plain_target(),
            Percent::whole(0),
            WriteMode::DryRun,
            &no_headers(),
        )
        .await
    })
    .await
    .expect_err("forbidden");
    assert!(
        matches!(err, TargetError::Forbidden { verb: "patch", .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("patch ConfigMap kaviar/feature-flags forbidden: {message}")
    );
    assert_eq!(err.reason(), "forbidden");
}

#[tokio::test]
async fn a_server_error_is_an_api_error_worth_retrying() {
    let exchanges = vec![get(
        CM_PATH,
        503,
        status(503, "ServiceUnavailable", "etcdserver: request timed out"),
    )];
    let err = run(exchanges, |client| async move {
        targets::read(&client, NS, &plain_target(), &no_headers()).await
    })
    .await
    .expect_err("api error");
    assert!(
        matches!(
            err,
            TargetError::Api {
                code: Some(503),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert!(
        err.to_string().contains("etcdserver: request timed out"),
        "{err}"
    );
}

#[tokio::test]
async fn reading_flagd_in_a_config_map() {
    let exchanges = vec![get(
        CM_PATH,
        200,
        config_map(json!({"flags.flagd.json": doc_at(10, &["u-1"])}), true),
    )];
    let percent = run(exchanges, |client| async move {
        targets::read(&client, NS, &flagd_target(&["u-1"]), &no_headers()).await
    })
    .await;
    assert_eq!(percent.expect("read"), Some(Percent::whole(10)));
}

#[tokio::test]
async fn an_unreadable_definition_names_the_config_map_key_and_flag() {
    let exchanges = vec![get(
        CM_PATH,
        200,
        config_map(json!({"flags.flagd.json": "{\"flags\": {"}), true),
    )];
    let err = run(exchanges, |client| async move {
        targets::read(&client, NS, &flagd_target(&[]), &no_headers()).await
    })
    .await
    .expect_err("unreadable");
    assert_eq!(err.reason(), "unreadable");
    let message = err.to_string();
    assert!(
        message.starts_with("ConfigMap kaviar/feature-flags key flags.flagd.json flag passenger_favorites_matching: the flag definition is not JSON"),
        "{message}"
    );
}

#[tokio::test]
async fn a_missing_key_is_created_and_reads_as_no_percent() {
    let target = flagd_target(&[]);
    let flagd = target.flagd.clone().expect("flagd");
    let new_doc = match flagd::write_percent(None, &flagd, Percent::whole(1)) {
        Ok(flagd::DocumentEdit::Changed(text)) => text,
        other => panic!("{other:?}"),
    };
    let exchanges = vec![
        get(CM_PATH, 200, config_map(json!({"other": "x"}), false)),
        get(CM_PATH, 200, config_map(json!({"other": "x"}), false)),
        patch(
            CM_PATH,
            APPLY,
            json!({"metadata": {"resourceVersion": "41", "labels": {MANAGED_LABEL: "true"}},
                   "data": {"flags.flagd.json": new_doc}}),
            200,
            config_map(json!({"other": "x", "flags.flagd.json": new_doc}), true),
        ),
    ];
    let (read, written) = run(exchanges, |client| async move {
        let read = targets::read(&client, NS, &target, &no_headers()).await;
        let written = targets::write(
            &client,
            NS,
            &target,
            Percent::whole(1),
            WriteMode::Apply,
            &no_headers(),
        )
        .await;
        (read, written)
    })
    .await;
    assert_eq!(read.expect("read"), None);
    assert_eq!(written.expect("written"), WriteOutcome::Written);
}

#[tokio::test]
async fn a_plain_key_edited_since_it_was_read_is_a_conflict_not_a_clobber() {
    let exchanges = vec![
        get(CM_PATH, 200, config_map(json!({"percent": "1"}), true)),
        patch(
            CM_PATH,
            APPLY,
            json!({"metadata": {"resourceVersion": "41", "labels": {MANAGED_LABEL: "true"}},
                   "data": {"percent": "5"}}),
            409,
            status(409, "Conflict", "the object has been modified"),
        ),
    ];
    let err = run(exchanges, |client| async move {
        targets::write(
            &client,
            NS,
            &plain_target(),
            rollgate::api::Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await
    })
    .await
    .expect_err("conflict");
    assert!(matches!(err, TargetError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn a_plain_key_is_written_as_decimal_text_against_the_version_read() {
    let exchanges = vec![
        get(
            CM_PATH,
            200,
            config_map(json!({"percent": "1", "other": "x"}), true),
        ),
        patch(
            CM_PATH,
            APPLY,
            json!({"metadata": {"resourceVersion": "41", "labels": {MANAGED_LABEL: "true"}}, "data": {"percent": "5"}}),
            200,
            config_map(json!({"percent": "5", "other": "x"}), true),
        ),
        get(CM_PATH, 200, config_map(json!({"percent": "5"}), true)),
    ];
    let (first, second) = run(exchanges, |client| async move {
        let first = targets::write(
            &client,
            NS,
            &plain_target(),
            Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await;
        let second = targets::write(
            &client,
            NS,
            &plain_target(),
            Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await;
        (first, second)
    })
    .await;
    assert_eq!(first.expect("written"), WriteOutcome::Written);
    assert_eq!(second.expect("unchanged"), WriteOutcome::Unchanged);
}

#[tokio::test]
async fn a_hand_edited_plain_key_is_unreadable_and_a_write_repairs_it() {
    let exchanges = vec![
        get(CM_PATH, 200, config_map(json!({"percent": "5.000"}), true)),
        get(CM_PATH, 200, config_map(json!({"percent": "5.000"}), true)),
        patch(
            CM_PATH,
            APPLY,
            json!({"metadata": {"resourceVersion": "41", "labels": {MANAGED_LABEL: "true"}}, "data": {"percent": "5"}}),
            200,
            config_map(json!({"percent": "5"}), true),
        ),
    ];
    let (read, written) = run(exchanges, |client| async move {
        let read = targets::read(&client, NS, &plain_target(), &no_headers()).await;
        let written = targets::write(
            &client,
            NS,
            &plain_target(),
            Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await;
        (read, written)
    })
    .await;
    let err = read.expect_err("unreadable");
    assert!(
        err.to_string()
            .starts_with("ConfigMap kaviar/feature-flags key percent: \"5.000\" is not a percent"),
        "{err}"
    );
    assert_eq!(written.expect("written"), WriteOutcome::Written);
}

fn feature_flag(flags: Value, managed: bool) -> Value {
    let mut metadata = json!({"name": "flags", "namespace": NS, "resourceVersion": "7"});
    if managed {
        metadata["labels"] = json!({MANAGED_LABEL: "true"});
    }
    json!({"apiVersion": "core.openfeature.dev/v1beta1", "kind": "FeatureFlag",
           "metadata": metadata, "spec": {"flagSpec": {"flags": flags}}})
}

fn ff_flag(targeting: Value) -> Value {
    json!({"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
           "targeting": targeting})
}

#[tokio::test]
async fn a_feature_flag_flag_is_read_and_patched_alone() {
    let other = json!({"state": "ENABLED", "variants": {"a": "x"}, "defaultVariant": "a"});
    let current = feature_flag(
        json!({"other": other, FLAG: ff_flag(json!({"fractional": [["on", 1], ["off", 99]]}))}),
        false,
    );
    let exchanges = vec![
        get(FF_PATH, 200, current.clone()),
        get(FF_PATH, 200, current.clone()),
        patch(
            FF_PATH,
            APPLY,
            json!({
                "metadata": {"resourceVersion": "7", "labels": {MANAGED_LABEL: "true"}},
                "spec": {"flagSpec": {"flags": {FLAG: {"targeting": {
                    "fractional": null,
                    "if": [{"in": [{"var": "targetingKey"}, ["u-1"]]}, "on",
                           {"fractional": [["on", 500], ["off", 9500]]}],
                }}}}},
            }),
            200,
            current,
        ),
    ];
    let (read, written) = run(exchanges, |client| async move {
        let read = targets::read(&client, NS, &feature_flag_target(), &no_headers()).await;
        let written = targets::write(
            &client,
            NS,
            &feature_flag_target(),
            Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await;
        (read, written)
    })
    .await;
    assert_eq!(read.expect("read"), Some(Percent::whole(1)));
    assert_eq!(written.expect("written"), WriteOutcome::Written);
}

#[tokio::test]
async fn an_absent_feature_flag_flag_is_created_whole_and_a_dry_run_says_so() {
    let current = feature_flag(json!({}), true);
    let flagd = feature_flag_target().flagd.expect("flagd");
    let exchanges = vec![
        get(FF_PATH, 200, current.clone()),
        patch(
            FF_PATH,
            DRY_RUN,
            json!({
                "metadata": {"resourceVersion": "7", "labels": {MANAGED_LABEL: "true"}},
                "spec": {"flagSpec": {"flags": {FLAG: flagd::new_flag(&flagd, Percent::whole(0))}}},
            }),
            200,
            current,
        ),
    ];
    let outcome = run(exchanges, |client| async move {
        targets::write(
            &client,
            NS,
            &feature_flag_target(),
            Percent::whole(0),
            WriteMode::DryRun,
            &no_headers(),
        )
        .await
    })
    .await;
    assert_eq!(outcome.expect("checked"), WriteOutcome::Checked);
}

#[tokio::test]
async fn a_feature_flag_at_the_percent_is_not_written_and_a_conflict_is_reported() {
    let flagd = feature_flag_target().flagd.expect("flagd");
    let at_five = feature_flag(
        json!({FLAG: ff_flag(flagd::targeting(&flagd, Percent::whole(5)))}),
        true,
    );
    let exchanges = vec![
        get(FF_PATH, 200, at_five.clone()),
        get(FF_PATH, 200, at_five),
        patch(
            FF_PATH,
            APPLY,
            json!({
                "metadata": {"resourceVersion": "7", "labels": {MANAGED_LABEL: "true"}},
                "spec": {"flagSpec": {"flags": {FLAG: {"targeting": flagd::targeting(&flagd, Percent::whole(10))}}}},
            }),
            409,
            status(409, "Conflict", "the object has been modified"),
        ),
    ];
    let (same, conflict) = run(exchanges, |client| async move {
        let same = targets::write(
            &client,
            NS,
            &feature_flag_target(),
            Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await;
        let conflict = targets::write(
            &client,
            NS,
            &feature_flag_target(),
            Percent::whole(10),
            WriteMode::Apply,
            &no_headers(),
        )
        .await;
        (same, conflict)
    })
    .await;
    assert_eq!(same.expect("unchanged"), WriteOutcome::Unchanged);
    let err = conflict.expect_err("conflict");
    assert!(matches!(err, TargetError::Conflict { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("FeatureFlag kaviar/flags changed"),
        "{err}"
    );
}

#[tokio::test]
async fn a_missing_feature_flag_is_not_found() {
    let exchanges = vec![get(
        FF_PATH,
        404,
        status(
            404,
            "NotFound",
            "featureflags.core.openfeature.dev \"flags\" not found",
        ),
    )];
    let err = run(exchanges, |client| async move {
        targets::write(
            &client,
            NS,
            &feature_flag_target(),
            Percent::whole(1),
            WriteMode::DryRun,
            &no_headers(),
        )
        .await
    })
    .await
    .expect_err("not found");
    assert_eq!(err.to_string(), "FeatureFlag kaviar/flags not found");
}

#[test]
fn live_percents_come_from_watched_objects() {
    let cm: ConfigMap = serde_json::from_value(config_map(
        json!({"flags.flagd.json": doc_at(50, &[])}),
        true,
    ))
    .expect("config map");
    assert_eq!(
        live_percent_from_configmap(&cm, &flagd_target(&[])).expect("read"),
        Some(Percent::whole(50))
    );
    let cm: ConfigMap =
        serde_json::from_value(config_map(json!({"percent": "7"}), true)).expect("config map");
    assert_eq!(
        live_percent_from_configmap(&cm, &plain_target()).expect("read"),
        Some(Percent::whole(7))
    );
    assert_eq!(
        live_percent_from_configmap(&cm, &flagd_target(&[])).expect("read"),
        None,
        "no flagd key yet"
    );
    let err = live_percent_from_configmap(&cm, &feature_flag_target()).expect_err("not a cm");
    assert_eq!(err.reason(), "invalid");

    let mut binary: ConfigMap =
        serde_json::from_value(config_map(json!({}), true)).expect("config map");
    binary.binary_data =
        Some([("percent".to_owned(), k8s_openapi::ByteString(b"5".to_vec()))].into());
    let err = live_percent_from_configmap(&binary, &plain_target()).expect_err("binary");
    assert!(err.to_string().contains("binaryData"), "{err}");

    let flagd = feature_flag_target().flagd.expect("flagd");
    let ff: DynamicObject = serde_json::from_value(feature_flag(
        json!({FLAG: ff_flag(flagd::targeting(&flagd, Percent::whole(25)))}),
        true,
    ))
    .expect("feature flag");
    assert_eq!(
        live_percent_from_featureflag(&ff, &flagd).expect("read"),
        Some(Percent::whole(25))
    );
    let empty: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "core.openfeature.dev/v1beta1", "kind": "FeatureFlag",
        "metadata": {"name": "flags", "namespace": NS}, "spec": {}}))
    .expect("feature flag");
    assert_eq!(
        live_percent_from_featureflag(&empty, &flagd).expect("read"),
        None
    );
    let broken: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "core.openfeature.dev/v1beta1", "kind": "FeatureFlag",
        "metadata": {"name": "flags", "namespace": NS}, "spec": {"flagSpec": {"flags": []}}}))
    .expect("feature flag");
    let err = live_percent_from_featureflag(&broken, &flagd).expect_err("broken");
    assert_eq!(
        err.to_string(),
        "FeatureFlag kaviar/flags flag passenger_favorites_matching: spec.flagSpec.flags is not an object"
    );
    let disabled: DynamicObject = serde_json::from_value(feature_flag(
        json!({FLAG: {"state": "DISABLED", "variants": {"on": true, "off": false}}}),
        true,
    ))
    .expect("feature flag");
    let err = live_percent_from_featureflag(&disabled, &flagd).expect_err("disabled");
    assert!(err.to_string().contains("DISABLED"), "{err}");
}

#[test]
fn each_target_names_the_object_to_watch() {
    assert_eq!(
        object_of(&flagd_target(&[])),
        Some(TargetObject::ConfigMap {
            name: "feature-flags".into()
        })
    );
    assert_eq!(
        object_of(&feature_flag_target()),
        Some(TargetObject::FeatureFlag {
            name: "flags".into()
        })
    );
    assert_eq!(
        object_of(&plain_target()),
        Some(TargetObject::ConfigMap {
            name: "feature-flags".into()
        })
    );
    let webhook = Target {
        webhook: Some(WebhookTarget {
            url: "http://127.0.0.1:9/p".into(),
            ..WebhookTarget::default()
        }),
        ..Target::default()
    };
    assert_eq!(
        object_of(&webhook),
        Some(TargetObject::Webhook {
            url: "http://127.0.0.1:9/p".into()
        })
    );
    assert_eq!(object_of(&Target::default()), None);
    let mut both = flagd_target(&[]);
    if let Some(f) = both.flagd.as_mut() {
        f.feature_flag = Some("x".into());
    }
    assert_eq!(object_of(&both), None);
}

#[tokio::test]
async fn an_invalid_target_or_percent_makes_no_request() {
    let err = run(vec![], |client| async move {
        targets::write(
            &client,
            NS,
            &Target::default(),
            Percent::whole(5),
            WriteMode::Apply,
            &no_headers(),
        )
        .await
    })
    .await
    .expect_err("invalid");
    assert_eq!(err.reason(), "invalid");
    // A percent above 100 cannot be asked for: `Percent` holds at most 100.
    assert_eq!(Percent::whole(101), Percent::HUNDRED);
}
