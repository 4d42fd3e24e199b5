#!/usr/bin/env bash
# The compatibility matrix of the guest tests (issue 21): the guest kernels and the QEMU they run
# on besides Linux 6.12 + QEMU 10.0 (setup.sh installs those). Called by setup.sh; idempotent:
# when everything is in place it only reads apt's local metadata (no network, no downloads).
#
#   /var/cache/vhost-user-kernels/<kver>/boot/vmlinuz-<kver>, lib/modules/<kver>/ (with
#     modules.dep), boot/config-<kver>: Linux 5.10 (Debian 11) and Linux 6.1 (Debian 12),
#     unpacked from their image packages, never installed (the machine boots neither).
#   linux-headers-<6.1 kver> and linux-source-6.1 of exactly that image's version, installed
#     (bookworm packages): the tests build gpio-virtio, i2c-virtio and virtio_snd for it.
#   /var/cache/vhost-user-qemu-7.2/usr/bin/qemu-system-x86_64: bookworm's own QEMU 7.2, unpacked
#     beside the installed QEMU 10 (installing it would replace QEMU 10). It looks for firmware
#     only relative to its binary (../share/qemu, ../share/seabios, ../lib/ipxe/qemu: see its
#     `-L help`), so bookworm's seabios and ipxe-qemu are unpacked into the same tree.
# Each newest version is taken from apt's metadata, not written here; a newer one replaces the
# older unpacked copy of its series.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

KERNELS=/var/cache/vhost-user-kernels
QEMU72=/var/cache/vhost-user-qemu-7.2
# Debian 11 is not one of the machine's apt sources and must not become one: its package lists
# live in a private apt state here, used only to download.
BULLSEYE_APT=/var/cache/vhost-user-apt-bullseye
apt_bullseye=(-o Dir::Etc::SourceList="$BULLSEYE_APT/bullseye.sources" -o Dir::Etc::SourceParts=-
  -o Dir::State::Lists="$BULLSEYE_APT/lists" -o Dir::State::status="$BULLSEYE_APT/status"
  -o Dir::Cache="$BULLSEYE_APT/cache" -o APT::Architectures=amd64 -o APT::Sandbox::User=root)

# newest_version APT_ARGS... -- PACKAGE [VERSION_PREFIX]: the newest version apt knows of.
newest_version() {
  local args=() best="" v
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  for v in $(apt-cache "${args[@]}" madison "$1" 2>/dev/null | awk -F' *[|] *' '{print $2}'); do
    [[ "$v" == "${2:-}"* ]] || continue
    [[ "$v" != *bpo* ]] || continue  # bookworm's own, not a backport (QEMU 10's seabios)
    if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
  done
  echo "$best"
}

# newest_kernel APT_ARGS... -- SERIES: "<kver> <version>" of the newest amd64 image of SERIES
# (e.g. 5.10.0); the kernel ABI number in the package name grows with each upload.
newest_kernel() {
  local args=() pkg kver
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  pkg=$(apt-cache "${args[@]}" pkgnames "linux-image-$2-" 2>/dev/null |
    grep -E "^linux-image-${2//./\\.}-[0-9]+-amd64-unsigned\$" | sort -V | tail -1 || true)
  [ -n "$pkg" ] || return 0
  kver=${pkg#linux-image-}
  kver=${kver%-unsigned}
  echo "$kver $(newest_version "${args[@]}" -- "$pkg")"
}

# kernel_present KVER VERSION: that package version is unpacked, with modules.dep.
kernel_present() {
  [ -f "$KERNELS/$1/boot/vmlinuz-$1" ] && [ -f "$KERNELS/$1/lib/modules/$1/modules.dep" ] &&
    [ "$(cat "$KERNELS/$1/.version" 2>/dev/null)" = "$2" ]
}

# unpack_kernel KVER VERSION SERIES APT_ARGS...: downloads the unsigned image package (the same
# kernel and modules as the signed one), unpacks it into $KERNELS/KVER and removes older kernels
# of SERIES.
unpack_kernel() {
  local kver=$1 version=$2 series=$3 tmp old
  shift 3
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get "$@" -o APT::Sandbox::User=root download -q "linux-image-$kver-unsigned=$version")
  $SUDO mkdir -p "$KERNELS"
  $SUDO rm -rf "$KERNELS/$kver.new"
  $SUDO dpkg -x "$tmp"/linux-image-*.deb "$KERNELS/$kver.new"
  rm -rf "$tmp"
  # The package leaves modules.dep to its postinst.
  [ -f "$KERNELS/$kver.new/lib/modules/$kver/modules.dep" ] ||
    $SUDO depmod -b "$KERNELS/$kver.new" "$kver"
  echo "$version" | $SUDO tee "$KERNELS/$kver.new/.version" >/dev/null
  $SUDO rm -rf "$KERNELS/$kver"
  $SUDO mv "$KERNELS/$kver.new" "$KERNELS/$kver"
  for old in "$KERNELS/$series"-*; do
    [ "$old" = "$KERNELS/$kver" ] || $SUDO rm -rf "$old"
  done
}

# ---- Linux 5.10 (Debian 11) through the private apt state. Its sources are the machine's own
# Debian stanzas (so no archive host is written here) with bookworm renamed bullseye; bullseye's
# signing keys are in the same debian-archive-keyring.gpg.
if [ ! -f "$BULLSEYE_APT/bullseye.sources" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  $SUDO mkdir -p "$BULLSEYE_APT/lists/partial" "$BULLSEYE_APT/cache/archives/partial"
  $SUDO touch "$BULLSEYE_APT/status"
  sed -E '/^Suites:/ s/bookworm/bullseye/g' /etc/apt/sources.list.d/debian.sources |
    $SUDO tee "$BULLSEYE_APT/bullseye.sources" >/dev/null
fi
if [ -f "$BULLSEYE_APT/bullseye.sources" ]; then
  read -r kver version < <(newest_kernel "${apt_bullseye[@]}" -- 5.10.0) || true
  if [ -z "${kver:-}" ] || ! kernel_present "$kver" "$version"; then
    $SUDO apt-get "${apt_bullseye[@]}" update -q
    read -r kver version < <(newest_kernel "${apt_bullseye[@]}" -- 5.10.0)
    kernel_present "$kver" "$version" || unpack_kernel "$kver" "$version" 5.10.0 "${apt_bullseye[@]}"
  fi
fi

# ---- Linux 6.1 (Debian 12, bookworm or bookworm-security) through the machine's own apt, with
# its headers and source installed at exactly the image's version.
kver="" version=""
read -r kver version < <(newest_kernel -- 6.1.0) || true
installed_version() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
  awk '/install ok installed/ {print $4}'; }
if [ -z "$kver" ] || ! kernel_present "$kver" "$version" ||
   [ "$(installed_version "linux-headers-$kver")" != "$version" ] ||
   [ "$(installed_version linux-source-6.1)" != "$version" ]; then
  $SUDO apt-get update -q
  read -r kver version < <(newest_kernel -- 6.1.0)
  kernel_present "$kver" "$version" || unpack_kernel "$kver" "$version" 6.1.0
  $SUDO apt-get install -y -q --no-install-recommends --allow-downgrades \
    "linux-headers-$kver=$version" "linux-source-6.1=$version" make gcc bc
fi

# ---- QEMU 7.2 (bookworm's own), unpacked: the emulator, its common files, its firmware
# directory and the BIOS and option ROMs it loads, each at its newest bookworm version (the
# arch-independent packages have no binNMU suffix, so the versions may differ).
QEMU72_PACKAGES=(qemu-system-x86 qemu-system-common qemu-system-data seabios ipxe-qemu)
qemu_prefix() { [[ "$1" != qemu-* ]] || echo 1:7.2; }
wanted=""
for p in "${QEMU72_PACKAGES[@]}"; do wanted+="$p=$(newest_version -- "$p" "$(qemu_prefix "$p")") "; done
if [ "$(cat "$QEMU72/.versions" 2>/dev/null)" != "$wanted" ] ||
   ! "$QEMU72/usr/bin/qemu-system-x86_64" --version 2>/dev/null | grep -q 'version 7\.2'; then
  $SUDO apt-get update -q
  wanted=""
  for p in "${QEMU72_PACKAGES[@]}"; do wanted+="$p=$(newest_version -- "$p" "$(qemu_prefix "$p")") "; done
  tmp=$(mktemp -d)
  # shellcheck disable=SC2086  # one word per package=version
  (cd "$tmp" && apt-get -o APT::Sandbox::User=root download -q $wanted)
  $SUDO rm -rf "$QEMU72.new"
  for deb in "$tmp"/*.deb; do $SUDO dpkg -x "$deb" "$QEMU72.new"; done
  rm -rf "$tmp"
  echo -n "$wanted" | $SUDO tee "$QEMU72.new/.versions" >/dev/null
  $SUDO rm -rf "$QEMU72"
  $SUDO mv "$QEMU72.new" "$QEMU72"
fi
# Every library QEMU 7.2 links is one QEMU 10 links too (checked with ldd when this was written).
missing_libs=$(ldd "$QEMU72/usr/bin/qemu-system-x86_64" | awk '/not found/ {print $1}')
if [ -n "$missing_libs" ]; then
  echo "setup_compat: QEMU 7.2 lacks libraries: $missing_libs" >&2
  exit 1
fi
# Firmware links in the unpacked tree must land on files in it.
dangling=$(find "$QEMU72/usr/share/qemu" -xtype l -printf '%f ' 2>/dev/null || true)
if [ -n "$dangling" ]; then
  echo "setup_compat: QEMU 7.2 firmware links without a target: $dangling" >&2
  exit 1
fi
echo "setup_compat: Linux $(cd "$KERNELS" && echo *) and QEMU 7.2 present"
