#include "vhost-user-gpu/display/display_protocol.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vhost::gpu::display {
namespace {

// The protocol is in the host's byte order and the virtio-gpu structs in replies are
// little-endian; this code reads both with memcpy, which is right only where the two agree.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the display protocol needs a LE host");

// DMABUF_SCANOUT's payload (ten u32) and DMABUF_SCANOUT2's (that and a u64 modifier): only
// their sizes matter here, this end never shares dmabufs.
constexpr uint32_t kDmabufScanoutSize = 10 * 4;
constexpr uint32_t kDmabufScanout2Size = kDmabufScanoutSize + 8;

template <typename T>
absl::StatusOr<T> ReadExactly(absl::Span<const uint8_t> payload, const char* what) {
  if (payload.size() != sizeof(T)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " reply of ", payload.size(), " bytes, not ", sizeof(T)));
  }
  T value;
  memcpy(&value, payload.data(), sizeof(T));
  return value;
}

}  // namespace

uint32_t RequestPayloadSize(Request request) {
  switch (request) {
    case Request::kGetProtocolFeatures:
    case Request::kGetDisplayInfo:
      return 0;
    case Request::kSetProtocolFeatures:
      return sizeof(uint64_t);
    case Request::kCursorPos:
    case Request::kCursorPosHide:
      return sizeof(CursorPos);
    case Request::kCursorUpdate:
      return sizeof(CursorUpdate);
    case Request::kScanout:
      return sizeof(Scanout);
    case Request::kUpdate:
    case Request::kDmabufUpdate:
      return sizeof(Update);
    case Request::kDmabufScanout:
      return kDmabufScanoutSize;
    case Request::kGetEdid:
      return sizeof(EdidRequest);
    case Request::kDmabufScanout2:
      return kDmabufScanout2Size;
  }
  return 0;
}

uint32_t ReplyPayloadSize(Request request) {
  switch (request) {
    case Request::kGetProtocolFeatures:
      return sizeof(uint64_t);
    case Request::kGetDisplayInfo:
      return sizeof(RespDisplayInfo);
    case Request::kGetEdid:
      return sizeof(RespEdid);
    default:
      return 0;
  }
}

std::vector<uint8_t> EncodeMessage(Request request, absl::Span<const uint8_t> payload,
                                   uint32_t flags) {
  const Header header{static_cast<uint32_t>(request), flags, static_cast<uint32_t>(payload.size())};
  std::vector<uint8_t> bytes(sizeof(header) + payload.size());
  memcpy(bytes.data(), &header, sizeof(header));
  if (!payload.empty()) memcpy(bytes.data() + sizeof(header), payload.data(), payload.size());
  return bytes;
}

std::vector<uint8_t> EncodeGetProtocolFeatures() {
  return EncodeMessage(Request::kGetProtocolFeatures, {});
}

std::vector<uint8_t> EncodeSetProtocolFeatures(uint64_t features) {
  return EncodeStruct(Request::kSetProtocolFeatures, features);
}

std::vector<uint8_t> EncodeGetDisplayInfo() { return EncodeMessage(Request::kGetDisplayInfo, {}); }

std::vector<uint8_t> EncodeGetEdid(uint32_t scanout_id) {
  return EncodeStruct(Request::kGetEdid, EdidRequest{scanout_id});
}

std::vector<uint8_t> EncodeScanout(uint32_t scanout_id, uint32_t width, uint32_t height) {
  return EncodeStruct(Request::kScanout, Scanout{scanout_id, width, height});
}

std::vector<uint8_t> EncodeCursorPos(Request request, uint32_t scanout_id, uint32_t x, uint32_t y) {
  return EncodeStruct(request, CursorPos{scanout_id, x, y});
}

absl::StatusOr<std::vector<uint8_t>> EncodeCursorUpdate(uint32_t scanout_id, uint32_t x, uint32_t y,
                                                        uint32_t hot_x, uint32_t hot_y,
                                                        absl::Span<const uint32_t> argb) {
  CursorUpdate update;
  if (argb.size() != std::size(update.data)) {
    return absl::InvalidArgumentError(
        absl::StrCat("cursor image of ", argb.size(), " pixels, not ", std::size(update.data)));
  }
  update.pos = {scanout_id, x, y};
  update.hot_x = hot_x;
  update.hot_y = hot_y;
  memcpy(update.data, argb.data(), sizeof(update.data));
  return EncodeStruct(Request::kCursorUpdate, update);
}

absl::StatusOr<UpdatePrefix> EncodeUpdatePrefix(uint32_t scanout_id, const Rect& rect) {
  const uint64_t size = sizeof(Update) + uint64_t{rect.width} * rect.height * 4;
  if (size > UINT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("update of ", rect.width, "x", rect.height, " does not fit one message"));
  }
  const Header header{static_cast<uint32_t>(Request::kUpdate), 0, static_cast<uint32_t>(size)};
  const Update update{scanout_id, rect.x, rect.y, rect.width, rect.height};
  UpdatePrefix prefix;
  memcpy(prefix.data(), &header, sizeof(header));
  memcpy(prefix.data() + sizeof(header), &update, sizeof(update));
  return prefix;
}

std::vector<uint8_t> EncodeProtocolFeaturesReply(uint64_t features) {
  return EncodeStruct(Request::kGetProtocolFeatures, features, kFlagReply);
}

std::vector<uint8_t> EncodeDisplayInfoReply(absl::Span<const ScanoutInfo> displays) {
  RespDisplayInfo info{};
  info.hdr.type = kRespOkDisplayInfo;
  for (size_t i = 0; i < std::min<size_t>(displays.size(), kMaxScanouts); ++i) {
    info.pmodes[i].width = displays[i].width;
    info.pmodes[i].height = displays[i].height;
    info.pmodes[i].enabled = displays[i].enabled ? 1 : 0;
  }
  return EncodeStruct(Request::kGetDisplayInfo, info, kFlagReply);
}

std::vector<uint8_t> EncodeEdidReply(absl::Span<const uint8_t> edid) {
  RespEdid resp{};
  resp.hdr.type = kRespOkEdid;
  resp.size = static_cast<uint32_t>(std::min(edid.size(), kEdidBlobSize));
  if (resp.size > 0) memcpy(resp.edid, edid.data(), resp.size);
  return EncodeStruct(Request::kGetEdid, resp, kFlagReply);
}

absl::Status CheckReplyHeader(const Header& header, Request request) {
  const uint32_t want = static_cast<uint32_t>(request);
  if (header.request != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("display reply to request ", header.request, ", expected ", want));
  }
  if (!(header.flags & kFlagReply)) {
    return absl::InvalidArgumentError(
        absl::StrCat("display reply to request ", want, " without the reply flag"));
  }
  if (header.size != ReplyPayloadSize(request)) {
    return absl::InvalidArgumentError(absl::StrCat("display reply to request ", want, " of ",
                                                   header.size, " bytes, expected ",
                                                   ReplyPayloadSize(request)));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> DecodeProtocolFeatures(absl::Span<const uint8_t> payload) {
  return ReadExactly<uint64_t>(payload, "protocol features");
}

absl::StatusOr<std::vector<ScanoutInfo>> DecodeDisplayInfo(absl::Span<const uint8_t> payload) {
  absl::StatusOr<RespDisplayInfo> info = ReadExactly<RespDisplayInfo>(payload, "display info");
  if (!info.ok()) return info.status();
  if (info->hdr.type != kRespOkDisplayInfo) {
    return absl::InvalidArgumentError(
        absl::StrCat("display info reply of response type ", info->hdr.type));
  }
  std::vector<ScanoutInfo> displays(kMaxScanouts);
  for (uint32_t i = 0; i < kMaxScanouts; ++i) {
    const DisplayOne& mode = info->pmodes[i];
    if (!mode.enabled) continue;
    if (mode.width == 0 || mode.height == 0 || mode.width > kMaxScanoutSide ||
        mode.height > kMaxScanoutSide) {
      return absl::InvalidArgumentError(
          absl::StrCat("display info: scanout ", i, " enabled at ", mode.width, "x", mode.height));
    }
    displays[i] = {true, mode.width, mode.height};
  }
  return displays;
}

absl::StatusOr<std::vector<uint8_t>> DecodeEdid(absl::Span<const uint8_t> payload) {
  absl::StatusOr<RespEdid> resp = ReadExactly<RespEdid>(payload, "EDID");
  if (!resp.ok()) return resp.status();
  if (resp->hdr.type != kRespOkEdid) {
    return absl::InvalidArgumentError(absl::StrCat("EDID reply of response type ", resp->hdr.type));
  }
  if (resp->size == 0 || resp->size > kEdidBlobSize) {
    return absl::InvalidArgumentError(absl::StrCat("EDID reply of a ", resp->size, "-byte blob"));
  }
  return std::vector<uint8_t>(resp->edid, resp->edid + resp->size);
}

}  // namespace vhost::gpu::display
