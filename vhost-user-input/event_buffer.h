// Events waiting for the guest, between a producer thread (the host device or the virtual
// device's commands) and the event queue's worker. Events become visible a whole report at a time
// (at SYN_REPORT), and each such report wakes the event queue's worker. The buffer is bounded:
// while the guest queues no buffers, events are kept up to the bound; a report that does not fit
// is dropped whole, and the drop is logged.
#ifndef VHOST_USER_INPUT_EVENT_BUFFER_H_
#define VHOST_USER_INPUT_EVENT_BUFFER_H_

#include <linux/virtio_input.h>

#include <cstddef>
#include <deque>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/device/queue_context.h"

namespace vhost {

class EventBuffer {
 public:
  explicit EventBuffer(size_t capacity);

  // The event queue's context, woken whenever a report becomes ready; null while the queue is
  // stopped. Once this returns, no producer touches the previous context.
  void SetWaker(QueueContext* context);

  // Producer side.
  void Add(uint16_t type, uint16_t code, int32_t value);

  // Consumer side: copies up to `max` ready events (without removing them), then Consume(n)
  // removes the first n once they are in the guest's buffers.
  size_t Peek(virtio_input_event* out, size_t max) const;
  void Consume(size_t n);
  size_t ready() const;
  uint64_t dropped_reports() const;

 private:
  const size_t capacity_;
  mutable absl::Mutex mutex_;
  QueueContext* waker_ ABSL_GUARDED_BY(mutex_) = nullptr;
  std::deque<virtio_input_event> ready_ ABSL_GUARDED_BY(mutex_);
  std::vector<virtio_input_event> partial_ ABSL_GUARDED_BY(mutex_);  // the report being built
  uint64_t dropped_ ABSL_GUARDED_BY(mutex_) = 0;
};

}  // namespace vhost

#endif  // VHOST_USER_INPUT_EVENT_BUFFER_H_
