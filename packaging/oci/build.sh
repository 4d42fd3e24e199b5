#!/usr/bin/env bash
# Builds an OCI image per daemon, FROM scratch with the stripped static binary, tagged
# localhost/vhost-user-<device>:<version> (the daemon's own --version), offline (no pull, no
# network during the build). Prints each image's tag and size.
#
# Usage: packaging/oci/build.sh [BINARY...]
#   BINARY: paths of vhost-user-<device> binaries; none: every daemon of //:daemons, built here.
# Environment: PODMAN, the podman command with any global options (default "podman"), e.g.
#   PODMAN="podman --root=DIR --runroot=DIR --storage-driver=vfs" for a private image store;
#   SOURCE_DATE_EPOCH, if set, stamps the images with that time (reproducible image IDs).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
read -r -a podman <<< "${PODMAN:-podman}"

binaries=("$@")
if [ ${#binaries[@]} -eq 0 ]; then
  cd "$here/../.."
  bazel build //:daemons 2>&1 | grep -E "^(ERROR|FAILED)" && exit 1
  mapfile -t names < <(bazel query 'labels(srcs, //:daemons)' 2>/dev/null | sed 's|^//:||' | sort)
  [ ${#names[@]} -gt 0 ] || { echo "no daemons in //:daemons" >&2; exit 1; }
  for d in "${names[@]}"; do binaries+=("$PWD/bazel-bin/$d/$d"); done
fi
revision=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
timestamp=()
[ -n "${SOURCE_DATE_EPOCH:-}" ] && timestamp=(--timestamp "$SOURCE_DATE_EPOCH")

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
for binary in "${binaries[@]}"; do
  daemon=$(basename "$binary")
  case "$daemon" in vhost-user-*) ;; *) echo "$binary: not a vhost-user-<device> daemon" >&2; exit 2;; esac
  version=$("$binary" --version | awk '{print $2}')
  type=$("$binary" --print-capabilities | sed -n 's/.*"type": *"\([a-z-]*\)".*/\1/p')
  rm -rf "${context:?}"/*
  strip -o "$context/$daemon" "$binary"  # the debug info is most of the file
  sed -e "s|@DAEMON@|$daemon|g" -e "s|@TYPE@|$type|g" -e "s|@VERSION@|$version|g" \
      -e "s|@REVISION@|$revision|g" "$here/Containerfile.in" > "$context/Containerfile"
  tag="localhost/$daemon:$version"
  "${podman[@]}" build --quiet --pull=never --network=none "${timestamp[@]}" \
    -f "$context/Containerfile" -t "$tag" "$context" >/dev/null
  size=$("${podman[@]}" image inspect --format '{{.Size}}' "$tag")
  echo "$tag $size"
done
