"""vhost-user-scsi killed and restarted under a running guest loses no I/O (issue 15).

QEMU 10.0's vhost-user-scsi-pci reconnects to a restarted back end as vhost-user-blk-pci does
(QEMU 8.2 added it: with `-chardev socket,...,reconnect-ms=N` it waits for the socket while it
creates the device, and on a new connection sets the device up again with the inflight region it
keeps). This is blk_crash_e2e_test.py's test on a LUN: the guest writes (or reads) the
checksummed block stream of blk_guest_tool on /dev/sda (sd on virtio_scsi) while the host
SIGKILLs the daemon at random or aimed moments, at least MIN_RESTARTS times and on until some
restart has resubmitted commands (at most MAX_RESTARTS); every restarted daemon must be handed
the inflight region. QEMU enables the rings of a reconnected back end before it sends the call
fd the guest listens on (vhost_scsi_common_start unmasks after vhost_dev_start; vhost-user-blk
sends SET_VRING_CALL before SET_VRING_ENABLE), so a restarted daemon that finds commands waiting
(resubmitted, or queued while it was down) completes them into the notifier QEMU set first and
never passes on: the restarted daemon must interrupt the guest once the real call fd arrives
(that also covers a kill between a used index update and its interrupt), else the guest's
commands, all completed, wait forever (the next daemon then serves nothing: a failure here).

And once per case the daemon stays down until the guest's SCSI midlayer has timed a command out
(sd's timeout is set to 1 s in the guest; its iotmo_cnt counts timeouts, the guest reports each
change). What Linux 6.12 does then: virtio_scsi's eh_timed_out answers SCSI_EH_RESET_TIMER (the
host answers every command), so the command is not aborted, no task management function is
sent, no error handling runs and nothing fails; the command completes once the restarted daemon
has run it. Asserted: timeouts were counted, no abort or reset was logged by the guest, sd's
ioerr_cnt (commands that completed with an error) did not grow, no I/O error, every block checks.

Usage: scsi_crash_e2e_test.py PATH_TO_vhost-user-scsi PATH_TO_blk_guest_tool (Bazel passes them).
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
import blk_crash_e2e_test as blk  # noqa: E402  (the image and io_uring probes, kill_qemu)
import qemu_guest  # noqa: E402

DAEMON = None
TOOL = None
MODULES = ["virtio_scsi", "sd_mod"]
DISK_MB = 16
BLOCK = 4096
MIN_RESTARTS = 20
MAX_RESTARTS = 60
LONG_OUTAGE_AT = 10  # this kill's daemon stays down until the guest timed a command out
KILL_DELAY_S = 0.3  # a kill comes up to this long after the restarted daemon served I/O
AIM_S = 1.0  # how long an aimed kill waits for the daemon to hold requests
SYNC_TIMEOUT_S = 60  # a guard against a hang, not a measurement
RECONNECT_MS = 200

# Waits for sd's disk (the scan is asynchronous), sets its command timeout to 1 s and reports
# each change of its timeout count (iotmo_cnt) in the background.
PRELUDE = r"""
i=0
while [ ! -b /dev/sda ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
echo 1 > /sys/block/sda/device/timeout
# Commands that failed so far (the scan's probes answered CHECK CONDITION count too).
echo "E2E-RESULT ioerr_at_start=$(cat /sys/block/sda/device/ioerr_cnt)"
(
  last=0x0
  while :; do
    n=$(cat /sys/block/sda/device/iotmo_cnt)
    [ "$n" != "$last" ] && { echo "E2E-IOTMO $n"; last=$n; }
    sleep 0.1
  done
) &
"""

EPILOGUE = r"""
echo "E2E-RESULT verify_status=$?"
echo "E2E-RESULT kernel_io_errors=$(dmesg | grep -c 'I/O error')"
echo "E2E-RESULT eh_messages=$(dmesg | grep -cE 'sd [0-9:]+: .*(abort|reset)')"
echo "E2E-RESULT iotmo_cnt=$(cat /sys/block/sda/device/iotmo_cnt)"
echo "E2E-RESULT ioerr_cnt=$(cat /sys/block/sda/device/ioerr_cnt)"
dmesg | grep 'sd [0-9:]*:' | tail -20
"""

WRITE_SCRIPT = PRELUDE + r"""
echo E2E-WORKLOAD-START
out=$(/bin/blk_guest_tool write /dev/sda); status=$?
echo "$out"
echo "E2E-RESULT workload_status=$status"
passes=$(echo "$out" | sed -n 's/^E2E-RESULT passes=//p')
/bin/blk_guest_tool verify /dev/sda "$passes"
""" + EPILOGUE

READ_SCRIPT = PRELUDE + r"""
echo E2E-WORKLOAD-START
/bin/blk_guest_tool read /dev/sda 1
echo "E2E-RESULT workload_status=$?"
echo "E2E-RESULT passes=1"
/bin/blk_guest_tool verify /dev/sda 1
""" + EPILOGUE


class ScsiCrashRestartTest(unittest.TestCase):

    def run_case(self, name, script, packed=False):
        seed = int(os.environ.get("SCSI_CRASH_SEED", time.time_ns() % (1 << 32)))
        print(f"\n[{name}] seed {seed} (SCSI_CRASH_SEED={seed} repeats the kill moments)",
              flush=True)
        rng = random.Random(seed)
        with qemu_guest.work_dir("scsicrash") as work:
            image = os.path.join(work, "disk.img")
            with open(image, "wb") as f:
                f.truncate(DISK_MB << 20)
            if script is READ_SCRIPT:
                subprocess.run([TOOL, "fill", image, "1"], check=True)
            sock = os.path.join(work, "scsi.sock")
            argv = [DAEMON, f"--socket-path={sock}", f"--lun=file={image},serial=CRASH",
                    "--num-queues=1", "--direct=on"] + (["--packed-ring"] if packed else [])
            devices = ["-chardev", f"socket,id=c0,path={sock},reconnect-ms={RECONNECT_MS}",
                       "-device", "vhost-user-scsi-pci,chardev=c0,num_queues=1"
                       + (",packed=on" if packed else "")]

            workload_started = threading.Event()
            timeouts = [0]  # the guest's sd iotmo_cnt, as it last reported it
            guest = {}

            def on_line(line):
                if "E2E-WORKLOAD-START" in line:
                    workload_started.set()
                m = re.search(r"E2E-IOTMO (0x[0-9a-f]+)", line)
                if m:
                    timeouts[0] = int(m.group(1), 16)

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
            long_outage = {}
            start = time.time()
            try:
                self.wait_for(workload_started.is_set, runner, daemon,
                              "the guest to start its workload")
                os.utime(image, ns=(0, 0))
                self.wait_for(lambda: blk.first_served_ns(image) is not None, runner, daemon,
                              "the first daemon to serve the workload")
                while len(logs) - 1 < MIN_RESTARTS or (
                        self.resubmitted(logs) == 0 and len(logs) - 1 < MAX_RESTARTS):
                    time.sleep(rng.uniform(0, KILL_DELAY_S))  # picks the kill moment only
                    kill = len(logs) - 1
                    aimed = kill % 2 == 1
                    if aimed:
                        # Then the first moment the daemon holds requests in its io_uring (or
                        # AIM_S later), not to leave a kill mid-request to chance.
                        rings = blk.uring_fdinfo(daemon.proc.pid)
                        give_up = time.time() + AIM_S
                        while rings and blk.requests_in_rings(rings) == 0 and \
                                time.time() < give_up:
                            time.sleep(0.0005)  # leaves the CPU to QEMU; the kill follows a hit
                    killed_ns = time.time_ns()
                    os.killpg(daemon.proc.pid, signal.SIGKILL)
                    daemon.proc.wait()
                    daemon.__exit__(None, None, None)
                    # Nothing touches the image until the next daemon runs.
                    os.utime(image, ns=(0, 0))
                    os.unlink(sock)  # so Daemon waits for the new daemon's socket
                    if kill == LONG_OUTAGE_AT:
                        # The guest's commands wait on a dead daemon until sd times one out.
                        before = timeouts[0]
                        self.wait_for(lambda: timeouts[0] > before, runner, None,
                                      "the guest to time a command out")
                        long_outage["ms"] = (time.time_ns() - killed_ns) / 1e6
                        long_outage["timeouts"] = timeouts[0] - before
                    log = f"{sock}.{len(logs)}.log"
                    daemon = qemu_guest.Daemon(argv, sock, log_path=log).__enter__()
                    logs.append(log)
                    self.wait_for(lambda: blk.first_served_ns(image) is not None, runner, daemon,
                                  f"restarted daemon {len(logs) - 1} to serve I/O (the image's "
                                  "atime or mtime to change: relatime or strictatime needed)")
                    if kill != LONG_OUTAGE_AT:
                        downtimes_ms.append((blk.first_served_ns(image) - killed_ns) / 1e6)
                    self.assertIn("inflight region", daemon.read_log(),
                                  "QEMU did not hand the restarted daemon its inflight region")
                    kills[aimed].append(self.resubmitted(logs[-1:]) > 0)
            except BaseException as e:
                blk.kill_qemu(sock)  # its guest would wait for a daemon until run_guest's timeout
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
            resubmitted = self.resubmitted(logs)
            restarts = len(logs) - 1
            print(f"[{name}] restarts {restarts}, commands resubmitted {resubmitted} "
                  f"(after {sum(kills[False])} of {len(kills[False])} random kills, "
                  f"{sum(kills[True])} of {len(kills[True])} aimed), SIGKILL to first command "
                  f"served: min {min(downtimes_ms):.0f} ms, median "
                  f"{statistics.median(downtimes_ms):.0f} ms, max {max(downtimes_ms):.0f} ms; "
                  f"long outage {long_outage.get('ms', 0):.0f} ms until the guest timed "
                  f"{long_outage.get('timeouts', 0)} command(s) out (sd iotmo_cnt "
                  f"{result.results.get('iotmo_cnt', '?')} in all); guest "
                  f"{result.results.get('passes', '?')} passes / "
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
        # Some kill caught commands taken but not completed, and the next daemon re-ran them.
        self.assertGreater(resubmitted, 0, f"no restart resubmitted anything in {restarts}")
        # The long outage: sd timed commands out, virtio_scsi reset their timers, and no error
        # handling ran (no abort, no reset, no command failed).
        self.assertGreater(long_outage.get("timeouts", 0), 0)
        self.assertGreater(int(result.results.get("iotmo_cnt", "0"), 16), 0, tail)
        self.assertEqual(result.results.get("eh_messages"), "0", tail)
        self.assertEqual(result.results.get("ioerr_cnt"), result.results.get("ioerr_at_start"),
                         tail)
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

    @staticmethod
    def resubmitted(logs):
        return sum(blk.BlkCrashRestartTest.resubmission_counts(logs))

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
