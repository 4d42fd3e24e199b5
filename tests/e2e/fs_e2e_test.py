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

# After a reboot and in a restarted QEMU: files the first boot wrote read back (a new boot has
# nothing cached), and each session reads the token the previous one wrote.
AGAIN_SCRIPT = r"""
set -e
mkdir -p /share
mount -t virtiofs share /share
echo "E2E-RESULT from_guest=$(cat /share/from_guest.txt)"
echo "E2E-RESULT renamed_sha=$(sha256sum /share/renamed | cut -d' ' -f1)"
echo "E2E-RESULT prev=$(cat /share/session 2>/dev/null || echo none)"
head -c 64 /dev/urandom | sha256sum | cut -d' ' -f1 > /share/session
echo "E2E-RESULT wrote=$(cat /share/session)"
sync
umount /share
echo "E2E-RESULT unmounted=yes"
"""

# The first boot runs GUEST_SCRIPT, a reboot AGAIN_SCRIPT.
REBOOT_SCRIPT = """if [ "$E2E_BOOT" = 1 ]; then sh /workload.sh; else sh /again.sh; fi"""

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

    # Then files written in the first boot read back after a reboot (the device reset under the
    # same connection) and in a restarted QEMU (a new front end of the same daemon process).
    def test_guest_file_workload_on_the_shared_directory_across_a_reboot_and_restart(self):
        self.run_workload([], reboot_and_restart=True)

    def test_guest_file_workload_with_a_thread_pool_and_submounts(self):
        self.run_workload(["--thread-pool-size=4", "--announce-submounts", "--posix-lock"],
                          submount=True)

    def run_workload(self, extra_flags, submount=False, reboot_and_restart=False):
        """Runs GUEST_SCRIPT and checks its results. With `reboot_and_restart`, the guest then
        reboots into AGAIN_SCRIPT and a second QEMU runs it against the same daemon."""
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
            devices = ["-chardev", f"socket,id=fs0,path={sock}",
                       "-device", "vhost-user-fs-pci,chardev=fs0,tag=share"]
            scripts = [("workload.sh", "file", (GUEST_SCRIPT.encode(), 0o755)),
                       ("again.sh", "file", (AGAIN_SCRIPT.encode(), 0o755))]
            with qemu_guest.Daemon(argv, sock) as daemon:
                if reboot_and_restart:
                    result = qemu_guest.run_guest(REBOOT_SCRIPT, devices, modules=[], work=work,
                                                  timeout=300, memory_mb=1024, boots=2,
                                                  extra_entries=scripts)
                    again = qemu_guest.run_guest_again(daemon, AGAIN_SCRIPT, devices, modules=[],
                                                       work=work, timeout=120, memory_mb=1024)
                else:
                    result = qemu_guest.run_guest(GUEST_SCRIPT, devices, modules=[], work=work,
                                                  timeout=300, memory_mb=1024)
                self.assertTrue(daemon.alive(), daemon.read_log())
                log = daemon.read_log()
            self.assertFalse(result.timed_out, result.output[-3000:])
            self.assertTrue(result.boots, result.output[-3000:])
            r = result.boots[0].results
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
            if reboot_and_restart:
                self.check_again(result.boots[1:] + again.boots, shared, host_sha, log)

    def check_again(self, boots, shared, host_sha, log):
        """The rebooted guest and the restarted QEMU read what the first boot wrote, and each the
        token the session before it wrote."""
        self.assertEqual(len(boots), 2, boots[-1].output[-3000:])
        for boot in boots:
            self.assertEqual(boot.script_status, 0, boot.output[-3000:] + log[-2000:])
            self.assertEqual(boot["from_guest"], "written in the guest")
            self.assertEqual(boot["renamed_sha"], host_sha)
            self.assertEqual(boot["unmounted"], "yes")
        rebooted, restarted = boots
        self.assertEqual(rebooted["prev"], "none")
        self.assertEqual(restarted["prev"], rebooted["wrote"])
        self.assertNotEqual(restarted["wrote"], rebooted["wrote"])
        with open(os.path.join(shared, "session")) as f:
            self.assertEqual(f.read().strip(), restarted["wrote"])


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
