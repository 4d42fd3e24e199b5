#include "vhost-user-input/input_description.h"

namespace vhost {

void InputDescription::SetCode(uint8_t type, uint16_t code) {
  std::vector<uint8_t>& bits = events[type];
  if (bits.size() <= code / 8u) bits.resize(code / 8 + 1);
  bits[code / 8] |= 1u << (code % 8);
}

bool InputDescription::HasCode(uint8_t type, uint16_t code) const {
  auto it = events.find(type);
  return it != events.end() && code / 8u < it->second.size() &&
         (it->second[code / 8] & (1u << (code % 8)));
}

}  // namespace vhost
