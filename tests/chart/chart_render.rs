//! What the chart renders, object by object: the CRD template (equal to `crds/rollout.yaml`,
//! behind `crds.install` and `crds.keep`), the ClusterRoles aggregated into the built-in
//! view/edit/admin roles (checked against every Kubernetes call of the plugin's commands),
//! the Deployment's scheduling, probes, volumes and annotations, the ServiceMonitor's
//! options, and the default image.
//!
//! `people_with_view_and_edit_run_the_plugin_through_the_aggregated_roles` runs the plugin's
//! commands with `--as` against the stand-in API server, whose RBAC table holds exactly the
//! rendered roles' rules: a viewer's reads pass and its pause is refused; an editor's pass.
//!
//! Rendering uses the Helm engine of the PyPI package `helm-python-sdk` through
//! `.ci/chart.py render` (install with `pip install -r .ci/requirements-ship.txt`). Without it
//! the tests print a loud SKIPPED when run by hand and fail under `CI=true`.

use crate::support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use kube::Api;
use kube::api::{Patch, PatchParams};
use rollgate::api::Rollout;
use serde_json::{Value, json};
use support::apiserver::ApiServer;

const RELEASE_NAMESPACE: &str = "rollgate-system";
/// The release is named `rollgate`, so the fullname helper gives `rollgate`.
const FULLNAME: &str = "rollgate";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the chart tools are installed; a loud SKIPPED (or, under `CI=true`, a failure)
/// when not.
fn chart_tools() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import helm_python, yaml"])
        .output()
        .is_ok_and(|out| out.status.success());
    if ok {
        return true;
    }
    let message = "the chart tools are not installed (python3 with the PyPI packages of \
                   .ci/requirements-ship.txt: pip install -r .ci/requirements-ship.txt)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message}");
    }
    let banner = "!".repeat(72);
    let _ = writeln!(
        std::io::stderr(),
        "\n{banner}\n!!! SKIPPED: {message}\n{banner}\n"
    );
    false
}

/// The rendered objects of one values file.
struct Rendered {
    label: String,
    objects: Vec<Value>,
}

fn render_file(values: &Path) -> Rendered {
    let out = Command::new("python3")
        .arg(root().join(".ci/chart.py"))
        .arg("render")
        .arg(values)
        .output()
        .expect("run python3 .ci/chart.py");
    assert!(
        out.status.success(),
        "rendering the chart with {} failed:\n{}",
        values.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("chart.py prints JSON");
    assert_eq!(answer["release_namespace"], RELEASE_NAMESPACE);
    Rendered {
        label: values.display().to_string(),
        objects: answer["objects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| o["object"].clone())
            .collect(),
    }
}

/// Renders a values file of `charts/rollgate/ci/`.
fn render_variant(name: &str) -> Rendered {
    render_file(&root().join("charts/rollgate/ci").join(name))
}

/// Renders values given as JSON (YAML's subset).
fn render_values(values: &Value) -> Rendered {
    let mut file = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("a temporary values file");
    file.write_all(values.to_string().as_bytes())
        .expect("write the values");
    let mut rendered = render_file(file.path());
    rendered.label = values.to_string();
    rendered
}

impl Rendered {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one(&self, kind: &str) -> &Value {
        let found = self.of_kind(kind);
        assert_eq!(found.len(), 1, "{}: one {kind}", self.label);
        found[0]
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
    }

    fn pod_spec(&self) -> &Value {
        &self.one("Deployment")["spec"]["template"]["spec"]
    }

    fn container(&self) -> &Value {
        &self.pod_spec()["containers"][0]
    }
}

// ---------------------------------------------------------------------------------------
// The CRD.

/// `crds/rollout.yaml`, as JSON.
fn checked_in_crd() -> Value {
    let text = std::fs::read_to_string(root().join("crds/rollout.yaml")).expect("read the CRD");
    serde_saphyr::from_str(&text).expect("crds/rollout.yaml is YAML")
}

#[test]
fn the_crd_template_is_crds_rollout_yaml_with_the_release_labels_and_keep() {
    if !chart_tools() {
        return;
    }
    let rendered = render_values(&json!({}));
    let crd = rendered.one("CustomResourceDefinition");
    let metadata = &crd["metadata"];
    assert_eq!(
        metadata["annotations"]["helm.sh/resource-policy"], "keep",
        "crds.keep (default true) keeps the CRD on helm uninstall"
    );
    assert_eq!(metadata["labels"]["app.kubernetes.io/managed-by"], "Helm");
    assert_eq!(metadata["labels"]["app.kubernetes.io/instance"], "rollgate");
    assert!(
        metadata.get("namespace").is_none(),
        "a CRD is cluster-scoped"
    );
    let mut without_release_metadata = crd.clone();
    let meta = without_release_metadata["metadata"]
        .as_object_mut()
        .expect("metadata is a map");
    meta.remove("labels");
    meta.remove("annotations");
    assert!(
        without_release_metadata == checked_in_crd(),
        "the rendered CRD, less its labels and annotations, is crds/rollout.yaml"
    );

    let unkept = render_values(&json!({"crds": {"keep": false}}));
    let crd = unkept.one("CustomResourceDefinition");
    assert!(
        crd["metadata"].get("annotations").is_none(),
        "crds.keep: false leaves no resource-policy annotation"
    );
    assert_eq!(crd["spec"], checked_in_crd()["spec"]);

    let uninstalled = render_values(&json!({"crds": {"install": false}}));
    assert!(
        uninstalled.of_kind("CustomResourceDefinition").is_empty(),
        "crds.install: false renders no CRD"
    );
    assert!(
        !uninstalled.of_kind("Deployment").is_empty(),
        "and the rest of the chart"
    );
}

// ---------------------------------------------------------------------------------------
// The aggregated ClusterRoles.

/// One Kubernetes call of a plugin command on Rollouts.
struct PluginCall {
    commands: &'static str,
    resource: &'static str,
    verb: &'static str,
    /// The file that makes the call, and a text in it that makes it.
    source: &'static str,
    evidence: &'static str,
    /// Whether the call changes the Rollout (the edit role's), or only reads it (view's).
    writes: bool,
}

/// Every call the plugin's commands make on Rollouts. Keep in step with `src/cli`
/// (`every_plugin_call_is_in_its_source_file` says when not).
const PLUGIN_CALLS: &[PluginCall] = &[
    PluginCall {
        commands: "status, pause, resume, promote, abort, retry, get NAME",
        resource: "rollouts",
        verb: "get",
        source: "src/cli/kube_client.rs",
        evidence: ".get(&self.name)",
        writes: false,
    },
    PluginCall {
        commands: "report NAME",
        resource: "rollouts",
        verb: "get",
        source: "src/report/live.rs",
        evidence: "api.get_opt(name)",
        writes: false,
    },
    PluginCall {
        commands: "status -w (a relist after a dropped watch)",
        resource: "rollouts",
        verb: "list",
        source: "src/cli/status.rs",
        evidence: "api.list(&by_name)",
        writes: false,
    },
    PluginCall {
        commands: "status -w",
        resource: "rollouts",
        verb: "watch",
        source: "src/cli/status.rs",
        evidence: "api.watch(&params, &version)",
        writes: false,
    },
    PluginCall {
        commands: "list, get -l",
        resource: "rollouts",
        verb: "list",
        source: "src/cli/get.rs",
        evidence: ".list(&query.list_params())",
        writes: false,
    },
    PluginCall {
        commands: "get -w, list -w",
        resource: "rollouts",
        verb: "watch",
        source: "src/cli/get.rs",
        evidence: "watcher(query.api(client), config)",
        writes: false,
    },
    PluginCall {
        commands: "completion of Rollout names",
        resource: "rollouts",
        verb: "list",
        source: "src/cli/complete.rs",
        evidence: "api.list_metadata(&ListParams::default())",
        writes: false,
    },
    PluginCall {
        commands: "pause, resume, promote, abort, retry (the action annotation; --gitops: spec.paused)",
        resource: "rollouts",
        verb: "patch",
        source: "src/cli/action.rs",
        evidence: ".patch(&target.name, &params, &Patch::Merge(&patch))",
        writes: true,
    },
];

/// What the edit role grants on Rollouts beyond the plugin: what the built-in edit role
/// grants on any workload (`kubectl apply`, `kubectl delete`).
const EDIT_WORKLOAD_VERBS: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

/// Every (group, resource, verb) a role's rules grant.
fn grants(role: &Value) -> BTreeSet<(String, String, String)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        assert!(
            rule.get("resourceNames").is_none(),
            "an aggregated role names no objects"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn grant(resource: &str, verb: &str) -> (String, String, String) {
    (
        "rollgate.dev".to_owned(),
        resource.to_owned(),
        verb.to_owned(),
    )
}

#[test]
fn every_plugin_call_is_in_its_source_file() {
    for call in PLUGIN_CALLS {
        let text = std::fs::read_to_string(root().join(call.source))
            .unwrap_or_else(|e| panic!("read {} ({e})", call.source));
        assert!(
            text.contains(call.evidence),
            "{} no longer contains {:?} ({} {} of `{}`): update PLUGIN_CALLS",
            call.source,
            call.evidence,
            call.verb,
            call.resource,
            call.commands
        );
    }
}

#[test]
fn the_view_and_edit_roles_allow_every_plugin_command_their_role_allows_and_no_more() {
    if !chart_tools() {
        return;
    }
    let rendered = render_values(&json!({}));
    let view_name = format!("{FULLNAME}-view");
    let edit_name = format!("{FULLNAME}-edit");
    let view = rendered
        .named("ClusterRole", &view_name)
        .unwrap_or_else(|| panic!("a ClusterRole {view_name}"));
    let edit = rendered
        .named("ClusterRole", &edit_name)
        .unwrap_or_else(|| panic!("a ClusterRole {edit_name}"));

    let label = |role: &Value, to: &str| {
        role["metadata"]["labels"][format!("rbac.authorization.k8s.io/aggregate-to-{to}")].clone()
    };
    for to in ["view", "edit", "admin"] {
        assert_eq!(label(view, to), "true", "{view_name} aggregates to {to}");
    }
    assert_eq!(
        label(edit, "edit"),
        "true",
        "{edit_name} aggregates to edit"
    );
    assert_eq!(
        label(edit, "admin"),
        "true",
        "{edit_name} aggregates to admin"
    );
    assert_eq!(
        label(edit, "view"),
        Value::Null,
        "{edit_name} is not part of view"
    );

    let reads: BTreeSet<_> = PLUGIN_CALLS
        .iter()
        .filter(|c| !c.writes)
        .map(|c| grant(c.resource, c.verb))
        .collect();
    let mut view_expected = reads.clone();
    // `kubectl get rollouts/NAME --subresource=status`, as view allows for any workload.
    for verb in ["get", "list", "watch"] {
        view_expected.insert(grant("rollouts", verb));
        view_expected.insert(grant("rollouts/status", verb));
    }
    assert_eq!(
        grants(view),
        view_expected,
        "{view_name}: the plugin's reads of Rollouts, nothing else"
    );
    for call in PLUGIN_CALLS.iter().filter(|c| c.writes) {
        assert!(
            !grants(view).contains(&grant(call.resource, call.verb)),
            "{view_name} must not allow {} ({})",
            call.verb,
            call.commands
        );
    }

    let mut edit_expected = view_expected.clone();
    for call in PLUGIN_CALLS {
        edit_expected.insert(grant(call.resource, call.verb));
    }
    for verb in EDIT_WORKLOAD_VERBS {
        edit_expected.insert(grant("rollouts", verb));
    }
    assert_eq!(
        grants(edit),
        edit_expected,
        "{edit_name}: every plugin call and the edit role's verbs on Rollouts; \
         no write of rollouts/status (the controller's)"
    );

    for binding in rendered
        .of_kind("ClusterRoleBinding")
        .into_iter()
        .chain(rendered.of_kind("RoleBinding"))
    {
        let bound = binding["roleRef"]["name"].as_str().unwrap_or_default();
        assert!(
            bound != view_name && bound != edit_name,
            "the chart binds the people's roles to no one: {binding}"
        );
    }
    assert!(
        rendered.of_kind("ClusterRole").iter().all(|r| {
            let name = r["metadata"]["name"].as_str().unwrap_or_default();
            name == view_name
                || name == edit_name
                || r["metadata"]["labels"]
                    .as_object()
                    .is_none_or(|l| l.keys().all(|k| !k.contains("aggregate-to")))
        }),
        "the controller's own ClusterRole is aggregated into nothing"
    );
}

#[test]
fn the_aggregated_roles_follow_rbac_aggregate_rbac_create_and_the_fullname() {
    if !chart_tools() {
        return;
    }
    let aggregated = |r: &Rendered| -> Vec<String> {
        let mut names: Vec<String> = r
            .of_kind("ClusterRole")
            .into_iter()
            .filter(|c| {
                c["metadata"]["labels"]
                    .as_object()
                    .is_some_and(|l| l.keys().any(|k| k.contains("aggregate-to")))
            })
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    let off = render_values(&json!({"rbac": {"aggregate": false}}));
    assert!(aggregated(&off).is_empty(), "rbac.aggregate: false");
    let no_rbac = render_values(&json!({"rbac": {"create": false}}));
    assert!(aggregated(&no_rbac).is_empty(), "rbac.create: false");
    let renamed = render_values(&json!({"fullnameOverride": "flags"}));
    assert_eq!(aggregated(&renamed), ["flags-edit", "flags-view"]);
    let namespaced = render_variant("namespaced-values.yaml");
    assert_eq!(
        aggregated(&namespaced),
        ["rollgate-edit", "rollgate-view"],
        "people's roles do not depend on the controller's scope"
    );
}

/// Gives `user` the rules of a rendered role in `namespace` on the stand-in (which matches
/// by verb and plural; `rollouts/status` rules never match a request there).
fn grant_role(server: &ApiServer, user: &str, role: &Value, namespace: &str) {
    for (group, resource, verb) in grants(role) {
        assert_eq!(
            group, "rollgate.dev",
            "the people's roles are about Rollouts"
        );
        server.grant(user, &verb, &resource, namespace, None);
    }
}

/// Runs the binary with `KUBECONFIG=kubeconfig`.
async fn plugin(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    let kubeconfig = kubeconfig.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(&args)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("RUST_LOG")
            .env_remove("COMPLETE")
            .output()
            .expect("the rollgate binary runs")
    })
    .await
    .expect("the command finished")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_with_view_and_edit_run_the_plugin_through_the_aggregated_roles() {
    if !chart_tools() {
        return;
    }
    const NS: &str = "shop";
    const NAME: &str = "checkout";
    let rendered = render_values(&json!({}));
    let view = rendered
        .named("ClusterRole", &format!("{FULLNAME}-view"))
        .expect("the view role")
        .clone();
    let edit = rendered
        .named("ClusterRole", &format!("{FULLNAME}-edit"))
        .expect("the edit role")
        .clone();

    let server = ApiServer::start().await;
    server.put(
        json!({
            "apiVersion": "rollgate.dev/v1alpha1",
            "kind": "Rollout",
            "metadata": {"name": NAME, "namespace": NS, "labels": {"team": "shop"}},
            "spec": {
                "target": {"flagd": {"configMap": "feature-flags", "flag": "new_checkout"}},
                "stages": [
                    {"percent": 1, "duration": "1h"},
                    {"percent": 5, "duration": "1h"},
                    {"percent": 10, "duration": "1h"}
                ],
                "analysis": {"interval": "30m", "gates": [
                    {"name": "error-rate", "max": 0.01,
                     "prometheus": {"query": "sum(rate(errors_total[5m]))"}}
                ]}
            }
        }),
        "kubectl",
    );
    let api: Api<Rollout> = Api::namespaced(server.client(), NS);
    api.patch_status(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {
            "phase": "Progressing", "stage": 0, "percent": 1, "observedGeneration": 1,
            "startedAt": "2026-02-01T19:18:00Z", "stageStartedAt": "2026-02-01T19:18:00Z",
            "nextCheckpointAt": "2026-02-01T19:48:00Z",
            "history": [{"at": "2026-02-01T19:18:00Z", "kind": "start", "stage": 0,
                         "percent": 1}]
        }})),
    )
    .await
    .expect("status set");
    grant_role(&server, "viewer", &view, NS);
    grant_role(&server, "editor", &edit, NS);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = server.write_kubeconfig(dir.path(), NS);

    // (Completion of names makes the same list call as `list`, but does not pass `--as` on,
    // so it cannot be run as a person here.)
    let reads: [&[&str]; 4] = [
        &["status", NAME],
        &["get", NAME, "-o", "name"],
        &["list", "-l", "team=shop"],
        &["report", NAME],
    ];
    for user in ["viewer", "editor"] {
        for command in reads {
            let mut args = command.to_vec();
            args.extend(["--as", user]);
            let mark = server.mark();
            let out = plugin(&kubeconfig, &args).await;
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{user}: rollgate {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains(NAME), "{user}: {args:?} printed {stdout}");
            let requests = server.requests_since(mark);
            assert!(!requests.is_empty(), "{user}: {args:?} asked the stand-in");
            assert!(
                requests
                    .iter()
                    .all(|r| r.status != 403 && r.impersonated.as_deref() == Some(user)),
                "{user}: {args:?}: every request as {user}, none refused: {requests:?}"
            );
        }
    }
    // status -w watches until its timeout (exit 4: still Progressing).
    for user in ["viewer", "editor"] {
        let mark = server.mark();
        let out = plugin(
            &kubeconfig,
            &["status", NAME, "-w", "--timeout", "1s", "--as", user],
        )
        .await;
        assert_eq!(
            out.status.code(),
            Some(4),
            "{user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let requests = server.requests_since(mark);
        assert!(
            requests
                .iter()
                .any(|r| r.query.contains("watch=true") && r.status == 200),
            "{user}: status -w watched: {requests:?}"
        );
        assert!(
            requests
                .iter()
                .all(|r| r.status != 403 && r.impersonated.as_deref() == Some(user)),
            "{user}: every request as {user}, none refused: {requests:?}"
        );
    }

    // A viewer cannot act on the rollout; an editor can, by annotation and by spec.paused.
    let mark = server.mark();
    let out = plugin(&kubeconfig, &["pause", NAME, "--as", "viewer"]).await;
    assert!(!out.status.success(), "a viewer's pause is refused");
    assert!(
        server
            .requests_since(mark)
            .iter()
            .any(|r| r.method == "PATCH" && r.status == 403),
        "refused by RBAC, not by the plugin"
    );
    let stored = server.object("rollouts", NS, NAME).expect("the Rollout");
    assert!(stored["metadata"]["annotations"]["rollgate.dev/action"].is_null());

    let out = plugin(&kubeconfig, &["pause", NAME, "--as", "editor"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = server.object("rollouts", NS, NAME).expect("the Rollout");
    assert_eq!(
        stored["metadata"]["annotations"]["rollgate.dev/action"],
        "pause"
    );

    let out = plugin(&kubeconfig, &["pause", NAME, "--gitops", "--as", "editor"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = server.object("rollouts", NS, NAME).expect("the Rollout");
    assert_eq!(stored["spec"]["paused"], true);
}

// ---------------------------------------------------------------------------------------
// The Deployment and the ServiceMonitor.

#[test]
fn the_replicas_spread_across_nodes_softly_unless_affinity_is_set() {
    if !chart_tools() {
        return;
    }
    let rendered = render_values(&json!({}));
    let affinity = &rendered.pod_spec()["affinity"];
    let preferred = &affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"];
    assert_eq!(
        preferred.as_array().map(Vec::len),
        Some(1),
        "one preferred term: {affinity}"
    );
    let term = &preferred[0]["podAffinityTerm"];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(
        term["labelSelector"]["matchLabels"],
        rendered.one("Deployment")["spec"]["selector"]["matchLabels"],
        "the term selects the Deployment's own pods"
    );
    assert!(
        affinity["podAntiAffinity"]
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .is_none(),
        "soft: a one-node cluster still runs both replicas"
    );

    let everything = render_variant("everything-values.yaml");
    let affinity = &everything.pod_spec()["affinity"];
    assert!(
        affinity.get("podAntiAffinity").is_none(),
        "affinity replaces the default"
    );
    assert_eq!(
        affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            [0]["matchExpressions"][0]["key"],
        "kubernetes.io/os"
    );
}

#[test]
fn the_defaults_keep_the_former_probes_grace_and_history() {
    if !chart_tools() {
        return;
    }
    let rendered = render_values(&json!({}));
    let container = rendered.container();
    assert_eq!(
        container["livenessProbe"],
        json!({"httpGet": {"path": "/healthz", "port": "health"},
               "initialDelaySeconds": 5, "periodSeconds": 10, "failureThreshold": 3})
    );
    assert_eq!(
        container["readinessProbe"],
        json!({"httpGet": {"path": "/readyz", "port": "health"},
               "initialDelaySeconds": 2, "periodSeconds": 5, "failureThreshold": 3})
    );
    // The grace period exceeds the default --reconcile-timeout (45 s) by 15 s.
    assert_eq!(rendered.pod_spec()["terminationGracePeriodSeconds"], 60);
    let deployment = rendered.one("Deployment");
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 10);
    assert!(deployment["metadata"].get("annotations").is_none());
    assert!(container.get("volumeMounts").is_none());
    assert!(rendered.pod_spec().get("volumes").is_none());
}

#[test]
fn every_deployment_value_of_the_everything_variant_reaches_the_deployment() {
    if !chart_tools() {
        return;
    }
    let rendered = render_variant("everything-values.yaml");
    let deployment = rendered.one("Deployment");
    assert_eq!(
        deployment["metadata"]["annotations"]["reloader.stakater.com/auto"],
        "true"
    );
    assert!(
        deployment["spec"]["template"]["metadata"]["annotations"]
            .get("reloader.stakater.com/auto")
            .is_none(),
        "deploymentAnnotations are the Deployment's, not the pods'"
    );
    assert_eq!(deployment["spec"]["revisionHistoryLimit"], 3);
    let pod = rendered.pod_spec();
    assert_eq!(pod["terminationGracePeriodSeconds"], 75);
    assert_eq!(
        pod["volumes"],
        json!([{"name": "ca-bundle", "configMap": {"name": "corporate-ca"}}])
    );
    let container = rendered.container();
    assert_eq!(
        container["volumeMounts"],
        json!([{"name": "ca-bundle", "mountPath": "/etc/ssl/corporate", "readOnly": true}])
    );
    assert_eq!(container["livenessProbe"]["initialDelaySeconds"], 15);
    assert_eq!(container["livenessProbe"]["timeoutSeconds"], 3);
    assert_eq!(container["readinessProbe"]["periodSeconds"], 3);
    assert_eq!(
        container["readinessProbe"]["initialDelaySeconds"], 2,
        "Helm merges a probe's keys with the default's"
    );
    assert!(
        container["readinessProbe"]
            .get("failureThreshold")
            .is_none(),
        "null removes a default key"
    );
    let crd = rendered.one("CustomResourceDefinition");
    assert!(
        crd["metadata"].get("annotations").is_none(),
        "crds.keep: false"
    );
}

#[test]
fn the_service_monitor_takes_its_namespace_relabelings_and_tls() {
    if !chart_tools() {
        return;
    }
    let rendered = render_variant("everything-values.yaml");
    let monitor = rendered.one("ServiceMonitor");
    assert_eq!(monitor["metadata"]["namespace"], "monitoring");
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([RELEASE_NAMESPACE]),
        "it still scrapes the release namespace's Service"
    );
    let endpoint = &monitor["spec"]["endpoints"][0];
    assert_eq!(endpoint["relabelings"][0]["targetLabel"], "node");
    assert_eq!(endpoint["metricRelabelings"][0]["action"], "drop");
    assert_eq!(
        endpoint["tlsConfig"]["serverName"],
        "rollgate-metrics.rollgate-system.svc"
    );
    assert_eq!(endpoint["scheme"], "https", "a tlsConfig scrapes https");

    let plain = render_variant("monitoring-values.yaml");
    let monitor = plain.one("ServiceMonitor");
    assert_eq!(monitor["metadata"]["namespace"], RELEASE_NAMESPACE);
    let endpoint = &monitor["spec"]["endpoints"][0];
    for key in ["relabelings", "metricRelabelings", "tlsConfig", "scheme"] {
        assert!(endpoint.get(key).is_none(), "no {key} by default");
    }
}

// ---------------------------------------------------------------------------------------
// The image.

/// A top-level `key: value` (YAML) or `key = value` (TOML) of a small file, unquoted.
fn scalar(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(key))
        .find_map(|rest| {
            let rest = rest.trim_start();
            rest.strip_prefix(':').or_else(|| rest.strip_prefix('='))
        })
        .map(|v| v.trim().trim_matches('"').to_owned())
}

#[test]
fn the_image_defaults_to_what_the_release_workflow_publishes_at_the_app_version() {
    let workflow = std::fs::read_to_string(root().join(".github/workflows/release.yaml"))
        .expect("read the release workflow");
    assert!(
        workflow.contains("IMAGE: ghcr.io/${{ github.repository }}"),
        "the release workflow publishes ghcr.io/<owner>/<repository>"
    );
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).expect("read Cargo.toml");
    let repository = scalar(&cargo, "repository").expect("Cargo.toml names its repository");
    let slug = repository
        .strip_prefix("https://github.com/")
        .expect("the repository is on GitHub");
    let chart = std::fs::read_to_string(root().join("charts/rollgate/Chart.yaml"))
        .expect("read Chart.yaml");
    let app_version = scalar(&chart, "appVersion").expect("Chart.yaml has an appVersion");
    if !chart_tools() {
        return;
    }
    let rendered = render_values(&json!({}));
    assert_eq!(
        rendered.container()["image"],
        format!("ghcr.io/{slug}:{app_version}")
    );
    let pinned = render_values(
        &json!({"image": {"repository": "registry.example.com/rollgate",
                                                  "tag": "dev"}}),
    );
    assert_eq!(
        pinned.container()["image"],
        "registry.example.com/rollgate:dev"
    );
}
