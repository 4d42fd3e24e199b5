// A descriptor chain as the device sees it: the guest's buffers, already translated and
// bounds-checked, split into the driver-readable part and the device-writable part.
#ifndef COMMON_VIRTIO_DESCRIPTOR_CHAIN_H_
#define COMMON_VIRTIO_DESCRIPTOR_CHAIN_H_

#include <cstdint>

#include "absl/status/status.h"
#include "common/virtio/guest_memory.h"

namespace vhost {

// Limits on what one chain may hold, whatever the guest writes.
constexpr size_t kMaxChainSegments = 1024;        // matches IOV_MAX
constexpr uint64_t kMaxChainBytes = 0xffffffffu;  // used.len is 32 bits

struct DescriptorChain {
  uint16_t head = 0;        // split: head descriptor index; packed: buffer id
  uint16_t ring_slots = 0;  // packed: ring descriptors the chain occupies
  IovecList readable;       // guest -> device
  IovecList writable;       // device -> guest
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;

  void Clear() {
    readable.clear();
    writable.clear();
    readable_bytes = writable_bytes = 0;
    ring_slots = 0;
  }

  // Adds one guest buffer to the chain, enforcing the virtio rules: device-writable buffers
  // come after all readable ones, and the totals stay within the limits above.
  absl::Status AddBuffer(const GuestMemory& memory, uint64_t gpa, uint32_t len, bool writable);
};

// Appends to `out` the segments covering bytes [offset, offset + len) of `segments` (fewer
// bytes if the segments end first). No data is copied.
void SliceSegments(const IovecList& segments, size_t offset, size_t len, IovecList* out);

// Copies out of / into a segment list starting `offset` bytes in. Returns the bytes copied,
// which is less than `len` when the segments end first.
size_t CopyFromSegments(const IovecList& segments, size_t offset, void* dst, size_t len);
size_t CopyToSegments(const IovecList& segments, size_t offset, const void* src, size_t len);

}  // namespace vhost

#endif  // COMMON_VIRTIO_DESCRIPTOR_CHAIN_H_
