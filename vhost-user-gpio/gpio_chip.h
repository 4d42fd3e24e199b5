// The host side of a virtio-gpio device: a chip with numbered lines. Implemented by a real
// /dev/gpiochipN (host_chip.h) and by a simulated chip (simulated_chip.h).
//
// Thread safety: the device calls a chip from its request and event queue threads at once, and
// a simulated chip is also driven from its control socket's thread; implementations lock.
#ifndef VHOST_USER_GPIO_GPIO_CHIP_H_
#define VHOST_USER_GPIO_GPIO_CHIP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vhost {

// Values as on the wire (VIRTIO_GPIO_DIRECTION_*).
enum class Direction : uint8_t { kNone = 0, kOut = 1, kIn = 2 };

// A line's input level changed (an edge). `level` is the level after it.
struct LineEvent {
  uint16_t line = 0;
  bool level = false;
};

class GpioChip {
 public:
  virtual ~GpioChip() = default;

  virtual uint16_t num_lines() const = 0;
  // The line's name; empty if it has none.
  virtual std::string line_name(uint16_t line) const = 0;

  // Line numbers are checked by the device before any call.
  virtual absl::StatusOr<Direction> GetDirection(uint16_t line) = 0;
  // `value` is the level an output starts at. PermissionDenied when the host forbids it.
  virtual absl::Status SetDirection(uint16_t line, Direction direction, bool value) = 0;
  virtual absl::StatusOr<bool> GetValue(uint16_t line) = 0;
  virtual absl::Status SetValue(uint16_t line, bool value) = 0;
  // Starts or stops reporting the line's edges as LineEvents (the device applies the guest's
  // trigger type and masking).
  virtual absl::Status WatchEdges(uint16_t line, bool watch) = 0;
  // Readable while events wait; TakeEvents consumes them (and the readiness).
  virtual int event_fd() const = 0;
  virtual std::vector<LineEvent> TakeEvents() = 0;
  // The guest is gone: release every line to its initial state.
  virtual void Reset() = 0;
};

}  // namespace vhost

#endif  // VHOST_USER_GPIO_GPIO_CHIP_H_
