#include "vhost-user-gpu/display/display_channel.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "glog/logging.h"

namespace vhost::gpu::display {
namespace {

// Why a channel ends when the front end closed its socket (EOF, EPIPE): logged as news.
constexpr char kClosedByPeer[] = "the display end closed its socket";

constexpr uint64_t kBytesPerPixel = 4;

iovec Iov(const void* data, size_t size) { return {const_cast<void*>(data), size}; }

}  // namespace

DisplayChannel::DisplayChannel(UniqueFd socket, Options options)
    : socket_(std::move(socket)),
      timeout_(std::chrono::duration_cast<Clock::duration>(
          absl::ToChronoNanoseconds(std::max(options.timeout, absl::ZeroDuration())))) {}

absl::Status DisplayChannel::Handshake() {
  std::lock_guard<std::mutex> lock(mu_);
  return ReadyLocked();
}

uint64_t DisplayChannel::features() const {
  std::lock_guard<std::mutex> lock(mu_);
  return features_;
}

absl::Status DisplayChannel::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  return broken_;
}

absl::Status DisplayChannel::CheckScanoutId(uint32_t scanout_id) const {
  if (scanout_id >= kMaxScanouts) {
    return absl::InvalidArgumentError(absl::StrCat("scanout ", scanout_id, " out of range"));
  }
  return absl::OkStatus();
}

absl::Status DisplayChannel::Scanout(uint32_t scanout_id, uint32_t width, uint32_t height) {
  RETURN_IF_ERROR(CheckScanoutId(scanout_id));
  // QEMU only looks at the width to disable a scanout; 0 x 0 says it either way.
  if (width == 0 || height == 0) width = height = 0;
  if (width > kMaxScanoutSide || height > kMaxScanoutSide) {
    return absl::InvalidArgumentError(
        absl::StrCat("scanout of ", width, "x", height, " over ", kMaxScanoutSide));
  }
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(ReadyLocked());
  ScanoutState& state = scanouts_[scanout_id];
  // Recorded before the send: if it fails the channel is broken and nothing else is sent.
  state.width = width;
  state.height = height;
  return SendLocked(EncodeScanout(scanout_id, width, height));
}

absl::Status DisplayChannel::Update(uint32_t scanout_id, const Rect& rect,
                                    absl::Span<const uint8_t> pixels, uint32_t stride) {
  RETURN_IF_ERROR(CheckScanoutId(scanout_id));
  const uint64_t row_bytes = rect.width * kBytesPerPixel;
  if (rect.width == 0 || rect.height == 0) return absl::OkStatus();
  if (stride < row_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("update stride ", stride, " under its ", row_bytes, "-byte rows"));
  }
  const uint64_t needed = uint64_t{stride} * (rect.height - 1) + row_bytes;
  if (pixels.size() < needed) {
    return absl::InvalidArgumentError(
        absl::StrCat("update of ", pixels.size(), " bytes, its rect needs ", needed));
  }
  std::lock_guard<std::mutex> lock(mu_);
  const ScanoutState& state = scanouts_[scanout_id];
  if (state.width == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("update of scanout ", scanout_id, " which is not shown"));
  }
  if (uint64_t{rect.x} + rect.width > state.width ||
      uint64_t{rect.y} + rect.height > state.height) {
    return absl::InvalidArgumentError(
        absl::StrCat("update rect ", rect.width, "x", rect.height, "+", rect.x, "+", rect.y,
                     " outside scanout ", scanout_id, " of ", state.width, "x", state.height));
  }
  ASSIGN_OR_RETURN(const UpdatePrefix prefix, EncodeUpdatePrefix(scanout_id, rect));
  RETURN_IF_ERROR(ReadyLocked());
  // The message's pixel rows are packed; the caller's are `stride` apart. One send of an iovec
  // per row (or one for all when they are packed already) spares a copy of the frame.
  std::vector<iovec> iov;
  iov.push_back(Iov(prefix.data(), prefix.size()));
  if (stride == row_bytes) {
    iov.push_back(Iov(pixels.data(), row_bytes * rect.height));
  } else {
    iov.reserve(1 + rect.height);
    for (uint32_t row = 0; row < rect.height; ++row) {
      iov.push_back(Iov(pixels.data() + uint64_t{stride} * row, row_bytes));
    }
  }
  return SendLocked(iov);
}

absl::Status DisplayChannel::CursorUpdate(uint32_t scanout_id, uint32_t x, uint32_t y,
                                          uint32_t hot_x, uint32_t hot_y,
                                          absl::Span<const uint32_t> argb) {
  RETURN_IF_ERROR(CheckScanoutId(scanout_id));
  ASSIGN_OR_RETURN(const std::vector<uint8_t> message,
                   EncodeCursorUpdate(scanout_id, x, y, hot_x, hot_y, argb));
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(ReadyLocked());
  scanouts_[scanout_id].cursor_x = x;
  scanouts_[scanout_id].cursor_y = y;
  return SendLocked(message);
}

absl::Status DisplayChannel::CursorMove(uint32_t scanout_id, uint32_t x, uint32_t y) {
  RETURN_IF_ERROR(CheckScanoutId(scanout_id));
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(ReadyLocked());
  scanouts_[scanout_id].cursor_x = x;
  scanouts_[scanout_id].cursor_y = y;
  return SendLocked(EncodeCursorPos(Request::kCursorPos, scanout_id, x, y));
}

absl::Status DisplayChannel::CursorHide(uint32_t scanout_id) {
  RETURN_IF_ERROR(CheckScanoutId(scanout_id));
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(ReadyLocked());
  // QEMU also moves the (hidden) cursor to the position in the message: keep it where it was.
  const ScanoutState& state = scanouts_[scanout_id];
  return SendLocked(
      EncodeCursorPos(Request::kCursorPosHide, scanout_id, state.cursor_x, state.cursor_y));
}

absl::StatusOr<std::vector<ScanoutInfo>> DisplayChannel::DisplayInfo() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(ReadyLocked());
  RETURN_IF_ERROR(SendLocked(EncodeGetDisplayInfo()));
  ASSIGN_OR_RETURN(const std::vector<uint8_t> payload,
                   ReceiveReplyLocked(Request::kGetDisplayInfo));
  return DecodeDisplayInfo(payload);
}

absl::StatusOr<std::vector<uint8_t>> DisplayChannel::Edid(uint32_t scanout_id) {
  // QEMU does not answer a GET_EDID for a scanout it does not have; past kMaxScanouts there is
  // certainly none.
  RETURN_IF_ERROR(CheckScanoutId(scanout_id));
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(ReadyLocked());
  if (!(features_ & kFeatureEdid)) {
    return absl::UnimplementedError("the display end has no EDID (protocol feature not offered)");
  }
  RETURN_IF_ERROR(SendLocked(EncodeGetEdid(scanout_id)));
  ASSIGN_OR_RETURN(const std::vector<uint8_t> payload, ReceiveReplyLocked(Request::kGetEdid));
  return DecodeEdid(payload);
}

absl::Status DisplayChannel::ReadyLocked() {
  if (!broken_.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("display channel unusable: ", broken_.ToString()));
  }
  if (handshake_done_) return absl::OkStatus();
  RETURN_IF_ERROR(SendLocked(EncodeGetProtocolFeatures()));
  ASSIGN_OR_RETURN(const std::vector<uint8_t> payload,
                   ReceiveReplyLocked(Request::kGetProtocolFeatures));
  // The reply's size was checked, so this cannot fail.
  ASSIGN_OR_RETURN(const uint64_t offered, DecodeProtocolFeatures(payload));
  const uint64_t features = offered & kSupportedFeatures;
  RETURN_IF_ERROR(SendLocked(EncodeSetProtocolFeatures(features)));
  features_ = features;
  handshake_done_ = true;
  VLOG(1) << "display end offers protocol features 0x" << std::hex << offered << ", using 0x"
          << features;
  return absl::OkStatus();
}

absl::Status DisplayChannel::SendLocked(const std::vector<uint8_t>& message) {
  std::vector<iovec> iov = {Iov(message.data(), message.size())};
  return SendLocked(iov);
}

absl::Status DisplayChannel::SendLocked(std::vector<iovec>& iov) {
  size_t first = 0;  // the first iovec with bytes left
  while (true) {
    while (first < iov.size() && iov[first].iov_len == 0) ++first;
    if (first == iov.size()) return absl::OkStatus();
    msghdr msg{};
    msg.msg_iov = &iov[first];
    msg.msg_iovlen = std::min<size_t>(iov.size() - first, IOV_MAX);
    // Never blocks (the front end may stop reading) and never raises SIGPIPE (it may go away).
    const ssize_t sent = sendmsg(socket_.get(), &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // The timeout runs from the last progress: a large frame may take several waits.
        absl::Status ready = WaitLocked(POLLOUT, Clock::now() + timeout_);
        if (absl::IsDeadlineExceeded(ready)) {
          ready = absl::DeadlineExceededError(
              absl::StrCat("the display end stopped reading: ", ready.message()));
        }
        if (!ready.ok()) return BreakLocked(ready);
        continue;
      }
      if (errno == EPIPE || errno == ECONNRESET) {
        // The front end went away (QEMU quitting): the end of its display, not a fault.
        return BreakLocked(absl::UnavailableError(kClosedByPeer));
      }
      return BreakLocked(
          absl::UnavailableError(absl::StrCat("display socket send: ", strerror(errno))));
    }
    size_t left = static_cast<size_t>(sent);
    while (left > 0) {
      iovec& v = iov[first];
      const size_t n = std::min(left, v.iov_len);
      v.iov_base = static_cast<uint8_t*>(v.iov_base) + n;
      v.iov_len -= n;
      left -= n;
      if (v.iov_len == 0) ++first;
    }
  }
}

absl::StatusOr<std::vector<uint8_t>> DisplayChannel::ReceiveReplyLocked(Request request) {
  const Clock::time_point deadline = Clock::now() + timeout_;
  Header header;
  absl::Status status =
      ReceiveLocked(reinterpret_cast<uint8_t*>(&header), sizeof(header), deadline);
  if (status.ok()) status = CheckReplyHeader(header, request);
  // Without the right header, the bytes that follow cannot be framed any more.
  if (!status.ok()) return BreakLocked(status);
  std::vector<uint8_t> payload(header.size);  // checked: at most sizeof(RespEdid)
  status = ReceiveLocked(payload.data(), payload.size(), deadline);
  if (!status.ok()) return BreakLocked(status);
  return payload;
}

absl::Status DisplayChannel::ReceiveLocked(uint8_t* data, size_t size, Clock::time_point deadline) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = recv(socket_.get(), data + done, size - done, MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n == 0) return absl::UnavailableError(kClosedByPeer);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      return absl::UnavailableError(absl::StrCat("display socket receive: ", strerror(errno)));
    }
    absl::Status ready = WaitLocked(POLLIN, deadline);
    if (absl::IsDeadlineExceeded(ready)) {
      return absl::DeadlineExceededError(
          absl::StrCat("no reply from the display end: ", ready.message()));
    }
    RETURN_IF_ERROR(ready);
  }
  return absl::OkStatus();
}

absl::Status DisplayChannel::WaitLocked(short events, Clock::time_point deadline) {
  while (true) {
    const Clock::duration left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      return absl::DeadlineExceededError(
          absl::StrCat("nothing within ", absl::FormatDuration(absl::FromChrono(timeout_))));
    }
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
    pollfd pfd{socket_.get(), events, 0};
    const int ready = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(ms, INT_MAX)));
    if (ready > 0) return absl::OkStatus();  // readiness, or an error the next call reports
    if (ready < 0 && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("display socket poll: ", strerror(errno)));
    }
  }
}

absl::Status DisplayChannel::BreakLocked(absl::Status status) {
  if (broken_.ok()) {
    broken_ = status;
    if (status.message() == kClosedByPeer) {
      LOG(INFO) << "display channel: " << status.message();
    } else {
      LOG(WARNING) << "display channel to the front end broken: " << status;
    }
    // A front end reading the rest of a message we stopped sending would wait forever; EOF
    // tells it this end is done.
    shutdown(socket_.get(), SHUT_RDWR);
  }
  return status;
}

}  // namespace vhost::gpu::display
