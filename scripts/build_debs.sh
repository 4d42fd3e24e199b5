#!/usr/bin/env bash
# Builds one Debian package per daemon, plus vhost-user-snd-bridge, vhost-user-gpu-virgl,
# vhost-user-common and vhost-user-stat, from the Bazel outputs:
#   /usr/libexec/vhost-user-X                       the stripped static daemon
#   /usr/share/qemu/vhost-user/50-vhost-user-X.json  its vhost-user.json description (see below)
#   /usr/share/man/man8/vhost-user-X.8.gz            its manual (vhost-user-X/README.md)
#   /lib/systemd/system/vhost-user-X@.{socket,service}  its systemd template units
#                                                   (packaging/systemd/generate-units.sh)
#   /usr/share/doc/vhost-user-X/{copyright,changelog.Debian.gz}
# vhost-user-snd-bridge, vhost-user-gpu-virgl: the dynamically linked helper in /usr/libexec that
# vhost-user-snd starts, and the 3D build vhost-user-gpu --virgl execs.
# vhost-user-common: /usr/lib/sysusers.d/vhost-user.conf, the user some units run as.
# vhost-user-stat: /usr/bin/vhost-user-stat and its manual (packaging/debian/vhost-user-stat.md).
# Units go to /lib/systemd/system, bookworm's systemdsystemunitdir (systemd.pc) where systemd's
# own are: moving files between / and /usr is what the usrmerge moratorium forbids; sysusers.d
# files are in /usr/lib there already.
# Metadata lives in packaging/debian/ (control stanzas, copyright, changelog, lintian overrides,
# maintainer scripts). Works offline; needs dpkg-dev, go-md2man, binutils (strip) and python3.
#
# Usage: scripts/build_debs.sh [--arch ARCH] [--bin-dir DIR] [--out-dir DIR]
#   --arch:    the Debian architecture the binaries are built for (default: this machine's). For
#              another one (arm64: bazel build --config=arm64) the cross binutils strip, the
#              binaries are only ever run through qemu-user (qemu-aarch64-static), Built-Using
#              names the cross toolchain's libraries, and a package whose program was not built
#              for ARCH is left out with a note (for arm64, vhost-user-snd-bridge and
#              vhost-user-gpu-virgl are not: no PipeWire, ALSA or virglrenderer libraries).
#   --bin-dir: where vhost-user-X/vhost-user-X are (bazel-bin's layout, or a runfiles tree);
#              without it the script runs `bazel build` and takes bazel-bin (bazel-arm64-bin).
#   --out-dir: where the .debs go (default: debs/).
set -euo pipefail
# Not resolved through symlinks: under `bazel test` this is the runfiles tree, which holds the
# manuals and packaging/ in the same places as the source tree.
root=$(cd "$(dirname "$0")/.." && pwd)
host_arch=$(dpkg --print-architecture)
arch=$host_arch bin_dir= out_dir=debs
while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    *) echo "usage: $0 [--arch ARCH] [--bin-dir DIR] [--out-dir DIR]" >&2; exit 2 ;;
  esac
done
# The tools for ARCH's binaries: the host's own, or the cross ones (aarch64-linux-gnu-strip,
# -gcc-12: binutils-aarch64-linux-gnu and gcc-12-aarch64-linux-gnu) and qemu-user to run them.
run=() strip=strip cc=gcc
gnu_type=$(dpkg-architecture -a "$arch" -qDEB_HOST_GNU_TYPE 2>/dev/null)
if [ "$arch" != "$host_arch" ]; then
  run=("qemu-$(dpkg-architecture -a "$arch" -qDEB_HOST_GNU_CPU 2>/dev/null)-static")
  strip=$gnu_type-strip cc=$gnu_type-gcc-12
fi
# gflags' and glog's arm64 -dev packages are not co-installable with the amd64 ones:
# scripts/setup.sh unpacks them here, and the toolchain links them from here (toolchains/).
private_sysroot=/var/cache/vhost-user-$arch/sysroot
if [ -z "$bin_dir" ]; then
  if [ "$arch" = "$host_arch" ]; then
    (cd "$root" && bazel build //:daemons //vhost-user-snd:vhost-user-snd-bridge \
                               //vhost-user-gpu:vhost-user-gpu-virgl \
                               //tests/frontend:vhost-user-stat)
    bin_dir=$root/bazel-bin
  elif [ "$arch" = arm64 ]; then
    (cd "$root" && bazel build --config=arm64 //:daemons //tests/frontend:vhost-user-stat)
    bin_dir=$root/bazel-arm64-bin
  else
    echo "$0: no build for $arch here: give --bin-dir" >&2; exit 2
  fi
fi
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
meta=$root/packaging/debian
systemd=$root/packaging/systemd
for tool in dpkg-deb dpkg-shlibdeps go-md2man "$strip" "$cc" python3 "${run[@]}"; do
  command -v "$tool" >/dev/null || { echo "$0: needs $tool" >&2; exit 1; }
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
upstream=$("${run[@]}" "$bin_dir/vhost-user-rng/vhost-user-rng" --version | awk '{print $2}')
[ "${changelog_version%-*}" = "$upstream" ] || {
  echo "$0: daemons are $upstream, packaging/debian/changelog's top entry $changelog_version" >&2
  exit 1; }
version=$changelog_version
# The changelog's date, not today's: the same inputs give the same packages.
changelog_date=$(sed -n 's/^ -- .*>  //p' "$meta/changelog" | head -1)
export SOURCE_DATE_EPOCH=$(date -d "$changelog_date" +%s)
man_date=$(date -u -d "@$SOURCE_DATE_EPOCH" '+%B %Y')
maintainer=$(sed -n 's/^Maintainer: //p' "$meta/control" | head -1)
# Section and Priority: the Source stanza's, unless a package's stanza says otherwise.
section=$(sed -n 's/^Section: //p' "$meta/control" | head -1)
priority=$(sed -n 's/^Priority: //p' "$meta/control" | head -1)
source=$(sed -n 's/^Source: //p' "$meta/control")

# The source packages whose static archives a binary contains (common/daemon.bzl and
# third_party/system.BUILD link these), for Built-Using: the daemons' by default, or those named.
built_using() {
  local lib srcs=() libs=("$@")
  [ $# -gt 0 ] || libs=(libc.a libstdc++.a libgcc.a libabsl_base.a libglog.a libgflags.a
                        libseccomp.a liburing.a libunwind.a liblzma.a)
  for lib in "${libs[@]}"; do
    local file pkg name
    # The toolchain's -L comes first: what it holds is what the linker takes.
    if [ -f "$private_sysroot/usr/lib/$gnu_type/$lib" ]; then
      # Unpacked, not installed, so dpkg knows nothing of it: the package is the one that owns
      # the host's copy of the library, its source and version the top of the changelog it was
      # unpacked with (usr/share/doc/PACKAGE/changelog.Debian.gz, from the arm64 .deb itself).
      name=$(dpkg -S "/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)/$lib" 2>/dev/null |
             head -1 | sed 's/[:,].*//') || true
      pkg=$(zcat "$private_sysroot/usr/share/doc/$name/changelog.Debian.gz" 2>/dev/null |
            sed -n '1s/^\([^ ]*\) (\([^)]*\)).*/\1 (= \2)/p') || true
      [ -n "$pkg" ] || { echo "$0: no version for $private_sysroot's $lib" >&2; return 1; }
      echo "$0: $lib: $name:$arch unpacked in $private_sysroot, not installed;" \
           "Built-Using $pkg from its changelog there" >&2
      srcs+=("$pkg")
      continue
    fi
    file=$(realpath "$($cc -print-file-name=$lib)")
    # "libabsl-dev:amd64: /usr/lib/...": the package with its architecture, as another
    # architecture's copy (a cross toolchain's) may be installed too. For arm64 that is
    # libabsl-dev:arm64 and the like, and for glibc, libstdc++ and libgcc the cross packages the
    # cross gcc links (libc6-dev-arm64-cross: source cross-toolchain-base), not libc6-dev:arm64.
    pkg=$(dpkg -S "$file" 2>/dev/null | head -1 | sed 's/: .*//') || true
    [ -n "$pkg" ] || { echo "$0: no package owns $lib" >&2; return 1; }
    srcs+=("$(dpkg-query -W -f '${source:Package} (= ${source:Version})' "$pkg")")
  done
  printf '%s\n' "${srcs[@]}" | sort -u | paste -sd, | sed 's/,/, /g'
}
static_sources=$(built_using)
# vhost-user-stat links neither libseccomp nor liburing (bazel query 'deps(...)').
stat_sources=$(built_using libc.a libstdc++.a libgcc.a libabsl_base.a libglog.a libgflags.a \
               libunwind.a liblzma.a)

source "$root/scripts/vhost_user_schema.sh"  # schema_types: the descriptions QEMU and libvirt take

stanza() {  # the control stanza of package $1, comment lines dropped
  awk -v RS= -v pkg="$1" '$0 ~ "(^|\n)Package: " pkg "\n"' "$meta/control" | grep -v '^#'
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pkg in "${packages[@]}"; do
  d=$work/$pkg
  # The package's program, where it goes, and the lintian overrides that are not its own.
  case $pkg in
    vhost-user-snd-bridge) binary=$bin_dir/vhost-user-snd/$pkg program=usr/libexec/$pkg
                           not_mine=statically-linked-binary ;;
    vhost-user-gpu-virgl) binary=$bin_dir/vhost-user-gpu/$pkg program=usr/libexec/$pkg
                          not_mine=statically-linked-binary ;;
    vhost-user-stat) binary=$bin_dir/tests/frontend/$pkg program=usr/bin/$pkg
                     not_mine=no-manual-page ;;
    vhost-user-common) binary= program= not_mine='statically-linked-binary\|no-manual-page' ;;
    *) binary=$bin_dir/$pkg/$pkg program=usr/libexec/$pkg not_mine=no-manual-page ;;
  esac
  pkg_arch=$(stanza "$pkg" | sed -n 's/^Architecture: //p')
  pkg_arch=${pkg_arch:-$arch}
  if [ -n "$binary" ] && [ ! -x "$binary" ]; then
    # Not every program is built for every architecture (the sound bridge needs PipeWire's and
    # ALSA's libraries, vhost-user-gpu-virgl virglrenderer's, which the arm64 build does not have):
    # for another one, its package is left out, with a note; for this machine's, a missing program
    # is an incomplete build.
    [ "$arch" != "$host_arch" ] || { echo "$0: $binary missing" >&2; exit 1; }
    echo "$0: note: no $pkg built for $arch ($binary): its package is left out" >&2
    continue
  fi
  install -d "$d/DEBIAN" "$d/usr/share/doc/$pkg"
  if [ -n "$binary" ]; then
    install -D -m 0755 "$binary" "$d/$program"
    "$strip" --strip-unneeded --remove-section=.comment --remove-section=.note "$d/$program"
  fi
  install -m 0644 "$meta/copyright" "$d/usr/share/doc/$pkg/copyright"
  gzip -9n < "$meta/changelog" > "$d/usr/share/doc/$pkg/changelog.Debian.gz"
  chmod 0644 "$d/usr/share/doc/$pkg/changelog.Debian.gz"
  fields="Source: $source"$'\n'"Version: $version"$'\n'"Architecture: $pkg_arch"$'\n'
  fields+="Maintainer: $maintainer"$'\n'"Section: $section"$'\n'"Priority: $priority"$'\n'
  # Overrides, each with its reason in the file; see packaging/debian/lintian-overrides.
  install -d "$d/usr/share/lintian/overrides"
  sed "s/@PACKAGE@/$pkg/g; s|@PROGRAM@|$program|g" "$meta/lintian-overrides" |
    grep -v -e '^#' -e "$not_mine" | grep . > "$d/usr/share/lintian/overrides/$pkg"
  chmod 0644 "$d/usr/share/lintian/overrides/$pkg"
  if [ "$pkg" = vhost-user-common ]; then
    # The one owner of the sysusers.d file (dpkg lets no two packages own a path); its postinst
    # creates the user (packaging/debian/vhost-user-common.postinst).
    install -D -m 0644 "$systemd/vhost-user.sysusers" "$d/usr/lib/sysusers.d/vhost-user.conf"
    install -m 0755 "$meta/vhost-user-common.postinst" "$d/DEBIAN/postinst"
  elif [ "$pkg" = vhost-user-stat ]; then
    fields+="Built-Using: $stat_sources"$'\n'
    install -d "$d/usr/share/man/man1"
    python3 "$root/scripts/md2man.py" "$meta/$pkg.md" "$upstream" "$man_date" |
      gzip -9n > "$d/usr/share/man/man1/$pkg.1.gz"
    chmod 0644 "$d/usr/share/man/man1/$pkg.1.gz"
  elif [ "$pkg" = vhost-user-snd-bridge ] || [ "$pkg" = vhost-user-gpu-virgl ]; then
    # Linked dynamically: its Depends come from the libraries it needs (dpkg-shlibdeps reads
    # debian/control from the current directory, hence the stub).
    mkdir -p "$work/shlibs/debian"
    printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$source" "$pkg" \
      > "$work/shlibs/debian/control"
    depends=$(cd "$work/shlibs" && dpkg-shlibdeps -O "$d/usr/libexec/$pkg" 2>/dev/null |
              sed -n 's/^shlibs:Depends=//p')
    [ -n "$depends" ] || { echo "$0: dpkg-shlibdeps found nothing for $pkg" >&2; exit 1; }
    if [ "$pkg" = vhost-user-gpu-virgl ]; then
      # What it opens with dlopen, which dpkg-shlibdeps cannot see (LD_DEBUG=files on a --virgl
      # start): libepoxy (virglrenderer's) loads libEGL.so.1 and libGL.so.1 (glvnd: libegl1,
      # libgl1), libEGL.so.1 Mesa's libEGL_mesa.so.0 (libegl-mesa0), and that the DRI driver,
      # swrast_dri.so for llvmpipe or a GPU's (libgl1-mesa-dri). And the static vhost-user-gpu of
      # the same version: it is the entry point (--virgl, --print-capabilities) that execs this.
      depends+=", libegl1, libegl-mesa0, libgl1, libgl1-mesa-dri, vhost-user-gpu (= $version)"
    fi
    fields+="Depends: $depends"$'\n'
  else
    fields+="Built-Using: $static_sources"$'\n'
    # The template units, naming the installed daemon; no maintainer script enables them (which
    # instances run is the administrator's), the scripts only have systemd read them again.
    bash "$systemd/generate-units.sh" "$d/lib/systemd/system" /usr/libexec "${pkg#vhost-user-}"
    chmod 0644 "$d"/lib/systemd/system/*
    install -m 0755 "$meta/units.postinst" "$d/DEBIAN/postinst"
    install -m 0755 "$meta/units.postrm" "$d/DEBIAN/postrm"
    # Units running as the static user need vhost-user-common, the owner of its sysusers.d file.
    if grep -qx 'User=vhost-user' "$d/lib/systemd/system/$pkg@.service"; then
      fields+="Depends: vhost-user-common (= $version)"$'\n'
    fi
    install -d "$d/usr/share/man/man8"
    python3 "$root/scripts/md2man.py" "$root/$pkg/README.md" "$upstream" "$man_date" |
      gzip -9n > "$d/usr/share/man/man8/$pkg.8.gz"
    chmod 0644 "$d/usr/share/man/man8/$pkg.8.gz"
    type=$("${run[@]}" "$binary" --print-capabilities |
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
  dpkg-deb --build --root-owner-group -Zxz "$d" "$out_dir/${pkg}_${version}_${pkg_arch}.deb" \
    >/dev/null
  echo "$out_dir/${pkg}_${version}_${pkg_arch}.deb"
done
