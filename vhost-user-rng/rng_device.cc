#include "vhost-user-rng/rng_device.h"

#include <algorithm>
#include <limits>

#include "common/virtio/features.h"
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
  // Entropy requests can be served again after a crash: the guest waits for fresh bytes.
  info.resubmit_queues = DeviceInfo::kAllQueues;
  return info;
}

QueueResult RngDevice::ProcessQueue(QueueContext& context) {
  for (;;) {
    const absl::optional<ChainToken> token = context.Take();
    if (!token) return QueueResult::Drained();
    const DescriptorChain& chain = context.chain(*token);
    uint64_t allowed = std::numeric_limits<uint64_t>::max();
    if (limiter_) {
      allowed = limiter_->Available(now_());
      if (allowed == 0) {
        // Over budget: the request waits in the ring for the next period.
        context.GiveBack(*token);
        return QueueResult::RetryAfter(limiter_->UntilRefill(now_()));
      }
    }
    const size_t want = std::min<uint64_t>(allowed, chain.writable_bytes);
    size_t written = 0;
    if (want > 0) {
      absl::StatusOr<size_t> filled = source_->Fill(chain.writable, want);
      if (absl::IsUnavailable(filled.status())) {
        // Nothing written yet: the request waits in the ring until the source has data.
        context.GiveBack(*token);
        return QueueResult::RetryAfter(kSourceRetry);
      }
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
    context.Complete(*token, written);
  }
}

}  // namespace vhost
