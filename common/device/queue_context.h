// What a device sees of one started queue: its ring, the fds it wants to wait on, a wake-up any
// thread may send, and the chains it took and has not completed. Those chains are owned here,
// not by the device, so the engine knows every request in flight: a stop waits for all of them
// (the ring position reported to the front end is then exact), whichever thread completes them.
//
// Threads: Take and GiveBack run on the thread serving the queue (its worker, or the connection
// thread in QueueStarted/QueueStopped). Complete, Submit, Watch, Unwatch and Wake may be called
// from any thread (vsock's tx worker watches the host sockets it connects on the rx context).
#ifndef COMMON_DEVICE_QUEUE_CONTEXT_H_
#define COMMON_DEVICE_QUEUE_CONTEXT_H_

#include <sys/epoll.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/base/unique_fd.h"
#include "common/device/inflight.h"
#include "common/device/work_pool.h"
#include "common/virtio/descriptor_chain.h"
#include "common/virtio/virtqueue.h"

namespace vhost {

// What ProcessQueue asks of its worker.
class QueueResult {
 public:
  enum class Kind {
    // The device took every chain the ring offered (it may still hold some in flight): the
    // worker sleeps until a kick, a wake-up or a watched fd, busy-polling first if configured.
    kDrained,
    // The device stopped taking chains until its own event (a watched fd or Wake): all its I/O
    // slots are busy, or an event queue's buffers wait for events that have not happened. The
    // chains stay in the ring and are not spun on; a kick still calls ProcessQueue.
    kBlocked,
    // Call again after delay() even if nothing happens (a rate limit, a source to retry).
    kRetryAfter,
  };
  static QueueResult Drained() { return QueueResult(Kind::kDrained, absl::InfiniteDuration()); }
  static QueueResult Blocked() { return QueueResult(Kind::kBlocked, absl::InfiniteDuration()); }
  static QueueResult RetryAfter(absl::Duration delay) {
    return QueueResult(Kind::kRetryAfter, delay);
  }
  Kind kind() const { return kind_; }
  absl::Duration delay() const { return delay_; }

 private:
  QueueResult(Kind kind, absl::Duration delay) : kind_(kind), delay_(delay) {}
  Kind kind_;
  absl::Duration delay_;
};

// Which chain in flight: an index into the context's table, valid until Complete/GiveBack.
using ChainToken = uint32_t;

class QueueContext {
 public:
  // Called on the serving thread with the events epoll reported for a watched fd.
  using FdHandler = std::function<void(uint32_t events)>;
  // Serves a chain off the serving thread; returns the bytes written into it.
  using Work = std::function<uint32_t(const DescriptorChain& chain)>;

  // `pool` (may be null: Submit then works inline) must outlive the context.
  static absl::StatusOr<std::unique_ptr<QueueContext>> Create(Virtqueue* queue, WorkPool* pool);
  ~QueueContext();

  Virtqueue& queue() { return *queue_; }
  int index() const { return queue_->index(); }

  // ---- event sources
  // Makes ProcessQueue run whenever `fd` has `events` (level-triggered unless EPOLLET is
  // given); `handler`, if set, runs first with the events. ProcessQueue (or the handler) must
  // consume what made the fd ready. A handler may still run once after an Unwatch from another
  // thread. The fd stays the device's; it must stay open until unwatched or the queue stops.
  absl::Status Watch(int fd, uint32_t events = EPOLLIN, FdHandler handler = nullptr);
  void Unwatch(int fd);
  // Any thread: the worker calls ProcessQueue soon (wake-ups before it runs are merged). On the
  // serving thread itself (a queue of a WorkerGroup waking another) it only sets a flag that
  // the worker looks at after each call: no eventfd, no trip through epoll.
  void Wake();

  // ---- chains in flight
  // Tracks the chains in flight in `inflight` (the front end's region, see inflight.h; it must
  // outlive the context), before anything was taken. Chains a previous back end left in flight
  // there are taken first, oldest first, and the avail ring skips them. An error (a region that
  // breaks the rules) leaves the queue untracked; the caller breaks it.
  absl::Status TrackInflight(std::unique_ptr<InflightQueue> inflight);
  // The same for a packed ring. The ring's position becomes the region's (the front end's
  // base is stale after a crash), and the recovered chains are rebuilt from the descriptors
  // the region saved, checked as ring descriptors are.
  absl::Status TrackInflight(std::unique_ptr<InflightQueuePacked> inflight);
  // Chains recovered from the region and not yet taken again.
  size_t resubmit_pending() const { return resubmit_.size() + resubmit_packed_.size(); }

  // Takes the next chain the guest made available; it is in flight until Complete or GiveBack.
  // Empty when there is none, the queue is broken, or the guest broke the ring's rules (a chain
  // made available again while in flight, more chains than the ring holds): the queue breaks.
  absl::optional<ChainToken> Take();
  const DescriptorChain& chain(ChainToken token) const { return slots_[token].chain; }
  // Puts back the chain taken last, untouched, before anything else was completed: the guest's
  // ring offers it again (after a restart too). Repeatable in reverse order of Take.
  void GiveBack(ChainToken token);
  // The chain is done with `written` bytes in its writable part. On the serving thread it goes
  // to the ring at once; from another thread it is queued and the worker woken to push it.
  void Complete(ChainToken token, uint32_t written);
  // Runs `work` on the engine's pool (at once on this thread without one) and completes the
  // chain with its result.
  void Submit(ChainToken token, Work work);
  size_t in_flight() const { return in_flight_.load(std::memory_order_acquire); }

  // Waits until nothing is in flight, pushing completions as they come (pool work of this queue
  // that no thread has started runs here). Called on the serving thread when the queue stops.
  void FinishInFlight();

  // ---- for the engine (QueueWorker, Backend) and test fixtures
  int epoll_fd() const { return epoll_.get(); }
  // Which thread serves the queue now: Complete on it pushes directly.
  void BecomeServingThread();
  // A Wake on the serving thread not yet acted on: TakeLocalWake clears it.
  bool HasLocalWake() const { return local_wake_.load(std::memory_order_relaxed); }
  bool TakeLocalWake() { return local_wake_.exchange(false, std::memory_order_relaxed); }
  // Whether completions from other threads wait to be pushed.
  bool HasPosted() const { return has_posted_.load(std::memory_order_acquire); }
  // Pushes completions queued by other threads.
  void PushPosted();
  // Handles one epoll event of this context's set. Returns true if it was a device fd or a
  // wake-up (ProcessQueue should run). `data` is the event's data.ptr.
  bool Dispatch(void* data, uint32_t events);
  // Drops every watched fd (the queue stopped).
  void UnwatchAll();
  // Frees what Unwatch left for the serving thread; call when no epoll event in hand names it.
  void FreeUnwatched();

 private:
  struct Slot {
    DescriptorChain chain;
    bool in_flight = false;
    bool resubmitted = false;              // taken from the inflight region, not the avail ring
    uint16_t record = 0;                   // packed: the chain's head record in the region
    std::vector<vring_packed_desc> saved;  // packed, resubmitted: as the region had it
  };
  struct Watcher {
    int fd;
    FdHandler handler;
    std::atomic<bool> live{true};
  };

  QueueContext(Virtqueue* queue, WorkPool* pool) : queue_(queue), pool_(pool) {}
  void Push(ChainToken token, uint32_t written);
  void AddInFlight(int delta);
  bool OnServingThread() const;

  Virtqueue* const queue_;
  WorkPool* const pool_;
  UniqueFd epoll_;
  UniqueFd wake_;
  Watcher wake_watcher_{-1, nullptr};  // the wake eventfd's epoll tag
  std::atomic<bool> wake_pending_{false};
  std::atomic<bool> local_wake_{false};  // set and read by the serving thread (atomic: it moves)
  std::atomic<pid_t> serving_tid_{0};

  // Serving thread only.
  std::vector<Slot> slots_;                  // one per ring entry
  std::vector<ChainToken> free_;             // slots not in flight
  std::vector<bool> head_in_flight_;         // by chain head (buffer id for packed rings)
  std::atomic<size_t> in_flight_{0};         // written by the serving thread, read by any
  std::unique_ptr<InflightQueue> inflight_;  // null: not tracked
  std::vector<uint16_t> resubmit_;           // heads to take before the avail ring, last first
  std::unique_ptr<InflightQueuePacked> inflight_packed_;     // null: not tracked (or split)
  std::vector<InflightQueuePacked::Chain> resubmit_packed_;  // the same for packed, last first

  std::mutex mu_;  // guards what other threads touch
  std::vector<std::pair<ChainToken, uint32_t>> posted_;
  std::atomic<bool> has_posted_{false};
  std::map<int, std::unique_ptr<Watcher>> watchers_;
  std::vector<std::unique_ptr<Watcher>> dead_watchers_;  // freed by the serving thread
  std::atomic<bool> has_dead_watchers_{false};
  std::condition_variable posted_cv_;
};

}  // namespace vhost

#endif  // COMMON_DEVICE_QUEUE_CONTEXT_H_
