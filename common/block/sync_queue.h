// A DiskQueue doing plain preadv/pwritev/fdatasync on the queue's worker thread: the fallback
// where io_uring is unavailable (old kernels, or containers whose seccomp profile forbids it).
#ifndef COMMON_BLOCK_SYNC_QUEUE_H_
#define COMMON_BLOCK_SYNC_QUEUE_H_

#include <utility>
#include <vector>

#include "common/block/disk.h"

namespace vhost {

class SyncQueue : public DiskQueue {
 public:
  // `direct_fd` (or -1) is used for requests aligned to `alignment`, `fd` for the others.
  SyncQueue(uint32_t depth, int fd, int direct_fd, uint32_t alignment);

  int event_fd() const override { return -1; }
  bool SubmitRead(const IovecList& buffers, uint64_t offset, uint64_t token) override;
  bool SubmitWrite(const IovecList& buffers, uint64_t offset, bool sync, uint64_t token) override;
  bool SubmitFlush(uint64_t token) override;
  void Commit() override {}
  bool HasCompletions() const override { return !done_.empty(); }
  void Reap(absl::FunctionRef<void(uint64_t, int64_t)> done) override;
  void Drain(absl::FunctionRef<void(uint64_t, int64_t)> done) override { Reap(done); }

 private:
  int FdFor(const IovecList& buffers, uint64_t offset) const;

  const int fd_;
  const int direct_fd_;
  const uint32_t alignment_;
  std::vector<std::pair<uint64_t, int64_t>> done_;
};

// preadv/pwritev until the whole transfer is done (or fails: -errno; short at end of file).
int64_t ReadAll(int fd, const IovecList& buffers, uint64_t offset);
int64_t WriteAll(int fd, const IovecList& buffers, uint64_t offset);

// Whether buffers and offset suit O_DIRECT at `alignment`.
bool AlignedForDirectIo(const IovecList& buffers, uint64_t offset, uint32_t alignment);

}  // namespace vhost

#endif  // COMMON_BLOCK_SYNC_QUEUE_H_
