"""libvirt drives our daemons (issue 19): libvirt 11 (bookworm-backports) runs a guest whose disk
is a vhost-user disk served by vhost-user-blk (started here, as a user starts it) and whose
virtiofs share is served by a vhost-user-fs that libvirt starts itself (<filesystem> with
<binary path=...>) and stops when the domain ends. The guest writes and reads back a checksummed
block on the disk and a checksummed file on the share; the host finds both.

The test starts its own libvirtd (Debian ships no modular virtqemud) with its sockets in the
test's directory, and virtlogd unless one already serves, and stops what it started. libvirtd
runs privileged (qemu:///system): QEMU as libvirt-qemu, the fs daemon as root.

Usage: libvirt_e2e_test.py PATH_TO_vhost-user-fs PATH_TO_vhost-user-blk (Bazel passes them).
"""
import contextlib
import glob
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

FS_DAEMON = None
BLK_DAEMON = None
HINT = "install libvirt 11: run scripts/setup.sh"
VIRTLOGD_SOCK = "/run/libvirt/virtlogd-sock"  # fixed for a privileged virtlogd
LOG_DIR = "/var/log/libvirt/qemu"  # a privileged libvirtd's domain logs
DISK_MB = 64
BLOCK_OFFSET = 1 << 20  # where the guest writes its block (dd seek=16 of 64 KiB)

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


def ended(pid):
    """Whether `pid` is gone (or a zombie nobody has reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class LibvirtGuestTest(unittest.TestCase):

    def test_libvirt_runs_a_guest_on_our_blk_disk_and_starts_and_stops_our_fs_daemon(self):
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
                qemu_guest.base_initramfs(["virtio_blk", "virtiofs"]), GUEST_SCRIPT, work=work)
            fs_daemon = os.path.realpath(FS_DAEMON)
            name = f"vhost-user-e2e-{os.getpid()}"
            blk_sock = os.path.join(work, "blk.sock")
            console = os.path.join(work, "console.log")
            xml = os.path.join(work, "domain.xml")
            with open(xml, "w") as f:
                f.write(DOMAIN_XML.format(name=name, kernel=kernel, initrd=initrd,
                                          blk_sock=blk_sock, fs_daemon=fs_daemon,
                                          shared=shared, console=console))
            domain_log = os.path.join(LOG_DIR, f"{name}.log")
            fs_log = os.path.join(LOG_DIR, f"{name}-fs0-virtiofsd.log")
            self.addCleanup(lambda: [os.unlink(p) for p in (domain_log, fs_log)
                                     if os.path.exists(p)])
            blk_argv = [BLK_DAEMON, f"--socket-path={blk_sock}", f"--blk-file={image}"]
            with qemu_guest.Daemon(blk_argv, blk_sock) as blk, Libvirt(work) as virt:
                os.chown(blk_sock, qemu_user(), -1)  # QEMU connects as libvirt-qemu
                virt.create(name, xml)
                # libvirt started the fs daemon before QEMU, and the guest waits for "go".
                daemons = fs_daemons_serving(shared)
                self.assertEqual(len(daemons), 1, daemons)
                (pid, argv), = daemons.items()
                exe = os.readlink(f"/proc/{pid}/exe")
                open(os.path.join(shared, "go"), "w").close()
                wait_until("the guest to power off", lambda: not virt.running(name), 240,
                           interval=0.5)
                wait_until(f"libvirt to stop the fs daemon {pid}", lambda: ended(pid), 30)
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


if __name__ == "__main__":
    FS_DAEMON = os.path.abspath(sys.argv.pop(1))
    BLK_DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
