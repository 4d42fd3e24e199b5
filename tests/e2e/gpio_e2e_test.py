"""A Linux guest's gpio-virtio driver (built out of tree from the guest kernel's own source) gets
a gpiochip from our simulated chip: the right line count and names, a value the guest sets reaches
the simulated line, and a line raised on the host wakes a guest waiting for its interrupt.

In the guest, gpio_guest_tool drives the chip through vhost-user-gpio's HostChip (GPIO uAPI v2),
so the host-chip code runs against a real kernel gpiochip too.

Usage: gpio_e2e_test.py PATH_TO_vhost-user-gpio PATH_TO_gpio_guest_tool (Bazel passes them).
"""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
TOOL = None

# Finds the chip with our line names; sets "led" (line 1) high; waits for "button" (line 0).
GUEST_SCRIPT = r"""
for c in /dev/gpiochip*; do
  info=$(/bin/gpio_guest_tool $c info)
  case "$info" in *button*) chip=$c; echo "E2E-RESULT info=$info";; esac
done
[ -n "$chip" ] || { echo "E2E-RESULT info=none: $(ls /dev/gpiochip* 2>&1)"; exit 1; }
/bin/gpio_guest_tool $chip set 1 1 2
echo "E2E-RESULT after_release=done"
/bin/gpio_guest_tool $chip wait 0 20
"""


def control(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        return s.recv(200).decode().strip()


class GpioGuestTest(unittest.TestCase):

    # Then again after a reboot (the device reset under the same connection) and in a restarted
    # QEMU (a new front end of the same daemon process).
    def test_guest_sees_the_chip_sets_a_line_and_gets_an_interrupt_across_a_reboot_and_restart(
            self):
        gpio_ko = qemu_guest.out_of_tree_module("drivers/gpio/gpio-virtio.c")
        seen = []  # per boot: what the host saw and did
        with qemu_guest.work_dir("gpio") as work:
            sock = os.path.join(work, "gpio.sock")
            ctl = os.path.join(work, "gpio.ctl")
            argv = [DAEMON, f"--socket-path={sock}", "--device-list=s8",
                    "--sim-lines=button@in,led@out,reset", f"--control-socket={ctl}"]

            def on_line(line):
                if "E2E-BEGIN" in line:
                    # The button is still up from the previous boot: lower it before the guest
                    # watches it, so raising it is an edge again.
                    seen.append({"lower": control(ctl, "set button 0")})
                elif "E2E-READY set" in line:
                    seen[-1]["led_while_held"] = control(ctl, "get led")
                elif "E2E-RESULT after_release" in line:
                    seen[-1]["led_after_release"] = control(ctl, "get led")
                elif "E2E-READY wait" in line:
                    seen[-1]["raise"] = control(ctl, "set button 1")

            run = dict(script=GUEST_SCRIPT, modules=[], built_modules=[gpio_ko], work=work,
                       timeout=120, extra_entries=qemu_guest.host_binary_entries(TOOL),
                       on_line=on_line, devices=["-chardev", f"socket,id=g0,path={sock}",
                                                 "-device", "vhost-user-gpio-pci,chardev=g0"])
            with qemu_guest.Daemon(argv, sock) as daemon:
                results = [qemu_guest.run_guest(boots=2, **run),
                           qemu_guest.run_guest_again(daemon, **run)]
                self.assertTrue(daemon.alive(), daemon.read_log())
        boots = []
        for result in results:
            self.assertFalse(result.timed_out, result.output[-3000:])
            boots += result.boots
        self.assertEqual(len(boots), 3, results[-1].output[-3000:])
        self.assertEqual(len(seen), 3, seen)
        for boot, host in zip(boots, seen):
            r = boot.results
            self.assertNotIn("insmod_failed", r, boot.output[-3000:])
            self.assertIn("lines=8 names=button,led,reset,line3,line4,line5,line6,line7",
                          r.get("info", ""), boot.output[-3000:])
            self.assertEqual(host.get("lower"), "ok", seen)
            self.assertEqual(host.get("led_while_held"), "ok out 1", seen)
            # Released by the guest (its driver sets the direction to NONE when the line is freed).
            self.assertEqual(host.get("led_after_release"), "ok none -", seen)
            self.assertEqual(host.get("raise"), "ok", seen)
            self.assertEqual(r.get("edge"), "0:1", boot.output[-3000:])
            self.assertEqual(boot.script_status, 0, boot.output[-3000:])


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    TOOL = os.path.abspath(sys.argv.pop(1))
    unittest.main()
