"""A Linux guest's virtio_blk driver uses a disk from our vhost-user-blk: size and serial, an ext2
file system written, checked after a remount and from the host, discard returning space to the
host file, read-only disks, and two queues.

Usage: blk_e2e_test.py PATH_TO_vhost-user-blk (Bazel passes it).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
MODULES = ["virtio_blk", "crc32c_generic", "ext4"]
DISK_MB = 64

FS_SCRIPT = r"""
set -e
echo "E2E-RESULT sectors=$(cat /sys/block/vda/size)"
echo "E2E-RESULT serial=$(cat /sys/block/vda/serial)"
echo "E2E-RESULT ro=$(cat /sys/block/vda/ro)"
echo "E2E-RESULT queues=$(ls /sys/block/vda/mq | wc -l)"
echo "E2E-RESULT discard_max=$(cat /sys/block/vda/queue/discard_max_bytes)"
mke2fs -q /dev/vda >/dev/null
mkdir -p /mnt && mount -t ext2 /dev/vda /mnt
dd if=/dev/urandom of=/mnt/big bs=1M count=8 2>/dev/null
echo "checksum me" > /mnt/small
sha256sum /mnt/big | cut -d' ' -f1 > /tmp/before
umount /mnt
mount -t ext2 /dev/vda /mnt
echo "E2E-RESULT same_after_remount=$([ "$(sha256sum /mnt/big | cut -d' ' -f1)" = "$(cat /tmp/before)" ] && echo yes || echo no)"
echo "E2E-RESULT small=$(cat /mnt/small)"
echo "E2E-RESULT big_sha=$(cat /tmp/before)"
rm /mnt/big
sync
fstrim -v /mnt | sed 's/^/E2E-RESULT fstrim=/'
umount /mnt
sync
"""

# After a reboot and in a restarted QEMU: the file system written in the first boot reads back
# (nothing is cached in a new boot), and each session reads the token the previous one wrote.
AGAIN_SCRIPT = r"""
set -e
mount -t ext2 /dev/vda /mnt
echo "E2E-RESULT small=$(cat /mnt/small)"
echo "E2E-RESULT prev=$(cat /mnt/session 2>/dev/null || echo none)"
head -c 64 /dev/urandom | sha256sum | cut -d' ' -f1 > /mnt/session
echo "E2E-RESULT wrote=$(cat /mnt/session)"
umount /mnt
sync
"""

# The first boot runs FS_SCRIPT, a reboot AGAIN_SCRIPT.
REBOOT_SCRIPT = """if [ "$E2E_BOOT" = 1 ]; then sh /fs.sh; else sh /again.sh; fi"""

RO_SCRIPT = r"""
echo "E2E-RESULT ro=$(cat /sys/block/vda/ro)"
echo "E2E-RESULT first=$(dd if=/dev/vda bs=16 count=1 2>/dev/null)"
if dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct 2>/dev/null; then
  echo "E2E-RESULT write=succeeded"
else
  echo "E2E-RESULT write=failed"
fi
"""


class BlkGuestTest(unittest.TestCase):

    def boot(self, script, extra_args=(), device_opts="", smp=1, image_setup=None, boots=1,
             restart_script=None):
        """Runs `script` in a guest (`boots` times, rebooting in between) and, with
        `restart_script`, that in a second QEMU against the same daemon. Returns each boot's
        results, the image's allocated bytes and its content."""
        with qemu_guest.work_dir("blk") as work:
            image = os.path.join(work, "disk.img")
            with open(image, "wb") as f:
                f.truncate(DISK_MB << 20)
                if image_setup:
                    image_setup(f)
            sock = os.path.join(work, "blk.sock")
            argv = [DAEMON, f"--socket-path={sock}", f"--blk-file={image}"] + list(extra_args)
            devices = (["-chardev", f"socket,id=blk0,path={sock}",
                        "-device", f"vhost-user-blk-pci,chardev=blk0{device_opts}"]
                       + (["-smp", str(smp)] if smp > 1 else []))
            scripts = [("fs.sh", "file", (FS_SCRIPT.encode(), 0o755)),
                       ("again.sh", "file", (AGAIN_SCRIPT.encode(), 0o755))]
            with qemu_guest.Daemon(argv, sock) as daemon:
                results = [qemu_guest.run_guest(script, devices, modules=MODULES, work=work,
                                                boots=boots, extra_entries=scripts)]
                if restart_script:
                    results.append(qemu_guest.run_guest_again(daemon, restart_script, devices,
                                                              modules=MODULES, work=work))
                log = daemon.read_log()
                self.assertTrue(daemon.alive(), log)
            allocated = os.stat(image).st_blocks * 512
            with open(image, "rb") as f:
                content = f.read()
        runs = []
        for result in results:
            self.assertFalse(result.timed_out, result.output[-3000:] + log[-2000:])
            runs += result.boots
        self.assertEqual(len(runs), boots + bool(restart_script), results[-1].output[-3000:])
        for run in runs:
            self.assertEqual(run.script_status, 0, run.output[-3000:] + log[-2000:])
        return [run.results for run in runs], allocated, content

    def test_file_system_round_trip_and_discard_then_a_reboot_and_a_qemu_restart(self):
        (r, rebooted, restarted), allocated, content = self.boot(
            REBOOT_SCRIPT, ["--serial=e2e-disk", "--num-queues=2"], ",num-queues=2", smp=2,
            boots=2, restart_script=AGAIN_SCRIPT)
        self.assertEqual(int(r["sectors"]), DISK_MB * 2048)
        self.assertEqual(r["serial"], "e2e-disk")
        self.assertEqual(r["ro"], "0")
        self.assertEqual(r["queues"], "2")
        self.assertGreater(int(r["discard_max"]), 0)
        self.assertEqual(r["same_after_remount"], "yes")
        self.assertEqual(r["small"], "checksum me")
        self.assertIn("trimmed", r["fstrim"])
        # The 8 MiB file was deleted and trimmed: the host file gave that space back.
        self.assertLess(allocated, 6 << 20, f"{allocated} bytes still allocated")
        # What the guest wrote is in the host file: the ext2 superblock magic at 1024 + 56.
        self.assertEqual(content[1024 + 56:1024 + 58], b"\x53\xef")
        # The daemon served the rebooted guest and the restarted QEMU: each read the file system
        # and the previous session's token, and the last token is in the host file.
        self.assertEqual(rebooted["small"], "checksum me")
        self.assertEqual(rebooted["prev"], "none")
        self.assertEqual(restarted["small"], "checksum me")
        self.assertEqual(restarted["prev"], rebooted["wrote"])
        self.assertNotEqual(restarted["wrote"], rebooted["wrote"])
        self.assertIn(restarted["wrote"].encode(), content)

    def test_read_only_disk(self):
        def mark(f):
            f.seek(0)
            f.write(b"HOST-WROTE-THIS!")

        (r,), _, content = self.boot(RO_SCRIPT, ["--read-only"], image_setup=mark)
        self.assertEqual(r["ro"], "1")
        self.assertEqual(r["first"], "HOST-WROTE-THIS!")
        self.assertEqual(r["write"], "failed")
        self.assertEqual(content[:16], b"HOST-WROTE-THIS!")


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
