// The daemon's end of the vhost-user-gpu display protocol (display_protocol.h): a DisplaySink
// over the connected stream socket the front end handed over with VHOST_USER_GPU_SET_SOCKET.
//
// The protocol-feature handshake (GET_PROTOCOL_FEATURES, then SET_PROTOCOL_FEATURES with EDID
// if the front end has it) runs on the first call, not when the socket arrives: QEMU sends
// SET_SOCKET and goes straight on with its vhost-user start sequence, waiting for the daemon's
// replies, and reads the display socket only once its main loop runs again. A handshake inside
// the SET_SOCKET handler would wait for QEMU while QEMU waits for it.
//
// The front end is not trusted to answer, nor to answer well: a reply is waited for at most
// Options::timeout, and a send that finds no room in the socket for that long gives up too. A
// timeout, a reply that is not the one asked for (request, reply flag, size), a peer gone, or a
// message only partly sent leave the stream out of step, so the channel is then broken: its
// socket is shut down (a front end blocked reading the rest of a message sees EOF) and every
// later call fails at once with FailedPreconditionError. A well-framed reply whose content is
// unusable (an EDID blob of 0 bytes, say) is an error of that call only.
//
// Calls are serialized by a mutex (the device already calls from one thread at a time; the
// mutex keeps a cursor message from landing inside a frame's bytes if it ever does not).
#ifndef VHOST_USER_GPU_DISPLAY_DISPLAY_CHANNEL_H_
#define VHOST_USER_GPU_DISPLAY_DISPLAY_CHANNEL_H_

#include <sys/uio.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/base/unique_fd.h"
#include "vhost-user-gpu/display/display_protocol.h"
#include "vhost-user-gpu/display_sink.h"

namespace vhost::gpu::display {

class DisplayChannel : public DisplaySink {
 public:
  struct Options {
    // How long the front end may take to answer a request, or to make room in the socket for
    // more of a message, before the channel gives up on it.
    absl::Duration timeout = absl::Seconds(5);
  };

  // The protocol features this end uses when the front end offers them.
  static constexpr uint64_t kSupportedFeatures = kFeatureEdid;

  // `socket`: a connected SOCK_STREAM socket, blocking or not (the channel never changes its
  // flags; it waits with poll).
  explicit DisplayChannel(UniqueFd socket) : DisplayChannel(std::move(socket), Options()) {}
  DisplayChannel(UniqueFd socket, Options options);
  ~DisplayChannel() override = default;

  // Runs the handshake now if it has not run yet (every other call does so first).
  absl::Status Handshake();
  // The features SET_PROTOCOL_FEATURES enabled (0 before the handshake).
  uint64_t features() const;
  // OK while the channel is usable; why it is not otherwise.
  absl::Status health() const;

  // DisplaySink. Besides the channel's own errors: InvalidArgumentError for a scanout id of
  // kMaxScanouts or more, a scanout side over kMaxScanoutSide, an update rect outside its
  // scanout, a stride under width * 4 or pixels too short for it, a cursor image not
  // kCursorSize^2 pixels; FailedPreconditionError for an update of a scanout that is not shown
  // (QEMU has no surface for it). These send nothing and leave the channel usable. An update of
  // an empty rect sends nothing. A width or height of 0 disables the scanout (sent as 0 x 0).
  // Edid: UnimplementedError when the front end lacks the EDID feature.
  absl::Status Scanout(uint32_t scanout_id, uint32_t width, uint32_t height) override;
  absl::Status Update(uint32_t scanout_id, const Rect& rect, absl::Span<const uint8_t> pixels,
                      uint32_t stride) override;
  absl::Status CursorUpdate(uint32_t scanout_id, uint32_t x, uint32_t y, uint32_t hot_x,
                            uint32_t hot_y, absl::Span<const uint32_t> argb) override;
  absl::Status CursorMove(uint32_t scanout_id, uint32_t x, uint32_t y) override;
  absl::Status CursorHide(uint32_t scanout_id) override;
  absl::StatusOr<std::vector<ScanoutInfo>> DisplayInfo() override;
  absl::StatusOr<std::vector<uint8_t>> Edid(uint32_t scanout_id) override;

 private:
  using Clock = std::chrono::steady_clock;

  struct ScanoutState {
    uint32_t width = 0, height = 0;       // as last sent; 0 x 0: not shown
    uint32_t cursor_x = 0, cursor_y = 0;  // CURSOR_POS_HIDE repeats the last position
  };

  absl::Status ReadyLocked();
  // Sends all of `iov` (modified as it goes); a failure breaks the channel.
  absl::Status SendLocked(std::vector<iovec>& iov);
  absl::Status SendLocked(const std::vector<uint8_t>& message);
  // Waits for the reply to `request` and returns its payload; a failure breaks the channel.
  absl::StatusOr<std::vector<uint8_t>> ReceiveReplyLocked(Request request);
  absl::Status ReceiveLocked(uint8_t* data, size_t size, Clock::time_point deadline);
  // Waits until `events` are ready on the socket: OK, DeadlineExceededError or the poll error.
  absl::Status WaitLocked(short events, Clock::time_point deadline);
  // Marks the channel broken by `status`, shuts the socket down and returns `status`.
  absl::Status BreakLocked(absl::Status status);
  absl::Status CheckScanoutId(uint32_t scanout_id) const;

  // std::mutex rather than absl::Mutex: ThreadSanitizer sees through the first only (Debian's
  // Abseil is not built for it). Everything below is guarded by it, the "Locked" methods
  // expect it held.
  mutable std::mutex mu_;
  UniqueFd socket_;
  const Clock::duration timeout_;
  bool handshake_done_ = false;
  uint64_t features_ = 0;
  absl::Status broken_;
  std::array<ScanoutState, kMaxScanouts> scanouts_;
};

}  // namespace vhost::gpu::display

#endif  // VHOST_USER_GPU_DISPLAY_DISPLAY_CHANNEL_H_
