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
import ctypes
import os
import select
import shutil
import signal
import subprocess
import time

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pipewire")


class PipeWireError(Exception):
    pass


def _check_alive(what, processes):
    for p in processes:
        if p.poll() is not None:
            raise PipeWireError(f"{what}: {p.args[0]} exited with {p.returncode}")


def _wait_for_file(what, path, timeout, processes=()):
    """Waits for `path` to be created (inotify on its directory: no polling), failing after
    `timeout` s or when one of `processes` died."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    try:
        in_create, in_moved_to = 0x100, 0x80
        if libc.inotify_add_watch(fd, os.path.dirname(path).encode(), in_create | in_moved_to) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):  # checked after the watch exists: no event is missed
            _check_alive(what, processes)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PipeWireError(f"{what}: not within {timeout} s")
            # A short bound too, so that a process dying is noticed without an event.
            if select.select([fd], [], [], min(remaining, 1.0))[0]:
                os.read(fd, 4096)
    finally:
        os.close(fd)


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

    def log(self, limit=3000):
        """The end of what pipewire and wireplumber logged (warnings and errors), for a
        failure's message; readable after the host stopped."""
        text = ""
        for name in ("pipewire.log", "wireplumber.log"):
            try:
                with open(os.path.join(self.workdir, name), "rb") as f:
                    f.seek(0, os.SEEK_END)
                    f.seek(max(0, f.tell() - limit))
                    text += f"{name}:\n{f.read().decode(errors='replace')}\n"
            except FileNotFoundError:
                pass
        return text

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
            _wait_for_file("pipewire socket", self.socket_path, self.timeout, [server])
            manager = self._spawn(["wireplumber"], "wireplumber.log")
            # WirePlumber is ready once it has chosen the default sink.
            self._watch(["pw-metadata", "-m", "-n", "default"],
                        self._any_line(lambda line: "default.audio.sink" in line
                                       and self.SINK in line),
                        "wireplumber", [server, manager])
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

    def _watch(self, argv, on_output, what, processes=None):
        """Runs `argv`, a pw-* tool in monitor mode (it prints the graph's state, then each
        change as it happens), until on_output(bytes it printed) says so: the wait is on
        PipeWire's own events, bounded by the timeout."""
        processes = self._processes if processes is None else processes
        tool = subprocess.Popen(argv, env=self.env(), stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                _check_alive(what, processes)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PipeWireError(f"{what}: not within {self.timeout} s")
                if not select.select([tool.stdout], [], [], min(remaining, 1.0))[0]:
                    continue
                data = os.read(tool.stdout.fileno(), 65536)
                if not data:
                    raise PipeWireError(f"{what}: {argv[0]} exited")
                if on_output(data):
                    return
        finally:
            # The monitor handles SIGTERM in its main loop, which a write into a pipe nobody
            # reads any more blocks (pw-dump's output fills one): closed pipe, SIGKILL.
            tool.stdout.close()
            _stop(tool, signal.SIGKILL)

    @staticmethod
    def _any_line(matches):
        """An on_output for _watch: whether a complete line printed so far matches."""
        pending = [b""]

        def on_output(data):
            *lines, pending[0] = (pending[0] + data).split(b"\n")
            return any(matches(line.decode(errors="replace")) for line in lines)
        return on_output

    def _pw(self, argv):
        """Runs a one-shot pw-* tool against this server; its stdout, "" if it failed."""
        r = subprocess.run(argv, env=self.env(), capture_output=True, text=True,
                           timeout=self.timeout)
        return r.stdout if r.returncode == 0 else ""

    def _wait_until(self, check, what):
        """Until check() holds, asked when pw-dump -m starts and again at each change it
        prints. The one-shot tools check() uses see the whole graph at once, where a monitor
        that cross-references ports and links can miss a link made in quick succession."""
        if check():
            return
        self._watch(["pw-dump", "-m", "-N"], lambda _output: check(), what)

    def wait_for_node(self, name):
        """Until node `name` is in the graph."""
        def present():
            return f'node.name = "{name}"' in self._pw(["pw-cli", "ls", "Node"])
        self._wait_until(present, f"node {name}")

    def wait_linked(self, node):
        """Until a port of `node` is linked (per pw-link -l)."""
        def linked():
            return any(line.strip().startswith(node + ":") or f" {node}:" in line
                       for line in self._pw(["pw-link", "-l"]).splitlines() if "|" in line)
        self._wait_until(linked, f"links of {node}")

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
            # Recorded into a FIFO (".raw": pw-record writes bare S16 frames), read as it
            # comes: a second of recording holds the half second of the file.
            inp = os.path.join(workdir, "in.raw")
            os.mkfifo(inp)
            with pw.source(tone):
                rec = subprocess.Popen(["pw-record", "--target", pw.SOURCE, "-P",
                                        "{ node.name = test-capture }", "--format", "s16",
                                        "--rate", "48000", "--channels", "2", inp], env=pw.env())
                fifo = os.open(inp, os.O_RDONLY)  # returns once pw-record opens it
                recorded = b""
                deadline = time.monotonic() + 30
                while len(recorded) < 4 * 48000:
                    remaining = deadline - time.monotonic()
                    assert remaining > 0, "recording does not grow"
                    if select.select([fifo], [], [], remaining)[0]:
                        chunk = os.read(fifo, 65536)
                        assert chunk, "pw-record ended"
                        recorded += chunk
                _stop(rec, signal.SIGINT)
                os.close(fifo)
        # pw-play drops the file's last ~20 ms: compare all but its last 50 ms.
        expected = frames[:len(frames) - 4 * 2400]
        with wave.open(out) as w:
            played = w.readframes(w.getnframes())
        for what, got in (("the sink", played), ("the source", recorded)):
            assert expected in got, f"{what}: the tone is not there bit-exact"
            print(f"{what}: bit-exact, after {got.find(expected) // 4} frames of silence")
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    _self_test()
