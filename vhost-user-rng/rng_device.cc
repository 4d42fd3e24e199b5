#include "vhost-user-rng/rng_device.h"

#include <limits>

#include "common/message.h"
#include "glog/logging.h"

namespace vhost {
namespace {

// How soon to look again when a non-blocking source had nothing.
constexpr absl::Duration kSourceRetry = absl::Milliseconds(5);

}  // namespace

RngDevice::RngDevice(std::unique_ptr<EntropySource> source, absl::optional<RateLimiter> limiter,
                     std::function<absl::Time()> now)
    : source_(std::move(source)), limiter_(std::move(limiter)), now_(std::move(now)) {}

DeviceInfo RngDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdRng;
  info.num_queues = 1;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1);
  return info;
}

void RngDevice::QueueStopped(int index, Virtqueue* queue) {
  // A request held back (rate limit, slow source) is handed back, to be served after a restart.
  if (has_pending_ && queue != nullptr) queue->Unpop(pending_);
  has_pending_ = false;
}

absl::Duration RngDevice::ProcessQueue(Virtqueue& queue) {
  for (;;) {
    // Within the rate limit's budget first, so no request is held while waiting for it.
    if (limiter_ && !has_pending_ && queue.HasAvailable() && limiter_->Available(now_()) == 0) {
      return limiter_->UntilRefill(now_());
    }
    if (!has_pending_) {
      if (!queue.Pop(&pending_)) return absl::InfiniteDuration();
      has_pending_ = true;
    }
    uint64_t allowed = std::numeric_limits<uint64_t>::max();
    if (limiter_) {
      allowed = limiter_->Available(now_());
      if (allowed == 0) return limiter_->UntilRefill(now_());
    }
    const size_t want = std::min<uint64_t>(allowed, pending_.writable_bytes);
    size_t written = 0;
    if (want > 0) {
      absl::StatusOr<size_t> filled = source_->Fill(pending_.writable, want);
      if (absl::IsUnavailable(filled.status())) return kSourceRetry;
      if (!filled.ok()) {
        LOG_EVERY_N(ERROR, 1000) << "entropy source failed: " << filled.status();
      } else {
        written = *filled;
        if (written == 0 && !reported_exhausted_) {
          LOG(ERROR) << "entropy source is exhausted; requests get no data";
          reported_exhausted_ = true;
        }
      }
    }
    if (limiter_) limiter_->Consume(written);
    queue.Push(pending_, written);
    has_pending_ = false;
  }
}

}  // namespace vhost
