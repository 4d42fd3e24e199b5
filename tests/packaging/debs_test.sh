#!/usr/bin/env bash
# Builds the Debian packages from the Bazel-built daemons in this test's runfiles, runs lintian on
# them (any error or warning fails; overrides carry their reasons in packaging/debian), and checks
# what is inside each: the stripped daemon in /usr/libexec, its vhost-user.json description, its
# man page rendering without groff warnings, its systemd template units (systemd-analyze verify
# passes them, nothing enables them), its copyright and changelog, its control fields; and
# vhost-user-common's sysusers.d file (its postinst makes the user in a scratch root),
# vhost-user-stat's program and manual, and the two dynamically linked helpers' Depends; with
# vhost-user-gpu-virgl unpacked beside vhost-user-gpu, the static daemon offers 3D and hands
# --virgl over to it.
set -euo pipefail
# The source tree: scripts/ and the manuals are not exported to Bazel; a `local` test's runfiles
# are links into the tree.
src=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "${TEST_SRCDIR:?}/vhost_user_suite"  # the runfiles tree: binaries, manuals, scripts/, packaging/
tmp=${TEST_TMPDIR:?}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# The daemons //:daemons built, by their folder, plus the sound bridge and the 3D gpu daemon.
mapfile -t daemons < <(for f in vhost-user-*/vhost-user-*; do
  [ -x "$f" ] && [ "$(basename "$(dirname "$f")")" = "$(basename "$f")" ] && basename "$f"
done | sort)
[ ${#daemons[@]} -ge 11 ] || { echo "FAIL: only ${#daemons[@]} daemons in the runfiles"; exit 1; }
packages=("${daemons[@]}" vhost-user-snd-bridge vhost-user-gpu-virgl vhost-user-common
          vhost-user-stat)

start=$SECONDS
bash "$src/scripts/build_debs.sh" --bin-dir "$PWD" --out-dir "$tmp/debs"
echo "built ${#packages[@]} packages in $((SECONDS - start)) s"

upstream=$(vhost-user-rng/vhost-user-rng --version | awk '{print $2}')
revision=$(sed -n '1s/^[^(]*([^)]*-\([^)-]*\)).*/\1/p' "$src/packaging/debian/changelog")
arch=$(dpkg --print-architecture)
mapfile -t debs < <(ls "$tmp/debs")
[ "${#debs[@]}" -eq "${#packages[@]}" ] || fail "${#debs[@]} .debs for ${#packages[@]} packages: ${debs[*]}"

# lintian: zero errors and warnings. --fail-on counts overridden tags as fixed.
if ! lintian --fail-on error,warning --info "$tmp"/debs/*.deb > "$tmp/lintian.txt" 2>&1; then
  fail "lintian:"; cat "$tmp/lintian.txt"
fi

# Types in QEMU's vhost-user.json schema (the ones libvirt accepts): those daemons get a
# description file, the others must not (one unknown type makes libvirt reject every file).
schema_types=" 9p balloon block caif console crypto gpu input net rng rpmsg rproc-serial scsi vsock fs "

# A man page: its .TH line, no groff warnings at all but for the two a narrow table column with
# one long word gives (the text is still all there), and a NAME line.
check_man() {  # PACKAGE PAGE SECTION
  local pkg=$1 page=$2 section=$3 rendered
  zcat "$page" | grep -q "^\.TH $pkg $section " || fail "$pkg: man page has no .TH $pkg $section"
  rendered=$(zcat "$page" | LC_ALL=C.UTF-8 groff -man -t -Tutf8 -ww 2>"$tmp/groff.txt" |
             sed 's/\x1b\[[0-9;]*m//g; s/.\x08//g')
  grep -v -e "cannot adjust line" -e "can't break line" "$tmp/groff.txt" |
    grep . && fail "$pkg: groff warns (above)"
  grep -Eq "^ *$pkg +- " <<<"$rendered" || fail "$pkg: rendered man page has no NAME line"
  LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" > /dev/null 2>&1 || fail "$pkg: man -l fails"
}

for pkg in "${packages[@]}"; do
  case $pkg in
    vhost-user-common) deb_arch=all program= ;;
    vhost-user-stat) deb_arch=$arch program=usr/bin/$pkg ;;
    *) deb_arch=$arch program=usr/libexec/$pkg ;;
  esac
  deb=$tmp/debs/${pkg}_${upstream}-${revision}_${deb_arch}.deb
  [ -f "$deb" ] || { fail "$pkg: no $(basename "$deb")"; continue; }
  field() { dpkg-deb -f "$deb" "$1"; }
  [ "$(field Package)" = "$pkg" ] || fail "$pkg: Package is $(field Package)"
  [ "$(field Architecture)" = "$deb_arch" ] || fail "$pkg: Architecture $(field Architecture)"
  [ "$(field Version)" = "$upstream-$revision" ] || fail "$pkg: Version $(field Version)"
  contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
  has() { grep -qx "./$1" <<<"$contents" || fail "$pkg: no /$1 in the package"; }
  has "usr/share/doc/$pkg/copyright"
  has "usr/share/doc/$pkg/changelog.Debian.gz"
  # Nothing enabled by the package itself: no enablement links, no unit under /etc.
  grep -q '^\./etc/' <<<"$contents" && fail "$pkg: ships files in /etc: $(grep '^\./etc/' <<<"$contents")"
  root=$tmp/root/$pkg
  mkdir -p "$root"
  dpkg-deb -x "$deb" "$root"
  control=$tmp/control/$pkg
  mkdir -p "$tmp/control"
  dpkg-deb -e "$deb" "$control"
  grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
    "$root/usr/share/doc/$pkg/copyright" || fail "$pkg: copyright is not DEP-5"
  # Maintainer scripts: valid sh, and none enables, starts or stops a unit.
  for script in "$control"/{preinst,postinst,prerm,postrm}; do
    [ -f "$script" ] || continue
    sh -n "$script" || fail "$pkg: $(basename "$script") is not valid sh"
    grep -Eq 'systemctl +(enable|start|restart|stop|disable)|deb-systemd-(helper enable|invoke)' \
      "$script" && fail "$pkg: $(basename "$script") acts on units"
  done

  if [ "$pkg" = vhost-user-common ]; then
    # The sysusers.d file, and only here (dpkg lets no two packages own a path): its postinst,
    # run against a scratch root, makes the user the units of blk, scsi, gpio, i2c and snd name.
    has usr/lib/sysusers.d/vhost-user.conf
    cmp -s "$root/usr/lib/sysusers.d/vhost-user.conf" "$src/packaging/systemd/vhost-user.sysusers" ||
      fail "$pkg: vhost-user.conf differs from packaging/systemd/vhost-user.sysusers"
    [ -z "$(field Depends)" ] || fail "$pkg: Depends: $(field Depends)"
    grep -q "^\./usr/libexec\|^\./usr/bin" <<<"$contents" && fail "$pkg: ships a program"
    sysroot=$tmp/sysroot
    mkdir -p "$sysroot"
    cp -a "$root/usr" "$sysroot/"
    DPKG_ROOT=$sysroot sh "$control/postinst" configure 2>"$tmp/sysusers.txt" ||
      { fail "$pkg: postinst configure fails"; cat "$tmp/sysusers.txt"; }
    grep -q '^vhost-user:x:[0-9]*:[0-9]*:[^:]*:/var/lib/vhost-user:' "$sysroot/etc/passwd" ||
      fail "$pkg: postinst made no user vhost-user: $(cat "$sysroot/etc/passwd" "$tmp/sysusers.txt")"
    continue
  fi

  # Stripped, and still the program that was built.
  has "$program"
  readelf -S "$root/$program" | grep -q '\.symtab' && fail "$pkg: binary not stripped"
  [ "$(stat -c %a "$root/$program")" = 755 ] || fail "$pkg: binary mode"

  if [ "$pkg" = vhost-user-stat ]; then
    # In PATH, static, with its manual in section 1; it is the tool (its usage, its exit codes).
    [ -z "$(field Depends)" ] || fail "$pkg: static, yet Depends: $(field Depends)"
    built_using=$(field Built-Using)
    [[ $built_using == *"glibc (= "* && $built_using == *"abseil (= "* ]] ||
      fail "$pkg: Built-Using: $built_using"
    [[ $built_using == *liburing* ]] && fail "$pkg: Built-Using names liburing, not linked in"
    readelf -l "$root/$program" | grep -q INTERP && fail "$pkg: not statically linked"
    has "usr/share/man/man1/$pkg.1.gz"
    check_man "$pkg" "$root/usr/share/man/man1/$pkg.1.gz" 1
    zcat "$root/usr/share/man/man1/$pkg.1.gz" | grep -q -e '--json' || fail "$pkg: man page lacks --json"
    status=0; "$root/$program" >/dev/null 2>"$tmp/stat.txt" || status=$?
    [ $status = 2 ] && grep -q 'usage: vhost-user-stat SOCKET \[INTERVAL \[COUNT\]\]' "$tmp/stat.txt" ||
      fail "$pkg: without arguments: status $status, $(cat "$tmp/stat.txt")"
    status=0; "$root/$program" "$tmp/no-such.sock" >/dev/null 2>&1 || status=$?
    [ $status = 1 ] || fail "$pkg: on a missing socket: status $status, not 1"
    continue
  fi

  if [ "$pkg" = vhost-user-snd-bridge ]; then
    depends=$(field Depends)
    for lib in libasound2 libpipewire-0.3-0 libc6; do
      [[ $depends == *"$lib "* ]] || fail "$pkg: Depends lacks $lib: $depends"
    done
    continue
  fi

  if [ "$pkg" = vhost-user-gpu-virgl ]; then
    # Dynamically linked (virglrenderer loads Mesa with dlopen), so no Built-Using; Depends: what
    # it links (dpkg-shlibdeps), what virglrenderer opens at run time (EGL and GL through glvnd,
    # Mesa's EGL and its DRI drivers) and the static vhost-user-gpu of the same version, which
    # execs it. Only the program: its manual is vhost-user-gpu(8), it has no units or descriptor.
    readelf -l "$root/$program" | grep -q INTERP || fail "$pkg: not dynamically linked"
    [ -z "$(field Built-Using)" ] || fail "$pkg: dynamic, yet Built-Using: $(field Built-Using)"
    depends=", $(field Depends),"
    for dep in "libvirglrenderer1 (>= " "libc6 (>= " "libegl1," "libegl-mesa0," "libgl1," \
               "libgl1-mesa-dri," "vhost-user-gpu (= $upstream-$revision),"; do
      [[ $depends == *", $dep"* ]] || fail "$pkg: Depends lacks '$dep': $(field Depends)"
    done
    [[ $(field Enhances) == vhost-user-gpu ]] || fail "$pkg: Enhances: $(field Enhances)"
    others=$(grep -v -e "^\./$program\$" -e '^\./usr/share/doc/' -e '^\./usr/share/lintian/' \
             <<<"$contents" | grep -v '/$' || true)
    [ -z "$others" ] || fail "$pkg: ships more than its program: $others"
    version=$("$root/$program" --version)
    [ "$version" = "vhost-user-gpu $upstream" ] || fail "$pkg: installed binary says '$version'"
    continue
  fi

  # A static daemon: Built-Using names glibc at least.
  [[ $(field Built-Using) == *"glibc (= "* ]] || fail "$pkg: Built-Using: $(field Built-Using)"
  version=$("$root/usr/libexec/$pkg" --version)
  [ "$version" = "$pkg $upstream" ] || fail "$pkg: installed binary says '$version'"

  has "usr/share/man/man8/$pkg.8.gz"
  check_man "$pkg" "$root/usr/share/man/man8/$pkg.8.gz" 8

  # Its systemd template pair in bookworm's unit directory, naming the installed daemon.
  units=$root/lib/systemd/system
  has "lib/systemd/system/$pkg@.service"
  has "lib/systemd/system/$pkg@.socket"
  [ "$(ls "$units" 2>/dev/null | wc -l)" = 2 ] || fail "$pkg: units: $(ls "$units" 2>&1)"
  grep -q "^ExecStart=/usr/libexec/$pkg " "$units/$pkg@.service" ||
    fail "$pkg: ExecStart: $(grep ExecStart= "$units/$pkg@.service")"
  for unit in "$units"/*; do
    [ "$(stat -c %a "$unit")" = 644 ] || fail "$pkg: $(basename "$unit") mode"
  done
  # systemd-analyze verify, with ExecStart= at the extracted daemon (it checks that it is an
  # executable). Warnings do not always fail it: no output at all is allowed.
  verify=$tmp/verify/$pkg
  mkdir -p "$verify"
  for unit in "$units"/*; do
    sed "s|^ExecStart=/usr/libexec/|ExecStart=$root/usr/libexec/|" "$unit" > "$verify/$(basename "$unit")"
  done
  if ! out=$(systemd-analyze verify --man=no "$verify"/* 2>&1) || [ -n "$out" ]; then
    fail "$pkg: systemd-analyze verify: $out"
  fi
  # Units running as the static user depend on the package that makes it, the others on nothing
  # (static daemons); daemon-reload is all the scripts do.
  if grep -qx 'User=vhost-user' "$units/$pkg@.service"; then
    [ "$(field Depends)" = "vhost-user-common (= $upstream-$revision)" ] ||
      fail "$pkg: runs as vhost-user, Depends: '$(field Depends)'"
  else
    [ -z "$(field Depends)" ] || fail "$pkg: static, yet Depends: $(field Depends)"
  fi
  grep -q 'daemon-reload' "$control/postinst" 2>/dev/null || fail "$pkg: postinst does not daemon-reload"

  # The vhost-user.json description, for schema types only, naming the installed binary.
  type=$("$root/usr/libexec/$pkg" --print-capabilities |
         python3 -c 'import json, sys; print(json.load(sys.stdin)["type"])')
  json=usr/share/qemu/vhost-user/50-$pkg.json
  if [[ $schema_types == *" $type "* ]]; then
    has "$json"
    python3 - "$root/$json" "$type" "/usr/libexec/$pkg" <<'EOF' || fail "$pkg: $json"
import json, sys
path, want_type, want_binary = sys.argv[1:]
doc = json.load(open(path))
assert doc["type"] == want_type, doc
assert doc["binary"] == want_binary, doc
assert set(doc) <= {"description", "type", "binary", "tags"}, doc
EOF
  elif grep -q "usr/share/qemu/" <<<"$contents"; then
    fail "$pkg: type '$type' is not in QEMU's schema, yet the package has a description file"
  fi
done

# vhost-user-gpu alone is 2D: no 3D capabilities, and --virgl says what is missing. Unpacked
# beside it, vhost-user-gpu-virgl makes it list virgl and render-node (what libvirt reads), and
# --virgl runs the dynamically linked program (the dynamic loader, which a static program lacks,
# reports virglrenderer loaded).
gpu_deb=$tmp/debs/vhost-user-gpu_${upstream}-${revision}_${arch}.deb
virgl_deb=$tmp/debs/vhost-user-gpu-virgl_${upstream}-${revision}_${arch}.deb
if [ -f "$gpu_deb" ] && [ -f "$virgl_deb" ]; then
  gpu=$tmp/root/gpu-3d/usr/libexec/vhost-user-gpu
  mkdir -p "$tmp/root/gpu-3d"
  dpkg-deb -x "$gpu_deb" "$tmp/root/gpu-3d"
  features() {
    "$gpu" --print-capabilities |
      python3 -c 'import json, sys; print(*json.load(sys.stdin)["features"])'
  }
  [ -z "$(features)" ] || fail "vhost-user-gpu alone lists features: $(features)"
  status=0; "$gpu" --virgl --version >/dev/null 2>"$tmp/virgl.txt" || status=$?
  [ $status = 1 ] && grep -q 'vhost-user-gpu-virgl, which is not installed' "$tmp/virgl.txt" ||
    fail "vhost-user-gpu --virgl without the 3D build: status $status, $(cat "$tmp/virgl.txt")"
  dpkg-deb -x "$virgl_deb" "$tmp/root/gpu-3d"
  [ "$(features)" = "render-node virgl" ] ||
    fail "vhost-user-gpu beside vhost-user-gpu-virgl lists '$(features)', not render-node virgl"
  out=$(LD_DEBUG=libs "$gpu" --virgl --version 2>&1) &&
    grep -q "vhost-user-gpu $upstream" <<<"$out" && grep -q 'libvirglrenderer\.so\.1' <<<"$out" ||
    fail "vhost-user-gpu --virgl did not run vhost-user-gpu-virgl: $(tail -5 <<<"$out")"
fi

# The sound daemon points at its bridge.
[[ $(dpkg-deb -f "$tmp/debs/vhost-user-snd_${upstream}-${revision}_${arch}.deb" Recommends) == \
   *vhost-user-snd-bridge* ]] || fail "vhost-user-snd does not recommend its bridge"

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
# Among the daemons, exactly those whose units run as vhost-user need vhost-user-common: the units
# of blk, scsi, gpio, i2c and snd (packaging/systemd/generate-units.sh).
for d in blk scsi gpio i2c snd; do
  [[ " ${daemons[*]} " == *" vhost-user-$d "* ]] || continue
  [[ $(dpkg-deb -f "$tmp/debs/vhost-user-${d}_${upstream}-${revision}_${arch}.deb" Depends) == \
     vhost-user-common* ]] || fail "vhost-user-$d does not depend on vhost-user-common"
done

echo "PASS: ${#packages[@]} packages, lintian clean"
