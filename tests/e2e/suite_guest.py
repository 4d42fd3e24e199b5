"""One Linux guest using every daemon of the suite at once: the README's demo (demo.py) and the
compatibility matrix (compat_matrix_test.py) both boot it.

Each daemon is a Part: how it is started, the QEMU device and guest modules it needs, its section
of the guest's script (run in a subshell, so one device failing does not hide the others), what
the host does while the guest runs (types keys, presses a button, connects over vsock, takes a
screendump), and its verdict from what the guest printed and what the host found. Which Linux
and which QEMU the guest uses is qemu_guest's selection.

A part's guest section prints `E2E-RESULT part_<name>=<status>` when it ends; a verdict also
needs the evidence the part names (a checksum equal on both sides, the keys typed, the tone's
frequency, the screendump's pixels), so a section that merely ran is not a pass.
"""
import contextlib
import hashlib
import io
import os
import re
import socket
import struct
import wave

import qemu_guest
import gpu_e2e_test as gpu  # its pattern and PPM helpers
import snd_e2e_test as snd  # its tone, WAV and alsa-lib helpers

TONE_HZ, TONE_SECONDS = 440.0, 1
SAMPLE_BYTES = 64 * 4096  # of /dev/hwrng
# The chi-square of SAMPLE_BYTES random bytes over 256 values has mean 255 and deviation ~23:
# above 400 is a one-in-10^10 event for a good source, and certain for a constant or a counter.
CHI_SQUARE_LIMIT = 400


def control_command(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        return s.recv(100).decode().strip()


class Part:
    """A daemon of the suite in the guest. Subclasses fill in the class attributes and override
    what they need."""

    name = ""
    device = ""  # QEMU's front end
    modules = []  # guest modules (from the kernel's package)
    out_of_tree = {}  # module -> its source in the kernel's tree, for kernels built without it
    deps_if_built = {}  # module -> what it needs from the kernel's package when built here
    prelude = ""  # script run before every part's section (e.g. to open an input device early)
    script = ""  # the part's section of the guest's script
    device_options = ""

    def __init__(self, bin_dir, work):
        self.bin_dir = bin_dir
        self.work = work
        self.note = ""  # what a pass leaves out, for the matrix's table
        self.sock = os.path.join(work, f"{self.name}.sock")
        self.seen = {}
        self.daemon = None

    def binary(self, name=None):
        name = name or f"vhost-user-{self.name}"
        return os.path.join(self.bin_dir, f"vhost-user-{self.name}", name)

    def argv(self):
        return [self.binary(), f"--socket-path={self.sock}"]

    def qemu_args(self):
        return ["-chardev", f"socket,id={self.name}0,path={self.sock}",
                "-device", f"{self.device},chardev={self.name}0{self.device_options}"]

    def guest_modules(self):
        """(modules from the kernel's package, modules built from its source): a driver the
        kernel's package lacks is built from `out_of_tree` (its source), after `deps_if_built`
        (what the built module needs from the package)."""
        _, version = qemu_guest.find_kernel()
        packaged, built = [], []
        for m in self.modules:
            if has_module(version, m) or m not in self.out_of_tree:
                packaged.append(m)
            else:
                packaged += self.deps_if_built.get(m, [])
                built.append(qemu_guest.out_of_tree_module(self.out_of_tree[m], m))
                self.note = f"{m} built from the kernel's source"
        return packaged, built

    def guest_entries(self):
        return []

    def on_line(self, line):
        """Called with each console line; a string returned is typed on the guest's console."""
        return None

    def checks(self, body):
        """(what, passed) pairs judged after the run from the guest's output `body`."""
        return []

    def verdict(self, body):
        """(passed, lines describing what was found)."""
        status = re.search(rf"E2E-RESULT part_{self.name}=(\d+)", body)
        checks = [("the guest's section ran to its end", status is not None and
                   status.group(1) == "0")] + self.checks(body)
        if "host_error" in self.seen:
            checks.append((f"the host's side failed at {self.seen['host_error']}", False))
        lines = [f"{'ok ' if ok else 'BAD'} {what}" for what, ok in checks]
        return all(ok for _, ok in checks), lines


class Rng(Part):
    name, device, modules = "rng", "vhost-user-rng-pci", ["virtio_rng"]
    script = r"""
echo "guest: hardware RNG: $(cat /sys/class/misc/hw_random/rng_current)"
echo "E2E-RESULT rng_current=$(cat /sys/class/misc/hw_random/rng_current)"
dd if=/dev/hwrng of=/tmp/sample bs=4096 count=64 iflag=fullblock 2>/dev/null
echo "E2E-RESULT rng_bytes=$(wc -c < /tmp/sample)"
od -An -v -tu1 /tmp/sample | awk '{ for (i = 1; i <= NF; i++) { c[$i]++; n++ } }
  END { e = n / 256; x = 0; for (v = 0; v < 256; v++) x += (c[v] - e) * (c[v] - e) / e;
        printf "E2E-RESULT rng_chi_square=%.1f\n", x }'
"""

    def checks(self, body):
        chi = re.search(r"rng_chi_square=([\d.]+)", body)
        return [("/dev/hwrng is virtio_rng", "rng_current=virtio_rng" in body),
                (f"{SAMPLE_BYTES} bytes read", f"rng_bytes={SAMPLE_BYTES}" in body),
                (f"byte histogram chi-square {chi and chi.group(1)} < {CHI_SQUARE_LIMIT}",
                 chi is not None and float(chi.group(1)) < CHI_SQUARE_LIMIT)]


class Blk(Part):
    name, device = "blk", "vhost-user-blk-pci"
    modules = ["virtio_blk", "crc32c_generic", "ext4"]
    script = r"""
head -c 262144 /dev/urandom > /tmp/file
echo "guest: disk /dev/vda: $(($(cat /sys/block/vda/size) / 2048)) MiB, serial $(cat /sys/block/vda/serial)"
echo "E2E-RESULT blk_serial=$(cat /sys/block/vda/serial)"
mke2fs -q /dev/vda >/dev/null && mkdir -p /mnt && mount -t ext2 /dev/vda /mnt
cp /tmp/file /mnt/file && sync && umount /mnt
mount -t ext2 /dev/vda /mnt
echo "guest: wrote and re-read a 256 KiB file on ext2: $(sha1sum < /mnt/file | cut -c1-16) vs $(sha1sum < /tmp/file | cut -c1-16)"
echo "E2E-RESULT blk_sums=$(sha1sum < /mnt/file | cut -c1-40),$(sha1sum < /tmp/file | cut -c1-40)"
umount /mnt
"""

    def argv(self):
        self.image = os.path.join(self.work, "disk.img")
        with open(self.image, "wb") as f:
            f.truncate(64 << 20)
        return super().argv() + [f"--blk-file={self.image}", "--serial=demo-disk"]

    def checks(self, body):
        sums = re.search(r"blk_sums=(\w+),(\w+)", body)
        return [("the disk's serial is the daemon's", "blk_serial=demo-disk" in body),
                ("a file on ext2 reads back what was written, after a remount",
                 sums is not None and sums.group(1) == sums.group(2))]


class Input(Part):
    name, device, modules = "input", "vhost-user-input-pci", ["virtio_input", "evdev"]
    TYPED = "hello from the host"
    # evdev passes on only what arrives after it is opened: listen before anything else.
    prelude = r"""
for e in /sys/class/input/event*; do
  [ "$(cat $e/device/name)" = "vhost-user virtual keyboard" ] && kbd=/dev/input/$(basename $e)
done
timeout 60 dd if=$kbd of=/tmp/keys bs=24 count=76 2>/dev/null &
reader=$!
until ls -l /proc/$reader/fd 2>/dev/null | grep -q /dev/input; do sleep 0.1; done
echo E2E-KEYBOARD-OPEN
"""
    # 24-byte input_events: type at 8 (16-bit words from 0), code at 9, value at 10.
    script = r"""
echo "guest: keyboard $kbd ($(cat /sys/class/input/$(basename $kbd)/device/name)); what the host typed:"
# The reader is the script's child, not this subshell's: wait for it by its pid.
while kill -0 $reader 2>/dev/null; do sleep 0.1; done
[ "$(wc -c < /tmp/keys)" -eq 1824 ] || echo "  (the keyboard went quiet before all 19 keys arrived)"
od -An -v -tu2 -w24 /tmp/keys | awk '
  BEGIN { split("q w e r t y u i o p", a, " "); for (i = 1; i <= 10; i++) key[15 + i] = a[i]
          split("a s d f g h j k l", b, " "); for (i = 1; i <= 9; i++) key[29 + i] = b[i]
          split("z x c v b n m", c, " "); for (i = 1; i <= 7; i++) key[43 + i] = c[i]
          key[57] = " " }
  $9 == 1 && $11 == 1 { printf "%s", ($10 in key) ? key[$10] : "?" }
  END { print "" }' | sed 's/^/  typed: /'
"""

    def argv(self):
        self.control = os.path.join(self.work, "keyboard.sock")
        return super().argv() + ["--virtual-device=keyboard", f"--control-socket={self.control}"]

    def on_line(self, line):
        if "E2E-KEYBOARD-OPEN" in line:
            control_command(self.control, f"type {self.TYPED}")

    def checks(self, body):
        return [(f"the guest read the keys the host typed ({self.TYPED!r})",
                 f"typed: {self.TYPED}" in body)]


class Gpio(Part):
    name, device, modules = "gpio", "vhost-user-gpio-pci", ["gpio_virtio"]
    out_of_tree = {"gpio_virtio": "drivers/gpio/gpio-virtio.c"}
    script = r"""
for c in /dev/gpiochip*; do
  case "$(gpio_guest_tool $c info)" in *button*) chip=$c;; esac
done
echo "guest: $chip: $(gpio_guest_tool $chip info)"
gpio_guest_tool $chip set 1 1 1
# Feature bit 0, VIRTIO_GPIO_F_IRQ, as the guest's driver negotiated it (QEMU 7.2 offers none).
dev=$(grep -l 0x0029 /sys/bus/virtio/devices/*/device | head -1)
echo "E2E-RESULT gpio_irq_feature=$(cut -c1 $(dirname $dev)/features)"
if [ "$(cut -c1 $(dirname $dev)/features)" = 1 ]; then
  echo "guest: waiting for an interrupt on line 0 (button)..."
  gpio_guest_tool $chip wait 0 30 | sed -n 's/E2E-RESULT edge=/guest: interrupt: line:level = /p'
else
  echo "guest: the front end offers no interrupts (VIRTIO_GPIO_F_IRQ)"
fi
"""

    def argv(self):
        self.control = os.path.join(self.work, "gpio.ctl")
        return super().argv() + ["--device-list=s8", "--sim-lines=button@in,led@out",
                                 f"--control-socket={self.control}"]

    def guest_entries(self):
        return qemu_guest.host_binary_entries(self.binary("gpio_guest_tool"))

    def on_line(self, line):
        if "E2E-READY set" in line:
            self.seen["led"] = control_command(self.control, "get led")
        elif "E2E-READY wait" in line:
            control_command(self.control, "set button 1")

    def checks(self, body):
        checks = [(f"the LED line the guest set reads high on the host ({self.seen.get('led')})",
                   self.seen.get("led") == "ok out 1")]
        if "gpio_irq_feature=0" in body and qemu_guest.selected()[1] == "7.2":
            # QEMU 7.2's vhost-user-gpio-pci never offers VIRTIO_GPIO_F_IRQ to the guest.
            self.note = "; ".join(filter(None, [self.note,
                                                "no interrupts: QEMU 7.2 does not offer them"]))
            return checks + [("the guest was not offered interrupts (QEMU 7.2)", True)]
        return checks + [("the guest negotiated interrupts", "gpio_irq_feature=1" in body),
                         ("the host's button press reached the guest as an interrupt",
                          "interrupt: line:level = 0:1" in body)]


class I2c(Part):
    name, device = "i2c", "vhost-user-i2c-pci"
    modules = ["i2c-dev", "i2c_virtio"]
    out_of_tree = {"i2c_virtio": "drivers/i2c/busses/i2c-virtio.c"}
    script = r"""
for d in /sys/class/i2c-dev/i2c-*; do
  case "$(cat $d/name)" in *virtio*) i2c=/dev/$(basename $d); name="$(cat $d/name)";; esac
done
echo "guest: I2C adapter $i2c ($name)"
i2c_guest_tool $i2c roundtrip 0x50 eeprom |
  sed 's/E2E-RESULT eeprom=/guest: wrote "vhost-user" into the EEPROM at 0x50, read back: /'
"""

    def argv(self):
        return super().argv() + ["--device-list=sim:0x50"]

    def guest_entries(self):
        return qemu_guest.host_binary_entries(self.binary("i2c_guest_tool"))

    def checks(self, body):
        return [("an EEPROM write on the bus reads back", "read back: vhost-user" in body)]


class Vsock(Part):
    name, device, modules = "vsock", "vhost-user-vsock-pci", ["vmw_vsock_virtio_transport"]
    MESSAGE = b"hello from a host program over vsock"
    script = r"""
echo "guest: vsock listening on port 6000 for a host program..."
vsock_guest_tool server 6000 | sed 's/E2E-RESULT server_echoed=/guest: echoed bytes back to the host: /'
"""

    def argv(self):
        self.uds = os.path.join(self.work, "vm.vsock")
        return super().argv() + [f"--uds-path={self.uds}", "--guest-cid=3"]

    def guest_entries(self):
        return qemu_guest.host_binary_entries(self.binary("vsock_guest_tool"))

    def on_line(self, line):
        """A host program reaching into the guest: CONNECT 6000 on the daemon's Unix socket."""
        if "E2E-READY server" not in line:
            return
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(self.uds)
            s.sendall(b"CONNECT 6000\n")
            ok = b""
            while not ok.endswith(b"\n"):
                ok += s.recv(1)
            s.sendall(self.MESSAGE)
            s.shutdown(socket.SHUT_WR)
            echo = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                echo += chunk
        self.seen["echo"] = echo
        self.seen["report"] = (f"{ok.decode().strip()}; sent {self.MESSAGE.decode()!r}, "
                               f"got back {echo.decode()!r}")

    def checks(self, body):
        return [(f"a host program's bytes came back through the guest ({self.seen.get('report')})",
                 self.seen.get("echo") == self.MESSAGE)]


class Fs(Part):
    name, device, modules = "fs", "vhost-user-fs-pci", ["virtiofs"]
    device_options = ",tag=share"
    HELLO = "hello from the host's shared directory"
    script = r"""
mkdir -p /share && mount -t virtiofs share /share
echo "guest: virtiofs share mounted on /share: $(ls /share | tr '\n' ' ')"
echo "guest: /share/hello.txt says: $(cat /share/hello.txt)"
echo "written by the guest" > /share/from-guest.txt
sync && umount /share
"""

    def argv(self):
        self.shared = os.path.join(self.work, "shared")
        os.makedirs(self.shared)
        with open(os.path.join(self.shared, "hello.txt"), "w") as f:
            f.write(self.HELLO)
        return super().argv() + [f"--shared-dir={self.shared}"]

    def checks(self, body):
        written = os.path.join(self.shared, "from-guest.txt")
        from_guest = open(written).read().strip() if os.path.exists(written) else None
        return [("the guest reads the host's file", f"hello.txt says: {self.HELLO}" in body),
                (f"the host reads the guest's file ({from_guest!r})",
                 from_guest == "written by the guest")]


class Scsi(Part):
    name, device, modules = "scsi", "vhost-user-scsi-pci", ["virtio_scsi", "sd_mod"]
    # virtio_scsi's scan and sd's probe are asynchronous, so poll for the disk.
    script = r"""
head -c 262144 /dev/urandom > /tmp/block
i=0
until sd=$(ls /sys/bus/scsi/devices/*:0:0:0/block 2>/dev/null) || [ $i -ge 600 ]; do
  sleep 0.05; i=$((i + 1))
done
echo "guest: SCSI disk /dev/$sd (virtio_scsi): $(($(cat /sys/block/$sd/size) / 2048)) MiB; sg_inq /dev/$sd says:"
sg_inq /dev/$sd | grep -E "(Vendor|Product) identification|Unit serial number" | sed 's/^ */  /; s/ *$//'
dd if=/tmp/block of=/dev/$sd bs=64k seek=16 oflag=direct 2>/dev/null
echo "guest: wrote 256 KiB at 1 MiB on /dev/$sd, read back (O_DIRECT): $(dd if=/dev/$sd bs=64k skip=16 count=4 iflag=direct 2>/dev/null | sha1sum | cut -c1-16) vs $(sha1sum < /tmp/block | cut -c1-16)"
"""

    def argv(self):
        self.image = os.path.join(self.work, "lun0.img")
        with open(self.image, "wb") as f:
            f.truncate(32 << 20)
        return super().argv() + [
            f"--lun=file={self.image},vendor=VHOSTUSR,product=DEMO-LUN,serial=demo-lun"]

    def guest_entries(self):
        return qemu_guest.host_binary_entries("/usr/bin/sg_inq")

    def checks(self, body):
        sums = re.search(r"read back \(O_DIRECT\): (\w+) vs (\w+)", body)
        with open(self.image, "rb") as f:
            f.seek(1 << 20)
            in_image = hashlib.sha1(f.read(256 << 10)).hexdigest()[:16]
        return [("INQUIRY names the LUN's vendor and serial",
                 "Vendor identification: VHOSTUSR" in body and "Unit serial number: demo-lun" in body),
                ("a block written with O_DIRECT reads back",
                 sums is not None and sums.group(1) == sums.group(2)),
                (f"the host's image file holds that block ({in_image})",
                 sums is not None and sums.group(2) == in_image)]


class Snd(Part):
    name, device, modules = "snd", "vhost-user-snd-pci", ["virtio_snd"]
    out_of_tree = {"virtio_snd": "sound/virtio"}
    deps_if_built = {"virtio_snd": ["snd_pcm"]}
    # virtio_snd registers the card once the device has answered its PCM, jack and channel map
    # queries.
    script = r"""
i=0
while [ ! -e /dev/snd/pcmC0D0p ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
echo "guest: sound: $(aplay -l | grep '^card 0')"
aplay -D hw:0,0 --period-time=@PERIOD_US@ --buffer-time=@BUFFER_US@ /tone.wav > /tmp/aplay 2>&1 &&
  rc=0 || rc=$?
sed 's/^/  aplay: /' /tmp/aplay
echo "guest: played a 1 s 440 Hz tone with aplay -D hw:0,0: exit status $rc"
""".replace("@PERIOD_US@", str(snd.PERIOD_US)).replace("@BUFFER_US@", str(snd.BUFFER_US))

    def argv(self):
        self.sink = os.path.join(self.work, "played.wav")
        return super().argv() + ["--backend=file", f"--playback-file={self.sink}"]

    def guest_entries(self):
        self.tone = snd.tone_frames(TONE_HZ, TONE_SECONDS)
        tone_wav = os.path.join(self.work, "tone.wav")
        snd.write_wav(tone_wav, self.tone)
        with open(tone_wav, "rb") as f:
            tone_file = f.read()
        return (qemu_guest.host_binary_entries("/usr/bin/aplay") +
                [("tone.wav", "file", (tone_file, 0o644))] + snd.sound_entries())

    def measure(self):
        """The frequency and duration of the sound in the WAV sink, and whether it is exactly
        the tone played; None if it holds none."""
        try:
            with open(self.sink, "rb") as f, wave.open(io.BytesIO(f.read()), "rb") as w:
                played = w.readframes(w.getnframes())
        except (OSError, EOFError, wave.Error):
            return None
        nonzero = [i for i, s in enumerate(struct.iter_unpack("<hh", played)) if s != (0, 0)]
        if not nonzero:
            return None
        held = played[nonzero[0] * snd.FRAME:(nonzero[-1] + 1) * snd.FRAME]
        crossings = snd.rising_crossings(snd.left_channel(held))
        if len(crossings) < 2:
            return None
        hz = (len(crossings) - 1) * snd.RATE / (crossings[-1] - crossings[0])
        return hz, len(held) // snd.FRAME / snd.RATE, held == self.tone

    def checks(self, body):
        tone = self.measure()
        found = "no tone" if tone is None else f"{tone[0]:.2f} Hz for {tone[1]:.3f} s"
        # Within 2 Hz, and a period or two of the second played, as snd_e2e_test.py asks.
        return [("aplay -D hw:0,0 succeeded", "hw:0,0: exit status 0" in body),
                (f"the WAV sink holds the tone ({found})",
                 tone is not None and abs(tone[0] - TONE_HZ) <= 2 and
                 abs(tone[1] - TONE_SECONDS) * snd.RATE <= 2 * snd.PERIOD_FRAMES),
                ("the sink's samples are exactly those played", tone is not None and tone[2])]


class Gpu(Part):
    name, device, modules = "gpu", "vhost-user-gpu-pci", ["virtio_gpu"]
    # The tool sets the preferred mode on a buffer with a test pattern and holds it until the host
    # has looked (its E2E-READY line reaches the host through the console; the host types a line
    # to let it go).
    script = gpu.FIND_CONNECTOR + r"""
echo "guest: display $(basename $conn) is $(cat $conn/status), preferred mode $(head -1 $conn/modes)"
(/bin/gpu_guest_tool show; echo "exit status $?") 2>&1 | tee /tmp/gpu | grep "^E2E-READY" || true
grep -E "^E2E-RESULT (mode|frame)=" /tmp/gpu | sed 's/^E2E-RESULT /  gpu_guest_tool: /'
echo "guest: drew the test pattern through virtio_gpu: $(tail -1 /tmp/gpu)"
"""

    def __init__(self, bin_dir, work):
        super().__init__(bin_dir, work)
        self.qmp_ours, self.qmp_theirs, self.monitor = qemu_guest.qmp_socketpair()

    def qemu_args(self):
        return super().qemu_args() + self.monitor

    def guest_entries(self):
        gpu.TOOL = self.binary("gpu_guest_tool")
        return gpu.tool_entries()

    def on_line(self, line):
        """Once the guest shows its pattern: QEMU's screendump of the display, compared with it.
        Only the tool's first frame is looked at (it then changes the resolution and asks again:
        let go at once)."""
        if "E2E-READY frame" not in line:
            return None
        if "screen" in self.seen or "screen_error" in self.seen:
            return "go\n"
        dump = os.path.join(self.work, "screen.ppm")
        try:
            # One QMP client per QEMU: QEMU greets a monitor connection once.
            qemu_guest.Qmp(sock=self.qmp_ours, timeout=60).command("screendump", filename=dump,
                                                                    format="ppm")
            w, h, rgb = gpu.read_ppm(dump)
            self.seen["screen"] = (w, h, rgb == gpu.pattern_rgb(w, h))
        except Exception as e:  # reported with the verdict; the guest must still be let go
            self.seen["screen_error"] = repr(e)
        return "go\n"

    def close(self):
        self.qmp_theirs.close()
        self.qmp_ours.close()

    def checks(self, body):
        screen = self.seen.get("screen")
        found = (f"{screen[0]}x{screen[1]}" if screen else
                 f"none: {self.seen.get('screen_error')}")
        return [("the guest's tool set the mode and drew",
                 "drew the test pattern through virtio_gpu: exit status 0" in body),
                (f"QEMU's screendump ({found}) is the guest's pattern pixel for pixel",
                 screen is not None and screen[2])]


PARTS = [Rng, Blk, Input, Gpio, I2c, Vsock, Fs, Scsi, Snd, Gpu]


def has_module(version, name):
    """Whether kernel `version`'s package has module `name` (as a module or built in)."""
    try:
        qemu_guest.module_closure(version, [name], qemu_guest.kernel_root(version))
        return True
    except qemu_guest.GuestError:
        return False


class Run:
    """The outcome of one guest: each part's verdict, the console output, the daemons' logs."""

    def __init__(self, result, verdicts, logs, notes, executables=None):
        self.result = result
        self.executables = executables or {}  # name -> what its daemon process ran
        self.verdicts = verdicts  # name -> (passed, lines)
        self.logs = logs
        self.notes = notes  # name -> what its pass leaves out
        self.body = result.output.split("E2E-BEGIN", 1)[-1].split("E2E-END", 1)[0]

    def passed(self):
        return self.result.script_status == 0 and all(ok for ok, _ in self.verdicts.values())


def guest_script(parts):
    """Every part's prelude, then each part's section in a subshell that reports its status."""
    script = "".join(p.prelude for p in parts)
    for p in parts:
        script += f"echo\n(\nset -e\n{p.script.strip()}\n)\necho \"E2E-RESULT part_{p.name}=$?\"\n"
    return script


def run(bin_dir, names=None, announce=print, timeout=180):
    """Boots the selected kernel under the selected QEMU with the parts named in `names` (all
    by default), each served by its daemon; returns a Run. `announce` gets each daemon's
    command line and the QEMU devices before the boot."""
    with qemu_guest.work_dir("suite") as work, contextlib.ExitStack() as stack:
        parts = [cls(bin_dir, work) for cls in PARTS if names is None or cls.name in names]
        for p in parts:
            if isinstance(p, Gpu):
                stack.callback(p.close)
        entries, have = [], set()
        for p in parts:
            for e in p.guest_entries():
                if e[0] not in have:  # the guest tools share libraries
                    have.add(e[0])
                    entries.append(e)
        devices, modules, built = [], [], []
        for p in parts:
            argv = p.argv()
            announce("host: " + " ".join(argv))
            p.daemon = stack.enter_context(qemu_guest.Daemon(argv, p.sock))
            devices += p.qemu_args()
            packaged, built_here = p.guest_modules()
            modules += [m for m in packaged if m not in modules]
            built += built_here
        executables = {p.name: os.readlink(f"/proc/{p.daemon.proc.pid}/exe") for p in parts}
        kernel, qemu = qemu_guest.selected()
        announce(f"host: booting Linux {kernel} under QEMU {qemu} (TCG) with -device " +
                 ", ".join(p.device for p in parts))

        def on_line(line):
            typed = None
            for p in parts:
                try:
                    typed = p.on_line(line) or typed
                except Exception as e:  # in the console's reader: it must go on reading
                    p.seen["host_error"] = f"{line.strip()!r}: {e!r}"
            return typed

        gpu_parts = [p for p in parts if isinstance(p, Gpu)]
        result = qemu_guest.run_guest(
            guest_script(parts), devices, modules, built_modules=built, work=work,
            timeout=timeout, extra_entries=entries, on_line=on_line, console_input=True,
            pass_fds=[p.qmp_theirs.fileno() for p in gpu_parts])
        body = result.output.split("E2E-BEGIN", 1)[-1].split("E2E-END", 1)[0]
        verdicts = {p.name: p.verdict(body) for p in parts}
        notes = {p.name: p.note for p in parts if p.note}
        logs = {f"vhost-user-{p.name}": p.daemon.read_log() for p in parts}
        return Run(result, verdicts, logs, notes, executables)
