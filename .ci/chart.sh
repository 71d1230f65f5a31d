#!/usr/bin/env bash
# CI for the Helm chart: install the tools (PyPI; no helm binary), then lint and render the
# chart for its default values and every charts/rollgate/ci/*.yaml, validate each rendered
# object with kubernetes-validate (strict), and hadolint the Dockerfile. Called from .ci/run;
# tests/chart/chart_*.rs (run by cargo test) use the same tools.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r .ci/requirements-ship.txt

python3 .ci/chart.py check
echo "chart: hadolint Dockerfile"
hadolint Dockerfile
