#include "common/virtio/dirty_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace vhost {

uint64_t DirtyLog::BytesFor(uint64_t end_gpa) {
  const uint64_t pages = end_gpa / kPageSize + (end_gpa % kPageSize != 0);
  return pages / 8 + (pages % 8 != 0);
}

absl::StatusOr<std::unique_ptr<DirtyLog>> DirtyLog::Map(int fd, uint64_t size, uint64_t offset,
                                                        uint64_t min_size) {
  // Offsets need not be page aligned: map from the start of the file and skip them.
  const uint64_t length = offset + size;
  if (size == 0 || length < offset || size < min_size) {
    return absl::InvalidArgumentError(absl::StrCat("dirty log of ", size, " bytes at offset ",
                                                   offset, " (the memory table needs ", min_size,
                                                   ")"));
  }
  const int seals = fcntl(fd, F_GET_SEALS);
  struct stat st;
  if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(fd, &st) != 0 ||
      static_cast<uint64_t>(st.st_size) < length) {
    return absl::InvalidArgumentError(
        absl::StrCat("dirty log: not a file sealed against shrinking holding ", length, " bytes"));
  }
  void* mapping = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapping == MAP_FAILED) return absl::ErrnoToStatus(errno, "mmap(dirty log)");
  auto* base = static_cast<uint8_t*>(mapping);
  return std::unique_ptr<DirtyLog>(new DirtyLog(base, length, base + offset, size));
}

DirtyLog::~DirtyLog() { munmap(mapping_, mapping_size_); }

void DirtyLog::Mark(uint64_t gpa, uint64_t len) const {
  if (len == 0) return;
  const uint64_t first = gpa / kPageSize;
  uint64_t last = (gpa + std::min(len - 1, ~uint64_t{0} - gpa)) / kPageSize;
  if (last / 8 >= size_) {
    LOG_EVERY_N(WARNING, 100) << "dirty log of " << size_ << " bytes does not cover gpa 0x"
                              << std::hex << gpa << "+0x" << len;
    if (first / 8 >= size_) return;
    last = size_ * 8 - 1;
  }
  // One atomic OR per byte of the bitmap (8 pages). Release: the front end, which takes bits
  // with an atomic exchange before it copies their pages, then sees the data written before.
  for (uint64_t page = first; page <= last;) {
    const uint64_t byte = page / 8;
    const uint64_t end = std::min(last, byte * 8 + 7);
    const uint8_t mask = static_cast<uint8_t>((0xffu << (page % 8)) & (0xffu >> (7 - end % 8)));
    __atomic_fetch_or(&bits_[byte], mask, __ATOMIC_RELEASE);
    page = end + 1;
  }
}

}  // namespace vhost
