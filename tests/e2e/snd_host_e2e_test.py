"""A Linux guest's virtio_snd plays and records through vhost-user-snd --backend=alsa, with the
host side in vhost-user-snd-bridge: the guest's aplay -D hw:0,0 of a 440 Hz tone reaches the
host's ALSA device bit-exact, and arecord -D hw:0,0 returns the host device's samples frame for
frame after any leading silence. The host device is alsa-lib's file plugin over null (this
machine has no sound card and cannot load snd-aloop), joined by an asym PCM: playback is written
to a raw file, capture read from one. Neither aplay nor the guest kernel reports an XRUN.

Usage: snd_host_e2e_test.py PATH_TO_vhost-user-snd PATH_TO_vhost-user-snd-bridge
"""
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemu_guest  # noqa: E402
import snd_e2e_test as snd  # noqa: E402  (tones, the guest script, alsa-lib's configuration)

DAEMON = None
BRIDGE = None

ASOUNDRC = """
pcm.vhost_sink {{ type file; slave.pcm null; file "{sink}"; format raw }}
pcm.vhost_source {{ type file; slave.pcm null; file "/dev/null"; infile "{source}"; format raw }}
pcm.vhost_e2e {{ type asym; playback.pcm "vhost_sink"; capture.pcm "vhost_source" }}
"""


class SndHostAudioTest(unittest.TestCase):

    def test_alsa_play_and_record(self):
        tone = snd.tone_frames(snd.TONE_HZ, snd.TONE_SECONDS)
        src = snd.source_frames(snd.SOURCE_SECONDS)
        with qemu_guest.work_dir("sndalsa") as work:
            sock = os.path.join(work, "snd.sock")
            sink = os.path.join(work, "sink.raw")
            source = os.path.join(work, "source.raw")
            with open(source, "wb") as f:
                f.write(src)
            with open(os.path.join(work, ".asoundrc"), "w") as f:
                f.write(ASOUNDRC.format(sink=sink, source=source))
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
                     + [("bin/arecord", "link", "aplay"),
                        ("tone.wav", "file", (tone_file, 0o644))]
                     + snd.alsa_entries())
            devices = ["-chardev", f"socket,id=snd0,path={sock}",
                       "-device", "vhost-user-snd-pci,chardev=snd0",
                       "-drive", f"file={scratch},if=none,id=scratch,format=raw",
                       "-device", "virtio-blk-pci,drive=scratch"]
            argv = [DAEMON, f"--socket-path={sock}", "--backend=alsa", f"--bridge={BRIDGE}",
                    "--audio-device=vhost_e2e",
                    "--streams=playback:2ch:48000:s16;capture:2ch:48000:s16"]
            os.environ["HOME"] = work  # alsa-lib in the bridge reads $HOME/.asoundrc
            with qemu_guest.Daemon(argv, sock) as daemon:
                result = qemu_guest.run_guest(script=script, devices=devices, work=work,
                                              modules=snd.MODULES, extra_entries=extra,
                                              timeout=120)
                log = daemon.read_log()
                self.assertTrue(daemon.alive(), log)
            out = result.output[-6000:] + "\ndaemon log:\n" + log[-3000:]
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

            # Playback: the host device's file holds the tone, bit-exact, between the silence
            # the daemon played before aplay's first period and after its last.
            with open(sink, "rb") as f:
                played = f.read()
            nonzero = [i for i, s in enumerate(struct.iter_unpack("<hh", played)) if s != (0, 0)]
            self.assertTrue(nonzero, f"the ALSA device got {len(played)} bytes of silence\n{out}")
            held = played[nonzero[0] * snd.FRAME:(nonzero[-1] + 1) * snd.FRAME]
            self.assertTrue(held == tone, f"the ALSA device's {len(held) // snd.FRAME} frames "
                            f"of tone differ from the {len(tone) // snd.FRAME} played\n{out}")

            # Capture: leading silence, then the host device's frames from its first, exactly.
            with open(scratch, "rb") as f:
                rec = f.read(int(r["record_bytes"]))
            self.assertEqual(len(rec), snd.RATE * snd.RECORD_SECONDS * snd.FRAME, out)
            lead = next((i for i, s in enumerate(struct.iter_unpack("<hh", rec))
                         if s != (0, 0)), None)
            self.assertIsNotNone(lead, f"the guest recorded silence\n{out}")
            self.assertLess(lead, snd.RATE // 2, f"{lead} frames of leading silence\n{out}")
            got = rec[lead * snd.FRAME:]
            self.assertTrue(got == src[:len(got)], f"recorded frames differ from the host "
                            f"device's after {lead} frames of leading silence")
            print(f"alsa: tone of {len(held) // snd.FRAME} frames bit-exact in a sink of "
                  f"{len(played) // snd.FRAME}; recording: {lead} frames of leading silence",
                  file=sys.stderr)


if __name__ == "__main__":
    DAEMON, BRIDGE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    unittest.main(argv=sys.argv[:1])
