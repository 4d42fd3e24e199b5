// The platform config's parser, the simulated sensors' stepping and trip points, and the
// control socket's commands.
#include "vhost-user-scmi/scmi_platform.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "vhost-user-scmi/scmi_spec.h"

namespace vhost::scmi {
namespace {

TEST(ScmiPlatformTest, DefaultParses) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ScmiPlatform> p, ScmiPlatform::Parse(kDefaultPlatform));
  ASSERT_EQ(p->sensors.size(), 5u);
  EXPECT_EQ(p->sensors[0].name, "soc_temp");
  EXPECT_EQ(p->sensors[0].unit, kUnitCelsius);
  EXPECT_EQ(p->sensors[0].scale, -3);
  EXPECT_EQ(p->sensors[0].values, std::vector<int64_t>{45000});
  EXPECT_EQ(p->sensors[2].unit, kUnitVolts);
  EXPECT_EQ(p->sensors[4].unit, kUnitMetersPerSecondSquared);
  EXPECT_EQ(p->sensors[4].axes, (std::vector<std::string>{"accel_X", "accel_Y", "accel_Z"}));
  EXPECT_EQ(p->sensors[4].values, (std::vector<int64_t>{0, 0, 9807}));
  ASSERT_EQ(p->clocks.size(), 2u);
  EXPECT_EQ(p->clocks[0].rates.list.size(), 3u);
  EXPECT_EQ(p->clocks[0].rate, 800000000u);
  EXPECT_TRUE(p->clocks[1].rates.list.empty());
  EXPECT_EQ(p->clocks[1].rates.step, 1000000u);
  ASSERT_EQ(p->voltage_domains.size(), 1u);
  EXPECT_EQ(p->voltage_domains[0].level, 3300000);
  ASSERT_EQ(p->perf_domains.size(), 1u);
  EXPECT_EQ(p->perf_domains[0].opps.size(), 3u);
  EXPECT_EQ(p->perf_domains[0].limit_max, 1200000u);
  EXPECT_EQ(p->power_domains.size(), 1u);
  EXPECT_EQ(p->reset_domains.size(), 1u);
}

TEST(ScmiPlatformTest, BadConfigsNameTheLine) {
  const char* bad[] = {
      "sensor x",                           // no unit
      "sensor x unit=furlongs",             // unknown unit
      "sensor x unit=volts scale=16",       // scale out of 5 bits
      "sensor x unit=volts value=1,2",      // two values, no axes
      "sensor x unit=volts max=5 value=6",  // outside its range
      "sensor x unit=volts colour=red",     // unknown key
      "clock c rate=5",                     // no rates
      "clock c rates=1,2 range=1:2:1",      // both
      "clock c rates=1,2 rate=3",           // rate not listed
      "clock c range=5:1:1",                // min > max
      "voltage v levels=1,2 level=7",       //
      "perf p opps=100:1,100:2",            // duplicate frequency
      "perf p opps=100",                    // no power
      "power p state=maybe",                //
      "gizmo g",                            // unknown kind
      "reset bad/name",                     // bad name
      "power a\nreset a",                   // reused name
  };
  for (const char* text : bad) {
    absl::StatusOr<std::unique_ptr<ScmiPlatform>> p = ScmiPlatform::Parse(text);
    EXPECT_FALSE(p.ok()) << text;
    if (!p.ok()) {
      EXPECT_NE(p.status().message().find("platform line"), std::string::npos);
    }
  }
}

TEST(ScmiPlatformTest, RateSetRounds) {
  RateSet list;
  list.list = {100, 200, 400};
  uint64_t out = 0;
  EXPECT_TRUE(list.Round(300, false, &out));
  EXPECT_EQ(out, 200u);
  EXPECT_TRUE(list.Round(300, true, &out));
  EXPECT_EQ(out, 400u);
  EXPECT_FALSE(list.Round(50, false, &out));
  EXPECT_FALSE(list.Round(500, true, &out));
  RateSet range;
  range.min = 10;
  range.max = 100;
  range.step = 20;  // 10 30 50 70 90
  EXPECT_TRUE(range.Round(45, false, &out));
  EXPECT_EQ(out, 30u);
  EXPECT_TRUE(range.Round(45, true, &out));
  EXPECT_EQ(out, 50u);
  EXPECT_TRUE(range.Round(100, false, &out));
  EXPECT_EQ(out, 90u);
  EXPECT_FALSE(range.Round(95, true, &out));
  EXPECT_TRUE(range.Contains(70));
  EXPECT_FALSE(range.Contains(60));
}

TEST(ScmiPlatformTest, SensorsStepAndBounce) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ScmiPlatform> p,
                       ScmiPlatform::Parse("sensor t unit=celsius value=8 min=0 max=10 step=2 "
                                           "interval_ms=100"));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  std::lock_guard<std::mutex> lock(p->mu);
  EXPECT_EQ(p->AdvanceLocked(t0), t0 + absl::Milliseconds(100));
  EXPECT_EQ(p->sensors[0].values[0], 8);
  p->AdvanceLocked(t0 + absl::Milliseconds(100));
  EXPECT_EQ(p->sensors[0].values[0], 10);
  EXPECT_TRUE(p->sensors[0].changed);
  p->AdvanceLocked(t0 + absl::Milliseconds(200));
  EXPECT_EQ(p->sensors[0].values[0], 8);  // turned back at max
}

TEST(ScmiPlatformTest, TripPointsCrossed) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ScmiPlatform> p,
                       ScmiPlatform::Parse("sensor t unit=celsius value=10"));
  std::lock_guard<std::mutex> lock(p->mu);
  Sensor& s = p->sensors[0];
  s.trips[1] = {1, 50};  // rising through 50
  s.trips[2] = {2, 20};  // falling through 20
  p->SetValuesLocked(s, {60});
  p->SetValuesLocked(s, {40});
  p->SetValuesLocked(s, {15});
  ASSERT_EQ(s.crossed.size(), 2u);
  EXPECT_EQ(s.crossed[0], std::make_pair(uint8_t{1}, true));
  EXPECT_EQ(s.crossed[1], std::make_pair(uint8_t{2}, false));
  p->ResetGuestStateLocked();
  EXPECT_TRUE(s.crossed.empty());
  EXPECT_EQ(s.trips[1].events, 0);
}

TEST(ScmiPlatformTest, ControlCommands) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<ScmiPlatform> p, ScmiPlatform::Parse(kDefaultPlatform));
  int changes = 0;
  p->set_on_change([&] { ++changes; });
  EXPECT_EQ(*p->Execute("get board_temp"), "sensor:board_temp=32000");
  EXPECT_EQ(*p->Execute("sensor board_temp 55000"), "sensor:board_temp=55000");
  EXPECT_EQ(changes, 1);
  EXPECT_TRUE(p->sensors[1].changed);
  EXPECT_EQ(*p->Execute("sensor accel 1,2,3"), "sensor:accel=1,2,3");
  EXPECT_FALSE(p->Execute("sensor accel 1,2").ok());
  EXPECT_EQ(*p->Execute("clock cpu_clk 1200000000"), "clock:cpu_clk=1200000000,on");
  EXPECT_FALSE(p->Execute("clock cpu_clk 1000").ok());
  EXPECT_EQ(*p->Execute("clock uart_clk on"), "clock:uart_clk=24000000,on");
  EXPECT_EQ(*p->Execute("power gpu_pd on"), "power:gpu_pd=on");
  EXPECT_EQ(*p->Execute("voltage vdd_sd 1800000"), "voltage:vdd_sd=1800000,on");
  EXPECT_FALSE(p->Execute("voltage vdd_sd 1850000").ok());
  EXPECT_EQ(*p->Execute("perf cpu_perf 400000"), "perf:cpu_perf=400000,400000-1200000");
  EXPECT_EQ(*p->Execute("get eth_rst"), "reset:eth_rst=deasserted,0");
  EXPECT_EQ(p->Execute("get nothing").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(p->Execute("sensor nothing 1").status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(p->Execute("bogus").ok());
  const std::string list = *p->Execute("list");
  EXPECT_NE(list.find("sensor:accel=1,2,3"), std::string::npos);
  EXPECT_NE(list.find("perf:cpu_perf=400000"), std::string::npos);
  EXPECT_EQ(*p->Execute("system"), "none");
  p->SystemRequest("shutdown");
  EXPECT_EQ(*p->Execute("system"), "shutdown");
  // A request to a guest that did not ask for notifications is refused.
  EXPECT_EQ(p->Execute("request shutdown").status().code(), absl::StatusCode::kFailedPrecondition);
  p->system_notify = true;
  EXPECT_OK(p->Execute("request reboot"));
  EXPECT_EQ(p->host_requests, std::vector<std::string>{"reboot"});
}

}  // namespace
}  // namespace vhost::scmi
