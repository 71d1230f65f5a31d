#!/usr/bin/env bash
# CI for examples/quickstart/: every Kubernetes manifest validated strictly with
# kubernetes-validate (installed by .ci/chart.sh), and the Rollout, a custom resource the
# validator has no schema for, checked with `rollgate lint`. Called from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - examples/quickstart <<'PY'
import pathlib
import sys

import kubernetes_validate
import yaml

KUBE_VERSION = "1.33.0"
problems = []
checked = 0
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.yaml")):
    for index, obj in enumerate(yaml.safe_load_all(path.read_text())):
        if not obj:
            continue
        where = f"{path}: document {index + 1}: {obj.get('kind')} {obj.get('metadata', {}).get('name')}"
        if obj.get("apiVersion", "").startswith("rollgate.dev/"):
            print(f"  {where}: a Rollout, checked by rollgate lint")
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
            checked += 1
            print(f"  {where}: valid")
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{where}: {'/'.join(str(p) for p in e.path)}: {e.message}")
        except Exception as e:  # an unknown kind or version
            problems.append(f"{where}: {e}")
for p in problems:
    print(f"examples: {p}", file=sys.stderr)
if problems or checked == 0:
    sys.exit(1)
print(f"examples: {checked} manifests valid for Kubernetes {KUBE_VERSION}")
PY

cargo run -q --locked -- lint examples/quickstart/
