#!/usr/bin/env bash
# Installs the daemons (static binaries) into PREFIX/libexec and, as the vhost-user back-end
# conventions ask, one vhost-user.json description each into PREFIX/share/qemu/vhost-user, so
# management tools (libvirt) find them, and the systemd units of packaging/systemd.
# Usage: scripts/install.sh [PREFIX] (default /usr/local).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
# Every daemon in //:daemons (the root BUILD's DEVICES), so this list cannot drift from the build:
# each is //:vhost-user-<device>, an alias of //vhost-user-<device>:vhost-user-<device>.
bazel build //:daemons 2>&1 | grep -E "^(ERROR|FAILED)" && exit 1
mapfile -t daemons < <(bazel query 'labels(srcs, //:daemons)' 2>/dev/null | sed 's|^//:||' | sort)
[ ${#daemons[@]} -gt 0 ] || { echo "no daemons in //:daemons" >&2; exit 1; }
install -d "$prefix/libexec" "$prefix/share/qemu/vhost-user"
source scripts/vhost_user_schema.sh  # schema_types: as in the Debian packages, no description
                                     # for the types QEMU's schema lacks (libvirt refuses them)
for d in "${daemons[@]}"; do
  install -m 0755 -s "bazel-bin/$d/$d" "$prefix/libexec/$d"
  type=$("$prefix/libexec/$d" --print-capabilities | python3 -c 'import json,sys; print(json.load(sys.stdin)["type"])')
  if [[ $schema_types != *" $type "* ]]; then
    echo "installed $prefix/libexec/$d (no description: QEMU's schema has no type $type)"
    continue
  fi
  cat > "$prefix/share/qemu/vhost-user/50-$d.json" <<JSON
{
  "description": "$d: vhost-user $type back end",
  "type": "$type",
  "binary": "$prefix/libexec/$d"
}
JSON
  echo "installed $prefix/libexec/$d and $prefix/share/qemu/vhost-user/50-$d.json"
done
# vhost-user-stat, which reads a daemon's --stats-socket.
bazel build //tests/frontend:vhost-user-stat 2>&1 | grep -E "^(ERROR|FAILED)" && exit 1
install -d "$prefix/bin"
install -m 0755 -s bazel-bin/tests/frontend/vhost-user-stat "$prefix/bin/"
echo "installed $prefix/bin/vhost-user-stat"
# systemd units: a socket/service template pair per daemon (packaging/systemd/generate-units.sh),
# and the system user of those that run as one. systemd looks in PREFIX/lib for both.
install -d "$prefix/lib/systemd/system" "$prefix/lib/sysusers.d"
packaging/systemd/generate-units.sh "$prefix/lib/systemd/system" "$prefix/libexec" \
  "${daemons[@]#vhost-user-}"
install -m 0644 packaging/systemd/vhost-user.sysusers "$prefix/lib/sysusers.d/vhost-user.conf"
echo "installed vhost-user-<device>@.socket/.service into $prefix/lib/systemd/system"
# vhost-user-snd's host audio bridge (--backend=alsa|pipewire), which it looks for beside
# itself. Dynamically linked: it needs libasound2 and libpipewire-0.3-0 at run time.
bazel build //vhost-user-snd:vhost-user-snd-bridge 2>&1 | grep -E "^(ERROR|FAILED)" && exit 1
install -m 0755 -s bazel-bin/vhost-user-snd/vhost-user-snd-bridge "$prefix/libexec/"
echo "installed $prefix/libexec/vhost-user-snd-bridge"
# vhost-user-gpu's 3D build (--virgl), which vhost-user-gpu runs from beside itself.
# Dynamically linked: it needs libvirglrenderer1 and Mesa's EGL and DRI drivers at run time.
bazel build //vhost-user-gpu:vhost-user-gpu-virgl 2>&1 | grep -E "^(ERROR|FAILED)" && exit 1
install -m 0755 -s bazel-bin/vhost-user-gpu/vhost-user-gpu-virgl "$prefix/libexec/"
echo "installed $prefix/libexec/vhost-user-gpu-virgl"
