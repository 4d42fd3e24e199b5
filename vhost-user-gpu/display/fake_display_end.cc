#include "vhost-user-gpu/display/fake_display_end.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace vhost::gpu::display {

absl::StatusOr<std::unique_ptr<FakeDisplayEnd>> FakeDisplayEnd::Create(Options options) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return absl::InternalError(absl::StrCat("socketpair: ", strerror(errno)));
  }
  auto end = std::make_unique<FakeDisplayEnd>(UniqueFd(fds[0]), std::move(options));
  end->daemon_end_ = UniqueFd(fds[1]);
  return end;
}

FakeDisplayEnd::FakeDisplayEnd(UniqueFd socket, Options options)
    : socket_(std::move(socket)), options_(std::move(options)) {
  const int flags = fcntl(socket_.get(), F_GETFL);
  if (flags >= 0) fcntl(socket_.get(), F_SETFL, flags & ~O_NONBLOCK);
  reader_ = std::thread([this] { Run(); });
}

FakeDisplayEnd::~FakeDisplayEnd() {
  // Wakes the reader's blocked recv with EOF.
  shutdown(socket_.get(), SHUT_RDWR);
  reader_.join();
}

void FakeDisplayEnd::SetOptions(Options options) {
  std::lock_guard<std::mutex> lock(mu_);
  options_ = std::move(options);
}

FakeDisplayEnd::Stats FakeDisplayEnd::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::optional<FakeDisplayEnd::Framebuffer> FakeDisplayEnd::framebuffer(uint32_t scanout_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (scanout_id >= kMaxScanouts) return std::nullopt;
  return framebuffers_[scanout_id];
}

FakeDisplayEnd::Cursor FakeDisplayEnd::cursor() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cursor_;
}

bool FakeDisplayEnd::WaitFor(const std::function<bool(const Stats&)>& done,
                             absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return changed_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] { return done(stats_); });
}

bool FakeDisplayEnd::WaitForUpdates(uint64_t count, absl::Duration timeout) const {
  return WaitFor([count](const Stats& s) { return s.updates >= count; }, timeout);
}

bool FakeDisplayEnd::WaitForMessages(uint64_t count, absl::Duration timeout) const {
  return WaitFor([count](const Stats& s) { return s.messages >= count; }, timeout);
}

bool FakeDisplayEnd::WaitForClose(absl::Duration timeout) const {
  return WaitFor([](const Stats& s) { return s.closed; }, timeout);
}

absl::Status FakeDisplayEnd::WritePpm(uint32_t scanout_id, const std::string& path) const {
  std::optional<Framebuffer> fb = framebuffer(scanout_id);
  if (!fb) return absl::NotFoundError(absl::StrCat("scanout ", scanout_id, " is not shown"));
  std::vector<uint8_t> rgb;
  rgb.reserve(fb->pixels.size() * 3);
  for (uint32_t p : fb->pixels) {
    rgb.push_back(static_cast<uint8_t>(p >> 16));
    rgb.push_back(static_cast<uint8_t>(p >> 8));
    rgb.push_back(static_cast<uint8_t>(p));
  }
  FILE* file = fopen(path.c_str(), "wb");
  if (file == nullptr) return absl::InternalError(absl::StrCat(path, ": ", strerror(errno)));
  const std::string header = absl::StrCat("P6\n", fb->width, " ", fb->height, "\n255\n");
  const bool ok = fwrite(header.data(), 1, header.size(), file) == header.size() &&
                  fwrite(rgb.data(), 1, rgb.size(), file) == rgb.size();
  if (fclose(file) != 0 || !ok) {
    return absl::InternalError(absl::StrCat("writing ", path, " failed"));
  }
  return absl::OkStatus();
}

std::vector<uint8_t> FakeDisplayEnd::TestEdid() {
  std::vector<uint8_t> edid(128, 0);
  const uint8_t header[] = {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
  std::copy(std::begin(header), std::end(header), edid.begin());
  edid[8] = 0x04;  // manufacturer id (compressed ASCII), any value will do
  edid[9] = 0x21;
  edid[18] = 1;  // EDID 1.4
  edid[19] = 4;
  for (size_t i = 20; i < 127; ++i) edid[i] = static_cast<uint8_t>(i * 7);
  uint8_t sum = 0;
  for (size_t i = 0; i < 127; ++i) sum += edid[i];
  edid[127] = static_cast<uint8_t>(-sum);  // the block's bytes sum to 0 mod 256
  return edid;
}

bool FakeDisplayEnd::ReadAll(void* data, size_t size) {
  uint8_t* p = static_cast<uint8_t*>(data);
  while (size > 0) {
    const ssize_t n = recv(socket_.get(), p, size, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool FakeDisplayEnd::Discard(size_t size) {
  uint8_t chunk[64 * 1024];
  while (size > 0) {
    const size_t n = std::min(size, sizeof(chunk));
    if (!ReadAll(chunk, n)) return false;
    size -= n;
  }
  return true;
}

void FakeDisplayEnd::Send(const std::vector<uint8_t>& message) {
  size_t done = 0;
  while (done < message.size()) {
    const ssize_t n =
        send(socket_.get(), message.data() + done, message.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the daemon's end is gone: the reader sees it next
    done += static_cast<size_t>(n);
  }
}

void FakeDisplayEnd::Run() {
  while (true) {
    Header header;
    if (!ReadAll(&header, sizeof(header)) || !HandleMessage(header)) break;
    // Counted once handled, so a test waiting for N messages sees their effects. Every change
    // of stats_ is followed by this one, so waiters are woken here.
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.messages;
    }
    changed_.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.closed = true;
  }
  changed_.notify_all();
}

bool FakeDisplayEnd::HandleMessage(const Header& header) {
  const auto request = static_cast<Request>(header.request);
  const bool known = header.request >= static_cast<uint32_t>(Request::kGetProtocolFeatures) &&
                     header.request <= static_cast<uint32_t>(Request::kDmabufScanout2);
  const bool dmabuf = request == Request::kDmabufScanout || request == Request::kDmabufUpdate ||
                      request == Request::kDmabufScanout2;
  if (known && !dmabuf && header.flags == 0 && request == Request::kUpdate) {
    return HandleUpdate(header);
  }
  if (!known || dmabuf || header.flags != 0 || header.size != RequestPayloadSize(request)) {
    LOG(WARNING) << "fake display end: bad message " << header.request << " flags " << header.flags
                 << " size " << header.size;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++stats_.bad_messages;
    }
    return Discard(header.size);
  }
  std::vector<uint8_t> payload(header.size);  // a fixed size, at most sizeof(CursorUpdate)
  if (!ReadAll(payload.data(), payload.size())) return false;
  auto read = [&payload](auto& value) { memcpy(&value, payload.data(), sizeof(value)); };

  std::vector<uint8_t> reply;
  {
    std::lock_guard<std::mutex> lock(mu_);
    switch (request) {
      case Request::kGetProtocolFeatures:
        ++stats_.get_features;
        if (options_.answer) reply = EncodeProtocolFeaturesReply(options_.protocol_features);
        break;
      case Request::kSetProtocolFeatures: {
        uint64_t features;
        read(features);
        ++stats_.set_features;
        stats_.features_set = features;
        break;
      }
      case Request::kGetDisplayInfo: {
        ++stats_.display_info;
        std::vector<ScanoutInfo> displays = options_.displays;
        if (displays.size() > options_.max_outputs) displays.resize(options_.max_outputs);
        if (options_.answer) reply = EncodeDisplayInfoReply(displays);
        break;
      }
      case Request::kGetEdid: {
        EdidRequest edid;
        read(edid);
        ++stats_.edid;
        if (edid.scanout_id >= options_.max_outputs) {
          ++stats_.ignored;  // QEMU logs an error and sends nothing
        } else if (options_.answer) {
          reply = EncodeEdidReply(options_.edid);
        }
        break;
      }
      case Request::kScanout: {
        Scanout scanout;
        read(scanout);
        ++stats_.scanouts;
        if (scanout.scanout_id >= options_.max_outputs) {
          ++stats_.ignored;
        } else if (scanout.width == 0) {  // what QEMU looks at
          framebuffers_[scanout.scanout_id].reset();
        } else if (uint64_t{scanout.width} * scanout.height * 4 > options_.max_message) {
          ++stats_.bad_messages;
        } else {
          Framebuffer& fb = framebuffers_[scanout.scanout_id].emplace();
          fb.width = scanout.width;
          fb.height = scanout.height;
          fb.pixels.assign(size_t{scanout.width} * scanout.height, 0);
        }
        break;
      }
      case Request::kCursorPos:
      case Request::kCursorPosHide:
      case Request::kCursorUpdate: {
        CursorPos pos;
        memcpy(&pos, payload.data(), sizeof(pos));  // the first field of all three
        if (pos.scanout_id >= options_.max_outputs) {
          ++stats_.ignored;
          break;
        }
        if (request == Request::kCursorUpdate) {
          display::CursorUpdate update;
          read(update);
          ++stats_.cursor_updates;
          cursor_.hot_x = update.hot_x;
          cursor_.hot_y = update.hot_y;
          cursor_.image.assign(std::begin(update.data), std::end(update.data));
        } else if (request == Request::kCursorPos) {
          ++stats_.cursor_moves;
        } else {
          ++stats_.cursor_hides;
        }
        cursor_.scanout_id = pos.scanout_id;
        cursor_.x = pos.x;
        cursor_.y = pos.y;
        cursor_.visible = request != Request::kCursorPosHide;
        break;
      }
      default:
        break;  // UPDATE and dmabuf requests are handled above
    }
  }
  if (!reply.empty()) Send(reply);
  return true;
}

bool FakeDisplayEnd::HandleUpdate(const Header& header) {
  auto bad = [this](const char* why) {
    LOG(WARNING) << "fake display end: bad update: " << why;
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.bad_messages;
  };
  if (header.size < sizeof(display::Update)) {
    bad("shorter than its fixed part");
    return Discard(header.size);
  }
  display::Update update;
  if (!ReadAll(&update, sizeof(update))) return false;
  const size_t pixel_bytes = header.size - sizeof(update);
  size_t max_message;
  {
    std::lock_guard<std::mutex> lock(mu_);
    max_message = options_.max_message;
  }
  if (pixel_bytes != uint64_t{update.width} * update.height * 4) {
    bad("its size is not its rect's");
    return Discard(pixel_bytes);
  }
  if (pixel_bytes > max_message) {
    bad("larger than max_message");
    return Discard(pixel_bytes);
  }
  std::vector<uint32_t> pixels(pixel_bytes / 4);
  if (!ReadAll(pixels.data(), pixel_bytes)) return false;

  std::lock_guard<std::mutex> lock(mu_);
  if (update.scanout_id >= options_.max_outputs) {
    ++stats_.ignored;
    return true;
  }
  std::optional<Framebuffer>& fb = framebuffers_[update.scanout_id];
  if (!fb) {
    ++stats_.bad_messages;  // QEMU would composite into a surface it does not have
    return true;
  }
  if (uint64_t{update.x} + update.width > fb->width ||
      uint64_t{update.y} + update.height > fb->height) {
    ++stats_.bad_messages;
    return true;
  }
  for (uint32_t row = 0; row < update.height; ++row) {
    std::copy_n(pixels.begin() + size_t{row} * update.width, update.width,
                fb->pixels.begin() + (size_t{update.y} + row) * fb->width + update.x);
  }
  ++stats_.updates;
  stats_.update_bytes += pixel_bytes;
  return true;
}

}  // namespace vhost::gpu::display
