// virtio-rng (virtio 1.2 §5.4): one request queue; each chain's writable part is filled with
// entropy, optionally within a byte budget per period.
#ifndef VHOST_USER_RNG_RNG_DEVICE_H_
#define VHOST_USER_RNG_RNG_DEVICE_H_

#include <functional>
#include <memory>

#include "absl/types/optional.h"
#include "common/device/device.h"
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
  // Holds no chain across calls: one the rate limit or a slow source holds back goes back to
  // the ring, so a stop has nothing to hand back.
  QueueResult ProcessQueue(QueueContext& context) override;

 private:
  std::unique_ptr<EntropySource> source_;
  absl::optional<RateLimiter> limiter_;
  std::function<absl::Time()> now_;
  bool reported_exhausted_ = false;
};

}  // namespace vhost

#endif  // VHOST_USER_RNG_RNG_DEVICE_H_
