#!/usr/bin/env bash
# Installs Debian's `lua5.1` and `lua5.4` packages, the real Lua interpreters that
# tests/chart/argocd_health.rs runs the Argo CD health check (gitops/argocd/health.lua) with, unless
# both are already on PATH. Argo CD runs health checks in gopher-lua, a Lua 5.1; 5.4 is the
# current language, so the script is held to what both accept. Idempotent.
set -euo pipefail

if command -v lua5.1 >/dev/null && command -v lua5.4 >/dev/null; then
  echo "lua already installed: $(lua5.1 -v 2>&1 | head -n 1); $(lua5.4 -v 2>&1 | head -n 1)"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends lua5.1 lua5.4

lua5.1 -v 2>&1 | head -n 1
lua5.4 -v 2>&1 | head -n 1
