#!/usr/bin/env bash
# The arm64 daemons (bazel build --config=arm64 //:daemons //tests/integration:seccomp_export
# //tests/frontend:vhost-user-stat) under qemu-user, driven by the x86 tests: their Debian packages
# (scripts/build_debs.sh --arch arm64), every daemon's CLI test, the integration tests through
# our x86 front end (its socket and shared memfd reach the emulated daemon as they are), and the
# seccomp filters, and the aarch64 guest's SCMI test (tests/e2e/scmi_e2e_test.py) against the
# arm64 vhost-user-scmi. qemu-user cannot load a guest's seccomp filter (it answers seccomp() with
# ENOSYS), so the daemons run with --seccomp=off here; the filters they would load are checked
# instead from seccomp_export's output: built for AUDIT_ARCH_AARCH64 with aarch64's numbers.
# VHOST_USER_ARM64_BIN: the arm64 bazel-bin (default: bazel-arm64-bin beside this workspace).
# Usage: arm64_test.sh CLI_TEST SCMI_GUEST_TEST SCMI_DAEMON INTEGRATION_TEST...
# (SCMI_DAEMON: the x86 vhost-user-scmi the guest test is given, swapped for the arm64 one.)
set -u
cli_test=$1
scmi_guest_test=$2
scmi_daemon=$3
shift 3
self=$(readlink -f "${BASH_SOURCE[0]}")
bin=${VHOST_USER_ARM64_BIN:-$(dirname "$(dirname "$(dirname "$self")")")/bazel-arm64-bin}
qemu=qemu-aarch64-static
failures=0
check() {  # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then echo "PASS $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}

command -v $qemu >/dev/null || { echo "FAIL $qemu missing (scripts/setup.sh)"; exit 1; }
# The daemons in one folder, where DaemonProcess (VHOST_USER_DAEMON_DIR) looks them up by name.
daemons=$(mktemp -d)
trap 'rm -rf "$daemons"' EXIT
for d in blk fs gpio gpu i2c input rng scmi scsi snd vsock; do
  binary=$bin/vhost-user-$d/vhost-user-$d
  if ! file -L "$binary" | grep -q 'ARM aarch64.*statically linked'; then
    echo "FAIL $binary is not a static arm64 binary: bazel build --config=arm64 //:daemons"
    exit 1
  fi
  ln -s "$binary" "$daemons/vhost-user-$d"
done
[ -x "$bin/tests/frontend/vhost-user-stat" ] || {
  echo "FAIL no arm64 vhost-user-stat: bazel build --config=arm64 //tests/frontend:vhost-user-stat"
  exit 1; }

# qemu-user refuses the filter: the default --seccomp=kill cannot start there. If this ever
# passes, the daemons can run with their filter here and --seccomp=off below should go.
refused() {
  local err
  err=$($qemu "$daemons/vhost-user-rng" --socket-path="$daemons/rng.sock" 2>&1)
  [ $? -ne 0 ] && printf '%s' "$err" | grep -q "cannot apply the seccomp sandbox"
}
check "qemu-user refuses the seccomp filter (so --seccomp=off below)" refused

pfc=$($qemu "$bin/tests/integration/seccomp_export")
check "seccomp_export runs" test $? -eq 0
aarch64_filters() {
  # One filter per daemon policy, each for aarch64 only (AUDIT_ARCH_AARCH64 = 0xc00000b7), with
  # aarch64's syscall numbers (openat 56, read 63; x86_64's are 257 and 0).
  local n_daemons n_arch
  n_daemons=$(grep -c '^# daemon ' <<<"$pfc")
  n_arch=$(grep -c '^# filter for arch aarch64 (3221225655)$' <<<"$pfc")
  [ "$n_daemons" -ge 8 ] && [ "$n_arch" -eq "$n_daemons" ] &&
    ! grep -q 'filter for arch x86' <<<"$pfc" &&
    grep -q '# filter for syscall "openat" (56)' <<<"$pfc" &&
    grep -q '# filter for syscall "read" (63)' <<<"$pfc"
}
check "seccomp filters are built for AUDIT_ARCH_AARCH64" aarch64_filters

# The arm64 Debian packages, built from these binaries by scripts/build_debs.sh --arch arm64 (from
# the source tree: a `local` test's runfiles point into it): lintian-clean as the amd64 ones are
# (debs_test, same overrides), Architecture: arm64, each program the aarch64 static binary, and
# the packaged daemon says its version under qemu-user. The sound bridge is not built for arm64:
# the script leaves its package out and says so.
src=$(dirname "$(dirname "$(dirname "$self")")")
debs=$daemons/debs
upstream=$(sed -n '1s/^[^(]*(\([^)]*\)-[^)-]*).*/\1/p' "$src/packaging/debian/changelog")
build_debs() {
  bash "$src/scripts/build_debs.sh" --arch arm64 --bin-dir "$bin" --out-dir "$debs" \
    >"$daemons/debs.log" 2>&1 || { sed 's/^/  /' "$daemons/debs.log"; return 1; }
}
check "build_debs.sh --arch arm64" build_debs
bridge_left_out() {
  grep -q 'no vhost-user-snd-bridge built for arm64' "$daemons/debs.log" &&
    ! ls "$debs" | grep -q '^vhost-user-snd-bridge_'
}
check "arm64: vhost-user-snd-bridge left out, with a note" bridge_left_out
lintian_clean() {  # --fail-on counts overridden tags as fixed
  lintian --fail-on error,warning --info "$debs"/*.deb >"$daemons/lintian.log" 2>&1 ||
    { sed 's/^/  /' "$daemons/lintian.log"; return 1; }
}
check "arm64 .debs: lintian, no errors or warnings" lintian_clean
arm64_package() {  # arm64_package PACKAGE PROGRAM
  local deb=$debs/${1}_${upstream}-*_arm64.deb root=$daemons/root/$1
  deb=$(echo $deb)
  [ -f "$deb" ] || { echo "  no $deb"; return 1; }
  [ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ] ||
    { echo "  Architecture: $(dpkg-deb -f "$deb" Architecture)"; return 1; }
  # Linked with the arm64 libraries: glibc from the cross toolchain's packages, absl's arm64 build.
  local built_using absl
  built_using=$(dpkg-deb -f "$deb" Built-Using)
  absl=$(dpkg-query -W -f '${source:Package} (= ${source:Version})' libabsl-dev:arm64)
  [[ $built_using == *"cross-toolchain-base (= "* && $built_using == *"$absl"* &&
     $built_using == *"google-glog (= "* ]] || { echo "  Built-Using: $built_using"; return 1; }
  mkdir -p "$root" && dpkg-deb -x "$deb" "$root" &&
    file "$root/$2" | grep -q 'ELF 64-bit LSB .*ARM aarch64.*statically linked' ||
    { echo "  $(file "$root/$2")"; return 1; }
}
for d in blk fs gpio gpu i2c input rng scmi scsi snd vsock; do
  check "arm64 .deb vhost-user-$d: Architecture arm64, aarch64 static daemon" \
    arm64_package "vhost-user-$d" "usr/libexec/vhost-user-$d"
done
check "arm64 .deb vhost-user-stat: Architecture arm64, aarch64 static program" \
  arm64_package vhost-user-stat usr/bin/vhost-user-stat
common_all() { ls "$debs"/vhost-user-common_"$upstream"-*_all.deb >/dev/null; }
check "arm64: vhost-user-common is Architecture: all" common_all
packaged_version() {
  local out
  out=$(cd "$daemons/root/vhost-user-rng" && $qemu ./usr/libexec/vhost-user-rng --version)
  [ "$out" = "vhost-user-rng $upstream" ] || { echo "  --version: '$out'"; return 1; }
}
check "the packaged arm64 vhost-user-rng --version under $qemu says $upstream" packaged_version

export VHOST_USER_DAEMON_WRAPPER=$qemu VHOST_USER_DAEMON_EXTRA_ARGS=--seccomp=off
# Each device's CLI test with the arguments its BUILD gives it (vhost_user_device cli_args).
cli() {  # cli DEVICE TYPE [ARGS...]
  local device=$1; shift
  local needs_proc=0
  [ "$device" = fs ] && needs_proc=1
  NEEDS_PROC=$needs_proc bash "$cli_test" "$daemons/vhost-user-$device" "$@" >"$daemons/cli.log" 2>&1 ||
    { sed 's/^/  /' "$daemons/cli.log"; return 1; }
}
check "cli rng" cli rng rng
check "cli blk" cli blk block --null-size=1048576
check "cli fs" cli fs fs --shared-dir=/ --sandbox=chroot
check "cli gpio" cli gpio gpio --device-list=s8
check "cli gpu" cli gpu gpu --outputs=2 --resolution=1024x768
check "cli i2c" cli i2c i2c --device-list=sim:0x50
check "cli input" cli input input --virtual-device=mouse
check "cli scmi" cli scmi scmi
# qemu-user has no io_uring: vhost-user-scsi warns that it falls back to synchronous I/O before
# parsing --fd, and the CLI test wants a bad flag's one line alone on stderr. (blk and scsi serve
# with synchronous I/O here; their io_uring path is not exercised under qemu-user.)
VHOST_USER_DAEMON_EXTRA_ARGS="--seccomp=off --minloglevel=2" check "cli scsi" cli scsi scsi --lun=null=1M
check "cli snd" cli snd sound "--streams=playback:2ch:48000:s16;capture:1ch:44100:s16" --backend=null
check "cli vsock" cli vsock vsock "--uds-path=@DIR@/v.vsock"

# The integration tests, unchanged: DaemonProcess swaps in the arm64 daemon of the same name.
# qemu-aarch64 runs nothing but arm64 binaries, so a test passing here drove the arm64 daemon.
# Left out: tests that start the daemon through another program (vsock's under a memory limit,
# through /bin/sh; fs's as nobody, through setpriv), which would run the x86 daemon; and rng's
# count of the daemon's threads in /proc, which qemu-user upsets now and then (about 1 run in 40):
# it lets the guest's pthread_join return (clearing the child tid) before the host thread behind
# it has finished exiting, so a stopped queue thread can still be listed beside its successor.
excluded='-*UnderAMemoryLimit*:*UserNamespaceSandboxAsNobody*:*QueueRestartsDoNotAddThreads*'
export VHOST_USER_DAEMON_DIR=$daemons
for test in "$@"; do
  name=$(basename "$test")
  log=$daemons/$name.log
  "$test" --gtest_filter="$excluded" >"$log" 2>&1
  rc=$?
  summary=$(grep -E '^\[  (PASSED|FAILED)  \]' "$log" | head -2 | tr '\n' ' ')
  if [ $rc -ne 0 ]; then grep -E '^\[  FAILED  \]|Failure' "$log" | head -20 | sed 's/^/  /'; fi
  check "$name under qemu-user: $summary" test $rc -eq 0
done

# An aarch64 guest's SCMI stack (QEMU's vhost-user-scmi-pci) on the emulated arm64 daemon.
"$scmi_guest_test" "$scmi_daemon" >"$daemons/scmi_e2e.log" 2>&1
rc=$?
[ $rc -ne 0 ] && tail -30 "$daemons/scmi_e2e.log" | sed 's/^/  /'
check "scmi_e2e_test (aarch64 guest) on the arm64 daemon under qemu-user" test $rc -eq 0
[ $failures -eq 0 ]
