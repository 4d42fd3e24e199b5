"""Boots a small Linux guest under QEMU against vhost-user daemons, for end-to-end tests.

The guest is Debian's 6.12 kernel from /boot with a busybox initramfs that loads the virtio
modules a test asks for, runs the test's shell script and powers off. Output comes back over the
serial console. Guest memory is shared with the daemons (memfd by default, or a file in
/dev/shm), as vhost-user requires.

The initramfs base (busybox, modules) is cached per kernel, module list and version of this file
under $VHOST_USER_E2E_CACHE or /var/tmp/vhost-user-e2e-cache; each test's script (and any extra
files) travels in a small uncompressed cpio appended to it.
"""

import contextlib
import glob
import gzip
import hashlib
import itertools
import json
import lzma
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

CACHE_DIR = os.environ.get("VHOST_USER_E2E_CACHE", "/var/tmp/vhost-user-e2e-cache")
BUSYBOX = "/bin/busybox"
QEMU = "qemu-system-x86_64"
SETUP_HINT = ("run scripts/setup.sh (installs QEMU 10 and Linux 6.12 from bookworm-backports, "
              "unpacks QEMU 7.2 and Linux 5.10 and 6.1 beside them)")

# busybox applets the guest scripts may use.
APPLETS = [
    "sh", "mount", "umount", "insmod", "cat", "echo", "dd", "od", "hexdump", "head", "tail",
    "sleep", "poweroff", "ls", "awk", "md5sum", "sha256sum", "cmp", "wc", "grep", "sed", "tr",
    "test", "[", "mkdir", "rm", "cp", "mv", "sync", "stat", "find", "xargs", "uname", "mknod",
    "mkfs.ext2", "mke2fs", "blockdev", "seq", "sort", "uniq", "cut", "date", "timeout", "true",
    "false", "printf", "dmesg", "blkdiscard", "fstrim", "df", "du", "sha1sum", "chmod",
    "ln", "touch", "readlink", "truncate", "chown", "wait", "reboot",
]

# With /boots in the archive (run_guest's `boots`), init asks the host which boot this is (over
# the serial console) and reboots until the last one; the script sees it as $E2E_BOOT.
INIT = """#!/bin/sh
export PATH=/bin
echo E2E-INIT
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp && mount -t tmpfs tmp /tmp
for m in $(cat /modules.order); do
  # A test may give a module parameters in /modparams/<module> (busybox insmod reads none
  # from the kernel command line).
  insmod /lib/modules/$m $(cat /modparams/$m 2>/dev/null) || echo "E2E-RESULT insmod_failed=$m"
done
boot=1
if [ -e /boots ]; then echo "E2E-BOOT?"; read -r boot; fi
echo "E2E-BEGIN boot=$boot"
E2E_BOOT=$boot sh /test.sh
echo "E2E-END status=$?"
sync
if [ -e /boots ] && [ "$boot" -lt "$(cat /boots)" ]; then reboot -f; fi
poweroff -f
"""


class GuestError(Exception):
    pass


# ---- which kernel and which QEMU (issue 21's matrix): Linux 6.12 and QEMU 10.0 unless a test
# selects others, or the environment does (VHOST_USER_E2E_KERNEL=5.10|6.1|6.12,
# VHOST_USER_E2E_QEMU=7.2|10.0) so that any guest test can be run on another pair by hand.
# setup.sh unpacks the other kernels (image and modules) under KERNEL_CACHE and Debian 12's own
# QEMU 7.2 under QEMU_7_2_ROOT; neither is installed.
KERNEL_CACHE = "/var/cache/vhost-user-kernels"
QEMU_7_2_ROOT = "/var/cache/vhost-user-qemu-7.2"
_selected = {"kernel": os.environ.get("VHOST_USER_E2E_KERNEL", "6.12"),
             "qemu": os.environ.get("VHOST_USER_E2E_QEMU", "10.0")}


def select(kernel=None, qemu=None):
    """Makes later guests boot Linux `kernel` ("5.10", "6.1", "6.12") under QEMU `qemu`
    ("7.2", "10.0"); None keeps the current choice."""
    if kernel is not None:
        _selected["kernel"] = kernel
    if qemu is not None:
        _selected["qemu"] = qemu


def selected():
    """(kernel series, QEMU version) the next guest uses."""
    return _selected["kernel"], _selected["qemu"]


def find_kernel():
    """(image path, version) of the newest kernel of the selected series: 6.12 from /boot, the
    others from KERNEL_CACHE."""
    series = _selected["kernel"]
    if series == "6.12":
        images = sorted(glob.glob("/boot/vmlinuz-6.1[2-9]*") + glob.glob("/boot/vmlinuz-6.[2-9]*"))
    else:
        images = sorted(glob.glob(f"{KERNEL_CACHE}/{series}.*/boot/vmlinuz-{series}.*"),
                        key=lambda p: [int(n) for n in re.findall(r"\d+", p)])
    if not images:
        raise GuestError(f"no Linux {series} kernel: {SETUP_HINT}")
    image = images[-1]
    version = os.path.basename(image)[len("vmlinuz-"):]
    if not os.path.exists(f"{kernel_root(version)}/lib/modules/{version}/modules.dep"):
        raise GuestError(f"no modules for {version}: {SETUP_HINT}")
    return image, version


def kernel_root(version):
    """Where kernel `version`'s /lib/modules is: "" (the host's) or its unpacked package."""
    # (Installing a kernel's headers makes its /lib/modules/VERSION too, with only `build`.)
    host = os.path.exists(f"/lib/modules/{version}/modules.dep")
    return "" if host else f"{KERNEL_CACHE}/{version}"


def qemu_command():
    """The selected QEMU's command (QEMU 7.2 finds its own firmware beside its binary)."""
    if _selected["qemu"] == "10.0":
        return [QEMU]
    if _selected["qemu"] != "7.2":
        raise GuestError(f"unknown QEMU {_selected['qemu']!r}: 7.2 or 10.0")
    return [f"{QEMU_7_2_ROOT}/usr/bin/{QEMU}"]


def check_qemu():
    if shutil.which(qemu_command()[0]) is None:
        raise GuestError(f"{qemu_command()[0]} not found: {SETUP_HINT}")


# ---- cpio (newc) writer: enough for regular files, directories and symlinks.

_inodes = itertools.count(1)  # unique per entry; nlink 1, so no entry is taken for a hard link


def _cpio_entry(name, mode, data=b""):
    header = "070701" + "".join(
        f"{v:08x}" for v in (next(_inodes), mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0))
    out = header.encode() + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def cpio_archive(entries):
    """entries: list of (path, kind, payload) with kind 'dir', 'file' (bytes, mode) or 'link'."""
    out = bytearray()
    for path, kind, payload in entries:
        if kind == "dir":
            out += _cpio_entry(path, stat.S_IFDIR | 0o755)
        elif kind == "link":
            out += _cpio_entry(path, stat.S_IFLNK | 0o777, payload.encode())
        else:
            data, mode = payload
            out += _cpio_entry(path, stat.S_IFREG | mode, data)
    out += _cpio_entry("TRAILER!!!", 0)
    out += b"\0" * (-len(out) % 512)
    return bytes(out)


# ---- modules

def module_closure(version, names, root=""):
    """Module files (relative to ROOT/lib/modules/VERSION) for `names` and their dependencies, in
    load order. Built-in modules are skipped. `root`: an unpacked kernel package (another arch)."""
    base = f"{root}/lib/modules/{version}"
    deps = {}
    with open(f"{base}/modules.dep") as f:
        for line in f:
            target, _, rest = line.partition(":")
            deps[target] = rest.split()
    by_name = {}
    for path in deps:
        name = os.path.basename(path).split(".ko")[0].replace("-", "_")
        by_name[name] = path
    builtin = set()
    if os.path.exists(f"{base}/modules.builtin"):
        with open(f"{base}/modules.builtin") as f:
            builtin = {os.path.basename(l.strip()).split(".ko")[0].replace("-", "_") for l in f}
    order = []

    def visit(path):
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in names:
        key = name.replace("-", "_")
        if key in by_name:
            visit(by_name[key])
        elif key not in builtin:
            raise GuestError(f"module {name} is neither built into {version} nor installed")
    return order


def _read_module(version, rel, root=""):
    path = f"{root}/lib/modules/{version}/{rel}"
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        data = lzma.decompress(data)  # busybox insmod cannot read compressed modules
    elif path.endswith(".zst"):
        raise GuestError(f"zstd modules are not supported: {path}")
    return data


def module_file_entries(name, dest_dir):
    """cpio entries putting module `name` (decompressed, without its dependencies) at
    DEST_DIR/NAME.ko, for a script that loads it itself (e.g. with parameters)."""
    _, version = find_kernel()
    root = kernel_root(version)
    rel = module_closure(version, [name], root)[-1]
    return [(dest_dir, "dir", None),
            (f"{dest_dir}/{_loaded_name(rel)}", "file", (_read_module(version, rel, root), 0o644))]


def _loaded_name(rel):
    return os.path.basename(rel).split(".ko")[0] + ".ko"


# ---- drivers Debian's kernel lacks, built out of tree from linux-source (same version)

KERNEL_SOURCE_TARBALL = "/usr/src/linux-source-6.12.tar.xz"  # 6.12's (the aarch64 guest's too)

def out_of_tree_module(source_rel, name=None):
    """Builds a driver of the guest kernel's own source (linux-source-SERIES) against its
    headers, once per kernel (cached): drivers/.../NAME.c as NAME.ko, or every .c file of a
    folder (e.g. sound/virtio) as one module `name`. Returns the module's path."""
    _, version = find_kernel()
    series = _selected["kernel"]
    folder = not source_rel.endswith(".c")
    name = name or os.path.basename(source_rel)[:-2]
    cached = os.path.join(CACHE_DIR, f"{name}-{version}.ko")
    if os.path.exists(cached):
        return cached
    headers = f"/usr/src/linux-headers-{version}"
    tarball = f"/usr/src/linux-source-{series}.tar.xz"
    if not os.path.isdir(headers) or not os.path.exists(tarball):
        raise GuestError(f"{name}.ko needs {headers} and {tarball}: {SETUP_HINT}")
    source_version, headers_version = (
        subprocess.run(["dpkg-query", "-W", "-f=${Version}", package],
                       capture_output=True, text=True).stdout
        for package in (f"linux-source-{series}", f"linux-headers-{version}"))
    if source_version != headers_version:
        raise GuestError(f"linux-source-{series} is {source_version!r} but the guest kernel's "
                         f"headers are {headers_version!r}: {SETUP_HINT}")
    os.makedirs(CACHE_DIR, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kmod-") as build:
        member = f"linux-source-{series}/{source_rel}"
        subprocess.run(["tar", "-xJf", tarball, "-C", build, member], check=True)
        if folder:
            objects = sorted(f[:-2] + ".o" for f in os.listdir(os.path.join(build, member))
                             if f.endswith(".c"))
            for f in os.listdir(os.path.join(build, member)):
                shutil.move(os.path.join(build, member, f), os.path.join(build, f))
            kbuild = f"obj-m := {name}.o\n{name}-y := {' '.join(objects)}\n"
        else:
            shutil.move(os.path.join(build, member), os.path.join(build, f"{name}.c"))
            kbuild = f"obj-m := {name}.o\n"
        with open(os.path.join(build, "Kbuild"), "w") as f:
            f.write(kbuild)
        made = subprocess.run(["make", "-C", headers, f"M={build}", "modules"],
                              capture_output=True, text=True)
        if made.returncode != 0:
            raise GuestError(f"building {name}.ko failed:\n{made.stdout}\n{made.stderr}")
        tmp = cached + f".{os.getpid()}.tmp"
        shutil.copy(os.path.join(build, f"{name}.ko"), tmp)
        os.replace(tmp, cached)
    return cached


def base_initramfs(modules, built_modules=(), version=None, root="", busybox=BUSYBOX):
    """The cached gzip'd base archive: busybox, /init, the modules (names from /lib/modules,
    then paths of built .ko files, loaded in that order). Returns its path. `version`, `root`
    and `busybox` name another kernel's modules (ROOT/lib/modules/VERSION) and its busybox."""
    if version is None:
        _, version = find_kernel()
        root = kernel_root(version)
    with open(__file__, "rb") as f:
        me = hashlib.sha256(f.read()).hexdigest()[:12]
    key = hashlib.sha256(
        f"{version}|{','.join(sorted(modules))}|{','.join(built_modules)}|{me}".encode()
    ).hexdigest()[:16]
    os.makedirs(CACHE_DIR, exist_ok=True)
    path = os.path.join(CACHE_DIR, f"base-{version}-{key}.cpio.gz")
    if os.path.exists(path):
        return path
    if not os.path.exists(busybox):
        raise GuestError(f"{busybox} missing: {SETUP_HINT}")
    with open(busybox, "rb") as f:
        busybox = f.read()
    entries = [(d, "dir", None) for d in
               ("bin", "proc", "sys", "dev", "tmp", "lib", "lib/modules", "mnt", "usr")]
    entries.append(("bin/busybox", "file", (busybox, 0o755)))
    entries += [(f"bin/{a}", "link", "busybox") for a in APPLETS]
    entries.append(("init", "file", (INIT.encode(), 0o755)))
    # virtio_pci is built into 6.12 but a module in 5.10 and 6.1 (skipped where built in).
    order = module_closure(version, ["virtio_pci"] + list(modules), root)
    for rel in order:
        entries.append((f"lib/modules/{_loaded_name(rel)}", "file",
                        (_read_module(version, rel, root), 0o644)))
    loaded = [_loaded_name(r) for r in order]
    for module in built_modules:
        with open(module, "rb") as f:
            entries.append((f"lib/modules/{_loaded_name(module)}", "file", (f.read(), 0o644)))
        loaded.append(_loaded_name(module))
    entries.append(("modules.order", "file", (" ".join(loaded).encode(), 0o644)))
    data = gzip.compress(cpio_archive(entries), compresslevel=6)
    data += b"\0" * (-len(data) % 512)  # the appended archive must start aligned
    tmp = path + f".{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def host_binary_entries(path, dest_dir="bin"):
    """cpio entries for a host binary and the shared libraries ldd lists for it."""
    entries = []
    with open(path, "rb") as f:
        entries.append((f"{dest_dir}/{os.path.basename(path)}", "file", (f.read(), 0o755)))
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    for lib in re.findall(r"(/\S+\.so[\.\d]*)", out):
        with open(lib, "rb") as f:
            entries.append((lib.lstrip("/"), "file", (f.read(), 0o755)))
    dirs = sorted({os.path.dirname(e[0]) for e in entries[1:]})
    dir_entries = []
    for d in dirs:
        parts = d.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if (p, "dir", None) not in dir_entries:
                dir_entries.append((p, "dir", None))
    return dir_entries + entries


# ---- daemons

def daemon_command(argv):
    """argv, or the same daemon from another build as tests/frontend/daemon_process.cc runs it:
    VHOST_USER_DAEMON_DIR's file of argv[0]'s name, run under VHOST_USER_DAEMON_WRAPPER with
    VHOST_USER_DAEMON_EXTRA_ARGS appended (the arm64 daemons under qemu-user, --seccomp=off)."""
    folder = os.environ.get("VHOST_USER_DAEMON_DIR", "")
    replacement = os.path.join(folder, os.path.basename(argv[0]))
    if not folder or not os.access(replacement, os.X_OK):
        return argv
    return (os.environ.get("VHOST_USER_DAEMON_WRAPPER", "").split() + [replacement] + argv[1:] +
            os.environ.get("VHOST_USER_DAEMON_EXTRA_ARGS", "").split())


class Daemon:
    """A back-end daemon in its own process group, killed (with any helpers) on exit."""

    def __init__(self, argv, socket_path, log_path=None):
        self.argv = argv
        self.socket_path = socket_path
        self.log_path = log_path or socket_path + ".log"
        self.proc = None

    def __enter__(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(daemon_command(self.argv), stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise GuestError(f"{self.argv[0]} exited with {self.proc.returncode}: "
                                 f"{self.read_log()}")
            if os.path.exists(self.socket_path) and stat.S_ISSOCK(os.stat(self.socket_path).st_mode):
                return self
            time.sleep(0.05)
        raise GuestError(f"{self.argv[0]} did not create {self.socket_path}")

    def alive(self):
        return self.proc.poll() is None

    def connections(self):
        """How many front ends this process has accepted (its log says so for each)."""
        return self.read_log().count("front end connected")

    def read_log(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        return False


@contextlib.contextmanager
def work_dir(prefix="e2e"):
    """A short temporary directory (Unix socket paths are limited to 108 bytes)."""
    d = tempfile.mkdtemp(prefix=prefix + "-", dir="/tmp")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- the guest

class BootResult:
    """The E2E-RESULT key=value lines and the script's exit status in some console output."""

    def __init__(self, output):
        self.output = output
        self.results = {}
        for line in output.splitlines():
            m = re.search(r"E2E-RESULT (\S+?)=(.*)$", line.strip())
            if m:
                self.results[m.group(1)] = m.group(2).strip()
        m = re.search(r"E2E-END status=(\d+)", output)
        self.script_status = int(m.group(1)) if m else None

    def __getitem__(self, key):
        return self.results[key]


class GuestResult(BootResult):
    """All of a QEMU run's output; `boots` has one BootResult per boot of the guest (a reboot
    starts the next)."""

    def __init__(self, output, exit_code, timed_out, wall_seconds):
        super().__init__(output)
        self.exit_code = exit_code
        self.timed_out = timed_out
        self.wall_seconds = wall_seconds
        self.boots = [BootResult(part) for part in output.split("E2E-INIT")[1:]]


def run_guest(script, devices, modules, memory="memfd", extra_entries=(), timeout=180,
              memory_mb=512, work=None, on_line=None, built_modules=(), boots=1, pass_fds=(),
              console_input=False, memory_args=None):
    """Boots the guest with `devices` (extra QEMU arguments), loads `modules`, runs `script`.

    memory: "memfd" or "file" (memory-backend-file on /dev/shm).
    memory_args: instead of `memory` and `memory_mb`, the whole of QEMU's memory arguments
    (-m, -object, -numa ...) for a test of other layouts (huge pages, several regions, slots
    for hot-added memory); the test removes any files they name.
    on_line: called with each line of console output as it arrives (from another thread), so a
    test can act on the host when the guest says it is ready.
    built_modules: .ko paths (see out_of_tree_module) loaded after `modules`.
    boots: how many times the guest runs `script` in this one QEMU process: after each run but
    the last it reboots (`reboot -f`, so QEMU resets every device under the same vhost-user
    connections). The script finds the boot's number (from 1) in $E2E_BOOT; the result's
    `boots` has each boot's results.
    pass_fds: descriptors QEMU inherits (a monitor socket made by the test: see qmp_socketpair).
    console_input: a string `on_line` returns is typed on the guest's console (its stdin), so
    a guest program can wait for the host to finish something (run_qemu's).
    Returns a GuestResult; raises GuestError if QEMU or the kernel is missing.
    """
    check_qemu()
    kernel, _ = find_kernel()
    base = base_initramfs(modules, built_modules)
    initrd = guest_initrd(base, script, extra_entries, boots, work)
    if memory_args is None:
        memory_args, mem_path = guest_memory(memory, memory_mb)
        memory_args = ["-m", f"{memory_mb}M"] + memory_args
    else:
        mem_path = None
    argv = qemu_command() + ["-machine", "q35", "-accel", "tcg", "-cpu", "qemu64", "-smp", "1"
                             ] + list(memory_args) + [
            "-nodefaults", "-display", "none", "-serial", "stdio",
            "-kernel", kernel, "-initrd", initrd,
            "-append", "console=ttyS0 panic=-1 quiet loglevel=4"] + list(devices)
    return run_qemu(argv, boots, timeout, on_line, pass_fds, mem_path,
                    console_input=console_input)


def guest_initrd(base, script, extra_entries=(), boots=1, work=None):
    """The initramfs for one run (in `work`, a temporary directory by default): the cached `base`
    with the script, `extra_entries` and the number of boots appended. Returns its path."""
    work = work or tempfile.mkdtemp(prefix="guest-", dir="/tmp")
    initrd = os.path.join(work, "initrd.img")
    with open(base, "rb") as f:
        data = f.read()
    extra = [("test.sh", "file", (script.encode(), 0o755))] + list(extra_entries)
    if boots > 1:
        extra.append(("boots", "file", (str(boots).encode(), 0o644)))
    with open(initrd, "wb") as f:
        f.write(data + cpio_archive(extra))
    return initrd


def guest_memory(memory, memory_mb):
    """QEMU arguments for the guest's shared memory ("memfd", or "file" in /dev/shm) and the
    file to remove afterwards (None for memfd)."""
    if memory == "memfd":
        backend, mem_path = f"memory-backend-memfd,id=mem,size={memory_mb}M,share=on", None
    else:
        mem_path = os.path.join("/dev/shm", f"vhost-user-e2e-{os.getpid()}-{time.time_ns()}")
        backend = f"memory-backend-file,id=mem,size={memory_mb}M,share=on,mem-path={mem_path}"
    return ["-object", backend, "-numa", "node,memdev=mem"], mem_path


def run_qemu(argv, boots=1, timeout=180, on_line=None, pass_fds=(), mem_path=None,
             console_input=False):
    """Runs QEMU (`argv`, the guest's console on stdio) until it exits or `timeout` seconds
    pass, answering init's boot-number questions (run_guest's `boots`); removes `mem_path`
    afterwards. With `console_input`, a string `on_line` returns is typed on the guest's
    console. Returns a GuestResult."""
    argv = list(argv)
    if boots == 1:
        argv.append("-no-reboot")  # a kernel panic ends the run instead of booting again
    start = time.time()
    typing = boots > 1 or console_input
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.PIPE if typing else subprocess.DEVNULL,
                            start_new_session=True, pass_fds=list(pass_fds))
    timed_out = False
    lines = []
    asked = 0

    def read_console():
        nonlocal asked
        for line in iter(proc.stdout.readline, b""):
            lines.append(line)
            text = line.decode(errors="replace")
            if boots > 1 and "E2E-BOOT?" in text:
                asked += 1  # init waits for its boot's number on the console
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.write(f"{asked}\n".encode())
                    proc.stdin.flush()
            if on_line is not None:
                typed = on_line(text)
                if console_input and isinstance(typed, str):
                    with contextlib.suppress(BrokenPipeError):
                        proc.stdin.write(typed.encode())
                        proc.stdin.flush()

    reader = threading.Thread(target=read_console)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        reader.join()
        proc.stdout.close()
        if proc.stdin is not None:
            proc.stdin.close()
        if mem_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(mem_path)
    return GuestResult(b"".join(lines).decode(errors="replace"), proc.returncode, timed_out,
                       time.time() - start)


def qmp_socketpair():
    """A QMP monitor made before QEMU starts: (our socket, QEMU's socket, QEMU arguments). QEMU
    gets a listening socket made here (pass it in pass_fds and close it here once QEMU runs);
    ours is already connected to it (the kernel queues the connection until QEMU accepts), so
    Qmp(sock=ours) needs no waiting for QEMU to create a socket."""
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(f"\0vhost-user-e2e-qmp-{os.getpid()}-{time.time_ns()}")  # abstract: no file
    listener.listen(1)
    ours = socket.socket(socket.AF_UNIX)
    ours.connect(listener.getsockname())
    return ours, listener, ["-chardev", f"socket,id=qmp0,fd={listener.fileno()},server=on,wait=off",
                            "-mon", "chardev=qmp0,mode=control"]


class Qmp:
    """A QMP client on `sock`, the test's end of a monitor socket QEMU was handed
    (qmp_socketpair): one command at a time; events are kept for wait_event. `command` returns
    the reply's "return" and raises GuestError on an error or after `timeout` seconds."""

    def __init__(self, sock, timeout=30):
        self.timeout = timeout
        self.sock = sock
        self.buffer = b""
        self.events = []
        if self._read(timeout) is None:  # the greeting
            raise GuestError("QMP: no greeting from QEMU")
        self.command("qmp_capabilities")

    def _read(self, timeout):
        """The next message, or None after `timeout` seconds."""
        deadline = time.time() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return None
            if not data:
                raise GuestError("QMP: QEMU closed the connection")
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def reply(self, name, **arguments):
        """The whole reply: {"return": ...} or {"error": ...} (for commands expected to fail)."""
        self.sock.sendall(json.dumps({"execute": name, "arguments": arguments}).encode() + b"\n")
        while True:
            message = self._read(self.timeout)
            if message is None:
                raise GuestError(f"QMP {name}: no reply in {self.timeout} s")
            if "event" not in message:
                return message
            self.events.append(message)

    def command(self, name, **arguments):
        reply = self.reply(name, **arguments)
        if "error" in reply:
            raise GuestError(f"QMP {name}: {reply['error']}")
        return reply["return"]

    def wait_event(self, names, timeout):
        """The first event named in `names` (kept or arriving within `timeout` seconds, which
        ends the wait with None); earlier events of other names are dropped."""
        deadline = time.time() + timeout
        while True:
            while self.events:
                event = self.events.pop(0)
                if event["event"] in names:
                    return event
            message = self._read(deadline - time.time())
            if message is None:
                return None
            if "event" in message:
                self.events.append(message)

    def close(self):
        self.sock.close()


class QemuProcess:
    """A QEMU process a test talks to while it runs (migrations): its serial console (stdout)
    collected line by line, text typed to it, and with `qmp` a Qmp client (`qmp`) on a monitor
    socket handed to QEMU. stop() ends it (the whole process group)."""

    def __init__(self, argv, qmp=False):
        self.lines = []
        self.cond = threading.Condition()
        ours, theirs = None, None
        if qmp:  # the monitor on a socket made here: connected before QEMU even starts
            ours, theirs, monitor = qmp_socketpair()
            argv = list(argv) + monitor
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     pass_fds=[theirs.fileno()] if qmp else [])
        if qmp:
            theirs.close()
        self.reader = threading.Thread(target=self._read_console)
        self.reader.start()
        self.qmp = None
        if qmp:
            try:
                self.qmp = Qmp(sock=ours)
            except BaseException:
                self.stop(0)
                raise

    def _read_console(self):
        for line in iter(self.proc.stdout.readline, b""):
            with self.cond:
                self.lines.append(line.decode(errors="replace"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def output(self):
        with self.cond:
            return "".join(self.lines)

    def wait_for(self, text, timeout):
        """Waits until the console shows `text`; false if QEMU exited or the time ran out."""
        deadline = time.time() + timeout
        with self.cond:
            while not any(text in line for line in self.lines):
                left = deadline - time.time()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self.cond.wait(min(left, 1))
            return True

    def type(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait_exit(self, timeout):
        """The exit status, or None if QEMU still runs after `timeout` seconds."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=0):
        """Waits up to `timeout` seconds for QEMU to exit, then kills its process group."""
        if self.qmp is not None:
            self.qmp.close()
            self.qmp = None
        if self.wait_exit(timeout) is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.reader.join()
        self.proc.stdin.close()
        self.proc.stdout.close()


def start_migration(qmp, uri):
    """Starts migrating to `uri`, with QEMU's migration events on for wait_migration."""
    qmp.command("migrate-set-capabilities",
                capabilities=[{"capability": "events", "state": True}])
    qmp.command("migrate", uri=uri)


def wait_migration(qmp, timeout, syncs=None):
    """Waits, woken by QEMU's MIGRATION and MIGRATION_PASS events (start_migration), until the
    migration ends or `timeout` seconds pass (or, with `syncs`, until it has synced the dirty
    bitmap that often); returns query-migrate's last answer."""
    deadline = time.time() + timeout
    while True:
        info = qmp.command("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled") or time.time() > deadline:
            return info
        if syncs is not None and info.get("ram", {}).get("dirty-sync-count", 0) >= syncs:
            return info
        qmp.wait_event(("MIGRATION", "MIGRATION_PASS"), deadline - time.time())


def wait_running(qmp, timeout):
    """A migration's destination runs its guest a moment after the source reports the migration
    completed, and a failed migration's source a moment after it reports the failure: waits for
    QEMU's RESUME event; returns query-status's last status."""
    deadline = time.time() + timeout
    while True:
        status = qmp.command("query-status")["status"]
        if status == "running" or time.time() > deadline:
            return status
        qmp.wait_event(("RESUME",), deadline - time.time())


def run_guest_again(daemon, script, devices, modules, runner=None, **kwargs):
    """A QEMU restart: runs the guest (run_guest's arguments) in a new QEMU process against
    `daemon`, whose previous front end has exited. Raises GuestError unless the same daemon
    process, still running, accepted the new QEMU as one more front end. `runner`: another
    guest's run_guest (aarch64_guest.run_aarch64_guest)."""
    pid, accepted = daemon.proc.pid, daemon.connections()
    if not daemon.alive():
        raise GuestError(f"the daemon exited before the restart: {daemon.read_log()[-3000:]}")
    result = (runner or run_guest)(script, devices, modules, **kwargs)
    if not daemon.alive() or daemon.proc.pid != pid:
        raise GuestError(f"daemon {pid} did not survive the restart: {daemon.read_log()[-3000:]}")
    if daemon.connections() != accepted + 1:
        raise GuestError(f"daemon {pid} did not accept the new QEMU: {daemon.read_log()[-3000:]}")
    return result
