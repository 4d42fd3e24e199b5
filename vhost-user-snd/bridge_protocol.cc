#include "vhost-user-snd/bridge_protocol.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vhost::snd {
namespace {

std::vector<uint8_t> Encode(const BridgeHeader& header, absl::string_view payload = {}) {
  std::vector<uint8_t> bytes(sizeof(header) + payload.size());
  memcpy(bytes.data(), &header, sizeof(header));
  if (!payload.empty()) memcpy(bytes.data() + sizeof(header), payload.data(), payload.size());
  return bytes;
}

bool KnownFormat(uint32_t format) { return format <= static_cast<uint32_t>(AudioFormat::kFloat); }

bool VirtioRate(uint32_t rate) {
  for (uint32_t r : kVirtioRates) {
    if (r == rate) return true;
  }
  return false;
}

}  // namespace

std::vector<uint8_t> EncodeBridgeCommand(BridgeOp op) {
  BridgeHeader header{};
  header.op = static_cast<uint32_t>(op);
  return Encode(header);
}

std::vector<uint8_t> EncodeBridgeOpen(BridgeDirection direction, const StreamParams& params) {
  BridgeHeader header{};
  header.op = static_cast<uint32_t>(BridgeOp::kOpen);
  header.direction = static_cast<uint32_t>(direction);
  header.format = static_cast<uint32_t>(params.format);
  header.rate = params.rate;
  header.channels = params.channels;
  header.period_frames = params.period_frames;
  return Encode(header);
}

std::vector<uint8_t> EncodeBridgeCaps(const Capabilities& caps) {
  BridgeHeader header{};
  header.op = static_cast<uint32_t>(BridgeOp::kCaps);
  header.channels = caps.channels_max;
  header.period_frames = caps.channels_min;
  for (AudioFormat f : caps.formats) header.formats |= uint64_t{1} << static_cast<uint32_t>(f);
  for (size_t i = 0; i < std::size(kVirtioRates); ++i) {
    for (uint32_t r : caps.rates) {
      if (r == kVirtioRates[i]) header.rates |= uint64_t{1} << i;
    }
  }
  return Encode(header);
}

std::vector<uint8_t> EncodeBridgeError(absl::string_view text) {
  BridgeHeader header{};
  header.op = static_cast<uint32_t>(BridgeOp::kError);
  return Encode(header, text.substr(0, kMaxBridgeChunk));
}

BridgeHeader BridgeDataHeader() {
  BridgeHeader header{};
  header.op = static_cast<uint32_t>(BridgeOp::kData);
  return header;
}

size_t BridgeChunkBytes(size_t frame_bytes) {
  return frame_bytes == 0 ? 0 : kMaxBridgeChunk / frame_bytes * frame_bytes;
}

absl::StatusOr<size_t> SendBridgeFrames(int socket, absl::Span<const uint8_t> frames,
                                        size_t frame_bytes) {
  BridgeHeader header = BridgeDataHeader();
  const size_t chunk = BridgeChunkBytes(frame_bytes);
  size_t done = 0;
  while (done < frames.size()) {
    const size_t n = std::min(chunk, frames.size() - done);
    iovec iov[2] = {{&header, sizeof(header)}, {const_cast<uint8_t*>(frames.data() + done), n}};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    if (sendmsg(socket, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
      if (errno == EAGAIN) break;
      return absl::UnavailableError(strerror(errno));
    }
    done += n;
  }
  return done;
}

absl::StatusOr<BridgeMessage> DecodeBridgeMessage(absl::Span<const uint8_t> bytes) {
  BridgeHeader header;
  if (bytes.size() < sizeof(header)) {
    return absl::InvalidArgumentError(absl::StrCat("bridge message of ", bytes.size(), " bytes"));
  }
  memcpy(&header, bytes.data(), sizeof(header));
  BridgeMessage message;
  message.payload = bytes.subspan(sizeof(header));
  if (message.payload.size() > kMaxBridgeChunk) {
    return absl::InvalidArgumentError("bridge message payload too large");
  }
  const auto op = static_cast<BridgeOp>(header.op);
  switch (op) {
    case BridgeOp::kData:
    case BridgeOp::kError:
      break;
    case BridgeOp::kCaps: {
      for (uint32_t f = 0; f < 64; ++f) {
        if (header.formats & (uint64_t{1} << f)) {
          if (!KnownFormat(f)) return absl::InvalidArgumentError("bridge caps: unknown format");
          message.caps.formats.push_back(static_cast<AudioFormat>(f));
        }
      }
      for (size_t i = 0; i < std::size(kVirtioRates); ++i) {
        if (header.rates & (uint64_t{1} << i)) message.caps.rates.push_back(kVirtioRates[i]);
      }
      message.caps.channels_min = header.period_frames;
      message.caps.channels_max = header.channels;
      if (message.caps.channels_min < 1 || message.caps.channels_min > message.caps.channels_max ||
          message.caps.channels_max > kMaxChannels) {
        return absl::InvalidArgumentError("bridge caps: bad channel range");
      }
      break;
    }
    case BridgeOp::kOpen: {
      if (header.direction > static_cast<uint32_t>(BridgeDirection::kCapture)) {
        return absl::InvalidArgumentError("bridge open: unknown direction");
      }
      message.direction = static_cast<BridgeDirection>(header.direction);
      if (!KnownFormat(header.format) || !VirtioRate(header.rate) || header.channels < 1 ||
          header.channels > kMaxChannels || header.period_frames == 0) {
        return absl::InvalidArgumentError("bridge open: bad stream parameters");
      }
      message.params.format = static_cast<AudioFormat>(header.format);
      message.params.rate = header.rate;
      message.params.channels = header.channels;
      message.params.period_frames = header.period_frames;
      if (message.params.period_bytes() > kMaxBridgePeriodBytes) {
        return absl::InvalidArgumentError("bridge open: period too large");
      }
      break;
    }
    case BridgeOp::kStart:
    case BridgeOp::kStop:
    case BridgeOp::kClose:
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("bridge message op ", header.op));
  }
  const bool has_payload = op == BridgeOp::kData || op == BridgeOp::kError;
  if (!has_payload && !message.payload.empty()) {
    return absl::InvalidArgumentError("bridge message with an unexpected payload");
  }
  message.op = op;
  return message;
}

}  // namespace vhost::snd
