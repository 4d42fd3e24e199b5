"""vhost-user-blk killed and restarted under a running guest loses no I/O (issue 14).

A guest writes a checksummed block stream to its disk (blk_guest_tool: every 4 KiB block holds
its number, the pass and a crc32 of a payload derived from both), pass after pass, or reads and
checks one the host wrote, round after round, while the host SIGKILLs the daemon at random
moments and starts it again with the same arguments. QEMU reconnects
(`-chardev socket,...,reconnect-ms=200`) and hands the new daemon its inflight region; the
daemon resubmits what the old one had taken but not completed. At least MIN_RESTARTS times, and
on until some kill has caught requests in flight (at most MAX_RESTARTS). Then the host writes
STOP into the disk's last block, the guest ends its pass and checks every block.

Asserted: the guest saw no I/O error (the tool's and the kernel's), every block matches (in the
guest and in the image from the host), every restarted daemon was handed the inflight region,
and some daemon resubmitted requests (so this fails without the inflight tracking).

The daemon serves with `--direct=on`: each request then waits on the host's disk for a while, as
on a real device, so a kill at a random moment catches some in flight now and then (1 to 7 kills
in 10 here, depending on the load). Through the page cache a request takes microseconds and
hardly any kill does (measured: none in 60 for reads).

Each cycle waits on observable events, never on fixed sleeps: the restarted daemon has served
I/O when the image's access or modification time, set to 0 right after the kill, changes
(reads update the atime under relatime, writes the mtime). That time stamp also gives the time
from the SIGKILL to the first request served again. Only the moment of each kill after such a
point is random (seeded; the seed is printed; BLK_CRASH_SEED=N repeats it). Every other kill is
aimed: after its random delay it waits for the first moment the daemon holds requests in its
io_uring (its rings' fdinfo), so kills mid-request are not left to chance; the figures printed
say how many kills of each kind led to a resubmission.

Usage: blk_crash_e2e_test.py PATH_TO_vhost-user-blk PATH_TO_blk_guest_tool (Bazel passes them).
"""
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
TOOL = None
MODULES = ["virtio_blk"]
DISK_MB = 16
BLOCK = 4096
MIN_RESTARTS = 20
MAX_RESTARTS = 60
KILL_DELAY_S = 0.3  # a kill comes up to this long after the restarted daemon served I/O
AIM_S = 1.0  # how long an aimed kill waits for the daemon to hold requests
SYNC_TIMEOUT_S = 60  # a guard against a hang, not a measurement
RECONNECT_MS = 200

WRITE_SCRIPT = r"""
echo E2E-WORKLOAD-START
out=$(/bin/blk_guest_tool write /dev/vda); status=$?
echo "$out"
echo "E2E-RESULT workload_status=$status"
passes=$(echo "$out" | sed -n 's/^E2E-RESULT passes=//p')
/bin/blk_guest_tool verify /dev/vda "$passes"
echo "E2E-RESULT verify_status=$?"
echo "E2E-RESULT kernel_io_errors=$(dmesg | grep -c 'I/O error')"
"""

READ_SCRIPT = r"""
echo E2E-WORKLOAD-START
/bin/blk_guest_tool read /dev/vda 1
echo "E2E-RESULT workload_status=$?"
echo "E2E-RESULT passes=1"
/bin/blk_guest_tool verify /dev/vda 1
echo "E2E-RESULT verify_status=$?"
echo "E2E-RESULT kernel_io_errors=$(dmesg | grep -c 'I/O error')"
"""


def first_served_ns(image):
    """When the daemon first touched the image since its times were set to 0, or None."""
    st = os.stat(image)
    stamps = [t for t in (st.st_atime_ns, st.st_mtime_ns) if t != 0]
    return min(stamps) if stamps else None


def uring_fdinfo(pid):
    """The fdinfo files of the daemon's io_uring rings (made at start-up, one per queue)."""
    paths = []
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return []  # not ours to look into: aimed kills become random ones
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[io_uring]":
                paths.append(f"/proc/{pid}/fdinfo/{fd}")
        except OSError:
            pass
    return paths


def requests_in_rings(fdinfos):
    """Requests the daemon has submitted to its rings and not yet reaped: chains it has taken
    and not completed."""
    held = 0
    for path in fdinfos:
        with open(path) as f:
            info = f.read()
        sq_head = re.search(r"^SqHead:\s*(\d+)", info, re.M)
        cq_head = re.search(r"^CqHead:\s*(\d+)", info, re.M)
        if sq_head is None or cq_head is None:
            # The kernel leaves the ring out while the daemon holds its lock, in io_uring_enter
            # submitting: requests are on their way in.
            held += 1
            continue
        held += (int(sq_head.group(1)) - int(cq_head.group(1))) % (1 << 32)
    return held


def kill_qemu(sock):
    """SIGKILLs the QEMU this test started on `sock` (its command line names the socket)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except OSError:
            continue
        if cmdline[0].endswith(qemu_guest.QEMU.encode()) and \
                any(f"path={sock},".encode() in arg for arg in cmdline):
            os.kill(int(pid), signal.SIGKILL)


class BlkCrashRestartTest(unittest.TestCase):

    def run_case(self, name, script, packed=False):
        seed = int(os.environ.get("BLK_CRASH_SEED", time.time_ns() % (1 << 32)))
        print(f"\n[{name}] seed {seed} (BLK_CRASH_SEED={seed} repeats the kill moments)",
              flush=True)
        rng = random.Random(seed)
        with qemu_guest.work_dir("blkcrash") as work:
            image = os.path.join(work, "disk.img")
            with open(image, "wb") as f:
                f.truncate(DISK_MB << 20)
            if script is READ_SCRIPT:
                subprocess.run([TOOL, "fill", image, "1"], check=True)
            sock = os.path.join(work, "blk.sock")
            argv = [DAEMON, f"--socket-path={sock}", f"--blk-file={image}", "--direct=on"]
            if packed:
                argv.append("--packed-ring")
            devices = ["-chardev", f"socket,id=c0,path={sock},reconnect-ms={RECONNECT_MS}",
                       "-device", "vhost-user-blk-pci,chardev=c0,num-queues=1"
                       + (",packed=on" if packed else "")]

            workload_started = threading.Event()
            guest = {}

            def on_line(line):
                if "E2E-WORKLOAD-START" in line:
                    workload_started.set()

            def run():
                try:
                    guest["result"] = qemu_guest.run_guest(
                        script, devices, modules=MODULES, work=work, timeout=240,
                        extra_entries=qemu_guest.host_binary_entries(TOOL), on_line=on_line)
                except BaseException as e:  # reported by the main thread
                    guest["error"] = e

            logs = []
            daemon = qemu_guest.Daemon(argv, sock, log_path=f"{sock}.0.log").__enter__()
            logs.append(daemon.log_path)
            runner = threading.Thread(target=run)
            runner.start()
            downtimes_ms = []
            kills = {False: [], True: []}  # random, aimed: whether the next daemon resubmitted
            start = time.time()
            try:
                self.wait_for(lambda: workload_started.is_set(), runner, daemon,
                              "the guest to start its workload")
                os.utime(image, ns=(0, 0))
                self.wait_for(lambda: first_served_ns(image) is not None, runner, daemon,
                              "the first daemon to serve the workload")
                while len(downtimes_ms) < MIN_RESTARTS or (
                        self.resubmitted(logs) == 0 and len(downtimes_ms) < MAX_RESTARTS):
                    time.sleep(rng.uniform(0, KILL_DELAY_S))  # picks the kill moment only
                    aimed = len(downtimes_ms) % 2 == 1
                    if aimed:
                        # Then the first moment the daemon holds requests in its io_uring (or
                        # AIM_S later), not to leave a kill mid-request to chance.
                        rings = uring_fdinfo(daemon.proc.pid)
                        give_up = time.time() + AIM_S
                        while rings and requests_in_rings(rings) == 0 and time.time() < give_up:
                            time.sleep(0.0005)  # leaves the CPU to QEMU; the kill follows a hit
                    killed_ns = time.time_ns()
                    os.killpg(daemon.proc.pid, signal.SIGKILL)
                    daemon.proc.wait()
                    daemon.__exit__(None, None, None)
                    # Nothing touches the image until the next daemon runs.
                    os.utime(image, ns=(0, 0))
                    os.unlink(sock)  # so Daemon waits for the new daemon's socket
                    log = f"{sock}.{len(logs)}.log"
                    daemon = qemu_guest.Daemon(argv, sock, log_path=log).__enter__()
                    logs.append(log)
                    self.wait_for(lambda: first_served_ns(image) is not None, runner, daemon,
                                  f"restarted daemon {len(logs) - 1} to serve I/O (the image's "
                                  "atime or mtime to change: relatime or strictatime needed)")
                    downtimes_ms.append((first_served_ns(image) - killed_ns) / 1e6)
                    self.assertIn("inflight region", daemon.read_log(),
                                  "QEMU did not hand the restarted daemon its inflight region")
                    kills[aimed].append(self.resubmitted(logs[-1:]) > 0)
            except BaseException:
                kill_qemu(sock)  # its guest would wait for a daemon until run_guest's timeout
                raise
            finally:
                # Ends the workload (the guest looks between passes) and lets the guest finish.
                with open(image, "r+b") as f:
                    f.seek((DISK_MB << 20) - BLOCK)
                    f.write(b"STOP")
                runner.join()
                final_alive = daemon.alive()
                final_log = daemon.read_log()
                daemon.__exit__(None, None, None)
            wall = time.time() - start
            if "error" in guest:
                raise guest["error"]
            result = guest["result"]
            resubmitted = self.resubmitted(logs)
            restarts = len(downtimes_ms)
            print(f"[{name}] restarts {restarts}, requests resubmitted {resubmitted} "
                  f"(after {sum(kills[False])} of {len(kills[False])} random kills, "
                  f"{sum(kills[True])} of {len(kills[True])} aimed), SIGKILL to first request "
                  f"served: min {min(downtimes_ms):.0f} ms, median "
                  f"{statistics.median(downtimes_ms):.0f} ms, max {max(downtimes_ms):.0f} ms; "
                  f"guest {result.results.get('passes', '?')} passes / "
                  f"{result.results.get('rounds', '-')} rounds; {wall:.1f} s wall", flush=True)
            host_verify = subprocess.run([TOOL, "verify", image, result.results.get("passes", "0")],
                                         capture_output=True, text=True).stdout.strip()

        tail = result.output[-4000:]
        self.assertFalse(result.timed_out, tail)
        self.assertTrue(final_alive, final_log[-3000:])
        self.assertNotIn("io_error", result.results, tail)
        self.assertEqual(result.results.get("workload_status"), "0", tail)
        self.assertEqual(result.results.get("kernel_io_errors"), "0", tail)
        blocks = (DISK_MB << 20) // BLOCK - 1
        self.assertIn(f"blocks={blocks} ok={blocks} bad=0", result.results.get("verify", ""), tail)
        self.assertEqual(result.results.get("verify_status"), "0", tail)
        self.assertIn(f"blocks={blocks} ok={blocks} bad=0", host_verify)
        self.assertEqual(result.script_status, 0, tail)
        self.assertGreaterEqual(restarts, MIN_RESTARTS)
        # Some kill caught requests taken but not completed, and the next daemon re-ran them.
        self.assertGreater(resubmitted, 0, f"no restart resubmitted anything in {restarts}")
        return result

    def wait_for(self, condition, runner, daemon, what):
        deadline = time.time() + SYNC_TIMEOUT_S
        while not condition():
            if not runner.is_alive():
                self.fail(f"the guest ended while waiting for {what}")
            if not daemon.alive():
                self.fail(f"the daemon exited while waiting for {what}: {daemon.read_log()}")
            if time.time() > deadline:
                self.fail(f"waited {SYNC_TIMEOUT_S} s for {what}: {daemon.read_log()[-3000:]}")
            time.sleep(0.002)

    @staticmethod
    def resubmission_counts(logs):
        counts = []
        for path in logs:
            with open(path, errors="replace") as f:
                counts += [int(n) for n in
                           re.findall(r"resubmitting (\d+) requests left in flight", f.read())]
        return counts

    def resubmitted(self, logs):
        return sum(self.resubmission_counts(logs))

    def test_split_ring_writes(self):
        result = self.run_case("split writes", WRITE_SCRIPT)
        self.assertGreater(int(result.results["passes"]), 1)

    def test_split_ring_reads(self):
        result = self.run_case("split reads", READ_SCRIPT)
        self.assertGreater(int(result.results["rounds"]), 1)

    def test_packed_ring_writes(self):
        result = self.run_case("packed writes", WRITE_SCRIPT, packed=True)
        self.assertGreater(int(result.results["passes"]), 1)


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    TOOL = os.path.abspath(sys.argv.pop(1))
    unittest.main()
