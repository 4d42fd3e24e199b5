// The memory table: guest RAM regions mapped from the front end's file descriptors, and
// bounds-checked translation of guest-physical (GPA) and front-end-virtual (UVA) addresses.
//
// A GuestMemory is immutable once built; changes (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG) build
// a new one, which the backend swaps in while no queue is running. Mappings are shared between
// snapshots and unmapped when the last snapshot using them goes away. Thread-safe (const).
//
// A front end may shrink a memory file after sending it (QEMU's memfds carry no F_SEAL_SHRINK, so
// it cannot be required): touching a page beyond the new end raises SIGBUS, which would kill the
// process and every guest it serves. The file size is checked when a region is mapped, and a
// process-wide SIGBUS handler (guest_memory.cc) turns a fault inside a guest mapping into zero
// pages and flags the mapping; queues check the flag once per batch and break (NEEDS_RESET).
#ifndef COMMON_VIRTIO_GUEST_MEMORY_H_
#define COMMON_VIRTIO_GUEST_MEMORY_H_

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"

namespace vhost {

// A region of guest memory as the front end describes it (the vhost-user wire layout).
struct MemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t user_addr;
  uint64_t mmap_offset;
};
static_assert(sizeof(MemoryRegion) == 32);

// How many guest memory faults (SIGBUS) the process has survived. A relaxed atomic load: cheap
// enough to compare once per batch.
uint32_t GuestMemoryFaultCount();

// One mmap()ed file range, known to the SIGBUS handler; unmapped on destruction.
class Mapping {
 public:
  // `slot` is its entry in the handler's table (see guest_memory.cc).
  Mapping(uint8_t* base, size_t length, int slot) : base_(base), length_(length), slot_(slot) {}
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  uint8_t* base() const { return base_; }
  // Whether an access hit a page beyond the end of the file (now zeros, no longer shared).
  bool faulted() const;

 private:
  uint8_t* base_;
  size_t length_;
  int slot_;
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
  // The guest-physical address of host address `host` if it lies in a region (and stores it in
  // `gpa`); for the dirty log, which takes guest-physical addresses. A linear scan: only used
  // while migrating.
  bool HostToGpa(const void* host, uint64_t* gpa) const;
  // Appends host segments covering [gpa, gpa + len), which may span adjacent regions. Returns
  // false (appending nothing useful) if any byte is unmapped or `out` would exceed `max_segments`.
  bool AppendSegments(uint64_t gpa, uint64_t len, size_t max_segments, IovecList* out) const;

  // New tables with one region added or removed (CONFIGURE_MEM_SLOTS).
  absl::StatusOr<std::shared_ptr<const GuestMemory>> WithRegion(GuestRegion region) const;
  absl::StatusOr<std::shared_ptr<const GuestMemory>> WithoutRegion(
      const MemoryRegion& region) const;

  const std::vector<GuestRegion>& regions() const { return regions_; }
  // Whether any region's mapping took a fault (see Mapping::faulted).
  bool faulted() const;

 private:
  explicit GuestMemory(std::vector<GuestRegion> regions) : regions_(std::move(regions)) {}
  const GuestRegion* FindGpa(uint64_t gpa) const;

  std::vector<GuestRegion> regions_;  // sorted by guest_phys_addr
};

}  // namespace vhost

#endif  // COMMON_VIRTIO_GUEST_MEMORY_H_
