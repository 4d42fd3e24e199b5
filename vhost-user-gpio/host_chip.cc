#include "vhost-user-gpio/host_chip.h"

#include <fcntl.h>
#include <linux/gpio.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace vhost {
namespace {
constexpr char kConsumer[] = "vhost-user-gpio";
}  // namespace

std::vector<unsigned long> HostChipIoctls() {
  return {GPIO_GET_CHIPINFO_IOCTL,       GPIO_V2_GET_LINEINFO_IOCTL,
          GPIO_V2_GET_LINE_IOCTL,        GPIO_V2_LINE_SET_CONFIG_IOCTL,
          GPIO_V2_LINE_GET_VALUES_IOCTL, GPIO_V2_LINE_SET_VALUES_IOCTL};
}

absl::StatusOr<std::unique_ptr<HostChip>> HostChip::Open(const std::string& path) {
  UniqueFd fd(open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  gpiochip_info info{};
  if (ioctl(fd.get(), GPIO_GET_CHIPINFO_IOCTL, &info) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat(path, " is not a GPIO chip"));
  }
  if (info.lines == 0 || info.lines > 0xffff) {
    return absl::FailedPreconditionError(absl::StrCat(path, " has ", info.lines, " lines"));
  }
  std::unique_ptr<HostChip> chip(new HostChip(std::move(fd), info.label));
  chip->epoll_ = UniqueFd(epoll_create1(EPOLL_CLOEXEC));
  if (!chip->epoll_) return absl::ErrnoToStatus(errno, "epoll_create1");
  chip->lines_.resize(info.lines);
  for (uint32_t i = 0; i < info.lines; ++i) {
    gpio_v2_line_info line{};
    line.offset = i;
    if (ioctl(chip->chip_.get(), GPIO_V2_GET_LINEINFO_IOCTL, &line) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat(path, ": line ", i));
    }
    chip->lines_[i].name = std::string(line.name, strnlen(line.name, sizeof(line.name)));
  }
  return chip;
}

absl::StatusOr<Direction> HostChip::KernelDirection(uint16_t line) {
  gpio_v2_line_info info{};
  info.offset = line;
  if (ioctl(chip_.get(), GPIO_V2_GET_LINEINFO_IOCTL, &info) != 0) {
    return absl::ErrnoToStatus(errno, "GPIO_V2_GET_LINEINFO_IOCTL");
  }
  return (info.flags & GPIO_V2_LINE_FLAG_OUTPUT) ? Direction::kOut : Direction::kIn;
}

absl::StatusOr<Direction> HostChip::GetDirection(uint16_t line) {
  std::lock_guard<std::mutex> lock(mu_);
  if (lines_[line].request) return lines_[line].direction;
  return KernelDirection(line);
}

absl::Status HostChip::Configure(uint16_t index, Direction direction, bool watched, bool value) {
  Line& line = lines_[index];
  gpio_v2_line_config config{};
  config.flags = direction == Direction::kOut ? GPIO_V2_LINE_FLAG_OUTPUT : GPIO_V2_LINE_FLAG_INPUT;
  if (watched) config.flags |= GPIO_V2_LINE_FLAG_EDGE_RISING | GPIO_V2_LINE_FLAG_EDGE_FALLING;
  if (direction == Direction::kOut) {
    config.num_attrs = 1;
    config.attrs[0].attr.id = GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES;
    config.attrs[0].attr.values = value ? 1 : 0;
    config.attrs[0].mask = 1;
  }
  if (line.request) {
    if (ioctl(line.request.get(), GPIO_V2_LINE_SET_CONFIG_IOCTL, &config) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("configuring line ", index));
    }
  } else {
    gpio_v2_line_request request{};
    request.offsets[0] = index;
    request.num_lines = 1;
    std::memcpy(request.consumer, kConsumer, sizeof(kConsumer));
    request.config = config;
    if (ioctl(chip_.get(), GPIO_V2_GET_LINE_IOCTL, &request) != 0) {
      // EBUSY: the host uses the line (another consumer): the host forbids it.
      return errno == EBUSY ? absl::PermissionDeniedError(
                                  absl::StrCat("line ", index, " is in use on the host"))
                            : absl::ErrnoToStatus(errno, absl::StrCat("requesting line ", index));
    }
    line.request = UniqueFd(request.fd);
    fcntl(line.request.get(), F_SETFL, O_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = index;
    epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, line.request.get(), &ev);
  }
  line.direction = direction;
  line.watched = watched;
  return absl::OkStatus();
}

absl::Status HostChip::SetDirection(uint16_t index, Direction direction, bool value) {
  std::lock_guard<std::mutex> lock(mu_);
  Line& line = lines_[index];
  if (direction == Direction::kNone) {
    line.request.Reset();  // closing the request releases the line (and leaves the epoll set)
    line.watched = false;
    line.direction = Direction::kNone;
    return absl::OkStatus();
  }
  return Configure(index, direction, line.watched && direction == Direction::kIn, value);
}

absl::StatusOr<bool> HostChip::GetValue(uint16_t index) {
  std::lock_guard<std::mutex> lock(mu_);
  Line& line = lines_[index];
  if (!line.request) {
    // Reading needs a request: take the line as it is (an input stays an input).
    absl::StatusOr<Direction> direction = KernelDirection(index);
    if (!direction.ok()) return direction.status();
    if (*direction == Direction::kOut) {
      return absl::FailedPreconditionError(
          absl::StrCat("line ", index, " is a host output the guest has not configured"));
    }
    if (absl::Status s = Configure(index, Direction::kIn, false, false); !s.ok()) return s;
  }
  gpio_v2_line_values values{};
  values.mask = 1;
  if (ioctl(line.request.get(), GPIO_V2_LINE_GET_VALUES_IOCTL, &values) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("reading line ", index));
  }
  return (values.bits & 1) != 0;
}

absl::Status HostChip::SetValue(uint16_t index, bool value) {
  std::lock_guard<std::mutex> lock(mu_);
  Line& line = lines_[index];
  if (!line.request || line.direction != Direction::kOut) {
    return absl::FailedPreconditionError(absl::StrCat("line ", index, " is not an output"));
  }
  gpio_v2_line_values values{};
  values.mask = 1;
  values.bits = value ? 1 : 0;
  if (ioctl(line.request.get(), GPIO_V2_LINE_SET_VALUES_IOCTL, &values) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("writing line ", index));
  }
  return absl::OkStatus();
}

absl::Status HostChip::WatchEdges(uint16_t index, bool watch) {
  std::lock_guard<std::mutex> lock(mu_);
  Line& line = lines_[index];
  if (!watch && !line.request) return absl::OkStatus();
  if (watch && line.request && line.direction != Direction::kIn) {
    return absl::FailedPreconditionError(absl::StrCat("line ", index, " is not an input"));
  }
  if (line.watched == watch && line.request) return absl::OkStatus();
  return Configure(index, Direction::kIn, watch, false);
}

std::vector<LineEvent> HostChip::TakeEvents() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<LineEvent> out;
  epoll_event ready[16];
  const int n = epoll_wait(epoll_.get(), ready, 16, 0);
  for (int i = 0; i < n; ++i) {
    const uint32_t index = ready[i].data.u32;
    if (index >= lines_.size() || !lines_[index].request) continue;
    gpio_v2_line_event events[16];
    const ssize_t got = read(lines_[index].request.get(), events, sizeof(events));
    for (ssize_t j = 0; got > 0 && j < got / static_cast<ssize_t>(sizeof(events[0])); ++j) {
      out.push_back({static_cast<uint16_t>(index), events[j].id == GPIO_V2_LINE_EVENT_RISING_EDGE});
    }
  }
  return out;
}

void HostChip::Reset() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Line& line : lines_) {
    line.request.Reset();
    line.direction = Direction::kNone;
    line.watched = false;
  }
}

}  // namespace vhost
