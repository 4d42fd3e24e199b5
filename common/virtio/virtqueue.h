// The device side of one virtqueue (split or packed ring) in guest memory.
//
// Every index and address read from the rings is checked before use, and each descriptor is
// copied out of shared memory once before it is validated (the guest may rewrite it meanwhile).
// A malformed ring marks the queue broken: it is logged once, the front end's error eventfd is
// signalled, and the queue processes nothing more until it is set up again.
//
// Not thread-safe: one thread (the queue's worker) uses a Virtqueue at a time.
#ifndef COMMON_VIRTIO_VIRTQUEUE_H_
#define COMMON_VIRTIO_VIRTQUEUE_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/virtio/descriptor_chain.h"
#include "common/virtio/features.h"
#include "common/virtio/guest_memory.h"
#include "common/virtio/queue_stats.h"
#include "common/virtio/virtio_ring_defs.h"

namespace vhost {

class DirtyLog;

constexpr uint32_t kMaxQueueSize = 32768;

// What the front end told us about a ring (SET_VRING_NUM/ADDR/BASE).
struct VringLayout {
  uint32_t size = 0;
  uint64_t desc_addr = 0;   // front-end virtual addresses
  uint64_t avail_addr = 0;  // packed: driver event suppression area
  uint64_t used_addr = 0;   // packed: device event suppression area
  uint32_t base = 0;        // split: next avail index; packed: index | wrap counter << 15
};

class Virtqueue {
 public:
  // Checks the layout (size, alignment, every ring inside guest memory) and builds the queue.
  static absl::StatusOr<std::unique_ptr<Virtqueue>> Create(
      int index, const VringLayout& layout, uint64_t features,
      std::shared_ptr<const GuestMemory> memory);
  virtual ~Virtqueue() = default;

  // Takes the next available chain. Returns false when there is none or the queue is broken.
  virtual bool Pop(DescriptorChain* chain) = 0;
  // Puts back the chain popped last, untouched: it will be popped again (e.g. after a restart).
  // Repeatable for the chains popped before it, in reverse order, as long as none of them was
  // pushed.
  virtual void Unpop(const DescriptorChain& chain) = 0;
  // Returns a chain to the guest with `written` bytes written into its writable part.
  virtual void Push(const DescriptorChain& chain, uint32_t written) = 0;
  // Whether a chain is waiting (no side effects).
  virtual bool HasAvailable() = 0;
  // Asks the guest to kick for new buffers; returns true if some arrived in the meantime, in
  // which case the caller must drain again (else a kick could be lost).
  virtual bool EnableNotifications() = 0;
  // Signals the guest (call eventfd) if it has asked to be told about the used entries pushed
  // since the last call. Call once per batch. Also where a fault in this queue's guest memory
  // (see guest_memory.h) breaks the queue: one relaxed atomic load while none happened.
  void NotifyGuestIfNeeded();
  // The ring position for GET_VRING_BASE (same encoding as VringLayout::base).
  virtual uint32_t Base() const = 0;

  // For resubmitting chains a previous back end took and never completed (inflight I/O
  // tracking, split rings only; the packed ring answers false / 0 / nothing):
  // Reads the chain that starts at descriptor `head` without touching the avail ring. A bad
  // chain breaks the queue.
  virtual bool PopAt(uint16_t head, DescriptorChain* chain) { return false; }
  // The used index the device last published.
  virtual uint16_t UsedIndex() const { return 0; }
  // Makes `next` the next avail index to pop (the front end's base counted chains that are
  // resubmitted instead).
  virtual void SetNextAvail(uint16_t next) {}
  // Packed rings only (the split ring answers false / nothing): the ring position from then on
  // (Base()'s encoding; false if beyond the ring); whether ring slot `slot` holds a descriptor
  // the driver made available in the lap of wrap counter `wrap`; from RecordPopped(true) on,
  // the ring descriptors of the chain Pop took last, as read; and a chain rebuilt from ring
  // descriptors saved earlier, checked as Pop checks the ring's (a bad one breaks the queue).
  virtual bool SetBase(uint32_t base) { return false; }
  virtual bool SlotAvailable(uint16_t slot, bool wrap) const { return false; }
  virtual void RecordPopped(bool on) {}
  virtual absl::Span<const vring_packed_desc> Popped() const { return {}; }
  virtual bool PopSaved(absl::Span<const vring_packed_desc> descs, DescriptorChain* chain) {
    return false;
  }
  // Re-points the rings at a new memory table (same layout); the queue keeps its position. On
  // failure nothing changed: the rings still point into the old table, which the queue keeps.
  absl::Status UpdateMemory(std::shared_ptr<const GuestMemory> memory);

  // Live migration's dirty-page log (dirty_log.h), or none (null, the default: Push then pays
  // one predictable branch). With a log, Push marks the pages of the bytes it reports written
  // into a chain, and with `log_rings` (the ring's VHOST_VRING_F_LOG) the ring memory it writes:
  // a split ring's used ring at `used_log_gpa` (the front end's log_guest_addr), a packed ring's
  // descriptors and event area through the memory table. Set only while nothing else uses the
  // queue (its worker paused); the log must stay until replaced.
  void SetDirtyLog(const DirtyLog* log, bool log_rings, uint64_t used_log_gpa) {
    log_ = log;
    log_rings_ = log_rings;
    used_log_gpa_ = used_log_gpa;
  }

  // Where the queue counts what it does (the device's, kept across restarts; by default its
  // own). Set before the queue is served.
  void set_stats(QueueStats* stats) { stats_ = stats; }
  QueueStats& stats() { return *stats_; }

  void set_call_fd(int fd) { call_fd_ = fd; }
  void set_err_fd(int fd) { err_fd_ = fd; }
  // Once broken, Pop/Push/HasAvailable/EnableNotifications/NotifyGuestIfNeeded touch no ring
  // memory. Read by the connection thread (GET_STATUS) while the worker runs: atomic, relaxed.
  bool broken() const { return broken_.load(std::memory_order_relaxed); }
  int index() const { return index_; }
  uint32_t size() const { return layout_.size; }
  uint64_t features() const { return features_; }
  const GuestMemory& memory() const { return *memory_; }
  // The table itself, for a device that keeps host pointers into guest memory beyond one chain
  // (gpu's 3D resources): holding it keeps those mappings alive after a table change.
  std::shared_ptr<const GuestMemory> shared_memory() const { return memory_; }

  // Marks the queue broken (logged once, error eventfd signalled). Call and error fds are
  // non-blocking (the backend sets O_NONBLOCK): a full one is skipped, never waited on.
  void MarkBroken(const absl::Status& why);

 protected:
  Virtqueue(int index, const VringLayout& layout, uint64_t features)
      : index_(index), layout_(layout), features_(features) {}
  virtual absl::Status MapRings(const GuestMemory& memory) = 0;
  // Whether to interrupt the guest for what was pushed since the last call.
  enum class Notify { kNothingNew, kYes, kSuppressed };
  virtual Notify ShouldNotify() = 0;
  bool has_feature(uint32_t bit) const { return features_ & (uint64_t{1} << bit); }
  // With a log: marks the pages of the first `written` bytes of the chain's writable part.
  void LogWritten(const DescriptorChain& chain, uint32_t written) const;
  // With a log: marks the guest pages of host memory [host, host + len) (one region).
  void LogHostWrite(const void* host, uint64_t len) const;

  const int index_;
  const VringLayout layout_;
  const uint64_t features_;
  std::shared_ptr<const GuestMemory> memory_;
  int call_fd_ = -1;
  int err_fd_ = -1;
  std::atomic<bool> broken_{false};
  uint32_t memory_faults_seen_ = ~0u;
  const DirtyLog* log_ = nullptr;
  QueueStats own_stats_;
  QueueStats* stats_ = &own_stats_;
  bool log_rings_ = false;
  uint64_t used_log_gpa_ = 0;  // GuestMemoryFaultCount() at the last check; ~0: never
};

}  // namespace vhost

#endif  // COMMON_VIRTIO_VIRTQUEUE_H_
