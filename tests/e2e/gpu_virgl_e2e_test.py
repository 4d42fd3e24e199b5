"""3D in a Linux guest: an OpenGL ES program renders through Mesa's virgl driver and Linux
6.12's virtio_gpu into our vhost-user-gpu --virgl (virglrenderer on the host's llvmpipe, no GPU
needed), through QEMU 10's vhost-user-gpu-pci:

- the static daemon hands --virgl over to vhost-user-gpu-virgl (the process serving QEMU runs
  that program) and offers VIRTIO_GPU_F_VIRGL, which QEMU passes on: the guest's GL_RENDERER
  is Mesa's virgl;
- gpu_gl_guest_tool clears four quadrants and draws a yellow square with a shader (compiled in
  the guest, run by the host's GL), and reads pixels back through GL (TRANSFER_FROM_HOST_3D):
  each region has its colour;
- it puts the frame on the connector (SET_SCANOUT of a 3D resource, RESOURCE_FLUSH): the
  daemon reads the texture back from virglrenderer and sends QEMU the pixels, and QEMU's
  screendump has the same regions in the same places (so nothing is upside down).

The GL program needs Mesa's shared libraries (some 180 MB with LLVM): rather than an
initramfs that size, QEMU shares the host's root read-only over 9p (-virtfs), and the guest
runs the program chrooted there with its own /dev, /proc and /sys.

Usage: gpu_virgl_e2e_test.py DAEMON VIRGL_DAEMON gpu_gl_guest_tool (Bazel passes them).
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_e2e_test  # noqa: E402  (read_ppm, FIND_CONNECTOR)
import qemu_guest  # noqa: E402

DAEMON = VIRGL_DAEMON = TOOL = None
XRES, YRES = 800, 600
HOST_TIMEOUT_S = 60

GUEST_SCRIPT = gpu_e2e_test.FIND_CONNECTOR + r"""
mkdir -p /host
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host
echo "E2E-RESULT host_root=$(ls /host/usr/lib/x86_64-linux-gnu/dri/virtio_gpu_dri.so)"
mount -t devtmpfs dev /host/dev
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t tmpfs tmp /host/tmp
echo "E2E-RESULT features=$(cat /sys/bus/virtio/drivers/virtio_gpu/virtio*/features)"
chroot /host /usr/bin/env MESA_SHADER_CACHE_DISABLE=true HOME=/tmp TOOL_PATH
echo "E2E-RESULT gl_rc=$?"
"""

# (name, x, y) of the screen, and the colour each region must have on it: the tool's frame.
REGIONS = [
    ("top_left", XRES // 4, YRES // 4, "ff0000"),
    ("top_right", 3 * XRES // 4, YRES // 4, "00ff00"),
    ("bottom_left", XRES // 4, 3 * YRES // 4, "0000ff"),
    ("bottom_right", 3 * XRES // 4, 3 * YRES // 4, "ffffff"),
    ("centre", XRES // 2, YRES // 2, "ffff00"),
]


class GpuVirglGuestTest(unittest.TestCase):

    def test_a_gl_program_renders_through_virgl_onto_the_display(self):
        host = {}
        with qemu_guest.work_dir("gpu-virgl") as work:
            sock = os.path.join(work, "gpu.sock")
            dump = os.path.join(work, "screen.ppm")
            qmp_ours, qmp_theirs, monitor = qemu_guest.qmp_socketpair()

            def on_line(line):
                if "E2E-READY gl-frame" not in line:
                    return None
                try:
                    host["exe"] = os.readlink(f"/proc/{daemon.proc.pid}/exe")
                    qmp = qemu_guest.Qmp(sock=qmp_ours, timeout=HOST_TIMEOUT_S)
                    qmp.command("screendump", filename=dump, format="ppm")
                    host["screen"] = gpu_e2e_test.read_ppm(dump)
                except Exception as e:  # reported below; the guest must still be let go
                    host["error"] = repr(e)
                return "go\n"

            devices = ["-chardev", f"socket,id=gpu0,path={sock}",
                       "-device", f"vhost-user-gpu-pci,chardev=gpu0,xres={XRES},yres={YRES}",
                       "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on"
                       ] + monitor
            script = GUEST_SCRIPT.replace("TOOL_PATH", os.path.realpath(TOOL))
            started = time.time()
            try:
                with qemu_guest.Daemon([DAEMON, f"--socket-path={sock}", "--virgl"],
                                       sock) as daemon:
                    result = qemu_guest.run_guest(
                        script, devices, modules=["virtio_gpu", "9p", "9pnet_virtio"],
                        work=work, timeout=300, memory_mb=1024, on_line=on_line,
                        pass_fds=[qmp_theirs.fileno()], console_input=True)
                    log = daemon.read_log()
            finally:
                qmp_theirs.close()
                qmp_ours.close()
        print(f"guest run: {time.time() - started:.1f} s", file=sys.stderr)
        context = result.output[-6000:] + log[-3000:]
        self.assertFalse(result.timed_out, context)
        self.assertNotIn("error", host, context + str(host.get("error")))
        r = result.results
        self.assertTrue(r["host_root"].endswith("virtio_gpu_dri.so"), context)
        # virtio's feature bits as sysfs lists them, bit 0 first: VIRTIO_GPU_F_VIRGL is bit 0.
        self.assertEqual(r["features"][0], "1", context)
        self.assertEqual(os.path.basename(host["exe"]), "vhost-user-gpu-virgl", host)
        self.assertIn("virgl", r["gl_renderer"], context)
        self.assertEqual(r["size"], f"{XRES}x{YRES}", context)
        # Read back in the guest through GL (TRANSFER_FROM_HOST_3D).
        # One line: "top_left=RRGGBB top_right=... centre=...".
        readback = dict(kv.split("=") for kv in ("top_left=" + r["top_left"]).split())
        print(f"guest GL_RENDERER: {r['gl_renderer']}; read back: {readback}", file=sys.stderr)
        for name, _, _, colour in REGIONS:
            self.assertEqual(readback[name], colour, (name, context))
        self.assertEqual(r["gl_rc"], "0", context)
        self.assertEqual(r["gl_done"], "1", context)
        # And on QEMU's display: the frame the daemon read back from virglrenderer.
        w, h, rgb = host["screen"]
        self.assertEqual((w, h), (XRES, YRES))
        for name, x, y, colour in REGIONS:
            at = (y * w + x) * 3
            self.assertEqual(rgb[at:at + 3].hex(), colour, f"{name} at ({x}, {y})")


if __name__ == "__main__":
    DAEMON, VIRGL_DAEMON, TOOL = sys.argv[1:4]
    del sys.argv[1:4]
    unittest.main()
