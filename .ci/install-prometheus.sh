#!/usr/bin/env bash
# Installs Debian's `prometheus` package (the server and promtool) for the tests that need a
# real Prometheus, unless both are already on PATH. Idempotent. The package may start a
# system service; it is stopped and disabled so the tests' own servers find their ports free.
set -euo pipefail

if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  echo "prometheus already installed: $(prometheus --version 2>&1 | head -n 1)"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends prometheus

# The tests start their own servers: keep the packaged one from holding port 9090.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi
if command -v service >/dev/null; then
  $sudo service prometheus stop >/dev/null 2>&1 || true
fi
$sudo update-rc.d prometheus disable >/dev/null 2>&1 || true

prometheus --version 2>&1 | head -n 1
promtool --version 2>&1 | head -n 1
