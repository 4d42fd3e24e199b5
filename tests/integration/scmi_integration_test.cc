// vhost-user-scmi driven over its socket by our front end and an SCMI agent (tests/frontend/
// scmi_agent.h), inside its sandbox: Base discovery of the protocols; a sensor reading changed
// through --control-socket read anew; a sensor update notification and a delayed response on
// the event queue; a clock rate set and read back (and seen by the host); a guest's shutdown
// request reported on the control socket; a --platform file; a host IIO sensor (--iio-root);
// malformed messages answered with SCMI status codes and the daemon alive after them.
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/control_client.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/scmi_agent.h"
#include "tests/integration/runfiles.h"
#include "vhost-user-scmi/scmi_spec.h"

namespace vhost::scmi {
namespace {

using frontend::DaemonSession;
using frontend::ScmiAgent;
using frontend::ScmiHeader;
using frontend::ScmiReply;
using frontend::SendControlCommands;
using Words = std::vector<uint32_t>;

constexpr absl::Duration kTimeout = absl::Seconds(10);

class ScmiDaemonTest : public ::testing::Test {
 protected:
  void StartDaemon(std::vector<std::string> extra = {}) {
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("scmi"));
    control_ = session_->File("control");
    std::vector<std::string> args = {"--socket-path=" + session_->socket(),
                                     "--control-socket=" + control_};
    args.insert(args.end(), extra.begin(), extra.end());
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-scmi/vhost-user-scmi"), args));
    ASSERT_OK_AND_ASSIGN(agent_, ScmiAgent::Connect(*session_));
  }
  std::string Control(const std::string& line) {
    absl::StatusOr<std::string> reply = SendControlCommands(control_, line + "\n");
    EXPECT_OK(reply.status());
    return reply.ok() ? *reply : "";
  }
  ScmiReply Call(uint8_t protocol, uint8_t id, Words params = {}) {
    absl::StatusOr<ScmiReply> reply = agent_->Call(protocol, id, params);
    EXPECT_OK(reply.status());
    return reply.ok() ? *reply : ScmiReply();
  }

  std::unique_ptr<DaemonSession> session_;
  std::string control_;
  std::unique_ptr<ScmiAgent> agent_;
};

TEST_F(ScmiDaemonTest, BaseDiscovery) {
  StartDaemon();
  EXPECT_EQ(agent_->device()->acked_features() & 1, 1u);  // VIRTIO_SCMI_F_P2A_CHANNELS
  ScmiReply r = Call(kBase, kProtocolVersion);
  EXPECT_EQ(r.status, kSuccess);
  EXPECT_EQ(r.Word(0), kBaseVersion);
  EXPECT_EQ(Call(kBase, kProtocolAttributes).Word(0), 1u << 8 | 7);
  r = Call(kBase, kBaseDiscoverListProtocols, {0});
  EXPECT_EQ(r.Word(0), 7u);
  EXPECT_EQ(r.Word(1), 0x14131211u);
  EXPECT_EQ(r.Word(2), 0x00171615u);
  EXPECT_EQ(Call(kBase, kBaseDiscoverVendor).Name(0), "vhost-user");
  r = Call(kBase, kBaseDiscoverAgent, {0xffffffff});
  EXPECT_EQ(r.Word(0), 1u);
  EXPECT_EQ(r.Name(4), "guest");
  // Every protocol listed answers its version.
  for (uint8_t protocol = kPowerDomain; protocol <= kVoltage; ++protocol) {
    EXPECT_EQ(Call(protocol, kProtocolVersion).status, kSuccess) << int{protocol};
  }
  // The default platform: five sensors, the first "soc_temp".
  EXPECT_EQ(Call(kSensor, kProtocolAttributes).Word(0) & 0xffff, 5u);
  r = Call(kSensor, kSensorDescriptionGet, {0});
  EXPECT_EQ(r.Word(0), 2u | 3u << 16);
  EXPECT_EQ(r.Name(16), "soc_temp");
}

TEST_F(ScmiDaemonTest, SensorChangedOnTheHostIsReadAnew) {
  StartDaemon();
  // board_temp (sensor 1) is fixed at 32 degrees until the host changes it.
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {1, 0}).Word(0), 32000u);
  EXPECT_EQ(Control("sensor board_temp 61500"), "ok sensor:board_temp=61500\n");
  ScmiReply r = Call(kSensor, kSensorReadingGet, {1, 0});
  EXPECT_EQ(r.status, kSuccess);
  EXPECT_EQ(r.Word(0), 61500u);
  EXPECT_EQ(r.Word(1), 0u);
}

TEST_F(ScmiDaemonTest, SensorUpdateNotification) {
  StartDaemon();
  // The accelerometer (sensor 4) notifies its updates.
  ASSERT_EQ(Call(kSensor, kSensorContinuousUpdateNotify, {4, 1}).status, kSuccess);
  EXPECT_EQ(Control("sensor accel 100,-200,9000"), "ok sensor:accel=100,-200,9000\n");
  ASSERT_OK_AND_ASSIGN(Words event, agent_->WaitForEvent(kTimeout));
  EXPECT_EQ(event, (Words{ScmiHeader(kSensor, kSensorUpdate, 0, kNotification), 0, 4, 100, 0, 0, 0,
                          static_cast<uint32_t>(-200), 0xffffffff, 0, 0, 9000, 0, 0, 0}));
}

TEST_F(ScmiDaemonTest, ClockRateSetAndReadBack) {
  StartDaemon();
  EXPECT_EQ(Call(kClock, kClockRateGet, {0}).Word(0), 800000000u);
  EXPECT_EQ(Call(kClock, kClockRateSet, {0, 0, 1200000000, 0}).status, kSuccess);
  ScmiReply r = Call(kClock, kClockRateGet, {0});
  EXPECT_EQ(r.Word(0), 1200000000u);
  EXPECT_EQ(r.Word(1), 0u);
  EXPECT_EQ(Control("get cpu_clk"), "ok clock:cpu_clk=1200000000,on\n");
  // Asynchronously: the response, then CLOCK_RATE_SET_COMPLETE on the event queue.
  ASSERT_OK_AND_ASSIGN(ScmiReply async, agent_->Call(kClock, kClockRateSet, {1, 0, 400000000, 0}));
  EXPECT_EQ(async.status, kSuccess);
  ASSERT_OK_AND_ASSIGN(Words done, agent_->WaitForEvent(kTimeout));
  ASSERT_EQ(done.size(), 5u);
  EXPECT_EQ(done[0], (async.header & ~0x300u) | kDelayedResponse << 8);
  EXPECT_EQ(done, (Words{done[0], 0, 0, 400000000, 0}));
  EXPECT_EQ(Control("get cpu_clk"), "ok clock:cpu_clk=400000000,on\n");
}

TEST_F(ScmiDaemonTest, ShutdownRequestReachesTheHost) {
  StartDaemon();
  EXPECT_EQ(Control("system"), "ok none\n");
  EXPECT_EQ(Call(kSystemPower, kSystemPowerStateSet, {1, kSystemShutdown}).status, kSuccess);
  EXPECT_EQ(Control("system"), "ok shutdown\n");
  // And the host asks the guest to reboot, once it listens.
  EXPECT_EQ(Control("request reboot").rfind("error", 0), 0u);
  ASSERT_EQ(Call(kSystemPower, kSystemPowerStateNotify, {1}).status, kSuccess);
  EXPECT_EQ(Control("request reboot"), "ok\n");
  ASSERT_OK_AND_ASSIGN(Words event, agent_->WaitForEvent(kTimeout));
  EXPECT_EQ(event, (Words{ScmiHeader(kSystemPower, kSystemPowerStateNotifier, 0, kNotification), 0,
                          1, kSystemColdReset, 0}));
}

TEST_F(ScmiDaemonTest, PlatformFile) {
  const std::string path = ::testing::TempDir() + "/scmi_platform.txt";
  {
    std::ofstream file(path);
    file << "# a fan and its clock\nsensor fan_speed unit=rpm value=1200\n"
            "clock fan_clk rates=25000,50000 rate=25000\n";
  }
  StartDaemon({"--platform=" + path});
  EXPECT_EQ(Call(kSensor, kProtocolAttributes).Word(0) & 0xffff, 1u);
  ScmiReply r = Call(kSensor, kSensorDescriptionGet, {0});
  EXPECT_EQ(r.Name(16), "fan_speed");
  EXPECT_EQ(r.Word(3) & 0xff, kUnitRpm);
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {0, 0}).Word(0), 1200u);
  EXPECT_EQ(Call(kClock, kProtocolAttributes).Word(0) & 0xffff, 1u);
  EXPECT_EQ(Call(kPowerDomain, kProtocolAttributes).Word(0), 0u);
  EXPECT_EQ(Call(kPowerDomain, kPowerDomainAttributes, {0}).status, kNotFound);
  EXPECT_EQ(Control("list"), "ok sensor:fan_speed=1200 clock:fan_clk=25000,off\n");
}

TEST_F(ScmiDaemonTest, HostIioSensorReadInsideTheSandbox) {
  const std::string root = ::testing::TempDir() + "/scmi_iio";
  const std::string device = root + "/iio:device0";
  ASSERT_EQ(system(("rm -rf " + root + " && mkdir -p " + device).c_str()), 0);
  std::ofstream(device + "/name") << "host\n";
  std::ofstream(device + "/in_temp_input") << "41000\n";
  StartDaemon({"--iio-root=" + root});
  // After the five sensors of the default platform.
  EXPECT_EQ(Call(kSensor, kProtocolAttributes).Word(0) & 0xffff, 6u);
  EXPECT_EQ(Call(kSensor, kSensorNameGet, {5}).Name(4), "host_temp");
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {5, 0}).Word(0), 41000u);
  // The file is read anew (no open after the seccomp filter: the daemon kept its descriptor).
  std::ofstream(device + "/in_temp_input") << "43500\n";
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {5, 0}).Word(0), 43500u);
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

TEST_F(ScmiDaemonTest, MalformedMessagesAnsweredDaemonAlive) {
  StartDaemon();
  EXPECT_EQ(Call(0x99, kProtocolVersion).status, kNotSupported);
  EXPECT_EQ(Call(kSensor, 0x42).status, kNotSupported);
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {0}).status, kProtocolError);  // short
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {77, 0}).status, kNotFound);   // no sensor
  EXPECT_EQ(Call(kClock, kClockRateSet, {0xff, 0, 1, 0}).status, kInvalidParameters);
  EXPECT_EQ(Call(kSensor, kSensorContinuousUpdateNotify, {1, 1}).status, kSuccess);
  // Two bytes: no header to echo.
  ASSERT_OK_AND_ASSIGN(ScmiReply headless, agent_->CallRaw({0x00, 0x40}));
  EXPECT_EQ(headless.len, 8u);
  EXPECT_EQ(headless.header, 0u);
  EXPECT_EQ(headless.status, kProtocolError);
  // No room for the status: returned empty.
  ASSERT_OK_AND_ASSIGN(ScmiReply empty, agent_->Call(kBase, kProtocolVersion, {}, 4));
  EXPECT_EQ(empty.len, 0u);
  // A reply that does not fit: the status alone.
  ASSERT_OK_AND_ASSIGN(ScmiReply tight, agent_->Call(kSensor, kSensorDescriptionGet, {0}, 40));
  EXPECT_EQ(tight.len, 8u);
  EXPECT_EQ(tight.status, kProtocolError);
  // No request at all.
  ASSERT_OK_AND_ASSIGN(ScmiReply nothing, agent_->CallRaw({}));
  EXPECT_EQ(nothing.status, kProtocolError);
  EXPECT_EQ(Call(kBase, kProtocolVersion).Word(0), kBaseVersion);
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

TEST_F(ScmiDaemonTest, WithoutTheEventQueue) {
  ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("scmi"));
  ASSERT_OK(session_->Start(RunfilePath("vhost-user-scmi/vhost-user-scmi"),
                            {"--socket-path=" + session_->socket()}));
  ASSERT_OK_AND_ASSIGN(agent_, ScmiAgent::Connect(*session_, /*p2a=*/false));
  EXPECT_EQ(agent_->device()->acked_features() & 1, 0u);
  EXPECT_EQ(Call(kSensor, kSensorContinuousUpdateNotify, {4, 1}).status, kNotSupported);
  EXPECT_EQ(Call(kClock, kClockRateSet, {1, 0, 400000000, 0}).status, kNotSupported);
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {1, 0}).Word(0), 32000u);
}

}  // namespace
}  // namespace vhost::scmi
