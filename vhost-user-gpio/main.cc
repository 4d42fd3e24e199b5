// vhost-user-gpio: host GPIO chips, or simulated ones, for guests.
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-gpio/gpio_device.h"
#include "vhost-user-gpio/gpio_sandbox.h"
#include "vhost-user-gpio/host_chip.h"
#include "vhost-user-gpio/simulated_chip.h"

DEFINE_string(device_list, "",
              "One chip per socket, separated by ':': N for /dev/gpiochipN, sN for a simulated "
              "chip with N lines (e.g. \"0:s8\" with --socket-count=2)");
DEFINE_string(sim_lines, "",
              "Simulated chips: names of their first lines, comma-separated, each optionally "
              "fixed as an input or output by the host: \"button@in,led@out,spare\"; with "
              "--socket-count, one such group per socket, separated by ':'");
DEFINE_string(control_socket, "",
              "Simulated chips: a Unix socket taking commands that drive the lines (see "
              "README.md); gets the socket's number appended with --socket-count > 1");

namespace {

using absl::InvalidArgumentError;

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateInstance(int index, int count) {
  const std::vector<std::string> entries = absl::StrSplit(FLAGS_device_list, ':');
  if (FLAGS_device_list.empty()) {
    return InvalidArgumentError(
        "--device-list is required: N for /dev/gpiochipN, sN for a simulated chip of N lines");
  }
  if (static_cast<int>(entries.size()) != count) {
    return InvalidArgumentError(
        absl::StrCat("--device-list has ", entries.size(), " chips for --socket-count=", count));
  }
  const std::string& entry = entries[index];
  uint32_t number;
  if (!entry.empty() && entry[0] == 's') {
    if (!absl::SimpleAtoi(entry.substr(1), &number) || number < 1 || number > 256) {
      return InvalidArgumentError(
          absl::StrCat("--device-list: '", entry, "': a simulated chip has 1 to 256 lines"));
    }
    // One group of names per socket, or one group for every simulated chip.
    const std::vector<std::string> groups = absl::StrSplit(FLAGS_sim_lines, ':');
    if (groups.size() != 1 && static_cast<int>(groups.size()) != count) {
      return InvalidArgumentError(
          absl::StrCat("--sim-lines has ", groups.size(), " groups for --socket-count=", count));
    }
    absl::StatusOr<std::vector<vhost::SimulatedLine>> named =
        vhost::ParseSimulatedLines(groups.size() == 1 ? groups[0] : groups[index]);
    if (!named.ok()) return named.status();
    if (named->size() > number) {
      return InvalidArgumentError(
          absl::StrCat("--sim-lines names ", named->size(), " lines of a chip with ", number));
    }
    auto chip = std::make_unique<vhost::SimulatedChip>(number, *std::move(named));
    if (!FLAGS_control_socket.empty()) {
      const std::string path =
          count == 1 ? FLAGS_control_socket : absl::StrCat(FLAGS_control_socket, index);
      if (absl::Status s = chip->ServeControlSocket(path, "--control-socket"); !s.ok()) return s;
    }
    return std::make_unique<vhost::GpioDevice>(std::move(chip));
  }
  if (!absl::SimpleAtoi(entry, &number)) {
    return InvalidArgumentError(
        absl::StrCat("--device-list: '", entry, "' is neither N (/dev/gpiochipN) nor sN"));
  }
  absl::StatusOr<std::unique_ptr<vhost::HostChip>> chip =
      vhost::HostChip::Open(absl::StrCat("/dev/gpiochip", number));
  if (!chip.ok()) {
    return InvalidArgumentError(absl::StrCat("--device-list: ", chip.status().message()));
  }
  return std::make_unique<vhost::GpioDevice>(*std::move(chip));
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-gpio";
  spec.description =
      "Serves virtio-gpio devices to guests over vhost-user: host GPIO chips (/dev/gpiochipN) "
      "or simulated chips driven through a control socket, with interrupts.";
  spec.backend_type = "gpio";
  spec.short_names = {{'s', "socket_path"}, {'c', "socket_count"}, {'l', "device_list"}};
  spec.create_instance = CreateInstance;
  spec.sandbox = vhost::GpioSandboxPolicy();
  return vhost::RunDaemon(argc, argv, spec);
}
