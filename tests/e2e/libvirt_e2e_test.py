"""libvirt drives our daemons (issue 19): libvirt 11 (bookworm-backports) runs a guest whose disk
is a vhost-user disk served by vhost-user-blk (started here, as a user starts it) and whose
virtiofs share is served by a vhost-user-fs that libvirt starts itself (<filesystem> with
<binary path=...>) and stops when the domain ends. The guest writes and reads back a checksummed
block on the disk and a checksummed file on the share; the host finds both.

Its video is a virtio-gpu with <driver name='vhostuser'/>: libvirt looks for the first
vhost-user.json descriptor of type "gpu" and starts that binary itself. The test puts one for our
vhost-user-gpu in /etc/qemu/vhost-user under a name that sorts before QEMU's 50-qemu-gpu.json
(libvirt sorts the descriptors of all its directories by file name), checks that the daemon
libvirt ran is ours with the command line libvirt gives it, has the guest show gpu_guest_tool's
pattern, takes it with `virsh screenshot` (QMP screendump through libvirt) and compares it pixel
for pixel, and checks libvirt stops the daemon with the domain.

The test starts its own libvirtd (Debian ships no modular virtqemud) with its sockets in the
test's directory, and virtlogd unless one already serves, and stops what it started. libvirtd
runs privileged (qemu:///system): QEMU as libvirt-qemu, the fs daemon as root.

Usage: libvirt_e2e_test.py PATH_TO_vhost-user-fs PATH_TO_vhost-user-blk PATH_TO_vhost-user-gpu
PATH_TO_gpu_guest_tool (Bazel passes them).
"""
import contextlib
import glob
import hashlib
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_e2e_test  # noqa: E402
import qemu_guest  # noqa: E402

FS_DAEMON = None
BLK_DAEMON = None
GPU_DAEMON = None
HINT = "install libvirt 11: run scripts/setup.sh"
VIRTLOGD_SOCK = "/run/libvirt/virtlogd-sock"  # fixed for a privileged virtlogd
LOG_DIR = "/var/log/libvirt/qemu"  # a privileged libvirtd's domain logs
DISK_MB = 64
BLOCK_OFFSET = 1 << 20  # where the guest writes its block (dd seek=16 of 64 KiB)
# Where a privileged libvirt looks for vhost-user descriptors besides /usr/share/qemu/vhost-user
# (the admin's: same file name, higher priority).
ETC_VHOST_USER = "/etc/qemu/vhost-user"
XRES, YRES = 1024, 640  # the video's <resolution>: not the daemon's nor QEMU's default

# The host makes /share/go once it has looked at the fs daemon libvirt started, so the guest
# cannot finish (and libvirt stop the daemon) before that.
GUEST_SCRIPT = r"""
set -e
mkdir -p /share
mount -t virtiofs share /share
echo "E2E-RESULT host_file=$(cat /share/from_host.txt)"
echo "E2E-RESULT disk_host=$(head -c 19 /dev/vda)"
i=0
while [ ! -e /share/go ]; do
  i=$((i + 1)); [ $i -lt 1200 ] || { echo "E2E-RESULT go=timeout"; exit 1; }
  sleep 0.1
done
head -c 65536 /dev/urandom > /tmp/block
dd if=/tmp/block of=/dev/vda bs=65536 seek=16 oflag=direct 2>/dev/null
sync
echo 3 > /proc/sys/vm/drop_caches
echo "E2E-RESULT blk_sha=$(sha256sum /tmp/block | cut -d' ' -f1)"
echo "E2E-RESULT blk_reread=$(dd if=/dev/vda bs=65536 skip=16 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
head -c 1048576 /dev/urandom > /tmp/file
cp /tmp/file /share/from_guest.bin
sync
echo 3 > /proc/sys/vm/drop_caches
echo "E2E-RESULT fs_sha=$(sha256sum /tmp/file | cut -d' ' -f1)"
echo "E2E-RESULT fs_reread=$(sha256sum /share/from_guest.bin | cut -d' ' -f1)"
""" + gpu_e2e_test.FIND_CONNECTOR + r"""
# The gpu (FIND_CONNECTOR set $conn).
echo "E2E-RESULT gpu_status=$(cat $conn/status)"
echo "E2E-RESULT gpu_modes=$(tr '\n' ' ' < $conn/modes)"
# show holds each of its two frames until a line on stdin: the host makes /share/shotN once it
# has its screenshot of frame N.
released() {
  i=0
  while [ ! -e /share/$1 ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
  echo go
}
rc=0
{ released shot1; released shot2; } | /bin/gpu_guest_tool show || rc=$?
echo "E2E-RESULT show_rc=$rc"
umount /share
echo "E2E-RESULT unmounted=yes"
"""

DOMAIN_XML = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet loglevel=4</cmdline>
  </os>
  <features><acpi/></features>
  <cpu mode='custom' match='exact'><model fallback='forbid'>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='vhostuser' device='disk'>
      <driver name='qemu' type='raw'/>
      <source type='unix' path='{blk_sock}'><reconnect enabled='no'/></source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <filesystem type='mount'>
      <driver type='virtiofs' queue='1024'/>
      <binary path='{fs_daemon}' xattr='on'>
        <cache mode='none'/>
        <thread_pool size='2'/>
      </binary>
      <source dir='{shared}'/>
      <target dir='share'/>
    </filesystem>
    <video>
      <driver name='vhostuser'/>
      <model type='virtio' heads='1'><resolution x='{xres}' y='{yres}'/></model>
    </video>
    <serial type='file'><source path='{console}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def wait_until(what, predicate, timeout, interval=0.2):
    """Polls `predicate` until it returns something true (returned) or `timeout` seconds pass."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise qemu_guest.GuestError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def accepts(path):
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def stop_group(proc, timeout=30):
    """SIGTERM to a process group we started, SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def qemu_user():
    """The user a privileged libvirt runs QEMU as (qemu.conf's user, Debian's libvirt-qemu)."""
    with contextlib.suppress(OSError):
        with open("/etc/libvirt/qemu.conf") as f:
            m = re.search(r'^\s*user\s*=\s*"([^"]+)"', f.read(), re.M)
            if m:
                return pwd.getpwnam(m.group(1)).pw_uid
    return pwd.getpwnam("libvirt-qemu").pw_uid


class Libvirt:
    """A libvirtd of the test's own (sockets and log in `work`), with virtlogd unless one serves;
    `virsh` talks to it. Leaving destroys the test's domains and stops what was started."""

    def __init__(self, work):
        self.work = work
        self.sock_dir = os.path.join(work, "libvirt")
        self.uri = f"qemu:///system?socket={self.sock_dir}/libvirt-sock"
        self.log = os.path.join(work, "libvirtd.log")
        self.procs = []
        self.domains = []

    def _spawn(self, argv, out):
        with open(out, "wb") as f:
            proc = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def __enter__(self):
        for tool in ("libvirtd", "virtlogd", "virsh"):
            if shutil.which(tool) is None:
                raise qemu_guest.GuestError(f"{tool} not found: {HINT}")
        try:
            if not accepts(VIRTLOGD_SOCK):  # libvirtd hands QEMU's output to virtlogd
                virtlogd = self._spawn(["virtlogd", "--pid-file",
                                        os.path.join(self.work, "virtlogd.pid")],
                                       os.path.join(self.work, "virtlogd.out"))
                wait_until("virtlogd's socket",
                           lambda: accepts(VIRTLOGD_SOCK) or virtlogd.poll() is not None, 30)
                if virtlogd.poll() is not None:
                    raise qemu_guest.GuestError(f"virtlogd exited: {self._read('virtlogd.out')}")
            os.makedirs(self.sock_dir, mode=0o700)
            conf = os.path.join(self.work, "libvirtd.conf")
            with open(conf, "w") as f:
                f.write(f'unix_sock_dir = "{self.sock_dir}"\n'
                        'unix_sock_rw_perms = "0700"\n'
                        'auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                        f'log_outputs = "3:file:{self.log}"\n')
            libvirtd = self._spawn(["libvirtd", "--config", conf, "--pid-file",
                                    os.path.join(self.work, "libvirtd.pid")],
                                   os.path.join(self.work, "libvirtd.out"))

            def ready():
                if libvirtd.poll() is not None:
                    raise qemu_guest.GuestError(
                        f"libvirtd exited: {self._read('libvirtd.out')}{self._read('libvirtd.log')}")
                return self.run("version", check=False).returncode == 0

            # (A system libvirtd already running holds the QEMU driver's lock: ours then has
            # no QEMU driver, and its log says so.)
            wait_until("libvirtd to answer", ready, 90, interval=0.5)
            return self
        except BaseException:
            self.__exit__()
            raise

    def _read(self, name):
        with contextlib.suppress(OSError), open(os.path.join(self.work, name), "rb") as f:
            return f.read().decode(errors="replace")[-3000:]
        return ""

    def run(self, *args, check=True, timeout=60):
        done = subprocess.run(["virsh", "-c", self.uri] + list(args), capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise qemu_guest.GuestError(f"virsh {' '.join(args)}: {done.stderr.strip()}\n"
                                        f"{self._read('libvirtd.log')}")
        return done

    def create(self, name, xml_path):
        self.domains.append(name)
        self.run("create", xml_path, timeout=120)

    def running(self, name):
        return name in self.run("list", "--name").stdout.split()

    def __exit__(self, *exc):
        for name in self.domains:
            with contextlib.suppress(Exception):
                if self.running(name):
                    self.run("destroy", name, check=False)
        for proc in reversed(self.procs):  # libvirtd first, then virtlogd
            stop_group(proc)
        return False


@contextlib.contextmanager
def gpu_descriptor(binary):
    """A vhost-user.json descriptor of type gpu for `binary` in ETC_VHOST_USER while the block
    runs; the directories it needed are made and removed again, those already there are left."""
    made = []
    for d in (os.path.dirname(ETC_VHOST_USER), ETC_VHOST_USER):
        if not os.path.isdir(d):
            os.mkdir(d, 0o755)
            made.append(d)
    # "10-" sorts before QEMU's own 50-qemu-gpu.json (and our installed 50-vhost-user-gpu.json).
    path = os.path.join(ETC_VHOST_USER, f"10-vhost-user-gpu-test-{os.getpid()}.json")
    try:
        with open(path, "w") as f:
            json.dump({"description": "vhost-user-gpu under test", "type": "gpu",
                       "binary": binary}, f)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        for d in reversed(made):
            os.rmdir(d)


def processes_of(exe):
    """{pid: argv} of the processes running the executable `exe`."""
    found = {}
    for link in glob.glob("/proc/[0-9]*/exe"):
        with contextlib.suppress(OSError):
            if os.readlink(link) == exe:
                pid = int(link.split("/")[2])
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    found[pid] = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    return found


def uid_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^Uid:\s+(\d+)", f.read(), re.M).group(1))


def read_png(path):
    """(width, height, RGB bytes) of an 8-bit RGB PNG without interlacing: what libvirt stores
    for `virsh screenshot` (QEMU's screendump in its PNG format)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise AssertionError(f"not a PNG: {data[:16]!r}")
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length  # length, type, body, CRC
        if kind == b"IHDR":
            w, h, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            if (depth, color, interlace) != (8, 2, 0):
                raise AssertionError(f"not 8-bit RGB without interlacing: {body!r}")
        elif kind == b"IDAT":
            idat += body
    raw, stride, bpp = zlib.decompress(idat), w * 3, 3
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):  # each row: a filter byte, then the filtered bytes (PNG spec, 9.2)
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride) if kind else ():
            left = row[i - bpp] if i >= bpp else 0
            up, corner = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 1:
                row[i] = (row[i] + left) & 0xff
            elif kind == 2:
                row[i] = (row[i] + up) & 0xff
            elif kind == 3:
                row[i] = (row[i] + ((left + up) >> 1)) & 0xff
            else:  # Paeth
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                row[i] = (row[i] + pred) & 0xff
        out += row
        prev = row
    return w, h, bytes(out)


def fs_daemons_serving(shared):
    """{pid: argv} of the processes started with --shared-dir SHARED (libvirt's form)."""
    found = {}
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            with open(cmdline, "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
            if "--shared-dir" in argv and shared in argv:
                found[int(cmdline.split("/")[2])] = argv
    return found


def wait_ended(what, pid, timeout):
    """Waits until process `pid` (not ours: libvirt's) has exited: its pidfd becomes readable
    then, reaped or not."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        waiter = select.poll()
        waiter.register(fd, select.POLLIN)
        if not waiter.poll(timeout * 1000):
            raise qemu_guest.GuestError(f"timed out after {timeout} s waiting for {what}")
    finally:
        os.close(fd)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class LibvirtGuestTest(unittest.TestCase):

    def test_libvirt_runs_a_guest_on_our_blk_disk_and_starts_and_stops_our_fs_and_gpu(self):
        with qemu_guest.work_dir("virt") as work:
            os.chmod(work, 0o755)  # QEMU (libvirt-qemu) opens the initrd in here
            shared = os.path.join(work, "shared")
            os.makedirs(shared)
            with open(os.path.join(shared, "from_host.txt"), "w") as f:
                f.write("written on the host")
            image = os.path.join(work, "disk.img")
            with open(image, "wb") as f:
                f.write(b"written by the host")
                f.truncate(DISK_MB << 20)
            kernel, _ = qemu_guest.find_kernel()
            initrd = qemu_guest.guest_initrd(
                qemu_guest.base_initramfs(["virtio_blk", "virtiofs", "virtio_gpu"]),
                GUEST_SCRIPT, extra_entries=gpu_e2e_test.tool_entries(), work=work)
            fs_daemon = os.path.realpath(FS_DAEMON)
            # libvirt runs the gpu daemon as QEMU's user, who cannot reach Bazel's output
            # under /root (0700): a copy in the work directory.
            gpu_daemon = os.path.join(work, "vhost-user-gpu")
            shutil.copy(GPU_DAEMON, gpu_daemon)
            name = f"vhost-user-e2e-{os.getpid()}"
            blk_sock = os.path.join(work, "blk.sock")
            console = os.path.join(work, "console.log")
            xml = os.path.join(work, "domain.xml")
            with open(xml, "w") as f:
                f.write(DOMAIN_XML.format(name=name, kernel=kernel, initrd=initrd,
                                          blk_sock=blk_sock, fs_daemon=fs_daemon,
                                          shared=shared, console=console, xres=XRES,
                                          yres=YRES))
            domain_log = os.path.join(LOG_DIR, f"{name}.log")
            fs_log = os.path.join(LOG_DIR, f"{name}-fs0-virtiofsd.log")
            self.addCleanup(lambda: [os.unlink(p) for p in (domain_log, fs_log)
                                     if os.path.exists(p)])
            blk_argv = [BLK_DAEMON, f"--socket-path={blk_sock}", f"--blk-file={image}"]
            screens = []  # (virsh's words, (w, h, RGB)) per frame the guest holds
            with gpu_descriptor(gpu_daemon), qemu_guest.Daemon(blk_argv, blk_sock) as blk, \
                    Libvirt(work) as virt:
                os.chown(blk_sock, qemu_user(), -1)  # QEMU connects as libvirt-qemu
                virt.create(name, xml)
                # libvirt started the fs and gpu daemons before QEMU, and the guest waits for
                # "go".
                daemons = fs_daemons_serving(shared)
                self.assertEqual(len(daemons), 1, daemons)
                (pid, argv), = daemons.items()
                exe = os.readlink(f"/proc/{pid}/exe")
                gpus = processes_of(gpu_daemon)
                self.assertEqual(len(gpus), 1, gpus)
                (gpu_pid, gpu_argv), = gpus.items()
                gpu_uid = uid_of(gpu_pid)
                open(os.path.join(shared, "go"), "w").close()

                def console_says(n):
                    with open(console, errors="replace") as f:
                        return f.read().count("E2E-READY frame") >= n or not virt.running(name)

                for n in (1, 2):  # the tool's preferred mode, then a smaller one
                    wait_until(f"the guest's frame {n}", lambda: console_says(n), 240,
                               interval=0.5)
                    if not virt.running(name):
                        break
                    dump = os.path.join(work, f"screen{n}.png")
                    said = virt.run("screenshot", name, dump).stdout
                    screens.append((said, read_png(dump)))
                    open(os.path.join(shared, f"shot{n}"), "w").close()
                wait_until("the guest to power off", lambda: not virt.running(name), 240,
                           interval=0.5)
                wait_ended(f"libvirt to stop the fs daemon {pid}", pid, 30)
                wait_ended(f"libvirt to stop the gpu daemon {gpu_pid}", gpu_pid, 30)
                blk_log = blk.read_log()
                self.assertTrue(blk.alive(), blk_log)
            with open(console, errors="replace") as f:
                output = f.read()
            with open(domain_log, errors="replace") as f:
                started = f.read()
            with open(fs_log, errors="replace") as f:
                fs_output = f.read()
            with open(image, "rb") as f:
                f.seek(BLOCK_OFFSET)
                disk_block = f.read(65536)
            with open(os.path.join(shared, "from_guest.bin"), "rb") as f:
                host_file = f.read()

        diagnostics = output[-3000:] + fs_output[-2000:] + blk_log[-2000:]
        r = qemu_guest.BootResult(output)
        self.assertEqual(r.script_status, 0, diagnostics)
        self.assertEqual(r["unmounted"], "yes", diagnostics)
        # The daemon libvirt ran is ours, with virtiofsd's separate options (our
        # "separate-options" capability), as its log shows.
        self.assertEqual(exe, fs_daemon)
        self.assertRegex(argv[1], r"^--fd=\d+$")
        self.assertEqual(argv, [fs_daemon, argv[1], "--shared-dir", shared, "--cache", "never",
                                "--xattr", "--thread-pool-size=2"])
        self.assertIn("Starting external device: virtiofsd\n" + " ".join(argv) + "\n", started)
        # It served the guest, and libvirt stopped it with SIGTERM when the domain ended.
        self.assertIn("front end connected", fs_output)
        self.assertIn("terminating", fs_output)
        # The share: both ways.
        self.assertEqual(r["host_file"], "written on the host")
        self.assertEqual(r["fs_sha"], sha256(host_file))
        self.assertEqual(r["fs_reread"], r["fs_sha"])
        # The disk: the host's bytes read by the guest, the guest's block in the image.
        self.assertEqual(r["disk_host"], "written by the host")
        self.assertEqual(r["blk_sha"], sha256(disk_block))
        self.assertEqual(r["blk_reread"], r["blk_sha"])
        self.assertEqual(blk_log.count("front end connected"), 1, blk_log)
        self.assertIn("front end disconnected", blk_log)
        self.check_gpu(r, gpu_daemon, gpu_argv, gpu_uid, started, screens, diagnostics)

    def check_gpu(self, r, gpu_daemon, argv, uid, started, screens, diagnostics):
        """libvirt found our daemon through the descriptor (not QEMU's, whose file sorts after
        ours), ran it as QEMU's user with just the socket it made, and the guest's frames reached
        QEMU's display through it."""
        self.assertRegex(argv[1], r"^--fd=\d+$")
        self.assertEqual(argv, [gpu_daemon, argv[1]])
        print(f"libvirt ran the gpu daemon as: {' '.join(argv)}", file=sys.stderr)
        self.assertEqual(uid, qemu_user())
        # (libvirt logs the command before it adds --fd.)
        self.assertIn(f"Starting external device: vhost-user-gpu\n{gpu_daemon}\n", started)
        # QEMU's device is libvirt's: vhost-user-vga for the primary video, on that socket.
        self.assertRegex(started, r'-chardev socket,id=chr-vu-video0,fd=\d+ \\\n-device '
                                  r'\'{"driver":"vhost-user-vga","id":"video0",')
        # QEMU asked the daemon's display end for the <resolution>, which the guest sees.
        self.assertEqual(r["gpu_status"], "connected", diagnostics)
        modes = r["gpu_modes"].split()
        self.assertEqual(modes[:1], [f"{XRES}x{YRES}"], diagnostics)
        self.assertEqual(r["mode"], f"{XRES}x{YRES}", diagnostics)
        self.assertEqual(r["show_rc"], "0", diagnostics)
        self.assertEqual(len(screens), 2, diagnostics)
        for (said, (w, h, rgb)), mode in zip(screens, (r["mode"], r["mode2"])):
            self.assertIn("image/png", said)
            self.assertEqual(f"{w}x{h}", mode)
            if rgb != gpu_e2e_test.pattern_rgb(w, h):
                expected = gpu_e2e_test.pattern_rgb(w, h)
                wrong = [(i % w, i // w) for i in range(w * h)
                         if rgb[i * 3:i * 3 + 3] != expected[i * 3:i * 3 + 3]]
                self.fail(f"{w}x{h}: {len(wrong)} pixels differ from the pattern, first "
                          f"{wrong[:10]}")


if __name__ == "__main__":
    FS_DAEMON = os.path.abspath(sys.argv.pop(1))
    BLK_DAEMON = os.path.abspath(sys.argv.pop(1))
    GPU_DAEMON = os.path.abspath(sys.argv.pop(1))
    gpu_e2e_test.TOOL = os.path.abspath(sys.argv.pop(1))
    unittest.main()
