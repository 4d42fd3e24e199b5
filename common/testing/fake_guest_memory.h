// Guest memory for unit tests and fuzzers, the one fake of it: memfd-backed regions at chosen
// guest-physical addresses, mapped through the production path (MapGuestRegion), with a host
// view for the test to write rings and buffers as a driver would, and each region's memory-table
// entry and fd for tests that hand them to a back end (SET_MEM_TABLE, ADD_MEM_REG).
#ifndef COMMON_TESTING_FAKE_GUEST_MEMORY_H_
#define COMMON_TESTING_FAKE_GUEST_MEMORY_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/testing/driver_ring.h"
#include "common/virtio/guest_memory.h"

namespace vhost {
namespace testing {

class FakeGuestMemory : public DriverMemory {
 public:
  struct RegionSpec {
    uint64_t gpa;
    uint64_t size;
  };
  // One region of `size` bytes at gpa 0 by default.
  explicit FakeGuestMemory(uint64_t size = 1 << 20) : FakeGuestMemory({{0, size}}) {}
  explicit FakeGuestMemory(std::vector<RegionSpec> regions);

  const std::shared_ptr<const GuestMemory>& memory() const { return memory_; }
  // Host pointer for [gpa, gpa+len) or nullptr.
  uint8_t* Host(uint64_t gpa, uint64_t len = 1) const { return memory_->TranslateGpa(gpa, len); }
  uint8_t* HostAddress(uint64_t gpa, size_t len) override { return Host(gpa, len); }
  // Guest-physical space for rings and buffers, from the first region's start up (16-byte
  // aligned by default). Tests that also write at literal addresses keep those above the
  // allocations. CHECK-fails when the first region is full: a test sized it too small.
  uint64_t Allocate(uint64_t size, uint64_t align = 16);
  // Copies `n` bytes into freshly allocated guest memory; returns their address.
  uint64_t Put(const void* data, size_t n);
  // The T at `gpa` (which must be mapped), copied out.
  template <typename T>
  T Get(uint64_t gpa) const {
    T value;
    std::memcpy(&value, Host(gpa, sizeof(T)), sizeof(T));
    return value;
  }
  // The "front-end virtual address" used for gpa (we use uva = gpa + kUvaOffset).
  static constexpr uint64_t kUvaOffset = 0x7f0000000000;
  static uint64_t Uva(uint64_t gpa) { return gpa + kUvaOffset; }

  size_t num_regions() const { return regions_.size(); }
  // Region i as a front end describes it: user address Uva(gpa), mmap offset 0.
  const MemoryRegion& region(size_t i) const { return regions_[i]; }
  // The memfd behind region i (still ours: dup it to send it).
  int fd(size_t i) const { return fds_[i].get(); }

 private:
  std::vector<MemoryRegion> regions_;
  std::vector<UniqueFd> fds_;
  std::shared_ptr<const GuestMemory> memory_;
  uint64_t next_free_ = 0;  // gpa
  uint64_t first_end_ = 0;
};

}  // namespace testing
}  // namespace vhost

#endif  // COMMON_TESTING_FAKE_GUEST_MEMORY_H_
