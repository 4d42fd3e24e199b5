// The host side of a block device: a file, a block device, or nothing at all (null). Each queue
// gets its own DiskQueue so queues never share a lock or a submission ring.
#ifndef COMMON_BLOCK_DISK_H_
#define COMMON_BLOCK_DISK_H_

#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/virtio/guest_memory.h"

namespace vhost {

// Asynchronous I/O for one queue. Submit* queue an operation (false: no room, try after a
// completion); Commit() starts everything queued; Reap() reports finished operations with their
// token and result (bytes transferred, or -errno). Not thread-safe: one queue worker uses it.
class DiskQueue {
 public:
  virtual ~DiskQueue() = default;
  // An eventfd that fires when operations complete (-1 if every operation completes at Commit).
  // Reap does not reset it: wait on it edge-triggered. Drain leaves it clear.
  virtual int event_fd() const = 0;
  virtual bool SubmitRead(const IovecList& buffers, uint64_t offset, uint64_t token) = 0;
  // `sync`: the data is on stable storage when the write completes (write-through).
  virtual bool SubmitWrite(const IovecList& buffers, uint64_t offset, bool sync,
                           uint64_t token) = 0;
  virtual bool SubmitFlush(uint64_t token) = 0;
  virtual void Commit() = 0;
  // Whether Reap would report something now (no syscall).
  virtual bool HasCompletions() const = 0;
  virtual void Reap(absl::FunctionRef<void(uint64_t token, int64_t result)> done) = 0;
  // Blocks until every submitted operation has completed, reporting them like Reap.
  virtual void Drain(absl::FunctionRef<void(uint64_t token, int64_t result)> done) = 0;
};

class Disk {
 public:
  virtual ~Disk() = default;
  virtual uint64_t size_bytes() const = 0;
  virtual bool is_block_device() const { return false; }
  virtual absl::StatusOr<std::unique_ptr<DiskQueue>> NewQueue(uint32_t depth) = 0;
  // Synchronous, rare operations. `unmap`: the range may be deallocated.
  virtual absl::Status Discard(uint64_t offset, uint64_t length) = 0;
  virtual absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool unmap) = 0;
  // Re-reads the size (the backing file may have grown). Returns the new size.
  virtual absl::StatusOr<uint64_t> Refresh() = 0;
};

}  // namespace vhost

#endif  // COMMON_BLOCK_DISK_H_
