// The ring a virtqueue's disk I/O runs on, shared by every disk the queue serves (blk's one disk,
// scsi's LUNs): io_uring with its completion eventfd, or, where io_uring is unavailable,
// operations done at submission. Disks submit to it through their DiskQueue views (disk.h).
#ifndef COMMON_BLOCK_IO_RING_H_
#define COMMON_BLOCK_IO_RING_H_

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

struct io_uring;
struct io_uring_sqe;

namespace vhost {

// Sets up `ring` (`depth` entries) as the ring's io_uring: completions signal `event_fd`, and
// the kernel runs only readv, writev and fsync on it, without SQE flags (IORING_REGISTER_
// RESTRICTIONS). An error (e.g. a kernel before 5.10) means the caller does without io_uring.
absl::Status InitDiskRing(uint32_t depth, int event_fd, io_uring* ring);

// Commit() starts everything the views queued; Reap() reports finished operations with their
// token and result (bytes transferred, or -errno), whichever disk submitted them. Tokens are
// the submitter's (one ring's tokens must tell its disks' operations apart). Not thread-safe:
// one queue worker uses the ring and its views. This base completes every operation at
// submission (the synchronous fallback, the null disk); Create makes the io_uring kind.
class IoRing {
 public:
  // On io_uring where `use_io_uring` and the kernel allow (logging why not otherwise), else
  // the synchronous kind, which has no fd. Made before the seccomp filter, which forbids
  // io_uring_setup; the views on it can be made at any time.
  static std::unique_ptr<IoRing> Create(uint32_t depth, bool use_io_uring);
  virtual ~IoRing() = default;
  IoRing(const IoRing&) = delete;
  IoRing& operator=(const IoRing&) = delete;

  // An eventfd that fires when operations complete (-1 if every operation completes at
  // submission). Reap does not reset it: wait on it edge-triggered. Drain leaves it clear.
  virtual int event_fd() const { return -1; }
  virtual void Commit() {}
  // Whether Reap would report something now (no syscall).
  virtual bool HasCompletions() const { return !inline_done_.empty(); }
  virtual void Reap(absl::FunctionRef<void(uint64_t token, int64_t result)> done) {
    ReapInline(done);
  }
  // Blocks until every submitted operation has completed, reporting them like Reap.
  virtual void Drain(absl::FunctionRef<void(uint64_t token, int64_t result)> done) { Reap(done); }

  // For the DiskQueues submitting to this ring.
  bool on_io_uring() const { return on_io_uring_; }
  // The next submission entry, counted in flight until reaped (null: the ring is full, or not
  // on io_uring).
  virtual io_uring_sqe* NextSqe() { return nullptr; }
  // An operation done at submission, reported by the next Reap.
  void CompleteInline(uint64_t token, int64_t result) { inline_done_.emplace_back(token, result); }

 protected:
  IoRing(uint32_t depth, bool on_io_uring) : on_io_uring_(on_io_uring) {
    inline_done_.reserve(depth);
  }
  void ReapInline(absl::FunctionRef<void(uint64_t, int64_t)> done) {
    for (const auto& [token, result] : inline_done_) done(token, result);
    inline_done_.clear();
  }

 private:
  const bool on_io_uring_;
  std::vector<std::pair<uint64_t, int64_t>> inline_done_;
};

}  // namespace vhost

#endif  // COMMON_BLOCK_IO_RING_H_
