"""What QEMU 10.0 does when a vhost-user-{rng,gpio,i2c,input,vsock,fs} daemon is restarted under a
running guest (issue 14). Only vhost-user-blk comes back to a restarted daemon
(blk_crash_e2e_test.py); these front ends do not, and the manuals say so. This test pins what
they do instead, so that a QEMU that starts reconnecting them fails it and gets crash tests.

1. `-chardev socket,...,reconnect-ms=N` (what blk needs): QEMU exits during start-up with
   "vhost_backend_init failed: Protocol error", for all six. With reconnect-ms the socket
   connects in the background, and these devices (unlike vhost-user-blk, which waits for the
   connection) talk to the daemon while QEMU creates them. The daemon stays up.
2. The socket connected before the devices are created (`--preconfig`, then x-exit-preconfig
   once the daemon has accepted), the daemon SIGKILLed while the guest uses the device and
   started again. QEMU reconnects its socket (the new daemon logs a front end), then:
   - rng, gpio, i2c, input (QEMU's vhost-user-base in 10.0): QEMU aborts,
     "vhost_dev_start: Assertion `hdev->vhost_ops' failed" (on the disconnect it frees its
     vhost device and does not set it up again on the reconnect);
   - vsock (no chardev event handler, as fs): nothing more; QEMU never sets the device up
     again and the guest's connections fail. (fs's file operations wait for good then, which a
     test cannot tell from slow ones, so its case is vsock's.)

Usage: reconnect_e2e_test.py RNG GPIO I2C INPUT VSOCK FS VSOCK_TOOL GPIO_TOOL I2C_TOOL (the
daemons and guest tools; Bazel passes them).
"""
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402
import vsock_e2e_test  # noqa: E402  (its host echo server)

DAEMONS = {}
TOOLS = {}  # the vsock, gpio and i2c guest tools
SYNC_TIMEOUT_S = 120  # a guard against a hang, not a measurement
RECONNECT_MS = 200


def daemon_argv(name, work, sock):
    extra = {
        "rng": [],
        "gpio": ["--device-list=s8", "--sim-lines=button@in,led@out"],
        "i2c": ["--device-list=sim:0x50"],
        "input": ["--virtual-device=keyboard"],
        "vsock": [f"--uds-path={os.path.join(work, 'v.sock')}", "--guest-cid=7"],
        "fs": [f"--shared-dir={work}"],
    }[name]
    return [DAEMONS[name], f"--socket-path={sock}"] + extra


def device(name):
    return f"vhost-user-{name}-pci,chardev=c0" + (",tag=share" if name == "fs" else "")


# Each uses its device until QEMU goes away (it aborts when the daemon comes back); the first
# E2E-TRY line says the device works. Input waits for an event that never comes.
ABORT_SCRIPTS = {
    "rng": r"""
i=0
while [ $i -lt 100 ]; do
  i=$((i + 1))
  echo "E2E-TRY $i $(dd if=/dev/hwrng bs=64 count=1 2>/dev/null | wc -c)"
done
""",
    "gpio": r"""
i=0
while [ $i -lt 100 ]; do
  i=$((i + 1))
  gpio_guest_tool /dev/gpiochip0 set 1 1 0 && echo "E2E-TRY $i ok"
done
""",
    "i2c": r"""
for d in /sys/class/i2c-dev/i2c-*; do
  case "$(cat $d/name)" in *virtio*) virt=/dev/$(basename $d);; esac
done
i=0
while [ $i -lt 100 ]; do
  i=$((i + 1))
  i2c_guest_tool $virt roundtrip 0x50 eeprom && echo "E2E-TRY $i ok"
done
""",
    "input": r"""
for e in /sys/class/input/event*; do
  [ "$(cat $e/device/name)" = "vhost-user virtual keyboard" ] && dev=/dev/input/$(basename $e)
done
[ -c "$dev" ] && echo "E2E-TRY 1 ok"
dd if=$dev bs=24 count=1
""",
}

# Connects to the host's echo server until three tries in a row have failed (each gives up after
# vsock's 2 s connect timeout, or `timeout` if the connection hangs).
VSOCK_SCRIPT = r"""
i=0; failed=0
while [ $failed -lt 3 ] && [ $i -lt 100 ]; do
  i=$((i + 1))
  if timeout 5 vsock_guest_tool client 5000 4096 > /dev/null 2>&1; then
    failed=0; echo "E2E-TRY $i ok"
  else
    failed=$((failed + 1)); echo "E2E-TRY $i failed"
  fi
done
"""


class ReconnectTest(unittest.TestCase):

    def test_qemu_10_does_not_start_these_devices_with_reconnect_ms(self):
        for name in DAEMONS:
            with self.subTest(name), qemu_guest.work_dir(f"rc-{name}") as work:
                sock = os.path.join(work, "d.sock")
                with qemu_guest.Daemon(daemon_argv(name, work, sock), sock) as daemon:
                    result = qemu_guest.run_guest(
                        "true", ["-chardev", f"socket,id=c0,path={sock},reconnect-ms={RECONNECT_MS}",
                                 "-device", device(name)],
                        modules=[], work=work, timeout=60, memory_mb=1024 if name == "fs" else 512)
                    self.assertTrue(daemon.alive(), daemon.read_log())
                self.assertEqual(result.exit_code, 1, result.output[-2000:])
                self.assertIn("vhost_backend_init failed: Protocol error", result.output)
                self.assertNotIn("E2E-INIT", result.output)  # no guest ran

    def kill_and_restart(self, name, script):
        """Boots `script` with the socket connected first; SIGKILLs the daemon after the guest's
        first E2E-TRY line and starts it again. Returns (result, tries printed when QEMU
        reconnected, the new daemon's log, whether it is alive).

        On a loaded host QEMU sometimes drops its freshly connected reconnecting chardev while
        it creates the device ("Failed to set msg fds", then "vhost_backend_init failed"),
        before the guest or the daemon did anything: that setup is tried once more, and said."""
        try:
            return self._kill_and_restart(name, script)
        except AssertionError as e:
            if "Failed to set msg fds" not in str(e):
                raise
            print(f"{name}: QEMU lost its chardev while creating the device; once more: {e}",
                  file=sys.stderr)
            return self._kill_and_restart(name, script)

    def _kill_and_restart(self, name, script):
        with qemu_guest.work_dir(f"rc-{name}") as work:
            sock = os.path.join(work, "d.sock")
            qmp_ours, qmp_theirs, monitor = qemu_guest.qmp_socketpair()
            argv = daemon_argv(name, work, sock)
            extra = qemu_guest.host_binary_entries(TOOLS[name]) if name in TOOLS else []
            if name == "vsock":
                vsock_e2e_test.EchoServer(os.path.join(work, "v.sock") + "_5000")
            modules = {"rng": ["virtio_rng"], "vsock": ["vmw_vsock_virtio_transport"],
                       "i2c": ["i2c-dev"], "input": ["virtio_input", "evdev"]}.get(name, [])
            built = {"gpio": ["drivers/gpio/gpio-virtio.c"],
                     "i2c": ["drivers/i2c/busses/i2c-virtio.c"]}.get(name, [])
            devices = ["-chardev", f"socket,id=c0,path={sock},reconnect-ms={RECONNECT_MS}",
                       "-device", device(name),
                       "--preconfig"] + monitor
            # Built here, before QEMU starts: compiling a module on a loaded host can take longer
            # than QEMU's QMP greeting is waited for below.
            built_modules = [qemu_guest.out_of_tree_module(m) for m in built]
            tries = []
            guest = {}

            def on_line(line):
                if "E2E-TRY" in line:
                    tries.append(line.split("E2E-TRY", 1)[1].split())

            def run():
                try:
                    guest["result"] = qemu_guest.run_guest(
                        script, devices, modules=modules, work=work, timeout=120,
                        extra_entries=extra, on_line=on_line, pass_fds=[qmp_theirs.fileno()],
                        built_modules=built_modules)
                except BaseException as e:  # reported by the main thread
                    guest["error"] = e

            daemon = qemu_guest.Daemon(argv, sock, log_path=f"{sock}.0.log").__enter__()
            runner = threading.Thread(target=run)
            runner.start()
            try:
                # The initramfs is made (cached) before QEMU starts: a loaded host needs a while.
                qmp = qemu_guest.Qmp(sock=qmp_ours, timeout=120)
                self.wait_for(lambda: daemon.connections() == 1, runner,
                              "QEMU to connect its socket")
                qmp.command("x-exit-preconfig")  # now QEMU creates the device
                qmp.close()
                self.wait_for(lambda: tries, runner, "the guest to use the device")
                os.killpg(daemon.proc.pid, signal.SIGKILL)
                daemon.proc.wait()
                daemon.__exit__(None, None, None)
                os.unlink(sock)  # so Daemon waits for the new daemon's socket
                daemon = qemu_guest.Daemon(argv, sock, log_path=f"{sock}.1.log").__enter__()
                self.wait_for(lambda: daemon.connections() == 1, runner,
                              "QEMU to reconnect its socket")
                tries_at_reconnect = len(tries)
            except (AssertionError, OSError) as e:  # OSError: QEMU closed its monitor
                runner.join()  # QEMU's output says why (run_guest's timeout ends a hang)
                output = guest["result"].output[-3000:] if "result" in guest else guest
                raise AssertionError(f"{e}\n{output}\n{daemon.read_log()[-2000:]}") from None
            finally:
                runner.join()
                qmp_theirs.close()
                qmp_ours.close()
                log, alive = daemon.read_log(), daemon.alive()
                daemon.__exit__(None, None, None)
            if "error" in guest:
                raise guest["error"]
            result = guest["result"]
            self.assertFalse(result.timed_out, result.output[-3000:])
            self.assertEqual(log.count("front end connected"), 1, log)
            # QEMU never negotiated features with the new daemon, so never set the device up.
            self.assertNotIn("features 0x", log)
            return result, tries, tries_at_reconnect, alive

    def wait_for(self, condition, runner, what):
        deadline = time.time() + SYNC_TIMEOUT_S
        while not condition():
            if not runner.is_alive():
                self.fail(f"QEMU ended while waiting for {what}")
            if time.time() > deadline:
                self.fail(f"waited {SYNC_TIMEOUT_S} s for {what}")
            time.sleep(0.005)

    # QEMU 10.0's vhost-user-base front ends.
    def test_rng_gpio_i2c_input_qemu_aborts_when_it_reconnects_to_a_restarted_daemon(self):
        for name, script in ABORT_SCRIPTS.items():
            with self.subTest(name):
                result, tries, _, alive = self.kill_and_restart(name, script)
                self.assertEqual(tries[0], ["1", "64" if name == "rng" else "ok"])
                self.assertEqual(result.exit_code, -signal.SIGABRT, result.output[-3000:])
                self.assertIn("vhost_dev_start: Assertion `hdev->vhost_ops' failed",
                              result.output)
                self.assertTrue(alive)  # the daemon is not what failed

    def test_vsock_qemu_reconnects_its_socket_but_the_device_stays_dead(self):
        result, tries, at_reconnect, alive = self.kill_and_restart("vsock", VSOCK_SCRIPT)
        self.assertEqual(tries[0], ["1", "ok"])
        self.assertEqual(result.exit_code, 0, result.output[-3000:])  # QEMU runs on
        self.assertEqual(result.script_status, 0, result.output[-3000:])
        # The try under way at the reconnect may have begun before it; every later one failed.
        after = tries[at_reconnect + 1:]
        self.assertTrue(after, tries)
        self.assertEqual({outcome for _, outcome in after}, {"failed"}, tries)
        self.assertTrue(alive)


if __name__ == "__main__":
    for name in ("rng", "gpio", "i2c", "input", "vsock", "fs"):
        DAEMONS[name] = os.path.abspath(sys.argv.pop(1))
    for name in ("vsock", "gpio", "i2c"):
        TOOLS[name] = os.path.abspath(sys.argv.pop(1))
    unittest.main()
