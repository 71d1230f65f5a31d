#!/usr/bin/env python3
"""Renders, lints and validates the Helm chart with the Helm engine of the helm-python-sdk
package (no helm binary) and kubernetes-validate.

    chart.py check            lint + render + validate the default values and every
                              charts/rollgate/ci/*.yaml; exit 1 on any finding
    chart.py rbac VALUES.yaml print the controller's rendered RBAC of one values file as
                              JSON, for tests/chart/chart_rbac.rs (the ClusterRoles aggregated
                              into view/edit/admin are people's, listed apart)
    chart.py render VALUES.yaml
                              print every rendered object of one values file as JSON, for
                              tests/chart/chart_render.rs

The ServiceMonitor (monitoring.coreos.com/v1) is a custom resource kubernetes-validate has no
schema for: it is checked here instead (its apiVersion, that it selects the metrics Service's
labels and scrapes its port by name). Every other kind is validated strictly.
"""

import json
import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "rollgate"
RELEASE = "rollgate"
NAMESPACE = "rollgate-system"
KUBE_VERSION = "1.33.0"
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def values_files():
    return sorted((CHART / "ci").glob("*.yaml"))


def load_values(path):
    if path is None:
        return {}
    return yaml.safe_load(path.read_text()) or {}


def render(values):
    """The rendered objects, as (template, object) pairs."""
    import helm_python as helm

    chart = helm.Chart.load(str(CHART))
    chart.validate_schema(values)
    manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append((template, doc))
    return objects


AGGREGATE_LABELS = tuple(f"rbac.authorization.k8s.io/aggregate-to-{r}"
                         for r in ("view", "edit", "admin"))


def aggregated(obj):
    """Whether `obj` is a ClusterRole aggregated into a built-in role (people's, bound to
    no one by the chart)."""
    labels = obj.get("metadata", {}).get("labels") or {}
    return obj.get("kind") == "ClusterRole" and any(labels.get(k) == "true"
                                                    for k in AGGREGATE_LABELS)


def lint(values):
    import helm_python as helm

    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE,
                       kube_version="v" + KUBE_VERSION)
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
    problems += [{"error": e} for e in report.get("errors") or []]
    return problems


def check_service_monitor(monitor, objects):
    problems = []
    if monitor.get("apiVersion") != "monitoring.coreos.com/v1":
        problems.append("ServiceMonitor apiVersion is not monitoring.coreos.com/v1")
    services = [o for _, o in objects if o.get("kind") == "Service"]
    selector = monitor.get("spec", {}).get("selector", {}).get("matchLabels", {})
    ports = [e.get("port") for e in monitor.get("spec", {}).get("endpoints", [])]
    matched = [s for s in services
               if selector and all(s["metadata"].get("labels", {}).get(k) == v
                                   for k, v in selector.items())]
    if not matched:
        problems.append("ServiceMonitor selects no Service of the chart")
    for service in matched:
        names = {p.get("name") for p in service["spec"].get("ports", [])}
        for port in ports:
            if port not in names:
                problems.append(f"ServiceMonitor scrapes port {port!r}, which the Service lacks")
    if not ports:
        problems.append("ServiceMonitor has no endpoints")
    return problems


def validate(objects):
    import kubernetes_validate

    problems = []
    for template, obj in objects:
        kind = obj.get("kind")
        where = f"{template}: {kind} {obj.get('metadata', {}).get('name')}"
        if kind == "ServiceMonitor":
            problems += [f"{where}: {p}" for p in check_service_monitor(obj, objects)]
            print(f"  {where}: no Kubernetes schema (custom resource); checked by chart.py")
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = "/".join(str(p) for p in e.path)
            problems.append(f"{where}: {path}: {e.message}")
        except Exception as e:  # an unknown kind or version
            problems.append(f"{where}: {e}")
    return problems


def expect_refused(values, why):
    """Renders `values` and returns a problem unless the chart refuses them."""
    try:
        render(values)
    except Exception:
        return []
    return [f"the chart accepted values it must refuse ({why}): {values}"]


def check():
    problems = []
    variants = [None] + values_files()
    for path in variants:
        label = "default values" if path is None else str(path.relative_to(ROOT))
        print(f"chart: {label}")
        values = load_values(path)
        found = [f"lint: {m.get('path', '')}: {m.get('error')}" for m in lint(values)]
        try:
            objects = render(values)
        except Exception as e:
            problems.append(f"{label}: render failed: {e}")
            continue
        found += validate(objects)
        kinds = sorted({o["kind"] for _, o in objects})
        print(f"  rendered {len(objects)} objects: {', '.join(kinds)}")
        problems += [f"{label}: {p}" for p in found]
    problems += expect_refused({"rbac": {"scope": "namespace"}},
                               "namespaced RBAC without namespaces")
    problems += expect_refused({"replicaCount": 2, "leaderElection": {"enabled": False}},
                               "two replicas without leader election")
    problems += expect_refused({"controller": {"logFormat": "xml"}}, "a log format")
    problems += expect_refused({"controlle": {}}, "an unknown key")
    problems += expect_refused({"crds": {"keep": "yes"}}, "crds.keep not a boolean")
    problems += expect_refused({"serviceMonitor": {"namespace": "Not_A_Namespace"}},
                               "a ServiceMonitor namespace")
    for p in problems:
        print(f"chart: FAILED: {p}", file=sys.stderr)
    print(f"chart: {len(variants)} values variants checked, {len(problems)} problems")
    return 1 if problems else 0


def rbac(path):
    objects = render(load_values(pathlib.Path(path)))
    out = [{"kind": o["kind"], "name": o["metadata"]["name"],
            "namespace": o["metadata"].get("namespace"),
            "rules": o.get("rules", []), "roleRef": o.get("roleRef"),
            "subjects": o.get("subjects", [])}
           for _, o in objects if o["kind"] in RBAC_KINDS and not aggregated(o)]
    deployment = [o for _, o in objects if o["kind"] == "Deployment"]
    args = deployment[0]["spec"]["template"]["spec"]["containers"][0]["args"] if deployment else []
    json.dump({"release_namespace": NAMESPACE, "objects": out, "args": args}, sys.stdout)
    return 0


def render_all(path):
    objects = render(load_values(pathlib.Path(path)))
    json.dump({"release_namespace": NAMESPACE,
               "objects": [{"template": t, "object": o} for t, o in objects]}, sys.stdout)
    return 0


def main(argv):
    if len(argv) == 2 and argv[1] == "check":
        return check()
    if len(argv) == 3 and argv[1] == "rbac":
        return rbac(argv[2])
    if len(argv) == 3 and argv[1] == "render":
        return render_all(argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
