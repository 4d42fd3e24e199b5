#include "tests/frontend/dirty_bitmap.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace vhost {
namespace frontend {

absl::StatusOr<std::unique_ptr<DirtyBitmap>> DirtyBitmap::Create(uint64_t guest_bytes) {
  const uint64_t pages = (guest_bytes + kPageSize - 1) / kPageSize;
  const uint64_t size = (pages + 63) / 64 * 8;
  if (size == 0) return absl::InvalidArgumentError("a log for no memory");
  UniqueFd fd(memfd_create("vhost-log", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd) return absl::ErrnoToStatus(errno, "memfd_create(log)");
  if (ftruncate(fd.get(), size) != 0) return absl::ErrnoToStatus(errno, "ftruncate(log)");
  if (fcntl(fd.get(), F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0) {
    return absl::ErrnoToStatus(errno, "seal(log)");
  }
  void* bits = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (bits == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap(log)");
  return std::unique_ptr<DirtyBitmap>(
      new DirtyBitmap(std::move(fd), static_cast<uint64_t*>(bits), size));
}

DirtyBitmap::~DirtyBitmap() { munmap(bits_, size_); }

bool DirtyBitmap::IsDirty(uint64_t gpa) const {
  const uint64_t page = gpa / kPageSize;
  if (page / 64 >= size_ / 8) return false;
  return __atomic_load_n(&bits_[page / 64], __ATOMIC_ACQUIRE) & (uint64_t{1} << (page % 64));
}

bool DirtyBitmap::AllDirty(uint64_t gpa, uint64_t len) const {
  for (uint64_t page = gpa / kPageSize; page <= (gpa + len - 1) / kPageSize; ++page) {
    if (!IsDirty(page * kPageSize)) return false;
  }
  return true;
}

std::vector<uint64_t> DirtyBitmap::Take() {
  std::vector<uint64_t> pages;
  for (uint64_t word = 0; word < size_ / 8; ++word) {
    const uint64_t bits = __atomic_exchange_n(&bits_[word], 0, __ATOMIC_ACQ_REL);
    for (uint64_t bit = 0; bit < 64; ++bit) {
      if (bits & (uint64_t{1} << bit)) pages.push_back(word * 64 + bit);
    }
  }
  return pages;
}

}  // namespace frontend
}  // namespace vhost
