// A simulated I2C bus for tests and for users without hardware: 24C02-style EEPROMs, 256 bytes
// each, at the addresses given.
//
// EEPROM register model: an 8-bit address pointer, 0 at start. In a write message the first byte
// sets the pointer and the following bytes are stored from there, the pointer incrementing and
// wrapping at 256 (no page limit, no write delay). A read message returns bytes from the pointer,
// incrementing and wrapping. A zero-length message (SMBus quick) is acknowledged. The usual
// "random read" is a one-byte write (the pointer) followed by a read, in one transaction.
// Messages to an address with no EEPROM are not acknowledged (the transaction fails there, as
// on a real bus: earlier messages have happened).
#ifndef VHOST_USER_I2C_SIMULATED_BUS_H_
#define VHOST_USER_I2C_SIMULATED_BUS_H_

#include <array>
#include <map>
#include <mutex>

#include "vhost-user-i2c/i2c_adapter.h"

namespace vhost {

class SimulatedBus : public I2cAdapter {
 public:
  explicit SimulatedBus(const std::vector<uint16_t>& eeprom_addresses);

  absl::Status Transfer(absl::Span<I2cMessage> messages) override;
  std::string name() const override { return "simulated bus"; }

  // An EEPROM's contents (for tests).
  std::array<uint8_t, 256> Contents(uint16_t addr);

 private:
  struct Eeprom {
    std::array<uint8_t, 256> cells{};
    uint8_t pointer = 0;
  };
  std::mutex mu_;
  std::map<uint16_t, Eeprom> eeproms_;
};

}  // namespace vhost

#endif  // VHOST_USER_I2C_SIMULATED_BUS_H_
