// A DiskQueue on io_uring: one submission ring per virtqueue, completions signalled on an
// eventfd that the queue's worker waits on together with the guest's kicks.
#ifndef COMMON_BLOCK_URING_QUEUE_H_
#define COMMON_BLOCK_URING_QUEUE_H_

#include <liburing.h>

#include <utility>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/block/disk.h"

namespace vhost {

// Sets up `ring` (`depth` entries) as UringQueue uses it: completions signal `event_fd`, and
// the kernel runs only readv, writev and fsync on it, without SQE flags (IORING_REGISTER_
// RESTRICTIONS). An error (e.g. a kernel before 5.10) means the caller does without io_uring.
absl::Status InitDiskRing(uint32_t depth, int event_fd, io_uring* ring);

class UringQueue : public DiskQueue {
 public:
  // `direct_fd` (or -1) is used for requests aligned to `alignment`, `fd` for the others.
  static absl::StatusOr<std::unique_ptr<DiskQueue>> Create(uint32_t depth, int fd, int direct_fd,
                                                           uint32_t alignment);
  ~UringQueue() override;

  int event_fd() const override { return event_fd_.get(); }
  bool SubmitRead(const IovecList& buffers, uint64_t offset, uint64_t token) override;
  bool SubmitWrite(const IovecList& buffers, uint64_t offset, bool sync, uint64_t token) override;
  bool SubmitFlush(uint64_t token) override;
  void Commit() override;
  bool HasCompletions() const override {
    return !inline_done_.empty() || io_uring_cq_ready(const_cast<io_uring*>(&ring_)) > 0;
  }
  void Reap(absl::FunctionRef<void(uint64_t, int64_t)> done) override;
  void Drain(absl::FunctionRef<void(uint64_t, int64_t)> done) override;

 private:
  UringQueue(int fd, int direct_fd, uint32_t alignment)
      : fd_(fd), direct_fd_(direct_fd), alignment_(alignment) {}
  int FdFor(const IovecList& buffers, uint64_t offset) const;
  io_uring_sqe* NextSqe();

  io_uring ring_{};
  bool ring_ready_ = false;
  UniqueFd event_fd_;
  const int fd_;
  const int direct_fd_;
  const uint32_t alignment_;
  uint32_t in_flight_ = 0;  // submitted (or queued) and not yet reaped
  // Writes done inline (see SubmitWrite), reported by the next Reap.
  std::vector<std::pair<uint64_t, int64_t>> inline_done_;
};

}  // namespace vhost

#endif  // COMMON_BLOCK_URING_QUEUE_H_
