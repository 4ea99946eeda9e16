#!/usr/bin/env bash
# Installs what the OpenID Connect tests need on a fresh Debian machine (idempotent, run as root
# or with sudo available): headless Chromium + chromedriver for the browser tests, and the npm
# packages of the test OpenID Provider (tests/oidc-provider). Node.js (>= 20.19) must be there.
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
