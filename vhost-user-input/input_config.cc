#include "vhost-user-input/input_config.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/device/device.h"

namespace vhost {
namespace {

// Bitmaps are reported up to their last non-zero byte.
uint8_t PutBitmap(const std::vector<uint8_t>& bits, virtio_input_config* c) {
  size_t size = std::min(bits.size(), sizeof(c->u.bitmap));
  while (size > 0 && bits[size - 1] == 0) --size;
  // An empty bitmap's data() may be null, which memcpy must not get even for 0 bytes.
  if (size > 0) std::memcpy(c->u.bitmap, bits.data(), size);
  return size;
}

uint8_t PutString(const std::string& s, virtio_input_config* c) {
  const size_t size = std::min(s.size(), sizeof(c->u.string));
  std::memcpy(c->u.string, s.data(), size);
  return size;
}

}  // namespace

virtio_input_config InputConfigSpace::Current() const {
  virtio_input_config c{};
  absl::MutexLock lock(&mutex_);
  c.select = select_;
  c.subsel = subsel_;
  switch (select_) {
    case VIRTIO_INPUT_CFG_ID_NAME:
      if (subsel_ == 0) c.size = PutString(description_.name, &c);
      break;
    case VIRTIO_INPUT_CFG_ID_SERIAL:
      if (subsel_ == 0) c.size = PutString(description_.serial, &c);
      break;
    case VIRTIO_INPUT_CFG_ID_DEVIDS:
      if (subsel_ == 0) {
        c.u.ids = description_.ids;
        c.size = sizeof(c.u.ids);
      }
      break;
    case VIRTIO_INPUT_CFG_PROP_BITS:
      if (subsel_ == 0) c.size = PutBitmap(description_.properties, &c);
      break;
    case VIRTIO_INPUT_CFG_EV_BITS: {
      auto it = description_.events.find(subsel_);
      if (it != description_.events.end()) c.size = PutBitmap(it->second, &c);
      break;
    }
    case VIRTIO_INPUT_CFG_ABS_INFO: {
      auto it = description_.axes.find(subsel_);
      if (it != description_.axes.end()) {
        c.u.abs = it->second;
        c.size = sizeof(c.u.abs);
      }
      break;
    }
    default:
      break;  // unknown selectors answer size 0, as the spec asks
  }
  return c;
}

absl::Status InputConfigSpace::Read(uint32_t offset, absl::Span<uint8_t> out) const {
  return ReadConfigBytes(Current(), offset, out);
}

absl::Status InputConfigSpace::Write(uint32_t offset, absl::Span<const uint8_t> data) {
  // QEMU writes the whole structure back with new select/subsel bytes and stale bytes after
  // them (its copy of an earlier selection): only select and subsel take effect. A write that
  // reaches neither is refused.
  if (offset >= 2) {
    return absl::PermissionDeniedError(
        absl::StrCat("config bytes ", offset, "..", offset + data.size(),
                     " are read-only (only select and subsel are writable)"));
  }
  absl::MutexLock lock(&mutex_);
  for (size_t i = 0; i < data.size() && offset + i < 2; ++i) {
    (offset + i == 0 ? select_ : subsel_) = data[i];
  }
  return absl::OkStatus();
}

}  // namespace vhost
