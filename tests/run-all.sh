#!/usr/bin/env bash
# The project's test command (README "Run the tests"; CI runs it through .ci/run).
# Starts what the tests need, then: format and lint checks, the third-party SCIM conformance
# suite against the real server on SQLite and PostgreSQL, and the Rust test suites.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Each step says how long the run has taken so far, so a slow CI run shows where the time went.
log() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
# A clean clone gains nothing from incremental caches; writing them costs time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# --- PostgreSQL at 127.0.0.1:5432 (trust auth): start the machine's cluster if it is down.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
pg_isready -h 127.0.0.1 -p 5432 || { echo "PostgreSQL is not reachable at 127.0.0.1:5432" >&2; exit 1; }
export PALISADE_TEST_POSTGRES_URL="${PALISADE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "building the binaries"
cargo build --workspace --bins --locked
log "cross-platform agents, Windows MSI and service"; bash packaging/cross/check.sh
log "Linux package (.deb, systemd unit)"; bash packaging/linux/check.sh
log "macOS package (launchd daemon, pkg scripts)"; bash packaging/macos/check.sh

# --- Third-party SCIM conformance: scim-sanity 0.7.4 (PyPI), strict mode, on both stores.
log "scim-sanity conformance probe"
venv="$root/.venv"
if [ ! -x "$venv/bin/scim-sanity" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check scim-sanity==0.7.4
fi
probe() { # $1 = database URL
  local dir out port token rc
  dir=$(mktemp -d)
  "$root/target/debug/palisade-control-plane" serve --database-url "$1" --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 \
    >"$dir/stdout" 2>"$dir/stderr" &
  local pid=$!
  for _ in $(seq 1 100); do grep -q '^SCIM base URL: ' "$dir/stdout" 2>/dev/null && break; sleep 0.1; done
  url=$(sed -n 's/^SCIM base URL: //p' "$dir/stdout")
  token=$(sed -n 's/^SCIM bearer token .*: //p' "$dir/stdout")
  if [ -z "$url" ] || [ -z "$token" ]; then
    echo "control plane did not start:" >&2; cat "$dir/stderr" >&2; kill "$pid" 2>/dev/null || true; return 1
  fi
  rc=0
  "$venv/bin/scim-sanity" probe "$url" --token "$token" --i-accept-side-effects >"$dir/probe" 2>&1 || rc=$?
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  grep -E '^\s+[0-9]+ passed' "$dir/probe" || true
  if [ "$rc" -ne 0 ] || grep -qE '\[(FAIL|ERROR)\]' "$dir/probe" || ! grep -q 'All tests passed' "$dir/probe"; then
    cat "$dir/probe" >&2
    echo "scim-sanity found failures against $1" >&2
    return 1
  fi
}
sqlite_dir=$(mktemp -d)
probe "sqlite://$sqlite_dir/conformance.db"
pg_db="palisade_conformance_$$"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $pg_db" >/dev/null
probe "postgres://postgres@127.0.0.1:5432/$pg_db"
psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null || true

# --- Fuzzing smoke: every cargo-fuzz target for a few seconds (the long runs are in
# fuzz/RESULTS.md and SECURITY.md).
log "admin API fuzzing from its OpenAPI document (schemathesis)"; bash tests/api-fuzz.sh 60

log "fuzz smoke (10 s per target)"
bash fuzz/run.sh 10

log "OIDC test dependencies (chromium, chromedriver, oidc-provider npm packages)"
bash tests/setup-test-deps.sh

log "Rust tests (unit, integration, end-to-end) on SQLite and PostgreSQL"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
log "all checks passed"

