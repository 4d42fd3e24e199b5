"""A Linux guest's virtio_gpu driver drives a vhost-user-gpu back end (a virtio-gpu 2D device)
through QEMU 10's vhost-user-gpu-pci, in a first boot, after a reboot and in a second QEMU:

- EDID and modes: /dev/dri/card0 appears with one connector whose EDID (from sysfs) has the
  fixed header and a valid checksum, and whose preferred timing is the size QEMU was given
  (xres/yres, not QEMU's 1280x800 default, so the back end must have asked QEMU for the display
  info and the EDID rather than invented them); the connector's mode list has that mode, first.
- A frame: gpu_guest_tool sets that mode (SETCRTC) on a dumb buffer holding a test pattern and
  flushes it whole (DIRTYFB), then draws a box and flushes just its rectangle (DIRTYFB with a
  clip: a transfer from an offset into the buffer, a partial flush); QEMU's screendump of the
  console then equals the pattern with the box pixel for pixel (checked whole, and at named
  points for a readable failure).
- A resolution the guest changes: the tool then sets the first smaller mode of the connector on a
  new buffer with the whole pattern, and QEMU's display takes that size and those pixels.
- A cursor: the tool sets a 64x64 ARGB cursor with a hotspot (CURSOR2), a second image, and
  moves it (CURSOR). Each new image's ioctl returns only once the back end has answered that
  image's fenced transfer. What QEMU does with the cursor cannot be seen here: screendump draws
  no cursor, and the vhost-user-gpu console demands a DMABUF-capable display (QEMU refuses
  `-vnc` on it: "The console requires display DMABUF support"; D-Bus and egl-headless need a
  host GPU render node, which this machine lacks), so the cursor's image, hotspot and moves
  reaching QEMU are left to our own integration tests.

Order, so nothing waits on time: virtio_gpu sends a new cursor image with a fenced transfer on
the control queue, behind the frame's transfers and flushes (which have no fence), and waits
for its answer. So a back end that deals with the control queue in order (and sends QEMU a
flush's pixels before answering later commands) has taken the whole frame before the tool draws
the box (the first cursor), and has sent QEMU the box before the tool says E2E-READY (the
second). QEMU reads that socket in its main loop, as it does the QMP monitor, and had it
readable long before the host could ask for the screendump (the full frame is larger than a
socket buffer: QEMU was reading it before the back end could go on). The host then takes the
screendump and types a line on the guest's console to let the tool go.

Usage: gpu_e2e_test.py PATH_TO_DAEMON PATH_TO_gpu_guest_tool (Bazel passes them). The daemon
is started as `DAEMON --socket-path=SOCK` (QEMU's contrib /usr/lib/qemu/vhost-user-gpu takes
the same command line).
"""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
TOOL = None

# QEMU's display size for the one output: deliberately not its 1280x800 default.
XRES, YRES = 1024, 640
HOST_TIMEOUT_S = 60  # for a step of the host side once the guest is ready

# Guest shell: virtio_gpu registers its connector (and the sysfs edid) a moment after
# /dev/dri/card0; waits for it (at most 20 s), names it $conn and probes it, which fills its mode
# list, rather than rely on the fbdev client having done so. For every guest that draws.
FIND_CONNECTOR = r"""
i=0
while ! ls /sys/class/drm/card0-*/edid > /dev/null 2>&1 && [ $i -lt 400 ]; do
  sleep 0.05; i=$((i + 1))
done
conn=$(dirname $(ls /sys/class/drm/card0-*/edid | head -1))
echo detect > $conn/status
"""

GUEST_SCRIPT = FIND_CONNECTOR + r"""
echo "E2E-RESULT card=$(ls /dev/dri/ | tr '\n' ' ')"
echo "E2E-RESULT connector=$(basename $conn)"
echo "E2E-RESULT status=$(cat $conn/status)"
echo "E2E-RESULT modes=$(tr '\n' ' ' < $conn/modes)"
echo "E2E-RESULT edid_hex=$(od -An -v -tx1 $conn/edid | tr -d ' \n')"
/bin/gpu_guest_tool edid $conn/edid
echo "E2E-RESULT edid_rc=$?"
/bin/gpu_guest_tool show
echo "E2E-RESULT show_rc=$?"
"""


def pattern_rgb(w, h):
    """gpu_guest_tool's Pattern (with its box) as a PPM's RGB bytes, row after row."""
    red, green, blue = b"\xff\x00\x00", b"\x00\xff\x00", b"\x00\x00\xff"
    white, grey, yellow = b"\xff\xff\xff", b"\x80\x80\x80", b"\xff\xff\x00"
    cyan = b"\x00\xff\xff"
    half_w, half_h = w // 2, h // 2
    box_x, box_y, box_w, box_h = half_w + 20, half_h + 12, 40, 24
    top = bytearray(red * half_w + green * (w - half_w))
    marked = bytearray(top)
    marked[16 * 3:80 * 3] = yellow * 64
    bottoms = []
    for band in (0, 1):  # (y >> 3) & 1
        row = bytearray(blue * half_w)
        for x in range(half_w, w):
            row += white if ((x >> 3) ^ band) & 1 else grey
        boxed = bytearray(row)
        boxed[box_x * 3:(box_x + box_w) * 3] = cyan * box_w
        bottoms.append((row, boxed))
    out = bytearray()
    for y in range(h):
        if y < half_h:
            out += marked if 16 <= y < 48 else top
        else:
            out += bottoms[(y >> 3) & 1][box_y <= y < box_y + box_h]
    return bytes(out)


def tool_entries():
    """gpu_guest_tool (and any libraries it needs) for the initramfs, as /bin/gpu_guest_tool
    whatever its name on the host."""
    entries = qemu_guest.host_binary_entries(TOOL)
    own = f"bin/{os.path.basename(TOOL)}"
    return [("bin/gpu_guest_tool", kind, payload) if path == own else (path, kind, payload)
            for path, kind, payload in entries]


def read_ppm(path):
    """(width, height, RGB bytes) of a binary PPM (P6, maxval 255) as QEMU's screendump writes."""
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval, separated by whitespace
        while data[pos:pos + 1].isspace():
            pos += 1
        start = pos
        while not data[pos:pos + 1].isspace():
            pos += 1
        fields.append(data[start:pos])
    pos += 1  # the single whitespace byte before the pixels
    if fields[0] != b"P6" or fields[3] != b"255":
        raise AssertionError(f"not a P6/255 PPM: {fields}")
    w, h = int(fields[1]), int(fields[2])
    return w, h, data[pos:pos + w * h * 3]


def parse_edid(edid):
    """(header ok, checksum ok, preferred WxH from the first detailed timing descriptor)."""
    header = edid[:8] == bytes([0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0])
    checksum = len(edid) >= 128 and sum(edid[:128]) % 256 == 0
    d = edid[54:72]
    hactive = d[2] | (d[4] >> 4) << 8
    vactive = d[5] | (d[7] >> 4) << 8
    return header, checksum, f"{hactive}x{vactive}"


BOOTS = 2  # a reboot resets the device under the same connection


class GpuGuestTest(unittest.TestCase):

    def test_edid_modes_and_a_frame_through_the_guest_driver(self):
        """In a first boot, after a reboot (the device reset under the same connection) and in
        a second QEMU (a new front end, with a new display socket, of the same daemon)."""
        sessions = []  # what the host saw while the guest held its frame on screen, per boot

        with qemu_guest.work_dir("gpu") as work:
            sock = os.path.join(work, "gpu.sock")
            dump = os.path.join(work, "screen.ppm")

            def run(runner):
                qmp_ours, qmp_theirs, monitor = qemu_guest.qmp_socketpair()
                qmp = []  # one client per QEMU: its greeting comes once

                def on_line(line):
                    if "E2E-READY frame" not in line:
                        return None
                    host = {}
                    sessions.append(host)
                    try:
                        t0 = time.time()
                        host["daemon_alive"] = daemon.alive()  # serving the guest, with QEMU
                        if not qmp:
                            qmp.append(qemu_guest.Qmp(sock=qmp_ours, timeout=HOST_TIMEOUT_S))
                        qmp[0].command("screendump", filename=dump, format="ppm")
                        host["screen"] = read_ppm(dump)
                        host["screendump_seconds"] = time.time() - t0
                    except Exception as e:  # reported below; the guest must still be let go
                        host["error"] = repr(e)
                    return "go\n"  # gpu_guest_tool exits on this line

                devices = ["-chardev", f"socket,id=gpu0,path={sock}",
                           "-device",
                           f"vhost-user-gpu-pci,chardev=gpu0,xres={XRES},yres={YRES}"] + monitor
                try:
                    return runner(GUEST_SCRIPT, devices, modules=["virtio_gpu"], work=work,
                                  timeout=120, extra_entries=tool_entries(), on_line=on_line,
                                  pass_fds=[qmp_theirs.fileno()], console_input=True)
                finally:
                    qmp_theirs.close()
                    qmp_ours.close()

            with qemu_guest.Daemon([DAEMON, f"--socket-path={sock}"], sock) as daemon:
                first = run(lambda *a, **k: qemu_guest.run_guest(*a, boots=BOOTS, **k))
                second = run(lambda *a, **k: qemu_guest.run_guest_again(daemon, *a, **k))
                log = daemon.read_log()
                # The daemon outlives its front ends, waiting for the next. (QEMU's contrib
                # daemon, which this test was first written against, exits when QEMU goes away.)
                self.assertTrue(daemon.alive(), log)
        for result in (first, second):
            self.assertFalse(result.timed_out, result.output[-6000:] + log[-2000:])
        boots = first.boots + second.boots
        self.assertEqual(len(boots), BOOTS + 1, second.output[-6000:] + log[-2000:])
        # Two frames per session: the preferred mode, then the smaller one the guest switches to.
        self.assertEqual(len(sessions), 2 * (BOOTS + 1), second.output[-6000:] + log[-2000:])
        for n, boot in enumerate(boots):
            with self.subTest(session=n + 1):
                self.check_session(boot, sessions[2 * n], log)
                self.check_resolution_change(boot, sessions[2 * n + 1], log)
        self.assertEqual(log.count("front end connected"), 2, log)

    def check_session(self, boot, host, log):
        output = boot.output[-4000:] + "\n--- daemon log:\n" + log[-2000:]
        self.assertEqual(boot.script_status, 0, output)
        self.assertNotIn("error", host, output)
        self.assertIn("screen", host, f"the guest never said E2E-READY frame:\n{output}")
        self.assertTrue(host["daemon_alive"], output)
        r = boot.results
        self.assertNotIn("error", r, output)

        # 1. The DRM device, its connector and EDID, and the mode list.
        self.assertEqual(r["card"].split()[0], "card0", output)
        self.assertEqual(r["status"], "connected", output)
        edid = bytes.fromhex(r["edid_hex"])
        header, checksum, preferred = parse_edid(edid)
        self.assertTrue(header, r["edid_hex"])
        self.assertTrue(checksum, r["edid_hex"])
        self.assertEqual(preferred, f"{XRES}x{YRES}")
        self.assertEqual((r["edid_header"], r["edid_checksum"]), ("ok", "ok"), output)
        self.assertEqual(r["edid_preferred"], preferred, output)  # the guest tool read the same
        modes = r["modes"].split()
        self.assertIn(preferred, modes)
        self.assertEqual(modes[0], preferred, modes)  # DRM lists the preferred mode first
        self.assertEqual(r["mode"], preferred, output)  # and the tool set it

        # 2. The frame, as QEMU's console holds it.
        w, h, rgb = host["screen"]
        self.assertEqual((w, h), (XRES, YRES))
        expected = pattern_rgb(w, h)

        def pixel(image, x, y):
            return image[(y * w + x) * 3:(y * w + x) * 3 + 3].hex()

        box_x, box_y = w // 2 + 20, h // 2 + 12
        points = [(0, 0), (w // 2 - 1, 0), (w // 2, 0), (w - 1, 0), (16, 16), (79, 47),
                  (80, 47), (15, 16), (0, h // 2 - 1), (0, h // 2), (w // 2 - 1, h - 1),
                  (w // 2, h // 2), (w // 2 + 8, h // 2), (w - 1, h - 1), (w - 9, h - 1),
                  (box_x, box_y), (box_x + 39, box_y + 23), (box_x - 1, box_y),
                  (box_x + 40, box_y + 23), (box_x, box_y + 24)]
        self.assertEqual({p: pixel(rgb, *p) for p in points},
                         {p: pixel(expected, *p) for p in points})
        if rgb != expected:
            wrong = [(i % w, i // w) for i in range(w * h) if rgb[i * 3:i * 3 + 3] !=
                     expected[i * 3:i * 3 + 3]]
            self.fail(f"{len(wrong)} pixels differ from the pattern, first {wrong[:10]}")
        self.assertEqual(r["box"], f"{box_x},{box_y} 40x24", output)

        # 3. The cursor: set (its fenced transfer answered) and moved; see the docstring.
        self.assertEqual(r["cursor"], "set 64x64 at 100,120 hot 5,7", output)
        self.assertEqual(r["cursor2"], "set", output)
        self.assertEqual(r["cursor_moved"], "300,200", output)
        self.assertEqual(r["released"], "host", output)
        self.assertEqual(r["show_rc"], "0", output)
        print(f"gpu: screendump and check {host['screendump_seconds']:.2f} s", file=sys.stderr)

    def check_resolution_change(self, boot, host, log):
        """The guest set a smaller mode on a new buffer: QEMU's display has that size and the
        whole pattern."""
        output = boot.output[-4000:] + "\n--- daemon log:\n" + log[-2000:]
        self.assertNotIn("error", host, output)
        r = boot.results
        w, h, rgb = host["screen"]
        self.assertEqual(r["mode2"], f"{w}x{h}", output)
        self.assertTrue(w <= XRES and h <= YRES and (w, h) != (XRES, YRES), (w, h))
        if rgb != pattern_rgb(w, h):
            expected = pattern_rgb(w, h)
            wrong = [(i % w, i // w) for i in range(w * h) if rgb[i * 3:i * 3 + 3] !=
                     expected[i * 3:i * 3 + 3]]
            self.fail(f"{w}x{h}: {len(wrong)} pixels differ from the pattern, first {wrong[:10]}")


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    TOOL = os.path.abspath(sys.argv.pop(1))
    unittest.main()
