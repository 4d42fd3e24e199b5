// A host GPIO chip through the Linux GPIO character device (/dev/gpiochipN), uAPI v2.
//
// The kernel uAPI is used directly rather than libgpiod: it is a handful of ioctls, stable
// since Linux 5.10; Debian has two incompatible libgpiod versions (1.6 in bookworm, 2.1 in
// backports), and the exact ioctl list is what the seccomp filter allows (host_chip_ioctls).
//
// A line is requested from the kernel (consumer "vhost-user-gpio") the first time the guest
// configures or reads it, and released when the guest sets its direction to NONE or goes away.
// Edges come from the kernel's line events (both edges while the guest has an interrupt
// enabled; the device applies the trigger type).
#ifndef VHOST_USER_GPIO_HOST_CHIP_H_
#define VHOST_USER_GPIO_HOST_CHIP_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/base/unique_fd.h"
#include "vhost-user-gpio/gpio_chip.h"

namespace vhost {

class HostChip : public GpioChip {
 public:
  static absl::StatusOr<std::unique_ptr<HostChip>> Open(const std::string& path);

  uint16_t num_lines() const override { return static_cast<uint16_t>(lines_.size()); }
  std::string line_name(uint16_t line) const override { return lines_[line].name; }
  absl::StatusOr<Direction> GetDirection(uint16_t line) override;
  absl::Status SetDirection(uint16_t line, Direction direction, bool value) override;
  absl::StatusOr<bool> GetValue(uint16_t line) override;
  absl::Status SetValue(uint16_t line, bool value) override;
  absl::Status WatchEdges(uint16_t line, bool watch) override;
  int event_fd() const override { return epoll_.get(); }
  std::vector<LineEvent> TakeEvents() override;
  void Reset() override;

  const std::string& label() const { return label_; }

 private:
  struct Line {
    std::string name;
    UniqueFd request;  // the kernel line request, while the guest uses the line
    Direction direction = Direction::kNone;
    bool watched = false;
  };
  HostChip(UniqueFd chip, std::string label) : chip_(std::move(chip)), label_(std::move(label)) {}
  absl::StatusOr<Direction> KernelDirection(uint16_t line);
  // Requests the line, or changes its configuration, to `direction` (and edges if watched).
  absl::Status Configure(uint16_t line, Direction direction, bool watched, bool value);

  std::mutex mu_;
  UniqueFd chip_;
  std::string label_;
  std::vector<Line> lines_;
  UniqueFd epoll_;
};

// The ioctl requests HostChip issues (for the seccomp filter).
std::vector<unsigned long> HostChipIoctls();

}  // namespace vhost

#endif  // VHOST_USER_GPIO_HOST_CHIP_H_
