// vhost-user-i2c: host I2C adapters, or a simulated bus of EEPROMs, for guests.
#include <map>

#include "absl/strings/str_cat.h"
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-i2c/device_list.h"
#include "vhost-user-i2c/host_adapter.h"
#include "vhost-user-i2c/i2c_device.h"
#include "vhost-user-i2c/i2c_sandbox.h"
#include "vhost-user-i2c/simulated_bus.h"

DEFINE_string(device_list, "",
              "Adapters and the client addresses the guest may use: BUS:ADDR[:ADDR...] separated "
              "by ',', BUS being N for /dev/i2c-N or sim for a simulated bus of EEPROMs "
              "(e.g. \"1:0x50:0x51,sim:0x52\")");

namespace {

// Host adapters are opened once and shared by the guests of every socket (one transaction at a
// time each); a simulated bus is per socket, so each guest has its own EEPROMs.
std::map<uint32_t, std::shared_ptr<vhost::I2cAdapter>> host_adapters;

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateInstance(int index, int count) {
  absl::StatusOr<std::vector<vhost::AdapterSpec>> specs =
      vhost::ParseI2cDeviceList(FLAGS_device_list);
  if (!specs.ok()) return specs.status();
  vhost::I2cBusMap bus;
  for (const vhost::AdapterSpec& spec : *specs) {
    std::shared_ptr<vhost::I2cAdapter> adapter;
    if (spec.simulated) {
      adapter = std::make_shared<vhost::SimulatedBus>(spec.addresses);
    } else if (auto it = host_adapters.find(spec.number); it != host_adapters.end()) {
      adapter = it->second;
    } else {
      absl::StatusOr<std::unique_ptr<vhost::HostAdapter>> opened =
          vhost::HostAdapter::Open(absl::StrCat("/dev/i2c-", spec.number));
      if (!opened.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--device-list: ", opened.status().message()));
      }
      adapter = host_adapters[spec.number] = *std::move(opened);
    }
    for (uint16_t addr : spec.addresses) bus[addr] = adapter;
  }
  return std::make_unique<vhost::I2cDevice>(std::move(bus));
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-i2c";
  spec.description =
      "Serves virtio-i2c devices to guests over vhost-user: host I2C adapters (/dev/i2c-N), "
      "limited to the client addresses listed, or a simulated bus of EEPROMs.";
  spec.backend_type = "i2c";
  spec.short_names = {{'s', "socket_path"}, {'c', "socket_count"}, {'l', "device_list"}};
  spec.create_instance = CreateInstance;
  spec.sandbox = vhost::I2cSandboxPolicy();
  return vhost::RunDaemon(argc, argv, spec);
}
