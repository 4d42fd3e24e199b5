#include "vhost-user-input/event_buffer.h"

#include <linux/input.h>

#include "glog/logging.h"

namespace vhost {

EventBuffer::EventBuffer(size_t capacity) : capacity_(capacity) {}

void EventBuffer::SetWaker(QueueContext* context) {
  absl::MutexLock lock(&mutex_);
  waker_ = context;
}

void EventBuffer::Add(uint16_t type, uint16_t code, int32_t value) {
  absl::MutexLock lock(&mutex_);
  partial_.push_back({type, code, static_cast<uint32_t>(value)});
  if (type != EV_SYN || code != SYN_REPORT) return;
  if (ready_.size() + partial_.size() > capacity_) {
    // The guest is not taking events: keep what is queued, lose this report whole.
    if (dropped_++ % 100 == 0) {
      LOG(WARNING) << "guest is not reading input; dropped " << dropped_ << " report(s)";
    }
  } else {
    ready_.insert(ready_.end(), partial_.begin(), partial_.end());
    // Under the mutex: SetWaker(nullptr) must not return while a Wake is under way.
    if (waker_ != nullptr) waker_->Wake();
  }
  partial_.clear();
}

size_t EventBuffer::Peek(virtio_input_event* out, size_t max) const {
  absl::MutexLock lock(&mutex_);
  const size_t n = std::min(max, ready_.size());
  std::copy(ready_.begin(), ready_.begin() + n, out);
  return n;
}

void EventBuffer::Consume(size_t n) {
  absl::MutexLock lock(&mutex_);
  ready_.erase(ready_.begin(), ready_.begin() + std::min(n, ready_.size()));
}

size_t EventBuffer::ready() const {
  absl::MutexLock lock(&mutex_);
  return ready_.size();
}

uint64_t EventBuffer::dropped_reports() const {
  absl::MutexLock lock(&mutex_);
  return dropped_;
}

}  // namespace vhost
