// Guest memory as a front end owns it: memfd-backed regions at chosen guest-physical addresses,
// mapped into this process. Their mapping addresses are the "user addresses" the back end sees
// in the memory table and in SET_VRING_ADDR, as with QEMU. A bump allocator hands out buffers.
#ifndef TESTS_FRONTEND_GUEST_RAM_H_
#define TESTS_FRONTEND_GUEST_RAM_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "common/testing/driver_ring.h"
#include "common/vhost_user/message.h"

namespace vhost {
namespace frontend {

class GuestRam : public testing::DriverMemory {
 public:
  struct RegionSpec {
    uint64_t gpa = 0;
    uint64_t size = 0;  // a multiple of the page size
  };
  struct Region {
    uint64_t gpa;
    uint64_t size;
    uint8_t* host;
    UniqueFd fd;
  };

  // One memfd per region, zero-filled. Regions must not overlap.
  static absl::StatusOr<std::unique_ptr<GuestRam>> Create(std::vector<RegionSpec> regions);
  // One region of `size` bytes at guest-physical 0.
  static absl::StatusOr<std::unique_ptr<GuestRam>> Create(uint64_t size);
  ~GuestRam() override;

  uint8_t* HostAddress(uint64_t gpa, size_t len) override;
  // The front end's virtual address of `gpa` (0 if unmapped).
  uint64_t UserAddress(uint64_t gpa) const;

  size_t num_regions() const { return regions_.size(); }
  const Region& region(size_t i) const { return regions_[i]; }
  // The memory-table entry of region i (user_addr = our mapping, mmap_offset 0).
  MemoryRegion WireRegion(size_t i) const;

  // Hands out [gpa, gpa + size) aligned to `align` (a power of two), from the first region with
  // room. ResourceExhausted when none has.
  absl::StatusOr<uint64_t> Allocate(uint64_t size, uint64_t align = 64);
  // Allocates and returns the host pointer too.
  absl::StatusOr<uint64_t> Allocate(uint64_t size, uint64_t align, uint8_t** host);
  // Allocates in region `region` only.
  absl::StatusOr<uint64_t> AllocateIn(size_t region, uint64_t size, uint64_t align = 64,
                                      uint8_t** host = nullptr);
  // Bytes not yet handed out at the end of region `region`.
  uint64_t FreeBytes(size_t region) const;
  // Forgets every allocation (the memory keeps its contents).
  void ResetAllocator();

 private:
  GuestRam() = default;
  std::vector<Region> regions_;
  std::vector<uint64_t> next_free_;  // per region: offset of the bump pointer
};

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_GUEST_RAM_H_
