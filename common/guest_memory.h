// The memory table: guest RAM regions mapped from the front end's file descriptors, and
// bounds-checked translation of guest-physical (GPA) and front-end-virtual (UVA) addresses.
//
// A GuestMemory is immutable once built; changes (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG) build
// a new one, which the backend swaps in while no queue is running. Mappings are shared between
// snapshots and unmapped when the last snapshot using them goes away. Thread-safe (const).
#ifndef COMMON_GUEST_MEMORY_H_
#define COMMON_GUEST_MEMORY_H_

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "common/message.h"

namespace vhost {

// One mmap()ed file range; unmapped on destruction.
class Mapping {
 public:
  Mapping(uint8_t* base, size_t length) : base_(base), length_(length) {}
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  uint8_t* base() const { return base_; }

 private:
  uint8_t* base_;
  size_t length_;
};

struct GuestRegion {
  uint64_t guest_phys_addr = 0;
  uint64_t size = 0;
  uint64_t user_addr = 0;
  uint8_t* host = nullptr;  // host address of guest_phys_addr
  std::shared_ptr<Mapping> mapping;

  bool ContainsGpa(uint64_t gpa, uint64_t len) const {
    return gpa >= guest_phys_addr && gpa - guest_phys_addr <= size &&
           len <= size - (gpa - guest_phys_addr);
  }
};

// Maps `region` from `fd` (which stays owned by the caller). Fails cleanly if the file is
// shorter than the region claims (touching such a mapping would raise SIGBUS) or mmap fails.
absl::StatusOr<GuestRegion> MapGuestRegion(const MemoryRegion& region, int fd);

using IovecList = absl::InlinedVector<iovec, 8>;

class GuestMemory {
 public:
  // Builds a table; regions must be non-empty and overlap neither in GPA nor in UVA space.
  static absl::StatusOr<std::shared_ptr<const GuestMemory>> Create(
      std::vector<GuestRegion> regions);
  static std::shared_ptr<const GuestMemory> Empty();

  // Host address of [gpa, gpa + len) if it lies within one region, else nullptr.
  uint8_t* TranslateGpa(uint64_t gpa, uint64_t len) const;
  // Host address of [uva, uva + len) (front-end virtual addresses, as in SET_VRING_ADDR).
  uint8_t* TranslateUva(uint64_t uva, uint64_t len) const;
  // Appends host segments covering [gpa, gpa + len), which may span adjacent regions. Returns
  // false (appending nothing useful) if any byte is unmapped or `out` would exceed `max_segments`.
  bool AppendSegments(uint64_t gpa, uint64_t len, size_t max_segments, IovecList* out) const;

  // New tables with one region added or removed (CONFIGURE_MEM_SLOTS).
  absl::StatusOr<std::shared_ptr<const GuestMemory>> WithRegion(GuestRegion region) const;
  absl::StatusOr<std::shared_ptr<const GuestMemory>> WithoutRegion(
      const MemoryRegion& region) const;

  const std::vector<GuestRegion>& regions() const { return regions_; }

 private:
  explicit GuestMemory(std::vector<GuestRegion> regions) : regions_(std::move(regions)) {}
  const GuestRegion* FindGpa(uint64_t gpa) const;

  std::vector<GuestRegion> regions_;  // sorted by guest_phys_addr
};

}  // namespace vhost

#endif  // COMMON_GUEST_MEMORY_H_
