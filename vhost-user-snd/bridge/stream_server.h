// The bridge's side of one stream's socket (bridge_protocol.h): it reads the daemon's messages
// on the calling thread and drives a HostPcm on a worker thread, so a host that blocks (ALSA
// waiting for its buffer, PipeWire for its graph) never stops the bridge from reading commands,
// and the daemon's non-blocking sends find room.
//
// Playback frames wait in a queue of at most a few periods; past that the oldest are dropped
// (the host plays slower than the guest's clock), which keeps the added latency bounded.
// Capture frames are sent as the host records them into a socket buffer of a few periods;
// when the daemon has not taken them, the bridge waits (the host's own buffer overruns if the
// wait is long), unless a command comes, which drops the rest of the period. Host errors go to
// the daemon as kError, once per Open. A message that does not parse ends the stream, and so do
// more than a few dozen commands waiting for a host that blocks: the daemon is not trusted.
#ifndef VHOST_USER_SND_BRIDGE_STREAM_SERVER_H_
#define VHOST_USER_SND_BRIDGE_STREAM_SERVER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "common/base/unique_fd.h"
#include "vhost-user-snd/bridge/host_pcm.h"
#include "vhost-user-snd/bridge_protocol.h"

namespace vhost::snd {

class StreamServer {
 public:
  StreamServer(UniqueFd socket, PcmDirection direction, std::unique_ptr<HostPcm> pcm);

  // Sends the capabilities, then serves until the daemon closes its end or sends what does not
  // parse. Closes the host side before returning.
  void Run();

  // Frames dropped because one side was behind (for tests and the log).
  uint64_t frames_dropped() const;

 private:
  struct Item {
    BridgeMessage message;      // payload not valid here: frames are in `data`
    std::vector<uint8_t> data;  // kData
  };

  void Work();
  void Handle(Item& item);
  void CaptureOnePeriod();
  void LimitSendBuffer();
  void Report(const absl::Status& status);
  void SendFrames(absl::Span<const uint8_t> frames);

  UniqueFd socket_;
  const PcmDirection direction_;
  std::unique_ptr<HostPcm> pcm_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Item> queue_;         // guarded by mu_
  size_t queued_bytes_ = 0;        // guarded by mu_: kData bytes in queue_
  size_t queued_commands_ = 0;     // guarded by mu_: other items in queue_
  size_t queue_limit_ = 0;         // guarded by mu_: bytes past which the oldest frames go
  size_t queued_frame_bytes_ = 1;  // guarded by mu_: of the last kOpen
  bool done_ = false;              // guarded by mu_: the daemon is gone
  uint64_t dropped_ = 0;           // guarded by mu_

  // The worker's own state.
  StreamParams params_;
  bool open_ = false;
  bool started_ = false;
  bool failed_ = false;  // a host error was reported; quiet until the next kOpen
  std::vector<uint8_t> period_;
};

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_BRIDGE_STREAM_SERVER_H_
