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

Usage: fs_migration_e2e_test.py PATH_TO_vhost-user-fs (Bazel passes it).
"""
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None

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


class Qmp:
    """A QMP client on a Unix socket: one command at a time, events skipped."""

    def __init__(self, path, timeout=30):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.file = self.sock.makefile("rw")
        json.loads(self.file.readline())  # greeting
        self.command("qmp_capabilities")

    def command(self, name, **arguments):
        self.file.write(json.dumps({"execute": name, "arguments": arguments}) + "\n")
        self.file.flush()
        while True:
            reply = json.loads(self.file.readline())
            if "event" in reply:
                continue
            if "error" in reply:
                raise qemu_guest.GuestError(f"QMP {name}: {reply['error']}")
            return reply["return"]

    def close(self):
        self.sock.close()


class Qemu:
    """One QEMU process of the migration, its console collected line by line."""

    def __init__(self, argv, name):
        self.name = name
        self.lines = []
        self.seen = threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.PIPE, start_new_session=True)
        self.reader = threading.Thread(target=self._read)
        self.reader.start()

    def _read(self):
        for line in iter(self.proc.stdout.readline, b""):
            with self.seen:
                self.lines.append(line.decode(errors="replace"))
                self.seen.notify_all()

    def wait_for(self, text, timeout):
        deadline = time.time() + timeout
        with self.seen:
            while not any(text in line for line in self.lines):
                left = deadline - time.time()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self.seen.wait(min(left, 1))
        return True

    def type(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def output(self):
        with self.seen:
            return "".join(self.lines)

    def stop(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.reader.join()
        self.proc.stdout.close()
        self.proc.stdin.close()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class FsMigrationTest(unittest.TestCase):

    def test_open_files_survive_a_live_migration(self):
        qemu_guest.check_qemu()
        kernel, _ = qemu_guest.find_kernel()
        with qemu_guest.work_dir("fsmig") as work:
            shared = os.path.join(work, "shared")
            os.makedirs(shared)
            input_data = os.urandom(4 << 20)
            with open(os.path.join(shared, "input.bin"), "wb") as f:
                f.write(input_data)
            initrd = os.path.join(work, "initrd.img")
            with open(qemu_guest.base_initramfs([]), "rb") as f:
                base = f.read()
            with open(initrd, "wb") as f:
                f.write(base + qemu_guest.cpio_archive(
                    [("test.sh", "file", (GUEST_SCRIPT.encode(), 0o755))]))

            def qemu_argv(side):
                sock = os.path.join(work, f"{side}.sock")
                return [qemu_guest.QEMU, "-machine", "q35", "-accel", "tcg", "-cpu", "qemu64",
                        "-smp", "1", "-m", "512M",
                        "-object", "memory-backend-memfd,id=mem,size=512M,share=on",
                        "-numa", "node,memdev=mem", "-nodefaults", "-display", "none",
                        "-serial", "stdio", "-no-reboot",
                        "-kernel", kernel, "-initrd", initrd,
                        "-append", "console=ttyS0 panic=-1 quiet loglevel=4",
                        "-chardev", f"socket,id=fs0,path={sock}",
                        "-device", "vhost-user-fs-pci,chardev=fs0,tag=share",
                        "-qmp", f"unix:{os.path.join(work, side + '.qmp')},server=on,wait=off"]

            migration = os.path.join(work, "migration.sock")
            source_sock = os.path.join(work, "source.sock")
            dest_sock = os.path.join(work, "dest.sock")
            with contextlib.ExitStack() as stack:
                source_daemon = stack.enter_context(qemu_guest.Daemon(
                    [DAEMON, f"--socket-path={source_sock}", f"--shared-dir={shared}"],
                    source_sock))
                dest_daemon = stack.enter_context(qemu_guest.Daemon(
                    [DAEMON, f"--socket-path={dest_sock}", f"--shared-dir={shared}"], dest_sock))
                source = Qemu(qemu_argv("source"), "source")
                stack.callback(source.stop, 5)
                stack.callback(lambda: source.proc.poll() is None and os.killpg(
                    source.proc.pid, signal.SIGKILL))
                dest = Qemu(qemu_argv("dest") + ["-incoming", f"unix:{migration}"], "dest")
                stack.callback(dest.stop, 5)
                stack.callback(lambda: dest.proc.poll() is None and os.killpg(
                    dest.proc.pid, signal.SIGKILL))

                logs = lambda: (f"\n--- source console\n{source.output()[-3000:]}"
                                f"\n--- dest console\n{dest.output()[-3000:]}"
                                f"\n--- source daemon\n{source_daemon.read_log()[-3000:]}"
                                f"\n--- dest daemon\n{dest_daemon.read_log()[-3000:]}")
                self.assertTrue(source.wait_for("E2E-MIGRATE-NOW", 180), logs())

                source_qmp = Qmp(os.path.join(work, "source.qmp"))
                stack.callback(source_qmp.close)
                dest_qmp = Qmp(os.path.join(work, "dest.qmp"))
                stack.callback(dest_qmp.close)
                source_qmp.command("migrate", uri=f"unix:{migration}")
                deadline = time.time() + 180
                while True:
                    info = source_qmp.command("query-migrate")
                    if info.get("status") in ("completed", "failed", "cancelled"):
                        break
                    self.assertLess(time.time(), deadline, f"migration stuck: {info}{logs()}")
                    time.sleep(0.1)
                self.assertEqual(info.get("status"), "completed", f"{info}{logs()}")
                print(f"migration: downtime {info.get('downtime')} ms, total "
                      f"{info.get('total-time')} ms, {info.get('ram', {}).get('transferred')} "
                      f"bytes of RAM, {info.get('ram', {}).get('dirty-sync-count')} dirty syncs",
                      flush=True)
                self.assertEqual(dest_qmp.command("query-status")["status"], "running", logs())
                source_qmp.command("quit")

                dest.type("migrated\n")  # the guest's console is the destination's now
                self.assertTrue(dest.wait_for("E2E-END", 180), logs())
                dest.stop(60)
                # What the guest printed before the migration is on the source's console.
                result = qemu_guest.BootResult(source.output() + dest.output())
                self.assertTrue(dest_daemon.alive(), logs())
                source_log = source_daemon.read_log()
                dest_log = dest_daemon.read_log()
                final_logs = logs()

            r = result.results
            self.assertEqual(result.script_status, 0, final_logs)
            self.assertEqual(r.get("unmounted"), "yes", final_logs)
            self.assertEqual(r["resumed"], "migrated")
            # The source daemon saved the session, the destination loaded it, nothing dropped.
            self.assertIn("fs state:", source_log)
            self.assertIn("device state loaded", dest_log)
            self.assertIn(" 0 of them gone", dest_log)
            # Every byte written before and after, through the same fds, is on the host.
            with open(os.path.join(shared, "held.bin"), "rb") as f:
                held = f.read()
            self.assertEqual(len(held), 2 << 20)
            self.assertEqual(sha256(held[:1 << 20]), r["part1_sha"])
            self.assertEqual(sha256(held[1 << 20:]), r["part2_sha"])
            self.assertEqual(r["held_sha"], sha256(held))  # read back through held fd 5
            with open(os.path.join(shared, "held.log")) as f:
                self.assertEqual(f.read(), "before migration\nafter migration\n")
            self.assertEqual(r["log"], "before migration|after migration|")
            # Every read during the migration, and one after, saw the host file exactly.
            self.assertEqual(r["read_shas"].split(), [sha256(input_data)])
            self.assertGreater(int(r["reads"]), 0)
            print(f"{r['reads']} reads of a 4 MiB host file during the migration", flush=True)
            self.assertEqual(r["input_sha_after"], sha256(input_data))


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
