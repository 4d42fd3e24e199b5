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

The kill/restart loop, the guest workload and the assertions on it are CrashRestartCases, which
scsi_crash_e2e_test.py runs on a LUN too; BlkCrashRestartTest adds only blk's device.
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

DISK_MB = 16
BLOCK = 4096
MIN_RESTARTS = 20
MAX_RESTARTS = 60
KILL_DELAY_S = 0.3  # a kill comes up to this long after the restarted daemon served I/O
AIM_S = 1.0  # how long an aimed kill waits for the daemon to hold requests
SYNC_TIMEOUT_S = 60  # a guard against a hang, not a measurement
RECONNECT_MS = 200


def guest_script(dev, reads):
    """The guest's workload on the disk `dev`: blk_guest_tool writes its block stream pass after
    pass (or reads the stream the host filled, round after round) until the host writes STOP,
    then verifies every block. Its results: workload_status, passes, rounds, verify,
    verify_status, kernel_io_errors."""
    if reads:
        return f"""
echo E2E-WORKLOAD-START
/bin/blk_guest_tool read {dev} 1
echo "E2E-RESULT workload_status=$?"
echo "E2E-RESULT passes=1"
/bin/blk_guest_tool verify {dev} 1
echo "E2E-RESULT verify_status=$?"
echo "E2E-RESULT kernel_io_errors=$(dmesg | grep -c 'I/O error')"
"""
    return f"""
echo E2E-WORKLOAD-START
out=$(/bin/blk_guest_tool write {dev}); status=$?
echo "$out"
echo "E2E-RESULT workload_status=$status"
passes=$(echo "$out" | sed -n 's/^E2E-RESULT passes=//p')
/bin/blk_guest_tool verify {dev} "$passes"
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


def resubmission_counts(logs):
    """The requests each daemon resubmitted, from the daemons' logs."""
    counts = []
    for path in logs:
        with open(path, errors="replace") as f:
            counts += [int(n) for n in
                       re.findall(r"resubmitting (\d+) requests left in flight", f.read())]
    return counts


def resubmitted(logs):
    return sum(resubmission_counts(logs))


class CrashRestartCases:
    """The kill/restart cases. A unittest.TestCase subclass says what is specific to its
    device: `name` (its seed variable NAME_CRASH_SEED, work dir and socket), `served` (what the
    summary calls a request), `modules`, `write_script` and `read_script` (guest_script's
    workload, with what the device adds), daemon_args and device_args, and the hooks below."""
    daemon = None  # the daemon's and blk_guest_tool's paths, set by main()
    tool = None
    name = None
    served = "request"
    modules = []
    write_script = None
    read_script = None

    def daemon_args(self, image, packed):
        raise NotImplementedError

    def device_args(self, packed):
        raise NotImplementedError

    def start_case(self):
        """Resets what the hooks keep for one case."""

    def on_guest_line(self, line):
        """Sees each line of the guest's output as it comes."""

    def after_kill(self, kill, killed_ns, runner):
        """Runs while the daemon of kill number `kill` is down; returns whether the time to the
        restarted daemon's first request counts as a downtime."""
        return True

    def summary(self, result):
        """What the device adds to the case's printed figures."""
        return ""

    def check_device(self, result, tail):
        """The device's own assertions on the guest's results."""

    def run_case(self, name, reads, packed=False):
        seed_var = f"{self.name.upper()}_CRASH_SEED"
        seed = int(os.environ.get(seed_var, time.time_ns() % (1 << 32)))
        print(f"\n[{name}] seed {seed} ({seed_var}={seed} repeats the kill moments)", flush=True)
        rng = random.Random(seed)
        script = self.read_script if reads else self.write_script
        self.start_case()
        with qemu_guest.work_dir(f"{self.name}crash") as work:
            image = os.path.join(work, "disk.img")
            with open(image, "wb") as f:
                f.truncate(DISK_MB << 20)
            if reads:
                subprocess.run([self.tool, "fill", image, "1"], check=True)
            sock = os.path.join(work, f"{self.name}.sock")
            argv = [self.daemon, f"--socket-path={sock}"] + self.daemon_args(image, packed)
            devices = ["-chardev", f"socket,id=c0,path={sock},reconnect-ms={RECONNECT_MS}"] + \
                self.device_args(packed)

            workload_started = threading.Event()
            guest = {}

            def on_line(line):
                if "E2E-WORKLOAD-START" in line:
                    workload_started.set()
                self.on_guest_line(line)

            def run():
                try:
                    guest["result"] = qemu_guest.run_guest(
                        script, devices, modules=self.modules, work=work, timeout=240,
                        extra_entries=qemu_guest.host_binary_entries(self.tool), on_line=on_line)
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
                self.wait_for(workload_started.is_set, runner, daemon,
                              "the guest to start its workload")
                os.utime(image, ns=(0, 0))
                self.wait_for(lambda: first_served_ns(image) is not None, runner, daemon,
                              "the first daemon to serve the workload")
                while len(logs) - 1 < MIN_RESTARTS or (
                        resubmitted(logs) == 0 and len(logs) - 1 < MAX_RESTARTS):
                    time.sleep(rng.uniform(0, KILL_DELAY_S))  # picks the kill moment only
                    kill = len(logs) - 1
                    aimed = kill % 2 == 1
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
                    counts = self.after_kill(kill, killed_ns, runner)
                    log = f"{sock}.{len(logs)}.log"
                    daemon = qemu_guest.Daemon(argv, sock, log_path=log).__enter__()
                    logs.append(log)
                    self.wait_for(lambda: first_served_ns(image) is not None, runner, daemon,
                                  f"restarted daemon {len(logs) - 1} to serve I/O (the image's "
                                  "atime or mtime to change: relatime or strictatime needed)")
                    if counts:
                        downtimes_ms.append((first_served_ns(image) - killed_ns) / 1e6)
                    self.assertIn("inflight region", daemon.read_log(),
                                  "QEMU did not hand the restarted daemon its inflight region")
                    kills[aimed].append(resubmitted(logs[-1:]) > 0)
            except BaseException as e:
                kill_qemu(sock)  # its guest would wait for a daemon until run_guest's timeout
                runner.join()
                output = guest["result"].output[-4000:] if "result" in guest else ""
                previous = ""
                if len(logs) > 1:
                    with open(logs[-2], errors="replace") as f:
                        previous = f.read()[-3000:]
                raise AssertionError(f"{e}\nQEMU:\n{output}\nthe daemon before:\n{previous}") from e
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
            total = resubmitted(logs)
            restarts = len(logs) - 1
            print(f"[{name}] restarts {restarts}, {self.served}s resubmitted {total} "
                  f"(after {sum(kills[False])} of {len(kills[False])} random kills, "
                  f"{sum(kills[True])} of {len(kills[True])} aimed), SIGKILL to first "
                  f"{self.served} served: min {min(downtimes_ms):.0f} ms, median "
                  f"{statistics.median(downtimes_ms):.0f} ms, max {max(downtimes_ms):.0f} ms; "
                  f"{self.summary(result)}guest {result.results.get('passes', '?')} passes / "
                  f"{result.results.get('rounds', '-')} rounds; {wall:.1f} s wall", flush=True)
            host_verify = subprocess.run(
                [self.tool, "verify", image, result.results.get("passes", "0")],
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
        self.assertGreater(total, 0, f"no restart resubmitted anything in {restarts}")
        self.check_device(result, tail)
        return result

    def wait_for(self, condition, runner, daemon, what):
        """Waits for `condition`; fails if the guest ends first, or `daemon` (if any) exits."""
        deadline = time.time() + SYNC_TIMEOUT_S
        while not condition():
            if not runner.is_alive():
                self.fail(f"the guest ended while waiting for {what}")
            if daemon is not None and not daemon.alive():
                self.fail(f"the daemon exited while waiting for {what}: {daemon.read_log()}")
            if time.time() > deadline:
                log = daemon.read_log()[-3000:] if daemon is not None else ""
                self.fail(f"waited {SYNC_TIMEOUT_S} s for {what}: {log}")
            time.sleep(0.002)

    def test_split_ring_writes(self):
        result = self.run_case("split writes", reads=False)
        self.assertGreater(int(result.results["passes"]), 1)

    def test_split_ring_reads(self):
        result = self.run_case("split reads", reads=True)
        self.assertGreater(int(result.results["rounds"]), 1)

    def test_packed_ring_writes(self):
        result = self.run_case("packed writes", reads=False, packed=True)
        self.assertGreater(int(result.results["passes"]), 1)


def main(test_class):
    """Takes the daemon's and blk_guest_tool's paths from the command line (Bazel passes them),
    then runs the tests."""
    test_class.daemon = os.path.abspath(sys.argv.pop(1))
    test_class.tool = os.path.abspath(sys.argv.pop(1))
    unittest.main()


class BlkCrashRestartTest(CrashRestartCases, unittest.TestCase):
    name = "blk"
    modules = ["virtio_blk"]
    write_script = guest_script("/dev/vda", reads=False)
    read_script = guest_script("/dev/vda", reads=True)

    def daemon_args(self, image, packed):
        return [f"--blk-file={image}", "--direct=on"] + (["--packed-ring"] if packed else [])

    def device_args(self, packed):
        return ["-device", "vhost-user-blk-pci,chardev=c0,num-queues=1"
                + (",packed=on" if packed else "")]


if __name__ == "__main__":
    main(BlkCrashRestartTest)
