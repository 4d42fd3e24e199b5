"""vhost-user-blk and vhost-user-rng run from their OCI images (packaging/oci) under podman, as
an unprivileged user with no network, serving a Linux guest's disk and hardware RNG: the guest
writes a block of the container-served RNG's bytes to the container-served disk and reads it back;
the host finds it in the image file.

Podman runs as root here (the test does), the daemons as uid 65534 inside. Everything podman
keeps (images, containers, locks, events) lives in a private store under a temporary directory
named by a private containers.conf and storage.conf, so the test neither needs nor touches the
machine's own podman state; the store goes when the test ends.

Usage: container_e2e_test.py PATH_TO_vhost-user-blk PATH_TO_vhost-user-rng (Bazel passes them).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

BLK, RNG = None, None
BUILD_SH = "packaging/oci/build.sh"  # a runfile (the test runs in the runfiles tree's root)
USER = "65534:65534"
BLOCK_OFFSET, BLOCK_BYTES = 1 << 20, 64 << 10

# The engine settings: runc (crun 1.8 refuses hybrid cgroup hosts whose unified tree holds a
# controller, as these machines' does), cgroupfs and a file for events (no systemd here), and
# locks as files in the private tmp_dir (not the machine-wide /dev/shm/libpod_lock). The ulimits:
# podman would otherwise raise the container's nofile and nproc to values only CAP_SYS_RESOURCE
# may set, which root lacks in these sandboxes.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{state}/events.log"
tmp_dir = "{state}/tmp"
lock_type = "file"
static_dir = "{state}/root/libpod"
volume_path = "{state}/root/volumes"
"""
# vfs: plain copies, no overlay mounts to leave behind; the images are 3 MB.
STORAGE_CONF = """\
[storage]
driver = "vfs"
graphroot = "{state}/root"
runroot = "{state}/run"
"""

# The guest takes 64 KiB from its hardware RNG (the rng container), writes it to the disk (the
# blk container) past the page cache, reads it back the same way and reports both checksums.
GUEST_SCRIPT = f"""
set -e
echo "E2E-RESULT rng_current=$(cat /sys/class/misc/hw_random/rng_current)"
echo "E2E-RESULT serial=$(cat /sys/block/vda/serial)"
dd if=/dev/hwrng of=/tmp/block bs=4096 count={BLOCK_BYTES // 4096} iflag=fullblock 2>/dev/null
echo "E2E-RESULT wrote=$(sha256sum < /tmp/block | cut -d' ' -f1)"
dd if=/tmp/block of=/dev/vda bs=4096 seek={BLOCK_OFFSET // 4096} oflag=direct conv=fsync 2>/dev/null
dd if=/dev/vda bs=4096 skip={BLOCK_OFFSET // 4096} count={BLOCK_BYTES // 4096} iflag=direct 2>/dev/null > /tmp/back
echo "E2E-RESULT read=$(sha256sum < /tmp/back | cut -d' ' -f1)"
"""


class ContainerGuestTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.state = tempfile.mkdtemp(prefix="oci-", dir="/tmp")
        for name, text in (("containers.conf", CONTAINERS_CONF), ("storage.conf", STORAGE_CONF)):
            with open(os.path.join(cls.state, name), "w") as f:
                f.write(text.format(state=cls.state))
        # For every podman this process starts, the Daemon-run ones included.
        os.environ.update(CONTAINERS_CONF=os.path.join(cls.state, "containers.conf"),
                          CONTAINERS_STORAGE_CONF=os.path.join(cls.state, "storage.conf"))
        # The images, built once for the whole class by the script users run (offline: FROM
        # scratch, nothing pulled). It prints "TAG SIZE" per image.
        built = subprocess.run([BUILD_SH, BLK, RNG], capture_output=True, text=True)
        if built.returncode != 0:
            cls.tearDownClass()
            raise AssertionError(f"{BUILD_SH} failed:\n{built.stdout}\n{built.stderr}")
        cls.images = dict(line.split() for line in built.stdout.splitlines())
        print(f"images: {cls.images}", file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        # Containers first (a killed `podman run --rm` leaves its container), then the images.
        cls.podman("rm", "--all", "--force", "--time", "0", check=False)
        cls.podman("rmi", "--all", "--force", check=False)
        shutil.rmtree(cls.state, ignore_errors=True)

    @classmethod
    def podman(cls, *args, check=True):
        done = subprocess.run(["podman"] + list(args), capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {done.stderr}")
        return done.stdout

    def tag(self, daemon):
        (tag,) = [t for t in self.images if t.startswith(f"localhost/{daemon}:")]
        return tag

    def run_argv(self, name, tag, mounts, args, extra=()):
        """`podman run` of an image as the daemon users would run it: unprivileged, no network,
        no capabilities, a read-only root (and no tmpfs over /tmp, /run: the daemon needs
        none), the host's directories bind-mounted."""
        argv = ["podman", "run", "--rm", "--name", name, "--network=none", "--user", USER,
                "--cap-drop=all", "--read-only", "--read-only-tmpfs=false"] + list(extra)
        for host, inside in mounts:
            argv += ["-v", f"{host}:{inside}"]
        return argv + [tag] + list(args)

    def container_process(self, name):
        """The container's settings and its process's /proc/PID/status, read from the host."""
        (info,) = json.loads(self.podman("inspect", name))
        self.assertTrue(info["State"]["Running"], info["State"])
        with open(f"/proc/{info['State']['Pid']}/status") as f:
            status = dict(line.split(":\t", 1) for line in f.read().splitlines())
        with open(f"/proc/{info['State']['Pid']}/net/dev") as f:
            interfaces = [line.split(":")[0].strip() for line in f.read().splitlines()[2:]]
        return info, {k: v.strip() for k, v in status.items()}, interfaces

    def check_confined(self, name, daemon, runtime_filter):
        info, status, interfaces = self.container_process(name)
        self.assertEqual(info["Config"]["User"], USER)
        self.assertEqual(info["HostConfig"]["NetworkMode"], "none")
        self.assertEqual(interfaces, ["lo"])  # its own network namespace, loopback only
        self.assertEqual(status["Name"], daemon)
        # The daemon is the container's init (PID 1 in its PID namespace), uid 65534 in all of
        # real, effective, saved and file-system ids, no capabilities, no new privileges.
        self.assertEqual(status["NSpid"].split()[-1], "1", status["NSpid"])
        self.assertEqual(status["Uid"].split(), ["65534"] * 4)
        self.assertEqual(status["Gid"].split(), ["65534"] * 4)
        self.assertEqual(int(status["CapEff"], 16), 0)
        self.assertEqual(int(status["CapBnd"], 16), 0)
        self.assertEqual(status["NoNewPrivs"], "1")
        # Seccomp 2: filter mode. The daemon's own filter is stacked on the runtime's default
        # one (podman's profile), or is the only one where the runtime installs none.
        self.assertEqual(status["Seccomp"], "2")
        self.assertEqual(int(status["Seccomp_filters"]), 1 + runtime_filter)

    def test_images_hold_only_the_static_daemon(self):
        for daemon, binary in (("vhost-user-blk", BLK), ("vhost-user-rng", RNG)):
            tag = self.tag(daemon)
            version = subprocess.run([binary, "--version"], capture_output=True,
                                     text=True).stdout.split()[1]
            self.assertEqual(tag, f"localhost/{daemon}:{version}")
            (info,) = json.loads(self.podman("image", "inspect", tag))
            self.assertEqual(info["Config"]["User"], USER)
            self.assertEqual(info["Config"]["Entrypoint"], [f"/{daemon}"])
            self.assertEqual(info["Labels"]["org.opencontainers.image.version"], version)
            self.assertEqual(info["Labels"]["org.opencontainers.image.title"], daemon)
            self.assertEqual(len(info["RootFS"]["Layers"]), 1)
            # The one layer is the stripped binary: smaller than the built one, with room for
            # the tar headers only.
            self.assertLess(info["Size"], os.path.getsize(binary))
            stripped = os.path.join(self.state, "stripped")
            subprocess.run(["strip", "-o", stripped, binary], check=True)
            self.assertLess(info["Size"] - os.path.getsize(stripped), 16 << 10, info["Size"])

    def test_guest_disk_and_rng_served_from_containers(self):
        with qemu_guest.work_dir("ctr") as work:
            # The socket directory and the disk's directory come from the host; the daemons'
            # user must be able to create sockets in the one and write the image in the other.
            sockets, disks = os.path.join(work, "sockets"), os.path.join(work, "disks")
            for d in (sockets, disks):
                os.mkdir(d)
                os.chown(d, 65534, 65534)
            image = os.path.join(disks, "disk.img")
            with open(image, "wb") as f:
                f.truncate(16 << 20)
            os.chown(image, 65534, 65534)
            blk_name, rng_name = f"blk-{os.getpid()}", f"rng-{os.getpid()}"
            blk = self.run_argv(blk_name, self.tag("vhost-user-blk"),
                                [(sockets, "/run/vhost-user"), (disks, "/var/lib/vhost-user")],
                                ["--socket-path=/run/vhost-user/blk.sock",
                                 "--blk-file=/var/lib/vhost-user/disk.img",
                                 "--serial=in-a-container"])
            # rng without the runtime's seccomp profile: the one filter left is the daemon's own.
            rng = self.run_argv(rng_name, self.tag("vhost-user-rng"),
                                [(sockets, "/run/vhost-user")],
                                ["--socket-path=/run/vhost-user/rng.sock"],
                                extra=["--security-opt", "seccomp=unconfined"])
            blk_sock, rng_sock = (os.path.join(sockets, s) for s in ("blk.sock", "rng.sock"))
            # Daemon waits (with a deadline) for each socket to appear on the host's side of the
            # mount; podman passes SIGTERM on to the container when the test stops it.
            with qemu_guest.Daemon(blk, blk_sock, os.path.join(work, "blk.log")) as bd, \
                    qemu_guest.Daemon(rng, rng_sock, os.path.join(work, "rng.log")) as rd:
                self.check_confined(blk_name, "vhost-user-blk", runtime_filter=1)
                self.check_confined(rng_name, "vhost-user-rng", runtime_filter=0)
                # The socket is the daemon's (uid 65534): root's QEMU connects whatever the mode.
                self.assertEqual(os.stat(blk_sock).st_uid, 65534)
                result = qemu_guest.run_guest(
                    GUEST_SCRIPT, ["-chardev", f"socket,id=blk0,path={blk_sock}",
                                   "-device", "vhost-user-blk-pci,chardev=blk0",
                                   "-chardev", f"socket,id=rng0,path={rng_sock}",
                                   "-device", "vhost-user-rng-pci,chardev=rng0"],
                    modules=["virtio_blk", "virtio_rng"], work=work)
                logs = bd.read_log() + rd.read_log()
                self.assertTrue(bd.alive() and rd.alive(), logs)
                self.assertEqual((bd.connections(), rd.connections()), (1, 1), logs)
            with open(image, "rb") as f:
                f.seek(BLOCK_OFFSET)
                block = f.read(BLOCK_BYTES)
        self.assertFalse(result.timed_out, result.output[-3000:])
        self.assertEqual(result.script_status, 0, result.output[-3000:] + logs[-2000:])
        r = result.results
        self.assertTrue(r["rng_current"].startswith("virtio_rng"), r)
        self.assertEqual(r["serial"], "in-a-container")
        self.assertEqual(r["read"], r["wrote"])
        # The guest's block is in the host's image file, and it is the RNG's (not zeros).
        self.assertEqual(hashlib.sha256(block).hexdigest(), r["wrote"])
        self.assertGreater(len(set(block)), 250)
        # Both containers went away with their daemons (--rm).
        self.assertNotIn(blk_name, self.podman("ps", "--all", "--format", "{{.Names}}"))


if __name__ == "__main__":
    BLK, RNG = (os.path.abspath(p) for p in sys.argv[1:3])
    del sys.argv[1:3]
    unittest.main()
