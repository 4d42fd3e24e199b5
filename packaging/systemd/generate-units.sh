#!/usr/bin/env bash
# Writes vhost-user-<device>@.service and vhost-user-<device>@.socket for each device named,
# from the two templates beside this script: the daemons share every line but what each needs
# of the host (its user, devices, paths), which the table below gives. One template pair instead
# of 22 near-identical files; a distro packager runs this once at build time.
# Usage: generate-units.sh OUTDIR LIBEXECDIR DEVICE... (DEVICE: blk, rng, ...)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
outdir=$1
libexecdir=$2
shift 2

# Who runs a daemon:
# - DynamicUser=yes (a fresh unprivileged uid per run, nothing it can keep): daemons that need
#   nothing of the host but what they are given: rng (getrandom), vsock (Unix sockets), gpu
#   (2D, in memory), scmi (simulated sensors; /sys is readable by anyone), and input, whose
#   evdev nodes belong to the group "input" that systemd itself defines.
# - User=vhost-user (a system user from vhost-user.sysusers): daemons opening files or device
#   nodes the administrator chooses and grants: disk images (blk, scsi), GPIO chips, I2C
#   adapters, sound cards. A dynamic uid could not own an image nor be put in a group.
# - root: vhost-user-fs, which serves files of every owner (it keeps CAP_CHOWN, CAP_SETUID,
#   CAP_DAC_OVERRIDE, ...) and confines itself with namespaces and pivot_root (--sandbox).
access() {
  local dynamic="DynamicUser=yes
ProtectSystem=strict
ProtectHome=yes
RestrictNamespaces=yes
CapabilityBoundingSet="
  local static="User=vhost-user
Group=vhost-user
ProtectSystem=strict
ProtectHome=yes
RestrictNamespaces=yes
CapabilityBoundingSet="
  case $1 in
    rng) echo "$dynamic
# --source=/dev/hwrng (root-only on most hosts) needs a drop-in: DeviceAllow=/dev/hwrng r
PrivateDevices=yes" ;;
    vsock) echo "$dynamic
# --uds-path=/run/vhost-user-vsock/%i/vsock: in its RuntimeDirectory, where host programs
# reach it.
PrivateDevices=yes" ;;
    gpu | scmi) echo "$dynamic
PrivateDevices=yes" ;;
    input) echo "$dynamic
SupplementaryGroups=input
DevicePolicy=closed
DeviceAllow=char-input rw" ;;
    blk | scsi) echo "$static
# Images in /var/lib/vhost-user; elsewhere, a drop-in: ReadWritePaths=/path/to/images
StateDirectory=vhost-user
StateDirectoryMode=0700
PrivateDevices=yes" ;;
    gpio) echo "$static
# Add vhost-user to the group owning /dev/gpiochip* (if any), or grant an ACL.
DevicePolicy=closed
DeviceAllow=char-gpiochip rw" ;;
    i2c) echo "$static
# Add vhost-user to the group owning /dev/i2c-* (i2c on Debian).
DevicePolicy=closed
DeviceAllow=char-i2c rw" ;;
    snd) echo "$static
# --backend=alsa: add vhost-user to the group audio.
DevicePolicy=closed
DeviceAllow=char-alsa rw" ;;
    fs) echo "# The shared directory may be anywhere (--shared-dir), so the file system stays
# writable but /usr, /boot, /efi and /etc; the daemon sees nothing else once it pivot_roots.
ProtectSystem=full
# Host device nodes in the shared directory stay closed; --allow-device-nodes (guests making
# them) needs a drop-in: DevicePolicy=auto
DevicePolicy=closed
CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_FSETID CAP_SETUID CAP_SETGID CAP_MKNOD CAP_SYS_ADMIN CAP_SYS_CHROOT" ;;
    *) echo "generate-units.sh: no access rules for device '$1'" >&2; return 1 ;;
  esac
}

mkdir -p "$outdir"
for device in "$@"; do
  program=vhost-user-$device
  rules=$(access "$device")
  args_var=VHOST_USER_${device^^}_ARGS
  for kind in service socket; do
    text=$(<"$here/vhost-user-DEVICE@.$kind.in")
    text=${text//@ACCESS@/$rules}
    text=${text//@PROGRAM@/$program}
    text=${text//@TYPE@/$device}
    text=${text//@ARGS_VAR@/$args_var}
    text=${text//@LIBEXECDIR@/$libexecdir}
    printf '%s\n' "$text" >"$outdir/$program@.$kind"
  done
done
