#!/usr/bin/env bash
# Checks the macOS packaging in packaging/macos/ as far as it can be checked off macOS. Runs on
# Linux (GNU coreutils, python3); pkgbuild, productbuild, lipo and launchd are never run:
#
#  1. the scripts: shellcheck (when installed), `bash -n` and `sh -n`, `set -euo pipefail`, no
#     bash-4-only syntax in what runs under macOS's /bin/bash 3.2;
#  2. com.palisade.agent.plist: loads with Python's plistlib (and `plutil -lint` on macOS);
#     Label, ProgramArguments, RunAtLoad, KeepAlive, ThrottleInterval, ProcessType, Umask and
#     log paths have the expected values and agree with the payload layout and postinstall;
#  3. distribution.xml: well-formed once filled in, names the component pkg build-pkg.sh makes;
#  4. agent.toml.example: every key it documents is accepted by the agent's parser (the Linux
#     debug binary: the parser is the same code), an unknown key is rejected;
#  5. build-pkg.sh refuses to run off macOS with a clear error, and its --stage-only layout
#     (from the cross-built target/*-apple-darwin/debug binary, when present) has the expected
#     files, modes and contents;
#  6. postinstall and uninstall.sh run against stub launchctl/install/chown/... commands
#     (unprivileged when this runs as root, so nothing real can be touched): the launchctl
#     sequence for a fresh install, an upgrade (bootout first), a failing bootstrap, another
#     target volume; what uninstall removes with and without --purge.
#
# Exits non-zero on the first mismatch; temp files are removed. Usage: bash packaging/macos/check.sh
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
linux_agent=${PALISADE_AGENT_BIN:-$repo/target/debug/palisade-agent}

plist="$here/com.palisade.agent.plist"
postinstall="$here/scripts/postinstall"
uninstall="$here/uninstall.sh"
agent_path="/Library/Application Support/Palisade/bin/palisade-agent"

start=$(date +%s)
log() { printf '[macos %3ss] %s\n' "$(($(date +%s) - start))" "$*"; }
ok() { log "ok    $*"; }
skip() { log "SKIP  $*"; }
die() { printf '[macos] FAIL: %s\n' "$*" >&2; exit 1; }

tmp=""
cleanup() {
  local rc=$?
  [ -n "$tmp" ] && rm -rf "$tmp"
  [ "$rc" -ne 0 ] && printf '[macos] FAILED (exit %s)\n' "$rc" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
tmp=$(mktemp -d "${TMPDIR:-/tmp}/palisade-macos-check.XXXXXX")
chmod 0755 "$tmp"
command -v python3 >/dev/null || die "python3 is needed (plistlib, xml.etree)"

# --- 1. scripts ------------------------------------------------------------------------------
scripts=("$here/build-pkg.sh" "$here/check.sh" "$postinstall" "$uninstall")
for s in "${scripts[@]}"; do
  grep -qx 'set -euo pipefail' "$s" || die "$s lacks 'set -euo pipefail'"
  bash -n "$s" || die "bash -n $s"
  [ -x "$s" ] || die "$s is not executable"
done
for s in "$postinstall" "$uninstall"; do
  [ "$(head -n1 "$s")" = '#!/bin/bash' ] || die "$s must start with #!/bin/bash"
  sh -n "$s" || die "sh -n $s"
done
# macOS ships bash 3.2: no ${x,,}/${x^^}, associative arrays, mapfile/readarray, |&, &>>, ;&.
for s in "$here/build-pkg.sh" "$postinstall" "$uninstall"; do
  if grep -nE '\$\{[A-Za-z_]+(,,|\^\^)|declare -A|mapfile|readarray|\|&|&>>|;&' "$s" >&2; then
    die "$s uses bash 4 syntax (above); macOS /bin/bash is 3.2"
  fi
done
ok "postinstall and uninstall.sh pass sh -n and bash -n; all scripts use set -euo pipefail; no bash-4-only syntax"
if command -v shellcheck >/dev/null; then
  shellcheck "${scripts[@]}" || die "shellcheck"
  ok "shellcheck $(shellcheck --version | sed -n 's/^version: //p'): ${#scripts[@]} scripts clean"
else
  skip "shellcheck not installed"
fi

# --- 2. the LaunchDaemon plist -----------------------------------------------------------------
python3 - "$plist" "$agent_path" <<'EOF' || die "com.palisade.agent.plist does not have the expected contents"
import plistlib, sys
path, agent = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    p = plistlib.load(f)
expected = {
    "Label": "com.palisade.agent",
    "ProgramArguments": [agent, "run"],
    "RunAtLoad": True,
    "KeepAlive": {"SuccessfulExit": False},
    "ProcessType": "Standard",
    "Umask": 0o022,
    "StandardOutPath": "/Library/Logs/Palisade/agent.log",
    "StandardErrorPath": "/Library/Logs/Palisade/agent.log",
}
for key, value in expected.items():
    assert p.get(key) == value, f"{key}: {p.get(key)!r}, expected {value!r}"
assert isinstance(p.get("ThrottleInterval"), int) and 1 <= p["ThrottleInterval"] <= 60, p.get("ThrottleInterval")
assert isinstance(p.get("ExitTimeOut"), int) and p["ExitTimeOut"] >= 5, p.get("ExitTimeOut")
# A LaunchDaemon runs as root unless told otherwise; the agent must.
for key in ("UserName", "GroupName", "Program", "inetdCompatibility"):
    assert key not in p, f"unexpected key {key}"
print("  " + ", ".join(f"{k}={p[k]!r}" for k in sorted(p)))
EOF
[ "$(basename "$plist" .plist)" = com.palisade.agent ] || die "the plist file name must be its Label"
grep -qx 'label=com.palisade.agent' "$postinstall" || die "postinstall's label differs from the plist's"
grep -qxF "agent=\"$agent_path\"" "$postinstall" || die "postinstall's agent path differs from ProgramArguments"
grep -qF 'install -d -o root -g wheel -m 0755 /Library/Logs/Palisade' "$postinstall" || die "postinstall does not create the log directory"
grep -qxF 'app_dir="Library/Application Support/Palisade"' "$here/build-pkg.sh" || die "build-pkg.sh's payload directory differs"
if command -v plutil >/dev/null; then
  plutil -lint "$plist" || die "plutil -lint"
  ok "plutil -lint"
else
  skip "plutil -lint (macOS only); plistlib parsed it"
fi
ok "plist: Label, ProgramArguments [$agent_path run], RunAtLoad, KeepAlive{SuccessfulExit=false}, ThrottleInterval, ProcessType Standard, Umask 022, logs; consistent with postinstall and build-pkg.sh"

# --- 3. distribution.xml ---------------------------------------------------------------------
sed -e 's/@VERSION@/1.2.3/g' -e 's/@HOST_ARCHITECTURES@/arm64,x86_64/g' "$here/distribution.xml" >"$tmp/distribution.xml"
python3 - "$tmp/distribution.xml" <<'EOF' || die "distribution.xml is not as expected"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "installer-gui-script", root.tag
opts = root.find("options")
assert opts.get("hostArchitectures") == "arm64,x86_64" and opts.get("customize") == "never", opts.attrib
dom = root.find("domains")
assert dom.get("enable_localSystem") == "true" and dom.get("enable_currentUserHome") == "false", dom.attrib
refs = [r for r in root.iter("pkg-ref") if (r.text or "").strip()]
assert len(refs) == 1 and refs[0].text.strip() == "palisade-agent-component.pkg", refs
assert refs[0].get("version") == "1.2.3" and refs[0].get("id") == "com.palisade.agent", refs[0].attrib
assert "@" not in open(sys.argv[1]).read(), "unreplaced placeholder"
EOF
grep -qx 'component=palisade-agent-component.pkg' "$here/build-pkg.sh" || die "build-pkg.sh's component name differs from distribution.xml"
grep -qx 'identifier=com.palisade.agent' "$here/build-pkg.sh" || die "build-pkg.sh's identifier differs"
ok "distribution.xml: well-formed, local system only, one pkg-ref to palisade-agent-component.pkg"

# --- 4. the example config ---------------------------------------------------------------------
example="$here/agent.toml.example"
sed -n 's/^#\([a-z_]*\) = /\1 = /p' "$example" >"$tmp/example.toml"
keys=$(cut -d' ' -f1 "$tmp/example.toml" | sort | tr '\n' ' ')
[ "$keys" = "claude_config_dir log settings_dir state_dir " ] || die "agent.toml.example documents keys [$keys]"
if grep -v '^#' "$example" | grep -q '[^[:space:]]'; then
  die "agent.toml.example has uncommented settings"
fi
grep -qx '#settings_dir = "/Library/Application Support/ClaudeCode"' "$example" || die "settings_dir example is not the macOS default"
grep -qx '#state_dir = "/Library/Application Support/Palisade/state"' "$example" || die "state_dir example is not the macOS default"
if [ -x "$linux_agent" ] && "$linux_agent" --version >/dev/null 2>&1; then
  probe() {
    "$linux_agent" api-key --config "$1" --state-dir "$tmp/probe-state" >/dev/null 2>"$tmp/probe.err" || true
    cat "$tmp/probe.err"
  }
  out=$(probe "$tmp/example.toml")
  grep -q 'not enrolled' <<<"$out" || die "the agent rejects agent.toml.example: $out"
  printf 'state_directory = "/x"\n' >"$tmp/bad.toml"
  out=$(probe "$tmp/bad.toml")
  grep -q 'invalid config file' <<<"$out" || die "the agent accepted an unknown key (probe is broken): $out"
  ok "agent.toml.example: keys [$keys] accepted by the agent's parser (an unknown key is rejected)"
else
  skip "agent.toml.example parse: no runnable agent at $linux_agent (keys checked by name only)"
fi

# --- 5. build-pkg.sh ---------------------------------------------------------------------------
if [ "$(uname -s)" != Darwin ]; then
  if bash "$here/build-pkg.sh" >"$tmp/build.out" 2>&1; then
    die "build-pkg.sh succeeded off macOS"
  fi
  grep -q 'must run on macOS' "$tmp/build.out" || { cat "$tmp/build.out" >&2; die "build-pkg.sh's error off macOS is unclear"; }
  ok "build-pkg.sh off macOS: exits non-zero with: $(head -n1 "$tmp/build.out")"
fi
mac_bin=""
for cand in "$repo/target/aarch64-apple-darwin/debug/palisade-agent" "$repo/target/x86_64-apple-darwin/debug/palisade-agent"; do
  if [ -f "$cand" ]; then mac_bin=$cand; break; fi
done
if [ -n "$mac_bin" ]; then
  cp "$mac_bin" "$tmp/mac-agent" # a private copy: the cross build may be running
  bash "$here/build-pkg.sh" --stage-only "$tmp/stage" --binary "$tmp/mac-agent" --version 1.2.3 >/dev/null 2>"$tmp/stage.err" \
    || { cat "$tmp/stage.err" >&2; die "build-pkg.sh --stage-only failed"; }
  (cd "$tmp/stage" && find . -print0 | sort -z | xargs -0 stat -c '%a %n') >"$tmp/stage.txt"
  cat >"$tmp/stage.expected" <<'EOF'
755 .
644 ./distribution.xml
755 ./payload
755 ./payload/Library
755 ./payload/Library/Application Support
755 ./payload/Library/Application Support/Palisade
644 ./payload/Library/Application Support/Palisade/agent.toml.example
755 ./payload/Library/Application Support/Palisade/bin
755 ./payload/Library/Application Support/Palisade/bin/palisade-agent
755 ./payload/Library/Application Support/Palisade/uninstall.sh
755 ./payload/Library/LaunchDaemons
644 ./payload/Library/LaunchDaemons/com.palisade.agent.plist
755 ./scripts
755 ./scripts/postinstall
EOF
  diff -u "$tmp/stage.expected" "$tmp/stage.txt" >&2 || die "the staged payload differs from the expected layout (above)"
  p="$tmp/stage/payload"
  cmp -s "$p$agent_path" "$tmp/mac-agent" || die "staged binary differs"
  cmp -s "$p/Library/LaunchDaemons/com.palisade.agent.plist" "$plist" || die "staged plist differs"
  cmp -s "$p/Library/Application Support/Palisade/agent.toml.example" "$example" || die "staged example differs"
  cmp -s "$tmp/stage/scripts/postinstall" "$postinstall" || die "staged postinstall differs"
  arch=arm64
  case "$mac_bin" in *x86_64-apple-darwin*) arch=x86_64 ;; esac
  grep -q "hostArchitectures=\"$arch\"" "$tmp/stage/distribution.xml" || die "staged distribution.xml does not say hostArchitectures=$arch"
  grep -q 'version="1.2.3"' "$tmp/stage/distribution.xml" || die "staged distribution.xml lacks the version"
  bash "$here/build-pkg.sh" --stage-only "$tmp/stage-elf" --binary "$linux_agent" --version 1.2.3 >/dev/null 2>"$tmp/elf.err" \
    && die "build-pkg.sh accepted a Linux (ELF) binary"
  grep -q 'not a 64-bit Mach-O' "$tmp/elf.err" || die "unclear refusal of an ELF binary: $(cat "$tmp/elf.err")"
  ok "build-pkg.sh --stage-only ($arch Mach-O from ${mac_bin#"$repo"/}): payload layout, modes, contents and distribution.xml as expected; an ELF binary is refused"
else
  skip "build-pkg.sh --stage-only: no target/*-apple-darwin/debug/palisade-agent (bash packaging/cross/check.sh builds one)"
fi

# --- 6. postinstall and uninstall.sh against stubs ---------------------------------------------
stubs="$tmp/stubs"
mkdir -p "$stubs"
calls="$tmp/calls.log"
# Every external command the two scripts run, recorded instead of run. launchctl's answers
# come from $STUB_LOADED (is the job loaded?) and $STUB_BOOTSTRAP_FAILS.
for cmd in install chown chmod ln rm pkgutil sleep; do
  cat >"$stubs/$cmd" <<EOF
#!/bin/sh
echo "$cmd \$*" >>"\$STUB_CALLS"
EOF
done
cat >"$stubs/launchctl" <<'EOF'
#!/bin/sh
echo "launchctl $*" >>"$STUB_CALLS"
case "$1" in
  print) [ -f "$STUB_STATE/loaded" ] ;;
  bootout) rm -f "$STUB_STATE/loaded" 2>/dev/null; exit 0 ;;
  bootstrap) [ -z "$STUB_BOOTSTRAP_FAILS" ] || exit 5; : >"$STUB_STATE/loaded" ;;
  *) exit 0 ;;
esac
EOF
cat >"$stubs/id" <<'EOF'
#!/bin/sh
[ "$1" = -u ] && echo 0
EOF
printf '#!/bin/sh\necho "/Library/Application Support/Palisade/bin/palisade-agent"\n' >"$stubs/readlink"
chmod 0755 "$stubs"/*
# The stub launchctl's own `rm` must be the real one; everything the scripts call is a stub.
sed -i.bak "s|rm -f \"\$STUB_STATE/loaded\"|$(command -v rm) -f \"\$STUB_STATE/loaded\"|" "$stubs/launchctl"
rm -f "$stubs/launchctl.bak"
mkdir -p "$tmp/state"
chmod 0777 "$tmp/state"

# When root, run the scripts as nobody: a command that is not stubbed cannot change anything.
drop=()
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
  drop=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
run_stubbed() { # loaded(0/1) bootstrap_fails(0/1) script args...
  local loaded=$1 fails=$2
  shift 2
  rm -f "$tmp/state/loaded"
  : >"$calls"
  chmod 0666 "$calls"
  [ "$loaded" = 1 ] && : >"$tmp/state/loaded" && chmod 0666 "$tmp/state/loaded"
  local bootstrap_fails=""
  [ "$fails" = 1 ] && bootstrap_fails=1
  local rc=0
  env -i PATH="$stubs:/usr/bin:/bin" STUB_CALLS="$calls" STUB_STATE="$tmp/state" \
    STUB_BOOTSTRAP_FAILS="$bootstrap_fails" ${drop[@]+"${drop[@]}"} /bin/bash "$@" >"$tmp/script.out" 2>&1 || rc=$?
  return "$rc"
}
expect_calls() { # name, then the expected lines on stdin
  cat >"$tmp/expected.calls"
  diff -u "$tmp/expected.calls" "$calls" >&2 || die "$1: unexpected commands (diff above)"
}
pi=("$postinstall" /tmp/palisade.pkg / /)
common_prefix='install -d -o root -g wheel -m 0755 /Library/Logs/Palisade
chown root:wheel /Library/LaunchDaemons/com.palisade.agent.plist
chmod 0644 /Library/LaunchDaemons/com.palisade.agent.plist
install -d -m 0755 /usr/local/bin
ln -sfn /Library/Application Support/Palisade/bin/palisade-agent /usr/local/bin/palisade-agent'

run_stubbed 0 0 "${pi[@]}" || { cat "$tmp/script.out" >&2; die "postinstall (fresh install) failed"; }
expect_calls "postinstall, fresh install" <<EOF
$common_prefix
launchctl print system/com.palisade.agent
launchctl enable system/com.palisade.agent
launchctl bootstrap system /Library/LaunchDaemons/com.palisade.agent.plist
EOF
ok "postinstall, fresh install: logs dir, plist root:wheel 0644, /usr/local/bin link, enable, bootstrap"

run_stubbed 1 0 "${pi[@]}" || { cat "$tmp/script.out" >&2; die "postinstall (upgrade) failed"; }
expect_calls "postinstall, upgrade" <<EOF
$common_prefix
launchctl print system/com.palisade.agent
launchctl bootout system/com.palisade.agent
launchctl print system/com.palisade.agent
launchctl enable system/com.palisade.agent
launchctl bootstrap system /Library/LaunchDaemons/com.palisade.agent.plist
EOF
ok "postinstall, upgrade (daemon loaded): bootout, wait until gone, enable, bootstrap"

if run_stubbed 0 1 "${pi[@]}"; then die "postinstall succeeded although bootstrap failed"; fi
[ "$(grep -c '^launchctl bootstrap' "$calls")" = 3 ] || die "postinstall did not retry bootstrap 3 times"
grep -q 'could not load' "$tmp/script.out" || die "postinstall's bootstrap failure message is missing"
ok "postinstall, bootstrap failing: 3 attempts, then a non-zero exit the Installer reports"

run_stubbed 0 0 "$postinstall" /tmp/palisade.pkg / /Volumes/Other || { cat "$tmp/script.out" >&2; die "postinstall (other volume) failed"; }
[ ! -s "$calls" ] || { cat "$calls" >&2; die "postinstall on another volume ran commands"; }
ok "postinstall onto another volume: only lays out files"

run_stubbed 1 0 "$uninstall" || { cat "$tmp/script.out" >&2; die "uninstall.sh failed"; }
# `[ -L /usr/local/bin/palisade-agent ]` is a shell builtin and sees this machine: the link is
# removed only where it exists (not on Linux, normally).
link_rm=""
[ -L /usr/local/bin/palisade-agent ] && link_rm=$'\nrm -f /usr/local/bin/palisade-agent'
expect_calls "uninstall.sh" <<EOF
launchctl print system/com.palisade.agent
launchctl bootout system/com.palisade.agent
rm -f /Library/LaunchDaemons/com.palisade.agent.plist$link_rm
rm -rf /Library/Application Support/Palisade/bin
rm -f /Library/Application Support/Palisade/agent.toml.example /Library/Application Support/Palisade/uninstall.sh
pkgutil --forget com.palisade.agent
EOF
run_stubbed 1 0 "$uninstall" --purge || { cat "$tmp/script.out" >&2; die "uninstall.sh --purge failed"; }
grep -qx 'rm -rf /Library/Application Support/Palisade /Library/Logs/Palisade' "$calls" || die "uninstall.sh --purge does not remove the state and logs"
if run_stubbed 1 0 "$uninstall" --bogus; then die "uninstall.sh accepted an unknown argument"; fi
ok "uninstall.sh: bootout, plist, link, binary, receipt; --purge also state, config and logs"

log "all macOS packaging checks passed (pkgbuild, productbuild, lipo, codesign and launchd not run: macOS only)"
