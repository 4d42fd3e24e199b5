"""A Linux guest's virtio_rng driver reads entropy from our vhost-user-rng through QEMU.

Usage: rng_e2e_test.py PATH_TO_vhost-user-rng (Bazel passes it).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None

# Reads 64 KiB twice from /dev/hwrng and reports, for the first read, the byte histogram's
# chi-square statistic against a uniform distribution and the number of distinct byte values.
GUEST_SCRIPT = r"""
echo "E2E-RESULT rng_current=$(cat /sys/class/misc/hw_random/rng_current)"
echo "E2E-RESULT rng_available=$(cat /sys/class/misc/hw_random/rng_available)"
dd if=/dev/hwrng of=/tmp/a bs=4096 count=16 iflag=fullblock 2>/dev/null
dd if=/dev/hwrng of=/tmp/b bs=4096 count=16 iflag=fullblock 2>/dev/null
echo "E2E-RESULT size_a=$(wc -c < /tmp/a)"
echo "E2E-RESULT md5_a=$(md5sum < /tmp/a | cut -d' ' -f1)"
echo "E2E-RESULT md5_b=$(md5sum < /tmp/b | cut -d' ' -f1)"
od -An -v -tu1 /tmp/a | awk '
  { for (i = 1; i <= NF; i++) { count[$i]++; n++ } }
  END {
    expected = n / 256; chi = 0; distinct = 0
    for (v = 0; v < 256; v++) { d = count[v] - expected; chi += d * d / expected; if (count[v] > 0) distinct++ }
    printf "E2E-RESULT chi_square=%d\nE2E-RESULT distinct=%d\nE2E-RESULT samples=%d\n", chi, distinct, n
  }'
"""


class RngGuestTest(unittest.TestCase):

    def boot(self, memory, packed=False, boots=1, restart=False):
        """Runs the script `boots` times in one QEMU (the guest reboots in between) and, with
        `restart`, once more in a second QEMU against the same daemon. Returns each boot's
        result and the daemon's log."""
        with qemu_guest.work_dir("rng") as work:
            sock = os.path.join(work, "rng.sock")
            argv = [DAEMON, f"--socket-path={sock}"] + (["--packed-ring"] if packed else [])
            with qemu_guest.Daemon(argv, sock) as daemon:
                run = dict(script=GUEST_SCRIPT, modules=["virtio_rng"], memory=memory, work=work,
                           devices=["-chardev", f"socket,id=rng0,path={sock}",
                                    "-device", "vhost-user-rng-pci,chardev=rng0"])
                results = [qemu_guest.run_guest(boots=boots, **run)]
                if restart:
                    results.append(qemu_guest.run_guest_again(daemon, **run))
                log = daemon.read_log()
                self.assertTrue(daemon.alive(), log)
            runs = []
            for result in results:
                self.assertFalse(result.timed_out, result.output[-3000:])
                runs += result.boots
            self.assertEqual(len(runs), boots + restart, results[-1].output[-3000:])
            for run in runs:
                self.assertEqual(run.script_status, 0, run.output[-3000:])
            return runs, log

    def check_entropy(self, result):
        r = result.results
        self.assertTrue(r.get("rng_current", "").startswith("virtio_rng"), result.output[-2000:])
        self.assertEqual(r["size_a"], "65536")
        self.assertNotEqual(r["md5_a"], r["md5_b"], "two reads returned the same bytes")
        self.assertEqual(int(r["samples"]), 65536)
        self.assertEqual(int(r["distinct"]), 256)
        # 255 degrees of freedom: mean 255, standard deviation ~22.6. Uniform data stays far
        # below 400 (p < 1e-8 to exceed); a constant, counter or text source is in the millions.
        self.assertLess(int(r["chi_square"]), 400)
        self.assertGreater(int(r["chi_square"]), 150)

    # A reboot resets the device under the same connection; a QEMU restart is a new front end
    # of the same daemon process. Each boot reads fresh entropy.
    def test_memfd_guest_memory_split_ring_across_a_reboot_and_a_qemu_restart(self):
        runs, log = self.boot("memfd", boots=2, restart=True)
        for run in runs:
            self.check_entropy(run)
        self.assertEqual(len({run["md5_a"] for run in runs}), 3, "a boot read earlier bytes")
        self.assertEqual(log.count("front end connected"), 2)
        self.assertGreaterEqual(log.count("features 0x"), 3)  # each boot's driver negotiates
        self.assertNotIn("packed rings", log)

    # QEMU's vhost-user-rng-pci takes every ring feature we offer: --packed-ring makes the guest
    # use packed rings.
    # The reboot also starts the packed rings over (wrap counters included).
    def test_memfd_guest_memory_packed_ring_across_a_reboot(self):
        runs, log = self.boot("memfd", packed=True, boots=2)
        for run in runs:
            self.check_entropy(run)
        self.assertIn("packed rings", log)

    def test_file_guest_memory_on_dev_shm(self):
        (run,), _ = self.boot("file")
        self.check_entropy(run)


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
