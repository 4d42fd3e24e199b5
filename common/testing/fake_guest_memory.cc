#include "common/testing/fake_guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include "glog/logging.h"

namespace vhost {
namespace testing {

FakeGuestMemory::FakeGuestMemory(std::vector<RegionSpec> specs) {
  std::vector<GuestRegion> regions;
  for (const RegionSpec& spec : specs) {
    UniqueFd fd(memfd_create("fake-guest-ram", MFD_CLOEXEC));
    CHECK(fd.valid());
    CHECK_EQ(ftruncate(fd.get(), spec.size), 0);
    MemoryRegion region{spec.gpa, spec.size, Uva(spec.gpa), 0};
    absl::StatusOr<GuestRegion> mapped = MapGuestRegion(region, fd.get());
    CHECK(mapped.ok()) << mapped.status();
    regions.push_back(*std::move(mapped));
  }
  absl::StatusOr<std::shared_ptr<const GuestMemory>> memory = GuestMemory::Create(regions);
  CHECK(memory.ok()) << memory.status();
  memory_ = *std::move(memory);
}

}  // namespace testing
}  // namespace vhost
