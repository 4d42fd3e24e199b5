#!/usr/bin/env bash
# Installs everything the build, the tests and the guest demo need, idempotently.
# Adds bookworm-backports (QEMU 10.0, Linux 6.12) derived from the machine's own first
# Debian source stanza, so no archive host name is written here.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

BACKPORTS_LIST=/etc/apt/sources.list.d/vhost-user-backports.sources
if [ ! -f "$BACKPORTS_LIST" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  # First stanza only (the security archive has no backports suite).
  awk 'BEGIN{RS=""; ORS="\n\n"} NR==1{print; exit}' /etc/apt/sources.list.d/debian.sources |
    sed -E 's/^Suites:.*/Suites: bookworm-backports/' | $SUDO tee "$BACKPORTS_LIST" >/dev/null
  NEED_UPDATE=1
fi

BUILD_PACKAGES=(
  bazel-bootstrap bazel-rules-java g++ clang-format
  libabsl-dev libgflags-dev libgoogle-glog-dev libgtest-dev libgmock-dev libseccomp-dev
  libunwind-dev liburing-dev
  libasound2-dev libpipewire-0.3-dev
  libdrm-dev nlohmann-json3-dev
  libvirglrenderer-dev libegl-dev libgles-dev libgbm-dev libegl-mesa0 libgl1-mesa-dri
)
# sg3-utils and e2fsprogs (mke2fs, e2fsck, debugfs): the SCSI guest test copies the tools into its
# guest and checks the ext4 image from the host. alsa-utils: the sound guest test's aplay/arecord.
# pipewire, pipewire-bin, wireplumber: the headless PipeWire the sound bridge's tests start.
# libdrm-dev (BUILD_PACKAGES): the DRM uapi headers of the gpu guest tool (no libdrm linked).
# nlohmann-json3-dev: header-only JSON, for vhost-user-stat reading a daemon's stats socket.
# libvirglrenderer-dev, libegl-mesa0, libgl1-mesa-dri: vhost-user-gpu-virgl's 3D on Mesa
# (llvmpipe without a GPU); libegl-dev, libgles-dev, libgbm-dev: the 3D guest test's GL program.
# podman, runc, conmon: the container guest test builds each daemon's OCI image and runs it
# (runc: crun refuses cgroup v1+v2 hybrid hosts whose v2 tree holds a controller).
# dpkg-dev, lintian, go-md2man, groff-base, man-db: the Debian packages (scripts/build_debs.sh),
# their lint, their man pages, and the installed-packages guest test.
TEST_PACKAGES=(busybox-static cpio xz-utils gzip kmod python3 fio strace sg3-utils e2fsprogs
  alsa-utils pipewire pipewire-bin wireplumber podman runc conmon
  dpkg-dev lintian go-md2man groff-base man-db)
BACKPORTS_PACKAGES=(qemu-system-x86 qemu-utils linux-image-amd64)

missing=()
for p in "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# QEMU must be 10.x (vhost-user-snd and friends) and the kernel 6.12, both from backports.
qemu_ok=0
if command -v qemu-system-x86_64 >/dev/null &&
   qemu-system-x86_64 --version | grep -qE 'version (9|[1-9][0-9])\.'; then qemu_ok=1; fi
kernel_ok=0
ls /boot/vmlinuz-6.1[2-9]* >/dev/null 2>&1 && kernel_ok=1

if [ ${#missing[@]} -gt 0 ] || [ $qemu_ok -eq 0 ] || [ $kernel_ok -eq 0 ] || [ -n "${NEED_UPDATE:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  if [ ${#missing[@]} -gt 0 ]; then
    $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  if [ $qemu_ok -eq 0 ] || [ $kernel_ok -eq 0 ]; then
    $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${BACKPORTS_PACKAGES[@]}"
  fi
fi
# libvirt 11 for tests/e2e/libvirt_e2e_test.py: libvirtd with its QEMU driver (backports ship no
# virtqemud), virtlogd and virsh. The test starts and stops its own libvirtd; nothing is enabled.
LIBVIRT_PACKAGES=(libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients)
if ! libvirtd --version 2>/dev/null | grep -qE ' (1[1-9]|[2-9][0-9])\.'; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${LIBVIRT_PACKAGES[@]}" ||
    { $SUDO apt-get update -q &&
      $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports "${LIBVIRT_PACKAGES[@]}"; }
fi
# The peer of the gpu benchmark and the reference the gpu guest test was written against: QEMU's
# contrib vhost-user-gpu, shipped in backports' qemu-system-gui (QEMU 10 like the emulator).
if [ ! -x /usr/lib/qemu/vhost-user-gpu ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-gui ||
    { $SUDO apt-get update -q &&
      $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-gui; }
fi
# The guest tests build drivers Debian's kernel lacks (gpio-virtio, i2c-virtio) out of tree:
# the kernel source and headers must be exactly the guest kernel's version.
guest_image=$(ls /boot/vmlinuz-6.1[2-9]* 2>/dev/null | sort | tail -1)
if [ -n "$guest_image" ]; then
  kver=${guest_image#/boot/vmlinuz-}
  kpkg_version=$(dpkg-query -W -f='${Version}' "linux-image-$kver" 2>/dev/null || true)
  src_version=$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || true)
  if [ -n "$kpkg_version" ] && { [ "$src_version" != "$kpkg_version" ] ||
       [ ! -d "/usr/src/linux-headers-$kver" ]; }; then
    export DEBIAN_FRONTEND=noninteractive
    ksrc=("linux-source-6.12=$kpkg_version" "linux-headers-$kver=$kpkg_version" make gcc bc)
    $SUDO apt-get install -y -q --no-install-recommends --allow-downgrades "${ksrc[@]}" ||
      { $SUDO apt-get update -q &&
        $SUDO apt-get install -y -q --no-install-recommends --allow-downgrades "${ksrc[@]}"; }
  fi
fi
# ---- The aarch64 guest of the SCMI tests (tests/e2e/aarch64_guest.py): qemu-system-aarch64
# (backports, QEMU 10 like the x86 one), a cross compiler and dtc for its modules and device tree,
# and Debian's arm64 build of the x86 guest's kernel (same version, so linux-source-6.12 above is
# its source) with busybox-static, downloaded as .debs (never installed) through a private apt
# state for arm64 that leaves the machine's own architectures alone.
ARM64_DEBS=/var/cache/vhost-user-arm64
arm64_missing=()
for p in gcc-12-aarch64-linux-gnu device-tree-compiler; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || arm64_missing+=("$p")
done
if [ ${#arm64_missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends "${arm64_missing[@]}" ||
    { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "${arm64_missing[@]}"; }
fi
if ! command -v qemu-system-aarch64 >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-arm ||
    { $SUDO apt-get update -q &&
      $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-system-arm; }
fi
if [ -n "${kver:-}" ] && [ -n "${kpkg_version:-}" ] && [ "${kver%-amd64}" != "$kver" ]; then
  arm64_kver=${kver%-amd64}-arm64
  if [ ! -f "$ARM64_DEBS/linux-image-$arm64_kver-unsigned_${kpkg_version}_arm64.deb" ] ||
     [ ! -f "$ARM64_DEBS/linux-headers-${arm64_kver}_${kpkg_version}_arm64.deb" ] ||
     ! ls "$ARM64_DEBS"/busybox-static_*_arm64.deb >/dev/null 2>&1; then
    $SUDO mkdir -p "$ARM64_DEBS/apt/lists/partial" "$ARM64_DEBS/apt/archives/partial"
    $SUDO touch "$ARM64_DEBS/apt/status"
    apt_arm64=(-o APT::Architecture=arm64 -o APT::Architectures=arm64
      -o Dir::State::Lists="$ARM64_DEBS/apt/lists" -o Dir::State::status="$ARM64_DEBS/apt/status"
      -o Dir::Cache="$ARM64_DEBS/apt" -o APT::Sandbox::User=root)
    $SUDO apt-get "${apt_arm64[@]}" update -q
    (cd "$ARM64_DEBS" && $SUDO apt-get "${apt_arm64[@]}" download -q \
      "linux-image-$arm64_kver-unsigned=$kpkg_version" "linux-headers-$arm64_kver=$kpkg_version" \
      busybox-static)
  fi
fi
# ---- The arm64 build (bazel build --config=arm64, toolchains/) and its tests under qemu-user
# (tests/integration/arm64_test.sh): Debian's aarch64 cross g++ and the arm64 -dev libraries the
# daemons link, installed beside the amd64 ones through multiarch. libgflags-dev and
# libgoogle-glog-dev are not Multi-Arch: same (not co-installable with their amd64 builds), so
# their arm64 .debs are unpacked into a private directory the toolchain links from; their headers
# are the same as the amd64 ones in /usr/include.
ARM64_SYSROOT=$ARM64_DEBS/sysroot
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  ARM64_UPDATE=1
fi
arm64_build=(g++-12-aarch64-linux-gnu libabsl-dev:arm64 libseccomp-dev:arm64 liburing-dev:arm64
  libunwind-dev:arm64 liblzma-dev:arm64)
arm64_missing=()
for p in "${arm64_build[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || arm64_missing+=("$p")
done
if [ ${#arm64_missing[@]} -gt 0 ] || ! command -v qemu-aarch64-static >/dev/null ||
   [ ! -f "$ARM64_SYSROOT/usr/lib/aarch64-linux-gnu/libglog.a" ] ||
   [ ! -f "$ARM64_SYSROOT/usr/lib/aarch64-linux-gnu/libgflags.a" ]; then
  export DEBIAN_FRONTEND=noninteractive
  [ -n "${ARM64_UPDATE:-}" ] && $SUDO apt-get update -q
  # Multi-Arch: same packages must be the same version for both architectures: this may upgrade
  # an amd64 library (liblzma5, libssl3, ...) to the version the arm64 one has.
  $SUDO apt-get install -y -q --no-install-recommends "${arm64_build[@]}" ||
    { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "${arm64_build[@]}"; }
  # qemu-user 10 (backports), like the system emulators.
  $SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports qemu-user-static
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download -q libgflags-dev:arm64 libgoogle-glog-dev:arm64)
  $SUDO mkdir -p "$ARM64_SYSROOT"
  for deb in "$tmp"/*.deb; do $SUDO dpkg -x "$deb" "$ARM64_SYSROOT"; done
  rm -rf "$tmp"
fi
# The peer for the vhost-user-fs benchmark: QEMU 7.2's C virtiofsd (QEMU 10 no longer ships it),
# unpacked from bookworm's qemu-system-common without installing that package.
VIRTIOFSD=/var/cache/vhost-user-peers/virtiofsd
if [ ! -x "$VIRTIOFSD" ]; then
  version=$(apt-cache policy qemu-system-common | awk '/ 1:7\.2/ {print $1 == "***" ? $2 : $1; exit}')
  if [ -n "$version" ]; then
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download -q "qemu-system-common=$version" >/dev/null 2>&1); then
      dpkg -x "$tmp"/qemu-system-common_*.deb "$tmp/x"
      $SUDO install -D -m 0755 "$tmp/x/usr/lib/qemu/virtiofsd" "$VIRTIOFSD"
    fi
    rm -rf "$tmp"
  fi
fi
# ---- The compatibility matrix (issue 21): Linux 5.10 and 6.1 guest kernels (unpacked, with 6.1's
# headers and source installed) and bookworm's QEMU 7.2 (unpacked beside QEMU 10), in their own
# script so this one stays readable.
bash "$(dirname "${BASH_SOURCE[0]}")/setup_compat.sh"
echo "setup: all packages present"
