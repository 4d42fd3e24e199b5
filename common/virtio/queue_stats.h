// What one queue has done, for a user watching a running daemon (the stats socket, issue 19):
// counters the queue's serving thread adds to and any thread reads. They live as long as the
// device's queue does, across ring restarts and front ends, so rates can be taken between reads.
//
// Cost on the hot path: each counter has one writer (the thread serving the queue), so an add is
// a relaxed load and store, never a locked read-modify-write; each queue's counters fill their
// own cache lines, so queues on different CPUs do not share a line.
#ifndef COMMON_VIRTIO_QUEUE_STATS_H_
#define COMMON_VIRTIO_QUEUE_STATS_H_

#include <atomic>
#include <cstdint>

namespace vhost {

// A counter with one writing thread; readable from any thread.
class StatCounter {
 public:
  void Add(uint64_t n) {
    value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  // For the rare events any thread may count (a queue breaking).
  void AddShared(uint64_t n) { value_.fetch_add(n, std::memory_order_relaxed); }
  void Set(uint64_t n) { value_.store(n, std::memory_order_relaxed); }
  uint64_t Get() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

struct alignas(64) QueueStats {
  StatCounter requests;        // chains completed (returned to the guest)
  StatCounter bytes_in;        // bytes the guest offered to be read (readable parts taken)
  StatCounter bytes_out;       // bytes written into the guest's buffers
  StatCounter kicks;           // the guest's notifications (eventfd counts, merged or not)
  StatCounter notifications;   // interrupts sent to the guest (call eventfd writes)
  StatCounter suppressed;      // completions the guest asked not to be interrupted for
  StatCounter busy_poll_hits;  // times busy-polling found work before sleeping
  StatCounter errors;          // times the queue broke (a guest breaking the ring's rules)
  StatCounter in_flight;       // chains taken and not completed (a gauge)
  StatCounter starts;          // times the queue was started
};

}  // namespace vhost

#endif  // COMMON_VIRTIO_QUEUE_STATS_H_
