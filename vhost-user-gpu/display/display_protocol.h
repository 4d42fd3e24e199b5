// The vhost-user-gpu display protocol (QEMU's docs/interop/vhost-user-gpu.rst): what the gpu
// daemon says to the front end's display over the stream socket the front end hands over with
// VHOST_USER_GPU_SET_SOCKET. The daemon sends requests; the front end answers only some:
//
//   GET_PROTOCOL_FEATURES  ->  reply: u64 feature bits
//   SET_PROTOCOL_FEATURES     (u64; no reply: QEMU answers nothing)
//   GET_DISPLAY_INFO       ->  reply: virtio_gpu_resp_display_info
//   GET_EDID (scanout id)  ->  reply: virtio_gpu_resp_edid (QEMU: none at all for a scanout id
//                              past its max_outputs, so only ask for scanouts it has)
//   CURSOR_POS, CURSOR_POS_HIDE, CURSOR_UPDATE, SCANOUT, UPDATE: no reply.
//
// Every message is a 12-byte header (request, flags, payload size) and the payload, packed, in
// the host's byte order (both ends run on one host); the virtio-gpu structs inside replies are
// little-endian, which is the same thing on the hosts this builds for.
//
// QEMU trusts what it reads: an UPDATE's pixel bytes are taken as width x height x 4 whatever
// the header's size says, and an UPDATE to a scanout without a SCANOUT first dereferences a
// missing surface. Encoders here therefore always produce whole messages, and DisplayChannel
// only sends UPDATEs inside the scanout it announced.
#ifndef VHOST_USER_GPU_DISPLAY_DISPLAY_PROTOCOL_H_
#define VHOST_USER_GPU_DISPLAY_DISPLAY_PROTOCOL_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "vhost-user-gpu/display_sink.h"

namespace vhost::gpu::display {

enum class Request : uint32_t {
  kGetProtocolFeatures = 1,
  kSetProtocolFeatures = 2,
  kGetDisplayInfo = 3,
  kCursorPos = 4,
  kCursorPosHide = 5,
  kCursorUpdate = 6,
  kScanout = 7,
  kUpdate = 8,
  kDmabufScanout = 9,
  kDmabufUpdate = 10,
  kGetEdid = 11,
  kDmabufScanout2 = 12,
};

// Header flags: bit 2 marks a reply (the front end sets it on every reply).
inline constexpr uint32_t kFlagReply = 1u << 2;

// Protocol feature bits (GET/SET_PROTOCOL_FEATURES).
inline constexpr uint64_t kFeatureEdid = uint64_t{1} << 0;
inline constexpr uint64_t kFeatureDmabuf2 = uint64_t{1} << 1;

// virtio-gpu's limits the replies are sized by (VIRTIO_GPU_MAX_SCANOUTS, the EDID blob).
inline constexpr uint32_t kMaxScanouts = 16;
inline constexpr size_t kEdidBlobSize = 1024;
// The largest scanout side sent or accepted: QEMU allocates a surface of the announced size,
// and 16384 x 16384 x 4 bytes keeps an UPDATE's size within the header's u32.
inline constexpr uint32_t kMaxScanoutSide = 16384;

// virtio-gpu response types the front end puts in its replies' control headers.
inline constexpr uint32_t kRespOkDisplayInfo = 0x1101;
inline constexpr uint32_t kRespOkEdid = 0x1104;

struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;  // of the payload that follows
};
static_assert(sizeof(Header) == 12);

struct CursorPos {
  uint32_t scanout_id;
  uint32_t x;
  uint32_t y;
};
static_assert(sizeof(CursorPos) == 12);

struct CursorUpdate {
  CursorPos pos;
  uint32_t hot_x;
  uint32_t hot_y;
  uint32_t data[kCursorSize * kCursorSize];  // a8r8g8b8
};
static_assert(sizeof(CursorUpdate) == 12 + 8 + 64 * 64 * 4);

struct Scanout {
  uint32_t scanout_id;
  uint32_t width;  // 0 x 0: the scanout is disabled
  uint32_t height;
};
static_assert(sizeof(Scanout) == 12);

// UPDATE's fixed part; width x height x8r8g8b8 pixels follow, rows packed (width * 4 bytes).
struct Update {
  uint32_t scanout_id;
  uint32_t x;
  uint32_t y;
  uint32_t width;
  uint32_t height;
};
static_assert(sizeof(Update) == 20);

struct EdidRequest {
  uint32_t scanout_id;
};
static_assert(sizeof(EdidRequest) == 4);

// virtio_gpu_ctrl_hdr (virtio 1.2, 5.7.6.7).
struct CtrlHdr {
  uint32_t type;
  uint32_t flags;
  uint64_t fence_id;
  uint32_t ctx_id;
  uint8_t ring_idx;
  uint8_t padding[3];
};
static_assert(sizeof(CtrlHdr) == 24);

// virtio_gpu_resp_display_info.
struct DisplayOne {
  uint32_t x, y, width, height;  // virtio_gpu_rect
  uint32_t enabled;
  uint32_t flags;
};
struct RespDisplayInfo {
  CtrlHdr hdr;
  DisplayOne pmodes[kMaxScanouts];
};
static_assert(sizeof(RespDisplayInfo) == 24 + 16 * 24);

// virtio_gpu_resp_edid.
struct RespEdid {
  CtrlHdr hdr;
  uint32_t size;
  uint32_t padding;
  uint8_t edid[kEdidBlobSize];
};
static_assert(sizeof(RespEdid) == 24 + 8 + 1024);

// The payload size of each request (UPDATE: its fixed part, the pixels follow; 0 for a number
// that is no request), and of the replies to GET_PROTOCOL_FEATURES, GET_DISPLAY_INFO and
// GET_EDID (0 for the others: the daemon waits for no reply to them).
uint32_t RequestPayloadSize(Request request);
uint32_t ReplyPayloadSize(Request request);

// A whole message: header (flags 0, or kFlagReply for a reply) and `payload`.
std::vector<uint8_t> EncodeMessage(Request request, absl::Span<const uint8_t> payload,
                                   uint32_t flags = 0);
template <typename T>
std::vector<uint8_t> EncodeStruct(Request request, const T& payload, uint32_t flags = 0) {
  return EncodeMessage(
      request, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&payload), sizeof(payload)),
      flags);
}

// The daemon's requests.
std::vector<uint8_t> EncodeGetProtocolFeatures();
std::vector<uint8_t> EncodeSetProtocolFeatures(uint64_t features);
std::vector<uint8_t> EncodeGetDisplayInfo();
std::vector<uint8_t> EncodeGetEdid(uint32_t scanout_id);
std::vector<uint8_t> EncodeScanout(uint32_t scanout_id, uint32_t width, uint32_t height);
// kCursorPos or kCursorPosHide.
std::vector<uint8_t> EncodeCursorPos(Request request, uint32_t scanout_id, uint32_t x, uint32_t y);
// `argb` must hold kCursorSize * kCursorSize pixels (InvalidArgumentError otherwise).
absl::StatusOr<std::vector<uint8_t>> EncodeCursorUpdate(uint32_t scanout_id, uint32_t x, uint32_t y,
                                                        uint32_t hot_x, uint32_t hot_y,
                                                        absl::Span<const uint32_t> argb);

// The header and fixed part of an UPDATE of `rect` (its pixels follow in the same send), as
// contiguous bytes. InvalidArgumentError if the pixels would not fit the header's u32 size.
using UpdatePrefix = std::array<uint8_t, sizeof(Header) + sizeof(Update)>;
absl::StatusOr<UpdatePrefix> EncodeUpdatePrefix(uint32_t scanout_id, const Rect& rect);

// The front end's replies (what the fake display end sends).
std::vector<uint8_t> EncodeProtocolFeaturesReply(uint64_t features);
// Up to kMaxScanouts entries; the rest are disabled.
std::vector<uint8_t> EncodeDisplayInfoReply(absl::Span<const ScanoutInfo> displays);
// At most kEdidBlobSize bytes of `edid` are sent.
std::vector<uint8_t> EncodeEdidReply(absl::Span<const uint8_t> edid);

// Checks a reply's header before any of its payload is read: InvalidArgumentError unless it
// answers `request`, has the reply flag and carries exactly ReplyPayloadSize(request) bytes.
absl::Status CheckReplyHeader(const Header& header, Request request);

// Parse a reply's payload (exactly ReplyPayloadSize bytes; InvalidArgumentError otherwise).
absl::StatusOr<uint64_t> DecodeProtocolFeatures(absl::Span<const uint8_t> payload);
// All kMaxScanouts entries. InvalidArgumentError for a response type other than
// kRespOkDisplayInfo or an enabled entry of 0 or over kMaxScanoutSide width or height.
absl::StatusOr<std::vector<ScanoutInfo>> DecodeDisplayInfo(absl::Span<const uint8_t> payload);
// The blob's `size` bytes. InvalidArgumentError for a response type other than kRespOkEdid, or
// a size of 0 or over kEdidBlobSize.
absl::StatusOr<std::vector<uint8_t>> DecodeEdid(absl::Span<const uint8_t> payload);

}  // namespace vhost::gpu::display

#endif  // VHOST_USER_GPU_DISPLAY_DISPLAY_PROTOCOL_H_
