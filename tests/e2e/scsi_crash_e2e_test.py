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
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import blk_crash_e2e_test as blk  # noqa: E402  (the kill/restart cases, the guest workload)

LONG_OUTAGE_AT = 10  # this kill's daemon stays down until the guest timed a command out

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

# After blk's workload: sd's error handling, timeout and error counts, and its kernel messages.
EPILOGUE = r"""
echo "E2E-RESULT eh_messages=$(dmesg | grep -cE 'sd [0-9:]+: .*(abort|reset)')"
echo "E2E-RESULT iotmo_cnt=$(cat /sys/block/sda/device/iotmo_cnt)"
echo "E2E-RESULT ioerr_cnt=$(cat /sys/block/sda/device/ioerr_cnt)"
dmesg | grep 'sd [0-9:]*:' | tail -20
"""


class ScsiCrashRestartTest(blk.CrashRestartCases, unittest.TestCase):
    name = "scsi"
    served = "command"
    modules = ["virtio_scsi", "sd_mod"]
    write_script = PRELUDE + blk.guest_script("/dev/sda", reads=False) + EPILOGUE
    read_script = PRELUDE + blk.guest_script("/dev/sda", reads=True) + EPILOGUE

    def daemon_args(self, image, packed):
        return [f"--lun=file={image},serial=CRASH", "--num-queues=1", "--direct=on"] + \
            (["--packed-ring"] if packed else [])

    def device_args(self, packed):
        return ["-device", "vhost-user-scsi-pci,chardev=c0,num_queues=1"
                + (",packed=on" if packed else "")]

    def start_case(self):
        self.timeouts = 0  # the guest's sd iotmo_cnt, as it last reported it
        self.long_outage = {}

    def on_guest_line(self, line):
        m = re.search(r"E2E-IOTMO (0x[0-9a-f]+)", line)
        if m:
            self.timeouts = int(m.group(1), 16)

    def after_kill(self, kill, killed_ns, runner):
        if kill != LONG_OUTAGE_AT:
            return True
        # The guest's commands wait on a dead daemon until sd times one out.
        before = self.timeouts
        self.wait_for(lambda: self.timeouts > before, runner, None,
                      "the guest to time a command out")
        self.long_outage["ms"] = (time.time_ns() - killed_ns) / 1e6
        self.long_outage["timeouts"] = self.timeouts - before
        return False  # not a restart's downtime

    def summary(self, result):
        return (f"long outage {self.long_outage.get('ms', 0):.0f} ms until the guest timed "
                f"{self.long_outage.get('timeouts', 0)} command(s) out (sd iotmo_cnt "
                f"{result.results.get('iotmo_cnt', '?')} in all); ")

    def check_device(self, result, tail):
        # The long outage: sd timed commands out, virtio_scsi reset their timers, and no error
        # handling ran (no abort, no reset, no command failed).
        self.assertGreater(self.long_outage.get("timeouts", 0), 0)
        self.assertGreater(int(result.results.get("iotmo_cnt", "0"), 16), 0, tail)
        self.assertEqual(result.results.get("eh_messages"), "0", tail)
        self.assertEqual(result.results.get("ioerr_cnt"), result.results.get("ioerr_at_start"),
                         tail)


if __name__ == "__main__":
    blk.main(ScsiCrashRestartTest)
