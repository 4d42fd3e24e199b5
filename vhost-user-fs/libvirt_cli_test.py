"""vhost-user-fs takes the command line libvirt 11 gives a virtiofsd (<filesystem> with
<binary path=...>): libvirt reads --print-capabilities, and only a daemon offering
"separate-options" gets the separate options below; others get `-o source=DIR,...`, which is
not ours. The argument lists are those libvirt 11.3 wrote in its domain log
(tests/e2e/libvirt_e2e_test.py boots a guest through libvirt itself).

Usage: libvirt_cli_test.py PATH_TO_vhost-user-fs (Bazel passes it).
"""
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

DAEMON = None


class LibvirtCommandLineTest(unittest.TestCase):

    def test_capabilities_offer_separate_options(self):
        out = subprocess.run([DAEMON, "--print-capabilities"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
        caps = json.loads(out)
        self.assertEqual(caps["type"], "fs")
        self.assertIn("separate-options", caps["features"])

    def serve_as_libvirt(self, options):
        """Starts the daemon as libvirt does (a listening socket it made, passed as --fd=N, then
        `options`) and asks it for its features over that socket; returns them."""
        with tempfile.TemporaryDirectory(dir="/tmp") as d:
            shared = os.path.join(d, "shared")
            os.mkdir(shared)
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            listener.bind(os.path.join(d, "fs.sock"))
            listener.listen(1)
            argv = [DAEMON, f"--fd={listener.fileno()}", "--shared-dir", shared] + options
            proc = subprocess.Popen(argv, pass_fds=[listener.fileno()], stderr=subprocess.PIPE)
            listener.close()
            try:
                front = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                front.settimeout(10)
                front.connect(os.path.join(d, "fs.sock"))
                front.sendall(struct.pack("<III", 1, 1, 0))  # GET_FEATURES, version 1
                reply = b""
                while len(reply) < 20:  # the reply's header and its 8-byte payload
                    chunk = front.recv(20 - len(reply))
                    if not chunk:
                        break
                    reply += chunk
                front.close()
            finally:
                proc.terminate()
                _, err = proc.communicate(timeout=10)
            self.assertEqual(proc.returncode, 0, err.decode(errors="replace"))
            self.assertEqual(len(reply), 20, err.decode(errors="replace"))
            request, flags, size, features = struct.unpack("<IIIQ", reply)
            self.assertEqual((request, size), (1, 8))
            return features

    def test_serves_with_libvirts_options(self):
        # <binary xattr='on'><cache mode='none'/><sandbox mode='chroot'/><thread_pool size='4'/>
        features = self.serve_as_libvirt(
            ["--cache", "never", "--sandbox", "chroot", "--xattr", "--thread-pool-size=4"])
        self.assertTrue(features & (1 << 32))  # VIRTIO_F_VERSION_1

    def test_serves_with_libvirts_defaults(self):
        # <binary path=...> alone: no options but --fd and --shared-dir.
        self.assertTrue(self.serve_as_libvirt([]) & (1 << 32))

    def test_serves_with_cache_always_and_the_namespace_sandbox(self):
        features = self.serve_as_libvirt(["--cache", "always", "--sandbox", "namespace"])
        self.assertTrue(features & (1 << 32))

    def test_the_old_dash_o_form_is_refused_as_a_usage_error(self):
        # What libvirt passes a daemon without "separate-options": refused, not misread.
        done = subprocess.run([DAEMON, "--fd=0", "-o", "source=/tmp"], capture_output=True,
                              text=True, timeout=10)
        self.assertEqual(done.returncode, 2, done.stderr)
        self.assertIn("--o", done.stderr)


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
