// The dirty-page log of live migration (vhost-user VHOST_F_LOG_ALL with
// VHOST_USER_PROTOCOL_F_LOG_SHMFD): a bitmap in memory shared with the front end, one bit per
// 4 KiB page of guest-physical memory (bit `page % 8` of byte `page / 8`). The device sets the
// bit of every page it writes, after the write; the front end collects and clears bits while it
// copies guest memory to the destination, so a page written after its copy is sent again.
//
// Thread-safe: any number of threads may Mark at once (atomic OR, as the front end clears bits
// concurrently).
#ifndef COMMON_VIRTIO_DIRTY_LOG_H_
#define COMMON_VIRTIO_DIRTY_LOG_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace vhost {

class DirtyLog {
 public:
  static constexpr uint64_t kPageSize = 4096;

  // Bytes of bitmap that cover guest-physical addresses below `end_gpa`.
  static uint64_t BytesFor(uint64_t end_gpa);

  // Maps `size` bytes at `offset` of `fd` (SET_LOG_BASE; the fd stays the caller's). The front
  // end is not trusted: the file must be sealed against shrinking (as QEMU's log memfd is; a
  // shrunk file would fault us) and hold the range, and `size` must cover `min_size` bytes.
  static absl::StatusOr<std::unique_ptr<DirtyLog>> Map(int fd, uint64_t size, uint64_t offset,
                                                       uint64_t min_size);
  ~DirtyLog();
  DirtyLog(const DirtyLog&) = delete;
  DirtyLog& operator=(const DirtyLog&) = delete;

  // Marks the pages of [gpa, gpa + len) dirty. Pages beyond the bitmap are not marked (a front
  // end that grew its memory past its log): logged, rate-limited.
  void Mark(uint64_t gpa, uint64_t len) const;
  uint64_t size() const { return size_; }

 private:
  DirtyLog(uint8_t* mapping, uint64_t mapping_size, uint8_t* bits, uint64_t size)
      : mapping_(mapping), mapping_size_(mapping_size), bits_(bits), size_(size) {}

  uint8_t* const mapping_;
  const uint64_t mapping_size_;
  uint8_t* const bits_;
  const uint64_t size_;
};

}  // namespace vhost

#endif  // COMMON_VIRTIO_DIRTY_LOG_H_
