//! The chart's RBAC grants exactly the API calls the controller makes.
//!
//! [`CALLS`] is the table of every call the controller makes, each with the source file that
//! makes it. Three checks keep the table, the code and the chart in step:
//!
//! - the table against the code: each row's source file still makes the call, and every
//!   Kubernetes object type the controller's code opens an `Api` on is covered by a row;
//! - the table against a real run: the `rollgate controller` binary runs against the
//!   stand-in API server (cluster-wide, restricted to one namespace, and under lockdown with
//!   `--default-service-account`, all with leader election) through a rollout with a gate
//!   credentials Secret, an action annotation and SIGTERM; every request it sends is a row of
//!   the table, and every row the stand-in can reach was seen. Under lockdown the Secret and
//!   target calls impersonate the tenant's ServiceAccount (rows of [`TENANT_CALLS`]) and every
//!   other request is allowed by the lockdown role, which lacks them: the controller makes no
//!   other call;
//! - the table against the chart: for the default values and every
//!   `charts/rollgate/ci/*.yaml`, the rendered ClusterRole/Roles grant exactly the rows, no
//!   verb or resource more, and the requests of the run are allowed by them.
//!
//! Rendering uses the Helm engine of the PyPI package `helm-python-sdk` through
//! `.ci/chart.py` (install with `pip install -r .ci/requirements-ship.txt`). Without it the
//! chart checks print a loud SKIPPED when run by hand and fail under `CI=true`.

use crate::support;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};
use support::apiserver::controller::Controller;
use support::apiserver::{ApiServer, Logged};
use support::app::App;
use support::prometheus::Prometheus;

/// Where a call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// The namespaces the controller reconciles (cluster-wide when it watches all).
    Watched,
    /// The leader-election Lease's namespace (the release namespace); only the Lease named
    /// by `--leader-election-id`, except `create`, which RBAC cannot restrict by name.
    Lease,
    /// Namespace `default`, where the `kubernetes` Service's EndpointSlices live.
    ApiServer,
}

/// One API call of the controller.
struct Call {
    group: &'static str,
    resource: &'static str,
    verb: &'static str,
    scope: Scope,
    /// The file that makes the call, and a text in it that makes it.
    source: &'static str,
    evidence: &'static str,
    /// `None` when the stand-in run must show it; otherwise why it may not.
    unreached: Option<&'static str>,
}

const FEATURE_FLAGS_UNSERVED: &str = "the stand-in serves no FeatureFlag CRD; tests/targets/targets_kube.rs checks these requests against a verifier";

/// Every call the controller makes. Keep in step with the code (the tests below say when not).
const CALLS: &[Call] = &[
    Call {
        group: "rollgate.dev",
        resource: "rollouts",
        verb: "list",
        scope: Scope::Watched,
        source: "src/controller/run.rs",
        evidence: "let rollout_stream = futures_util::stream::select_all(rollout_streams)",
        unreached: None,
    },
    Call {
        group: "rollgate.dev",
        resource: "rollouts",
        verb: "watch",
        scope: Scope::Watched,
        source: "src/controller/run.rs",
        evidence: ".map(|api| watcher(api, config.clone())",
        unreached: None,
    },
    Call {
        group: "rollgate.dev",
        resource: "rollouts",
        verb: "patch",
        scope: Scope::Watched,
        source: "src/controller/action.rs",
        evidence: "api.patch(name, &merge_params(), &Patch::Merge(&patch))",
        unreached: None,
    },
    Call {
        group: "rollgate.dev",
        resource: "rollouts/status",
        verb: "patch",
        scope: Scope::Watched,
        source: "src/controller/status.rs",
        evidence: "api.patch_status(name, &params, &Patch::Apply(&patch))",
        unreached: None,
    },
    Call {
        group: "",
        resource: "configmaps",
        verb: "list",
        scope: Scope::Watched,
        source: "src/controller/run.rs",
        evidence: "let cm_stream = watch_into(cm_apis, managed.clone(), cm_writer)",
        unreached: None,
    },
    Call {
        group: "",
        resource: "configmaps",
        verb: "watch",
        scope: Scope::Watched,
        source: "src/controller/run.rs",
        evidence: "let cm_stream = watch_into(cm_apis, managed.clone(), cm_writer)",
        unreached: None,
    },
    Call {
        group: "",
        resource: "configmaps",
        verb: "get",
        scope: Scope::Watched,
        source: "src/targets/configmap_io.rs",
        evidence: ") -> Result<ConfigMap, TargetError> {",
        unreached: None,
    },
    Call {
        group: "",
        resource: "configmaps",
        verb: "patch",
        scope: Scope::Watched,
        source: "src/targets/configmap_io.rs",
        evidence: "api.patch(name, &params, &Patch::Merge(&patch))",
        unreached: None,
    },
    Call {
        group: "core.openfeature.dev",
        resource: "featureflags",
        verb: "list",
        scope: Scope::Watched,
        source: "src/controller/run.rs",
        evidence: "api.list_metadata(&ListParams::default().limit(1))",
        unreached: None,
    },
    Call {
        group: "core.openfeature.dev",
        resource: "featureflags",
        verb: "watch",
        scope: Scope::Watched,
        source: "src/controller/run.rs",
        evidence: "watch_into(ff_apis, managed.clone(), ff_writer)",
        unreached: Some(FEATURE_FLAGS_UNSERVED),
    },
    Call {
        group: "core.openfeature.dev",
        resource: "featureflags",
        verb: "get",
        scope: Scope::Watched,
        source: "src/targets/featureflag.rs",
        evidence: "api.get(name)",
        unreached: Some(FEATURE_FLAGS_UNSERVED),
    },
    Call {
        group: "core.openfeature.dev",
        resource: "featureflags",
        verb: "patch",
        scope: Scope::Watched,
        source: "src/targets/featureflag.rs",
        evidence: "api.patch(name, &params, &Patch::Merge(&patch))",
        unreached: Some(FEATURE_FLAGS_UNSERVED),
    },
    Call {
        group: "events.k8s.io",
        resource: "events",
        verb: "create",
        scope: Scope::Watched,
        source: "src/controller/events.rs",
        evidence: "Events (events.k8s.io/v1) through the one shared `Recorder`",
        unreached: None,
    },
    Call {
        group: "events.k8s.io",
        resource: "events",
        verb: "patch",
        scope: Scope::Watched,
        source: "src/controller/events.rs",
        evidence: "The Recorder folds repeats",
        // The run pauses the rollout twice at the same stage: the second `Paused` Event is
        // a repeat, which the Recorder patches into the first one's series.
        unreached: None,
    },
    Call {
        group: "",
        resource: "secrets",
        verb: "get",
        scope: Scope::Watched,
        source: "src/controller/observe.rs",
        evidence: "let api: Api<Secret> = Api::namespaced(",
        unreached: None,
    },
    Call {
        group: "",
        resource: "serviceaccounts",
        verb: "impersonate",
        scope: Scope::Watched,
        source: "src/controller/identity.rs",
        evidence: "headers.insert(IMPERSONATE_USER, user.clone());",
        unreached: None,
    },
    Call {
        group: "coordination.k8s.io",
        resource: "leases",
        verb: "get",
        scope: Scope::Lease,
        source: "src/controller/leader.rs",
        evidence: "api.get_opt(&settings.lease_name)",
        unreached: None,
    },
    Call {
        group: "coordination.k8s.io",
        resource: "leases",
        verb: "create",
        scope: Scope::Lease,
        source: "src/controller/leader.rs",
        evidence: "LeaseCreateMode::AutoCreate",
        unreached: None,
    },
    Call {
        group: "coordination.k8s.io",
        resource: "leases",
        verb: "patch",
        scope: Scope::Lease,
        source: "src/controller/leader.rs",
        evidence: "LeaseManagerBuilder::new(",
        unreached: None,
    },
    Call {
        group: "discovery.k8s.io",
        resource: "endpointslices",
        verb: "list",
        scope: Scope::ApiServer,
        source: "src/net/endpoints.rs",
        evidence: ".list(&ListParams::default().labels(API_SERVER_SLICES))",
        unreached: None,
    },
];

/// The calls made as the Rollout's ServiceAccount (impersonating it) when a Rollout has one:
/// under lockdown (`tenancy.defaultServiceAccount`) the controller's own role does not grant
/// them; it grants `impersonate` on `serviceaccounts` instead, which only lockdown needs.
const TENANT_CALLS: &[(&str, &str, &str)] = &[
    ("", "configmaps", "get"),
    ("", "configmaps", "patch"),
    ("core.openfeature.dev", "featureflags", "get"),
    ("core.openfeature.dev", "featureflags", "patch"),
    ("", "secrets", "get"),
];

const IMPERSONATE: (&str, &str, &str) = ("", "serviceaccounts", "impersonate");

/// The ServiceAccount the lockdown variant names (`charts/rollgate/ci/lockdown-values.yaml`).
const TENANT_ACCOUNT: &str = "rollout-runner";

/// The Kubernetes types the controller's code opens an `Api` on, with the resources of
/// [`CALLS`] they stand for. A new `Api<Kind>` in the code fails the test until it is here
/// and its calls are in the table.
const API_TYPES: &[(&str, &[&str])] = &[
    ("Rollout", &["rollouts", "rollouts/status"]),
    ("ConfigMap", &["configmaps"]),
    ("Secret", &["secrets"]),
    ("Lease", &["leases"]),
    ("DynamicObject", &["featureflags"]),
    ("PartialObjectMeta", &["configmaps", "featureflags"]),
    ("EndpointSlice", &["endpointslices"]),
    // The Event recorder (`src/controller/recorder.rs`, events.k8s.io/v1).
    ("K8sEvent", &["events"]),
];

/// The code that runs in `rollgate controller`.
const CONTROLLER_SOURCES: &[&str] = &[
    "src/controller",
    "src/targets",
    "src/gates",
    "src/notify",
    "src/net",
    "src/cli/controller.rs",
];

const RELEASE_NAMESPACE: &str = "rollgate-system";
const LEASE_ID: &str = "rollgate-controller";
const NAMESPACE: &str = "kaviar";
const NAME: &str = "passenger-favorites-matching";
const CONFIG_MAP: &str = "feature-flags";
const KEY: &str = "flags.flagd.json";
const CREDENTIALS: &str = "prometheus-credentials";
const ERROR_RATE: &str = "sum(rate(http_requests_total{job=\"backend\",code=~\"5..\"}[10s])) / sum(rate(http_requests_total{job=\"backend\"}[10s]))";
const RULES: &str = "groups:\n  - name: rbac\n    rules:\n      - alert: BackendDown\n        expr: up{job=\"backend\"} == 0\n        for: 1m\n        labels: {severity: critical}\n";
const PATIENCE: Duration = Duration::from_secs(90);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------
// The table against the code.

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in std::fs::read_dir(path).expect("list a source directory") {
            rust_files(&entry.expect("directory entry").path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_owned());
    }
}

#[test]
fn every_call_of_the_table_is_in_its_source_file() {
    for call in CALLS {
        let text = std::fs::read_to_string(root().join(call.source))
            .unwrap_or_else(|e| panic!("read {}: {e}", call.source));
        assert!(
            text.contains(call.evidence),
            "{} {} {}: {} no longer contains {:?}; update the table in tests/chart/chart_rbac.rs \
             and the chart's RBAC",
            call.verb,
            call.group,
            call.resource,
            call.source,
            call.evidence
        );
    }
}

#[test]
fn every_api_the_controller_opens_is_covered_by_the_table() {
    let mut files = Vec::new();
    for source in CONTROLLER_SOURCES {
        rust_files(&root().join(source), &mut files);
    }
    assert!(files.len() > 10, "found the controller's sources");
    let mut kinds = BTreeSet::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        // Test modules build their own clients; only the shipped code counts.
        let shipped = text.split("#[cfg(test)]").next().unwrap_or_default();
        for piece in shipped.split("Api<").skip(1) {
            let kind: String = piece
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !kind.is_empty() && kind != "K" {
                kinds.insert((kind, file.strip_prefix(root()).unwrap_or(file).to_owned()));
            }
        }
    }
    assert!(!kinds.is_empty(), "the controller's code opens Apis");
    for (kind, file) in &kinds {
        let Some((_, resources)) = API_TYPES.iter().find(|(k, _)| k == kind) else {
            panic!(
                "{} opens Api<{kind}>, which tests/chart/chart_rbac.rs does not know: add its calls \
                 to CALLS and API_TYPES, and to the chart's RBAC",
                file.display()
            );
        };
        for resource in *resources {
            assert!(
                CALLS.iter().any(|c| c.resource == *resource),
                "Api<{kind}> stands for {resource}, which has no call in the table"
            );
        }
    }
    for (kind, _) in API_TYPES {
        assert!(
            kinds.iter().any(|(k, _)| k == kind),
            "no Api<{kind}> left in the controller's code: drop it from the table and the chart"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Rendering the chart (Python, helm-python-sdk).

/// Whether the chart tools are installed; a loud SKIPPED (or, under `CI=true`, a failure)
/// when not.
fn chart_tools() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import helm_python, kubernetes_validate, yaml"])
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

/// The values files the chart is checked with: the defaults and every `ci/*.yaml`.
fn values_files() -> Vec<PathBuf> {
    let dir = root().join("charts/rollgate/ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("list charts/rollgate/ci")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "charts/rollgate/ci has the values variants"
    );
    files
}

/// What `.ci/chart.py rbac` prints for one values file.
struct Rendered {
    file: String,
    objects: Vec<Value>,
    args: Vec<String>,
}

fn render(values: &Path) -> Rendered {
    let out = Command::new("python3")
        .arg(root().join(".ci/chart.py"))
        .arg("rbac")
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
        file: values
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        objects: answer["objects"].as_array().cloned().unwrap_or_default(),
        args: answer["args"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl Rendered {
    fn flag_values(&self, flag: &str) -> Vec<String> {
        let prefix = format!("{flag}=");
        self.args
            .iter()
            .filter_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }

    fn leader_elect(&self) -> bool {
        self.flag_values("--leader-elect") == ["true"]
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }
}

/// One granted permission: (group, resource, verb, resource name or "" for any).
type Grant = (String, String, String, String);

fn grants(role: &Value) -> BTreeSet<Grant> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().into_iter().flatten() {
        let mut names = strings(&rule["resourceNames"]);
        if names.is_empty() {
            names.push(String::new());
        }
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                for verb in strings(&rule["verbs"]) {
                    for name in &names {
                        out.insert((group.clone(), resource.clone(), verb.clone(), name.clone()));
                    }
                }
            }
        }
    }
    out
}

/// What the table says a role of `scope` must grant, under lockdown or not.
fn expected(scope: Scope, feature_flags: bool, lockdown: bool) -> BTreeSet<Grant> {
    CALLS
        .iter()
        .filter(|c| c.scope == scope)
        .filter(|c| feature_flags || c.group != "core.openfeature.dev")
        .filter(|c| {
            let call = (c.group, c.resource, c.verb);
            if lockdown {
                !TENANT_CALLS.contains(&call)
            } else {
                call != IMPERSONATE
            }
        })
        .map(|c| {
            let name = if c.scope == Scope::Lease && c.verb != "create" {
                LEASE_ID
            } else {
                ""
            };
            (
                c.group.to_owned(),
                c.resource.to_owned(),
                c.verb.to_owned(),
                name.to_owned(),
            )
        })
        .collect()
}

fn name_of(object: &Value) -> (&str, Option<&str>) {
    (
        object["name"].as_str().unwrap_or_default(),
        object["namespace"].as_str(),
    )
}

/// The binding of `role` binds it to the controller's ServiceAccount.
fn assert_bound(rendered: &Rendered, role: &Value, binding_kind: &str) {
    let (name, namespace) = name_of(role);
    let bound = rendered.of_kind(binding_kind).into_iter().any(|b| {
        b["roleRef"]["kind"] == role["kind"]
            && b["roleRef"]["name"] == name
            && b["namespace"].as_str() == namespace
            && b["subjects"].as_array().is_some_and(|s| {
                s.len() == 1
                    && s[0]["kind"] == "ServiceAccount"
                    && s[0]["namespace"] == RELEASE_NAMESPACE
            })
    });
    assert!(
        bound,
        "{}: {} {name} is bound to the controller's ServiceAccount only",
        rendered.file, role["kind"]
    );
}

#[test]
fn the_rendered_rbac_grants_exactly_the_calls_of_the_table() {
    if !chart_tools() {
        return;
    }
    for values in values_files() {
        let rendered = render(&values);
        let file = &rendered.file;
        let text = std::fs::read_to_string(&values).expect("read values");
        let feature_flags = !text.contains("featureFlags: false");
        let lockdown = !rendered.flag_values("--default-service-account").is_empty();
        assert_eq!(
            lockdown,
            text.contains("defaultServiceAccount:"),
            "{file}: --default-service-account comes from tenancy.defaultServiceAccount"
        );
        let watched = expected(Scope::Watched, feature_flags, lockdown);
        let namespaces = rendered.flag_values("--namespace");
        let cluster_roles = rendered.of_kind("ClusterRole");
        let roles = rendered.of_kind("Role");
        let (endpoint_roles, roles): (Vec<&Value>, Vec<&Value>) =
            roles.into_iter().partition(|r| {
                r["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-api-server-endpoints"))
            });
        let (lease_roles, watched_roles): (Vec<&Value>, Vec<&Value>) =
            roles.into_iter().partition(|r| {
                r["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-leader-election"))
            });
        // The API server's endpoints: one Role in `default`, listing EndpointSlices only.
        assert_eq!(
            endpoint_roles.len(),
            1,
            "{file}: one Role for the API server's endpoints"
        );
        assert_eq!(endpoint_roles[0]["namespace"], "default", "{file}");
        assert_eq!(
            grants(endpoint_roles[0]),
            expected(Scope::ApiServer, feature_flags, lockdown),
            "{file}: the endpoints Role"
        );
        assert_bound(&rendered, endpoint_roles[0], "RoleBinding");

        if text.contains("scope: namespace") {
            assert!(cluster_roles.is_empty(), "{file}: no ClusterRole");
            assert!(rendered.of_kind("ClusterRoleBinding").is_empty());
            let mut role_namespaces: Vec<String> = watched_roles
                .iter()
                .filter_map(|r| r["namespace"].as_str().map(str::to_owned))
                .collect();
            role_namespaces.sort();
            let mut flags = namespaces.clone();
            flags.sort();
            assert!(
                !flags.is_empty(),
                "{file}: namespaced RBAC names namespaces"
            );
            assert_eq!(
                role_namespaces, flags,
                "{file}: one Role in each --namespace"
            );
            for role in &watched_roles {
                assert_eq!(
                    grants(role),
                    watched,
                    "{file}: Role in {:?}",
                    role["namespace"]
                );
                assert_bound(&rendered, role, "RoleBinding");
            }
        } else {
            assert_eq!(cluster_roles.len(), 1, "{file}: one ClusterRole");
            assert!(watched_roles.is_empty(), "{file}: no other Role");
            assert_eq!(grants(cluster_roles[0]), watched, "{file}: the ClusterRole");
            assert_bound(&rendered, cluster_roles[0], "ClusterRoleBinding");
        }

        if rendered.leader_elect() {
            assert_eq!(lease_roles.len(), 1, "{file}: one Role for the Lease");
            let role = lease_roles[0];
            assert_eq!(role["namespace"], RELEASE_NAMESPACE);
            assert_eq!(
                grants(role),
                expected(Scope::Lease, feature_flags, lockdown)
            );
            assert_bound(&rendered, role, "RoleBinding");
            assert_eq!(rendered.flag_values("--leader-election-id"), [LEASE_ID]);
            assert_eq!(
                rendered.flag_values("--leader-election-namespace"),
                [RELEASE_NAMESPACE]
            );
        } else {
            assert!(
                lease_roles.is_empty(),
                "{file}: no Lease Role without election"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// A real run of the controller against the stand-in.

/// One request, as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    group: String,
    /// `rollouts` or `rollouts/status`.
    resource: String,
    verb: String,
    namespace: Option<String>,
    name: Option<String>,
}

/// Reads a logged request the way the API server's authorizer does; `Err(path)` for a
/// request that is not on a resource (discovery, `/version`).
fn request_of(logged: &Logged) -> Result<Request, String> {
    let segments: Vec<&str> = logged.path.trim_matches('/').split('/').collect();
    let (group, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return Err(logged.path.clone()),
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, rest @ ..] if !rest.is_empty() => (Some(*namespace), rest),
        rest => (None, rest),
    };
    let (resource, name, subresource) = match rest {
        [resource] => (*resource, None, None),
        [resource, name] => (*resource, Some(*name), None),
        [resource, name, sub] => (*resource, Some(*name), Some(*sub)),
        _ => return Err(logged.path.clone()),
    };
    let watch = logged
        .query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (logged.method.as_str(), name) {
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        _ => return Err(format!("{} {}", logged.method, logged.path)),
    };
    let resource = match subresource {
        Some(sub) => format!("{resource}/{sub}"),
        None => resource.to_owned(),
    };
    Ok(Request {
        group: group.to_owned(),
        resource,
        verb: verb.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    })
}

/// The row of the table a request is, if any.
fn row_of(request: &Request) -> Option<&'static Call> {
    CALLS.iter().find(|c| {
        c.group == request.group && c.resource == request.resource && c.verb == request.verb
    })
}

/// Whether the rendered RBAC lets the controller's ServiceAccount make `request`.
fn allowed(rendered: &Rendered, request: &Request) -> bool {
    let matches = |role: &Value| {
        grants(role).iter().any(|(group, resource, verb, name)| {
            group == &request.group
                && resource == &request.resource
                && verb == &request.verb
                && (name.is_empty() || request.name.as_deref() == Some(name.as_str()))
        })
    };
    let cluster_wide = rendered.of_kind("ClusterRole").into_iter().any(matches);
    let in_namespace = request.namespace.as_deref().is_some_and(|ns| {
        rendered
            .of_kind("Role")
            .into_iter()
            .any(|r| r["namespace"].as_str() == Some(ns) && matches(r))
    });
    cluster_wide || in_namespace
}

/// The flags a rendered Deployment gives the controller, less those the test harness sets
/// itself (the listen addresses, `--prometheus`, logging).
fn chart_flags(rendered: &Rendered) -> Vec<String> {
    const HARNESS: [&str; 5] = [
        "--metrics-bind-address",
        "--health-probe-bind-address",
        "--prometheus",
        "--log-format",
        "--log-level",
    ];
    assert_eq!(
        rendered.args.first().map(String::as_str),
        Some("controller"),
        "{}: the container runs `rollgate controller`",
        rendered.file
    );
    rendered.args[1..]
        .iter()
        .filter(|a| !HARNESS.iter().any(|h| a.starts_with(&format!("{h}="))))
        .cloned()
        .collect()
}

/// Flags like the chart's, for a run without the chart tools.
fn fallback_flags(namespace: Option<&str>) -> Vec<String> {
    let mut flags: Vec<String> = [
        "--leader-elect=true",
        "--leader-election-namespace",
        RELEASE_NAMESPACE,
        "--leader-election-id",
        LEASE_ID,
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(namespace) = namespace {
        flags.extend(["--namespace".to_owned(), namespace.to_owned()]);
    }
    flags
}

/// The stand-in with the example's target ConfigMap, a gate credentials Secret, and a
/// controller running with `flags`.
struct Run {
    server: ApiServer,
    controller: Controller,
}

impl Run {
    async fn start(prometheus: &Prometheus, flags: &[String]) -> Self {
        let server = ApiServer::start().await;
        server.put(
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": CONFIG_MAP, "namespace": NAMESPACE},
                "data": {KEY: r#"{"flags":{}}"#}
            }),
            "kubectl",
        );
        server.put(
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": CREDENTIALS, "namespace": NAMESPACE},
                "data": {"token": "cmJhYy10ZXN0LXRva2Vu"}
            }),
            "kubectl",
        );
        let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
        // The gate's own Prometheus address (loopback here), reached with the gate's
        // credentials Secret over plain HTTP, which the operator must allow.
        args.extend([
            "--allow-address",
            prometheus.address.as_str(),
            "--allow-insecure-credentials",
        ]);
        let controller = Controller::start(&server, &prometheus.address, &args);
        Self { server, controller }
    }

    fn api(&self) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("rollgate.dev", "v1alpha1", "Rollout");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "rollouts");
        Api::namespaced_with(self.server.client(), NAMESPACE, &resource)
    }

    async fn wait(&self, what: &str, ok: impl Fn(&Value) -> bool) {
        let start = Instant::now();
        loop {
            let rollout = self
                .server
                .object("rollouts", NAMESPACE, NAME)
                .unwrap_or(Value::Null);
            if ok(&rollout) {
                return;
            }
            assert!(
                start.elapsed() < PATIENCE,
                "{what}: not reached; status {:#}\n{}",
                rollout["status"],
                self.controller.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sets the action annotation to `action`.
    async fn act(&self, action: &str) {
        let patch = json!({"metadata": {"annotations": {"rollgate.dev/action": action}}});
        self.api()
            .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate the Rollout");
    }

    /// Applies the plan, waits for the second stage, pauses it with the action annotation,
    /// resumes it and pauses it again at the same stage (the second `Paused` Event repeats
    /// the first), then stops the controller with SIGTERM; returns every request it sent.
    async fn exercise(mut self, plan: &Value) -> Vec<Logged> {
        self.api()
            .patch(NAME, &PatchParams::apply("kubectl"), &Patch::Apply(plan))
            .await
            .expect("apply the Rollout");
        self.wait("the second stage", |r| r["status"]["stage"] == 1)
            .await;
        self.act("pause").await;
        self.wait("Paused, the annotation removed", |r| {
            r["status"]["phase"] == "Paused"
                && r["metadata"]["annotations"]["rollgate.dev/action"].is_null()
        })
        .await;
        self.act("resume").await;
        self.wait("resumed", |r| {
            r["status"]["phase"] == "Progressing"
                && r["metadata"]["annotations"]["rollgate.dev/action"].is_null()
        })
        .await;
        self.act("pause").await;
        self.wait("Paused again at the same stage", |r| {
            r["status"]["phase"] == "Paused"
                && r["status"]["stage"] == 1
                && r["metadata"]["annotations"]["rollgate.dev/action"].is_null()
        })
        .await;
        // The Recorder sends the repeat in the background: wait for its PATCH.
        let start = Instant::now();
        while !self
            .server
            .requests()
            .iter()
            .any(|r| r.on("events") && r.method == "PATCH")
            && start.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let exit = self.controller.terminate(Duration::from_secs(30));
        assert!(
            exit.is_some_and(|s| s.success()),
            "SIGTERM ends the controller cleanly: {exit:?}\n{}",
            self.controller.log()
        );
        self.server.requests()
    }
}

/// Waits until Prometheus answers the error-rate query with a value (two scrapes in).
async fn wait_for_error_rate(prometheus: &Prometheus) {
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/query", prometheus.address);
    let start = Instant::now();
    loop {
        let answer: Option<Value> =
            match http.get(&url).query(&[("query", ERROR_RATE)]).send().await {
                Ok(response) => response
                    .bytes()
                    .await
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok()),
                Err(_) => None,
            };
        let value = answer
            .as_ref()
            .and_then(|a| a["data"]["result"][0]["value"][1].as_str())
            .and_then(|v| v.parse::<f64>().ok());
        if value.is_some() {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "Prometheus never answered the error-rate query; last answer {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The example plan with a short first stage, a long second one, one-second checkpoints,
/// and the error-rate gate querying Prometheus at its own address with a credentials Secret.
fn plan(prometheus: &str) -> Value {
    let text = std::fs::read_to_string(root().join("examples/passenger-favorites-matching.yaml"))
        .expect("read the example");
    let mut plan: Value = serde_saphyr::from_str(&text).expect("the example parses");
    for (stage, duration) in ["1s", "10m", "10m"].iter().enumerate() {
        plan["spec"]["stages"][stage]["duration"] = json!(duration);
    }
    plan["spec"]["analysis"]["interval"] = json!("1s");
    // A slow machine may miss a few scrapes; a pause for missing data is not what this
    // test is about.
    plan["spec"]["analysis"]["errorLimit"] = json!(60);
    let gates = plan["spec"]["analysis"]["gates"]
        .as_array_mut()
        .expect("gates");
    gates.retain(|g| g["name"] != "determinism");
    gates[0]["prometheus"]["query"] = json!(ERROR_RATE);
    gates[0]["prometheus"]["address"] = json!(prometheus);
    gates[0]["prometheus"]["secretRef"] = json!({"name": CREDENTIALS});
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_of_a_real_run_is_in_the_table_and_allowed_by_the_chart() {
    let Some(binary) = support::prometheus::binary() else {
        return;
    };
    let tools = chart_tools();
    let app = App::start();
    app.set_rate(200, 100.0);
    app.set_rate(500, 0.0);
    let prometheus = Prometheus::start(&binary, &[("backend", app.target())], RULES).await;
    wait_for_error_rate(&prometheus).await;
    let plan = plan(&prometheus.address);

    // The controller runs with the flags the chart gives it (so they must parse), for the
    // default values (every namespace) and the namespaced variant, both at once.
    let charts = tools.then(|| {
        (
            render(&root().join("charts/rollgate/ci/default-values.yaml")),
            render(&root().join("charts/rollgate/ci/namespaced-values.yaml")),
            render(&root().join("charts/rollgate/ci/lockdown-values.yaml")),
        )
    });
    let (all_flags, namespaced_flags, lockdown_flags) = match &charts {
        Some((cluster, namespaced, lockdown)) => (
            chart_flags(cluster),
            chart_flags(namespaced),
            chart_flags(lockdown),
        ),
        None => {
            let mut lockdown = fallback_flags(None);
            lockdown.extend([
                "--default-service-account".to_owned(),
                TENANT_ACCOUNT.to_owned(),
            ]);
            (
                fallback_flags(None),
                fallback_flags(Some(NAMESPACE)),
                lockdown,
            )
        }
    };
    assert!(
        lockdown_flags.contains(&format!("--default-service-account={TENANT_ACCOUNT}"))
            || lockdown_flags.contains(&TENANT_ACCOUNT.to_owned()),
        "the lockdown run acts as {TENANT_ACCOUNT}: {lockdown_flags:?}"
    );
    assert!(
        namespaced_flags.contains(&format!("--namespace={NAMESPACE}"))
            || namespaced_flags.contains(&NAMESPACE.to_owned()),
        "the namespaced run watches {NAMESPACE}: {namespaced_flags:?}"
    );
    let everywhere = Run::start(&prometheus, &all_flags).await;
    let one_namespace = Run::start(&prometheus, &namespaced_flags).await;
    let locked_down = Run::start(&prometheus, &lockdown_flags).await;
    // What a team gives its ServiceAccount (README "Tenancy"): its Secret, its ConfigMap.
    let tenant = format!("system:serviceaccount:{NAMESPACE}:{TENANT_ACCOUNT}");
    locked_down
        .server
        .grant(&tenant, "get", "secrets", NAMESPACE, Some(CREDENTIALS));
    for verb in ["get", "patch"] {
        locked_down
            .server
            .grant(&tenant, verb, "configmaps", NAMESPACE, Some(CONFIG_MAP));
    }
    let (all_log, one_log, lockdown_log) = tokio::join!(
        everywhere.exercise(&plan),
        one_namespace.exercise(&plan),
        locked_down.exercise(&plan)
    );

    let mut seen: BTreeSet<(&str, &str, &str)> = BTreeSet::new();
    let mut unknown = Vec::new();
    let mut runs: Vec<(&str, Vec<Request>)> = Vec::new();
    let mut impersonated_calls = 0;
    for (label, log) in [
        ("all namespaces", &all_log),
        ("namespaced", &one_log),
        ("lockdown", &lockdown_log),
    ] {
        let mut requests = Vec::new();
        for logged in log {
            let request = match request_of(logged) {
                Ok(request) => request,
                Err(path) => {
                    unknown.push(format!("{label}: not a resource request: {path}"));
                    continue;
                }
            };
            if let Some(user) = &logged.impersonated {
                // Made as the tenant: RBAC checks the tenant's rights, and the controller's
                // right to impersonate it.
                impersonated_calls += 1;
                seen.insert(IMPERSONATE);
                let call = (
                    request.group.as_str(),
                    request.resource.as_str(),
                    request.verb.as_str(),
                );
                if label != "lockdown" || user != &tenant || !TENANT_CALLS.contains(&call) {
                    unknown.push(format!(
                        "{label}: {request:?} impersonating {user} is not a tenant call of lockdown"
                    ));
                }
                if !logged.impersonated_groups.is_empty() || logged.status == 403 {
                    unknown.push(format!(
                        "{label}: {logged:?} asked for groups or was refused"
                    ));
                }
                continue;
            }
            match row_of(&request) {
                Some(call) => {
                    seen.insert((call.group, call.resource, call.verb));
                    let in_lease_namespace =
                        request.namespace.as_deref() == Some(RELEASE_NAMESPACE);
                    let right_place = match call.scope {
                        Scope::Lease => {
                            in_lease_namespace
                                && (call.verb == "create"
                                    || request.name.as_deref() == Some(LEASE_ID))
                        }
                        Scope::Watched => !in_lease_namespace,
                        Scope::ApiServer => request.namespace.as_deref() == Some("default"),
                    };
                    if !right_place {
                        unknown.push(format!("{label}: {request:?} is outside the row's scope"));
                    }
                }
                None => unknown.push(format!("{label}: {request:?} is not in the table")),
            }
            requests.push(request);
        }
        runs.push((label, requests));
    }
    assert!(
        unknown.is_empty(),
        "requests the table does not cover:\n{}",
        unknown.join("\n")
    );
    // The Event PATCH is the repeat of an Event the same run created: the Recorder folds
    // the second `Paused` into the first one's series, on the object it created.
    for (label, log) in [
        ("all namespaces", &all_log),
        ("namespaced", &one_log),
        ("lockdown", &lockdown_log),
    ] {
        let created: Vec<(String, String)> = log
            .iter()
            .filter(|r| r.on("events") && r.method == "POST" && r.status < 300)
            .filter_map(|r| {
                let body = r.body.as_ref()?;
                Some((
                    body["metadata"]["name"].as_str()?.to_owned(),
                    body["reason"].as_str().unwrap_or_default().to_owned(),
                ))
            })
            .collect();
        let patched: Vec<&Logged> = log
            .iter()
            .filter(|r| r.on("events") && r.method == "PATCH" && r.status < 300)
            .collect();
        assert!(
            !patched.is_empty(),
            "{label}: the repeated Paused Event was never patched; Events created: {created:?}"
        );
        for patch in patched {
            let name = patch.name.as_deref().unwrap_or_default();
            assert!(
                created
                    .iter()
                    .any(|(created, reason)| created == name && reason == "Paused"),
                "{label}: PATCH of Event {name}, which is not the Paused Event the run created: \
                 {created:?}"
            );
            assert!(
                patch.body.as_ref().is_some_and(|b| !b["series"].is_null()),
                "{label}: the PATCH records a series: {:?}",
                patch.body
            );
        }
    }
    for call in CALLS.iter().filter(|c| c.unreached.is_none()) {
        assert!(
            seen.contains(&(call.group, call.resource, call.verb)),
            "the run never made {} {} {} ({}): mark why in the table, or fix the run",
            call.verb,
            call.group,
            call.resource,
            call.source
        );
    }

    assert!(
        impersonated_calls > 0,
        "the lockdown run read its Secret and wrote its target as {tenant}"
    );

    let Some((cluster, namespaced, lockdown)) = &charts else {
        return;
    };
    let impersonate = Request {
        group: String::new(),
        resource: "serviceaccounts".to_owned(),
        verb: "impersonate".to_owned(),
        namespace: Some(NAMESPACE.to_owned()),
        name: Some(TENANT_ACCOUNT.to_owned()),
    };
    assert!(
        allowed(lockdown, &impersonate),
        "{}: the controller may impersonate the tenant",
        lockdown.file
    );
    let mut denied = BTreeSet::new();
    for (label, requests) in &runs {
        let rendered = match *label {
            "all namespaces" => cluster,
            "lockdown" => lockdown,
            _ => namespaced,
        };
        for request in requests {
            // The one cluster-wide request of a namespaced controller: whether the
            // FeatureFlag CRD is installed. A namespaced install cannot grant it; the
            // controller then reads FeatureFlag targets with GET instead of watching them.
            let probe = request.resource == "featureflags"
                && request.namespace.is_none()
                && rendered.of_kind("ClusterRole").is_empty();
            if !probe && !allowed(rendered, request) {
                denied.insert(format!("{label} ({}): {request:?}", rendered.file));
            }
        }
    }
    assert!(
        denied.is_empty(),
        "requests the chart's RBAC denies:\n{}",
        denied.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn requests_are_read_as_the_authorizer_reads_them() {
    let logged = |method: &str, path: &str, query: &str| Logged {
        at: Instant::now(),
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        verb: support::apiserver::Verb::Other,
        plural: None,
        namespace: None,
        name: None,
        subresource: None,
        dry_run: false,
        field_manager: None,
        body: None,
        status: 200,
        changed: false,
        impersonated: None,
        impersonated_groups: Vec::new(),
    };
    let read = |method, path, query| request_of(&logged(method, path, query)).expect("a request");
    let status = read(
        "PATCH",
        "/apis/rollgate.dev/v1alpha1/namespaces/kaviar/rollouts/r/status",
        "fieldManager=x",
    );
    assert_eq!(
        (
            status.group.as_str(),
            status.resource.as_str(),
            status.verb.as_str()
        ),
        ("rollgate.dev", "rollouts/status", "patch")
    );
    assert_eq!(status.namespace.as_deref(), Some("kaviar"));
    let watch = read("GET", "/api/v1/configmaps", "labelSelector=a&watch=true");
    assert_eq!((watch.verb.as_str(), watch.namespace), ("watch", None));
    let list = read("GET", "/api/v1/namespaces/kaviar/configmaps", "limit=500");
    assert_eq!(list.verb, "list");
    let get = read("GET", "/api/v1/namespaces/kaviar/secrets/s", "");
    assert_eq!((get.verb.as_str(), get.name.as_deref()), ("get", Some("s")));
    let create = read(
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/rollgate-system/leases",
        "",
    );
    assert_eq!(
        (create.group.as_str(), create.verb.as_str()),
        ("coordination.k8s.io", "create")
    );
    assert!(request_of(&logged("GET", "/version", "")).is_err());
    assert!(request_of(&logged("GET", "/apis", "")).is_err());
}
