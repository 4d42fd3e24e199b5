// A byte budget per period (--max-bytes per --period-ms): each period starts with the full
// budget; unused budget does not carry over.
#ifndef VHOST_USER_RNG_RATE_LIMITER_H_
#define VHOST_USER_RNG_RATE_LIMITER_H_

#include <algorithm>
#include <cstdint>

#include "absl/time/time.h"

namespace vhost {

class RateLimiter {
 public:
  RateLimiter(uint64_t bytes_per_period, absl::Duration period)
      : budget_(bytes_per_period), period_(period) {}

  // Bytes that may be handed out at `now`.
  uint64_t Available(absl::Time now) {
    if (now >= period_end_) {
      // Periods are aligned to the first use after a quiet spell.
      period_end_ = now + period_;
      used_ = 0;
    }
    return budget_ - used_;
  }
  void Consume(uint64_t bytes) { used_ = std::min(budget_, used_ + bytes); }
  absl::Duration UntilRefill(absl::Time now) const {
    return std::max(absl::ZeroDuration(), period_end_ - now);
  }

 private:
  const uint64_t budget_;
  const absl::Duration period_;
  absl::Time period_end_ = absl::InfinitePast();
  uint64_t used_ = 0;
};

}  // namespace vhost

#endif  // VHOST_USER_RNG_RATE_LIMITER_H_
