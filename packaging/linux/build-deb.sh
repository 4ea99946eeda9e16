#!/usr/bin/env bash
# Builds palisade-agent_<version>_<arch>.deb from a palisade-agent binary with plain
# `dpkg-deb --build --root-owner-group` (no debhelper, no debian/ source tree):
#
#   /usr/bin/palisade-agent                          the binary given (0755)
#   /lib/systemd/system/palisade-agent.service       packaging/linux/palisade-agent.service
#   /etc/palisade/agent.toml.example                 packaging/linux/agent.toml.example (conffile)
#   /usr/share/doc/palisade-agent/copyright
#   DEBIAN/postinst, prerm, postrm                   packaging/linux/debian/*
#
# The version comes from `<binary> --version` ("palisade-agent 0.1.0" -> 0.1.0; a Cargo
# pre-release "0.2.0-rc.1" becomes "0.2.0~rc.1" so that it sorts before 0.2.0), the
# architecture from the binary's ELF header, Depends from the libraries it links (readelf).
# Cross-built binaries that cannot run here need --version. Prints the path of the .deb.
#
# Usage: packaging/linux/build-deb.sh [--binary PATH] [--out-dir DIR] [options]; --help.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

usage() {
  cat <<EOF
Usage: $0 [options]

  --binary PATH        palisade-agent binary to package (default: target/release/palisade-agent,
                       else target/debug/palisade-agent, with a warning)
  --out-dir DIR        where to write the .deb (default: target/packages)
  --version VERSION    package version (default: from \`<binary> --version\`)
  --arch ARCH          Debian architecture (default: from the binary's ELF header)
  --depends DEPS       Depends field (default: computed from the binary's NEEDED libraries)
  --maintainer TEXT    Maintainer field (default: \$DEB_MAINTAINER, else a placeholder)
  --compression TYPE   xz (default), zstd, gzip or none
  -h, --help           this text
EOF
}

die() { printf 'build-deb: error: %s\n' "$*" >&2; exit 1; }
note() { printf 'build-deb: %s\n' "$*" >&2; }

binary=""
out_dir="$repo/target/packages"
version=""
arch=""
depends=""
maintainer="${DEB_MAINTAINER:-Palisade packaging <packaging@palisade.invalid>}"
compression=xz

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || die "$1 needs a value"; binary=$2; shift 2 ;;
    --out-dir) [ $# -ge 2 ] || die "$1 needs a value"; out_dir=$2; shift 2 ;;
    --version) [ $# -ge 2 ] || die "$1 needs a value"; version=$2; shift 2 ;;
    --arch) [ $# -ge 2 ] || die "$1 needs a value"; arch=$2; shift 2 ;;
    --depends) [ $# -ge 2 ] || die "$1 needs a value"; depends=$2; shift 2 ;;
    --maintainer) [ $# -ge 2 ] || die "$1 needs a value"; maintainer=$2; shift 2 ;;
    --compression) [ $# -ge 2 ] || die "$1 needs a value"; compression=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

command -v dpkg-deb >/dev/null || die "dpkg-deb not found (Debian/Ubuntu: apt-get install dpkg)"
case "$compression" in xz | zstd | gzip | none) ;; *) die "unknown compression: $compression" ;; esac

# --- the binary ----------------------------------------------------------------------------
if [ -z "$binary" ]; then
  if [ -x "$repo/target/release/palisade-agent" ]; then
    binary="$repo/target/release/palisade-agent"
  elif [ -x "$repo/target/debug/palisade-agent" ]; then
    binary="$repo/target/debug/palisade-agent"
    note "warning: no release build, packaging the DEBUG binary $binary (not for production)"
  else
    die "no binary: build one (cargo build --release -p palisade-agent) or pass --binary"
  fi
fi
[ -f "$binary" ] || die "binary not found: $binary"

# ELF magic, 64-bit little-endian, then e_machine (offset 18).
magic=$(od -An -tx1 -N6 "$binary" | tr -d ' \n')
case "$magic" in
  7f454c460201) ;;
  7f454c46*) die "$binary is not a 64-bit little-endian ELF file; pass --arch if this is intended" ;;
  *) die "$binary is not an ELF (Linux) binary" ;;
esac
if [ -z "$arch" ]; then
  machine=$(od -An -tu2 -j18 -N2 "$binary" | tr -d ' \n')
  case "$machine" in
    62) arch=amd64 ;;
    183) arch=arm64 ;;
    243) arch=riscv64 ;;
    *) die "unknown ELF machine $machine in $binary: pass --arch" ;;
  esac
fi

if [ -z "$version" ]; then
  if ! version_line=$("$binary" --version 2>/dev/null); then
    die "cannot run '$binary --version' (built for another architecture?): pass --version"
  fi
  version=${version_line#palisade-agent }
  [ "$version" != "$version_line" ] || die "unexpected --version output: $version_line"
fi
version=${version//-/\~}
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*$ ]] || die "not a usable Debian version: $version"

# --- Depends -------------------------------------------------------------------------------
if [ -z "$depends" ]; then
  command -v readelf >/dev/null || die "readelf not found (apt-get install binutils) or pass --depends"
  glibc=$(readelf -V -W "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n 1)
  [ -n "$glibc" ] || die "no GLIBC symbol versions in $binary (static or musl build?): pass --depends"
  depends="libc6 (>= $glibc)"
  while read -r lib; do
    case "$lib" in
      libc.so.6 | libm.so.6 | libpthread.so.0 | libdl.so.2 | librt.so.1 | ld-linux*.so.*) ;;
      libgcc_s.so.1) depends="$depends, libgcc-s1" ;;
      *) die "$binary links $lib, which this script cannot map to a package: pass --depends" ;;
    esac
  done < <(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
fi

# --- staging tree --------------------------------------------------------------------------
umask 022
stage=$(mktemp -d "${TMPDIR:-/tmp}/palisade-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"

install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
  "$stage/etc/palisade" "$stage/usr/share/doc/palisade-agent"
install -m 0755 "$binary" "$stage/usr/bin/palisade-agent"
install -m 0644 "$here/palisade-agent.service" "$stage/lib/systemd/system/palisade-agent.service"
install -m 0644 "$here/agent.toml.example" "$stage/etc/palisade/agent.toml.example"
cat >"$stage/usr/share/doc/palisade-agent/copyright" <<'EOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: palisade-agent

Files: *
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
EOF
chmod 0644 "$stage/usr/share/doc/palisade-agent/copyright"

for script in postinst prerm postrm; do
  install -m 0755 "$here/debian/$script" "$stage/DEBIAN/$script"
done
printf '/etc/palisade/agent.toml.example\n' >"$stage/DEBIAN/conffiles"
chmod 0644 "$stage/DEBIAN/conffiles"

installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: palisade-agent
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_size
Depends: $depends
Section: admin
Priority: optional
Description: Palisade agent: applies the organisation's Claude Code policy
 Enrolls this machine with a Palisade control plane, streams the policy of
 the developer's identity-provider groups, and writes it as Claude Code's
 managed settings (/etc/claude-code/managed-settings.d/50-palisade.json). It
 serves the organisation's API key to Claude Code (apiKeyHelper), restores
 tampered settings, and wipes the key and Claude Code's login when the
 developer is deprovisioned.
 .
 Set claude_config_dir in /etc/palisade/agent.toml (see agent.toml.example),
 restart palisade-agent.service, then run "palisade-agent enroll".
EOF
chmod 0644 "$stage/DEBIAN/control"

mkdir -p "$out_dir"
deb="$out_dir/palisade-agent_${version}_${arch}.deb"
note "building $deb (binary $binary, compression $compression)"
dpkg-deb --root-owner-group -Z"$compression" --build "$stage" "$deb" >/dev/null
echo "$deb"
