// --device-list: "BUS:ADDR[:ADDR...][,BUS:ADDR...]", as rust-vmm's vhost-device-i2c takes it.
// BUS is N for /dev/i2c-N or "sim" for a simulated bus of EEPROMs; ADDR a 7-bit client address,
// decimal or 0x-prefixed hex. Each address may appear once: the guest sees one bus.
#ifndef VHOST_USER_I2C_DEVICE_LIST_H_
#define VHOST_USER_I2C_DEVICE_LIST_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vhost {

struct AdapterSpec {
  bool simulated = false;
  uint32_t number = 0;  // /dev/i2c-N
  std::vector<uint16_t> addresses;
};

absl::StatusOr<std::vector<AdapterSpec>> ParseI2cDeviceList(absl::string_view list);

}  // namespace vhost

#endif  // VHOST_USER_I2C_DEVICE_LIST_H_
