"""Live migration of a guest using vhost-user-blk: two QEMU processes on this host, each with its
own daemon on the same image file, QMP `migrate` from one to the other while the guest writes and
checks blocks. Once QEMU has sent all of guest memory once, the guest reads 64 MiB of the disk
into its page cache: the daemon writes those pages after QEMU sent them, so they reach the
destination only through the daemon's dirty log (VHOST_F_LOG_ALL), and the guest's check of its
cache after the switch is the log's proof (with the log's data marking disabled, ~95% of the
blocks come out wrong). On split rings and on packed rings (the packed descriptor ring's
written-back descriptors are logged through the memory table). A daemon without dirty logging (rng) leaves QEMU refusing to migrate
with an error, guest and daemon running on; QEMU's vhost-user-rng is not migratable at all, so
its error names that rather than the missing VHOST_F_LOG_ALL.

Usage: blk_migration_e2e_test.py PATH_TO_vhost-user-blk PATH_TO_vhost-user-rng (Bazel passes
them).
"""
import hashlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

BLK_DAEMON = None
RNG_DAEMON = None
MODULES = ["virtio_blk"]
MEMORY_MB = 256
BLOCK = 64 << 10
CACHED_BLOCKS = 1024  # the first 64 MiB: host-written, read into the guest's page cache
WRITTEN_BLOCKS = 256  # the next 16 MiB: written and verified by the guest across the migration

# Runs on the source, then (after `migrate`) on the destination. A background loop writes fresh
# blocks with direct I/O and reads each back, all along; another rewrites 16 MiB of tmpfs so that
# pre-copy cannot converge yet. Once QEMU has sent all of guest memory once, the host says "fill"
# on the source's console: the guest reads 64 MiB of host-written blocks into its page cache,
# which the daemon writes (DMA) into pages QEMU sent already, so the destination sees them only
# through the dirty log. (init_on_alloc=0 on the kernel command line: the kernel's zeroing of
# each page it allocates would dirty those pages for QEMU too and hide a missing log.) Then the
# churn stops and the host lets the migration finish; it answers "go" on the destination's
# console once the migration completed; then every cached block is checked against the host's
# checksums without touching the disk, and every block written is read back from the disk.
SCRIPT = r"""
exec 3< /dev/vda  # Linux drops a block device's page cache when its last user closes it
( k=0
  while [ ! -e /tmp/stop ]; do
    s=$((%(written0)d + k %% %(written)d))
    dd if=/dev/urandom of=/tmp/w bs=64k count=1 2>/dev/null
    sum=$(md5sum < /tmp/w | cut -c1-32)
    dd if=/tmp/w of=/dev/vda bs=64k seek=$s count=1 oflag=direct conv=notrunc 2>/dev/null
    got=$(dd if=/dev/vda bs=64k skip=$s count=1 iflag=direct 2>/dev/null | md5sum | cut -c1-32)
    [ "$got" = "$sum" ] || echo "E2E-RESULT live_mismatch=$s"
    echo "$s $sum" >> /tmp/written
    k=$((k + 1)); echo $k > /tmp/rounds
  done ) &
( while [ ! -e /tmp/converge ]; do dd if=/dev/zero of=/tmp/churn bs=1M count=16 2>/dev/null; done ) &
echo "E2E-MIGRATE-NOW"
read -r fill
k=0
while [ $k -lt %(cached)d ]; do
  dd if=/dev/vda of=/dev/null bs=64k skip=$k count=16 2>/dev/null
  k=$((k + 16))
done
touch /tmp/converge
rm -f /tmp/churn
echo "E2E-FILLED"
read -r go
touch /tmp/stop
wait
echo "E2E-RESULT rounds=$(cat /tmp/rounds)"
bad=0; k=0
while [ $k -lt %(cached)d ]; do
  got=$(dd if=/dev/vda bs=64k skip=$k count=1 2>/dev/null | md5sum | cut -c1-32)
  [ "$got" = "$(sed -n "$((k + 1))p" /sums)" ] || { bad=$((bad + 1)); echo "E2E-RESULT cache_mismatch=$k"; }
  k=$((k + 1))
done
echo "E2E-RESULT cache_bad=$bad"
bad=0; n=0
awk '{last[$1] = $2} END {for (s in last) print s, last[s]}' /tmp/written > /tmp/last
while read -r s sum; do
  got=$(dd if=/dev/vda bs=64k skip=$s count=1 iflag=direct 2>/dev/null | md5sum | cut -c1-32)
  [ "$got" = "$sum" ] || { bad=$((bad + 1)); echo "E2E-RESULT written_mismatch=$s"; }
  n=$((n + 1))
done < /tmp/last
echo "E2E-RESULT written_bad=$bad"
echo "E2E-RESULT written_blocks=$n"
""" % {"cached": CACHED_BLOCKS, "written0": CACHED_BLOCKS, "written": WRITTEN_BLOCKS}

# A guest that idles until the host says so (for the refused migration).
IDLE_SCRIPT = r"""
echo "E2E-MIGRATE-NOW"
read -r go
echo "E2E-RESULT still_running=yes"
"""


class Qemu(qemu_guest.QemuProcess):
    """One QEMU process of the migration, with its QMP client (`qmp`)."""

    def __init__(self, work, name, devices, initrd, incoming=None):
        kernel, _ = qemu_guest.find_kernel()
        argv = [qemu_guest.QEMU, "-machine", "q35", "-accel", "tcg", "-cpu", "qemu64",
                "-smp", "1", "-m", f"{MEMORY_MB}M",
                "-object", f"memory-backend-memfd,id=mem,size={MEMORY_MB}M,share=on",
                "-numa", "node,memdev=mem", "-nodefaults", "-display", "none",
                "-serial", "stdio", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
                # init_on_alloc=0: Debian's kernel zeroes every page it allocates, which would
                # mark the page cache's pages dirty for QEMU just before the daemon fills them
                # and hide a missing dirty log.
                "-append", "console=ttyS0 panic=-1 quiet loglevel=4 init_on_alloc=0"] + list(devices)
        if incoming:
            argv += ["-incoming", incoming]
        super().__init__(argv, qmp=True)


def initramfs(work, script, extra=()):
    with open(qemu_guest.base_initramfs(MODULES), "rb") as f:
        data = f.read()
    path = os.path.join(work, "initrd.img")
    entries = [("test.sh", "file", (script.encode(), 0o755))] + list(extra)
    with open(path, "wb") as f:
        f.write(data + qemu_guest.cpio_archive(entries))
    return path


class BlkMigrationTest(unittest.TestCase):

    def test_guest_io_survives_a_live_migration_between_two_daemons(self):
        self.check_live_migration(packed=False)

    def test_the_same_on_packed_rings(self):
        self.check_live_migration(packed=True)

    def check_live_migration(self, packed):
        qemu_guest.check_qemu()
        with qemu_guest.work_dir("blkmig") as work:
            image = os.path.join(work, "disk.img")
            content = os.urandom(CACHED_BLOCKS * BLOCK)
            with open(image, "wb") as f:
                f.write(content)
                f.truncate(96 << 20)
            sums = "".join(hashlib.md5(content[i * BLOCK:(i + 1) * BLOCK]).hexdigest() + "\n"
                           for i in range(CACHED_BLOCKS))
            initrd = initramfs(work, SCRIPT, [("sums", "file", (sums.encode(), 0o644))])
            socks = [os.path.join(work, f"{side}.sock") for side in ("src", "dst")]
            migration = os.path.join(work, "migration.sock")

            def devices(sock):
                return ["-chardev", f"socket,id=blk0,path={sock}",
                        "-device", "vhost-user-blk-pci,chardev=blk0,id=disk"
                        + (",packed=on" if packed else "")]

            ring = ["--packed-ring"] if packed else []
            with qemu_guest.Daemon([BLK_DAEMON, f"--socket-path={socks[0]}",
                                    f"--blk-file={image}"] + ring, socks[0]) as src_daemon, \
                    qemu_guest.Daemon([BLK_DAEMON, f"--socket-path={socks[1]}",
                                       f"--blk-file={image}"] + ring, socks[1]) as dst_daemon:
                src = Qemu(work, "src", devices(socks[0]), initrd)
                dst = Qemu(work, "dst", devices(socks[1]), initrd, incoming=f"unix:{migration}")
                try:
                    self.assertTrue(src.wait_for("E2E-MIGRATE-NOW", 180), src.output()[-3000:])
                    # With the guest's churn, no switchover fits in 1 ms: pre-copy goes on
                    # (QEMU keeps sending what the guest dirties) until the cache is filled. A
                    # modest bandwidth leaves TCG's vCPU time to run meanwhile.
                    src.qmp.command("migrate-set-parameters",
                                    **{"max-bandwidth": 16 << 20, "downtime-limit": 1})
                    start = time.time()
                    qemu_guest.start_migration(src.qmp, f"unix:{migration}")
                    # All of guest memory went out once (the second bitmap sync): fill.
                    info = qemu_guest.wait_migration(src.qmp, 300, syncs=2)
                    self.assertEqual(info.get("status"), "active", info)
                    src.type("fill\n")
                    self.assertTrue(src.wait_for("E2E-FILLED", 300),
                                    f"{src.output()[-3000:]}\n{src.qmp.command('query-migrate')}")
                    info = src.qmp.command("query-migrate")
                    self.assertEqual(info.get("status"), "active", info)
                    src.qmp.command("migrate-set-parameters",
                                    **{"max-bandwidth": 128 << 20, "downtime-limit": 300})
                    info = qemu_guest.wait_migration(src.qmp, 300)
                    wall = time.time() - start
                    logs = src_daemon.read_log()[-2000:] + dst_daemon.read_log()[-2000:]
                    self.assertEqual(info.get("status"), "completed", f"{info}\n{logs}")
                    print(f"migration: downtime {info.get('downtime')} ms, total "
                          f"{info.get('total-time')} ms ({wall:.1f} s wall), "
                          f"{info['ram']['transferred'] >> 20} MiB sent, "
                          f"{info['ram'].get('dirty-sync-count')} dirty syncs", flush=True)
                    self.assertEqual(qemu_guest.wait_running(dst.qmp, 60), "running")
                    src.qmp.command("quit")
                    dst.type("go\n")
                    self.assertIsNotNone(dst.wait_exit(600), dst.output()[-3000:])
                    # The source daemon logged while QEMU copied; the destination served after.
                    self.assertIn("dirty-page logging on", src_daemon.read_log())
                    for daemon in (src_daemon, dst_daemon):
                        self.assertEqual("(packed rings)" in daemon.read_log(), packed)
                    self.assertTrue(src_daemon.alive() and dst_daemon.alive())
                finally:
                    src.stop()
                    dst.stop()
        result = qemu_guest.BootResult(src.output() + dst.output())
        out = dst.output()[-3000:]
        self.assertEqual(result.script_status, 0, out)
        print(f"guest: {result['rounds']} blocks written and checked while migrating",
              flush=True)
        self.assertNotIn("live_mismatch", result.results, out)
        self.assertEqual(result["cache_bad"], "0", out)
        self.assertEqual(result["written_bad"], "0", out)
        self.assertGreater(int(result["written_blocks"]), 0, out)

    def test_a_daemon_without_dirty_logging_is_refused_cleanly(self):
        qemu_guest.check_qemu()
        with qemu_guest.work_dir("rngmig") as work:
            initrd = initramfs(work, IDLE_SCRIPT)
            sock = os.path.join(work, "rng.sock")
            with qemu_guest.Daemon([RNG_DAEMON, f"--socket-path={sock}"], sock) as daemon:
                src = Qemu(work, "src", ["-chardev", f"socket,id=rng0,path={sock}",
                                         "-device", "vhost-user-rng-pci,chardev=rng0"], initrd)
                try:
                    self.assertTrue(src.wait_for("E2E-MIGRATE-NOW", 180), src.output()[-3000:])
                    reply = src.qmp.reply("migrate",
                                            uri=f"unix:{os.path.join(work, 'nowhere.sock')}")
                    self.assertIn("error", reply)
                    print(f"refused: {reply['error']['desc']}", flush=True)
                    self.assertEqual(src.qmp.command("query-status")["status"], "running")
                    src.type("go\n")
                    self.assertIsNotNone(src.wait_exit(120), src.output()[-3000:])
                    self.assertTrue(daemon.alive(), daemon.read_log()[-2000:])
                finally:
                    src.stop()
        result = qemu_guest.BootResult(src.output())
        self.assertEqual(result["still_running"], "yes", src.output()[-3000:])


if __name__ == "__main__":
    BLK_DAEMON = os.path.abspath(sys.argv.pop(1))
    RNG_DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
