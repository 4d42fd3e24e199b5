// One PCM stream on a host audio system, as vhost-user-snd-bridge drives it: ALSA (alsa_pcm.*)
// or PipeWire (pipewire_pcm.*). Calls block - each stream has its own thread in the bridge, and
// the sandboxed daemon never waits for it - but never longer than the host needs to take or give
// one period: the host's own clock paces Write and Read.
//
// Errors are absl::Status. UnavailableError means the host side cannot be had or went away (no
// such device, the audio server stopped): the bridge reports it to the daemon, whose stream then
// carries on silent until its next Open, which tries afresh. Nothing here may crash the bridge.
#ifndef VHOST_USER_SND_BRIDGE_HOST_PCM_H_
#define VHOST_USER_SND_BRIDGE_HOST_PCM_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vhost-user-snd/audio_backend.h"

namespace vhost::snd {

enum class PcmDirection : uint8_t { kPlayback, kCapture };

class HostPcm {
 public:
  virtual ~HostPcm() = default;

  // What the host side can open in `direction`: asked once, when the bridge starts, for the
  // guest's PCM_INFO. A host side that cannot be reached then offers everything (its streams
  // run silent until it can).
  virtual Capabilities Probe(PcmDirection direction) { return AnyCapabilities(); }

  // Opens the host side for `direction` with these parameters (format, rate, channels exactly;
  // the host's buffer holds a few periods of period_frames). Closes what was open first.
  virtual absl::Status Open(PcmDirection direction, const StreamParams& params) = 0;
  virtual absl::Status Start() = 0;
  // Stops: playback plays out what the host holds (bounded by its buffer: the daemon already
  // completed those frames to the guest as played), capture drops what was not read.
  virtual absl::Status Stop() = 0;
  // Playback: hands `frames` (whole frames) to the host, blocking while its buffer is full.
  virtual absl::Status Write(absl::Span<const uint8_t> frames) = 0;
  // Capture: fills all of `frames` (whole frames), blocking until the host has recorded them.
  virtual absl::Status Read(absl::Span<uint8_t> frames) = 0;
  // Frames written but not yet played (playback) or recorded but not yet read (capture): the
  // host side's share of the latency. 0 when not known.
  virtual uint64_t DelayFrames() { return 0; }
  virtual void Close() = 0;
};

// `device`: an ALSA PCM name ("default", "hw:0,0", a name from an asoundrc), or for PipeWire a
// target node name or serial ("" lets the session manager choose).
std::unique_ptr<HostPcm> NewAlsaPcm(const std::string& device);
std::unique_ptr<HostPcm> NewPipeWirePcm(const std::string& target);

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_BRIDGE_HOST_PCM_H_
