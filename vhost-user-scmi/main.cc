// vhost-user-scmi: an SCMI platform (sensors, clocks, power, performance, reset and voltage
// domains) for Arm guests over virtio-scmi.
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "common/runtime/control_socket.h"
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-scmi/iio_sensors.h"
#include "vhost-user-scmi/scmi_device.h"
#include "vhost-user-scmi/scmi_sandbox.h"

DEFINE_string(platform, "",
              "A file describing the simulated platform (see README.md); default: two "
              "temperature and two voltage sensors, an accelerometer, two clocks, a regulator, "
              "a performance domain, a power and a reset domain");
DEFINE_string(iio_root, "",
              "Also serve the host's IIO sensors found here (e.g. /sys/bus/iio/devices): "
              "temperature, voltage, current, accelerometers and gyroscopes");
DEFINE_string(hwmon_root, "",
              "Also serve the host's hwmon sensors found here (e.g. /sys/class/hwmon): "
              "temperature, voltage, current, power and energy inputs");
DEFINE_string(control_socket, "",
              "A Unix socket taking commands that read and change the platform (see README.md)");

namespace {

using absl::InvalidArgumentError;

std::unique_ptr<vhost::ControlSocket> control;

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice() {
  std::string text(vhost::scmi::kDefaultPlatform);
  if (!FLAGS_platform.empty()) {
    std::ifstream file(FLAGS_platform);
    std::stringstream contents;
    contents << file.rdbuf();
    if (!file)
      return InvalidArgumentError(absl::StrCat("--platform: cannot read ", FLAGS_platform));
    text = contents.str();
  }
  absl::StatusOr<std::unique_ptr<vhost::scmi::ScmiPlatform>> platform =
      vhost::scmi::ScmiPlatform::Parse(text);
  if (!platform.ok()) {
    return InvalidArgumentError(absl::StrCat("--platform: ", platform.status().message()));
  }
  if (!FLAGS_iio_root.empty()) {
    absl::StatusOr<std::vector<vhost::scmi::Sensor>> host =
        vhost::scmi::ScanIioSensors(FLAGS_iio_root);
    if (!host.ok())
      return InvalidArgumentError(absl::StrCat("--iio-root: ", host.status().message()));
    if (absl::Status s = (*platform)->AddSensors(*std::move(host)); !s.ok()) {
      return InvalidArgumentError(absl::StrCat("--iio-root: ", s.message()));
    }
  }
  if (!FLAGS_hwmon_root.empty()) {
    absl::StatusOr<std::vector<vhost::scmi::Sensor>> host =
        vhost::scmi::ScanHwmonSensors(FLAGS_hwmon_root);
    if (!host.ok()) {
      return InvalidArgumentError(absl::StrCat("--hwmon-root: ", host.status().message()));
    }
    if (absl::Status s = (*platform)->AddSensors(*std::move(host)); !s.ok()) {
      return InvalidArgumentError(absl::StrCat("--hwmon-root: ", s.message()));
    }
  }
  auto device = std::make_unique<vhost::scmi::ScmiDevice>(*std::move(platform));
  if (!FLAGS_control_socket.empty()) {
    vhost::scmi::ScmiPlatform* served = &device->platform();
    absl::StatusOr<std::unique_ptr<vhost::ControlSocket>> socket = vhost::ControlSocket::Start(
        FLAGS_control_socket, "--control-socket",
        [served](absl::string_view line) { return served->Execute(line); });
    if (!socket.ok()) return socket.status();
    control = *std::move(socket);
  }
  return std::unique_ptr<vhost::VirtioDevice>(std::move(device));
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-scmi";
  spec.description =
      "Serves a virtio-scmi device (an SCMI platform: sensors, clocks, power, performance, "
      "reset and voltage domains) to an Arm guest over vhost-user.";
  spec.backend_type = "scmi";
  spec.create_device = CreateDevice;
  spec.sandbox = vhost::scmi::ScmiSandboxPolicy();
  spec.before_devices_destroyed = [] { control.reset(); };
  return vhost::RunDaemon(argc, argv, spec);
}
