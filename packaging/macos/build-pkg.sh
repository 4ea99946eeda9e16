#!/usr/bin/env bash
# Builds the Palisade agent installer package for macOS, palisade-agent-<version>-<arch>.pkg
# (arch: universal, arm64 or x86_64). Runs ON macOS only: pkgbuild, productbuild, lipo and
# codesign exist only there (elsewhere it exits with an error, except --stage-only).
#
# Payload (root:wheel):
#   /Library/Application Support/Palisade/bin/palisade-agent         0755, the binary
#   /Library/Application Support/Palisade/agent.toml.example         0644
#   /Library/Application Support/Palisade/uninstall.sh               0755
#   /Library/LaunchDaemons/com.palisade.agent.plist                  0644
# plus scripts/postinstall (loads the daemon) and distribution.xml (productbuild).
#
# The binary: --binary PATH, or --arm64 PATH and --x86_64 PATH, which are merged with lipo
# into a universal binary. Default: target/{aarch64,x86_64}-apple-darwin/release/palisade-agent
# when both exist, else target/release/palisade-agent. The version comes from
# `palisade-agent --version` unless --version is given.
#
# Signing (optional): --codesign "Developer ID Application: ..." signs the binary (hardened
# runtime, secure timestamp); --sign "Developer ID Installer: ..." signs the pkg;
# --notarize <notarytool keychain profile> submits the signed pkg to Apple's notary service and
# staples the ticket (needs both identities).
#
# --stage-only DIR lays out the payload, scripts and distribution.xml in DIR without building
# anything (works on any OS; used by packaging/macos/check.sh). Usage: --help.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

identifier=com.palisade.agent
component=palisade-agent-component.pkg
app_dir="Library/Application Support/Palisade"

usage() {
  cat <<EOF
Usage: $0 [options]

  --binary PATH          a palisade-agent Mach-O binary (thin or universal)
  --arm64 PATH           the aarch64-apple-darwin binary   } both: lipo'd into a
  --x86_64 PATH          the x86_64-apple-darwin binary    } universal binary
  --version VERSION      package version (default: from \`palisade-agent --version\`)
  --out-dir DIR          where to write the pkg (default: target/packages)
  --codesign IDENTITY    sign the binary, e.g. "Developer ID Application: Example Inc (TEAMID)"
  --sign IDENTITY        sign the pkg, e.g. "Developer ID Installer: Example Inc (TEAMID)"
  --keychain PATH        keychain holding the identities (default: the search list)
  --notarize PROFILE     notarize and staple (xcrun notarytool store-credentials PROFILE first)
  --stage-only DIR       only lay out payload/, scripts/ and distribution.xml in DIR (any OS)
  -h, --help             this text
EOF
}

die() { printf 'build-pkg: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'build-pkg: %s\n' "$*" >&2; }

binary=""
arm64=""
x86_64=""
version=""
out_dir="$repo/target/packages"
codesign_id=""
sign_id=""
keychain=""
notary_profile=""
stage_only=""

while [ $# -gt 0 ]; do
  case "$1" in
    --binary | --arm64 | --x86_64 | --version | --out-dir | --codesign | --sign | --keychain | --notarize | --stage-only)
      [ $# -ge 2 ] || die "$1 needs a value"
      case "$1" in
        --binary) binary=$2 ;;
        --arm64) arm64=$2 ;;
        --x86_64) x86_64=$2 ;;
        --version) version=$2 ;;
        --out-dir) out_dir=$2 ;;
        --codesign) codesign_id=$2 ;;
        --sign) sign_id=$2 ;;
        --keychain) keychain=$2 ;;
        --notarize) notary_profile=$2 ;;
        --stage-only) stage_only=$2 ;;
      esac
      shift 2
      ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

on_macos=""
[ "$(uname -s)" = Darwin ] && on_macos=1
if [ -z "$stage_only" ]; then
  [ -n "$on_macos" ] || die "this builds a macOS installer and must run on macOS: pkgbuild and productbuild exist only there (this is $(uname -s)). --stage-only DIR lays out the payload anywhere."
  for tool in pkgbuild productbuild lipo; do
    command -v "$tool" >/dev/null || die "$tool not found (install the Xcode command line tools: xcode-select --install)"
  done
fi
if [ -n "$notary_profile" ] && { [ -z "$sign_id" ] || [ -z "$codesign_id" ]; }; then
  die "--notarize needs --codesign (the binary) and --sign (the pkg): Apple notarizes only signed code"
fi

# --- which binary --------------------------------------------------------------------------
if [ -n "$binary" ] && { [ -n "$arm64" ] || [ -n "$x86_64" ]; }; then
  die "give either --binary or --arm64/--x86_64"
fi
if [ -z "$binary" ] && [ -z "$arm64" ] && [ -z "$x86_64" ]; then
  a="$repo/target/aarch64-apple-darwin/release/palisade-agent"
  x="$repo/target/x86_64-apple-darwin/release/palisade-agent"
  if [ -f "$a" ] && [ -f "$x" ]; then
    arm64=$a x86_64=$x
  elif [ -f "$repo/target/release/palisade-agent" ]; then
    binary="$repo/target/release/palisade-agent"
  else
    die "no binary: build with cargo build --release -p palisade-agent --target aarch64-apple-darwin (and x86_64-apple-darwin), or pass --binary"
  fi
elif [ -z "$binary" ] && { [ -z "$arm64" ] || [ -z "$x86_64" ]; }; then
  binary="$arm64$x86_64" # only one of them: a thin package
  arm64="" x86_64=""
fi

# The architectures in a Mach-O file, comma-separated.
macho_archs() {
  local magic cpu
  [ -f "$1" ] || die "not found: $1"
  magic=$(od -An -tx1 -N4 "$1" | tr -d ' \n')
  case "$magic" in
    cffaedfe)
      cpu=$(od -An -tx1 -j4 -N4 "$1" | tr -d ' \n')
      case "$cpu" in
        0c000001) echo arm64 ;;
        07000001) echo x86_64 ;;
        *) die "$1: unsupported Mach-O CPU type $cpu" ;;
      esac
      ;;
    cafebabe)
      command -v lipo >/dev/null || die "$1 is a universal binary: reading it needs lipo"
      lipo -archs "$1" | tr ' ' '\n' | sort | paste -sd, -
      ;;
    *) die "$1 is not a 64-bit Mach-O executable (a macOS binary)" ;;
  esac
}

work=$(mktemp -d "${TMPDIR:-/tmp}/palisade-pkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022
bin="$work/palisade-agent"
if [ -n "$arm64" ]; then
  [ "$(macho_archs "$arm64")" = arm64 ] || die "--arm64 $arm64 is not an arm64 binary"
  [ "$(macho_archs "$x86_64")" = x86_64 ] || die "--x86_64 $x86_64 is not an x86_64 binary"
  command -v lipo >/dev/null || die "lipo not found: a universal binary can only be made on macOS"
  lipo -create -output "$bin" "$arm64" "$x86_64"
  note "universal binary from $arm64 and $x86_64"
else
  macho_archs "$binary" >/dev/null # refuses anything but a Mach-O executable
  cp "$binary" "$bin"
fi
chmod 0755 "$bin"
archs=$(macho_archs "$bin")
case "$archs" in
  arm64,x86_64) arch_name=universal ;;
  arm64 | x86_64) arch_name=$archs ;;
  *) die "unexpected architectures in the binary: $archs" ;;
esac

if [ -z "$version" ]; then
  [ -n "$on_macos" ] || die "cannot run a macOS binary here to read its version: pass --version"
  version_line=$("$bin" --version) || die "'palisade-agent --version' failed: pass --version"
  version=${version_line#palisade-agent }
  [ "$version" != "$version_line" ] || die "unexpected --version output: $version_line"
fi
[[ "$version" =~ ^[0-9]+(\.[0-9]+)*([-+][0-9A-Za-z.-]+)?$ ]] || die "not a usable version: $version"

if [ -n "$codesign_id" ]; then
  note "signing the binary as $codesign_id (hardened runtime)"
  if [ -n "$keychain" ]; then
    codesign --force --options runtime --timestamp --keychain "$keychain" --sign "$codesign_id" "$bin"
  else
    codesign --force --options runtime --timestamp --sign "$codesign_id" "$bin"
  fi
  codesign --verify --strict --verbose=2 "$bin"
fi

# --- payload, scripts, distribution ---------------------------------------------------------
payload="$work/payload"
install -d -m 0755 "$payload/$app_dir/bin" "$payload/Library/LaunchDaemons"
install -m 0755 "$bin" "$payload/$app_dir/bin/palisade-agent"
install -m 0644 "$here/agent.toml.example" "$payload/$app_dir/agent.toml.example"
install -m 0755 "$here/uninstall.sh" "$payload/$app_dir/uninstall.sh"
install -m 0644 "$here/com.palisade.agent.plist" "$payload/Library/LaunchDaemons/com.palisade.agent.plist"
install -d -m 0755 "$work/scripts"
install -m 0755 "$here/scripts/postinstall" "$work/scripts/postinstall"
sed -e "s/@VERSION@/$version/g" -e "s/@HOST_ARCHITECTURES@/$archs/g" \
  "$here/distribution.xml" >"$work/distribution.xml"

if [ -n "$stage_only" ]; then
  mkdir -p "$stage_only"
  [ -z "$(ls -A "$stage_only")" ] || die "--stage-only directory is not empty: $stage_only"
  cp -R "$payload" "$work/scripts" "$work/distribution.xml" "$stage_only/"
  note "staged version $version ($arch_name) in $stage_only; no pkg built"
  echo "$stage_only"
  exit 0
fi

# --- build ---------------------------------------------------------------------------------
mkdir -p "$work/pkgs" "$out_dir"
# --ownership recommended: root:wheel for everything, whoever runs this.
pkgbuild --root "$payload" --scripts "$work/scripts" --identifier "$identifier" \
  --version "$version" --install-location / --ownership recommended \
  "$work/pkgs/$component" >&2

pkg="$out_dir/palisade-agent-$version-$arch_name.pkg"
product=(productbuild --distribution "$work/distribution.xml" --package-path "$work/pkgs")
if [ -n "$sign_id" ]; then
  product+=(--sign "$sign_id" --timestamp)
  if [ -n "$keychain" ]; then product+=(--keychain "$keychain"); fi
fi
"${product[@]}" "$pkg" >&2
if [ -n "$sign_id" ]; then
  pkgutil --check-signature "$pkg" >&2
fi

if [ -n "$notary_profile" ]; then
  note "notarizing (xcrun notarytool, profile $notary_profile); this can take minutes"
  xcrun notarytool submit "$pkg" --keychain-profile "$notary_profile" --wait >&2
  xcrun stapler staple "$pkg" >&2
fi
note "built $pkg (version $version, $arch_name${sign_id:+, signed})"
echo "$pkg"
