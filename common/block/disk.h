// The host side of a block device: a file, a block device, or nothing at all (null). Each
// virtqueue has one IoRing (io_ring.h), shared by every disk the queue serves; each disk submits
// to it through its own DiskQueue, a view holding no resources of its own.
#ifndef COMMON_BLOCK_DISK_H_
#define COMMON_BLOCK_DISK_H_

#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/block/io_ring.h"
#include "common/virtio/guest_memory.h"

namespace vhost {

// One disk's operations on one IoRing. Submit* queue an operation (false: the ring is full, try
// after a completion); the ring's Commit() starts them and its Reap() reports them with their
// token and result (bytes transferred, or -errno). Not thread-safe: the ring's worker uses it.
class DiskQueue {
 public:
  virtual ~DiskQueue() = default;
  virtual bool SubmitRead(const IovecList& buffers, uint64_t offset, uint64_t token) = 0;
  // `sync`: the data is on stable storage when the write completes (write-through).
  virtual bool SubmitWrite(const IovecList& buffers, uint64_t offset, bool sync,
                           uint64_t token) = 0;
  virtual bool SubmitFlush(uint64_t token) = 0;
};

class Disk {
 public:
  virtual ~Disk() = default;
  virtual uint64_t size_bytes() const = 0;
  virtual bool is_block_device() const { return false; }
  // A ring suited to this disk, for a device serving it alone (blk): on io_uring where the disk
  // was opened for it. Devices sharing rings between disks make theirs with IoRing::Create.
  virtual std::unique_ptr<IoRing> NewRing(uint32_t depth) {
    return IoRing::Create(depth, /*use_io_uring=*/false);
  }
  // This disk's operations on `ring` (any kind). No syscall: made at any time, after the
  // seccomp filter too (a LUN added at run time). Outlived by the ring and the disk. Operations
  // queued and not yet committed name the disk's fds by number: Commit (or Drain) the ring
  // before the disk closes them (once submitted, the kernel holds the files).
  virtual std::unique_ptr<DiskQueue> NewQueue(IoRing& ring) = 0;
  // Synchronous, rare operations. `unmap`: the range may be deallocated.
  virtual absl::Status Discard(uint64_t offset, uint64_t length) = 0;
  virtual absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool unmap) = 0;
  // Re-reads the size (the backing file may have grown). Returns the new size.
  virtual absl::StatusOr<uint64_t> Refresh() = 0;
};

}  // namespace vhost

#endif  // COMMON_BLOCK_DISK_H_
