"""The README's first command: a Linux guest under QEMU uses our daemons: it reads entropy from
vhost-user-rng, makes a file system on a disk served by vhost-user-blk, reads what the host
types on a virtual keyboard served by vhost-user-input, and uses a gpiochip served by
vhost-user-gpio (sets an LED line, waits for a button interrupt from the host), and writes and
reads back an EEPROM on an I2C bus served by vhost-user-i2c, and a host program talks to a guest
program over vsock through vhost-user-vsock, and the guest mounts a host directory served by
vhost-user-fs, and it asks a SCSI disk served by vhost-user-scsi who it is (sg_inq) and writes a
checksummed block to it that the host finds in the image file, and it plays a 1 s 440 Hz tone
(aplay -D hw:0,0) on a sound card served by vhost-user-snd, whose WAV sink the host measures,
and it sets a mode and draws a test pattern on a display served by vhost-user-gpu, which the host
finds in QEMU's screendump pixel for pixel.

Usage: demo.py BIN_DIR (the bazel-bin holding the daemons and their guest tools)
"""
import hashlib
import io
import os
import re
import socket
import struct
import sys
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402
import snd_e2e_test as snd  # noqa: E402  (its tone, WAV and alsa-lib helpers)
import gpu_e2e_test as gpu  # noqa: E402  (its pattern and PPM helpers)

TONE_HZ, TONE_SECONDS = 440.0, 1

SCRIPT = r"""
set -e
# Listen to the keyboard first: evdev passes on only what arrives after it is opened.
for e in /sys/class/input/event*; do
  [ "$(cat $e/device/name)" = "vhost-user virtual keyboard" ] && kbd=/dev/input/$(basename $e)
done
timeout 60 dd if=$kbd of=/tmp/keys bs=24 count=76 2>/dev/null &
reader=$!
until ls -l /proc/$reader/fd 2>/dev/null | grep -q /dev/input; do sleep 0.1; done
echo E2E-KEYBOARD-OPEN
echo
echo "guest: kernel $(uname -r); hardware RNG: $(cat /sys/class/misc/hw_random/rng_current)"
echo "guest: 64 bytes from /dev/hwrng:"
dd if=/dev/hwrng bs=64 count=1 iflag=fullblock 2>/dev/null | od -An -tx1
dd if=/dev/hwrng of=/tmp/sample bs=4096 count=64 iflag=fullblock 2>/dev/null
echo "guest: read $(wc -c < /tmp/sample) bytes; byte histogram chi-square (255 dof, ~255 expected):"
od -An -v -tu1 /tmp/sample | awk '{ for (i = 1; i <= NF; i++) { c[$i]++; n++ } }
  END { e = n / 256; x = 0; for (v = 0; v < 256; v++) x += (c[v] - e) * (c[v] - e) / e; printf "  %.1f\n", x }'
echo
echo "guest: disk /dev/vda: $(($(cat /sys/block/vda/size) / 2048)) MiB, serial $(cat /sys/block/vda/serial), cache $(cat /sys/block/vda/queue/write_cache)"
mke2fs -q /dev/vda >/dev/null && mkdir -p /mnt && mount -t ext2 /dev/vda /mnt
cp /tmp/sample /mnt/sample && sync && umount /mnt
mount -t ext2 /dev/vda /mnt
echo "guest: wrote and re-read a 256 KiB file on ext2: $(sha1sum < /mnt/sample | cut -c1-16) vs $(sha1sum < /tmp/sample | cut -c1-16)"
df -h /mnt | tail -1
umount /mnt
echo
# The SCSI disk: virtio_scsi's scan and sd's probe are asynchronous, so poll for it.
i=0
until sd=$(ls /sys/bus/scsi/devices/*:0:0:0/block 2>/dev/null) || [ $i -ge 600 ]; do
  sleep 0.05; i=$((i + 1))
done
echo "guest: SCSI disk /dev/$sd (virtio_scsi): $(($(cat /sys/block/$sd/size) / 2048)) MiB; sg_inq /dev/$sd says:"
sg_inq /dev/$sd | grep -E "(Vendor|Product) identification|Unit serial number" | sed 's/^ */  /; s/ *$//'
dd if=/tmp/sample of=/dev/$sd bs=64k seek=16 oflag=direct 2>/dev/null
echo "guest: wrote 256 KiB at 1 MiB on /dev/$sd, read back (O_DIRECT): $(dd if=/dev/$sd bs=64k skip=16 count=4 iflag=direct 2>/dev/null | sha1sum | cut -c1-16) vs $(sha1sum < /tmp/sample | cut -c1-16)"
echo
echo "guest: keyboard $kbd ($(cat /sys/class/input/$(basename $kbd)/device/name)); what the host typed:"
wait $reader || echo "  (the keyboard went quiet before all 19 keys arrived)"
od -An -v -tu2 -w24 /tmp/keys | awk '
  BEGIN { split("q w e r t y u i o p", a, " "); for (i = 1; i <= 10; i++) key[15 + i] = a[i]
          split("a s d f g h j k l", b, " "); for (i = 1; i <= 9; i++) key[29 + i] = b[i]
          split("z x c v b n m", c, " "); for (i = 1; i <= 7; i++) key[43 + i] = c[i]
          key[57] = " " }
  $9 == 1 && $11 == 1 { printf "%s", ($10 in key) ? key[$10] : "?" }
  END { print "" }' | sed 's/^/  typed: /'
echo
for c in /dev/gpiochip*; do
  case "$(gpio_guest_tool $c info)" in *button*) chip=$c;; esac
done
echo "guest: $chip: $(gpio_guest_tool $chip info)"
gpio_guest_tool $chip set 1 1 1
echo "guest: waiting for an interrupt on line 0 (button)..."
gpio_guest_tool $chip wait 0 30 | sed -n 's/E2E-RESULT edge=/guest: interrupt: line:level = /p'
echo
for d in /sys/class/i2c-dev/i2c-*; do
  case "$(cat $d/name)" in *virtio*) i2c=/dev/$(basename $d); name="$(cat $d/name)";; esac
done
echo "guest: I2C adapter $i2c ($name)"
i2c_guest_tool $i2c roundtrip 0x50 eeprom |
  sed 's/E2E-RESULT eeprom=/guest: wrote "vhost-user" into the EEPROM at 0x50, read back: /'
echo
echo "guest: vsock listening on port 6000 for a host program..."
vsock_guest_tool server 6000 | sed 's/E2E-RESULT server_echoed=/guest: echoed bytes back to the host: /'
echo
mkdir -p /share && mount -t virtiofs share /share
echo "guest: virtiofs share mounted on /share: $(ls /share | tr '\n' ' ')"
echo "guest: /share/hello.txt says: $(cat /share/hello.txt)"
echo "written by the guest at $(date -u +%T)" > /share/from-guest.txt
sync && umount /share
echo
# virtio_snd registers the card once the device has answered its PCM, jack and channel map
# queries.
i=0
while [ ! -e /dev/snd/pcmC0D0p ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
echo "guest: sound: $(aplay -l | grep '^card 0')"
aplay -D hw:0,0 --period-time=@PERIOD_US@ --buffer-time=@BUFFER_US@ /tone.wav > /tmp/aplay 2>&1 &&
  rc=0 || rc=$?
sed 's/^/  aplay: /' /tmp/aplay
echo "guest: played a 1 s 440 Hz tone with aplay -D hw:0,0: exit status $rc"
echo
# virtio_gpu registers its connector a moment after /dev/dri/card0.
i=0
while ! ls /sys/class/drm/card0-*/edid > /dev/null 2>&1 && [ $i -lt 400 ]; do
  sleep 0.05; i=$((i + 1))
done
conn=$(dirname $(ls /sys/class/drm/card0-*/edid | head -1))
echo detect > $conn/status
echo "guest: display $(basename $conn) is $(cat $conn/status), preferred mode $(head -1 $conn/modes)"
# Sets that mode on a buffer with a test pattern and holds it until the host has looked (its
# E2E-READY line reaches the host through the console; the host types a line to let it go).
(/bin/gpu_guest_tool show; echo "exit status $?") 2>&1 | tee /tmp/gpu | grep "^E2E-READY" || true
grep -E "^E2E-RESULT (mode|frame)=" /tmp/gpu | sed 's/^E2E-RESULT /  gpu_guest_tool: /'
echo "guest: drew the test pattern through virtio_gpu: $(tail -1 /tmp/gpu)"
echo
"""


def type_when_ready(line, control):
    """Types on the virtual keyboard once the guest listens to it (evdev passes on only what
    arrives after it is opened)."""
    if "E2E-KEYBOARD-OPEN" not in line:
        return
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(control)
        s.sendall(b"type hello from the host\n")
        s.recv(100)


def gpu_host_side(line, qmp_sock, dump, seen):
    """Once the guest shows its pattern: QEMU's screendump of the display, compared with it.
    Returns the line that lets the guest tool go. Only the tool's first frame is looked at (it
    then changes the resolution and asks again: let go at once)."""
    if "E2E-READY frame" not in line:
        return None
    if "screen" in seen or "screen_error" in seen:
        return "go\n"
    try:
        # One QMP client per QEMU: QEMU greets a monitor connection once.
        qemu_guest.Qmp(sock=qmp_sock, timeout=60).command("screendump", filename=dump,
                                                           format="ppm")
        w, h, rgb = gpu.read_ppm(dump)
        seen["screen"] = (w, h, rgb == gpu.pattern_rgb(w, h))
    except Exception as e:  # reported with the results; the guest must still be let go
        seen["screen_error"] = repr(e)
    return "go\n"


def gpio_host_side(line, control, seen):
    """Reads the LED the guest set, then presses the button the guest waits on."""
    if "E2E-READY set" in line:
        seen["led"] = control_command(control, "get led")
    elif "E2E-READY wait" in line:
        control_command(control, "set button 1")


def vsock_host_side(line, uds, seen):
    """A host program reaching into the guest: CONNECT 6000 on the daemon's Unix socket."""
    if "E2E-READY server" not in line:
        return
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(uds)
        s.sendall(b"CONNECT 6000\n")
        ok = b""
        while not ok.endswith(b"\n"):
            ok += s.recv(1)
        message = b"hello from a host program over vsock"
        s.sendall(message)
        s.shutdown(socket.SHUT_WR)
        echo = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            echo += chunk
    seen["vsock"] = f"{ok.decode().strip()}; sent {message.decode()!r}, got back {echo.decode()!r}"
    seen["vsock_ok"] = echo == message


def measure_tone(sink, tone):
    """What vhost-user-snd's WAV sink holds: the frequency and duration of its sound, and
    whether that is exactly the tone played."""
    try:
        with open(sink, "rb") as f, wave.open(io.BytesIO(f.read()), "rb") as w:
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
    return hz, len(held) // snd.FRAME / snd.RATE, held == tone


def control_command(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        return s.recv(100).decode().strip()


def main():
    bin_dir = os.path.abspath(sys.argv[1])
    rng = os.path.join(bin_dir, "vhost-user-rng/vhost-user-rng")
    blk = os.path.join(bin_dir, "vhost-user-blk/vhost-user-blk")
    inp = os.path.join(bin_dir, "vhost-user-input/vhost-user-input")
    gpio = os.path.join(bin_dir, "vhost-user-gpio/vhost-user-gpio")
    gpio_tool = os.path.join(bin_dir, "vhost-user-gpio/gpio_guest_tool")
    gpio_ko = qemu_guest.out_of_tree_module("drivers/gpio/gpio-virtio.c")
    i2c = os.path.join(bin_dir, "vhost-user-i2c/vhost-user-i2c")
    i2c_tool = os.path.join(bin_dir, "vhost-user-i2c/i2c_guest_tool")
    i2c_ko = qemu_guest.out_of_tree_module("drivers/i2c/busses/i2c-virtio.c")
    vsock = os.path.join(bin_dir, "vhost-user-vsock/vhost-user-vsock")
    vsock_tool = os.path.join(bin_dir, "vhost-user-vsock/vsock_guest_tool")
    fs = os.path.join(bin_dir, "vhost-user-fs/vhost-user-fs")
    scsi = os.path.join(bin_dir, "vhost-user-scsi/vhost-user-scsi")
    sound = os.path.join(bin_dir, "vhost-user-snd/vhost-user-snd")
    gpu_daemon = os.path.join(bin_dir, "vhost-user-gpu/vhost-user-gpu")
    gpu.TOOL = os.path.join(bin_dir, "vhost-user-gpu/gpu_guest_tool")
    tone = snd.tone_frames(TONE_HZ, TONE_SECONDS)
    seen = {}
    with qemu_guest.work_dir("demo") as work:
        rng_sock = os.path.join(work, "rng.sock")
        blk_sock = os.path.join(work, "blk.sock")
        image = os.path.join(work, "disk.img")
        input_sock = os.path.join(work, "input.sock")
        control = os.path.join(work, "keyboard.sock")
        gpio_sock = os.path.join(work, "gpio.sock")
        gpio_control = os.path.join(work, "gpio.ctl")
        gpio_argv = [gpio, f"--socket-path={gpio_sock}", "--device-list=s8",
                     "--sim-lines=button@in,led@out", f"--control-socket={gpio_control}"]
        with open(image, "wb") as f:
            f.truncate(64 << 20)
        print(f"host: {rng} --socket-path={rng_sock}")
        print(f"host: {blk} --socket-path={blk_sock} --blk-file={image} --serial=demo-disk")
        print(f"host: {inp} --socket-path={input_sock} --virtual-device=keyboard "
              f"--control-socket={control}")
        print("host: " + " ".join(gpio_argv))
        i2c_sock = os.path.join(work, "i2c.sock")
        i2c_argv = [i2c, f"--socket-path={i2c_sock}", "--device-list=sim:0x50"]
        print("host: " + " ".join(i2c_argv))
        vsock_sock = os.path.join(work, "vsock.sock")
        uds = os.path.join(work, "vm.vsock")
        vsock_argv = [vsock, f"--socket-path={vsock_sock}", f"--uds-path={uds}", "--guest-cid=3"]
        print("host: " + " ".join(vsock_argv))
        fs_sock = os.path.join(work, "fs.sock")
        shared = os.path.join(work, "shared")
        os.makedirs(shared)
        with open(os.path.join(shared, "hello.txt"), "w") as f:
            f.write("hello from the host's shared directory")
        fs_argv = [fs, f"--socket-path={fs_sock}", f"--shared-dir={shared}"]
        print("host: " + " ".join(fs_argv))
        scsi_sock = os.path.join(work, "scsi.sock")
        scsi_image = os.path.join(work, "lun0.img")
        with open(scsi_image, "wb") as f:
            f.truncate(32 << 20)
        scsi_argv = [scsi, f"--socket-path={scsi_sock}",
                     f"--lun=file={scsi_image},vendor=VHOSTUSR,product=DEMO-LUN,serial=demo-lun"]
        print("host: " + " ".join(scsi_argv))
        snd_sock = os.path.join(work, "snd.sock")
        sink = os.path.join(work, "played.wav")
        tone_wav = os.path.join(work, "tone.wav")
        snd.write_wav(tone_wav, tone)
        with open(tone_wav, "rb") as f:
            tone_file = f.read()
        snd_argv = [sound, f"--socket-path={snd_sock}", "--backend=file",
                    f"--playback-file={sink}"]
        print("host: " + " ".join(snd_argv))
        gpu_sock = os.path.join(work, "gpu.sock")
        gpu_argv = [gpu_daemon, f"--socket-path={gpu_sock}"]
        print("host: " + " ".join(gpu_argv))
        dump = os.path.join(work, "screen.ppm")
        qmp_ours, qmp_theirs, monitor = qemu_guest.qmp_socketpair()
        # aplay and the libraries it needs (those the guest tools already bring, once), and
        # alsa-lib's configuration, without which it cannot open even hw:0,0.
        extra = (qemu_guest.host_binary_entries(gpio_tool) +
                 qemu_guest.host_binary_entries(i2c_tool) +
                 qemu_guest.host_binary_entries(vsock_tool) +
                 qemu_guest.host_binary_entries("/usr/bin/sg_inq"))
        have = {e[0] for e in extra}
        extra += [e for e in qemu_guest.host_binary_entries("/usr/bin/aplay") if e[0] not in have]
        extra += [("tone.wav", "file", (tone_file, 0o644))] + snd.sound_entries()
        extra += [e for e in gpu.tool_entries() if e[0] not in have]
        with qemu_guest.Daemon([rng, f"--socket-path={rng_sock}"], rng_sock) as r, \
                qemu_guest.Daemon([blk, f"--socket-path={blk_sock}", f"--blk-file={image}",
                                   "--serial=demo-disk"], blk_sock) as b, \
                qemu_guest.Daemon([inp, f"--socket-path={input_sock}", "--virtual-device=keyboard",
                                   f"--control-socket={control}"], input_sock) as i, \
                qemu_guest.Daemon(gpio_argv, gpio_sock) as g, \
                qemu_guest.Daemon(i2c_argv, i2c_sock) as c, \
                qemu_guest.Daemon(vsock_argv, vsock_sock) as v, \
                qemu_guest.Daemon(fs_argv, fs_sock) as fsd, \
                qemu_guest.Daemon(scsi_argv, scsi_sock) as sc, \
                qemu_guest.Daemon(snd_argv, snd_sock) as sn, \
                qemu_guest.Daemon(gpu_argv, gpu_sock) as gp:
            print("host: booting a Linux guest under QEMU (TCG) with -device vhost-user-rng-pci, "
                  "vhost-user-blk-pci, vhost-user-input-pci, vhost-user-gpio-pci, "
                  "vhost-user-i2c-pci, vhost-user-vsock-pci, vhost-user-fs-pci, "
                  "vhost-user-scsi-pci, vhost-user-snd-pci and vhost-user-gpu-pci")
            script = (SCRIPT.replace("@PERIOD_US@", str(snd.PERIOD_US))
                      .replace("@BUFFER_US@", str(snd.BUFFER_US)))
            result = qemu_guest.run_guest(
                script, ["-chardev", f"socket,id=rng0,path={rng_sock}",
                         "-device", "vhost-user-rng-pci,chardev=rng0",
                         "-chardev", f"socket,id=blk0,path={blk_sock}",
                         "-device", "vhost-user-blk-pci,chardev=blk0",
                         "-chardev", f"socket,id=in0,path={input_sock}",
                         "-device", "vhost-user-input-pci,chardev=in0",
                         "-chardev", f"socket,id=gpio0,path={gpio_sock}",
                         "-device", "vhost-user-gpio-pci,chardev=gpio0",
                         "-chardev", f"socket,id=i2c0,path={i2c_sock}",
                         "-device", "vhost-user-i2c-pci,chardev=i2c0",
                         "-chardev", f"socket,id=vs0,path={vsock_sock}",
                         "-device", "vhost-user-vsock-pci,chardev=vs0",
                         "-chardev", f"socket,id=fs0,path={fs_sock}",
                         "-device", "vhost-user-fs-pci,chardev=fs0,tag=share",
                         "-chardev", f"socket,id=scsi0,path={scsi_sock}",
                         "-device", "vhost-user-scsi-pci,chardev=scsi0",
                         "-chardev", f"socket,id=snd0,path={snd_sock}",
                         "-device", "vhost-user-snd-pci,chardev=snd0",
                         "-chardev", f"socket,id=gpu0,path={gpu_sock}",
                         "-device", "vhost-user-gpu-pci,chardev=gpu0"] + monitor,
                modules=["virtio_rng", "virtio_blk", "crc32c_generic", "ext4", "virtio_input",
                         "evdev", "i2c-dev", "vmw_vsock_virtio_transport", "virtio_scsi",
                         "sd_mod", "virtio_snd", "virtio_gpu"], built_modules=[gpio_ko, i2c_ko], work=work,
                timeout=120, extra_entries=extra,
                on_line=lambda line: (type_when_ready(line, control),
                                      gpio_host_side(line, gpio_control, seen),
                                      vsock_host_side(line, uds, seen),
                                      gpu_host_side(line, qmp_ours, dump, seen))[-1],
                pass_fds=[qmp_theirs.fileno()], console_input=True)
            qmp_theirs.close()
            qmp_ours.close()
            logs = {"vhost-user-rng": r.read_log(), "vhost-user-blk": b.read_log(),
                    "vhost-user-input": i.read_log(), "vhost-user-gpio": g.read_log(),
                    "vhost-user-i2c": c.read_log(), "vhost-user-vsock": v.read_log(),
                    "vhost-user-fs": fsd.read_log(), "vhost-user-scsi": sc.read_log(),
                    "vhost-user-snd": sn.read_log(), "vhost-user-gpu": gp.read_log()}
            tone_in_sink = measure_tone(sink, tone)
            from_guest = None
            if os.path.exists(os.path.join(shared, "from-guest.txt")):
                with open(os.path.join(shared, "from-guest.txt")) as f:
                    from_guest = f.read().strip()
            # What the guest wrote through vhost-user-scsi, as the host's image file has it.
            with open(scsi_image, "rb") as f:
                f.seek(1 << 20)
                in_image = hashlib.sha1(f.read(256 << 10)).hexdigest()[:16]
    body = result.output.split("E2E-BEGIN", 1)[-1].split("E2E-END", 1)[0]
    print(body.rstrip())
    print(f"host: the simulated LED line while the guest held it: {seen.get('led')}")
    print(f"host: vsock: {seen.get('vsock')}")
    fs_ok = from_guest is not None
    if fs_ok:
        print(f"host: the shared directory now has from-guest.txt: {from_guest}")
    for name, log in logs.items():
        print(f"host: {name} log:")
        print("  " + "\n  ".join(log.strip().splitlines()))
    sums = re.search(r"ext2: (\w+) vs (\w+)", body)
    scsi_sums = re.search(r"read back \(O_DIRECT\): (\w+) vs (\w+)", body)
    in_image_ok = scsi_sums is not None and scsi_sums.group(2) == in_image
    print(f"host: the SCSI disk's image file at 1 MiB: {in_image} "
          f"({'the block the guest wrote' if in_image_ok else 'NOT the block the guest wrote'})")
    if tone_in_sink is None:
        print("host: vhost-user-snd's WAV sink holds no tone")
    else:
        hz, seconds, exact = tone_in_sink
        print(f"host: vhost-user-snd's WAV sink holds {hz:.2f} Hz for {seconds:.3f} s "
              f"({'exactly the samples played' if exact else 'NOT the samples played'})")
    # Within 2 Hz, and a period or two of the second played, as tests/e2e/snd_e2e_test.py asks.
    snd_ok = (tone_in_sink is not None and abs(tone_in_sink[0] - TONE_HZ) <= 2 and
              abs(tone_in_sink[1] - TONE_SECONDS) * snd.RATE <= 2 * snd.PERIOD_FRAMES and
              tone_in_sink[2] and "hw:0,0: exit status 0" in body)
    screen = seen.get("screen")
    if screen is None:
        print(f"host: no screendump of the vhost-user-gpu display: {seen.get('screen_error')}")
    else:
        match = "the guest's pattern pixel for pixel" if screen[2] else "NOT the guest's pattern"
        print(f"host: QEMU's screendump of the vhost-user-gpu display: "
              f"{screen[0]}x{screen[1]}, {match}")
    gpu_ok = (screen is not None and screen[2] and
              "drew the test pattern through virtio_gpu: exit status 0" in body)
    scsi_ok = (in_image_ok and scsi_sums.group(1) == scsi_sums.group(2) and
               "Vendor identification: VHOSTUSR" in body and "Unit serial number: demo-lun" in body)
    ok = (result.script_status == 0 and "virtio_rng" in body and "demo-disk" in body and
          sums is not None and sums.group(1) == sums.group(2) and
          "typed: hello from the host" in body and seen.get("led") == "ok out 1" and
          "interrupt: line:level = 0:1" in body and "read back: vhost-user" in body and
          seen.get("vsock_ok", False) and fs_ok and scsi_ok and snd_ok and gpu_ok)
    if not ok:
        print("host: the guest's console ended with:\n" + result.output[-1500:])
    print(f"host: guest finished in {result.wall_seconds:.1f} s: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
