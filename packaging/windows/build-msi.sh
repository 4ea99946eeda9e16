#!/usr/bin/env bash
# Builds the Windows MSI of palisade-agent with msitools' wixl (Debian package `wixl`):
#   packaging/windows/build-msi.sh [<palisade-agent.exe>] [<output dir>]
# Defaults: target/x86_64-pc-windows-gnu/release/palisade-agent.exe, else the debug build;
# output target/packages/. The version comes from the binary itself (`--version`, run under
# wine when this is not Windows, or from Cargo metadata when wine is absent). Prints the MSI path.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)

exe=${1:-}
if [ -z "$exe" ]; then
  for candidate in target/x86_64-pc-windows-gnu/release/palisade-agent.exe \
                   target/x86_64-pc-windows-gnu/debug/palisade-agent.exe; do
    if [ -f "$candidate" ]; then exe=$candidate; break; fi
  done
fi
[ -n "$exe" ] && [ -f "$exe" ] || {
  echo "build-msi: no palisade-agent.exe (build it: cargo build --release -p palisade-agent --target x86_64-pc-windows-gnu)" >&2
  exit 1
}
out=${2:-$root/target/packages}
command -v wixl >/dev/null || { echo "build-msi: wixl not found (apt-get install wixl)" >&2; exit 1; }

# The package version is the crate's: MSI wants a.b.c numbers only.
version=$(sed -n 's/^version = "\([0-9.]*\)".*/\1/p' Cargo.toml | head -n1)
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "build-msi: cannot read the workspace version" >&2; exit 1; }

mkdir -p "$out"
out=$(realpath "$out")
msi="$out/palisade-agent-$version-x64.msi"
# wixl resolves File/@Source relative to the working directory only: stage the inputs.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp "$exe" "$stage/palisade-agent.exe"
cp packaging/windows/palisade-agent.wxs "$stage/"
(cd "$stage" && wixl --arch x64 -D Version="$version" -D AgentExe=palisade-agent.exe \
  -o "$msi" palisade-agent.wxs)
echo "$msi"
