"""A private, headless PipeWire for tests: no sound card, no systemd, no D-Bus.

    with PipeWireHost(workdir) as pw:
        env = pw.env()                        # for any PipeWire client (pw-play, the bridge)
        with pw.record("out.wav"):            # what reaches the sink, as S16 48 kHz stereo
            subprocess.run(["pw-play", "--target", pw.SINK, "tone.wav"], env=env)
        with pw.source("in.wav"):             # a source node named pw.SOURCE plays in.wav
            subprocess.run(["pw-record", "--target", pw.SOURCE, ...], env=env)

How it runs (tests/e2e/pipewire/): `pipewire -c tests/e2e/pipewire/pipewire.conf` with
XDG_RUNTIME_DIR (and HOME, XDG_CONFIG_HOME, XDG_STATE_HOME) in `workdir`, then `wireplumber`
with tests/e2e/pipewire/wireplumber at $XDG_CONFIG_HOME/wireplumber. The config has no ALSA,
no realtime module and one node: `test-sink`, a support.null-audio-sink (48 kHz stereo) that
drives the graph from its own timer, i.e. at the wall clock, never freewheeling; 480-frame
(10 ms) quanta. WirePlumber is the session manager: it links streams to the default sink
and source or to the node a stream names in target.object, as on a desktop. It needs two
components switched off to start without a D-Bus session bus (see its 90-enable-all.lua).

Recording the sink: `pw-record --target test-sink -P '{ stream.capture.sink = true }'
--format s16 --rate 48000 --channels 2 out.wav` (record() runs that, waits until it is
linked, and stops it with SIGINT so the WAV header gets written). A capture stream that names
a sink records its monitor only with stream.capture.sink (WirePlumber 0.4's policy-node).

The capture source: `pw-play -P '{ media.class = Audio/Source node.name = test-source }'
in.wav`. With media.class Audio/Source, pw-play's stream is a source node that WirePlumber
does not link anywhere itself; a capture stream naming it gets linked to it, and only then is
it driven, so nothing of the file is lost before someone records it. (A null sink of class
Audio/Source/Virtual does not do: WirePlumber will not link a playback stream into it.) Being
the only source, it also becomes the default source, so a capture stream with no target
records it too.

vhost-user-snd-bridge's streams (vhost-user-snd/bridge/pipewire_pcm.cc) are nodes named
vhost-user-snd-playback and vhost-user-snd-capture: wait_linked() on those tells a test that
the guest's stream has reached the graph. The bridge inherits the daemon's environment, so
start the daemon with env().

Bit-exactness (measured here with pipewire 0.3.65): S16 at 48 kHz, stereo into a stereo sink,
passes through bit-exact - PipeWire converts to float and back, and S16 -> float -> S16 is
exact without volume or dithering (0.3.65 does not dither by default). Both directions were
checked with the whole file. Through the float sink, U8, S16, S24 (3 bytes) and F32 keep their
exact values; S32 keeps its top 24 bits (vhost-user-snd/bridge/pipewire_pcm_test.cc). To avoid resampling, the stream's rate must be the graph's rate:
default.clock.rate = 48000 and default.clock.allowed-rates = [ 48000 ] here, so a 48 kHz
stream is never resampled, and a stream at another rate is resampled to 48 kHz (not exact).
A stream can insist with `resample.disable = true`, or ask the graph to switch with node.rate
when allowed-rates lists its rate. The channel layout must match too (FL FR), or channelmix
mixes.

Surprises: pw-play drops the last ~20 ms of a file (its drain ends early); a recording starts
with some silence before the first frame; pw-play waits for linking before it consumes any of
the file.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import time

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipewire")


class PipeWireError(Exception):
    pass


def _wait_for(what, check, timeout, processes=()):
    """Polls check() until it is true; fails after `timeout` s or when a process died."""
    deadline = time.monotonic() + timeout
    while not check():
        for p in processes:
            if p.poll() is not None:
                raise PipeWireError(f"{what}: {p.args[0]} exited with {p.returncode}")
        if time.monotonic() > deadline:
            raise PipeWireError(f"{what}: not within {timeout} s")
        time.sleep(0.02)


def _stop(process, sig=signal.SIGTERM, timeout=5):
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class PipeWireHost:
    """pipewire + wireplumber in `workdir`, stopped (with every helper process) on exit."""

    SINK = "test-sink"
    SOURCE = "test-source"
    RATE = 48000
    CHANNELS = 2

    def __init__(self, workdir, timeout=20):
        self.workdir = os.path.abspath(workdir)
        self.timeout = timeout
        self._processes = []

    def env(self):
        """The environment a PipeWire client needs to reach this server (and no other)."""
        env = dict(os.environ)
        env.pop("PIPEWIRE_REMOTE", None)
        env.update(
            XDG_RUNTIME_DIR=self._run_dir,
            PIPEWIRE_RUNTIME_DIR=self._run_dir,
            HOME=self.workdir,
            XDG_CONFIG_HOME=os.path.join(self.workdir, "config"),
            XDG_STATE_HOME=os.path.join(self.workdir, "state"),
        )
        return env

    @property
    def socket_path(self):
        return os.path.join(self._run_dir, "pipewire-0")

    def __enter__(self):
        self._run_dir = os.path.join(self.workdir, "run")
        os.makedirs(self._run_dir, mode=0o700, exist_ok=True)
        config = os.path.join(self.workdir, "config")
        os.makedirs(config, exist_ok=True)
        link = os.path.join(config, "wireplumber")
        if not os.path.islink(link):
            os.symlink(os.path.join(CONFIG_DIR, "wireplumber"), link)
        try:
            server = self._spawn(["pipewire", "-c", os.path.join(CONFIG_DIR, "pipewire.conf")],
                                 "pipewire.log")
            _wait_for("pipewire socket", lambda: os.path.exists(self.socket_path),
                      self.timeout, [server])
            manager = self._spawn(["wireplumber"], "wireplumber.log")
            # WirePlumber is ready once it has chosen the default sink.
            _wait_for("wireplumber", lambda: self.SINK in self._pw(
                ["pw-metadata", "-n", "default", "0", "default.audio.sink"]),
                self.timeout, [server, manager])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for p in reversed(self._processes):
            _stop(p)
        self._processes = []

    def _spawn(self, argv, log_name):
        log = open(os.path.join(self.workdir, log_name), "ab")
        p = subprocess.Popen(argv, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        log.close()
        self._processes.append(p)
        return p

    def _pw(self, argv):
        """Runs a pw-* tool against this server; its stdout, "" if it failed."""
        r = subprocess.run(argv, env=self.env(), capture_output=True, text=True,
                           timeout=self.timeout)
        return r.stdout if r.returncode == 0 else ""

    def node_names(self):
        """The node.name of every node now in the graph."""
        names = []
        for line in self._pw(["pw-cli", "ls", "Node"]).splitlines():
            key, _, value = line.strip().partition(" = ")
            if key == "node.name":
                names.append(value.strip('"'))
        return names

    def wait_for_node(self, name):
        _wait_for(f"node {name}", lambda: name in self.node_names(), self.timeout,
                  self._processes)

    def linked(self, node):
        """Whether any port of `node` is linked (per pw-link -l)."""
        return any(line.startswith(node + ":") or (" " + node + ":") in line
                   for line in self._pw(["pw-link", "-l"]).splitlines()
                   if "|" in line)

    def wait_linked(self, node):
        _wait_for(f"links of {node}", lambda: self.linked(node), self.timeout, self._processes)

    @contextlib.contextmanager
    def record(self, path, name="test-recorder"):
        """Records what reaches the sink into WAV file `path` (S16_LE, 48 kHz, stereo) while
        the block runs: it starts once the recorder is linked to the sink's monitor."""
        p = self._spawn(["pw-record", "--target", self.SINK, "-P",
                         f"{{ stream.capture.sink = true node.name = {name} }}",
                         "--format", "s16", "--rate", str(self.RATE), "--channels",
                         str(self.CHANNELS), path], name + ".log")
        try:
            self.wait_linked(name)
            yield p
        finally:
            # SIGINT: pw-record closes the file, which writes the WAV header's sizes.
            _stop(p, signal.SIGINT)
            self._processes.remove(p)

    @contextlib.contextmanager
    def source(self, wav_path, name=SOURCE):
        """A source node `name` that plays WAV file `wav_path` once linked (see above)."""
        p = self._spawn(["pw-play", "-P", f"{{ media.class = Audio/Source node.name = {name} }}",
                         wav_path], name + ".log")
        try:
            self.wait_for_node(name)
            yield p
        finally:
            _stop(p)
            self._processes.remove(p)


def _self_test():
    """python3 tests/e2e/pipewire_host.py: a tone through the sink and through a source,
    compared bit for bit."""
    import math
    import struct
    import tempfile
    import wave

    workdir = tempfile.mkdtemp(prefix="pw-")
    try:
        tone = os.path.join(workdir, "tone.wav")
        frames = b"".join(struct.pack("<hh", int(12000 * math.sin(2 * math.pi * 997 * i / 48000)),
                                      i % 30000 - 15000) for i in range(24000))
        with wave.open(tone, "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(48000)
            w.writeframes(frames)
        with PipeWireHost(workdir) as pw:
            out = os.path.join(workdir, "out.wav")
            with pw.record(out):
                subprocess.run(["pw-play", "--target", pw.SINK, tone], env=pw.env(), check=True,
                               timeout=30)
            inp = os.path.join(workdir, "in.wav")
            with pw.source(tone):
                rec = subprocess.Popen(["pw-record", "--target", pw.SOURCE, "-P",
                                        "{ node.name = test-capture }", inp], env=pw.env())
                pw.wait_linked("test-capture")
                # A second of recording holds the half second of the file.
                deadline = time.monotonic() + 30
                while (os.path.getsize(inp) if os.path.exists(inp) else 0) < 4 * 48000:
                    assert time.monotonic() < deadline, "recording does not grow"
                    time.sleep(0.05)
                _stop(rec, signal.SIGINT)
        # pw-play drops the file's last ~20 ms: compare all but its last 50 ms.
        expected = frames[:len(frames) - 4 * 2400]
        for path in (out, inp):
            with wave.open(path) as w:
                got = w.readframes(w.getnframes())
            assert expected in got, f"{path}: the tone is not there bit-exact"
            print(f"{path}: bit-exact, after {got.find(expected) // 4} frames of silence")
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    _self_test()
