#!/usr/bin/env bash
# CI for the container image (Docker cannot run here): lint the Dockerfile with hadolint,
# check that the Dockerfile's build step is still exactly the command below, then run that
# command and check the binary it makes starts. Called from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# The one build command of the image; the Dockerfile must RUN exactly this.
BUILD="cargo build --release --locked"

python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    -r .ci/requirements-ship.txt

echo "ship: hadolint Dockerfile"
hadolint Dockerfile

echo "ship: the Dockerfile builds with '$BUILD'"
runs=$(grep -E '^RUN ' Dockerfile | grep -c 'cargo build' || true)
if [ "$runs" != 1 ] || ! grep -qxF "RUN $BUILD" Dockerfile; then
    echo "ship: the Dockerfile must have exactly one cargo build step, 'RUN $BUILD'" >&2
    exit 1
fi

echo "ship: $BUILD"
start=$(date +%s)
$BUILD
echo "ship: release build took $(( $(date +%s) - start )) s"

# The image's entrypoint with its default argument must parse (no cluster needed for --help).
target/release/rollgate controller --help >/dev/null
echo "ship: target/release/rollgate controller --help runs"
