"""A Linux guest's virtio_snd driver and alsa-utils use our vhost-user-snd (--backend=file)
through QEMU 10's vhost-user-snd-pci: the card and its playback and capture PCMs are listed;
the guest plays a 440 Hz tone (aplay -D hw:0,0) and the daemon's WAV sink holds that tone at
the right frequency and duration, with no gap of silence in it; the guest records (arecord -D
hw:0,0) the daemon's WAV source and gets exactly its samples back, after any leading silence;
neither aplay nor the guest kernel reports an XRUN. The same again after the guest reboots (the
device reset under the same connection) and in a second QEMU against the same daemon: each
PREPARE starts the sink and the source over.

With --controls (and QEMU's controls=on) and --control-socket, in a boot of its own: a 10 s
tone played with no underrun or XRUN (aplay and the kernel log say none) lands in the sink
whole and bit-exact; the host unplugs and plugs the playback jack on the control socket and
the guest's "Line Out Jack" control goes off and on again; the host sets the capture volume
and the guest reads it and sees ALSA's control event for it (CTL_NOTIFY); amixer lists each
stream's volume and switch and the volume's dB scale (a DB_LINEAR TLV:
"dBlinear-min=-99999.99dB,max=0.00dB", and 50 as -6.02 dB); the playback volume at 50 halves
the tone in the sink (within 1 LSB) and the playback switch off leaves the sink silent.

The recording leaves the guest on a scratch virtio-blk disk of QEMU's own (not over the
serial console), so the host compares every frame; the host copies the sink when the guest
says aplay is done.

Usage: snd_e2e_test.py PATH_TO_vhost-user-snd (Bazel passes it).
"""
import io
import math
import os
import socket
import struct
import sys
import unittest
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402

DAEMON = None
MODULES = ["virtio_snd", "virtio_blk"]
RATE, CHANNELS, WIDTH = 48000, 2, 2
FRAME = CHANNELS * WIDTH
TONE_HZ, TONE_SECONDS = 440.0, 2
# The capture source is longer than the recording, so leading silence (the frames between
# START and arecord's first read) pushes no source frame out of the comparison.
SOURCE_SECONDS, RECORD_SECONDS = 3, 2
# aplay's ring: TCG makes the guest slow, so a generous buffer; a period is what the daemon
# completes at a time, so "a period or two" bounds the sink's extra frames.
PERIOD_US, BUFFER_US = 50000, 400000
PERIOD_FRAMES = RATE * PERIOD_US // 1000000
SLOT = 1 << 19  # a boot's slot on the scratch disk: RECORD_SECONDS of S16 stereo, 384000 bytes
BOOTS = 2


def tone_frames(hz, seconds, amplitude=12000):
    """S16LE stereo: the tone on both channels (the right a quarter period ahead)."""
    out = bytearray()
    for n in range(RATE * seconds):
        phase = 2 * math.pi * hz * n / RATE
        out += struct.pack("<hh", round(amplitude * math.sin(phase)),
                           round(amplitude * math.cos(phase)))
    return bytes(out)


def source_frames(seconds):
    """S16LE stereo no sample of which is zero and no stretch of which repeats (a 32-bit LCG),
    so the recording's alignment with it is unambiguous and silence is never mistaken for it."""
    out = bytearray()
    x = 12345
    for _ in range(RATE * seconds * CHANNELS):
        x = (x * 1103515245 + 12345) & 0xffffffff
        v = (x >> 16) - 32768
        out += struct.pack("<h", v if v != 0 else 1)
    return bytes(out)


def write_wav(path, frames):
    with wave.open(path, "wb") as w:
        w.setnchannels(CHANNELS)
        w.setsampwidth(WIDTH)
        w.setframerate(RATE)
        w.writeframes(frames)


def left_channel(frames):
    return [s for s, _ in struct.iter_unpack("<hh", frames)]


def rising_crossings(samples):
    """Times (in frames, interpolated) at which the signal goes from below zero to zero or
    above."""
    times = []
    for i in range(1, len(samples)):
        a, b = samples[i - 1], samples[i]
        if a < 0 <= b:
            times.append(i - 1 + (-a) / (b - a))
    return times


def longest_zero_run(frames):
    longest = run = 0
    for s in struct.iter_unpack("<hh", frames):
        run = run + 1 if s == (0, 0) else 0
        longest = max(longest, run)
    return longest


def sound_entries():
    """What the guest's sound stack needs. alsa-lib's configuration (alsa.conf and the card, PCM
    and control definitions it includes): aplay and arecord cannot open even hw:0,0 without it,
    nor amixer card 0. And virtio_snd's control message timeout raised from 1 s to 10 s: a TCG
    guest on a loaded host can take longer than a second to see a reply, which virtio_snd turns
    into EIO for aplay."""
    entries = [("modparams", "dir", None),
               ("modparams/virtio_snd.ko", "file", (b"msg_timeout_ms=10000", 0o644)),
               ("usr/share", "dir", None), ("usr/share/alsa", "dir", None)]
    for top in ("/usr/share/alsa/cards", "/usr/share/alsa/pcm", "/usr/share/alsa/ctl"):
        for root, _, files in os.walk(top):
            entries.append((root.lstrip("/"), "dir", None))
            for name in sorted(files):
                with open(os.path.join(root, name), "rb") as f:
                    entries.append((os.path.join(root, name).lstrip("/"), "file",
                                    (f.read(), 0o644)))
    with open("/usr/share/alsa/alsa.conf", "rb") as f:
        entries.append(("usr/share/alsa/alsa.conf", "file", (f.read(), 0o644)))
    return entries


GUEST_SCRIPT = r"""
run() {
  name=$1; shift
  "$@" > /tmp/out 2>&1 && rc=0 || rc=$?
  sed "s/^/E2E-OUT $name| /" /tmp/out
  echo "E2E-RESULT ${name}_rc=$rc"
}
# virtio_snd registers the card once its PCM_INFO/JACK_INFO/CHMAP_INFO replies are in.
i=0
while [ ! -e /dev/snd/pcmC0D0p ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
echo "E2E-RESULT card_after_seconds=$(cut -d' ' -f1 /proc/uptime)"
echo "E2E-RESULT msg_timeout_ms=$(cat /sys/module/virtio_snd/parameters/msg_timeout_ms)"
run cards cat /proc/asound/cards
run pcm cat /proc/asound/pcm
run aplay_l aplay -l
run arecord_l arecord -l
dmesg -c > /dev/null
up() { cut -d' ' -f1 /proc/uptime; }
t0=$(up)
run play aplay -D hw:0,0 --period-time=@PERIOD_US@ --buffer-time=@BUFFER_US@ /tone.wav
echo "E2E-RESULT play_seconds=$(awk "BEGIN { print $(up) - $t0 }")"
run play_dmesg dmesg -c
t0=$(up)
run record arecord -D hw:0,0 -f S16_LE -c 2 -r 48000 -d @RECORD_SECONDS@ \
  --period-time=@PERIOD_US@ --buffer-time=@BUFFER_US@ -t raw /tmp/rec.raw
echo "E2E-RESULT record_seconds=$(awk "BEGIN { print $(up) - $t0 }")"
echo "E2E-RESULT record_bytes=$(wc -c < /tmp/rec.raw)"
run record_dmesg dmesg -c
# Each boot's recording in its own slot of the scratch disk.
dd if=/tmp/rec.raw of=/dev/vda bs=@SLOT@ seek=$((E2E_BOOT - 1)) conv=fsync 2>/dev/null
echo "E2E-RESULT written=$?"
"""


CONTROLS = ("PCM Playback Volume", "PCM Playback Switch", "PCM Capture Volume",
            "PCM Capture Switch")
CONTROLS_TONE_SECONDS = 1

LONG_TONE_SECONDS = 10
JACKS = ("Line Out Jack", "Line Jack")  # virtio_snd's names for a line out and a line in

CONTROLS_SCRIPT = r"""
run() {
  name=$1; shift
  "$@" > /tmp/out 2>&1 && rc=0 || rc=$?
  sed "s/^/E2E-OUT $name| /" /tmp/out
  echo "E2E-RESULT ${name}_rc=$rc"
}
i=0
while [ ! -e /dev/snd/pcmC0D0p ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
run controls amixer -c 0 controls
run contents amixer -c 0 contents
dmesg -c > /dev/null
run play_long aplay -D hw:0,0 --period-time=@PERIOD_US@ --buffer-time=@BUFFER_US@ /long.wav
run play_long_dmesg dmesg -c
# ALSA's control events, printed on the console (a tty: line by line) as they come; started
# two host round trips and a dozen amixer runs before the host sets a control.
amixer -c 0 events &
events=$!
# The playback jack as the guest's ALSA sees it: on or off.
jack() { amixer -c 0 cget iface=CARD,name='Line Out Jack' | sed -n 's/.*: values=//p'; }
# The host changes the jack when asked; wait (bounded) for the guest to see it.
for want in off on; do
  echo "E2E-JACK-REQUEST $want"
  i=0
  while [ "$(jack)" != "$want" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
  echo "E2E-RESULT jack_$want=$(jack)"
done
# The host sets the capture volume (which nothing in the guest writes), with a CTL_NOTIFY.
capture() { amixer -c 0 cget name='PCM Capture Volume' | sed -n 's/.*: values=//p'; }
echo "E2E-CTL-REQUEST"
i=0
while [ "$(capture)" != 30 ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
echo "E2E-RESULT capture_volume=$(capture)"
run half amixer -c 0 cset name='PCM Playback Volume' 50
run half_get amixer -c 0 cget name='PCM Playback Volume'
run half_sget amixer -c 0 sget PCM
run play_half aplay -D hw:0,0 --period-time=@PERIOD_US@ --buffer-time=@BUFFER_US@ /tone.wav
run mute amixer -c 0 cset name='PCM Playback Switch' off
run mute_get amixer -c 0 cget name='PCM Playback Switch'
run play_muted aplay -D hw:0,0 --period-time=@PERIOD_US@ --buffer-time=@BUFFER_US@ /tone.wav
kill $events
"""


class SndGuestTest(unittest.TestCase):

    def test_play_and_record_across_a_reboot_and_a_qemu_restart(self):
        tone = tone_frames(TONE_HZ, TONE_SECONDS)
        src = source_frames(SOURCE_SECONDS)
        with qemu_guest.work_dir("snd") as work:
            sock = os.path.join(work, "snd.sock")
            sink = os.path.join(work, "played.wav")
            source = os.path.join(work, "source.wav")
            write_wav(source, src)
            tone_wav = os.path.join(work, "tone.wav")
            write_wav(tone_wav, tone)
            with open(tone_wav, "rb") as f:
                tone_file = f.read()
            scratch = [os.path.join(work, f"scratch{n}.img") for n in (1, 2)]  # per QEMU
            for path in scratch:
                with open(path, "wb") as f:
                    f.truncate(SLOT * BOOTS)
            script = (GUEST_SCRIPT.replace("@PERIOD_US@", str(PERIOD_US))
                      .replace("@BUFFER_US@", str(BUFFER_US))
                      .replace("@RECORD_SECONDS@", str(RECORD_SECONDS))
                      .replace("@SLOT@", str(SLOT)))
            extra = (qemu_guest.host_binary_entries("/usr/bin/aplay")
                     + [("bin/arecord", "link", "aplay"),
                        ("tone.wav", "file", (tone_file, 0o644))]
                     + sound_entries())
            sinks = []  # the sink as each session's aplay left it

            def on_line(line):
                if "E2E-RESULT play_rc=" in line:
                    with open(sink, "rb") as f:
                        sinks.append(f.read())

            def devices(disk):
                return ["-chardev", f"socket,id=snd0,path={sock}",
                        "-device", "vhost-user-snd-pci,chardev=snd0",
                        "-drive", f"file={disk},if=none,id=scratch,format=raw",
                        "-device", "virtio-blk-pci,drive=scratch"]

            run = dict(script=script, work=work, modules=MODULES, extra_entries=extra,
                       timeout=120, on_line=on_line)
            argv = [DAEMON, f"--socket-path={sock}", "--backend=file",
                    "--streams=playback:2ch:48000:s16;capture:2ch:48000:s16",
                    f"--playback-file={sink}", f"--capture-file={source}"]
            with qemu_guest.Daemon(argv, sock) as daemon:
                first = qemu_guest.run_guest(boots=BOOTS, devices=devices(scratch[0]), **run)
                second = qemu_guest.run_guest_again(daemon, devices=devices(scratch[1]), **run)
                log = daemon.read_log()
                self.assertTrue(daemon.alive(), log)
            recordings = []
            for path, boots in ((scratch[0], BOOTS), (scratch[1], 1)):
                with open(path, "rb") as f:
                    recordings += [f.read(SLOT) for _ in range(boots)]
            for result in (first, second):
                self.assertFalse(result.timed_out, result.output[-6000:] + log[-3000:])
            sessions = first.boots + second.boots
            self.assertEqual(len(sessions), BOOTS + 1, second.output[-6000:] + log[-3000:])
            self.assertEqual(len(sinks), BOOTS + 1, second.output[-6000:] + log[-3000:])
            for n, (session, played, rec) in enumerate(zip(sessions, sinks, recordings)):
                with self.subTest(session=n + 1):
                    self.check_session(n + 1, session, played, rec, tone, src, log)
            self.assertEqual(log.count("front end connected"), 2, log)
            self.assertGreaterEqual(log.count("features 0x"), BOOTS + 1, log)

    def check_session(self, n, session, sink_file, rec, tone, src, log):
        out = session.output[-6000:] + "\ndaemon log:\n" + log[-3000:]
        self.assertEqual(session.script_status, 0, out)
        r = session.results
        self.assertNotIn("insmod_failed", r, out)
        self.assertEqual(r["msg_timeout_ms"], "10000", out)  # sound_entries() took effect

        # The card and its two PCMs.
        self.assertIn("VirtIO SoundCard", session.output, out)
        self.assertEqual(r["aplay_l_rc"], "0", out)
        self.assertEqual(r["arecord_l_rc"], "0", out)
        lines = session.output.splitlines()
        for tool in ("aplay_l", "arecord_l"):
            self.assertTrue(any(f"E2E-OUT {tool}|" in l and "card 0:" in l and "device 0:" in l
                                for l in lines), out)

        # Played and recorded without an underrun or overrun (aplay/arecord say so), and the
        # guest kernel logged no XRUN.
        self.assertEqual(r["play_rc"], "0", out)
        said = [l for l in lines if l.startswith(("E2E-OUT play", "E2E-OUT record"))]
        self.assertFalse([l for l in said if "underrun" in l.lower() or "overrun" in l.lower()
                          or "xrun" in l.lower()], out)

        # The sink: its header says what was played; the tone in it has the right frequency
        # and duration, with no silence inserted.
        with wave.open(io.BytesIO(sink_file), "rb") as w:
            self.assertEqual((w.getnchannels(), w.getsampwidth(), w.getframerate()),
                             (CHANNELS, WIDTH, RATE), log[-3000:])
            played = w.readframes(w.getnframes())
        frames = len(played) // FRAME
        nonzero = [i for i, s in enumerate(struct.iter_unpack("<hh", played)) if s != (0, 0)]
        self.assertTrue(nonzero, f"the sink holds {frames} frames of silence\n{out}")
        first, last = nonzero[0], nonzero[-1]
        held = played[first * FRAME:(last + 1) * FRAME]
        duration = len(held) // FRAME
        self.assertLessEqual(abs(duration - RATE * TONE_SECONDS), 2 * PERIOD_FRAMES,
                             f"tone of {duration} frames in a sink of {frames}\n{out}")
        gap = longest_zero_run(held)
        self.assertLess(gap, 3, f"{gap} frames of silence inside the tone (the guest was "
                        f"late by {gap / RATE * 1000:.1f} ms)\n{out}")
        crossings = rising_crossings(left_channel(held))
        hz = (len(crossings) - 1) * RATE / (crossings[-1] - crossings[0])
        self.assertAlmostEqual(hz, TONE_HZ, delta=2, msg=out)
        # Bit-exact, in fact: the tone's first and last frames are not silent, so the sink's
        # non-silent stretch is exactly what aplay played.
        self.assertTrue(held == tone, f"the sink's {duration} frames of tone differ from the "
                        f"{len(tone) // FRAME} played")

        # The recording: leading silence, then the source's frames from its start, exactly.
        size = int(r["record_bytes"])
        self.assertEqual(r["record_rc"], "0", out)
        self.assertEqual(r["written"], "0", out)
        self.assertEqual(size, RATE * RECORD_SECONDS * FRAME, out)
        rec = rec[:size]
        lead = next((i for i, s in enumerate(struct.iter_unpack("<hh", rec)) if s != (0, 0)),
                    None)
        self.assertIsNotNone(lead, f"the guest recorded silence\n{out}")
        self.assertLess(lead, RATE // 2, f"{lead} frames of leading silence\n{out}")
        got = rec[lead * FRAME:]
        print(f"session {n}: card after {r['card_after_seconds']} s of guest uptime; aplay "
              f"took {r['play_seconds']} s, arecord {r['record_seconds']} s (guest clock); "
              f"sink: {frames} frames, the tone {duration} of them at {hz:.3f} Hz; "
              f"recording: {lead} frames of leading silence", file=sys.stderr)
        self.assertTrue(got == src[:len(got)], f"recorded frames differ from the source after "
                        f"{lead} frames of leading silence")


    def test_controls_with_amixer(self):
        """--controls and QEMU's controls=on, in one boot: a 10 s tone played whole, bit-exact
        and without an XRUN; the playback jack unplugged and plugged from the host's control
        socket, seen by the guest's "Line Out Jack"; the capture volume set there, with its
        CTL_NOTIFY seen in `amixer events`; amixer lists a volume and a switch per
        stream and the volume's dB scale; the volume at 50 halves the played tone (the daemon
        truncates toward zero, so within 1 LSB) and the switch off makes it silence."""
        tone = tone_frames(TONE_HZ, CONTROLS_TONE_SECONDS)
        long_tone = tone_frames(TONE_HZ, LONG_TONE_SECONDS)
        with qemu_guest.work_dir("sndctl") as work:
            sock = os.path.join(work, "snd.sock")
            control = os.path.join(work, "control.sock")
            sink = os.path.join(work, "played.wav")
            tone_wav = os.path.join(work, "tone.wav")
            write_wav(tone_wav, tone)
            with open(tone_wav, "rb") as f:
                tone_file = f.read()
            write_wav(tone_wav, long_tone)
            with open(tone_wav, "rb") as f:
                long_file = f.read()
            script = (CONTROLS_SCRIPT.replace("@PERIOD_US@", str(PERIOD_US))
                      .replace("@BUFFER_US@", str(BUFFER_US)))
            extra = qemu_guest.host_binary_entries("/usr/bin/aplay")
            have = {e[0] for e in extra}  # aplay's libraries and directories, once
            extra += [e for e in qemu_guest.host_binary_entries("/usr/bin/amixer")
                      if e[0] not in have]
            extra += [("tone.wav", "file", (tone_file, 0o644)),
                      ("long.wav", "file", (long_file, 0o644))] + sound_entries()
            sinks = {}  # the sink as each aplay left it
            replies = []  # the control socket's answers

            def on_line(line):
                for name in ("play_long", "play_half", "play_muted"):
                    if f"E2E-RESULT {name}_rc=" in line:
                        with open(sink, "rb") as f:
                            sinks[name] = f.read()
                command = None
                if "E2E-JACK-REQUEST " in line:
                    want = line.split("E2E-JACK-REQUEST ")[1].strip()
                    command = "jack 0 unplug" if want == "off" else "jack 0 plug"
                elif "E2E-CTL-REQUEST" in line:
                    command = "control 2 30"  # the capture volume
                if command:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                        c.connect(control)
                        c.sendall(f"{command}\n".encode())
                        c.shutdown(socket.SHUT_WR)
                        replies.append(c.makefile().read().strip())

            devices = ["-chardev", f"socket,id=snd0,path={sock}",
                       "-device", "vhost-user-snd-pci,chardev=snd0,controls=on"]
            argv = [DAEMON, f"--socket-path={sock}", "--backend=file", "--controls",
                    "--streams=playback:2ch:48000:s16;capture:2ch:48000:s16",
                    f"--playback-file={sink}", f"--control-socket={control}"]
            with qemu_guest.Daemon(argv, sock) as daemon:
                result = qemu_guest.run_guest(script=script, devices=devices, work=work,
                                              modules=MODULES, extra_entries=extra,
                                              timeout=180, on_line=on_line)
                log = daemon.read_log()
                self.assertTrue(daemon.alive(), log)
        out = result.output[-6000:] + "\ndaemon log:\n" + log[-3000:]
        self.assertFalse(result.timed_out, out)
        self.assertEqual(result.script_status, 0, out)
        r = result.results

        # The four controls, as amixer names them.
        self.assertEqual(r["controls_rc"], "0", out)
        listed = [l for l in result.output.splitlines() if "E2E-OUT controls|" in l]
        for name in CONTROLS:
            self.assertTrue(any(f"name='{name}'" in l for l in listed), f"{name}\n{out}")

        # The two jacks, plugged in.
        self.assertEqual(r["contents_rc"], "0", out)
        contents = [l for l in result.output.splitlines() if "E2E-OUT contents|" in l]
        for name in JACKS:
            at = next((i for i, l in enumerate(contents) if f"name='{name}'" in l), None)
            self.assertIsNotNone(at, f"{name}\n{out}")
            self.assertIn(": values=on", contents[at + 2], out)

        # 10 s played without an underrun or XRUN, into the sink whole and bit-exact.
        self.assertEqual(r["play_long_rc"], "0", out)
        said = [l for l in result.output.splitlines() if l.startswith("E2E-OUT play_long")]
        self.assertFalse([l for l in said if "underrun" in l.lower() or "xrun" in l.lower()],
                         out)
        self.assertIn("play_long", sinks, out)
        with wave.open(io.BytesIO(sinks["play_long"]), "rb") as w:
            long_played = w.readframes(w.getnframes())
        nonzero = [i for i, f in enumerate(struct.iter_unpack("<hh", long_played))
                   if f != (0, 0)]
        self.assertTrue(nonzero, out)
        held = long_played[nonzero[0] * FRAME:(nonzero[-1] + 1) * FRAME]
        self.assertEqual(len(held), len(long_tone), out)
        self.assertTrue(held == long_tone, "the sink's 10 s differ from the tone played")

        # The host unplugged the playback jack, then plugged it back: the guest saw both. Then
        # it set the capture volume: the guest reads it, and ALSA's control events show the
        # CTL_NOTIFY (nothing in the guest writes that control).
        self.assertEqual(replies, ["ok jack 0 unplugged", "ok jack 0 plugged",
                                   "ok control 2 30"], out)
        self.assertEqual(r.get("jack_off"), "off", out)
        self.assertEqual(r.get("jack_on"), "on", out)
        self.assertEqual(r.get("capture_volume"), "30", out)
        self.assertIn("event value: numid=7,iface=MIXER,name='PCM Capture Volume'",
                      result.output, out)

        # Volume 50: read back with its dB scale, then the sink holds the tone at half its
        # amplitude.
        self.assertEqual(r["half_rc"], "0", out)
        self.assertEqual(r["play_half_rc"], "0", out)
        self.assertTrue(any("E2E-OUT half_get|" in l and "values=50" in l
                            for l in result.output.splitlines()), out)
        self.assertTrue(any("E2E-OUT half_get|" in l
                            and "dBlinear-min=-99999.99dB,max=0.00dB" in l
                            for l in result.output.splitlines()), out)
        self.assertEqual(r["half_sget_rc"], "0", out)
        self.assertTrue(any("E2E-OUT half_sget|" in l and "Playback 50 [50%] [-6.02dB]" in l
                            for l in result.output.splitlines()), out)
        self.assertIn("play_half", sinks, out)
        with wave.open(io.BytesIO(sinks["play_half"]), "rb") as w:
            played = w.readframes(w.getnframes())
        samples = [v for (v,) in struct.iter_unpack("<h", played)]
        nonzero = [i for i, v in enumerate(samples) if v != 0]
        self.assertTrue(nonzero, f"the sink holds {len(samples)} silent samples\n{out}")
        # The tone's first frame is (0, 12000): its left sample is the first of the stretch.
        start = nonzero[0] - nonzero[0] % CHANNELS
        held = samples[start:start + len(tone) // WIDTH]
        want = [v for (v,) in struct.iter_unpack("<h", tone)]
        self.assertEqual(len(held), len(want), out)
        worst = max(abs(2 * h - w) for h, w in zip(held, want))
        self.assertLessEqual(worst, 2, f"a sample off half the tone's by {worst / 2} LSB")
        self.assertFalse(any(samples[start + len(want):]), f"sound after the tone\n{out}")

        # Switch off: read back, then the sink holds only silence, as long as the tone.
        self.assertEqual(r["mute_rc"], "0", out)
        self.assertEqual(r["play_muted_rc"], "0", out)
        self.assertTrue(any("E2E-OUT mute_get|" in l and "values=off" in l
                            for l in result.output.splitlines()), out)
        self.assertIn("play_muted", sinks, out)
        with wave.open(io.BytesIO(sinks["play_muted"]), "rb") as w:
            frames = w.getnframes()
            muted = w.readframes(frames)
        self.assertGreaterEqual(frames, len(tone) // FRAME, out)
        self.assertFalse(any(muted), f"the muted sink holds sound\n{out}")
        print(f"controls: 10 s sink {len(long_played) // FRAME} frames; half-volume sink "
              f"{len(samples) // CHANNELS} frames (worst "
              f"{worst / 2} LSB off), muted sink {frames} frames", file=sys.stderr)


if __name__ == "__main__":
    DAEMON = os.path.abspath(sys.argv.pop(1))
    unittest.main()
