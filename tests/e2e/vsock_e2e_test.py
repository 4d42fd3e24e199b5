"""A Linux guest's virtio-vsock driver against vhost-user-vsock: a guest program connects to the
host (CID 2) and its data comes back through a host echo server at <uds-path>_PORT, checked byte
by byte; seqpacket keeps message boundaries; and a host program connects into the guest with
"CONNECT PORT\\n", is answered "OK <port>\\n" and gets its data echoed by a guest server.

Usage: vsock_e2e_test.py PATH_TO_vhost-user-vsock PATH_TO_vsock_guest_tool (Bazel passes them).
"""
import hashlib
import os
import socket
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
TOOL = None

GUEST_SCRIPT = r"""
vsock_guest_tool client 5000 8388608
vsock_guest_tool seqpacket 5001
vsock_guest_tool server 6000
"""


class EchoServer:
    """Echoes every connection on a listener at `path` (stream or seqpacket)."""

    def __init__(self, path, kind=socket.SOCK_STREAM):
        self.listener = socket.socket(socket.AF_UNIX, kind)
        self.listener.bind(path)
        self.listener.listen(8)
        self.kind = kind
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(conn,), daemon=True).start()

    def echo(self, conn):
        with conn:
            while True:
                data = conn.recv(1 << 20)
                if not data:
                    return
                conn.sendall(data)


def host_client(uds, port, data, results):
    """Connects into the guest through the daemon's socket, sends `data`, reads the echo."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(uds)
        s.sendall(f"CONNECT {port}\n".encode())
        line = b""
        while not line.endswith(b"\n"):
            line += s.recv(1)
        results["ok_line"] = line.decode().strip()
        sender = threading.Thread(target=lambda: (s.sendall(data), s.shutdown(socket.SHUT_WR)))
        sender.start()
        got = bytearray()
        while True:
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
        sender.join()
        results["echo_sha"] = hashlib.sha256(got).hexdigest()


class VsockGuestTest(unittest.TestCase):

    # Then again after a reboot (the device reset under the same connection) and in a restarted
    # QEMU (a new front end of the same daemon process): each boot talks both ways.
    def test_guest_and_host_talk_both_ways_across_a_reboot_and_restart(self):
        data = os.urandom(4 << 20)
        results = []  # per boot: what the host client saw
        clients = []
        with qemu_guest.work_dir("vsock") as work:
            sock = os.path.join(work, "vhost.sock")
            uds = os.path.join(work, "v.sock")
            EchoServer(uds + "_5000")
            EchoServer(uds + "_5001", socket.SOCK_SEQPACKET)

            def on_line(line):
                if "E2E-BEGIN" in line:
                    results.append({})
                elif "E2E-READY server" in line:
                    clients.append(threading.Thread(target=host_client,
                                                    args=(uds, 6000, data, results[-1])))
                    clients[-1].start()

            argv = [DAEMON, f"--socket-path={sock}", f"--uds-path={uds}", "--guest-cid=7", "-v=1"]
            run = dict(script=GUEST_SCRIPT, modules=["vmw_vsock_virtio_transport"], work=work,
                       timeout=180, extra_entries=qemu_guest.host_binary_entries(TOOL),
                       on_line=on_line, devices=["-chardev", f"socket,id=vs0,path={sock}",
                                                 "-device", "vhost-user-vsock-pci,chardev=vs0"])
            with qemu_guest.Daemon(argv, sock) as daemon:
                guests = [qemu_guest.run_guest(boots=2, **run),
                          qemu_guest.run_guest_again(daemon, **run)]
                for client in clients:
                    client.join(30)
                self.assertTrue(daemon.alive(), daemon.read_log())
                log = daemon.read_log()
        boots = []
        for guest in guests:
            self.assertFalse(guest.timed_out, guest.output[-3000:] + log[-3000:])
            boots += guest.boots
        self.assertEqual(len(boots), 3, guests[-1].output[-3000:])
        self.assertEqual(len(results), 3, results)
        for boot, host in zip(boots, results):
            r = boot.results
            self.assertNotIn("insmod_failed", r, boot.output[-3000:])
            self.assertEqual(r.get("client_echoed"), str(8 << 20), boot.output[-3000:])
            self.assertEqual(r.get("client_mismatches"), "0")
            self.assertEqual(r.get("seqpacket"), "1ok,3000ok,70000ok,", boot.output[-3000:])
            self.assertTrue(host.get("ok_line", "").startswith("OK "), host)
            self.assertEqual(r.get("server_echoed"), str(len(data)), boot.output[-3000:])
            self.assertEqual(host.get("echo_sha"), hashlib.sha256(data).hexdigest())


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    TOOL = os.path.abspath(sys.argv.pop(1))
    unittest.main()
