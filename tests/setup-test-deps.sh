#!/usr/bin/env bash
# Installs what the OpenID Connect and Claude Code client tests need on a fresh Debian machine
# (idempotent, run as root or with sudo available): headless Chromium + chromedriver for the
# browser tests, the npm packages of the test OpenID Provider (tests/oidc-provider), bubblewrap +
# socat (the client's sandbox) and the pinned Claude Code client (tests/claude-code).
# Node.js (>= 20.19) must be there.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v chromedriver >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium and chromium-driver"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi

command -v node >/dev/null 2>&1 || { echo "Node.js is required (node not found on PATH)" >&2; exit 1; }
if [ ! -f tests/oidc-provider/node_modules/.package-lock.json ] \
  || [ tests/oidc-provider/package-lock.json -nt tests/oidc-provider/node_modules/.package-lock.json ]; then
  echo "==> npm ci in tests/oidc-provider"
  npm ci --prefix tests/oidc-provider --no-audit --no-fund --loglevel=error
fi

if ! command -v bwrap >/dev/null 2>&1 || ! command -v socat >/dev/null 2>&1; then
  echo "==> installing bubblewrap and socat (the Claude Code client's sandbox)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap socat
fi

if ! command -v tinyproxy >/dev/null 2>&1; then
  echo "==> installing tinyproxy (a real corporate HTTP CONNECT proxy for the agent's relay)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tinyproxy
  # Only the binary is wanted: the tests start their own instance with their own config.
  as_root systemctl disable --now tinyproxy >/dev/null 2>&1 || true
  as_root service tinyproxy stop >/dev/null 2>&1 || true
fi

if [ ! -f tests/claude-code/node_modules/.package-lock.json ] \
  || [ tests/claude-code/package-lock.json -nt tests/claude-code/node_modules/.package-lock.json ]; then
  echo "==> npm ci in tests/claude-code (pinned Claude Code client, ~400 MB)"
  npm ci --prefix tests/claude-code --no-audit --no-fund --loglevel=error
fi
