#!/usr/bin/env bash
# Prints the krew plugin manifest (krew.sigs.k8s.io/v1alpha2 Plugin) for one release:
#   .ci/krew-manifest.sh TAG BASE_URL DIR
# DIR holds rollgate-TAG-OS-ARCH.tar.gz for linux and darwin on amd64 and arm64 (each archive
# has a folder rollgate-TAG-OS-ARCH with the binary kubectl-rollgate and LICENSE); BASE_URL is
# where those archives are downloaded from. Fails when an archive is missing.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 TAG BASE_URL DIR" >&2
  exit 2
fi
tag=$1 base=$2 dir=$3

cat <<HEAD
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: rollgate
spec:
  version: ${tag}
  homepage: https://github.com/rollgate/rollgate
  shortDescription: Operate rollgate Rollouts (progressive feature-flag delivery)
  description: |
    Shows, watches and operates rollgate Rollouts: status with the gates'
    last values, pause, resume, promote, abort, retry and release reports;
    lints and simulates rollout plans before they reach a cluster.
  platforms:
HEAD

for os in linux darwin; do
  for arch in amd64 arm64; do
    name="rollgate-${tag}-${os}-${arch}"
    archive="${dir}/${name}.tar.gz"
    if [ ! -f "$archive" ]; then
      echo "krew-manifest: missing $archive" >&2
      exit 1
    fi
    sum=$(sha256sum "$archive" | cut -d' ' -f1)
    cat <<PLATFORM
  - selector:
      matchLabels:
        os: ${os}
        arch: ${arch}
    uri: ${base}/${name}.tar.gz
    sha256: ${sum}
    files:
    - from: ${name}/kubectl-rollgate
      to: .
    - from: ${name}/LICENSE
      to: .
    bin: kubectl-rollgate
PLATFORM
  done
done
