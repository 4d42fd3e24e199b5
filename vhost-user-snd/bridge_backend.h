// The ALSA and PipeWire host sides (`--backend=alsa|pipewire`), as the sandboxed daemon sees
// them: each stream talks to vhost-user-snd-bridge over its own socket (bridge_protocol.h). The
// daemon's SampleClock still paces the stream; nothing here waits for the bridge:
//   Write sends a period without blocking; when the bridge has not taken the last ones (the host
//         plays slower than the guest's clock) the period is dropped and counted.
//   Read  takes what the bridge has recorded; when it has less than a period (its host clock is
//         slower, or it has only just started) the rest is silence, counted.
// A kError from the bridge, or the bridge gone, is UnavailableError: the stream runs silent
// until its next Open, which asks the bridge to try the host side afresh.
#ifndef VHOST_USER_SND_BRIDGE_BACKEND_H_
#define VHOST_USER_SND_BRIDGE_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "vhost-user-snd/audio_backend.h"
#include "vhost-user-snd/bridge_protocol.h"

namespace vhost::snd {

class BridgeBackend : public AudioBackend {
 public:
  // `socket`: this stream's end, non-blocking. `caps`: what the bridge said it can open.
  BridgeBackend(UniqueFd socket, BridgeDirection direction, Capabilities caps);

  Capabilities capabilities() const override { return caps_; }
  absl::Status Open(const StreamParams& params) override;
  absl::Status Start() override;
  absl::Status Stop() override;
  absl::Status Write(absl::Span<const uint8_t> frames) override;
  absl::Status Read(absl::Span<uint8_t> frames) override;
  absl::Status Close() override;

  // Frames dropped (playback) or made up as silence (capture) since the last Open; Stop logs
  // the total when there are any.
  uint64_t frames_lost() const { return frames_lost_; }
  // Capture: of those, the silence made up after the bridge's first frames since a Start, i.e.
  // in gaps of the stream rather than before its start (which every start has).
  uint64_t gap_frames() const { return gap_frames_; }

 private:
  absl::Status Send(const std::vector<uint8_t>& message);
  // Reads what the bridge sent without waiting: kError and a closed socket become
  // UnavailableError, capture frames go to pending_ (at most `want` bytes are kept; playback
  // and stale frames are dropped).
  absl::Status Receive(size_t want);

  UniqueFd socket_;
  const BridgeDirection direction_;
  const Capabilities caps_;
  StreamParams params_;
  bool open_ = false;
  bool started_ = false;
  std::vector<uint8_t> pending_;  // capture frames received, not yet read
  std::vector<uint8_t> message_;  // receive buffer, kMaxBridgeMessage
  uint64_t frames_lost_ = 0;
  uint64_t gap_frames_ = 0;
  bool flowing_ = false;  // capture frames have come since Start
};

// Starts `bridge` (the vhost-user-snd-bridge binary) with one socket per stream, for `host`
// ("alsa" or "pipewire") and `device` (an ALSA PCM name or a PipeWire target), and waits up to
// `timeout` for each stream's capabilities. Called before the sandbox: it spawns a process.
// The bridge exits when the daemon does (its sockets close).
struct BridgeStream {
  UniqueFd socket;
  Capabilities caps;
};
absl::StatusOr<std::vector<BridgeStream>> StartBridge(const std::string& bridge,
                                                      const std::string& host,
                                                      const std::string& device,
                                                      const std::vector<BridgeDirection>& streams,
                                                      int timeout_ms);

// The bridge binary beside this executable (packages and Bazel put them in one directory).
std::string DefaultBridgePath();

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_BRIDGE_BACKEND_H_
