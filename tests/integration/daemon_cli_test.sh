#!/usr/bin/env bash
# Command-line conventions of a daemon binary (vhost-user.rst "Backend program conventions"),
# and that the static binary runs alone in an empty root directory (a minimal container).
# Usage: daemon_cli_test.sh DAEMON_BINARY EXPECTED_TYPE [ARGS THE DAEMON NEEDS TO START...]
# In those ARGS, @DIR@ stands for a scratch directory (the root directory inside the chroot).
# NEEDS_PROC=1 in the environment: the daemon needs /proc (vhost-user-fs reopens files through
# /proc/self/fd), so the chroot gets one, as a container would have.
# VHOST_USER_DAEMON_WRAPPER (a static program, e.g. qemu-aarch64-static) runs the daemon, also in
# the chroot; VHOST_USER_DAEMON_EXTRA_ARGS go first on every command line (e.g. --seccomp=off),
# so the flags under test still come last (tests/integration/arm64_test.sh).
set -u
daemon=$1
type=$2
shift 2
wrapper=(${VHOST_USER_DAEMON_WRAPPER:-})
extra=(${VHOST_USER_DAEMON_EXTRA_ARGS:-})
run() { "${wrapper[@]}" "$daemon" "${extra[@]}" "$@"; }
scratch=$(mktemp -d)
needed=("${@//@DIR@/$scratch}")
in_chroot=("${@//@DIR@/}")
failures=0
check() {  # check NAME CONDITION...
  local name=$1; shift
  if "$@"; then echo "PASS $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}

out=$(run --print-capabilities --socket-path=/ignored --bogus-flag)
check "print-capabilities exits 0 ignoring other args" test $? -eq 0
check "print-capabilities is JSON with the type" python3 -c '
import json, sys
caps = json.loads(sys.argv[1])
assert caps["type"] == sys.argv[2], caps
assert isinstance(caps["features"], list)' "$out" "$type"

run --help >/dev/null
check "--help exits 0" test $? -eq 0
run --version | grep -q "$(basename "$daemon")"
check "--version names the program" test $? -eq 0

bad_flag() {  # bad_flag EXPECTED_WORD ARGS...: exit status 2 and one line naming the flag
  local word=$1; shift
  local err
  err=$(run "$@" 2>&1 >/dev/null)
  local rc=$?
  [ $rc -eq 2 ] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ] && printf '%s' "$err" | grep -q -- "$word"
}
check "unknown flag" bad_flag "--no-such-flag" --no-such-flag --socket-path=/tmp/x "${needed[@]}"
check "bad value" bad_flag "--fd" --fd=abc
check "missing socket" bad_flag "--socket-path" 
check "both socket and fd" bad_flag "--socket-path" --socket-path=/tmp/x --fd=3
check "bad seccomp mode" bad_flag "--seccomp" --seccomp=maybe --socket-path=/tmp/x "${needed[@]}"
check "stray argument" bad_flag "unexpected" --socket-path=/tmp/x extra "${needed[@]}"
check "fd not a listening socket" bad_flag "--fd" --fd=0 "${needed[@]}"

# --fd: a listening socket inherited from the parent (as libvirt passes it) is served.
fd_test() {
  python3 - "${#needed[@]}" "${wrapper[@]}" "$daemon" "${extra[@]}" "${needed[@]}" <<'PY'
import os, socket, struct, subprocess, sys, tempfile
# argv: the number of trailing args the daemon needs, the command line, those args.
n_needed = int(sys.argv[1])
command = sys.argv[2:len(sys.argv) - n_needed]
needed = sys.argv[len(sys.argv) - n_needed:]
d = tempfile.mkdtemp(dir="/tmp")
listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
listener.bind(os.path.join(d, "s"))
listener.listen(1)
proc = subprocess.Popen(command + [f"--fd={listener.fileno()}"] + needed,
                        pass_fds=[listener.fileno()],
                        stderr=subprocess.DEVNULL)
try:
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    c.connect(os.path.join(d, "s"))
    c.sendall(struct.pack("<III", 1, 1, 0))  # GET_FEATURES
    request, flags, size = struct.unpack("<III", c.recv(12))
    features, = struct.unpack("<Q", c.recv(8))
    assert request == 1 and flags & 4 and size == 8, (request, flags, size)
    assert features & (1 << 32), hex(features)  # VERSION_1
finally:
    proc.terminate()
    proc.wait(10)
PY
}
check "serves an inherited listening socket (--fd)" fd_test

# The binary alone in an empty directory, as in a scratch container: no libraries, no /etc.
root=$(mktemp -d)
trap 'rm -rf "$root" "$scratch"' EXIT
cp "$daemon" "$root/daemon"
in_root=(/daemon)
if [ ${#wrapper[@]} -gt 0 ]; then
  cp "$(command -v "${wrapper[0]}")" "$root/wrapper"
  in_root=(/wrapper "${wrapper[@]:1}" /daemon)
fi
in_root+=("${extra[@]}")
if [ "$(id -u)" -eq 0 ]; then
  out=$(chroot "$root" "${in_root[@]}" --print-capabilities)
  check "runs in an empty chroot" python3 -c 'import json,sys; json.loads(sys.argv[1])' "$out"
  # And serves: listen inside the chroot until SIGTERM; it must start and stop cleanly.
  if [ "${NEEDS_PROC:-0}" = 1 ]; then
    mkdir -p "$root/proc" && mount -t proc proc "$root/proc"
    trap 'umount "$root/proc"; rm -rf "$root" "$scratch"' EXIT
  fi
  chroot "$root" "${in_root[@]}" --socket-path=/sock "${in_chroot[@]}" 2>"$root/log" &
  pid=$!
  for _ in $(seq 50); do [ -S "$root/sock" ] && break; sleep 0.1; done
  check "listens in an empty chroot" test -S "$root/sock"
  kill -TERM $pid
  wait $pid
  check "exits 0 on SIGTERM" test $? -eq 0
else
  echo "FAIL chroot checks need root"
  failures=$((failures + 1))
fi

[ $failures -eq 0 ]
