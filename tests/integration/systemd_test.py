"""A daemon under systemd's protocols, with the real seccomp filter (--seccomp=kill): socket
activation (systemd-socket-activate passes the listener as fd 3), readiness and status on
NOTIFY_SOCKET, what is refused (LISTEN_FDS that is no socket, beside --socket-path), a
LISTEN_PID for another process ignored; and `systemd-analyze verify` of every generated unit.
Usage: systemd_test.py RNG_DAEMON GENERATE_UNITS_SH ALL_DAEMONS..."""
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import unittest

RNG = os.path.abspath(sys.argv[1])
GENERATE = os.path.abspath(sys.argv[2])
DAEMONS = [os.path.abspath(p) for p in sys.argv[3:]]
TIMEOUT = 10
GET_FEATURES = 1
VERSION_1 = 1 << 32


def get_features(path):
    """A front end's first question over the socket at `path`; the reply's feature bits."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(TIMEOUT)
        c.connect(path)
        c.sendall(struct.pack("<III", GET_FEATURES, 1, 0))
        request, flags, size, features = struct.unpack("<IIIQ", c.recv(20, socket.MSG_WAITALL))
        assert request == GET_FEATURES and flags & 4 and size == 8, (request, flags, size)
        return features


def at_3(fd):
    """subprocess arguments giving the child `fd` as its fd 3, as a service manager passes it
    (the test's own fd 3 is something else)."""
    if fd is None:
        return {}
    return {"pass_fds": [3], "preexec_fn": lambda: os.dup2(fd, 3)}


def with_own_pid(argv):
    """argv run so that LISTEN_PID is its own pid: a shell that sets it to $$, then execs."""
    return ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"] + argv


class SystemdTest(unittest.TestCase):
    def setUp(self):
        # In /tmp: Bazel's TEST_TMPDIR is too long for a socket path.
        self.dir = tempfile.mkdtemp(dir="/tmp", prefix="systemd_test_")
        self.addCleanup(shutil.rmtree, self.dir)
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.path("notify"))
        self.notify.settimeout(TIMEOUT)
        self.addCleanup(self.notify.close)

    def path(self, name):
        return os.path.join(self.dir, name)

    def notification(self):
        return self.notify.recv(4096).decode()

    def start(self, argv, env=None, fd3=None):
        env = dict(os.environ, **(env or {}), NOTIFY_SOCKET=self.path("notify"))
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True, **at_3(fd3))
        self.addCleanup(lambda: proc.poll() is None and (proc.kill(), proc.wait()))
        return proc

    def stop(self, proc):
        """SIGTERM: STOPPING=1, exit status 0, and no syscall the sandbox forbade."""
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.notification(), "STOPPING=1")
        _, err = proc.communicate(timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 0, err)
        self.assertNotIn("seccomp", err)

    def run_refused(self, argv, env, fd3=None):
        """The daemon's stderr, which must be one line, and exit status 2."""
        proc = subprocess.run(argv, env=dict(os.environ, **env), stderr=subprocess.PIPE,
                              text=True, timeout=TIMEOUT, **at_3(fd3))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertEqual(len(proc.stderr.splitlines()), 1, proc.stderr)
        return proc.stderr

    def listener(self):
        """A listening socket's fd, for a child's fd 3."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(self.path("passed.sock"))
        s.listen(1)
        self.addCleanup(s.close)
        return s.fileno()

    def test_socket_activated_daemon_serves_and_notifies(self):
        sock = self.path("rng.sock")
        proc = self.start(["systemd-socket-activate", "-l", sock,
                           "-E", "NOTIFY_SOCKET=" + self.path("notify"), RNG])
        # It listens before it starts the daemon, which it does on the first connection.
        line = proc.stderr.readline()
        self.assertIn("Listening on " + sock, line)
        self.assertTrue(get_features(sock) & VERSION_1)
        self.assertEqual(self.notification(), "READY=1\nSTATUS=waiting for a front end on " + sock)
        self.assertEqual(self.notification(), "STATUS=front end connected")
        self.assertEqual(self.notification(), "STATUS=waiting for a front end")
        # The daemon (systemd-socket-activate became it) serves the next front end too.
        self.assertTrue(get_features(sock) & VERSION_1)
        self.assertEqual(self.notification(), "STATUS=front end connected")
        self.assertEqual(self.notification(), "STATUS=waiting for a front end")
        self.stop(proc)

    def test_notifications_with_socket_path(self):
        sock = self.path("rng.sock")
        proc = self.start([RNG, "--socket-path=" + sock])
        self.assertEqual(self.notification(), "READY=1\nSTATUS=waiting for a front end on " + sock)
        self.assertTrue(get_features(sock) & VERSION_1)
        self.assertEqual(self.notification(), "STATUS=front end connected")
        self.assertEqual(self.notification(), "STATUS=waiting for a front end")
        self.stop(proc)

    def test_listen_pid_of_another_process_is_ignored(self):
        fd = self.listener()
        env = {"LISTEN_FDS": "1", "LISTEN_PID": "1"}
        # Nothing else to listen on: as if there were no LISTEN_FDS at all.
        err = self.run_refused([RNG], env, fd3=fd)
        self.assertIn("exactly one of --socket-path and --fd", err)
        # With --socket-path, no conflict: the daemon serves its own socket.
        sock = self.path("own.sock")
        proc = self.start([RNG, "--socket-path=" + sock], env, fd3=fd)
        self.assertEqual(self.notification(), "READY=1\nSTATUS=waiting for a front end on " + sock)
        self.assertTrue(get_features(sock) & VERSION_1)
        self.assertEqual(self.notification(), "STATUS=front end connected")
        self.assertEqual(self.notification(), "STATUS=waiting for a front end")
        self.stop(proc)

    def test_refused_activations(self):
        with open("/dev/null") as null:
            err = self.run_refused(with_own_pid([RNG]), {"LISTEN_FDS": "1"}, fd3=null.fileno())
        self.assertIn("LISTEN_FDS: 3 is not a listening socket", err)
        fd = self.listener()
        err = self.run_refused(with_own_pid([RNG, "--socket-path=" + self.path("x.sock")]),
                               {"LISTEN_FDS": "1"}, fd3=fd)
        self.assertIn("--socket-path conflicts with the socket passed by socket activation", err)
        err = self.run_refused(with_own_pid([RNG, "--fd=3"]), {"LISTEN_FDS": "1"}, fd3=fd)
        self.assertIn("--fd conflicts", err)
        err = self.run_refused(with_own_pid([RNG]), {"LISTEN_FDS": "2"}, fd3=fd)
        self.assertIn("LISTEN_FDS=2", err)

    def test_activation_by_hand_serves_fd_3(self):
        proc = self.start(with_own_pid([RNG]), {"LISTEN_FDS": "1"}, fd3=self.listener())
        self.assertEqual(self.notification(),
                         "READY=1\nSTATUS=waiting for a front end on " + self.path("passed.sock"))
        self.assertTrue(get_features(self.path("passed.sock")) & VERSION_1)
        self.assertEqual(self.notification(), "STATUS=front end connected")
        self.assertEqual(self.notification(), "STATUS=waiting for a front end")
        self.stop(proc)

    def test_fd_may_be_a_connected_socket(self):
        # What libvirt hands a vhost-user-gpu it starts: --fd naming one end of a socketpair
        # whose other end is QEMU's. That one front end is served; when it goes, so does the
        # daemon (there is nothing to accept), with exit status 0.
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        proc = self.start([RNG, "--fd=3"], fd3=theirs.fileno())
        theirs.close()
        self.assertTrue(self.notification().startswith("READY=1\n"))
        with ours:
            ours.settimeout(TIMEOUT)
            ours.sendall(struct.pack("<III", GET_FEATURES, 1, 0))
            request, flags, size, features = struct.unpack("<IIIQ",
                                                           ours.recv(20, socket.MSG_WAITALL))
            self.assertEqual((request, flags & 4, size), (GET_FEATURES, 4, 8))
            self.assertTrue(features & VERSION_1)
            self.assertEqual(self.notification(), "STATUS=front end connected")
        self.assertEqual(self.notification(), "STOPPING=1")
        _, err = proc.communicate(timeout=TIMEOUT)
        self.assertEqual(proc.returncode, 0, err)
        self.assertIn("nothing more to serve", err)

    def test_units_verify(self):
        # The daemons where ExecStart= names them; systemd-analyze checks they are executables.
        libexec = self.path("libexec")
        os.mkdir(libexec)
        devices = []
        for daemon in DAEMONS:
            os.symlink(daemon, os.path.join(libexec, os.path.basename(daemon)))
            devices.append(os.path.basename(daemon).removeprefix("vhost-user-"))
        units = self.path("units")
        subprocess.run([GENERATE, units, libexec] + devices, check=True, timeout=TIMEOUT)
        files = sorted(os.listdir(units))
        self.assertEqual(len(files), 2 * len(devices), files)
        for device in devices:
            with open(os.path.join(units, f"vhost-user-{device}@.service")) as f:
                self.assertIn("Type=notify\n", f.read())
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no"] + [os.path.join(units, f) for f in files],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        # Warnings (unknown keys, bad values) do not always fail it: none is allowed.
        self.assertEqual((result.returncode, result.stdout), (0, ""))


if __name__ == "__main__":
    unittest.main(argv=sys.argv[:1])
