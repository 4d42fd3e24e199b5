#include "vhost-user-snd/sample_clock.h"

#include <cstdint>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vhost::snd {
namespace {

using ::testing::Optional;

constexpr absl::Duration kStart = absl::Seconds(1000);

TEST(SampleClockTest, NothingIsDueBeforeItsTime) {
  FakeClock clock(kStart);
  SampleClock sc(&clock, {48000, 480, 4});
  EXPECT_EQ(sc.PeriodsDue(), 0u) << "not started";
  EXPECT_EQ(sc.Take(true), std::nullopt);
  sc.Start();
  EXPECT_EQ(sc.NextDue(), kStart + absl::Milliseconds(10));
  clock.Advance(absl::Milliseconds(10) - absl::Nanoseconds(1));
  EXPECT_EQ(sc.PeriodsDue(), 0u);
  EXPECT_EQ(sc.Take(true), std::nullopt) << "never ahead of the sample clock";
  clock.Advance(absl::Nanoseconds(1));
  EXPECT_EQ(sc.PeriodsDue(), 1u);
  std::optional<SampleClock::Period> p = sc.Take(true);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->index, 0u);
  EXPECT_EQ(p->host_late, absl::ZeroDuration());
  EXPECT_EQ(sc.Take(true), std::nullopt);
  EXPECT_EQ(sc.NextDue(), kStart + absl::Milliseconds(20));
}

TEST(SampleClockTest, ALateWakeUpCatchesUpOnTheSameGrid) {
  FakeClock clock(kStart);
  SampleClock sc(&clock, {48000, 480, 4});
  sc.Start();
  clock.Advance(absl::Milliseconds(35));  // the daemon woke 25 ms late
  EXPECT_EQ(sc.PeriodsDue(), 3u);
  absl::Duration late[3];
  for (int i = 0; i < 3; ++i) late[i] = sc.Take(true)->host_late;
  EXPECT_EQ(late[0], absl::Milliseconds(25));
  EXPECT_EQ(late[2], absl::Milliseconds(5));
  EXPECT_EQ(sc.Take(true), std::nullopt);
  EXPECT_EQ(sc.NextDue(), kStart + absl::Milliseconds(40)) << "the schedule did not move";
}

TEST(SampleClockTest, SkipsABacklogWithoutMovingTheGrid) {
  FakeClock clock(kStart);
  SampleClock sc(&clock, {48000, 480, 4});
  sc.Start();
  clock.Advance(absl::Seconds(5) + absl::Milliseconds(3));  // not scheduled for 5 s
  EXPECT_EQ(sc.PeriodsDue(), 500u);
  EXPECT_EQ(sc.SkipBacklog(2), 498u);
  EXPECT_EQ(sc.PeriodsDue(), 2u);
  EXPECT_EQ(sc.Take(true)->index, 498u);
  EXPECT_EQ(sc.SkipBacklog(2), 0u);
  EXPECT_EQ(sc.NextDue(), kStart + absl::Seconds(5)) << "period 499 ends at 5 s";
}

// An hour of periods whose length is no whole number of nanoseconds (1024 frames at 44.1 kHz is
// 23.219954648... ms), taken as a daemon would: woken at each due time plus a varying delay.
// Each due time is the exact one rounded down, and the last ends where an hour of frames does.
TEST(SampleClockTest, AnHourOfPeriodsDoesNotDrift) {
  constexpr uint32_t kRate = 44100, kPeriod = 1024;
  FakeClock clock(kStart);
  SampleClock sc(&clock, {kRate, kPeriod, 4});
  sc.Start();
  const uint64_t periods = uint64_t{3600} * kRate / kPeriod;  // 155039
  // A naive timer adding a period rounded to the ns falls behind by ~0.35 ns a period.
  const absl::Duration rounded_period = absl::Nanoseconds(kPeriod * 1'000'000'000ull / kRate);
  absl::Duration naive = kStart;
  absl::Duration worst_error = absl::ZeroDuration();
  for (uint64_t n = 0; n < periods; ++n) {
    // The daemon wakes 0..990 us after the due time.
    clock.Set(sc.NextDue() + absl::Microseconds((n * 37) % 1000));
    ASSERT_EQ(sc.PeriodsDue(), 1u) << n;
    std::optional<SampleClock::Period> p = sc.Take(true);
    ASSERT_TRUE(p.has_value());
    ASSERT_EQ(p->index, n);
    // The exact due time, in 128 bits: (n + 1) periods of frames at the rate, in ns rounded
    // down, so 0 <= exact rational - due < 1 ns.
    const unsigned __int128 exact =
        static_cast<unsigned __int128>((n + 1) * kPeriod) * 1'000'000'000u / kRate;
    const absl::Duration error = (p->due - kStart) - absl::Nanoseconds(static_cast<int64_t>(exact));
    if (absl::AbsDuration(error) > worst_error) worst_error = absl::AbsDuration(error);
    naive += rounded_period;
  }
  EXPECT_EQ(worst_error, absl::ZeroDuration());
  // 155039 periods = 158759936 frames = 3599.998548 s, exactly (to the ns, rounded down).
  const uint64_t frames = periods * kPeriod;
  EXPECT_EQ(sc.DueTime(periods - 1) - kStart,
            absl::Seconds(frames / kRate) +
                absl::Nanoseconds((frames % kRate) * 1'000'000'000ull / kRate));
  EXPECT_GT(sc.DueTime(periods - 1) - naive, absl::Microseconds(50))
      << "the accumulating schedule this one avoids would have drifted";
}

TEST(SampleClockTest, DueTimesHoldForAWeekAtAnyRate) {
  FakeClock clock(kStart);
  for (uint32_t rate : {5512u, 44100u, 192000u, 384000u}) {
    SampleClock sc(&clock, {rate, 1, 4});
    sc.Start();
    const uint64_t week = uint64_t{7} * 24 * 3600 * rate;  // periods of one frame
    EXPECT_EQ(sc.DueTime(week - 1), kStart + absl::Hours(7 * 24)) << rate;
    clock.Set(kStart + absl::Hours(7 * 24));
    EXPECT_EQ(sc.PeriodsDue(), week) << rate;
    clock.Set(kStart + absl::Hours(7 * 24) - absl::Nanoseconds(1));
    EXPECT_EQ(sc.PeriodsDue(), week - 1) << rate;
    clock.Set(kStart);
  }
}

TEST(SampleClockTest, MeasuresHowLateTheGuestIs) {
  FakeClock clock(kStart);
  SampleClock sc(&clock, {48000, 480, 4});
  sc.Start();
  clock.Advance(absl::Milliseconds(10));
  EXPECT_EQ(sc.Take(true)->guest_late, absl::ZeroDuration());
  EXPECT_EQ(sc.GuestLate(), absl::ZeroDuration());
  // Period 1 (due at 20 ms) finds no buffer: silence, and the guest is late from then on.
  clock.Advance(absl::Milliseconds(12));
  std::optional<SampleClock::Period> p = sc.Take(false);
  EXPECT_EQ(p->guest_late, absl::Milliseconds(2));
  EXPECT_FALSE(p->xrun);
  clock.Advance(absl::Milliseconds(5));
  EXPECT_EQ(sc.GuestLate(), absl::Milliseconds(7));
  clock.Advance(absl::Milliseconds(5));  // 32 ms: period 2 finds none either
  p = sc.Take(false);
  EXPECT_EQ(p->guest_late, absl::Milliseconds(12)) << "counted from the first period missed";
  EXPECT_EQ(sc.starved_periods(), 2u);
  // The guest catches up: lateness ends.
  clock.Advance(absl::Milliseconds(10));
  EXPECT_EQ(sc.Take(true)->guest_late, absl::ZeroDuration());
  EXPECT_EQ(sc.GuestLate(), absl::ZeroDuration());
  EXPECT_EQ(sc.starved_periods(), 0u);
  EXPECT_EQ(sc.xruns(), 0u) << "two periods of silence are a glitch, not an XRUN";
}

TEST(SampleClockTest, AWholeBufferMissedIsOneXrun) {
  FakeClock clock(kStart);
  SampleClock sc(&clock, {48000, 480, 3});  // the guest's buffer: 3 periods
  sc.Start();
  std::vector<bool> xrun;
  for (int i = 0; i < 6; ++i) {
    clock.Advance(absl::Milliseconds(10));
    xrun.push_back(sc.Take(false)->xrun);
  }
  EXPECT_THAT(xrun, ::testing::ElementsAre(false, false, true, false, false, false))
      << "reported once, when the third period in a row finds no buffer";
  EXPECT_EQ(sc.xruns(), 1u);
  EXPECT_EQ(sc.GuestLate(), absl::Milliseconds(50));
  // A buffer ends the run; the next run of three is a second XRUN.
  clock.Advance(absl::Milliseconds(10));
  sc.Take(true);
  for (int i = 0; i < 3; ++i) {
    clock.Advance(absl::Milliseconds(10));
    sc.Take(false);
  }
  EXPECT_EQ(sc.xruns(), 2u);
  // A restart (STOP, START) is a new schedule with nobody late.
  sc.Stop();
  EXPECT_EQ(sc.PeriodsDue(), 0u);
  sc.Start();
  EXPECT_EQ(sc.GuestLate(), absl::ZeroDuration());
  EXPECT_EQ(sc.NextDue(), clock.Now() + absl::Milliseconds(10));
}

TEST(SampleClockTest, OneMissedPeriodIsAnXrunWhenTheBufferIsOnePeriod) {
  FakeClock clock(kStart);
  SampleClock sc(&clock, {8000, 80, 1});
  sc.Start();
  clock.Advance(absl::Milliseconds(10));
  EXPECT_THAT(sc.Take(false), Optional(::testing::Field(&SampleClock::Period::xrun, true)));
}

TEST(SampleClockTest, ZerosFromTheGuestDoNotDivideByZero) {
  FakeClock clock(kStart);
  SampleClock sc(&clock, {0, 0, 0});
  sc.Start();
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(sc.PeriodsDue(), 2u) << "taken as 1 Hz, 1 frame";
  EXPECT_TRUE(sc.Take(false)->xrun) << "taken as a 1-period buffer";
}

TEST(SampleClockTest, TheMonotonicClockMovesForward) {
  MonotonicClock clock;
  const absl::Duration a = clock.Now();
  EXPECT_GE(clock.Now(), a);
  EXPECT_GT(a, absl::ZeroDuration());
}

}  // namespace
}  // namespace vhost::snd
