"""A Linux guest's virtio_snd plays and records through vhost-user-snd's host audio sides, served
by vhost-user-snd-bridge, one boot each:

- --backend=alsa: the guest's aplay -D hw:0,0 of a 440 Hz tone reaches the host's ALSA device
  bit-exact, and arecord -D hw:0,0 returns the host device's samples frame for frame after any
  leading silence. The host device is alsa-lib's file plugin over null (this machine has no
  sound card and cannot load snd-aloop), joined by an asym PCM: playback is written to a raw
  file, capture read from one.
- --backend=pipewire: a headless PipeWire started by the test (pipewire_host.py: a null sink
  clocked at 48 kHz, WirePlumber linking streams to it). The tone reaches the sink bit-exact
  (recorded from its monitor with pw-record), and arecord gets a PipeWire source's frames
  (pw-play of a known file as an Audio/Source node), in order and complete.

Capture's silence: the daemon reads the bridge by its own clock, and a period the bridge has
not delivered yet becomes silence. That happens at every start (the first read finds nothing)
and, on a loaded host, anywhere: the bridge a period late puts a period of silence between two
of the source's. The daemon counts it, and at Stop logs how much it made up after the bridge's
first frames: the gaps. (Before them a recording may also begin with the host's own silence:
PipeWire's first buffer of the stream, 2048 frames in these runs.) No frame of the source is silent
(snd_e2e_test.source_frames), so the recording's silent frames are told apart exactly: the rest
must be one stretch of the source, every frame in order with none missing, at least half the
recording, and its silence after the first frame of sound no more than the daemon's gaps.

Neither aplay nor the guest kernel reports an XRUN.

Usage: snd_host_e2e_test.py PATH_TO_vhost-user-snd PATH_TO_vhost-user-snd-bridge
"""
import os
import re
import struct
import sys
import unittest
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pipewire_host  # noqa: E402
import qemu_guest  # noqa: E402
import snd_e2e_test as snd  # noqa: E402  (tones, the guest script, alsa-lib's configuration)

DAEMON = None
BRIDGE = None

ASOUNDRC = """
pcm.vhost_sink {{ type file; slave.pcm null; file "{sink}"; format raw }}
pcm.vhost_source {{ type file; slave.pcm null; file "/dev/null"; infile "{source}"; format raw }}
pcm.vhost_e2e {{ type asym; playback.pcm "vhost_sink"; capture.pcm "vhost_source" }}
"""


# BridgeBackend::Stop's totals (vhost-user-snd/bridge_backend.cc).
CAPTURE_SILENCE = re.compile(r"audio bridge: capture stopped after (\d+) frames of silence since "
                             r"it was opened, (\d+) of them after the bridge's first frames")
SILENT_FRAME = bytes(snd.FRAME)


def split_silence(rec):
    """The recording's frames that are not silence, joined, and its silent stretches as
    [first frame, frames] pairs."""
    sound = bytearray()
    gaps = []
    for i in range(0, len(rec), snd.FRAME):
        frame = rec[i:i + snd.FRAME]
        if frame != SILENT_FRAME:
            sound += frame
        elif gaps and sum(gaps[-1]) == i // snd.FRAME:
            gaps[-1][1] += 1
        else:
            gaps.append([i // snd.FRAME, 1])
    return bytes(sound), gaps


def guest_run(work, sock, argv, env=None):
    """Boots a guest that plays the tone (aplay) and records (arecord) through the daemon
    started with `argv` (in `env`); returns (result, daemon log, tone, recording)."""
    tone = snd.tone_frames(snd.TONE_HZ, snd.TONE_SECONDS)
    tone_wav = os.path.join(work, "tone.wav")
    snd.write_wav(tone_wav, tone)
    with open(tone_wav, "rb") as f:
        tone_file = f.read()
    scratch = os.path.join(work, "scratch.img")
    with open(scratch, "wb") as f:
        f.truncate(snd.SLOT)
    script = (snd.GUEST_SCRIPT.replace("@PERIOD_US@", str(snd.PERIOD_US))
              .replace("@BUFFER_US@", str(snd.BUFFER_US))
              .replace("@RECORD_SECONDS@", str(snd.RECORD_SECONDS))
              .replace("@SLOT@", str(snd.SLOT)))
    extra = (qemu_guest.host_binary_entries("/usr/bin/aplay")
             + [("bin/arecord", "link", "aplay"), ("tone.wav", "file", (tone_file, 0o644))]
             + snd.sound_entries())
    devices = ["-chardev", f"socket,id=snd0,path={sock}",
               "-device", "vhost-user-snd-pci,chardev=snd0",
               "-drive", f"file={scratch},if=none,id=scratch,format=raw",
               "-device", "virtio-blk-pci,drive=scratch"]
    saved = dict(os.environ)
    os.environ.update(env or {})  # the daemon, and the bridge it starts, inherit it
    try:
        with qemu_guest.Daemon(argv, sock) as daemon:
            result = qemu_guest.run_guest(script=script, devices=devices, work=work,
                                          modules=snd.MODULES, extra_entries=extra, timeout=120)
            log = daemon.read_log()
            alive = daemon.alive()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with open(scratch, "rb") as f:
        rec = f.read(snd.SLOT)
    return result, log + ("" if alive else "\nTHE DAEMON DIED"), tone, rec


class SndHostAudioTest(unittest.TestCase):

    def check_guest(self, result, log):
        """The boot ran, aplay and arecord succeeded, nothing reported an xrun; returns the
        boot's results and the text to show on failure."""
        out = result.output[-6000:] + "\ndaemon log:\n" + log[-3000:]
        self.assertNotIn("THE DAEMON DIED", log, out)
        self.assertFalse(result.timed_out, out)
        self.assertEqual(len(result.boots), 1, out)
        session = result.boots[0]
        r = session.results
        self.assertEqual(session.script_status, 0, out)
        self.assertEqual(r["play_rc"], "0", out)
        self.assertEqual(r["record_rc"], "0", out)
        said = [l for l in session.output.splitlines()
                if l.startswith(("E2E-OUT play", "E2E-OUT record"))]
        self.assertFalse([l for l in said if "underrun" in l.lower()
                          or "overrun" in l.lower() or "xrun" in l.lower()], out)
        return r, out

    def check_capture(self, r, rec, src, log, out, from_first):
        """The recording is the source's frames (from its first if `from_first`, else from
        anywhere in it) in order, none missing, with silence only where the daemon made some up
        (see the module's doc). Returns (the silent stretches, where the source began, the
        daemon's counts of silence: in all and in gaps)."""
        rec = rec[:int(r["record_bytes"])]
        self.assertEqual(len(rec), snd.RATE * snd.RECORD_SECONDS * snd.FRAME, out)
        sound, gaps = split_silence(rec)
        self.assertTrue(sound, f"the guest recorded silence\n{out}")
        start = 0 if from_first else src.find(sound[:snd.FRAME * 480])
        self.assertGreaterEqual(start, 0, f"the recording's first 10 ms of sound are not in "
                                f"the source\n{out}")
        expected = src[start:start + len(sound)]
        if sound != expected:
            differ = next((i for i in range(0, min(len(sound), len(expected)), snd.FRAME)
                           if sound[i:i + snd.FRAME] != expected[i:i + snd.FRAME]),
                          min(len(sound), len(expected))) // snd.FRAME
            where = differ
            for at, n in gaps:  # the silence before it
                if at <= where:
                    where += n
            # Whether the sound goes on from elsewhere in the source (frames skipped or
            # repeated) or is no part of it.
            resumes = src.find(sound[differ * snd.FRAME:(differ + 480) * snd.FRAME])
            after = (f"goes on from source frame {resumes // snd.FRAME}" if resumes >= 0 else
                     "is not in the source")
            self.fail(f"the recording's sound differs from source frame {start // snd.FRAME} on "
                      f"from its frame {differ} of sound (frame {where} of the recording), "
                      f"where it {after}; silent stretches (frame, length): {gaps[:20]}\n{out}")
        self.assertGreaterEqual(len(sound) // snd.FRAME, len(rec) // snd.FRAME // 2,
                                f"frames of the source in a recording of {len(rec) // snd.FRAME};"
                                f" silent stretches (frame, length): {gaps[:20]}\n{out}")
        # The daemon logs its counts only when it made some silence up (the last line is this
        # boot's capture: the daemon's log is the boot's).
        said = CAPTURE_SILENCE.findall(log)
        made_up, in_gaps = map(int, said[-1]) if said else (0, 0)
        after_sound = sum(n for at, n in gaps if at > 0)
        self.assertLessEqual(after_sound, in_gaps, f"{after_sound} frames of silence after the "
                             f"first sound, in stretches (frame, length) {gaps[:20]}; the daemon "
                             f"made up {in_gaps} after the bridge's first frames\n{out}")
        return gaps, start // snd.FRAME, made_up, in_gaps

    def test_pipewire_play_and_record(self):
        # The source outlasts the recording wherever in it the capture stream is linked.
        src = snd.source_frames(snd.RECORD_SECONDS + 4)
        with qemu_guest.work_dir("sndpw") as work:
            sock = os.path.join(work, "snd.sock")
            source = os.path.join(work, "source.wav")
            snd.write_wav(source, src)
            sink = os.path.join(work, "sink.wav")
            argv = [DAEMON, f"--socket-path={sock}", "--backend=pipewire", f"--bridge={BRIDGE}",
                    "--streams=playback:2ch:48000:s16;capture:2ch:48000:s16"]
            with pipewire_host.PipeWireHost(os.path.join(work, "pw")) as pw:
                with pw.record(sink), pw.source(source):
                    result, log, tone, rec = guest_run(work, sock, argv, pw.env())
            r, out = self.check_guest(result, log)
            out += "\n" + pw.log()

            # Playback: the sink's monitor holds the tone, bit-exact, inside silence.
            with wave.open(sink, "rb") as w:
                played = w.readframes(w.getnframes())
            self.assertIn(tone[:snd.FRAME * 4800], played,
                          f"the tone's first 100 ms are not in the PipeWire sink\n{out}")
            at = played.find(tone[:snd.FRAME * 4800])
            held = played[at:at + len(tone)]
            if held != tone:
                differ = next((i for i in range(0, min(len(held), len(tone)), snd.FRAME)
                               if held[i:i + snd.FRAME] != tone[i:i + snd.FRAME]), len(held))
                self.fail(f"the tone in the PipeWire sink differs from the one played from frame "
                          f"{differ // snd.FRAME} of {len(tone) // snd.FRAME} (the sink holds "
                          f"{len(held) // snd.FRAME} from there, then "
                          f"{snd.longest_zero_run(played[at + differ:at + differ + 96000])} "
                          f"frames of silence)\n{out}")

            # Capture: the source from wherever the bridge's stream was linked, in order and
            # complete, with the silence the daemon made up while the bridge was behind.
            gaps, start, made_up, in_gaps = self.check_capture(r, rec, src, log, out,
                                                               from_first=False)
            print(f"pipewire: tone bit-exact at frame {at // snd.FRAME} of the sink; recording: "
                  f"the source from its frame {start}, silent stretches (frame, length) "
                  f"{gaps[:10]}; the daemon made up {made_up} frames, {in_gaps} in gaps",
                  file=sys.stderr)

    def test_alsa_play_and_record(self):
        src = snd.source_frames(snd.SOURCE_SECONDS)
        with qemu_guest.work_dir("sndalsa") as work:
            sock = os.path.join(work, "snd.sock")
            sink = os.path.join(work, "sink.raw")
            source = os.path.join(work, "source.raw")
            with open(source, "wb") as f:
                f.write(src)
            with open(os.path.join(work, ".asoundrc"), "w") as f:
                f.write(ASOUNDRC.format(sink=sink, source=source))
            argv = [DAEMON, f"--socket-path={sock}", "--backend=alsa", f"--bridge={BRIDGE}",
                    "--audio-device=vhost_e2e",
                    "--streams=playback:2ch:48000:s16;capture:2ch:48000:s16"]
            # alsa-lib in the bridge reads $HOME/.asoundrc.
            result, log, tone, rec = guest_run(work, sock, argv, {"HOME": work})
            r, out = self.check_guest(result, log)

            # Playback: the host device's file holds the tone, bit-exact, between the silence
            # the daemon played before aplay's first period and after its last.
            with open(sink, "rb") as f:
                played = f.read()
            nonzero = [i for i, s in enumerate(struct.iter_unpack("<hh", played)) if s != (0, 0)]
            self.assertTrue(nonzero, f"the ALSA device got {len(played)} bytes of silence\n{out}")
            held = played[nonzero[0] * snd.FRAME:(nonzero[-1] + 1) * snd.FRAME]
            self.assertTrue(held == tone, f"the ALSA device's {len(held) // snd.FRAME} frames "
                            f"of tone differ from the {len(tone) // snd.FRAME} played\n{out}")

            # Capture: the host device's frames from its first, in order and complete, with the
            # silence the daemon made up while the bridge was behind.
            gaps, _, made_up, in_gaps = self.check_capture(r, rec, src, log, out,
                                                           from_first=True)
            lead = gaps[0][1] if gaps and gaps[0][0] == 0 else 0
            self.assertLess(lead, snd.RATE // 2, f"{lead} frames of leading silence\n{out}")
            print(f"alsa: tone of {len(held) // snd.FRAME} frames bit-exact in a sink of "
                  f"{len(played) // snd.FRAME}; recording: silent stretches (frame, length) "
                  f"{gaps[:10]}; the daemon made up {made_up} frames, {in_gaps} in gaps",
                  file=sys.stderr)


if __name__ == "__main__":
    DAEMON, BRIDGE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=sys.argv[:1])
