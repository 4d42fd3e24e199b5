"""A guest using vhost-user-fs is live-migrated between two QEMU processes on this host, each
with its own daemon over the same shared directory, and goes on with the files it holds open.

The guest mounts the share, opens files (held as shell fds 3, 4 and 5), writes through them and
asks to be migrated; while QEMU migrates it (QMP `migrate`, pre-copy), a background loop keeps
reading a host file through virtiofs with the page cache dropped each time, so the daemon
writes guest memory the whole while (its dirty log must cover those pages, or the destination
holds stale data). On the destination, the guest writes more through the SAME fds (the
destination daemon restored their FUSE handles from the source's device state), reads back
through a held fd with its caches dropped, and unmounts. Every byte is checked on the host and
in the guest; QEMU's downtime is printed.

And what cannot migrate is refused cleanly: with --posix-lock, a guest holding a host POSIX
lock (fs_guest_tool) makes the source daemon refuse to save its session, the migration fails
and the guest runs on at the source; once the lock is released, it migrates.

Usage: fs_migration_e2e_test.py PATH_TO_vhost-user-fs PATH_TO_fs_guest_tool (Bazel passes
them).
"""
import contextlib
import hashlib
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
TOOL = None

GUEST_SCRIPT = r"""
set -e
mkdir -p /share
mount -t virtiofs share /share
cd /share
exec 3<>held.bin
exec 4>>held.log
exec 5<held.bin
dd if=/dev/urandom of=/tmp/part1 bs=64k count=16 2>/dev/null
cat /tmp/part1 >&3
echo "before migration" >&4
sync
echo "E2E-RESULT part1_sha=$(sha256sum /tmp/part1 | cut -d' ' -f1)"
# The daemon writes guest memory (READ replies) all through the migration.
(while [ ! -e /tmp/stop ]; do
   echo 3 > /proc/sys/vm/drop_caches
   sha256sum /share/input.bin | cut -d' ' -f1 >> /tmp/reads
 done) &
echo "E2E-MIGRATE-NOW"
read -r go
touch /tmp/stop
wait
echo "E2E-RESULT resumed=$go"
dd if=/dev/urandom of=/tmp/part2 bs=64k count=16 2>/dev/null
cat /tmp/part2 >&3
echo "after migration" >&4
sync
echo "E2E-RESULT part2_sha=$(sha256sum /tmp/part2 | cut -d' ' -f1)"
echo 3 > /proc/sys/vm/drop_caches
echo "E2E-RESULT held_sha=$(sha256sum <&5 | cut -d' ' -f1)"
echo "E2E-RESULT log=$(cat held.log | tr '\n' '|')"
echo "E2E-RESULT read_shas=$(sort -u /tmp/reads | tr '\n' ' ')"
echo "E2E-RESULT reads=$(wc -l < /tmp/reads)"
echo "E2E-RESULT input_sha_after=$(sha256sum /share/input.bin | cut -d' ' -f1)"
exec 3>&- 4>&- 5<&-
cd /
umount /share
echo "E2E-RESULT unmounted=yes"
"""


def sha256(data):
    return hashlib.sha256(data).hexdigest()


# The guest takes a host lock through the share; the first migration must fail, the guest goes
# on at the source, drops the lock, and the second migration carries its open file.
LOCK_SCRIPT = r"""
set -e
mkdir -p /share
mount -t virtiofs share /share
cd /share
exec 3<>held.txt
echo "before" >&3
/bin/fs_guest_tool lock /share/locked > /tmp/locker.out &
locker=$!
while ! grep -q locked=yes /tmp/locker.out 2>/dev/null; do
  kill -0 $locker || { cat /tmp/locker.out; exit 1; }
  sleep 0.1
done
cat /tmp/locker.out
echo "E2E-MIGRATE-NOW"
read -r first
echo "E2E-RESULT first=$first"
echo "at the source" >&3
kill $locker
wait $locker || true
sync
echo "E2E-MIGRATE-AGAIN"
read -r second
echo "E2E-RESULT second=$second"
echo "after" >&3
exec 3>&-
echo "E2E-RESULT held=$(cat held.txt | tr '\n' '|')"
cd /
umount /share
echo "E2E-RESULT unmounted=yes"
"""


class FsMigrationTest(unittest.TestCase):

    def setUp(self):
        qemu_guest.check_qemu()
        self.kernel, _ = qemu_guest.find_kernel()
        self.stack = contextlib.ExitStack()
        self.addCleanup(self.stack.close)
        self.work = self.stack.enter_context(qemu_guest.work_dir("fsmig"))
        self.shared = os.path.join(self.work, "shared")
        os.makedirs(self.shared)

    def initrd(self, script, extra_entries=()):
        path = os.path.join(self.work, "initrd.img")
        with open(qemu_guest.base_initramfs([]), "rb") as f:
            base = f.read()
        with open(path, "wb") as f:
            f.write(base + qemu_guest.cpio_archive(
                [("test.sh", "file", (script.encode(), 0o755))] + list(extra_entries)))
        return path

    def daemon(self, name, flags=()):
        sock = os.path.join(self.work, f"{name}.sock")
        return self.stack.enter_context(qemu_guest.Daemon(
            [DAEMON, f"--socket-path={sock}", f"--shared-dir={self.shared}"] + list(flags), sock))

    def qemu(self, name, daemon, initrd, incoming=None):
        """A QEMU on `daemon`'s socket (the destination's with -incoming), killed at the end."""
        argv = [qemu_guest.QEMU, "-machine", "q35", "-accel", "tcg", "-cpu", "qemu64",
                "-smp", "1", "-m", "512M",
                "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
                "-numa", "node,memdev=mem", "-nodefaults", "-display", "none",
                "-serial", "stdio", "-no-reboot",
                "-kernel", self.kernel, "-initrd", initrd,
                "-append", "console=ttyS0 panic=-1 quiet loglevel=4",
                "-chardev", f"socket,id=fs0,path={daemon.socket_path}",
                "-device", "vhost-user-fs-pci,chardev=fs0,tag=share"]
        if incoming:
            argv += ["-incoming", f"unix:{incoming}"]
        vm = qemu_guest.QemuProcess(argv, qmp=True)
        vm.name = name
        self.stack.callback(vm.stop)
        return vm

    def migrate(self, source_qmp, destination, logs):
        """Migrates to `destination` (a Unix socket path); returns query-migrate's last answer."""
        qemu_guest.start_migration(source_qmp, f"unix:{destination}")
        info = qemu_guest.wait_migration(source_qmp, 180)
        self.assertIn(info.get("status"), ("completed", "failed", "cancelled"),
                      f"migration stuck: {info}{logs()}")
        return info

    @staticmethod
    def logs_of(vms, daemons):
        def logs():
            out = ""
            for vm in vms:
                out += f"\n--- {vm.name} console\n{vm.output()[-3000:]}"
            for name, daemon in daemons:
                out += f"\n--- {name} daemon\n{daemon.read_log()[-3000:]}"
            return out
        return logs

    def test_open_files_survive_a_live_migration(self):
        input_data = os.urandom(4 << 20)
        with open(os.path.join(self.shared, "input.bin"), "wb") as f:
            f.write(input_data)
        initrd = self.initrd(GUEST_SCRIPT)
        source_daemon, dest_daemon = self.daemon("source"), self.daemon("dest")
        migration = os.path.join(self.work, "migration.sock")
        source = self.qemu("source", source_daemon, initrd)
        dest = self.qemu("dest", dest_daemon, initrd, incoming=migration)
        logs = self.logs_of([source, dest], [("source", source_daemon), ("dest", dest_daemon)])
        self.assertTrue(source.wait_for("E2E-MIGRATE-NOW", 180), logs())

        source_qmp, dest_qmp = source.qmp, dest.qmp
        info = self.migrate(source_qmp, migration, logs)
        self.assertEqual(info.get("status"), "completed", f"{info}{logs()}")
        print(f"migration: downtime {info.get('downtime')} ms, total "
              f"{info.get('total-time')} ms, {info.get('ram', {}).get('transferred')} "
              f"bytes of RAM, {info.get('ram', {}).get('dirty-sync-count')} dirty syncs",
              flush=True)
        self.assertEqual(qemu_guest.wait_running(dest_qmp, 60), "running", logs())
        source_qmp.command("quit")

        dest.type("migrated\n")  # the guest's console is the destination's now
        self.assertTrue(dest.wait_for("E2E-END", 180), logs())
        dest.stop(60)
        # What the guest printed before the migration is on the source's console.
        result = qemu_guest.BootResult(source.output() + dest.output())
        self.assertTrue(dest_daemon.alive(), logs())
        source_log, dest_log = source_daemon.read_log(), dest_daemon.read_log()

        r = result.results
        self.assertEqual(result.script_status, 0, logs())
        self.assertEqual(r.get("unmounted"), "yes", logs())
        self.assertEqual(r["resumed"], "migrated")
        # The source daemon saved the session, the destination loaded it, nothing dropped.
        self.assertIn("fs state:", source_log)
        self.assertIn("device state loaded", dest_log)
        self.assertIn(" 0 of them gone", dest_log)
        # Every byte written before and after, through the same fds, is on the host.
        with open(os.path.join(self.shared, "held.bin"), "rb") as f:
            held = f.read()
        self.assertEqual(len(held), 2 << 20)
        self.assertEqual(sha256(held[:1 << 20]), r["part1_sha"])
        self.assertEqual(sha256(held[1 << 20:]), r["part2_sha"])
        self.assertEqual(r["held_sha"], sha256(held))  # read back through held fd 5
        with open(os.path.join(self.shared, "held.log")) as f:
            self.assertEqual(f.read(), "before migration\nafter migration\n")
        self.assertEqual(r["log"], "before migration|after migration|")
        # Every read during the migration, and one after, saw the host file exactly.
        self.assertEqual(r["read_shas"].split(), [sha256(input_data)])
        self.assertGreater(int(r["reads"]), 0)
        print(f"{r['reads']} reads of a 4 MiB host file during the migration", flush=True)
        self.assertEqual(r["input_sha_after"], sha256(input_data))

    def test_held_host_locks_refuse_the_migration_until_released(self):
        # With its libraries when it has any (sanitizer builds link dynamically).
        tool = qemu_guest.host_binary_entries(TOOL)
        initrd = self.initrd(LOCK_SCRIPT, tool)
        source_daemon = self.daemon("source", ["--posix-lock", "--thread-pool-size=2"])
        dest_daemon = self.daemon("dest", ["--posix-lock", "--thread-pool-size=2"])
        first = os.path.join(self.work, "first.sock")
        source = self.qemu("source", source_daemon, initrd)
        dest1 = self.qemu("dest1", dest_daemon, initrd, incoming=first)
        logs = self.logs_of([source, dest1], [("source", source_daemon), ("dest", dest_daemon)])
        self.assertTrue(source.wait_for("E2E-MIGRATE-NOW", 180), logs())
        source_qmp = source.qmp
        info = self.migrate(source_qmp, first, logs)
        self.assertEqual(info.get("status"), "failed", f"{info}{logs()}")
        self.assertIn("cannot migrate", source_daemon.read_log(), logs())
        # The guest runs on at the source (QEMU restarts it a moment after query-migrate says
        # "failed"); the destination QEMU gave up, its daemon did not.
        self.assertEqual(qemu_guest.wait_running(source_qmp, 60), "running", logs())
        dest1.stop(60)
        self.assertTrue(source_daemon.alive() and dest_daemon.alive(), logs())
        source.type("refused\n")
        self.assertTrue(source.wait_for("E2E-MIGRATE-AGAIN", 60), logs())

        second = os.path.join(self.work, "second.sock")
        dest2 = self.qemu("dest2", dest_daemon, initrd, incoming=second)
        logs = self.logs_of([source, dest1, dest2],
                            [("source", source_daemon), ("dest", dest_daemon)])
        info = self.migrate(source_qmp, second, logs)
        self.assertEqual(info.get("status"), "completed", f"{info}{logs()}")
        source_qmp.command("quit")
        dest2.type("migrated\n")
        self.assertTrue(dest2.wait_for("E2E-END", 180), logs())
        dest2.stop(60)
        result = qemu_guest.BootResult(source.output() + dest2.output())
        r = result.results
        self.assertEqual(result.script_status, 0, logs())
        self.assertEqual(r["locked"], "yes")
        self.assertEqual(r["first"], "refused")
        self.assertEqual(r["second"], "migrated")
        self.assertEqual(r["held"], "before|at the source|after|")
        with open(os.path.join(self.shared, "held.txt")) as f:
            self.assertEqual(f.read(), "before\nat the source\nafter\n")
        self.assertEqual(r.get("unmounted"), "yes", logs())


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    TOOL = os.path.abspath(sys.argv.pop(1))
    unittest.main()
