"""A Linux guest's i2c-virtio driver (built out of tree from the guest kernel's own source)
registers an adapter for our simulated bus; through /dev/i2c-N the guest writes to a simulated
EEPROM and reads it back, and an address not in --device-list does not answer.

In the guest, i2c_guest_tool uses vhost-user-i2c's HostAdapter: with I2C_RDWR on the virtio
adapter, and with SMBus emulation on the kernel's i2c-stub (an SMBus-only adapter), so both
host-adapter paths run against real kernel adapters.

Usage: i2c_e2e_test.py PATH_TO_vhost-user-i2c PATH_TO_i2c_guest_tool (Bazel passes them).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
TOOL = None

GUEST_SCRIPT = r"""
for d in /sys/class/i2c-dev/i2c-*; do
  case "$(cat $d/name)" in *virtio*) virt=/dev/$(basename $d); name="$(cat $d/name)";; esac
done
echo "E2E-RESULT adapter=$name"
i2c_guest_tool $virt roundtrip 0x50 eeprom
i2c_guest_tool $virt probe 0x51 listed
i2c_guest_tool $virt probe 0x52 unlisted
insmod /lib/extra/i2c-stub.ko chip_addr=0x50
for d in /sys/class/i2c-dev/i2c-*; do
  case "$(cat $d/name)" in *stub*) stub=/dev/$(basename $d);; esac
done
i2c_guest_tool $stub roundtrip 0x50 smbus
"""


class I2cGuestTest(unittest.TestCase):

    # Then again after a reboot (the device reset under the same connection) and in a restarted
    # QEMU (a new front end of the same daemon process).
    def test_guest_writes_and_reads_back_a_simulated_eeprom_across_a_reboot_and_restart(self):
        i2c_ko = qemu_guest.out_of_tree_module("drivers/i2c/busses/i2c-virtio.c")
        with qemu_guest.work_dir("i2c") as work:
            sock = os.path.join(work, "i2c.sock")
            argv = [DAEMON, f"--socket-path={sock}", "--device-list=sim:0x50:0x51"]
            run = dict(script=GUEST_SCRIPT, modules=["i2c-dev"], built_modules=[i2c_ko],
                       work=work, timeout=120,
                       extra_entries=qemu_guest.host_binary_entries(TOOL) +
                       qemu_guest.module_file_entries("i2c-stub", "lib/extra"),
                       devices=["-chardev", f"socket,id=i2c0,path={sock}",
                                "-device", "vhost-user-i2c-pci,chardev=i2c0"])
            with qemu_guest.Daemon(argv, sock) as daemon:
                results = [qemu_guest.run_guest(boots=2, **run),
                           qemu_guest.run_guest_again(daemon, **run)]
                self.assertTrue(daemon.alive(), daemon.read_log())
        boots = []
        for result in results:
            self.assertFalse(result.timed_out, result.output[-3000:])
            boots += result.boots
        self.assertEqual(len(boots), 3, results[-1].output[-3000:])
        for boot in boots:
            r = boot.results
            self.assertNotIn("insmod_failed", r, boot.output[-3000:])
            self.assertIn("i2c_virtio", r.get("adapter", ""), boot.output[-3000:])
            self.assertEqual(r.get("eeprom"), "vhost-user", boot.output[-3000:])
            self.assertEqual(r.get("listed"), "ack")
            self.assertEqual(r.get("unlisted"), "error")
            self.assertEqual(r.get("smbus"), "vhost-user", boot.output[-3000:])


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    TOOL = os.path.abspath(sys.argv.pop(1))
    unittest.main()
