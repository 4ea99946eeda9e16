#!/usr/bin/env bash
# Builds palisade-agent for Windows (x86_64-pc-windows-gnu, mingw) and macOS
# (aarch64-apple-darwin, x86_64-apple-darwin, cargo-zigbuild), checks the artefacts, and runs
# the Windows agent under wine against the real Linux control plane (enroll + run until the
# drop-in is written). See packaging/cross/README.md. Installs its own tool chain when missing
# (apt packages, rustup targets, a Python venv in .venv-cross with ziglang + cargo-zigbuild).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

WIN_TARGET=x86_64-pc-windows-gnu
MAC_TARGETS=(aarch64-apple-darwin x86_64-apple-darwin)
E2E_TIMEOUT=${PALISADE_CROSS_E2E_TIMEOUT:-60}

start=$(date +%s)
log() { printf '[cross %4ss] %s\n' "$(($(date +%s) - start))" "$*"; }
die() { printf '[cross] FAIL: %s\n' "$*" >&2; exit 1; }

# --- cleanup: every process this script starts is tracked by PID; temp dirs removed.
tmp=""
cp_pid=""
agent_pid=""
wineserver=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
  [ -n "$cp_pid" ] && kill "$cp_pid" 2>/dev/null
  [ -n "${upstream_pid:-}" ] && kill "$upstream_pid" 2>/dev/null
  # Stops every wine process of OUR private prefix only (and its wineserver).
  if [ -n "$tmp" ] && [ -n "$wineserver" ]; then
    for prefix in "$tmp/wineprefix" "$tmp/msiprefix"; do
      [ -d "$prefix" ] && WINEPREFIX="$prefix" "$wineserver" -k 2>/dev/null
    done
  fi
  [ -n "$agent_pid" ] && wait "$agent_pid" 2>/dev/null
  [ -n "$cp_pid" ] && wait "$cp_pid" 2>/dev/null
  [ -n "$tmp" ] && rm -rf "$tmp"
  if [ "$rc" -ne 0 ]; then
    printf '[cross] FAILED (exit %s) after %ss\n' "$rc" "$(($(date +%s) - start))" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. tool chain (idempotent, quick when present) --------------------------------------
log "checking the tool chain"
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }
find_wine() {
  if [ -x /usr/lib/wine/wine64 ]; then echo /usr/lib/wine/wine64; else command -v wine64 || true; fi
}
find_wineserver() {
  if [ -x /usr/lib/wine/wineserver ]; then echo /usr/lib/wine/wineserver; else command -v wineserver || true; fi
}
missing=()
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
[ -n "$(find_wine)" ] || missing+=(wine64)
command -v file >/dev/null || missing+=(file)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
wine=$(find_wine)
wineserver=$(find_wineserver)
[ -n "$wine" ] || die "wine64 not found after installation"
[ -n "$wineserver" ] || die "wineserver not found after installation"

installed_targets=$(rustup target list --installed)
for t in "$WIN_TARGET" "${MAC_TARGETS[@]}"; do
  if ! grep -qx "$t" <<<"$installed_targets"; then
    log "rustup target add $t"
    rustup target add "$t"
  fi
done

venv="$root/.venv-cross"
if [ ! -x "$venv/bin/cargo-zigbuild" ] || ! "$venv/bin/python" -c 'import ziglang' 2>/dev/null; then
  log "creating $venv (ziglang, cargo-zigbuild from PyPI)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check ziglang cargo-zigbuild
fi
# cargo-zigbuild runs zig via the venv's `python -m ziglang`.
export PATH="$venv/bin:$PATH"

# --- 2. builds (dev profile) -------------------------------------------------------------
log "cargo build -p palisade-agent --target $WIN_TARGET"
cargo build --locked -p palisade-agent --target "$WIN_TARGET"
# Windows-only code (the Win32 access-list calls) is linted here: the Linux clippy run skips it.
log "cargo clippy -p palisade-agent --target $WIN_TARGET -- -D warnings"
cargo clippy --locked -p palisade-agent --target "$WIN_TARGET" --all-targets -- -D warnings
for t in "${MAC_TARGETS[@]}"; do
  log "cargo zigbuild -p palisade-agent --target $t"
  cargo zigbuild --locked -p palisade-agent --target "$t"
done

# --- 3. artefact checks ------------------------------------------------------------------
exe="$root/target/$WIN_TARGET/debug/palisade-agent.exe"
check_file() { # $1 = path, $2 = extended regex the `file` description must match
  [ -f "$1" ] || die "missing artefact $1"
  local desc
  desc=$(file -b "$1")
  grep -Eq "$2" <<<"$desc" || die "$1: expected /$2/, file says: $desc"
  log "ok  $(du -h "$1" | cut -f1)	$(stat -c %s "$1") bytes	${1#"$root"/}: $desc"
}
check_file "$exe" '^PE32\+ executable .*x86-64'
check_file "$root/target/aarch64-apple-darwin/debug/palisade-agent" '^Mach-O 64-bit (arm64|aarch64) executable'
check_file "$root/target/x86_64-apple-darwin/debug/palisade-agent" '^Mach-O 64-bit x86_64 executable'

# --- 4. Windows agent under wine ---------------------------------------------------------
tmp=$(mktemp -d /tmp/palisade-cross.XXXXXX)
mkdir -p "$tmp/bin" "$tmp/wineprefix" "$tmp/win"
cp "$exe" "$tmp/bin/palisade-agent.exe"

# Test-only stub: wine 8 lacks bcryptprimitives.dll!ProcessPrng, which Rust's std imports.
# Built into the temp dir next to the COPY of the exe; never shipped.
log "building the test-only bcryptprimitives.dll stub for wine"
cat >"$tmp/stub.c" <<'EOF'
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036
BOOL WINAPI ProcessPrng(PBYTE p, SIZE_T n) { return RtlGenRandom(p, (ULONG)n); }
EOF
printf 'LIBRARY bcryptprimitives\nEXPORTS\n    ProcessPrng\n' >"$tmp/stub.def"
x86_64-w64-mingw32-gcc -shared -o "$tmp/bin/bcryptprimitives.dll" "$tmp/stub.c" "$tmp/stub.def" -ladvapi32

export WINEPREFIX="$tmp/wineprefix" WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml=" WINEARCH=win64
unset DISPLAY WAYLAND_DISPLAY
winpath() { printf 'Z:%s' "${1//\//\\}"; } # unix path -> wine's Z: drive path
agent() { timeout 120 "$wine" "$tmp/bin/palisade-agent.exe" "$@"; }

log "wine: palisade-agent.exe --version (first start creates the wine prefix)"
version=$(agent --version 2>"$tmp/version.err") || { cat "$tmp/version.err" >&2; die "palisade-agent.exe --version failed under wine"; }
version=${version%$'\r'}
grep -q '^palisade-agent ' <<<"$version" || die "unexpected --version output: $version"
log "ok  $version"

cp_bin="$root/target/debug/palisade-control-plane"
if [ ! -x "$cp_bin" ]; then
  log "building the Linux control plane"
  cargo build --locked --workspace --bins
fi
log "starting the Linux control plane"
head -c 32 /dev/urandom | base64 >"$tmp/secrets.key"
export PALISADE_SECRETS_KEY_FILE="$tmp/secrets.key" PALISADE_DATABASE_URL="sqlite://$tmp/cp.db"
"$cp_bin" serve --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 \
  >"$tmp/cp.stdout" 2>"$tmp/cp.stderr" &
cp_pid=$!
for _ in $(seq 1 150); do
  grep -q '^SCIM base URL: ' "$tmp/cp.stdout" 2>/dev/null && grep -q '^gRPC agent endpoint: ' "$tmp/cp.stdout" && break
  kill -0 "$cp_pid" 2>/dev/null || break
  sleep 0.2
done
enroll_token=$(sed -n 's/^Agent enrollment token for organisation "default" (shown once): //p' "$tmp/cp.stdout")
grpc_url=$(sed -n 's/^gRPC agent endpoint: //p' "$tmp/cp.stdout")
scim_token=$(sed -n 's/^SCIM bearer token for organisation "default" (shown once): //p' "$tmp/cp.stdout")
scim_url=$(sed -n 's/^SCIM base URL: //p' "$tmp/cp.stdout")
if [ -z "$enroll_token" ] || [ -z "$grpc_url" ] || [ -z "$scim_token" ] || [ -z "$scim_url" ]; then
  cat "$tmp/cp.stdout" "$tmp/cp.stderr" >&2
  die "control plane did not print its endpoints and tokens"
fi
log "control plane up: gRPC $grpc_url, SCIM $scim_url"

# $1 = userName: provisions the user over SCIM, as an IdP would.
scim_create_user() {
  local http
  http=$(curl -sS -o "$tmp/user.json" -w '%{http_code}' -X POST "$scim_url/Users" \
    -H "Authorization: Bearer $scim_token" -H 'Content-Type: application/scim+json' \
    --data "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"$1\"}")
  [ "$http" = 201 ] || { cat "$tmp/user.json" >&2; die "SCIM POST /Users for $1 returned $http"; }
}
# $1 = drop-in path, $2 = PID that must stay alive (optional): waits for valid JSON there.
wait_for_dropin() {
  for _ in $(seq 1 $((E2E_TIMEOUT * 5))); do
    if [ -s "$1" ] && python3 -m json.tool "$1" >/dev/null 2>&1; then return 0; fi
    if [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null; then return 1; fi
    sleep 0.2
  done
  return 1
}

# The MDM method below delivers the key only to verified devices: this organisation trusts
# its MDM's claim of who uses the machine (SECURITY.md explains the trade-off).
"$cp_bin" org settings --org default --trust-mdm-identity true >/dev/null 2>"$tmp/trust.err" \
  || { cat "$tmp/trust.err" >&2; die "org settings --trust-mdm-identity failed"; }
log "SCIM: creating user win@example.com"
scim_create_user win@example.com

state="$tmp/win/state" settings="$tmp/win/settings" claude="$tmp/win/claude"
mkdir -p "$claude"
locs=(--state-dir "$(winpath "$state")" --settings-dir "$(winpath "$settings")" --claude-config-dir "$(winpath "$claude")")

log "wine: palisade-agent.exe enroll"
if ! agent enroll --server "$grpc_url" --enroll-token "$enroll_token" --user win@example.com "${locs[@]}" \
  >"$tmp/enroll.out" 2>"$tmp/enroll.err"; then
  cat "$tmp/enroll.out" "$tmp/enroll.err" >&2
  die "enroll failed under wine"
fi
[ -s "$state/device.json" ] || die "enroll succeeded but wrote no device.json"
log "ok  enrolled: $(tr -d '\r' <"$tmp/enroll.out" | head -n1)"

# Higher-precedence sources the agent must report: the HKLM policy value (in wine's registry)
# and server-managed settings cached by Claude Code in its config directory.
log "wine: reg add HKLM\\SOFTWARE\\Policies\\ClaudeCode /v Settings"
"$wine" reg add 'HKLM\SOFTWARE\Policies\ClaudeCode' /v Settings /t REG_SZ \
  /d '{"permissions":{"deny":["WebFetch"]}}' /f >"$tmp/reg.out" 2>&1 \
  || { cat "$tmp/reg.out" >&2; die "wine reg add failed"; }
printf '{"permissions":{"deny":["WebSearch"]}}' >"$claude/remote-settings.json"

log "control plane: api-key set for the organisation"
printf 'sk-ant-api03-cross-check-key' | "$cp_bin" api-key set --org default >"$tmp/apikey.out" 2>&1 \
  || { cat "$tmp/apikey.out" >&2; die "api-key set failed"; }
# Helper delivery first (the key itself in the developer's key file), the relay further down.
"$cp_bin" org settings --org default --key-delivery helper >"$tmp/helper.out" 2>&1 \
  || { cat "$tmp/helper.out" >&2; die "org settings --key-delivery helper failed"; }

log "wine: palisade-agent.exe run (waiting up to ${E2E_TIMEOUT}s for the drop-in)"
dropin="$settings/managed-settings.d/50-palisade.json"
PALISADE_AGENT_LOG=info "$wine" "$tmp/bin/palisade-agent.exe" run --relay-addr 127.0.0.1:0 "${locs[@]}" >"$tmp/run.out" 2>"$tmp/run.err" &
agent_pid=$!
if ! wait_for_dropin "$dropin" "$agent_pid"; then
  echo "--- agent stderr" >&2; tail -n 40 "$tmp/run.err" >&2
  echo "--- control plane stderr" >&2; tail -n 20 "$tmp/cp.stderr" >&2
  die "the Windows agent wrote no valid $dropin"
fi
log "ok  drop-in written by the Windows agent ($(stat -c %s "$dropin") bytes, valid JSON)"

log "wine: palisade-agent.exe status --json"
status_ok=""
for _ in $(seq 1 10); do
  agent status --json "${locs[@]}" >"$tmp/status.json" 2>"$tmp/status.err" \
    || { cat "$tmp/status.err" >&2; die "status failed under wine"; }
  if python3 - "$tmp/status.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
codes = {w.get("code") for w in s.get("warnings", [])}
sys.exit(0 if s.get("enrolled") and s.get("connected") and s.get("applied_version", 0) >= 1
         and {"windows_hklm_policy", "server_managed_settings"} <= codes else 1)
EOF
  then status_ok=1; break; fi
  sleep 1
done
[ -n "$status_ok" ] || { cat "$tmp/status.json" >&2; die "status --json does not report an enrolled, connected agent with an applied policy and the HKLM and server-managed warnings"; }
log "ok  status: $(python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print(json.dumps({k: s.get(k) for k in ("enrolled","connected","applied_version","last_error","warnings")}))' "$tmp/status.json")"

# The developer's key file: <state>-keys\<owner SID of the Claude dir>\api-key, named by the
# drop-in's apiKeyHelper, and served by `api-key --key-file`.
key_file=$(find "$state-keys" -name api-key -type f 2>/dev/null | head -n1)
[ -n "$key_file" ] || { find "$tmp/win" >&2; die "no developer key file under $state-keys"; }
sid_dir=$(basename "$(dirname "$key_file")")
[[ "$sid_dir" == S-1-* ]] || die "the key directory is not named by a SID: $sid_dir"
python3 - "$dropin" "$sid_dir" <<'EOF' || die "the drop-in's apiKeyHelper does not read the developer's key file"
import json, sys
helper = json.load(open(sys.argv[1]))["apiKeyHelper"]
assert "--key-file" in helper and sys.argv[2] in helper, helper
EOF
served=$(agent api-key --key-file "$(winpath "$key_file")" 2>"$tmp/apikey.err") \
  || { cat "$tmp/apikey.err" >&2; die "api-key --key-file failed under wine"; }
[ "${served%$'\r'}" = sk-ant-api03-cross-check-key ] || die "api-key --key-file printed the wrong key"
log "ok  developer key file ${key_file#"$tmp"/} served by api-key --key-file"

# Access lists: wine maps the DACL the agent sets onto Unix modes, so a protected DACL of
# SYSTEM, Administrators (and the developer) leaves nothing for "other". Wine's own default
# (and the old icacls call, a dummy under wine) leaves the directories 0755.
for p in "$state" "$state-keys" "$(dirname "$key_file")" "$key_file"; do
  mode=$(stat -c %a "$p")
  [ $((8#$mode & 7)) -eq 0 ] || die "$p is mode $mode: the agent's access list did not apply"
done
log "ok  state dir $(stat -c %a "$state"), key root $(stat -c %a "$state-keys"), key dir $(stat -c %a "$(dirname "$key_file")"), key file $(stat -c %a "$key_file"): no access for others"

# Key custody on Windows: with proxy delivery the agent's relay (a Windows socket under wine)
# keeps the key, the developer's key file holds a local token, and a request through the relay
# reaches the upstream with the real key.
log "key custody: a fake upstream, then org settings --key-delivery proxy"
cat >"$tmp/upstream.py" <<'PYEOF'
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with open(sys.argv[1], "a") as f:
            f.write(self.headers.get("x-api-key", "") + "\n")
        body = json.dumps({"type": "message", "model": "wine", "content": [],
                           "usage": {"input_tokens": 1, "output_tokens": 1}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
PYEOF
python3 "$tmp/upstream.py" "$tmp/upstream.keys" >"$tmp/upstream.port" 2>"$tmp/upstream.err" &
upstream_pid=$!
for _ in $(seq 1 50); do [ -s "$tmp/upstream.port" ] && break; sleep 0.1; done
up_port=$(head -n1 "$tmp/upstream.port")
[ -n "$up_port" ] || die "the fake upstream did not start"
"$cp_bin" org settings --org default --key-delivery proxy --upstream-url "http://127.0.0.1:$up_port" \
  >/dev/null 2>"$tmp/proxy.err" || { cat "$tmp/proxy.err" >&2; die "org settings --key-delivery proxy failed"; }
relay=""
for _ in $(seq 1 $((E2E_TIMEOUT * 5))); do
  relay=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("env",{}).get("ANTHROPIC_BASE_URL",""))' "$dropin" 2>/dev/null || true)
  [ -n "$relay" ] && break
  sleep 0.2
done
[ -n "$relay" ] || { tail -n 30 "$tmp/run.err" >&2; die "the Windows agent did not point Claude Code at its relay"; }
token=""
for _ in $(seq 1 50); do
  token=$(agent api-key --key-file "$(winpath "$key_file")" 2>/dev/null | tr -d '\r' || true)
  [[ "$token" == pal_local_* ]] && break
  sleep 0.2
done
[[ "$token" == pal_local_* ]] || die "the developer's key file does not hold a local token"
if grep -q sk-ant-api03-cross-check-key "$key_file"; then die "the developer's key file still holds the real key"; fi
http=$(curl -sS -o "$tmp/relayed.json" -w '%{http_code}' -X POST "$relay/v1/messages" \
  -H "x-api-key: $token" -H 'content-type: application/json' --data '{"model":"wine","max_tokens":1,"messages":[]}')
[ "$http" = 200 ] || { cat "$tmp/relayed.json" >&2; die "a request through the Windows relay returned $http"; }
[ "$(tail -n1 "$tmp/upstream.keys")" = sk-ant-api03-cross-check-key ] \
  || die "the upstream did not receive the organisation's key through the Windows relay"
http=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$relay/v1/messages" -H 'x-api-key: sk-ant-stolen' --data '{}')
[ "$http" = 401 ] || die "the Windows relay accepted a foreign key ($http)"
kill "$upstream_pid" 2>/dev/null || true
wait "$upstream_pid" 2>/dev/null || true
log "ok  Windows relay at $relay: local token in the key file, the real key upstream, a foreign key refused"

log "stopping the console agent"
kill "$agent_pid" 2>/dev/null || true
WINEPREFIX="$tmp/wineprefix" "$wineserver" -k 2>/dev/null || true
wait "$agent_pid" 2>/dev/null || true
agent_pid=""

# --- 5. the MSI and the Windows service ---------------------------------------------------
log "building the MSI with wixl"
for tool in wixl msiinfo; do
  command -v "$tool" >/dev/null || { as_root apt-get update -qq; DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq wixl msitools >/dev/null; }
done
msi=$(bash packaging/windows/build-msi.sh "$exe" "$tmp/msi" | tail -n1)
[ -f "$msi" ] || die "build-msi.sh produced no MSI"
# The tables Windows Installer acts on: the file, the service (own process, automatic start,
# LocalSystem, `run --windows-service`), and its control (start at install, stop at install
# and removal, delete at removal: 1+2+32+128 = 163), and the major-upgrade rule.
msi_row() { msiinfo export "$msi" "$1" | tr -d '\r' | sed -n "4,\$p"; }
msi_row File | grep -q $'\tpalisade-agent.exe\t' || die "the MSI has no palisade-agent.exe"
service_row=$(msi_row ServiceInstall)
# Columns: ServiceInstall Name DisplayName ServiceType StartType ErrorControl LoadOrderGroup
# Dependencies StartName Password Arguments Component_ Description.
[ "$(awk -F'\t' '{print $2"|"$4"|"$5"|"$9"|"$11}' <<<"$service_row")" = "PalisadeAgent|16|2|LocalSystem|run --windows-service" ] \
  || die "unexpected ServiceInstall row: $service_row"
svc_args=$(awk -F'\t' '{print $11}' <<<"$service_row")
# Columns: ServiceControl Name Event Arguments Wait Component_.
control_row=$(msi_row ServiceControl)
[ "$(awk -F'\t' '{print $2"|"$3"|"$5}' <<<"$control_row")" = "PalisadeAgent|163|1" ] \
  || die "unexpected ServiceControl row: $control_row"
msi_row Upgrade | grep -q . || die "the MSI has no Upgrade row (MajorUpgrade)"
log "ok  $(du -h "$msi" | cut -f1)	${msi#"$tmp"/}: File, ServiceInstall, ServiceControl (163), Upgrade rows as intended"

# The service itself, registered as the MSI registers it, in a fresh prefix. (Wine 8's service
# manager cannot open a service created in the same session, so msiexec's StartServices fails
# there: the MSI is checked by its tables above, not installed here.)
export WINEPREFIX="$tmp/msiprefix"
mkdir -p "$WINEPREFIX"
drive_c="$WINEPREFIX/drive_c"
"$wineserver" -p || die "cannot start a persistent wineserver for the service prefix"
timeout 120 "$wine" wineboot -i >/dev/null 2>&1 || die "wineboot failed for the service prefix"
installed_dir="$drive_c/Program Files/Palisade"
mkdir -p "$installed_dir"
cp "$exe" "$installed_dir/palisade-agent.exe"
cp "$tmp/bin/bcryptprimitives.dll" "$installed_dir/" # test-only, never in the MSI
svc_state() { timeout 60 "$wine" sc query PalisadeAgent 2>/dev/null | tr -d '\r' | sed -n 's/^ *STATE *: *[0-9]* *//p'; }

log "wine: sc create PalisadeAgent (as the MSI's ServiceInstall row), automatic start"
timeout 60 "$wine" sc create PalisadeAgent binPath= "\"C:\\Program Files\\Palisade\\palisade-agent.exe\" $svc_args" \
  start= auto >"$tmp/sc.out" 2>&1 || { cat "$tmp/sc.out" >&2; die "sc create failed"; }
# Wine 8's service manager cannot open a service created in the same session (the same race
# breaks msiexec above): restart the session, and services.exe starts the automatic service.
"$wineserver" -k 2>/dev/null || true
"$wineserver" -w 2>/dev/null || true
"$wineserver" -p || die "cannot restart the persistent wineserver"
timeout 60 "$wine" sc query PalisadeAgent >"$tmp/netstart.out" 2>&1 || true
# %ProgramData% as the service sees it (wine gives services C:\users\Public): from its own log.
svc_log=""
for _ in $(seq 1 100); do
  svc_log=$(find "$drive_c" -path '*/Palisade/logs/palisade-agent.log' 2>/dev/null | head -n1)
  [ -n "$svc_log" ] && grep -q 'running as a Windows service' "$svc_log" && break
  sleep 0.2
done
[ -n "$svc_log" ] || { cat "$tmp/netstart.out" >&2; die "the service wrote no log (state: $(svc_state))"; }
[ "$(svc_state)" = RUNNING ] || die "PalisadeAgent is $(svc_state), not RUNNING"
svc_home=$(dirname "$(dirname "$svc_log")")
log "ok  PalisadeAgent RUNNING; its log: ${svc_log#"$WINEPREFIX"/}"

# A console `run --windows-service` is refused: only the service manager may start it that way.
if timeout 60 "$wine" "$installed_dir/palisade-agent.exe" run --windows-service >"$tmp/notsvc.out" 2>&1; then
  die "run --windows-service from a console should fail"
fi
grep -q 'not started by the service control manager' "$tmp/notsvc.out" || { cat "$tmp/notsvc.out" >&2; die "unexpected refusal message"; }

# MDM's configuration step: agent.toml names the developer's Claude directory, then enroll.
mkdir -p "$drive_c/users/dev/.claude"
printf "claude_config_dir = '%s'\n" "C:\\users\\dev\\.claude" >"$svc_home/agent.toml"
timeout 60 "$wine" net stop PalisadeAgent >/dev/null 2>&1 || die "net stop failed"
timeout 60 "$wine" net start PalisadeAgent >/dev/null 2>&1 || die "net start failed"

log "SCIM: creating user svc@example.com; enrolling the service's machine"
scim_create_user svc@example.com
timeout 120 "$wine" "$installed_dir/palisade-agent.exe" enroll --server "$grpc_url" --enroll-token "$enroll_token" \
  --user svc@example.com --state-dir "$(winpath "$svc_home/state")" --config "$(winpath "$svc_home/agent.toml")" \
  >"$tmp/enroll2.out" 2>&1 || { cat "$tmp/enroll2.out" >&2; die "enrolling failed"; }

svc_dropin="$drive_c/Program Files/ClaudeCode/managed-settings.d/50-palisade.json"
wait_for_dropin "$svc_dropin" || { tail -n 30 "$svc_log" >&2; die "the service wrote no valid drop-in in C:\\Program Files\\ClaudeCode"; }
svc_helper=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("apiKeyHelper",""))' "$svc_dropin")
[[ "$svc_helper" == *"--key-file"*"state-keys"*"api-key"* ]] \
  || die "the service's apiKeyHelper does not read the developer's key file: $svc_helper"
log "ok  the service applied the policy to C:\\Program Files\\ClaudeCode\\managed-settings.d\\50-palisade.json"

log "wine: net stop PalisadeAgent, sc delete"
timeout 60 "$wine" net stop PalisadeAgent >"$tmp/netstop.out" 2>&1 || { cat "$tmp/netstop.out" >&2; die "net stop failed"; }
[ "$(svc_state)" = STOPPED ] || die "PalisadeAgent is $(svc_state) after net stop"
grep -q 'stop requested by the service control manager' "$svc_log" || die "the service log shows no clean stop"
timeout 60 "$wine" sc delete PalisadeAgent >/dev/null 2>&1 || die "sc delete failed"
log "ok  stopped cleanly (the service log says: stop requested by the service control manager)"
"$wineserver" -k 2>/dev/null || true
export WINEPREFIX="$tmp/wineprefix"

log "stopping the control plane"
kill "$cp_pid" 2>/dev/null || true
wait "$cp_pid" 2>/dev/null || true
cp_pid=""

log "PASS: Windows + macOS agents built and checked; under wine the Windows agent enrolled, applied policy, served the developer's key, relayed with the key kept (proxy delivery), reported HKLM and server-managed settings, and the MSI's tables and the PalisadeAgent service (start, enroll, policy, clean stop) checked"
