// The host side of a virtio-i2c device: adapters that carry I2C transactions. Implemented by a
// real /dev/i2c-N (host_adapter.h) and by a simulated bus of EEPROMs (simulated_bus.h).
#ifndef VHOST_USER_I2C_I2C_ADAPTER_H_
#define VHOST_USER_I2C_I2C_ADAPTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace vhost {

// One message of a transaction. A read's `data` has the length to read and receives the bytes.
struct I2cMessage {
  uint16_t addr = 0;  // 7-bit
  bool read = false;
  std::vector<uint8_t> data;
};

class I2cAdapter {
 public:
  virtual ~I2cAdapter() = default;
  // Runs `messages` as one transaction (repeated start between them, one stop at the end).
  // Thread-safe: guests on several sockets may share an adapter.
  virtual absl::Status Transfer(absl::Span<I2cMessage> messages) = 0;
  virtual std::string name() const = 0;
};

}  // namespace vhost

#endif  // VHOST_USER_I2C_I2C_ADAPTER_H_
