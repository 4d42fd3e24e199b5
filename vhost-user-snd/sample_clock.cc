#include "vhost-user-snd/sample_clock.h"

#include <time.h>

#include <algorithm>

namespace vhost::snd {

absl::Duration MonotonicClock::Now() const {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return absl::DurationFromTimespec(ts);
}

namespace {
// Parameters come from the guest (through SET_PARAMS): zeros would divide by zero below.
SampleClock::Config Sane(SampleClock::Config c) {
  c.rate = std::max<uint32_t>(c.rate, 1);
  c.period_frames = std::max<uint32_t>(c.period_frames, 1);
  c.xrun_periods = std::max<uint32_t>(c.xrun_periods, 1);
  return c;
}
}  // namespace

SampleClock::SampleClock(const Clock* clock, const Config& config)
    : clock_(clock), config_(Sane(config)) {}

void SampleClock::Start() {
  start_ = clock_->Now();
  next_ = 0;
  starved_ = 0;
  running_ = true;
}

absl::Duration SampleClock::DueTime(uint64_t n) const {
  // Frames to the end of period n, then whole seconds and the rest: rest * 1e9 < 2^49, so no
  // product here overflows.
  const uint64_t frames = (n + 1) * config_.period_frames;
  const uint64_t seconds = frames / config_.rate;
  const uint64_t rest = frames % config_.rate;
  return start_ + absl::Seconds(seconds) +
         absl::Nanoseconds(rest * 1'000'000'000ull / config_.rate);
}

uint64_t SampleClock::PeriodsDue() const {
  if (!running_) return 0;
  const absl::Duration now = clock_->Now();
  if (now < NextDue()) return 0;
  // Period k is due once floor(F * 1e9 / rate) <= e, F = (k + 1) * period_frames frames and
  // e = now - start in ns, that is once F * 1e9 <= (e + 1) * rate - 1: so the frames reached are
  // floor(((e + 1) * rate - 1) / 1e9), split at whole seconds (s * 1e9 + ns) to stay in 64
  // bits: (ns + 1) * rate <= 1e9 * 2^32 < 2^63.
  const absl::Duration elapsed = now - start_;
  const uint64_t seconds = absl::ToInt64Seconds(elapsed);
  const uint64_t ns = absl::ToInt64Nanoseconds(elapsed - absl::Seconds(seconds));
  const uint64_t frames = seconds * config_.rate + ((ns + 1) * config_.rate - 1) / 1'000'000'000ull;
  const uint64_t periods = frames / config_.period_frames;
  return periods > next_ ? periods - next_ : 0;
}

std::optional<SampleClock::Period> SampleClock::Take(bool had_buffer) {
  if (!running_) return std::nullopt;
  const absl::Duration now = clock_->Now();
  const absl::Duration due = NextDue();
  if (now < due) return std::nullopt;
  Period period{next_, due, now - due, absl::ZeroDuration(), false};
  if (had_buffer) {
    starved_ = 0;
  } else {
    if (starved_ == 0) first_starved_ = next_;
    ++starved_;
    period.guest_late = now - DueTime(first_starved_);
    if (starved_ == config_.xrun_periods) {
      period.xrun = true;
      ++xruns_;
    }
  }
  ++next_;
  return period;
}

uint64_t SampleClock::SkipBacklog(uint64_t keep) {
  const uint64_t due = PeriodsDue();
  if (due <= keep) return 0;
  next_ += due - keep;
  return due - keep;
}

absl::Duration SampleClock::GuestLate() const {
  if (starved_ == 0) return absl::ZeroDuration();
  return clock_->Now() - DueTime(first_starved_);
}

}  // namespace vhost::snd
