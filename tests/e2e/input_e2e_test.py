"""A Linux guest's virtio_input driver gets our virtual keyboard: the device appears as
/dev/input/eventN with our name and capabilities, and keys typed on the host side arrive.

Usage: input_e2e_test.py PATH_TO_vhost-user-input (Bazel passes it).
"""
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
NAME = "vhost-user virtual keyboard"

# Finds our device by name, reports its capabilities, then reads 60 events and prints the codes
# of the key presses among them (input_event is 24 bytes: type, code, value at u16 8, 9, 10).
GUEST_SCRIPT = r"""
for e in /sys/class/input/event*; do
  if [ "$(cat $e/device/name)" = "%s" ]; then dev=/dev/input/$(basename $e); sys=$e; fi
done
echo "E2E-RESULT device=$dev"
echo "E2E-RESULT ev=$(cat $sys/device/capabilities/ev)"
echo "E2E-RESULT led=$(cat $sys/device/capabilities/led)"
echo "E2E-RESULT phys=$(cat $sys/device/phys)"
echo "E2E-RESULT presses=$(dd if=$dev bs=24 count=60 2>/dev/null | od -An -v -tu2 -w24 |
  awk '$9 == 1 && $11 == 1 { printf "%%s,", $10 }')"
""" % NAME


class Typist:
    """Types `text` into the virtual keyboard every `period` seconds until stopped."""

    def __init__(self, control, text, period=0.4):
        self.control, self.text, self.period = control, text, period
        self.stop = threading.Event()
        self.replies = []
        self.thread = threading.Thread(target=self.run)

    def run(self):
        while not self.stop.is_set():
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.control)
                    s.sendall(f"type {self.text}\n".encode())
                    self.replies.append(s.recv(100).decode())
            except OSError as e:
                self.replies.append(str(e))
            self.stop.wait(self.period)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class InputGuestTest(unittest.TestCase):

    # Then again after a reboot (the device reset under the same connection) and in a restarted
    # QEMU (a new front end of the same daemon process); the typist keeps typing throughout.
    def test_keys_typed_on_the_host_arrive_in_the_guest_across_a_reboot_and_restart(self):
        with qemu_guest.work_dir("input") as work:
            sock = os.path.join(work, "input.sock")
            control = os.path.join(work, "control.sock")
            argv = [DAEMON, f"--socket-path={sock}", "--virtual-device=keyboard",
                    f"--control-socket={control}"]
            run = dict(script=GUEST_SCRIPT, modules=["virtio_input", "evdev"], work=work,
                       timeout=120, devices=["-chardev", f"socket,id=in0,path={sock}",
                                             "-device", "vhost-user-input-pci,chardev=in0"])
            with qemu_guest.Daemon(argv, sock) as daemon, Typist(control, "hello") as typist:
                results = [qemu_guest.run_guest(boots=2, **run),
                           qemu_guest.run_guest_again(daemon, **run)]
                self.assertTrue(daemon.alive(), daemon.read_log())
        boots = []
        for result in results:
            self.assertFalse(result.timed_out, result.output[-3000:])
            boots += result.boots
        self.assertEqual(len(boots), 3, results[-1].output[-3000:])
        self.assertIn("ok\n", typist.replies)
        for boot in boots:
            r = boot.results
            self.assertTrue(r.get("device", "").startswith("/dev/input/event"),
                            boot.output[-3000:])
            self.assertEqual(r["ev"], "120003")  # SYN, KEY, LED, REP
            self.assertEqual(r["led"], "7")      # NUML, CAPSL, SCROLLL
            self.assertTrue(r["phys"].startswith("virtio"), r["phys"])
            # KEY_H, KEY_E, KEY_L, KEY_L, KEY_O somewhere in the presses the guest read.
            self.assertIn("35,18,38,38,24,", r["presses"], r["presses"])


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
