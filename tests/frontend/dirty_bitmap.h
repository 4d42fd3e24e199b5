// The dirty log of a live migration as QEMU keeps it (VHOST_F_LOG_ALL with LOG_SHMFD): a
// memfd sealed against shrinking that the back end maps (Frontend::SetLogBase), one bit per
// 4 KiB page of guest-physical memory, which the front end reads and clears.
#ifndef TESTS_FRONTEND_DIRTY_BITMAP_H_
#define TESTS_FRONTEND_DIRTY_BITMAP_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"

namespace vhost {
namespace frontend {

class DirtyBitmap {
 public:
  static constexpr uint64_t kPageSize = 4096;
  // A bitmap covering guest-physical [0, guest_bytes), rounded up to 64-bit words as QEMU's.
  static absl::StatusOr<std::unique_ptr<DirtyBitmap>> Create(uint64_t guest_bytes);
  ~DirtyBitmap();
  DirtyBitmap(const DirtyBitmap&) = delete;
  DirtyBitmap& operator=(const DirtyBitmap&) = delete;

  int fd() const { return fd_.get(); }
  uint64_t size() const { return size_; }  // bytes
  bool IsDirty(uint64_t gpa) const;
  // Whether every page of [gpa, gpa + len) is dirty.
  bool AllDirty(uint64_t gpa, uint64_t len) const;
  // The dirty pages (page numbers), clearing their bits as QEMU does when it collects them.
  std::vector<uint64_t> Take();

 private:
  DirtyBitmap(UniqueFd fd, uint64_t* bits, uint64_t size)
      : fd_(std::move(fd)), bits_(bits), size_(size) {}
  UniqueFd fd_;
  uint64_t* bits_;
  uint64_t size_;
};

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_DIRTY_BITMAP_H_
