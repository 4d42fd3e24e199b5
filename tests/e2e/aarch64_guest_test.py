"""Self-check of aarch64_guest.py, the harness of the SCMI guest tests: no daemon needed.

Run: python3 tests/e2e/aarch64_guest_test.py (after scripts/setup.sh). The first run unpacks the
arm64 kernel and cross-builds the SCMI modules into the e2e cache; each case says how long its
boot took.
"""

import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import aarch64_guest  # noqa: E402

# What the guest reports: the machine, the SCMI node and protocol subnodes in the device tree,
# the regulator node with its consumer, the clock consumer, and the cross-built modules loaded
# (the transport's virtio driver registered; the clock consumer's platform driver too).
SCRIPT = r"""
echo "E2E-RESULT machine=$(uname -m)"
echo "E2E-RESULT compatible=$(cat /proc/device-tree/firmware/scmi/compatible)"
echo "E2E-RESULT protocols=$(cd /proc/device-tree/firmware/scmi && echo protocol@*)"
echo "E2E-RESULT clock_cells=$(od -An -tx1 /proc/device-tree/firmware/scmi/protocol@14/#clock-cells | tr -d ' ')"
echo "E2E-RESULT regulator=$(cat /proc/device-tree/firmware/scmi/protocol@17/regulators/regulator@2/regulator-name)"
echo "E2E-RESULT regulator_consumer=$(cat /proc/device-tree/scmi-regulator-consumer-2/compatible)"
echo "E2E-RESULT clock_consumer=$(cat /proc/device-tree/scmi-clock-consumer-1/compatible)"
for m in scmi_transport_virtio scmi_hwmon scmi_iio scmi_regulator reg_virt_consumer scmi_clock_consumer scmi_cpufreq cpufreq_userspace industrialio kfifo_buf; do
  [ -d /sys/module/$m ] && echo "E2E-RESULT module_$m=loaded"
done
[ -d /sys/bus/virtio/drivers/scmi-virtio ] && echo "E2E-RESULT virtio_driver=scmi-virtio"
[ -d /sys/bus/platform/drivers/scmi-clock-consumer ] && echo "E2E-RESULT clock_driver=registered"
echo "E2E-RESULT boot=$E2E_BOOT"
"""


class Aarch64GuestTest(unittest.TestCase):

    def test_device_tree_source_compiles_into_the_machine_tree(self):
        with tempfile.TemporaryDirectory(prefix="dtb-") as work:
            dtb = aarch64_guest.machine_dtb(
                os.path.join(work, "virt.dtb"), aarch64_guest.MACHINE + ["-m", "256M"],
                aarch64_guest.scmi_dt_source(protocols=(0x13, 0x14, 0x15, 0x17),
                                             regulators={0: (1800000, 3300000), 3: None},
                                             clocks=(5,), cpu_perf_domain=2))

            def fdtget(*args):
                return subprocess.run(["fdtget", dtb] + list(args), check=True,
                                      capture_output=True, text=True).stdout.split()

            self.assertEqual(fdtget("-l", "/firmware/scmi"),
                             ["protocol@13", "protocol@14", "protocol@15", "protocol@17"])
            self.assertEqual(fdtget("/firmware/scmi", "compatible"), ["arm,scmi-virtio"])
            self.assertEqual(fdtget("/firmware/scmi/protocol@15", "#thermal-sensor-cells"), ["1"])
            self.assertEqual(fdtget("-l", "/firmware/scmi/protocol@17/regulators"),
                             ["regulator@0", "regulator@3"])
            # A range lets the guest change the voltage; none leaves it fixed.
            self.assertEqual(fdtget("/firmware/scmi/protocol@17/regulators/regulator@0",
                                    "regulator-min-microvolt"), ["1800000"])
            self.assertEqual(fdtget("/firmware/scmi/protocol@17/regulators/regulator@0",
                                    "regulator-max-microvolt"), ["3300000"])
            self.assertNotIn("regulator-max-microvolt", fdtget(
                "-p", "/firmware/scmi/protocol@17/regulators/regulator@3"))
            # Each consumer's supply is its regulator's phandle.
            phandle = fdtget("/firmware/scmi/protocol@17/regulators/regulator@3", "phandle")
            self.assertEqual(fdtget("/scmi-regulator-consumer-3", "default-supply"), phandle)
            clock_provider = fdtget("/firmware/scmi/protocol@14", "phandle")
            self.assertEqual(fdtget("/scmi-clock-consumer-5", "clocks"), clock_provider + ["5"])
            # The CPU's clock is the performance domain, for scmi-cpufreq.
            self.assertEqual(fdtget("/firmware/scmi/protocol@13", "#clock-cells"), ["1"])
            perf_provider = fdtget("/firmware/scmi/protocol@13", "phandle")
            self.assertEqual(fdtget("/cpus/cpu@0", "clocks"), perf_provider + ["2"])
            # The machine's own tree is still there (the guest needs its UART and PCI host).
            self.assertIn("pl011@9000000", fdtget("-l", "/"))

    def test_guest_boots_with_the_scmi_node_and_modules_and_reboots(self):
        start = time.time()
        result = aarch64_guest.run_aarch64_guest(
            SCRIPT, [], boots=2, timeout=240,
            dt_source=aarch64_guest.scmi_dt_source(regulators=(2,), clocks=(1,)))
        print(f"two boots: {result.wall_seconds:.1f} s wall "
              f"({time.time() - start:.1f} s with preparation)", file=sys.stderr)
        self.assertFalse(result.timed_out, result.output[-3000:])
        self.assertEqual(len(result.boots), 2, result.output[-3000:])
        for number, boot in enumerate(result.boots, 1):
            self.assertEqual(boot.script_status, 0, boot.output[-3000:])
            self.assertNotIn("insmod_failed", boot.results)
            self.assertEqual(boot["boot"], str(number))
            self.assertEqual(boot["machine"], "aarch64")
            self.assertEqual(boot["compatible"], "arm,scmi-virtio")
            self.assertEqual(boot["protocols"], " ".join(
                f"protocol@{p:x}" for p in sorted(aarch64_guest.PROTOCOL_PROPERTIES)))
            self.assertEqual(boot["clock_cells"], "00000001")
            self.assertEqual(boot["regulator"], "scmi-reg2")
            self.assertEqual(boot["regulator_consumer"], "regulator-virtual-consumer")
            self.assertEqual(boot["clock_consumer"], "vhost-user-test,clock-consumer")
            for m in ("scmi_transport_virtio", "scmi_hwmon", "scmi_iio", "scmi_regulator",
                      "reg_virt_consumer", "scmi_clock_consumer", "scmi_cpufreq",
                      "cpufreq_userspace", "industrialio", "kfifo_buf"):
                self.assertEqual(boot.results.get(f"module_{m}"), "loaded", m)
            self.assertEqual(boot["virtio_driver"], "scmi-virtio")
            self.assertEqual(boot["clock_driver"], "registered")
        self.assertEqual(result.exit_code, 0)


if __name__ == "__main__":
    unittest.main()
