// What vhost-user-snd and its host audio bridge (vhost-user-snd-bridge, bridge/) say to each
// other: one SOCK_SEQPACKET socket per stream, each message a BridgeHeader and its payload.
//
//   bridge -> daemon, first: kCaps, what the host side of this stream can open (probed once, at
//                            start, while the daemon may still wait).
//   daemon -> bridge: kOpen (direction and parameters), kStart, kStop, kClose, and kData: frames
//                     to play, at most kMaxBridgeChunk bytes per message, whole frames.
//   bridge -> daemon: kData (frames recorded, same bounds) and kError (text: the host side went
//                     away; the daemon's stream goes silent until its next Open).
//
// Neither side trusts the other: the bridge runs outside the daemon's sandbox, so a daemon
// taken over by its guest must not get more out of it than a stream of frames; the daemon
// checks what it reads as any input. DecodeBridgeMessage is the one parser both use.
#ifndef VHOST_USER_SND_BRIDGE_PROTOCOL_H_
#define VHOST_USER_SND_BRIDGE_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "vhost-user-snd/audio_backend.h"

namespace vhost::snd {

enum class BridgeOp : uint32_t {
  kCaps = 1,
  kOpen = 2,
  kStart = 3,
  kStop = 4,
  kClose = 5,
  kData = 6,
  kError = 7,
};

enum class BridgeDirection : uint32_t { kPlayback = 0, kCapture = 1 };

// Little-endian on the wire like everything else here (both ends are one host).
struct BridgeHeader {
  uint32_t op;
  uint32_t direction;      // kOpen
  uint32_t format;         // kOpen: AudioFormat
  uint32_t rate;           // kOpen
  uint32_t channels;       // kOpen; kCaps: channels_max
  uint32_t period_frames;  // kOpen; kCaps: channels_min
  uint64_t formats;        // kCaps: 1 << AudioFormat
  uint64_t rates;          // kCaps: 1 << index in kVirtioRates
};
static_assert(sizeof(BridgeHeader) == 40);

// The largest payload of one message: a period is sent in as many chunks as it needs, so the
// socket's buffer (a few hundred KiB) always holds whole messages.
inline constexpr size_t kMaxBridgeChunk = 32 * 1024;
inline constexpr size_t kMaxBridgeMessage = sizeof(BridgeHeader) + kMaxBridgeChunk;
// The largest period the bridge takes (what it allocates per stream): far above the 10 ms to
// 100 ms periods guests use; a stream with a larger one runs silent.
inline constexpr size_t kMaxBridgePeriodBytes = 8u << 20;

struct BridgeMessage {
  BridgeOp op = BridgeOp::kClose;
  BridgeDirection direction = BridgeDirection::kPlayback;
  StreamParams params;                // kOpen
  Capabilities caps;                  // kCaps
  absl::Span<const uint8_t> payload;  // kData: frames; kError: text (points into the input)
};

std::vector<uint8_t> EncodeBridgeCommand(BridgeOp op);  // kStart, kStop, kClose
std::vector<uint8_t> EncodeBridgeOpen(BridgeDirection direction, const StreamParams& params);
std::vector<uint8_t> EncodeBridgeCaps(const Capabilities& caps);
std::vector<uint8_t> EncodeBridgeError(absl::string_view text);
// The header of a kData message whose payload (`payload_bytes`) follows it in the same send.
BridgeHeader BridgeDataHeader();

// Parses one received message: InvalidArgumentError for a short message, an unknown op or
// direction, a kOpen with parameters no stream can have (format, a rate virtio-snd cannot name,
// 0 or over 255 channels, an empty period or one over kMaxBridgePeriodBytes), a payload on a
// message that has none or over kMaxBridgeChunk.
absl::StatusOr<BridgeMessage> DecodeBridgeMessage(absl::Span<const uint8_t> bytes);

// The bytes of whole frames that fit in one chunk, for frames of `frame_bytes`.
size_t BridgeChunkBytes(size_t frame_bytes);

// Sends `frames` on `socket` as kData messages of whole frames, without waiting: returns the
// bytes sent before the socket was full (all of them, or fewer on EAGAIN); the errno of any
// other failure as an error (the peer gone: EPIPE, ECONNRESET).
absl::StatusOr<size_t> SendBridgeFrames(int socket, absl::Span<const uint8_t> frames,
                                        size_t frame_bytes);

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_BRIDGE_PROTOCOL_H_
