// vhost-user-snd: a virtio sound card for guests, paced at the real sample clock, playing to and
// recording from a null, WAV-file, ALSA or PipeWire host side (the last two through
// vhost-user-snd-bridge, a separate process: see bridge_backend.h).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/runtime/control_socket.h"
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-snd/bridge_backend.h"
#include "vhost-user-snd/file_backend.h"
#include "vhost-user-snd/null_backend.h"
#include "vhost-user-snd/snd_config.h"
#include "vhost-user-snd/snd_device.h"
#include "vhost-user-snd/snd_sandbox.h"

DEFINE_string(streams, std::string(vhost::snd::kDefaultStreams),
              "PCM streams: STREAM[;STREAM...], STREAM = playback|capture[:CHANNELS[:RATES[:"
              "FORMATS]]], e.g. \"playback:2ch:48000,44100:s16,s32;capture:1ch:48000:s16\"");
DEFINE_string(backend, "null",
              "Host side: null (timing only), file (--playback-file, --capture-file), alsa or "
              "pipewire (--audio-device; played and recorded by vhost-user-snd-bridge)");
DEFINE_string(audio_device, "",
              "--backend=alsa: the ALSA PCM every stream uses (default \"default\"); "
              "--backend=pipewire: the target node (default: the session manager's choice)");
DEFINE_string(bridge, "",
              "--backend=alsa|pipewire: the vhost-user-snd-bridge binary (default: the one "
              "beside this program)");
DEFINE_string(playback_file, "",
              "--backend=file: the WAV file the first playback stream writes (others are null)");
DEFINE_bool(controls, false,
            "Offer VIRTIO_SND_F_CTLS: a volume (0-100%) and a switch (mute) per stream, "
            "\"PCM Playback Volume\" etc. in the guest's mixer. Needs QEMU's "
            "vhost-user-snd-pci,controls=on (without it the guest's probe fails)");
DEFINE_string(capture_file, "",
              "--backend=file: the WAV file the first capture stream reads, then silence "
              "(others are null)");
DEFINE_string(control_socket, "",
              "Serve the host's side of the card here, one command a line: \"list\", \"jack ID "
              "plug\", \"jack ID unplug\", \"control ID VALUE\" (with --controls); the guest "
              "gets an event for each change (see the manual)");

namespace {

using absl::InvalidArgumentError;

// --backend=alsa|pipewire: one bridge process for all streams, started now, before the sandbox.
absl::StatusOr<std::vector<std::unique_ptr<vhost::snd::AudioBackend>>> StartBridgedStreams(
    const std::vector<vhost::snd::PcmCaps>& streams) {
  using namespace vhost::snd;
  std::vector<BridgeDirection> directions;
  for (const PcmCaps& caps : streams) {
    directions.push_back(caps.direction == VIRTIO_SND_D_OUTPUT ? BridgeDirection::kPlayback
                                                               : BridgeDirection::kCapture);
  }
  constexpr int kBridgeStartMs = 10000;  // it probes the host side once per stream
  absl::StatusOr<std::vector<BridgeStream>> bridged =
      StartBridge(FLAGS_bridge.empty() ? DefaultBridgePath() : FLAGS_bridge, FLAGS_backend,
                  FLAGS_audio_device, directions, kBridgeStartMs);
  if (!bridged.ok()) return bridged.status();
  std::vector<std::unique_ptr<AudioBackend>> backends;
  for (size_t i = 0; i < bridged->size(); ++i) {
    backends.push_back(std::make_unique<BridgeBackend>(std::move((*bridged)[i].socket),
                                                       directions[i], (*bridged)[i].caps));
  }
  return backends;
}

// Calls into the device from a thread of its own: stopped (before_devices_destroyed) before
// the device goes.
std::unique_ptr<vhost::ControlSocket> control;

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice() {
  using namespace vhost::snd;
  absl::StatusOr<std::vector<PcmCaps>> streams = ParseStreams(FLAGS_streams);
  if (!streams.ok()) return streams.status();
  const bool file = FLAGS_backend == "file";
  const bool bridged = FLAGS_backend == "alsa" || FLAGS_backend == "pipewire";
  if (!file && !bridged && FLAGS_backend != "null") {
    return InvalidArgumentError(
        absl::StrCat("--backend: '", FLAGS_backend, "' is not null|file|alsa|pipewire"));
  }
  if (!file && (!FLAGS_playback_file.empty() || !FLAGS_capture_file.empty())) {
    return InvalidArgumentError("--playback-file and --capture-file need --backend=file");
  }
  if (!bridged && (!FLAGS_audio_device.empty() || !FLAGS_bridge.empty())) {
    return InvalidArgumentError("--audio-device and --bridge need --backend=alsa|pipewire");
  }
  std::vector<std::unique_ptr<AudioBackend>> backends;
  if (bridged) {
    absl::StatusOr<std::vector<std::unique_ptr<AudioBackend>>> bridge =
        StartBridgedStreams(*streams);
    if (!bridge.ok()) return bridge.status();
    backends = *std::move(bridge);
  }
  bool have_sink = false, have_source = false;
  for (const PcmCaps& caps : *streams) {
    if (bridged) break;
    if (file && caps.direction == VIRTIO_SND_D_OUTPUT && !have_sink &&
        !FLAGS_playback_file.empty()) {
      // Created here, before the sandbox, so that a path that cannot be written fails now.
      int fd = open(FLAGS_playback_file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      if (fd < 0) {
        return InvalidArgumentError(
            absl::StrCat("--playback-file: ", FLAGS_playback_file, ": ", strerror(errno)));
      }
      close(fd);
      backends.push_back(FileBackend::ForPlayback(FLAGS_playback_file));
      have_sink = true;
    } else if (file && caps.direction == VIRTIO_SND_D_INPUT && !have_source &&
               !FLAGS_capture_file.empty()) {
      absl::StatusOr<std::unique_ptr<FileBackend>> source =
          FileBackend::ForCapture(FLAGS_capture_file, CaptureEnd::kSilence);
      if (!source.ok()) {
        return InvalidArgumentError(absl::StrCat("--capture-file: ", source.status().message()));
      }
      backends.push_back(*std::move(source));
      have_source = true;
    } else {
      backends.push_back(std::make_unique<NullBackend>());
    }
  }
  static const MonotonicClock clock;
  absl::StatusOr<std::unique_ptr<SndDevice>> device =
      SndDevice::Create(*std::move(streams), std::move(backends), &clock, FLAGS_controls);
  if (!device.ok()) return device.status();
  if (!FLAGS_control_socket.empty()) {
    SndDevice* served = device->get();
    absl::StatusOr<std::unique_ptr<vhost::ControlSocket>> socket = vhost::ControlSocket::Start(
        FLAGS_control_socket, "--control-socket",
        [served](absl::string_view line) { return served->HostCommand(line); });
    if (!socket.ok()) return socket.status();
    control = *std::move(socket);
  }
  return std::unique_ptr<vhost::VirtioDevice>(*std::move(device));
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-snd";
  spec.description = "Serves a virtio-snd device (a sound card) to a guest over vhost-user.";
  spec.backend_type = "sound";
  spec.create_device = CreateDevice;
  spec.sandbox = vhost::snd::SndSandboxPolicy();
  spec.before_devices_destroyed = [] { control.reset(); };
  return vhost::RunDaemon(argc, argv, spec);
}
