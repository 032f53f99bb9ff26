#!/usr/bin/env bash
# Installs what the kernel-module harness (tests/kmod/) needs, non-interactively
# and idempotently (root, Debian 12, Debian's apt reachable):
#   - qemu-system-x86 (qemu-system-x86_64, no KVM needed), busybox-static,
#     make, gcc, and linux-headers-amd64 plus the exact versioned headers package;
#   - Debian's kernel image, WITHOUT installing it (installing the linux-image
#     package runs update-initramfs for minutes): the versioned package that
#     linux-image-amd64 depends on is `apt-get download`-ed and `dpkg -x`-ed into
#     build/kmod/kernel/ (vmlinuz and the /lib/modules tree with virtio and 9p).
# The headers must be the very version of that kernel; the script checks it and
# fails with a clear message otherwise. Work already done is skipped.
#
#   sudo tests/kmod/setup.sh            # then: deno test --allow-all tests/kmod/
#
# Another kernel (docs/kmod.md, "Kernels"): name its meta package and a cache dir,
# then point the tests at it:
#   sudo IDWRAP_KMOD_META=linux-image-6.12-amd64 IDWRAP_KMOD_CACHE=$PWD/build/kmod/kernel-6.12 tests/kmod/setup.sh
#   IDWRAP_KMOD_KERNEL=$PWD/build/kmod/kernel-6.12 deno test --allow-all tests/kmod/
# (6.12's headers package depends on its image package, so that one does get
# installed, update-initramfs and all.)
#
# Output: build/kmod/kernel/{release,version,vmlinuz,lib/modules/<release>/}
# where `release` holds e.g. "6.1.0-56-amd64" (uname -r of the guest) and
# `version` the Debian package version, e.g. "6.1.192-2".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${IDWRAP_KMOD_CACHE:-$ROOT/build/kmod/kernel}
export DEBIAN_FRONTEND=noninteractive

say() { echo "kmod-setup: $*"; }
die() {
  echo "kmod-setup: error: $*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root (it runs apt-get install)"
command -v apt-get >/dev/null || die "needs Debian's apt-get"

start=$(date +%s)
updated=0
apt_update() {
  if [ "$updated" = 0 ]; then
    say "apt-get update"
    apt-get update -qq
    updated=1
  fi
}

META=${IDWRAP_KMOD_META:-linux-image-amd64}

# The versioned image package $META depends on (linux-image-6.1.0-NN-amd64).
image_pkg() {
  apt-cache depends "$META" 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }'
}
candidate() { apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }'; }
installed() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null | awk '$3 == "installed" { print $4 }'; }

pkg=$(image_pkg)
if [ -z "$pkg" ]; then
  apt_update
  pkg=$(image_pkg)
fi
[ -n "$pkg" ] || die "apt-cache depends $META names no linux-image-<abi>-amd64 package (is this Debian 12 with its main archive?)"
release=${pkg#linux-image-}   # e.g. 6.1.0-56-amd64: uname -r of that kernel
version=$(candidate "$pkg")  # e.g. 6.1.192-2
[ -n "$version" ] && [ "$version" != "(none)" ] || die "no candidate version for $pkg"
say "kernel package: $pkg $version (release $release)"

# 1. Debian packages. The headers are pinned to the image's exact version.
want=(qemu-system-x86 busybox-static make gcc linux-headers-amd64 "linux-headers-$release")
missing=()
for p in "${want[@]}"; do
  [ -n "$(installed "$p")" ] || missing+=("$p")
done
if [ "$(installed "linux-headers-$release")" != "" ] && [ "$(installed "linux-headers-$release")" != "$version" ]; then
  missing+=("linux-headers-$release")
fi
if [ ${#missing[@]} -eq 0 ]; then
  say "packages already installed: ${want[*]}"
else
  apt_update
  args=()
  for p in "${missing[@]}"; do
    if [ "$p" = "linux-headers-$release" ]; then args+=("$p=$version"); else args+=("$p"); fi
  done
  say "apt-get install --no-install-recommends ${args[*]}"
  apt-get install -y -qq --no-install-recommends --allow-downgrades "${args[@]}" >/dev/null ||
    die "apt-get install ${args[*]} failed (the headers must be exactly $version, the version of $pkg)"
fi

# 2. The kernel image, extracted, not installed.
if [ -f "$CACHE/release" ] && [ "$(cat "$CACHE/release")" = "$release" ] &&
  [ -f "$CACHE/version" ] && [ "$(cat "$CACHE/version")" = "$version" ] &&
  [ -f "$CACHE/vmlinuz" ] && [ -d "$CACHE/lib/modules/$release/kernel" ]; then
  say "kernel already extracted: $CACHE (vmlinuz, lib/modules/$release)"
else
  rm -rf "$CACHE"
  mkdir -p "$CACHE/deb"
  say "apt-get download $pkg=$version"
  if ! (cd "$CACHE/deb" && apt-get download -qq "$pkg=$version" 2>/dev/null); then
    # Stale package lists name a version the mirror no longer has: refresh once.
    apt_update
    version=$(candidate "$pkg")
    (cd "$CACHE/deb" && apt-get download -qq "$pkg=$version") || die "apt-get download $pkg=$version failed"
  fi
  deb=$(ls "$CACHE"/deb/"${pkg}"_*.deb)
  say "dpkg -x $(basename "$deb") $CACHE"
  dpkg -x "$deb" "$CACHE"
  cp "$CACHE/boot/vmlinuz-$release" "$CACHE/vmlinuz"
  rm -rf "$CACHE/deb" "$CACHE/usr/share"
  echo "$release" >"$CACHE/release"
  echo "$version" >"$CACHE/version"
fi

# 3. Verify that the headers are exactly this kernel's.
hv=$(installed "linux-headers-$release")
[ "$hv" = "$version" ] ||
  die "linux-headers-$release is ${hv:-not installed}, but the kernel extracted in $CACHE is $pkg $version: they must match exactly (re-run after apt-get update, or remove $CACHE)"
build="/usr/src/linux-headers-$release"
[ -f "$build/Makefile" ] || die "$build/Makefile is missing (linux-headers-$release broken?)"
# (include/config/kernel.release holds Debian's upstream version, e.g. 6.1.192;
# the vermagic modules get comes from UTS_RELEASE, which must be the release.)
kr=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$build/include/generated/utsrelease.h" 2>/dev/null || true)
[ "$kr" = "$release" ] || die "$build/include/generated/utsrelease.h says UTS_RELEASE '$kr', the kernel is '$release'"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p; do
  # Not built as a module by this kernel (6.12: virtio built in, fscache part of netfs): nothing to load.
  grep -q "/$m\.ko$" "$CACHE/lib/modules/$release/modules.order" || continue
  find "$CACHE/lib/modules/$release/kernel" -name "$m.ko*" | grep -q . ||
    die "module $m is not in $CACHE/lib/modules/$release (needed to mount the host over 9p)"
done

say "ok: kernel $CACHE/vmlinuz ($release, $version), modules $CACHE/lib/modules/$release, headers $build ($hv); $(($(date +%s) - start)) s"
