// A GPIO chip that exists only in the daemon, for tests and for users without hardware. Each
// line has a name, an optional host-imposed direction, an output value the guest sets, and an
// input level driven from outside (Drive, or the control socket commands in README.md).
#ifndef VHOST_USER_GPIO_SIMULATED_CHIP_H_
#define VHOST_USER_GPIO_SIMULATED_CHIP_H_

#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/base/unique_fd.h"
#include "common/runtime/control_socket.h"
#include "vhost-user-gpio/gpio_chip.h"

namespace vhost {

struct SimulatedLine {
  std::string name;
  // kNone: the guest may use the line either way; kIn / kOut: the host fixes the direction.
  Direction fixed = Direction::kNone;
};

// Parses "--sim-lines" style specs: NAME[@in|@out] separated by commas.
absl::StatusOr<std::vector<SimulatedLine>> ParseSimulatedLines(absl::string_view spec);

class SimulatedChip : public GpioChip {
 public:
  // `lines` beyond the named ones are called "line<N>".
  SimulatedChip(uint16_t num_lines, std::vector<SimulatedLine> named);

  uint16_t num_lines() const override { return static_cast<uint16_t>(lines_.size()); }
  std::string line_name(uint16_t line) const override { return lines_[line].spec.name; }
  absl::StatusOr<Direction> GetDirection(uint16_t line) override;
  absl::Status SetDirection(uint16_t line, Direction direction, bool value) override;
  absl::StatusOr<bool> GetValue(uint16_t line) override;
  absl::Status SetValue(uint16_t line, bool value) override;
  absl::Status WatchEdges(uint16_t line, bool watch) override;
  int event_fd() const override { return event_fd_.get(); }
  std::vector<LineEvent> TakeEvents() override;
  void Reset() override;

  // The outside world sets an input level (an edge if it changed).
  void Drive(uint16_t line, bool level);
  // "in 1", "out 0", "none -": the direction and what the line carries.
  std::string Describe(uint16_t line);
  // A control socket command (see README.md); returns the text after "ok".
  absl::StatusOr<std::string> Execute(absl::string_view command);
  // A line number or name.
  absl::StatusOr<uint16_t> FindLine(absl::string_view token) const;
  // Serves Execute on a control socket at `path` until the chip is destroyed.
  absl::Status ServeControlSocket(const std::string& path, const std::string& flag);

 private:
  struct Line {
    SimulatedLine spec;
    Direction direction = Direction::kIn;
    bool output = false;
    bool input = false;
    bool watched = false;
  };
  Direction InitialDirection(const Line& line) const;

  std::mutex mu_;
  std::vector<Line> lines_;
  std::deque<LineEvent> events_;
  UniqueFd event_fd_;
  std::unique_ptr<ControlSocket> control_;  // last: stops before the rest goes away
};

}  // namespace vhost

#endif  // VHOST_USER_GPIO_SIMULATED_CHIP_H_
