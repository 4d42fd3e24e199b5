"""The suite on the guests and QEMU versions users run (issue 21): Linux 5.10 (Debian 11), 6.1
(Debian 12) and 6.12 (bookworm-backports), each under QEMU 7.2 (Debian 12) and QEMU 10.0
(bookworm-backports). Each pair boots one guest using every daemon whose guest driver and QEMU
front end exist there (suite_guest: the guest writes and reads back through each and the host
checks what arrived), and every such daemon must pass.

What is left out of a pair is checked to be truly absent, so nothing is skipped by mistake:
- a guest driver: neither in the kernel's package (module or built in) nor in the upstream
  release (5.10 predates virtio_snd (5.13), i2c_virtio (5.14) and gpio_virtio (5.15)); a
  driver the release has but Debian did not build (6.1's gpio, i2c and snd; 6.12's gpio and
  i2c) is built here from Debian's source of that very kernel, as users of those kernels would;
- a QEMU front end: not in `-device help` (7.2 has no vhost-user-snd-pci);
- a front end that needs KVM: QEMU 7.2's vhost-user-input-pci and vhost-user-gpu-pci sit on its
  vhost-user-backend object, which refuses to start without KVM's ioeventfds ("vhost
  initialization failed: requires kvm"; QEMU 8.0+ emulates them under TCG). This machine's KVM
  cannot boot a guest, so the test runs that QEMU against the daemon and checks that it is QEMU
  that refuses, before the guest could use the device.

The table of results goes to stdout and, under Bazel, to the test's undeclared outputs
(compat_table.md); the README's table is made from it.

Usage: compat_matrix_test.py DAEMON_OR_TOOL... (Bazel passes them; their folder layout is
bazel-bin's, so the first one's grandparent is the suite's BIN_DIR.)
"""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402
import suite_guest  # noqa: E402

BIN_DIR = None
KERNELS = ["5.10", "6.1", "6.12"]
QEMUS = ["7.2", "10.0"]
# The first upstream release with each guest driver the suite needs (all but these predate 5.10).
DRIVER_SINCE = {"snd": (5, 13), "i2c": (5, 14), "gpio": (5, 15)}
RESULTS = {}  # (kernel, qemu) -> {part: "pass" | "FAIL" | why absent}


KVM_ONLY = {"7.2": ["input", "gpu"]}  # front ends that need KVM in that QEMU (see above)


def release(series):
    return tuple(int(n) for n in series.split("."))


def front_ends():
    """The -device names the selected QEMU has."""
    listed = subprocess.run(qemu_guest.qemu_command() + ["-device", "help"],
                            capture_output=True, text=True, check=True).stdout
    return {line.split('"')[1] for line in listed.splitlines() if line.startswith("name \"")}


class CompatMatrixTest(unittest.TestCase):

    def run_pair(self, kernel, qemu):
        qemu_guest.select(kernel=kernel, qemu=qemu)
        have = front_ends()
        _, version = qemu_guest.find_kernel()
        row, names = {}, []
        for part in suite_guest.PARTS:
            if part.device not in have:
                row[part.name] = f"no {part.device} in QEMU {qemu}"
            elif part.name in KVM_ONLY.get(qemu, []):
                self.assertIn("requires kvm", self.refusal(part))
                row[part.name] = f"QEMU {qemu} needs KVM for it"
            elif release(kernel) < DRIVER_SINCE.get(part.name, (0, 0)):
                since = ".".join(map(str, DRIVER_SINCE[part.name]))
                for module in part.modules:  # really absent from this kernel's package
                    if module in part.out_of_tree:
                        self.assertFalse(suite_guest.has_module(version, module),
                                         f"{version} has {module}: run its part")
                row[part.name] = f"no driver before {since}"
            else:
                names.append(part.name)
        self.assertIn("blk", names)  # a pair with nothing to run would pass vacuously
        run = suite_guest.run(BIN_DIR, names, announce=lambda line: None)
        print(f"\n=== Linux {kernel} ({version}) under QEMU {qemu}: "
              f"{run.result.wall_seconds:.1f} s")
        for name, (ok, lines) in run.verdicts.items():
            row[name] = ("pass" if ok else "FAIL") + (f" ({run.notes[name]})" if name in run.notes else "")
            print(f"{name}: {'pass' if ok else 'FAIL'}\n  " + "\n  ".join(lines))
        RESULTS[(kernel, qemu)] = row
        failed = [n for n, (ok, _) in run.verdicts.items() if not ok]
        self.assertFalse(failed, f"failed on Linux {kernel} + QEMU {qemu}: {failed}\n" +
                         "\n".join(f"--- vhost-user-{n} log:\n{run.logs['vhost-user-' + n][-2000:]}"
                                   for n in failed) +
                         f"\n--- console:\n{run.result.output[-3000:]}")
        self.assertEqual(run.result.script_status, 0, run.result.output[-3000:])

    def refusal(self, part_class):
        """What the selected QEMU says when asked for `part_class`'s front end, its daemon
        running, under TCG: it must exit at once, before running any guest code (-S)."""
        with qemu_guest.work_dir("kvm") as work:
            part = part_class(BIN_DIR, work)
            with qemu_guest.Daemon(part.argv(), part.sock):
                argv = qemu_guest.qemu_command() + [
                    "-machine", "q35", "-accel", "tcg", "-m", "256M", "-object",
                    "memory-backend-memfd,id=mem,size=256M,share=on", "-numa", "node,memdev=mem",
                    "-nodefaults", "-display", "none", "-S"] + suite_guest.Part.qemu_args(part)
                if hasattr(part, "close"):  # its monitor is not needed here
                    part.close()
                refused = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.assertNotEqual(refused.returncode, 0, "QEMU started: run the part instead")
        return refused.stderr

    @classmethod
    def tearDownClass(cls):
        qemu_guest.select(kernel="6.12", qemu="10.0")
        pairs = [(k, q) for k in KERNELS for q in QEMUS if (k, q) in RESULTS]
        if not pairs:
            return
        lines = ["| daemon | " + " | ".join(f"Linux {k}, QEMU {q}" for k, q in pairs) + " |",
                 "| --- |" + " --- |" * len(pairs)]
        for part in suite_guest.PARTS:
            lines.append(f"| vhost-user-{part.name} | " +
                         " | ".join(RESULTS[p].get(part.name, "?") for p in pairs) + " |")
        table = "\n".join(lines) + "\n"
        print("\n" + table)
        outputs = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
        if outputs:
            with open(os.path.join(outputs, "compat_table.md"), "w") as f:
                f.write(table)


def add_pair(kernel, qemu):
    name = f"test_linux_{kernel.replace('.', '_')}_qemu_{qemu.replace('.', '_')}"
    setattr(CompatMatrixTest, name, lambda self: self.run_pair(kernel, qemu))


for k in KERNELS:
    for q in QEMUS:
        add_pair(k, q)

if __name__ == "__main__":
    BIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[1])))
    sys.argv[1:] = [a for a in sys.argv[1:] if not os.path.exists(a)]  # unittest's own arguments
    unittest.main(verbosity=2)
