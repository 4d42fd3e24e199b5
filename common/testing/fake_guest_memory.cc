#include "common/testing/fake_guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "glog/logging.h"

namespace vhost {
namespace testing {

FakeGuestMemory::FakeGuestMemory(std::vector<RegionSpec> specs) {
  std::vector<GuestRegion> regions;
  for (const RegionSpec& spec : specs) {
    UniqueFd fd(memfd_create("fake-guest-ram", MFD_CLOEXEC));
    CHECK(fd.valid());
    CHECK_EQ(ftruncate(fd.get(), spec.size), 0);
    const MemoryRegion region{spec.gpa, spec.size, Uva(spec.gpa), 0};
    absl::StatusOr<GuestRegion> mapped = MapGuestRegion(region, fd.get());
    CHECK(mapped.ok()) << mapped.status();
    regions.push_back(*std::move(mapped));
    regions_.push_back(region);
    fds_.push_back(std::move(fd));
  }
  absl::StatusOr<std::shared_ptr<const GuestMemory>> memory = GuestMemory::Create(regions);
  CHECK(memory.ok()) << memory.status();
  memory_ = *std::move(memory);
  if (!specs.empty()) {
    next_free_ = specs[0].gpa;
    first_end_ = specs[0].gpa + specs[0].size;
  }
}

uint64_t FakeGuestMemory::Allocate(uint64_t size, uint64_t align) {
  const uint64_t gpa = (next_free_ + align - 1) / align * align;
  CHECK_LE(gpa + size, first_end_) << "fake guest memory is full";
  next_free_ = gpa + size;
  return gpa;
}

uint64_t FakeGuestMemory::Put(const void* data, size_t n) {
  const uint64_t gpa = Allocate(n);
  std::memcpy(Host(gpa, n), data, n);
  return gpa;
}

}  // namespace testing
}  // namespace vhost
