// The sample clock of a running stream: when each period is due, whether the guest kept up.
//
// Period n (from 0) of a stream started at S ends, its frames played or recorded, at
//   S + (n + 1) * period_frames / rate
// computed from the frame count each time (whole seconds plus the remainder's nanoseconds,
// rounded down), never by adding up a rounded period: the schedule is exact to the nanosecond
// after an hour or a week, whatever the rate (44100 Hz periods are no whole number of ns).
// The device arms a timerfd (CLOCK_MONOTONIC, TFD_TIMER_ABSTIME) at NextDue(), and when it
// fires takes every due period: a tx buffer completed (or silence played), an rx buffer filled
// (or the frames dropped). A period is never taken before it is due, so a null or file backend
// never races ahead of the clock, and a late wake-up catches up without moving the schedule.
//
// Lateness. The guest is late when a period comes due and it has no buffer queued for it; it
// stays late, by now minus that period's due time, until it queues one again.
// XRUN: when `xrun_periods` periods in a row found no buffer, reported once per such run.
// The stream passes the guest's buffer in periods (SET_PARAMS buffer_bytes / period_bytes):
// after that many periods of silence everything the guest's ring could hold has gone by
// unwritten, which is what ALSA itself calls an XRUN; a shorter gap is a glitch a guest keeping
// its ring full would never cause, and one it recovers from without being told.
#ifndef VHOST_USER_SND_SAMPLE_CLOCK_H_
#define VHOST_USER_SND_SAMPLE_CLOCK_H_

#include <cstdint>
#include <optional>

#include "absl/time/time.h"

namespace vhost::snd {

// A monotonic clock, read as the time since its (arbitrary) epoch.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Duration Now() const = 0;
};

// CLOCK_MONOTONIC, the clock timerfds are armed on.
class MonotonicClock : public Clock {
 public:
  absl::Duration Now() const override;
};

// A clock that moves only when told (tests).
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Duration now = absl::Seconds(1000)) : now_(now) {}
  absl::Duration Now() const override { return now_; }
  void Set(absl::Duration now) { now_ = now; }
  void Advance(absl::Duration by) { now_ += by; }

 private:
  absl::Duration now_;
};

class SampleClock {
 public:
  struct Config {
    uint32_t rate = 48000;         // frames per second, > 0
    uint32_t period_frames = 480;  // > 0
    uint32_t xrun_periods = 4;     // periods in a row without a buffer that make an XRUN, >= 1
  };

  struct Period {
    uint64_t index;
    absl::Duration due;         // when it ended on the sample clock
    absl::Duration host_late;   // when it was taken minus `due`: the daemon's own wake-up delay
    absl::Duration guest_late;  // 0 if the guest had a buffer for it, else see GuestLate()
    bool xrun;                  // this period made the guest's lateness an XRUN
  };

  // `clock` outlives this. Zeros in `config` are taken as 1.
  SampleClock(const Clock* clock, const Config& config);

  // Period 0 starts now; a restart (START after STOP) starts a new schedule.
  void Start();
  void Stop() { running_ = false; }
  bool running() const { return running_; }

  // When period `n` of the current schedule ends (n < 2^32 periods, centuries of audio).
  absl::Duration DueTime(uint64_t n) const;
  uint64_t next_period() const { return next_; }
  absl::Duration NextDue() const { return DueTime(next_); }
  // Periods due by now and not taken yet (0 when stopped).
  uint64_t PeriodsDue() const;

  // Takes the next period if it is due, else nullopt: `had_buffer` says whether the guest had
  // queued a buffer for it.
  std::optional<Period> Take(bool had_buffer);
  // Skips all but the last `keep` due periods, e.g. after the daemon was not scheduled for a
  // long while, so it does not burst through the guest's buffers catching up; returns how many
  // it skipped. The schedule keeps its grid.
  uint64_t SkipBacklog(uint64_t keep);

  // How late the guest is now: now minus the due time of the first period of the current run
  // without a buffer (0 when it is not late).
  absl::Duration GuestLate() const;
  uint64_t starved_periods() const { return starved_; }  // in the current run
  uint64_t xruns() const { return xruns_; }              // since construction
  const Config& config() const { return config_; }

 private:
  const Clock* clock_;
  const Config config_;
  bool running_ = false;
  absl::Duration start_;
  uint64_t next_ = 0;
  uint64_t starved_ = 0;
  uint64_t first_starved_ = 0;
  uint64_t xruns_ = 0;
};

}  // namespace vhost::snd

#endif  // VHOST_USER_SND_SAMPLE_CLOCK_H_
