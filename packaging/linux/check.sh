#!/usr/bin/env bash
# Checks the Linux packaging in packaging/linux/ without installing anything on this machine:
#
#  1. the scripts: shellcheck (when installed), `sh -n` and `bash -n` of the maintainer
#     scripts, `set -euo pipefail` everywhere;
#  2. agent.toml.example: every key it documents is accepted by the real agent's parser, and
#     the parser rejects an unknown key (so the check can fail);
#  3. the unit's essentials (ExecStart, KillSignal, Restart, network-online, root, ProtectHome,
#     capabilities, umask) and `systemd-analyze verify` (when systemd-analyze exists);
#  4. builds the .deb with build-deb.sh from the debug binary (target/debug/palisade-agent,
#     or $PALISADE_AGENT_BIN) into a temp dir and checks `dpkg-deb --info` fields, the exact
#     `dpkg-deb --contents` (paths, types, modes, root/root), the control archive (conffiles,
#     maintainer scripts 0755 and identical to the sources), and that the extracted binary
#     runs `--version`;
#  5. installs it into a scratch root (dpkg --root --force-script-chrootless), reinstalls it
#     (the upgrade path), removes it (state kept) and purges it (state removed), and makes
#     sure nothing outside the scratch root was touched;
#  6. as root only, with target/debug/palisade-control-plane: runs the installed agent with
#     exactly the unit's capability bounding set, NoNewPrivileges and UMask against a real
#     control plane: enroll, policy and API key for a developer (uid 4242) with a private
#     home, a key tree the developer cannot write in, key rotation after the key directory
#     was widened, deprovisioning wipe of ~/.claude/.credentials.json (waiting for `status`
#     to say wiped, which the agent records only after the files are gone).
#
# Exits non-zero on the first mismatch. Runs as root or unprivileged (step 6 is then skipped);
# every temp file is removed on exit. Usage: bash packaging/linux/check.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
agent_src=${PALISADE_AGENT_BIN:-$repo/target/debug/palisade-agent}
cp_bin=${PALISADE_CONTROL_PLANE_BIN:-$repo/target/debug/palisade-control-plane}
unit_src="$here/palisade-agent.service"

start=$(date +%s)
log() { printf '[linux %3ss] %s\n' "$(($(date +%s) - start))" "$*"; }
ok() { log "ok    $*"; }
skip() { log "SKIP  $*"; }
die() { printf '[linux] FAIL: %s\n' "$*" >&2; exit 1; }

tmp=""
cp_pid=""
agent_pid=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
  [ -n "$cp_pid" ] && kill "$cp_pid" 2>/dev/null && wait "$cp_pid" 2>/dev/null
  [ -n "$tmp" ] && rm -rf "$tmp"
  [ "$rc" -ne 0 ] && printf '[linux] FAILED (exit %s)\n' "$rc" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tmp=$(mktemp -d "${TMPDIR:-/tmp}/palisade-linux-check.XXXXXX")
chmod 0755 "$tmp"

for tool in dpkg-deb dpkg; do
  command -v "$tool" >/dev/null || die "$tool not found (this check needs a Debian-based system)"
done
[ -x "$agent_src" ] || die "no agent binary at $agent_src (cargo build -p palisade-agent, or set PALISADE_AGENT_BIN)"
# A private copy: the workspace binary may be rebuilt while this runs.
agent_bin="$tmp/palisade-agent"
cp "$agent_src" "$agent_bin"
version_line=$("$agent_bin" --version)
version=${version_line#palisade-agent }
[ "$version" != "$version_line" ] || die "unexpected --version output: $version_line"
deb_version=${version//-/\~}
arch=$(dpkg --print-architecture)
log "agent $version from $agent_src; architecture $arch; running as uid $(id -u)"

# --- 1. scripts ------------------------------------------------------------------------------
scripts=("$here/build-deb.sh" "$here/check.sh" "$here/debian/postinst" "$here/debian/prerm" "$here/debian/postrm")
for s in "${scripts[@]}"; do
  grep -qx 'set -euo pipefail' "$s" || die "$s lacks 'set -euo pipefail'"
  bash -n "$s" || die "bash -n $s"
done
for s in "$here"/debian/{postinst,prerm,postrm}; do
  [ "$(head -n1 "$s")" = '#!/bin/bash' ] || die "$s must start with #!/bin/bash (pipefail is not POSIX)"
  [ -x "$s" ] || die "$s is not executable"
  sh -n "$s" || die "sh -n $s"
  # Every path a maintainer script removes must be under $DPKG_ROOT.
  if grep -E '^\s*rm ' "$s" | grep -vF "\"\$root/" >/dev/null; then
    die "$s removes a path not prefixed with \$root (\$DPKG_ROOT)"
  fi
done
ok "maintainer scripts pass sh -n and bash -n; all scripts use set -euo pipefail"
if command -v shellcheck >/dev/null; then
  shellcheck "${scripts[@]}" || die "shellcheck"
  ok "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${#scripts[@]} scripts clean"
else
  skip "shellcheck not installed (apt-get install shellcheck)"
fi

# --- 2. the example config ---------------------------------------------------------------------
example="$here/agent.toml.example"
sed -n 's/^#\([a-z_]*\) = /\1 = /p' "$example" >"$tmp/example-uncommented.toml"
keys=$(cut -d' ' -f1 "$tmp/example-uncommented.toml" | sort | tr '\n' ' ')
[ "$keys" = "claude_config_dir log settings_dir state_dir " ] || die "agent.toml.example documents keys [$keys], expected the four FileConfig keys"
if grep -v '^#' "$example" | grep -q '[^[:space:]]'; then
  die "agent.toml.example has uncommented settings: it must be a no-op if copied as is"
fi
# `api-key` (without --key-file) parses the config file first; with an empty state dir it then
# says "not enrolled". An unknown key would fail earlier with "invalid config file".
probe_config() {
  "$agent_bin" api-key --config "$1" --state-dir "$tmp/probe-state" >/dev/null 2>"$tmp/probe.err" || true
  cat "$tmp/probe.err"
}
out=$(probe_config "$tmp/example-uncommented.toml")
grep -q 'not enrolled' <<<"$out" || die "the agent rejects agent.toml.example's keys: $out"
printf 'state_directory = "/x"\n' >"$tmp/bad.toml"
out=$(probe_config "$tmp/bad.toml")
grep -q 'invalid config file' <<<"$out" || die "the agent accepted an unknown key (probe is broken): $out"
ok "agent.toml.example: keys [$keys] accepted by the agent (an unknown key is rejected)"

# --- 3. the unit -----------------------------------------------------------------------------
unit_has() { grep -qx "$1" "$unit_src" || die "palisade-agent.service lacks the line: $1"; }
unit_has 'ExecStart=/usr/bin/palisade-agent run'
unit_has 'KillSignal=SIGTERM'
unit_has 'Restart=on-failure'
unit_has 'Wants=network-online.target'
unit_has 'After=network-online.target'
unit_has 'ProtectHome=no'
unit_has 'UMask=0022'
unit_has 'WantedBy=multi-user.target'
grep -Eq '^(User|DynamicUser|PrivateUsers)=' "$unit_src" && die "the unit must run as real root (no User=, DynamicUser=, PrivateUsers=)"
grep -Eq '^ProtectSystem=(full|strict)' "$unit_src" && die "ProtectSystem=full/strict makes /etc read-only"
grep -Eq '^(ReadOnlyPaths|InaccessiblePaths|TemporaryFileSystem)=' "$unit_src" && die "the unit hides or freezes paths the agent writes"
grep -Eq '^SystemCallFilter=.*~.*@privileged' "$unit_src" && die "~@privileged removes @chown"
caps_line=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit_src")
for cap in CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE; do
  grep -qw "$cap" <<<"$caps_line" || die "CapabilityBoundingSet lacks $cap"
done
ok "unit: ExecStart, KillSignal=SIGTERM, Restart=on-failure, network-online, root, ProtectHome=no, UMask=0022, capabilities [$caps_line]"

# --- 4. build and inspect the .deb -----------------------------------------------------------
log "building the .deb (build-deb.sh, xz)"
deb=$(bash "$here/build-deb.sh" --binary "$agent_bin" --out-dir "$tmp/out" 2>"$tmp/build.err") \
  || { cat "$tmp/build.err" >&2; die "build-deb.sh failed"; }
[ "$deb" = "$tmp/out/palisade-agent_${deb_version}_${arch}.deb" ] || die "unexpected package name: $deb"
[ -f "$deb" ] || die "build-deb.sh printed $deb but it does not exist"
ok "built $(basename "$deb") ($(du -h "$deb" | cut -f1))"

field() { dpkg-deb --field "$deb" "$1"; }
[ "$(field Package)" = palisade-agent ] || die "Package: $(field Package)"
[ "$(field Version)" = "$deb_version" ] || die "Version: $(field Version), expected $deb_version"
[ "$(field Architecture)" = "$arch" ] || die "Architecture: $(field Architecture), expected $arch"
[ -n "$(field Maintainer)" ] || die "no Maintainer"
[ "$(field Section)" = admin ] || die "Section: $(field Section)"
[ "$(field Priority)" = optional ] || die "Priority: $(field Priority)"
[[ "$(field Installed-Size)" =~ ^[0-9]+$ ]] || die "Installed-Size: $(field Installed-Size)"
[[ "$(field Depends)" =~ ^libc6\ \(\>=\ 2\.[0-9]+\) ]] || die "Depends: $(field Depends)"
[ -n "$(field Description)" ] || die "no Description"
dpkg-deb --info "$deb" >"$tmp/info.txt"
ok "dpkg-deb --info: Package palisade-agent, Version $deb_version, Architecture $arch, Depends $(field Depends)"

# type+mode, owner, path (sizes and dates ignored)
dpkg-deb --contents "$deb" | awk '{print $1, $2, $6}' | sort -k3 >"$tmp/contents.txt"
sort -k3 >"$tmp/expected.txt" <<'EOF'
drwxr-xr-x root/root ./
drwxr-xr-x root/root ./etc/
drwxr-xr-x root/root ./etc/palisade/
-rw-r--r-- root/root ./etc/palisade/agent.toml.example
drwxr-xr-x root/root ./lib/
drwxr-xr-x root/root ./lib/systemd/
drwxr-xr-x root/root ./lib/systemd/system/
-rw-r--r-- root/root ./lib/systemd/system/palisade-agent.service
drwxr-xr-x root/root ./usr/
drwxr-xr-x root/root ./usr/bin/
-rwxr-xr-x root/root ./usr/bin/palisade-agent
drwxr-xr-x root/root ./usr/share/
drwxr-xr-x root/root ./usr/share/doc/
drwxr-xr-x root/root ./usr/share/doc/palisade-agent/
-rw-r--r-- root/root ./usr/share/doc/palisade-agent/copyright
EOF
diff -u "$tmp/expected.txt" "$tmp/contents.txt" >&2 || die "dpkg-deb --contents differs from the expected tree (above)"
ok "dpkg-deb --contents: $(wc -l <"$tmp/contents.txt") entries, all root/root; /usr/bin/palisade-agent -rwxr-xr-x"

dpkg-deb --control "$deb" "$tmp/control"
[ "$(cat "$tmp/control/conffiles")" = /etc/palisade/agent.toml.example ] || die "conffiles: $(cat "$tmp/control/conffiles")"
for s in postinst prerm postrm; do
  [ "$(stat -c %a "$tmp/control/$s")" = 755 ] || die "DEBIAN/$s is mode $(stat -c %a "$tmp/control/$s")"
  cmp -s "$tmp/control/$s" "$here/debian/$s" || die "DEBIAN/$s differs from packaging/linux/debian/$s"
  sh -n "$tmp/control/$s" || die "sh -n DEBIAN/$s"
done
ok "control archive: conffiles, postinst/prerm/postrm 0755, identical to the sources, sh -n clean"

dpkg-deb -x "$deb" "$tmp/x"
cmp -s "$tmp/x/usr/bin/palisade-agent" "$agent_bin" || die "the packaged binary differs from $agent_src"
[ "$("$tmp/x/usr/bin/palisade-agent" --version)" = "$version_line" ] || die "the extracted binary's --version differs"
cmp -s "$tmp/x/lib/systemd/system/palisade-agent.service" "$unit_src" || die "the packaged unit differs"
cmp -s "$tmp/x/etc/palisade/agent.toml.example" "$example" || die "the packaged example config differs"
ok "dpkg-deb -x: the extracted binary runs: $version_line"

# --- 3b. systemd-analyze verify ----------------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
  # verify insists that ExecStart's binary exists on this machine, which must not be touched:
  # a copy of the unit runs the extracted binary instead; every other line is the shipped one.
  mkdir -p "$tmp/unit"
  sed "s|^ExecStart=/usr/bin/palisade-agent run\$|ExecStart=$tmp/x/usr/bin/palisade-agent run|" \
    "$tmp/x/lib/systemd/system/palisade-agent.service" >"$tmp/unit/palisade-agent.service"
  [ "$(diff "$unit_src" "$tmp/unit/palisade-agent.service" | grep -c '^[<>]')" = 2 ] || die "ExecStart substitution failed"
  if ! out=$(systemd-analyze verify "$tmp/unit/palisade-agent.service" 2>&1) || [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    die "systemd-analyze verify reported problems"
  fi
  ok "systemd-analyze verify: no warnings ($(systemd-analyze --version | head -n1); ExecStart pointed at the extracted binary)"
  if exposure=$(systemd-analyze security --offline=true "$tmp/unit/palisade-agent.service" 2>/dev/null | tail -n1); then
    log "info  systemd-analyze security: ${exposure#→ }"
  fi
else
  skip "systemd-analyze not installed (Debian package systemd): unit not verified by systemd"
fi

# --- 5. install into a scratch root ----------------------------------------------------------
root="$tmp/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
: >"$root/var/lib/dpkg/status"
# Dependencies (libc6, libgcc-s1) are not in the empty root; scripts run outside a chroot with
# DPKG_ROOT set, which they must honour.
dpkg_root() {
  dpkg --root="$root" --force-not-root --force-script-chrootless --force-depends \
    --log=/dev/null "$@"
}
# What this machine has at the package's paths (normally nothing), to compare afterwards.
host_snapshot() {
  local p
  for p in /usr/bin/palisade-agent /lib/systemd/system/palisade-agent.service \
    /etc/systemd/system/multi-user.target.wants/palisade-agent.service /etc/palisade \
    /etc/palisade/agent.toml.example /var/lib/palisade-agent /var/lib/palisade-agent-keys; do
    if [ -e "$p" ] || [ -L "$p" ]; then stat -c '%n %i %Y' "$p"; fi
  done
}
host_before=$(host_snapshot)

dpkg_root -i "$deb" >"$tmp/install.out" 2>&1 || { cat "$tmp/install.out" >&2; die "dpkg --root -i failed"; }
grep -q "installed into $root" "$tmp/install.out" || { cat "$tmp/install.out" >&2; die "postinst did not notice DPKG_ROOT"; }
[ "$(dpkg-query --root="$root" -W -f='${Status} ${Version}' palisade-agent)" = "install ok installed $deb_version" ] \
  || die "dpkg-query: $(dpkg-query --root="$root" -W -f='${Status} ${Version}' palisade-agent)"
[ "$("$root/usr/bin/palisade-agent" --version)" = "$version_line" ] || die "the installed binary does not run"
[ "$(stat -c '%a %u %g' "$root/usr/bin/palisade-agent")" = "755 $(id -u) $(id -g)" ] || die "installed binary: $(stat -c '%a %u %g' "$root/usr/bin/palisade-agent")"
[ -f "$root/lib/systemd/system/palisade-agent.service" ] || die "the unit was not installed"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants" ] || die "postinst enabled the unit in a scratch root"
ok "dpkg --root -i: installed ok ($deb_version), binary runs, unit in place, not enabled (DPKG_ROOT honoured)"

dpkg_root -i "$deb" >"$tmp/reinstall.out" 2>&1 || { cat "$tmp/reinstall.out" >&2; die "reinstall (upgrade path) failed"; }
ok "dpkg --root -i again: the upgrade path (prerm upgrade, postinst configure <old>) succeeds"

mkdir -p "$root/var/lib/palisade-agent" "$root/var/lib/palisade-agent-keys/1000"
printf '{}' >"$root/var/lib/palisade-agent/device.json"
printf 'k' >"$root/var/lib/palisade-agent-keys/1000/api-key"
printf '#\n' >"$root/etc/palisade/agent.toml"
dpkg_root -r palisade-agent >"$tmp/remove.out" 2>&1 || { cat "$tmp/remove.out" >&2; die "dpkg --root -r failed"; }
[ ! -e "$root/usr/bin/palisade-agent" ] || die "remove left the binary"
[ -f "$root/var/lib/palisade-agent/device.json" ] || die "remove deleted the state directory (only purge may)"
[ -f "$root/etc/palisade/agent.toml.example" ] || die "remove deleted the conffile (only purge may)"
ok "dpkg --root -r: binary and unit gone; state directory and conffile kept"

dpkg_root -P palisade-agent >"$tmp/purge.out" 2>&1 || { cat "$tmp/purge.out" >&2; die "dpkg --root -P failed"; }
[ ! -e "$root/var/lib/palisade-agent" ] || die "purge left /var/lib/palisade-agent"
[ ! -e "$root/var/lib/palisade-agent-keys" ] || die "purge left /var/lib/palisade-agent-keys"
[ ! -e "$root/etc/palisade/agent.toml.example" ] || die "purge left the conffile"
[ -f "$root/etc/palisade/agent.toml" ] || die "purge removed the administrator's agent.toml"
[ -z "$(dpkg-query --root="$root" -W -f='${Status}' palisade-agent 2>/dev/null || true)" ] \
  || die "the package is still known after purge"
[ "$(host_snapshot)" = "$host_before" ] \
  || die "the scratch install changed this machine's palisade-agent paths: before [$host_before] after [$(host_snapshot)]"
ok "dpkg --root -P: state dirs removed, conffile removed, agent.toml kept; this machine untouched"

# --- 6. the unit's sandbox, for real ----------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
  skip "sandboxed agent run: needs root (chown to a developer uid)"
elif [ ! -x "$cp_bin" ] || ! command -v setpriv >/dev/null || ! command -v curl >/dev/null \
  || ! command -v python3 >/dev/null; then
  skip "sandboxed agent run: needs $cp_bin, setpriv, curl and python3"
else
  dpkg-deb -x "$deb" "$tmp/run-root"
  bin="$tmp/run-root/usr/bin/palisade-agent"
  unit="$tmp/run-root/lib/systemd/system/palisade-agent.service"
  # The unit's own capability set, NoNewPrivileges and UMask, via setpriv. Not emulated here:
  # the mount namespace (ProtectSystem, PrivateTmp, PrivateDevices, ProtectProc), the system
  # call filter and the address-family restriction (they need systemd as PID 1).
  bounding="-all"
  read -r -a unit_caps <<<"$(sed -n 's/^CapabilityBoundingSet=//p' "$unit")"
  for cap in "${unit_caps[@]}"; do
    c=${cap#CAP_}
    bounding="$bounding,+${c,,}"
  done
  umask_v=$(sed -n 's/^UMask=//p' "$unit")
  grep -qx 'NoNewPrivileges=yes' "$unit" || die "the unit lost NoNewPrivileges=yes"
  sandbox=(setpriv --no-new-privs --inh-caps=-all --bounding-set="$bounding")
  log "sandboxed run: bounding set $bounding, no-new-privs, umask $umask_v"

  head -c 32 /dev/urandom | base64 >"$tmp/secrets.key"
  export PALISADE_SECRETS_KEY_FILE="$tmp/secrets.key" PALISADE_DATABASE_URL="sqlite://$tmp/cp.db"
  "$cp_bin" serve --http-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0 >"$tmp/cp.stdout" 2>"$tmp/cp.stderr" &
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
    die "the control plane did not print its endpoints and tokens"
  fi
  scim() { # method path body
    curl -sS -o "$tmp/scim.json" -w '%{http_code}' -X "$1" "$scim_url$2" \
      -H "Authorization: Bearer $scim_token" -H 'Content-Type: application/scim+json' --data "$3"
  }
  http=$(scim POST /Users '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dev@example.com"}')
  [ "$http" = 201 ] || { cat "$tmp/scim.json" >&2; die "SCIM POST /Users: $http"; }
  user_id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$tmp/scim.json")
  printf 'sk-ant-api03-linux-check-1' | "$cp_bin" api-key set --org default >/dev/null 2>"$tmp/apikey.err" \
    || { cat "$tmp/apikey.err" >&2; die "api-key set failed"; }
  # The MDM method below delivers the key only to verified devices: this organisation trusts
  # its MDM's claim of who uses the machine (SECURITY.md explains the trade-off). Helper
  # delivery: this check follows the key itself into the developer's key file (the relay is
  # checked by the Rust suite and packaging/cross/check.sh).
  "$cp_bin" org settings --org default --trust-mdm-identity true --key-delivery helper >/dev/null 2>"$tmp/trust.err" \
    || { cat "$tmp/trust.err" >&2; die "org settings --trust-mdm-identity failed"; }

  # The developer: uid 4242 (no passwd entry needed), a 0700 home and ~/.claude, a login.
  dev=4242
  home="$tmp/home/dev"
  mkdir -p "$home/.claude"
  printf '{"claudeAiOauth":{}}' >"$home/.claude/.credentials.json"
  chmod 0600 "$home/.claude/.credentials.json"
  chmod 0700 "$home/.claude" "$home"
  chown -R "$dev:$dev" "$home"
  mkdir -p "$tmp/sys/var/lib" "$tmp/sys/etc"
  chmod 0755 "$tmp/sys" "$tmp/sys/var" "$tmp/sys/var/lib" "$tmp/sys/etc"
  state="$tmp/sys/var/lib/palisade-agent" settings="$tmp/sys/etc/claude-code"
  cat >"$tmp/agent.toml" <<EOF
claude_config_dir = "$home/.claude"
settings_dir = "$settings"
state_dir = "$state"
EOF
  # Set here rather than in a subshell so that the background agent's PID is the agent's own
  # (setpriv execs it), which the SIGTERM test and the cleanup need.
  umask "$umask_v"
  as_service() { "${sandbox[@]}" "$bin" "$@"; }
  as_dev() { setpriv --reuid="$dev" --regid="$dev" --clear-groups "$@"; }
  wait_for() { # seconds, then a test command
    local i
    for ((i = 0; i < $1 * 5; i++)); do
      if "${@:2}"; then return 0; fi
      kill -0 "$agent_pid" 2>/dev/null || return 1
      sleep 0.2
    done
    return 1
  }
  agent_fail() {
    echo "--- agent log" >&2; tail -n 30 "$tmp/run.err" >&2
    die "$*"
  }

  as_service enroll --config "$tmp/agent.toml" --server "$grpc_url" --enroll-token "$enroll_token" \
    --user dev@example.com >"$tmp/enroll.out" 2>&1 || { cat "$tmp/enroll.out" >&2; die "sandboxed enroll failed"; }
  "${sandbox[@]}" "$bin" run --config "$tmp/agent.toml" >"$tmp/run.out" 2>"$tmp/run.err" &
  agent_pid=$!
  keyfile="$state-keys/$dev/api-key"
  dropin="$settings/managed-settings.d/50-palisade.json"
  key_is() { [ "$(as_dev "$bin" api-key --key-file "$keyfile" 2>/dev/null)" = "$1" ]; }
  wait_for 30 key_is sk-ant-api03-linux-check-1 || agent_fail "no developer key file served by api-key --key-file"
  wait_for 10 test -s "$dropin" || agent_fail "no drop-in written"
  [ "$(stat -c '%a %u' "$state")" = "700 0" ] || die "state dir: $(stat -c '%a %u' "$state")"
  [ "$(stat -c '%a %u' "$state-keys")" = "711 0" ] || die "key root: $(stat -c '%a %u' "$state-keys")"
  [ "$(stat -c '%a %u' "$state-keys/$dev")" = "711 0" ] || die "key dir: $(stat -c '%a %u' "$state-keys/$dev")"
  [ "$(stat -c '%a %u %g' "$keyfile")" = "600 $dev $dev" ] || die "key file: $(stat -c '%a %u %g' "$keyfile")"
  [ "$(stat -c '%a' "$settings/managed-settings.d")" = 755 ] || die "managed-settings.d: $(stat -c %a "$settings/managed-settings.d") (umask?)"
  [ "$(stat -c '%a' "$dropin")" = 644 ] || die "drop-in: $(stat -c %a "$dropin")"
  python3 - "$dropin" "$keyfile" <<'EOF' || die "the drop-in's apiKeyHelper does not name the developer's key file"
import json, sys
helper = json.load(open(sys.argv[1]))["apiKeyHelper"]
assert helper.endswith("api-key --key-file " + sys.argv[2]), helper
EOF
  ok "sandboxed agent: enrolled; drop-in 0644 in a 0755 managed-settings.d; key file $dev:$dev 0600 in a root 0711 dir under a 0711 root; served to uid $dev"

  # The developer can plant nothing next to their key file, nor widen its directory.
  if as_dev mkdir "$state-keys/$dev/planted" 2>/dev/null || as_dev chmod 0755 "$state-keys/$dev" 2>/dev/null; then
    die "the developer could write in or chmod their key directory"
  fi
  # Widened anyway (an earlier version's tree): the next key makes the agent narrow it back.
  chmod 0755 "$state-keys/$dev"
  printf 'sk-ant-api03-linux-check-2' | "$cp_bin" api-key set --org default >/dev/null 2>"$tmp/apikey.err" \
    || { cat "$tmp/apikey.err" >&2; die "api-key set (rotation) failed"; }
  wait_for 30 key_is sk-ant-api03-linux-check-2 || agent_fail "the rotated key never reached the developer's key file"
  [ "$(stat -c '%a %u' "$state-keys/$dev")" = "711 0" ] || die "the key dir stayed $(stat -c %a "$state-keys/$dev")"
  ok "sandboxed agent: the developer cannot write in their key dir; key rotation delivered; a widened key dir is back to 0711"

  http=$(scim PATCH "/Users/$user_id" '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}')
  [ "$http" = 200 ] || { cat "$tmp/scim.json" >&2; die "SCIM PATCH active=false: $http"; }
  # Wait for what is asserted: `status` says wiped. The agent records the wipe only after the
  # lockdown policy is written and the files are removed, so they are checked after, once.
  status_wiped() {
    "$bin" status --json --config "$tmp/agent.toml" 2>/dev/null >"$tmp/status.json" || return 1
    python3 -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("wiped") else 1)' "$tmp/status.json"
  }
  wait_for 60 status_wiped || agent_fail "status never reported the wipe"
  [ ! -e "$home/.claude/.credentials.json" ] || agent_fail "status says wiped but ~/.claude/.credentials.json is still there"
  [ ! -e "$keyfile" ] || agent_fail "status says wiped but the developer's key file is still there"
  if grep -Ei 'permission denied|operation not permitted' "$tmp/run.err" >&2; then
    die "the sandboxed agent logged permission errors (above)"
  fi
  ok "sandboxed agent: deprovisioning wiped ~/.claude/.credentials.json (in a 0700 home) and the key file; no permission errors logged"
  kill "$agent_pid" 2>/dev/null || true
  rc=0
  wait "$agent_pid" || rc=$?
  agent_pid=""
  [ "$rc" = 0 ] || die "the agent exited $rc on SIGTERM (expected 0: a clean stop, which Restart=on-failure leaves stopped)"
  ok "sandboxed agent: SIGTERM stops it with exit 0"
fi

log "all Linux packaging checks passed"
