// virtio-rng (virtio 1.2 §5.4): one request queue; each chain's writable part is filled with
// entropy, optionally within a byte budget per period.
#ifndef VHOST_USER_RNG_RNG_DEVICE_H_
#define VHOST_USER_RNG_RNG_DEVICE_H_

#include <functional>
#include <memory>

#include "absl/types/optional.h"
#include "common/device.h"
#include "vhost-user-rng/entropy_source.h"
#include "vhost-user-rng/rate_limiter.h"

namespace vhost {

constexpr uint32_t kVirtioIdRng = 4;

class RngDevice : public VirtioDevice {
 public:
  // `now` is injectable for tests of the rate limit.
  RngDevice(std::unique_ptr<EntropySource> source, absl::optional<RateLimiter> limiter,
            std::function<absl::Time()> now = absl::Now);

  DeviceInfo Info() const override;
  absl::Duration ProcessQueue(Virtqueue& queue) override;
  void QueueStopped(int index, Virtqueue* queue) override;
  void Reset() override { has_pending_ = false; }

 private:
  std::unique_ptr<EntropySource> source_;
  absl::optional<RateLimiter> limiter_;
  std::function<absl::Time()> now_;
  // A request popped but not yet answered (the rate limit or a slow source held it back).
  DescriptorChain pending_;
  bool has_pending_ = false;
  bool reported_exhausted_ = false;
};

}  // namespace vhost

#endif  // VHOST_USER_RNG_RNG_DEVICE_H_
