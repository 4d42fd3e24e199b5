// virtio-input's config space: the driver writes `select` and `subsel`, then reads `size` and the
// answer in `u`. Everything but select and subsel is read-only.
#ifndef VHOST_USER_INPUT_INPUT_CONFIG_H_
#define VHOST_USER_INPUT_INPUT_CONFIG_H_

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "vhost-user-input/input_description.h"

namespace vhost {

class InputConfigSpace {
 public:
  explicit InputConfigSpace(InputDescription description) : description_(std::move(description)) {}

  // Reads past sizeof(virtio_input_config) are refused.
  absl::Status Read(uint32_t offset, absl::Span<uint8_t> out) const;
  // Only select (offset 0) and subsel (offset 1) are writable. A write starting there may run
  // on over the rest (QEMU writes the whole structure), which is left as it is; a write to the
  // read-only bytes alone is refused.
  absl::Status Write(uint32_t offset, absl::Span<const uint8_t> data);
  // The config the driver sees for the current selection.
  virtio_input_config Current() const;

 private:
  const InputDescription description_;
  mutable absl::Mutex mutex_;
  uint8_t select_ ABSL_GUARDED_BY(mutex_) = 0;
  uint8_t subsel_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace vhost

#endif  // VHOST_USER_INPUT_INPUT_CONFIG_H_
