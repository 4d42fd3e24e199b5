#include "tests/frontend/guest_ram.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace vhost {
namespace frontend {

absl::StatusOr<std::unique_ptr<GuestRam>> GuestRam::Create(uint64_t size) {
  return Create({{0, size}});
}

absl::StatusOr<std::unique_ptr<GuestRam>> GuestRam::Create(std::vector<RegionSpec> specs) {
  if (specs.empty()) return absl::InvalidArgumentError("no regions");
  const uint64_t page = sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < specs.size(); ++i) {
    const RegionSpec& s = specs[i];
    if (s.size == 0 || s.size % page != 0 || s.gpa % page != 0 || s.gpa + s.size < s.gpa) {
      return absl::InvalidArgumentError(
          absl::StrCat("region ", i, ": bad size ", s.size, " or address 0x", absl::Hex(s.gpa)));
    }
    for (size_t j = 0; j < i; ++j) {
      if (s.gpa < specs[j].gpa + specs[j].size && specs[j].gpa < s.gpa + s.size) {
        return absl::InvalidArgumentError(absl::StrCat("regions ", j, " and ", i, " overlap"));
      }
    }
  }
  std::unique_ptr<GuestRam> ram(new GuestRam);
  for (size_t i = 0; i < specs.size(); ++i) {
    const int fd = memfd_create(absl::StrCat("guest-ram-", i).c_str(), MFD_CLOEXEC);
    if (fd < 0) return absl::ErrnoToStatus(errno, "memfd_create");
    Region region{specs[i].gpa, specs[i].size, nullptr, UniqueFd(fd)};
    if (ftruncate(fd, region.size) != 0) return absl::ErrnoToStatus(errno, "ftruncate");
    void* host = mmap(nullptr, region.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (host == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap");
    region.host = static_cast<uint8_t*>(host);
    ram->regions_.push_back(std::move(region));
    ram->next_free_.push_back(0);
  }
  return ram;
}

GuestRam::~GuestRam() {
  for (Region& r : regions_) munmap(r.host, r.size);
}

uint8_t* GuestRam::HostAddress(uint64_t gpa, size_t len) {
  for (const Region& r : regions_) {
    if (gpa >= r.gpa && gpa - r.gpa <= r.size && len <= r.size - (gpa - r.gpa)) {
      return r.host + (gpa - r.gpa);
    }
  }
  return nullptr;
}

uint64_t GuestRam::UserAddress(uint64_t gpa) const {
  for (const Region& r : regions_) {
    if (gpa >= r.gpa && gpa - r.gpa < r.size) {
      return reinterpret_cast<uint64_t>(r.host) + (gpa - r.gpa);
    }
  }
  return 0;
}

MemoryRegion GuestRam::WireRegion(size_t i) const {
  const Region& r = regions_[i];
  return MemoryRegion{r.gpa, r.size, reinterpret_cast<uint64_t>(r.host), 0};
}

absl::StatusOr<uint64_t> GuestRam::Allocate(uint64_t size, uint64_t align) {
  return Allocate(size, align, nullptr);
}

absl::StatusOr<uint64_t> GuestRam::Allocate(uint64_t size, uint64_t align, uint8_t** host) {
  for (size_t i = 0; i < regions_.size(); ++i) {
    absl::StatusOr<uint64_t> gpa = AllocateIn(i, size, align, host);
    if (gpa.ok() || !absl::IsResourceExhausted(gpa.status())) return gpa;
  }
  return absl::ResourceExhaustedError(absl::StrCat("no room for ", size, " bytes of guest memory"));
}

absl::StatusOr<uint64_t> GuestRam::AllocateIn(size_t region, uint64_t size, uint64_t align,
                                              uint8_t** host) {
  if (align == 0 || (align & (align - 1)) != 0) {
    return absl::InvalidArgumentError("alignment must be a power of two");
  }
  if (region >= regions_.size()) return absl::InvalidArgumentError("no such region");
  const Region& r = regions_[region];
  // Align the guest-physical address (regions are page-aligned, so the host one follows).
  const uint64_t gpa = (r.gpa + next_free_[region] + align - 1) & ~(align - 1);
  const uint64_t offset = gpa - r.gpa;
  if (offset > r.size || size > r.size - offset) {
    return absl::ResourceExhaustedError(
        absl::StrCat("no room for ", size, " bytes in region ", region));
  }
  next_free_[region] = offset + size;
  if (host != nullptr) *host = r.host + offset;
  return gpa;
}

uint64_t GuestRam::FreeBytes(size_t region) const {
  return region < regions_.size() ? regions_[region].size - next_free_[region] : 0;
}

void GuestRam::ResetAllocator() { std::fill(next_free_.begin(), next_free_.end(), 0); }

}  // namespace frontend
}  // namespace vhost
