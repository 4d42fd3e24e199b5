#!/usr/bin/env bash
# Builds the Debian packages from the Bazel-built daemons in this test's runfiles, runs lintian on
# them (any error or warning fails; overrides carry their reasons in packaging/debian), and checks
# what is inside each: the stripped daemon in /usr/libexec, its vhost-user.json description, its
# man page rendering without groff warnings, its copyright and changelog, its control fields.
set -euo pipefail
# The source tree: scripts/ and the manuals are not exported to Bazel; a `local` test's runfiles
# are links into the tree.
src=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "${TEST_SRCDIR:?}/vhost_user_suite"  # the runfiles tree: binaries, manuals, scripts/, packaging/
tmp=${TEST_TMPDIR:?}
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# The daemons //:daemons built, by their folder, plus the sound bridge.
mapfile -t daemons < <(for f in vhost-user-*/vhost-user-*; do
  [ -x "$f" ] && [ "$(basename "$(dirname "$f")")" = "$(basename "$f")" ] && basename "$f"
done | sort)
[ ${#daemons[@]} -ge 11 ] || { echo "FAIL: only ${#daemons[@]} daemons in the runfiles"; exit 1; }
packages=("${daemons[@]}" vhost-user-snd-bridge)

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

for pkg in "${packages[@]}"; do
  deb=$tmp/debs/${pkg}_${upstream}-${revision}_${arch}.deb
  [ -f "$deb" ] || { fail "$pkg: no $(basename "$deb")"; continue; }
  field() { dpkg-deb -f "$deb" "$1"; }
  [ "$(field Package)" = "$pkg" ] || fail "$pkg: Package is $(field Package)"
  [ "$(field Architecture)" = "$arch" ] || fail "$pkg: Architecture $(field Architecture)"
  contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
  has() { grep -qx "./$1" <<<"$contents" || fail "$pkg: no /$1 in the package"; }
  has "usr/libexec/$pkg"
  has "usr/share/doc/$pkg/copyright"
  has "usr/share/doc/$pkg/changelog.Debian.gz"
  root=$tmp/root/$pkg
  mkdir -p "$root"
  dpkg-deb -x "$deb" "$root"
  grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
    "$root/usr/share/doc/$pkg/copyright" || fail "$pkg: copyright is not DEP-5"
  # Stripped, and still the program that was built.
  readelf -S "$root/usr/libexec/$pkg" | grep -q '\.symtab' && fail "$pkg: binary not stripped"
  [ "$(stat -c %a "$root/usr/libexec/$pkg")" = 755 ] || fail "$pkg: binary mode"

  if [ "$pkg" = vhost-user-snd-bridge ]; then
    depends=$(field Depends)
    for lib in libasound2 libpipewire-0.3-0 libc6; do
      [[ $depends == *"$lib "* ]] || fail "$pkg: Depends lacks $lib: $depends"
    done
    continue
  fi

  # A static daemon: no Depends; Built-Using names glibc at least.
  [ -z "$(field Depends)" ] || fail "$pkg: static, yet Depends: $(field Depends)"
  [[ $(field Built-Using) == *"glibc (= "* ]] || fail "$pkg: Built-Using: $(field Built-Using)"
  [ "$(field Version)" = "$upstream-$revision" ] || fail "$pkg: Version $(field Version)"
  version=$("$root/usr/libexec/$pkg" --version)
  [ "$version" = "$pkg $upstream" ] || fail "$pkg: installed binary says '$version'"

  # The man page: section 8, its NAME line, no groff warnings at all but for the two a narrow
  # table column with one long word gives (the text is still all there).
  has "usr/share/man/man8/$pkg.8.gz"
  page=$root/usr/share/man/man8/$pkg.8.gz
  zcat "$page" | grep -q "^\.TH $pkg 8 " || fail "$pkg: man page has no .TH $pkg 8"
  rendered=$(zcat "$page" | LC_ALL=C.UTF-8 groff -man -t -Tutf8 -ww 2>"$tmp/groff.txt" |
             sed 's/\x1b\[[0-9;]*m//g; s/.\x08//g')
  grep -v -e "cannot adjust line" -e "can't break line" "$tmp/groff.txt" |
    grep . && fail "$pkg: groff warns (above)"
  grep -Eq "^ *$pkg +- " <<<"$rendered" || fail "$pkg: rendered man page has no NAME line"
  LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" > /dev/null 2>&1 || fail "$pkg: man -l fails"

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

# The sound daemon points at its bridge.
[[ $(dpkg-deb -f "$tmp/debs/vhost-user-snd_${upstream}-${revision}_${arch}.deb" Recommends) == \
   *vhost-user-snd-bridge* ]] || fail "vhost-user-snd does not recommend its bridge"

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "PASS: ${#packages[@]} packages, lintian clean"
