#include "vhost-user-i2c/simulated_bus.h"

#include "absl/strings/str_cat.h"

namespace vhost {

SimulatedBus::SimulatedBus(const std::vector<uint16_t>& eeprom_addresses) {
  for (uint16_t addr : eeprom_addresses) eeproms_[addr];
}

absl::Status SimulatedBus::Transfer(absl::Span<I2cMessage> messages) {
  std::lock_guard<std::mutex> lock(mu_);
  for (I2cMessage& message : messages) {
    auto it = eeproms_.find(message.addr);
    if (it == eeproms_.end()) {
      return absl::UnavailableError(
          absl::StrCat("no acknowledge from 0x", absl::Hex(message.addr)));
    }
    Eeprom& eeprom = it->second;
    if (message.read) {
      for (uint8_t& byte : message.data) byte = eeprom.cells[eeprom.pointer++];
    } else if (!message.data.empty()) {
      eeprom.pointer = message.data[0];
      for (size_t i = 1; i < message.data.size(); ++i) {
        eeprom.cells[eeprom.pointer++] = message.data[i];
      }
    }
  }
  return absl::OkStatus();
}

std::array<uint8_t, 256> SimulatedBus::Contents(uint16_t addr) {
  std::lock_guard<std::mutex> lock(mu_);
  return eeproms_[addr].cells;
}

}  // namespace vhost
