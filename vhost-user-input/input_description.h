// What an input device is, as virtio-input's config space reports it (virtio 1.2 §5.8.2): name,
// serial, ids, the event-type bitmaps, absolute axis ranges and properties.
#ifndef VHOST_USER_INPUT_INPUT_DESCRIPTION_H_
#define VHOST_USER_INPUT_INPUT_DESCRIPTION_H_

#include <linux/input.h>
#include <linux/virtio_input.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vhost {

struct InputDescription {
  std::string name;
  std::string serial;
  virtio_input_devids ids{};
  std::vector<uint8_t> properties;                 // INPUT_PROP_* bitmap
  std::map<uint8_t, std::vector<uint8_t>> events;  // EV_* type -> code bitmap
  std::map<uint8_t, virtio_input_absinfo> axes;    // ABS_* -> range

  void SetCode(uint8_t type, uint16_t code);
  bool HasCode(uint8_t type, uint16_t code) const;
};

}  // namespace vhost

#endif  // VHOST_USER_INPUT_INPUT_DESCRIPTION_H_
