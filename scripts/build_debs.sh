#!/usr/bin/env bash
# Builds one Debian package per daemon, plus vhost-user-snd-bridge, from the Bazel outputs:
#   /usr/libexec/vhost-user-X                       the stripped static daemon
#   /usr/share/qemu/vhost-user/50-vhost-user-X.json  its vhost-user.json description (see below)
#   /usr/share/man/man8/vhost-user-X.8.gz            its manual (vhost-user-X/README.md)
#   /usr/share/doc/vhost-user-X/{copyright,changelog.Debian.gz}
# Metadata lives in packaging/debian/ (control stanzas, copyright, changelog, lintian overrides).
# Works offline; needs dpkg-dev, go-md2man, binutils (strip) and python3.
#
# Usage: scripts/build_debs.sh [--bin-dir DIR] [--out-dir DIR]
#   --bin-dir: where vhost-user-X/vhost-user-X are (bazel-bin's layout, or a runfiles tree);
#              without it the script runs `bazel build` and takes bazel-bin.
#   --out-dir: where the .debs go (default: debs/).
set -euo pipefail
# Not resolved through symlinks: under `bazel test` this is the runfiles tree, which holds the
# manuals and packaging/ in the same places as the source tree.
root=$(cd "$(dirname "$0")/.." && pwd)
bin_dir= out_dir=debs
while [ $# -gt 0 ]; do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    *) echo "usage: $0 [--bin-dir DIR] [--out-dir DIR]" >&2; exit 2 ;;
  esac
done
if [ -z "$bin_dir" ]; then
  (cd "$root" && bazel build //:daemons //vhost-user-snd:vhost-user-snd-bridge)
  bin_dir=$root/bazel-bin
fi
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
meta=$root/packaging/debian
for tool in dpkg-deb dpkg-shlibdeps go-md2man strip python3; do
  command -v $tool >/dev/null || { echo "$0: needs $tool" >&2; exit 1; }
done

# The package list is packaging/debian/control's; every daemon built must have a stanza there.
mapfile -t packages < <(sed -n 's/^Package: //p' "$meta/control")
for b in "$bin_dir"/vhost-user-*/vhost-user-*; do
  case " ${packages[*]} " in *" $(basename "$b") "*) ;; *)
    case $b in *.*|*_*) continue ;; esac  # Bazel's side files (.params, _test, ...)
    [ -x "$b" ] && { echo "$0: $(basename "$b") has no stanza in $meta/control" >&2; exit 1; } ;;
  esac
done

# Version: the daemons' own (--version) and the Debian revision from the changelog's top entry,
# whose upstream part must agree, so a new release cannot go out under an old changelog entry.
changelog_version=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' "$meta/changelog")
upstream=$("$bin_dir/vhost-user-rng/vhost-user-rng" --version | awk '{print $2}')
[ "${changelog_version%-*}" = "$upstream" ] || {
  echo "$0: daemons are $upstream, packaging/debian/changelog's top entry $changelog_version" >&2
  exit 1; }
version=$changelog_version
arch=$(dpkg --print-architecture)
# The changelog's date, not today's: the same inputs give the same packages.
changelog_date=$(sed -n 's/^ -- .*>  //p' "$meta/changelog" | head -1)
export SOURCE_DATE_EPOCH=$(date -d "$changelog_date" +%s)
man_date=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%B %Y')
maintainer=$(sed -n 's/^Maintainer: //p' "$meta/control" | head -1)
# Section and Priority: the Source stanza's, unless a package's stanza says otherwise.
section=$(sed -n 's/^Section: //p' "$meta/control" | head -1)
priority=$(sed -n 's/^Priority: //p' "$meta/control" | head -1)
source=$(sed -n 's/^Source: //p' "$meta/control")

# The source packages whose static archives the daemons contain (common/daemon.bzl and
# third_party/system.BUILD link these), for Built-Using.
built_using() {
  local lib srcs=()
  for lib in libc.a libstdc++.a libgcc.a libabsl_base.a libglog.a libgflags.a libseccomp.a \
             liburing.a libunwind.a liblzma.a; do
    local file pkg
    file=$(realpath "$(gcc -print-file-name=$lib)")
    pkg=$(dpkg -S "$file" 2>/dev/null | head -1 | cut -d: -f1) || true
    [ -n "$pkg" ] || { echo "$0: no package owns $lib" >&2; return 1; }
    srcs+=("$(dpkg-query -W -f '${source:Package} (= ${source:Version})' "$pkg")")
  done
  printf '%s\n' "${srcs[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}
static_sources=$(built_using)

source "$root/scripts/vhost_user_schema.sh"  # schema_types: the descriptions QEMU and libvirt take

stanza() {  # the control stanza of package $1, comment lines dropped
  awk -v RS= -v pkg="$1" '$0 ~ "(^|\n)Package: " pkg "\n"' "$meta/control" | grep -v '^#'
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pkg in "${packages[@]}"; do
  d=$work/$pkg
  case $pkg in
    vhost-user-snd-bridge) binary=$bin_dir/vhost-user-snd/$pkg ;;
    *) binary=$bin_dir/$pkg/$pkg ;;
  esac
  [ -x "$binary" ] || { echo "$0: $binary missing" >&2; exit 1; }
  install -d "$d/DEBIAN" "$d/usr/libexec" "$d/usr/share/doc/$pkg"
  install -m 0755 "$binary" "$d/usr/libexec/$pkg"
  strip --strip-unneeded --remove-section=.comment --remove-section=.note "$d/usr/libexec/$pkg"
  install -m 0644 "$meta/copyright" "$d/usr/share/doc/$pkg/copyright"
  gzip -9n < "$meta/changelog" > "$d/usr/share/doc/$pkg/changelog.Debian.gz"
  chmod 0644 "$d/usr/share/doc/$pkg/changelog.Debian.gz"
  fields="Source: $source"$'\n'"Version: $version"$'\n'"Architecture: $arch"$'\n'
  fields+="Maintainer: $maintainer"$'\n'"Section: $section"$'\n'"Priority: $priority"$'\n'
  # Overrides, each with its reason in the file; see packaging/debian/lintian-overrides.
  case $pkg in vhost-user-snd-bridge) not_mine=statically-linked-binary ;; *) not_mine=no-manual-page ;; esac
  install -d "$d/usr/share/lintian/overrides"
  sed "s/@PACKAGE@/$pkg/g" "$meta/lintian-overrides" | grep -v -e '^#' -e "$not_mine" | grep . \
    > "$d/usr/share/lintian/overrides/$pkg"
  chmod 0644 "$d/usr/share/lintian/overrides/$pkg"
  if [ "$pkg" = vhost-user-snd-bridge ]; then
    # Linked dynamically: its Depends come from the libraries it needs (dpkg-shlibdeps reads
    # debian/control from the current directory, hence the stub).
    mkdir -p "$work/shlibs/debian"
    printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$source" "$pkg" \
      > "$work/shlibs/debian/control"
    depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$d/usr/libexec/$pkg" 2>/dev/null |
              sed -n 's/^shlibs:Depends=//p')
    [ -n "$depends" ] || { echo "$0: dpkg-shlibdeps found nothing for $pkg" >&2; exit 1; }
    fields+="Depends: $depends"$'\n'
  else
    fields+="Built-Using: $static_sources"$'\n'
    install -d "$d/usr/share/man/man8"
    python3 "$root/scripts/md2man.py" "$root/$pkg/README.md" "$upstream" "$man_date" |
      gzip -9n > "$d/usr/share/man/man8/$pkg.8.gz"
    chmod 0644 "$d/usr/share/man/man8/$pkg.8.gz"
    type=$("$binary" --print-capabilities |
           python3 -c 'import json,sys; print(json.load(sys.stdin)["type"])')
    if [[ $schema_types == *" $type "* ]]; then
      install -d "$d/usr/share/qemu/vhost-user"
      printf '{\n  "description": "%s: vhost-user %s back end",\n  "type": "%s",\n  "binary": "%s"\n}\n' \
        "$pkg" "$type" "$type" "/usr/libexec/$pkg" > "$d/usr/share/qemu/vhost-user/50-$pkg.json"
      chmod 0644 "$d/usr/share/qemu/vhost-user/50-$pkg.json"
    fi
  fi
  size=$(du -sk --exclude=DEBIAN "$d" | cut -f1)
  { printf '%s' "$fields"; echo "Installed-Size: $size"; stanza "$pkg"; } |
    python3 -c '
# Debian orders the fields as dpkg does; the stanza and the computed fields are merged here.
import sys
order = ["Package", "Source", "Version", "Architecture", "Maintainer", "Installed-Size",
         "Depends", "Recommends", "Suggests", "Enhances", "Built-Using", "Section", "Priority",
         "Description"]
fields, name = {}, None
for line in sys.stdin.read().splitlines():
    if line.startswith(" ") and name:
        fields[name] += "\n" + line
    elif line:
        name, _, value = line.partition(": ")
        fields[name] = value
for name in sorted(fields, key=lambda n: order.index(n) if n in order else len(order)):
    print("%s: %s" % (name, fields[name]))
' > "$d/DEBIAN/control"
  find "$d" -type d -exec chmod 0755 {} +
  # Timestamps from the changelog too, so rebuilding gives the same .deb.
  find "$d" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --build --root-owner-group -Zxz "$d" "$out_dir/${pkg}_${version}_${arch}.deb" >/dev/null
  echo "$out_dir/${pkg}_${version}_${arch}.deb"
done
