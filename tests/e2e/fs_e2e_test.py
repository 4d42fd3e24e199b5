"""A Linux guest mounts a host directory through vhost-user-fs (virtiofs) and runs a file
workload: create, write and read back with checksums, rename, hard links, symlinks, a large file,
thousands of small files and their listing, concurrent writers; host-side changes are visible in
the guest and the guest's on the host. And what a guest can try against the host: device
nodes (MKNOD refused), a FIFO whose extended attributes GNU ls and cp read (the daemon must not
open it and block), setuid bits surviving a write or truncate (the daemon clears them).

Usage: fs_e2e_test.py PATH_TO_vhost-user-fs (Bazel passes it).
"""
import hashlib
import os
import stat
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None

GUEST_SCRIPT = r"""
set -e
mkdir -p /share
mount -t virtiofs share /share
cd /share
echo "E2E-RESULT host_file=$(cat from_host.txt)"
echo "E2E-RESULT host_dir=$(ls host_dir | wc -l)"
dd if=/dev/urandom of=big bs=1M count=24 2>/dev/null
echo "E2E-RESULT big_sha=$(sha256sum big | cut -d' ' -f1)"
echo 3 > /proc/sys/vm/drop_caches
echo "E2E-RESULT big_sha_reread=$(sha256sum big | cut -d' ' -f1)"
mv big renamed
ln renamed hardlink
ln -s renamed symlink
echo "E2E-RESULT readlink=$(readlink symlink)"
echo "E2E-RESULT links=$(stat -c %h renamed)"
mkdir many
i=0; while [ $i -lt 3000 ]; do echo $i > many/f$i; i=$((i + 1)); done
echo "E2E-RESULT listed=$(ls many | wc -l)"
echo "E2E-RESULT f2999=$(cat many/f2999)"
for w in 1 2 3 4; do dd if=/dev/zero of=writer$w bs=64k count=64 2>/dev/null & done
wait
echo "E2E-RESULT writers=$(cat writer1 writer2 writer3 writer4 | wc -c)"
mkdir gone && rmdir gone
touch t && truncate -s 12345 t && echo "E2E-RESULT truncated=$(stat -c %s t)"
chmod 640 t && echo "E2E-RESULT mode=$(stat -c %a t)"
echo "E2E-RESULT escape=$(ls /share/.. | wc -l)-$(cat /share/../share/from_host.txt)"
[ -d inner ] && ls inner > /dev/null  # walking into a submount mounts it
echo "E2E-RESULT submounts=$(grep -c ' /share/inner ' /proc/mounts || true)"
echo "written in the guest" > from_guest.txt
sync
cd /
umount /share
echo "E2E-RESULT unmounted=yes"
"""

# GNU ls -l reads a file's security.selinux attribute (GETXATTR) and cp -a lists the source's
# attributes (LISTXATTR): a daemon that opened the FIFO for them would block forever.
HOSTILE_SCRIPT = r"""
mkdir -p /share
mount -t virtiofs share /share || exit 1
# busybox timeout leaves a watcher behind for the whole period: keep its cwd off the share.
cd /
mknod /share/fifo p && echo "E2E-RESULT mkfifo=ok"
timeout 30 /gnu/ls -l /share/fifo > /dev/null; echo "E2E-RESULT ls_fifo=$?"
timeout 30 /gnu/cp -a /share/fifo /share/fifo_copy; echo "E2E-RESULT cp_fifo=$?"
echo through-the-fifo > /share/fifo &
echo "E2E-RESULT fifo_read=$(timeout 30 cat /share/fifo)"
wait
echo "E2E-RESULT alive=$(cat /share/from_host.txt)"
mknod /share/null c 1 3; echo "E2E-RESULT mknod_c=$?"
mknod /share/loop b 7 0; echo "E2E-RESULT mknod_b=$?"
echo x > /share/suid && chmod 6755 /share/suid && echo "E2E-RESULT suid_before=$(stat -c %a /share/suid)"
echo more >> /share/suid
echo x > /share/suid_trunc && chmod 4755 /share/suid_trunc && truncate -s 0 /share/suid_trunc
sync
umount /share && echo "E2E-RESULT unmounted=yes"
"""


class FsGuestTest(unittest.TestCase):

    def test_guest_cannot_reach_host_devices_block_the_daemon_or_keep_setuid(self):
        with qemu_guest.work_dir("fs") as work:
            shared = os.path.join(work, "shared")
            os.makedirs(shared)
            with open(os.path.join(shared, "from_host.txt"), "w") as f:
                f.write("written on the host")
            sock = os.path.join(work, "fs.sock")
            argv = [DAEMON, f"--socket-path={sock}", f"--shared-dir={shared}", "--xattr"]
            tools = ([("gnu", "dir", None)] +
                     qemu_guest.host_binary_entries("/usr/bin/ls", dest_dir="gnu") +
                     qemu_guest.host_binary_entries("/usr/bin/cp", dest_dir="gnu"))
            with qemu_guest.Daemon(argv, sock) as daemon:
                result = qemu_guest.run_guest(
                    HOSTILE_SCRIPT,
                    ["-chardev", f"socket,id=fs0,path={sock}",
                     "-device", "vhost-user-fs-pci,chardev=fs0,tag=share"],
                    modules=[], work=work, timeout=180, memory_mb=1024, extra_entries=tools)
                self.assertTrue(daemon.alive(), daemon.read_log())
                log = daemon.read_log()
            r = result.results
            self.assertEqual(r.get("unmounted"), "yes", result.output[-3000:] + log[-2000:])
            self.assertEqual(r["mkfifo"], "ok")
            self.assertEqual(r["ls_fifo"], "0")  # not 143: killed by timeout
            self.assertNotIn(r["cp_fifo"], ("124", "143"))
            self.assertEqual(r["fifo_read"], "through-the-fifo")  # the guest's own FIFO
            self.assertEqual(r["alive"], "written on the host")
            self.assertEqual(r["mknod_c"], "1")
            self.assertEqual(r["mknod_b"], "1")
            self.assertFalse(os.path.lexists(os.path.join(shared, "null")))
            self.assertFalse(os.path.lexists(os.path.join(shared, "loop")))
            self.assertTrue(stat.S_ISFIFO(os.lstat(os.path.join(shared, "fifo")).st_mode))
            # The guest runs as root; the daemon clears the bits all the same (FUSE_HANDLE_KILLPRIV).
            self.assertEqual(r["suid_before"], "6755")
            self.assertEqual(os.stat(os.path.join(shared, "suid")).st_mode & 0o7777, 0o755)
            self.assertEqual(os.stat(os.path.join(shared, "suid_trunc")).st_mode & 0o7777, 0o755)

    def test_guest_file_workload_on_the_shared_directory(self):
        self.run_workload([])

    def test_guest_file_workload_with_a_thread_pool_and_submounts(self):
        self.run_workload(["--thread-pool-size=4", "--announce-submounts", "--posix-lock"],
                          submount=True)

    def run_workload(self, extra_flags, submount=False):
        with qemu_guest.work_dir("fs") as work:
            shared = os.path.join(work, "shared")
            os.makedirs(os.path.join(shared, "host_dir"))
            with open(os.path.join(shared, "from_host.txt"), "w") as f:
                f.write("written on the host")
            for i in range(5):
                open(os.path.join(shared, "host_dir", f"h{i}"), "w").close()
            inner = os.path.join(shared, "inner")
            if submount:  # another file system inside the share
                os.makedirs(inner)
                subprocess.run(["mount", "-t", "tmpfs", "tmpfs", inner], check=True)
                self.addCleanup(subprocess.run, ["umount", "-l", inner])
            sock = os.path.join(work, "fs.sock")
            argv = [DAEMON, f"--socket-path={sock}", f"--shared-dir={shared}"] + extra_flags
            with qemu_guest.Daemon(argv, sock) as daemon:
                result = qemu_guest.run_guest(
                    GUEST_SCRIPT,
                    ["-chardev", f"socket,id=fs0,path={sock}",
                     "-device", "vhost-user-fs-pci,chardev=fs0,tag=share"],
                    modules=[], work=work, timeout=300, memory_mb=1024)
                self.assertTrue(daemon.alive(), daemon.read_log())
                log = daemon.read_log()
            self.assertFalse(result.timed_out, result.output[-3000:])
            r = result.results
            self.assertEqual(r.get("unmounted"), "yes", result.output[-3000:] + log[-2000:])
            self.assertEqual(r["host_file"], "written on the host")
            self.assertEqual(r["host_dir"], "5")
            with open(os.path.join(shared, "renamed"), "rb") as f:
                host_sha = hashlib.sha256(f.read()).hexdigest()
            self.assertEqual(r["big_sha"], host_sha)
            self.assertEqual(r["big_sha_reread"], host_sha)
            self.assertEqual(r["readlink"], "renamed")
            self.assertEqual(r["links"], "2")
            self.assertEqual(os.stat(os.path.join(shared, "hardlink")).st_ino,
                             os.stat(os.path.join(shared, "renamed")).st_ino)
            self.assertEqual(os.readlink(os.path.join(shared, "symlink")), "renamed")
            self.assertEqual(r["listed"], "3000")
            self.assertEqual(len(os.listdir(os.path.join(shared, "many"))), 3000)
            self.assertEqual(r["f2999"], "2999")
            self.assertEqual(r["writers"], str(4 * 64 * 65536))
            self.assertEqual(r["truncated"], "12345")
            self.assertEqual(r["mode"], "640")
            self.assertEqual(r["submounts"], "1" if submount else "0")
            with open(os.path.join(shared, "from_guest.txt")) as f:
                self.assertEqual(f.read(), "written in the guest\n")
            self.assertFalse(os.path.exists(os.path.join(shared, "gone")))


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
