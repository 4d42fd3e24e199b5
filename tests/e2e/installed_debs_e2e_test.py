"""The Debian packages installed on this machine serve a guest (issue 19): scripts/build_debs.sh
builds them from the Bazel-built daemons, `dpkg -i` installs them, and suite_guest's guest (Linux
6.12 under QEMU 10.0) uses every daemon it has a part for, each started from /usr/libexec as
installed. Then `man` finds the manuals, each vhost-user.json descriptor names its installed
binary, the systemd template units are in /lib/systemd/system, vhost-user-common's postinst made
the user vhost-user, vhost-user-stat (in PATH) reads an installed daemon's statistics, and with
vhost-user-gpu-virgl installed beside it the installed vhost-user-gpu offers 3D (libvirt's view).
Packages this test installed are removed again (`dpkg --purge`); any that were installed before it
are left as they were (and so is the user vhost-user: Debian keeps system users on purge).

Usage: installed_debs_e2e_test.py DAEMON_OR_TOOL... (Bazel passes them; bazel-bin's layout)
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite_guest  # noqa: E402

BIN_DIR = None
# The source tree (scripts/, packaging/, the manuals), through this file's runfiles link.
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def installed(package):
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                            capture_output=True, text=True).stdout
    return status == "install ok installed"


class InstalledDebsTest(unittest.TestCase):

    def test_installed_packages_serve_a_guest(self):
        with tempfile.TemporaryDirectory(prefix="debs-") as work:
            out = os.path.join(work, "debs")
            subprocess.run(["bash", os.path.join(SOURCE, "scripts/build_debs.sh"),
                            "--bin-dir", BIN_DIR, "--out-dir", out], check=True,
                           stdout=subprocess.DEVNULL)
            debs = sorted(glob.glob(os.path.join(out, "*.deb")))
            packages = [os.path.basename(d).split("_")[0] for d in debs]
            for p in ["vhost-user-blk", "vhost-user-common", "vhost-user-stat",
                      "vhost-user-gpu-virgl"]:
                self.assertIn(p, packages)
            before = {p for p in packages if installed(p)}
            subprocess.run(["dpkg", "-i"] + debs, check=True, stdout=subprocess.DEVNULL)
            try:
                self.check_installed(work, packages)
            finally:
                fresh = [p for p in packages if p not in before]
                if fresh:
                    subprocess.run(["dpkg", "--purge"] + fresh, check=True,
                                   stdout=subprocess.DEVNULL)
            for p in packages:
                if p not in before:
                    self.assertFalse(os.path.exists(f"/usr/libexec/{p}"), p)
                    self.assertFalse(os.path.exists(f"/lib/systemd/system/{p}@.service"), p)

    def check_installed(self, work, packages):
        # The guest's daemons from /usr/libexec, its tools from this test's runfiles, in the
        # folder layout suite_guest expects.
        layout = os.path.join(work, "bin")
        for part in suite_guest.PARTS:
            folder = os.path.join(layout, f"vhost-user-{part.name}")
            os.makedirs(folder)
            daemon = f"/usr/libexec/vhost-user-{part.name}"
            self.assertTrue(os.access(daemon, os.X_OK), daemon)
            os.symlink(daemon, os.path.join(folder, f"vhost-user-{part.name}"))
            for tool in glob.glob(os.path.join(BIN_DIR, f"vhost-user-{part.name}", "*_guest_tool")):
                os.symlink(os.path.abspath(tool), os.path.join(folder, os.path.basename(tool)))
        run = suite_guest.run(layout, announce=lambda line: None)
        failed = {n: lines for n, (ok, lines) in run.verdicts.items() if not ok}
        self.assertFalse(failed, f"{failed}\n{run.result.output[-3000:]}")
        for name, exe in run.executables.items():
            self.assertEqual(exe, f"/usr/libexec/vhost-user-{name}")
        # What a user looks for next: the manual, and the descriptor libvirt reads.
        # The helpers' manuals are their daemons' (vhost-user-snd(8), vhost-user-gpu(8)).
        for p in packages:
            if p in ("vhost-user-snd-bridge", "vhost-user-gpu-virgl", "vhost-user-common"):
                continue
            where = subprocess.run(["man", "-w", p], capture_output=True, text=True)
            self.assertEqual(where.returncode, 0, f"man {p}: {where.stderr}")
        self.check_systemd(packages)
        self.check_stat(work)
        self.check_virgl()
        descriptors = glob.glob("/usr/share/qemu/vhost-user/50-vhost-user-*.json")
        self.assertTrue(descriptors)
        for path in descriptors:
            with open(path) as f:
                described = json.load(f)
            self.assertTrue(os.access(described["binary"], os.X_OK), path)
        self.assertTrue(os.path.exists("/usr/share/qemu/vhost-user/50-vhost-user-blk.json"))

    def check_systemd(self, packages):
        # Every daemon's template pair, naming its installed binary; none enabled by the install.
        for p in packages:
            if p in ("vhost-user-snd-bridge", "vhost-user-gpu-virgl", "vhost-user-common",
                     "vhost-user-stat"):
                continue
            for kind in ("service", "socket"):
                self.assertTrue(os.path.isfile(f"/lib/systemd/system/{p}@.{kind}"), (p, kind))
            with open(f"/lib/systemd/system/{p}@.service") as f:
                self.assertIn(f"\nExecStart=/usr/libexec/{p} ", f.read())
        self.assertFalse(glob.glob("/etc/systemd/system/*/vhost-user-*"))
        # vhost-user-common's sysusers.d file, which its postinst has systemd-sysusers apply.
        self.assertTrue(os.path.isfile("/usr/lib/sysusers.d/vhost-user.conf"))
        if shutil.which("systemd-sysusers"):
            user = subprocess.run(["getent", "passwd", "vhost-user"], capture_output=True,
                                  text=True)
            self.assertEqual(user.returncode, 0, "postinst made no user vhost-user")

    def check_virgl(self):
        # The installed 3D build beside the installed static daemon: libvirt sees virgl and
        # render-node in --print-capabilities, and --virgl runs it with its installed Depends.
        caps = subprocess.run(["/usr/libexec/vhost-user-gpu", "--print-capabilities"],
                              capture_output=True, text=True, check=True)
        self.assertEqual(json.loads(caps.stdout)["features"], ["render-node", "virgl"])
        version = subprocess.run(["/usr/libexec/vhost-user-gpu", "--virgl", "--version"],
                                 capture_output=True, text=True,
                                 env=dict(os.environ, LD_DEBUG="libs"))
        self.assertEqual(version.returncode, 0, version.stderr[-2000:])
        self.assertIn("libvirglrenderer.so.1", version.stderr)  # the dynamic program ran

    def check_stat(self, work):
        # vhost-user-stat from PATH reads an installed daemon's --stats-socket.
        self.assertEqual(shutil.which("vhost-user-stat"), "/usr/bin/vhost-user-stat")
        stats = os.path.join(work, "rng.stats")
        daemon = subprocess.Popen(
            ["/usr/libexec/vhost-user-rng", "--socket-path=" + os.path.join(work, "rng.sock"),
             "--stats-socket=" + stats], stderr=subprocess.PIPE, text=True)
        try:
            # The stats socket listens before the daemon says it is ready.
            for line in daemon.stderr:
                if "ready for a front end" in line:
                    break
            reading = subprocess.run(["vhost-user-stat", "--json", stats], capture_output=True,
                                     text=True, timeout=30)
            self.assertEqual(reading.returncode, 0, reading.stderr)
            self.assertTrue(reading.stdout.startswith("ok "), reading.stdout)
            doc = json.loads(reading.stdout[3:])
            self.assertEqual((doc["daemon"], doc["pid"]), ("vhost-user-rng", daemon.pid))
            report = subprocess.run(["vhost-user-stat", "--all", stats], capture_output=True,
                                    text=True, timeout=30)
            self.assertEqual(report.returncode, 0, report.stderr)
            self.assertIn("vhost-user-rng " + os.path.join(work, "rng.sock"), report.stdout)
        finally:
            daemon.kill()
            daemon.wait()
            daemon.stderr.close()


if __name__ == "__main__":
    BIN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[1])))
    sys.argv[1:] = [a for a in sys.argv[1:] if not os.path.exists(a)]
    unittest.main(verbosity=2)
