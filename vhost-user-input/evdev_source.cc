// The host side on a real evdev device.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/base/unique_fd.h"
#include "glog/logging.h"
#include "vhost-user-input/event_source.h"

namespace vhost {
namespace {

std::vector<uint8_t> Bits(int fd, unsigned long request, size_t bytes) {
  std::vector<uint8_t> bits(bytes);
  const int n = ioctl(fd, request, bits.data());
  bits.resize(n > 0 ? n : 0);
  return bits;
}

bool TestBit(const std::vector<uint8_t>& bits, unsigned bit) {
  return bit / 8 < bits.size() && (bits[bit / 8] & (1u << (bit % 8)));
}

class EvdevSource : public EventSource {
 public:
  EvdevSource(UniqueFd fd, InputDescription description, std::string path)
      : fd_(std::move(fd)),
        description_(std::move(description)),
        path_(std::move(path)),
        stop_(eventfd(0, EFD_CLOEXEC)) {
    reader_ = std::thread([this] { Read(); });
  }
  ~EvdevSource() override {
    eventfd_write(stop_.get(), 1);
    reader_.join();
  }

  const InputDescription& description() const override { return description_; }

  void WriteStatus(const virtio_input_event& event) override {
    input_event e{};
    e.type = event.type;
    e.code = event.code;
    e.value = static_cast<int32_t>(event.value);
    if (write(fd_.get(), &e, sizeof(e)) != sizeof(e)) {
      LOG_EVERY_N(WARNING, 100) << path_ << ": cannot pass a status event to the device: "
                                << strerror(errno);
    }
  }

 private:
  void Read() {
    input_event events[64];
    for (;;) {
      pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[1].revents) return;
      const ssize_t n = read(fd_.get(), events, sizeof(events));
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        // Unplugged (ENODEV) or otherwise gone: the guest keeps a device that stays silent.
        LOG(ERROR) << path_ << " went away (" << (n < 0 ? strerror(errno) : "end of file")
                   << "); the guest's device stays, without events";
        return;
      }
      for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(input_event)); ++i) {
        buffer_.Add(events[i].type, events[i].code, events[i].value);
      }
    }
  }

  UniqueFd fd_;
  const InputDescription description_;
  const std::string path_;
  UniqueFd stop_;
  std::thread reader_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EventSource>> OpenEvdevSource(const std::string& path, bool grab) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK));
  if (!fd) fd.Reset(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd) {
    return absl::InvalidArgumentError(
        absl::StrCat("--evdev-path: cannot open ", path, ": ", strerror(errno)));
  }
  InputDescription d;
  char text[256] = {};
  if (ioctl(fd.get(), EVIOCGNAME(sizeof(text) - 1), text) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--evdev-path: ", path, " is not an evdev device: ", strerror(errno)));
  }
  d.name = text;
  std::memset(text, 0, sizeof(text));
  if (ioctl(fd.get(), EVIOCGUNIQ(sizeof(text) - 1), text) >= 0) d.serial = text;
  input_id id{};
  if (ioctl(fd.get(), EVIOCGID, &id) == 0) {
    d.ids = {id.bustype, id.vendor, id.product, id.version};
  }
  d.properties = Bits(fd.get(), EVIOCGPROP(128), 128);
  const std::vector<uint8_t> types = Bits(fd.get(), EVIOCGBIT(0, 4), 4);
  for (unsigned type = 1; type < EV_CNT; ++type) {
    if (!TestBit(types, type)) continue;
    d.events[type] = Bits(fd.get(), EVIOCGBIT(type, 128), 128);
  }
  for (unsigned axis = 0; axis < ABS_CNT; ++axis) {
    if (!d.HasCode(EV_ABS, axis)) continue;
    input_absinfo abs{};
    if (ioctl(fd.get(), EVIOCGABS(axis), &abs) == 0) {
      d.axes[axis] = {static_cast<uint32_t>(abs.minimum), static_cast<uint32_t>(abs.maximum),
                      static_cast<uint32_t>(abs.fuzz), static_cast<uint32_t>(abs.flat),
                      static_cast<uint32_t>(abs.resolution)};
    }
  }
  if (grab && ioctl(fd.get(), EVIOCGRAB, 1) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--evdev-path: cannot grab ", path, ": ",
                                                   strerror(errno), " (--no-grab to share it)"));
  }
  return std::unique_ptr<EventSource>(new EvdevSource(std::move(fd), std::move(d), path));
}

}  // namespace vhost
