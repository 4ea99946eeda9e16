#!/bin/bash
# Removes the Palisade agent from a Mac (run as root; installed by the pkg as
# "/Library/Application Support/Palisade/uninstall.sh"). Unloads the LaunchDaemon, removes
# the plist, the binary, the /usr/local/bin link if it points to it, the example config and
# the pkg receipt. With --purge it also removes /Library/Application Support/Palisade (the
# config, the state directory with the device credential and API key, the developer key tree)
# and /Library/Logs/Palisade. Claude Code's managed settings drop-in
# (/Library/Application Support/ClaudeCode/managed-settings.d/50-palisade.json) is left in
# place either way: remove it yourself if Claude Code should no longer be governed.
set -euo pipefail

label=com.palisade.agent
plist=/Library/LaunchDaemons/$label.plist
base="/Library/Application Support/Palisade"
agent="$base/bin/palisade-agent"

purge=""
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root (sudo)" >&2; exit 1; }

if launchctl print "system/$label" >/dev/null 2>&1; then
  launchctl bootout "system/$label" || true
fi
rm -f "$plist"
if [ -L /usr/local/bin/palisade-agent ] && [ "$(readlink /usr/local/bin/palisade-agent)" = "$agent" ]; then
  rm -f /usr/local/bin/palisade-agent
fi
rm -rf "${base:?}/bin"
rm -f "$base/agent.toml.example" "$base/uninstall.sh"
pkgutil --forget "$label" >/dev/null 2>&1 || true
if [ -n "$purge" ]; then
  rm -rf "$base" /Library/Logs/Palisade
  echo "Palisade agent removed, with its configuration, state and logs."
else
  echo "Palisade agent removed; kept: $base (agent.toml, state) and /Library/Logs/Palisade (--purge removes them)."
fi
