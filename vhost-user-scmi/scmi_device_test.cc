// The SCMI platform's protocols, message by message, with exact payloads and status codes
// (through HandleCommand), and the virtio queues (through rings in fake guest memory): replies
// bounded by the guest's buffer, notifications and delayed responses on the event queue.
#include "vhost-user-scmi/scmi_device.h"

#include <cstring>
#include <string>
#include <vector>

#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "common/virtio/features.h"
#include "gtest/gtest.h"

namespace vhost::scmi {
namespace {

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UsedElement;
using Words = std::vector<uint32_t>;

constexpr char kTestPlatform[] = R"(
sensor temp unit=celsius scale=-3 value=45000 min=0 max=100000
sensor volt unit=volts scale=-3 value=1800
sensor accel unit=m/s2 scale=-3 axes=accel_X,accel_Y,accel_Z value=1,-2,9807 min=-20000 max=20000 interval_ms=100
sensor a_sensor_with_a_long_name unit=amps value=5
clock cpu rates=400000000,800000000,1200000000 rate=800000000 enabled=1
clock uart range=1000000:100000000:1000000 rate=24000000
power gpu state=off
reset eth
voltage vdd range=1800000:3300000:100000 level=3300000 on=1
voltage vlist levels=900000,1000000 level=900000
perf cpu_perf opps=400000:100:50,800000:250:50,1200000:500:100 level=800000
)";

// Linux's virtio transport gives every reply 128 bytes after the header and status.
constexpr size_t kRoom = kReplyPrefix + 128;

struct Result {
  uint32_t header = 0;
  int32_t status = 1;
  Words words;                // return values
  std::vector<uint8_t> data;  // return values as bytes
  std::vector<Message> delayed;

  // The NUL-terminated string at byte `offset` of the return values.
  std::string Name(size_t offset) const {
    return std::string(reinterpret_cast<const char*>(data.data() + offset));
  }
};

uint32_t Hdr(uint8_t protocol, uint8_t id, uint16_t token = 0, uint8_t type = kCommand) {
  Header h;
  h.protocol = protocol;
  h.message_id = id;
  h.token = token;
  h.type = type;
  return h.Pack();
}

Words WordsOf(const std::vector<uint8_t>& bytes, size_t from) {
  Words w((bytes.size() - from) / 4);
  if (!w.empty()) std::memcpy(w.data(), bytes.data() + from, w.size() * 4);
  return w;
}

std::vector<uint8_t> Bytes(const Words& words) {
  std::vector<uint8_t> b(words.size() * 4);
  std::memcpy(b.data(), words.data(), b.size());
  return b;
}

class ScmiDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(kTestPlatform, true); }

  void Build(const char* text, bool p2a) {
    absl::StatusOr<std::unique_ptr<ScmiPlatform>> platform = ScmiPlatform::Parse(text);
    ASSERT_OK(platform.status());
    device_ = std::make_unique<ScmiDevice>(*std::move(platform));
    ASSERT_OK(device_->SetFeatures(Bit(kFeatureVersion1) | (p2a ? Bit(kFeatureP2aChannels) : 0)));
  }

  Result Raw(const std::vector<uint8_t>& request, size_t room = kRoom) {
    Result r;
    const Message reply = device_->HandleCommand(request, room, &r.delayed);
    EXPECT_LE(reply.size(), room);
    if (reply.size() < kReplyPrefix) return r;
    std::memcpy(&r.header, reply.data(), 4);
    std::memcpy(&r.status, reply.data() + 4, 4);
    r.data.assign(reply.begin() + kReplyPrefix, reply.end());
    r.words = WordsOf(reply, kReplyPrefix);
    return r;
  }
  Result Call(uint8_t protocol, uint8_t id, Words params = {}, size_t room = kRoom) {
    Words request = {Hdr(protocol, id, 0x155)};
    request.insert(request.end(), params.begin(), params.end());
    Result r = Raw(Bytes(request), room);
    EXPECT_EQ(r.header, Hdr(protocol, id, 0x155));  // the command's header, token and all
    return r;
  }
  int32_t StatusOf(uint8_t protocol, uint8_t id, Words params = {}) {
    return Call(protocol, id, std::move(params)).status;
  }

  std::unique_ptr<ScmiDevice> device_;
};

// ---- Every protocol's common messages

TEST_F(ScmiDeviceTest, VersionsAndMessageAttributes) {
  const std::pair<uint8_t, uint32_t> versions[] = {
      {kBase, 0x20000},  {kPowerDomain, 0x30000}, {kSystemPower, 0x20000}, {kPerformance, 0x40000},
      {kClock, 0x20000}, {kSensor, 0x30000},      {kResetDomain, 0x30000}, {kVoltage, 0x20000}};
  for (const auto& [protocol, version] : versions) {
    Result r = Call(protocol, kProtocolVersion);
    EXPECT_EQ(r.status, kSuccess);
    EXPECT_EQ(r.words, Words{version});
    EXPECT_EQ(StatusOf(protocol, kProtocolMessageAttributes, {kProtocolAttributes}), kSuccess);
    EXPECT_EQ(StatusOf(protocol, kProtocolMessageAttributes, {0x20}), kNotFound);
    EXPECT_EQ(StatusOf(protocol, kProtocolMessageAttributes, {0x100}), kNotFound);
    EXPECT_EQ(StatusOf(protocol, 0x20), kNotSupported);
    EXPECT_EQ(StatusOf(protocol, kProtocolVersion, {0}), kProtocolError);
    EXPECT_EQ(StatusOf(protocol, kProtocolAttributes, {0}), kProtocolError);
    EXPECT_EQ(StatusOf(protocol, kProtocolMessageAttributes), kProtocolError);
  }
  Result r = Call(kSensor, kProtocolMessageAttributes, {kSensorAxisNameGet});
  EXPECT_EQ(r.words, Words{0});
  EXPECT_EQ(StatusOf(kPowerDomain, kProtocolMessageAttributes, {0x7}), kNotFound);  // ASYNC
  EXPECT_EQ(StatusOf(kPowerDomain, 0x7, {0, 1}), kNotSupported);
  EXPECT_EQ(StatusOf(kPerformance, kProtocolMessageAttributes, {0x9}), kNotFound);  // LIMITS
}

TEST_F(ScmiDeviceTest, MalformedMessages) {
  // An unknown protocol.
  EXPECT_EQ(StatusOf(0x42, kProtocolVersion), kNotSupported);
  EXPECT_EQ(StatusOf(0x10 - 1, kProtocolVersion), kNotSupported);
  // Parameters short or long.
  EXPECT_EQ(StatusOf(kBase, kBaseDiscoverAgent), kProtocolError);
  EXPECT_EQ(StatusOf(kBase, kBaseDiscoverAgent, {1, 2}), kProtocolError);
  Result odd = Raw({0x07, 0x40, 0, 0, 1, 0});  // a partial parameter word
  EXPECT_EQ(odd.status, kProtocolError);
  // No whole header: answered with a zero header.
  Result headless = Raw({0x10});
  EXPECT_EQ(headless.header, 0u);
  EXPECT_EQ(headless.status, kProtocolError);
  // The agent sends commands only.
  Result typed = Raw(Bytes({Hdr(kBase, kProtocolVersion, 3, kNotification)}));
  EXPECT_EQ(typed.status, kProtocolError);
  // No room for a header and a status: nothing written.
  EXPECT_TRUE(device_->HandleCommand(Bytes({Hdr(kBase, 0)}), 7, nullptr).empty());
  // Room for the status but not the values: PROTOCOL_ERROR alone.
  Result tight = Call(kBase, kBaseDiscoverVendor, {}, kReplyPrefix + 15);
  EXPECT_EQ(tight.status, kProtocolError);
  EXPECT_TRUE(tight.words.empty());
}

// ---- Base

TEST_F(ScmiDeviceTest, BaseDiscovery) {
  Result r = Call(kBase, kProtocolAttributes);
  EXPECT_EQ(r.words, Words{1 << 8 | 7});  // one agent, seven protocols besides Base
  r = Call(kBase, kBaseDiscoverVendor);
  ASSERT_EQ(r.data.size(), 16u);
  EXPECT_EQ(r.Name(0), "vhost-user");
  r = Call(kBase, kBaseDiscoverSubVendor);
  EXPECT_EQ(r.Name(0), "simulated");
  r = Call(kBase, kBaseDiscoverImplementationVersion);
  EXPECT_EQ(r.words, Words{0x10000});

  r = Call(kBase, kBaseDiscoverListProtocols, {0});
  EXPECT_EQ(r.words, (Words{7, 0x14131211, 0x00171615}));
  r = Call(kBase, kBaseDiscoverListProtocols, {5});
  EXPECT_EQ(r.words, (Words{2, 0x1716}));
  r = Call(kBase, kBaseDiscoverListProtocols, {7});
  EXPECT_EQ(r.words, (Words{0}));
  EXPECT_EQ(StatusOf(kBase, kBaseDiscoverListProtocols, {8}), kInvalidParameters);
  // Eight bytes of room: the count and one word of four protocols.
  r = Call(kBase, kBaseDiscoverListProtocols, {0}, kReplyPrefix + 8);
  EXPECT_EQ(r.words, (Words{4, 0x14131211}));
  EXPECT_EQ(Call(kBase, kBaseDiscoverListProtocols, {0}, kReplyPrefix + 7).status, kProtocolError);

  r = Call(kBase, kBaseDiscoverAgent, {0xffffffff});
  ASSERT_EQ(r.status, kSuccess);
  EXPECT_EQ(r.words[0], 1u);
  EXPECT_EQ(r.Name(4), "guest");
  r = Call(kBase, kBaseDiscoverAgent, {0});
  EXPECT_EQ(r.words[0], 0u);
  EXPECT_EQ(r.Name(4), "platform");
  EXPECT_EQ(StatusOf(kBase, kBaseDiscoverAgent, {1}), kSuccess);
  EXPECT_EQ(StatusOf(kBase, kBaseDiscoverAgent, {2}), kNotFound);

  EXPECT_EQ(StatusOf(kBase, kBaseNotifyErrors, {1}), kSuccess);
  EXPECT_EQ(StatusOf(kBase, kBaseNotifyErrors, {2}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kBase, 0x9, {0, 0, 0}), kNotSupported);  // SET_DEVICE_PERMISSIONS
}

// ---- Power domain

TEST_F(ScmiDeviceTest, PowerDomain) {
  EXPECT_EQ(Call(kPowerDomain, kProtocolAttributes).words, (Words{1, 0, 0, 0}));
  Result r = Call(kPowerDomain, kPowerDomainAttributes, {0});
  EXPECT_EQ(r.words[0], 1u << 31 | 1u << 29);  // notifications, synchronous changes only
  EXPECT_EQ(r.Name(4), "gpu");
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerDomainAttributes, {1}), kNotFound);
  EXPECT_EQ(Call(kPowerDomain, kPowerStateGet, {0}).words, Words{kPowerStateOff});
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateSet, {0, 0, kPowerStateOn}), kSuccess);
  EXPECT_EQ(Call(kPowerDomain, kPowerStateGet, {0}).words, Words{kPowerStateOn});
  EXPECT_EQ(*device_->platform().Execute("get gpu"), "power:gpu=on");
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateSet, {1, 0, kPowerStateOff}), kNotSupported);
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateSet, {2, 0, kPowerStateOff}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateSet, {0, 0, 5}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateSet, {0, 9, kPowerStateOn}), kNotFound);
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateSet, {0, 0}), kProtocolError);
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateGet, {9}), kNotFound);
  r = Call(kPowerDomain, kPowerDomainNameGet, {0});
  EXPECT_EQ(r.words[0], 0u);
  ASSERT_EQ(r.data.size(), 68u);
  EXPECT_EQ(r.Name(4), "gpu");
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateNotify, {0, 1}), kSuccess);
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateNotify, {0, 2}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateNotify, {1, 1}), kNotFound);
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateNotify, {0}), kProtocolError);
  Build(kTestPlatform, /*p2a=*/false);
  EXPECT_EQ(Call(kPowerDomain, kPowerDomainAttributes, {0}).words[0], 1u << 29);
  EXPECT_EQ(StatusOf(kPowerDomain, kPowerStateNotify, {0, 1}), kNotSupported);
}

// ---- System power

TEST_F(ScmiDeviceTest, SystemPower) {
  std::vector<std::string> requests;
  device_->platform().set_on_system_request(
      [&](const std::string& what) { requests.push_back(what); });
  EXPECT_EQ(Call(kSystemPower, kProtocolAttributes).words, Words{1u << 31});
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateSet, {0, kSystemShutdown}), kSuccess);
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateSet, {1, kSystemColdReset}), kSuccess);
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateSet, {0, kSystemWarmReset}), kSuccess);
  EXPECT_EQ(requests, (std::vector<std::string>{"shutdown", "cold-reset", "warm-reset"}));
  EXPECT_EQ(*device_->platform().Execute("system"), "warm-reset");
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateSet, {0, kSystemSuspend}), kNotSupported);
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateSet, {0, kSystemPowerUp}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateSet, {0, 0x80000000}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateSet, {2, kSystemShutdown}), kInvalidParameters);
  EXPECT_EQ(requests.size(), 3u);
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateNotify, {1}), kSuccess);
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateNotify, {3}), kInvalidParameters);
  Build(kTestPlatform, /*p2a=*/false);
  EXPECT_EQ(StatusOf(kSystemPower, kSystemPowerStateNotify, {1}), kNotSupported);
}

// ---- Performance

TEST_F(ScmiDeviceTest, Performance) {
  EXPECT_EQ(Call(kPerformance, kProtocolAttributes).words, (Words{1u << 16 | 1, 0, 0, 0}));
  Result r = Call(kPerformance, kPerfDomainAttributes, {0});
  ASSERT_EQ(r.words.size(), 8u);
  EXPECT_EQ(r.words[0], 1u << 31 | 1u << 30 | 1u << 28);  // limits, level; level notifications
  EXPECT_EQ(r.words[1], 0u);
  EXPECT_EQ(r.words[2], 1200000u);
  EXPECT_EQ(r.words[3], 1200000u);
  EXPECT_EQ(r.Name(16), "cpu_perf");
  EXPECT_EQ(StatusOf(kPerformance, kPerfDomainAttributes, {1}), kNotFound);

  r = Call(kPerformance, kPerfDescribeLevels, {0, 0});
  EXPECT_EQ(r.words, (Words{3, 400000, 100, 50, 400000, 0, 800000, 250, 50, 800000, 1, 1200000, 500,
                            100, 1200000, 2}));
  // Room for two levels: two, one remaining; then the last.
  r = Call(kPerformance, kPerfDescribeLevels, {0, 0}, kReplyPrefix + 4 + 40);
  EXPECT_EQ(r.words[0], 2u | 1u << 16);
  EXPECT_EQ(r.words.size(), 11u);
  r = Call(kPerformance, kPerfDescribeLevels, {0, 2});
  EXPECT_EQ(r.words, (Words{1, 1200000, 500, 100, 1200000, 2}));
  EXPECT_EQ(StatusOf(kPerformance, kPerfDescribeLevels, {0, 3}), kInvalidParameters);
  EXPECT_EQ(Call(kPerformance, kPerfDescribeLevels, {0, 0}, kReplyPrefix + 23).status,
            kProtocolError);

  EXPECT_EQ(Call(kPerformance, kPerfLevelGet, {0}).words, Words{800000});
  EXPECT_EQ(StatusOf(kPerformance, kPerfLevelSet, {0, 1200000}), kSuccess);
  EXPECT_EQ(Call(kPerformance, kPerfLevelGet, {0}).words, Words{1200000});
  EXPECT_EQ(StatusOf(kPerformance, kPerfLevelSet, {0, 1000000}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kPerformance, kPerfLevelSet, {3, 400000}), kNotFound);

  EXPECT_EQ(Call(kPerformance, kPerfLimitsGet, {0}).words, (Words{1200000, 400000}));
  // Lowering the maximum moves the level down to the highest OPP allowed.
  EXPECT_EQ(StatusOf(kPerformance, kPerfLimitsSet, {0, 900000, 400000}), kSuccess);
  EXPECT_EQ(Call(kPerformance, kPerfLimitsGet, {0}).words, (Words{900000, 400000}));
  EXPECT_EQ(Call(kPerformance, kPerfLevelGet, {0}).words, Words{800000});
  EXPECT_EQ(StatusOf(kPerformance, kPerfLevelSet, {0, 1200000}), kOutOfRange);
  EXPECT_EQ(StatusOf(kPerformance, kPerfLimitsSet, {0, 400000, 800000}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kPerformance, kPerfLimitsSet, {0, 2000000, 400000}), kOutOfRange);
  EXPECT_EQ(StatusOf(kPerformance, kPerfLimitsSet, {0, 500000, 450000}), kOutOfRange);
  EXPECT_EQ(StatusOf(kPerformance, kPerfLimitsSet, {0, 400000}), kProtocolError);
  EXPECT_EQ(*device_->platform().Execute("get cpu_perf"), "perf:cpu_perf=800000,400000-900000");
  EXPECT_EQ(Call(kPerformance, kPerfDomainNameGet, {0}).Name(4), "cpu_perf");
  EXPECT_EQ(StatusOf(kPerformance, 0xb, {0, 0}), kNotSupported);  // fast channels
  EXPECT_EQ(StatusOf(kPerformance, kPerfNotifyLevel, {0, 1}), kSuccess);
  EXPECT_EQ(StatusOf(kPerformance, kPerfNotifyLevel, {0, 3}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kPerformance, kPerfNotifyLevel, {1, 1}), kNotFound);
  EXPECT_EQ(StatusOf(kPerformance, kPerfNotifyLevel, {0}), kProtocolError);
  Build(kTestPlatform, /*p2a=*/false);
  EXPECT_EQ(Call(kPerformance, kPerfDomainAttributes, {0}).words[0], 1u << 31 | 1u << 30);
  EXPECT_EQ(StatusOf(kPerformance, kPerfNotifyLevel, {0, 1}), kNotSupported);
}

// ---- Clock

TEST_F(ScmiDeviceTest, ClockDescription) {
  EXPECT_EQ(Call(kClock, kProtocolAttributes).words, Words{16u << 16 | 2});
  Result r = Call(kClock, kClockAttributes, {0});
  ASSERT_EQ(r.words.size(), 6u);
  EXPECT_EQ(r.words[0], 1u);  // enabled
  EXPECT_EQ(r.Name(4), "cpu");
  EXPECT_EQ(r.words[5], 0u);
  EXPECT_EQ(Call(kClock, kClockAttributes, {1}).words[0], 0u);
  EXPECT_EQ(StatusOf(kClock, kClockAttributes, {2}), kNotFound);

  r = Call(kClock, kClockDescribeRates, {0, 0});
  EXPECT_EQ(r.words, (Words{3, 400000000, 0, 800000000, 0, 1200000000, 0}));
  r = Call(kClock, kClockDescribeRates, {0, 1}, kReplyPrefix + 12);
  EXPECT_EQ(r.words, (Words{1 | 1u << 16, 800000000, 0}));
  EXPECT_EQ(StatusOf(kClock, kClockDescribeRates, {0, 3}), kInvalidParameters);
  r = Call(kClock, kClockDescribeRates, {1, 0});
  EXPECT_EQ(r.words, (Words{3 | 1u << 12, 1000000, 0, 100000000, 0, 1000000, 0}));
  EXPECT_EQ(StatusOf(kClock, kClockDescribeRates, {1, 1}), kInvalidParameters);
  EXPECT_EQ(Call(kClock, kClockDescribeRates, {1, 0}, kReplyPrefix + 27).status, kProtocolError);
  EXPECT_EQ(Call(kClock, kClockNameGet, {1}).Name(4), "uart");
}

TEST_F(ScmiDeviceTest, ClockRates) {
  EXPECT_EQ(Call(kClock, kClockRateGet, {0}).words, (Words{800000000, 0}));
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {0, 0, 1200000000, 0}), kSuccess);
  EXPECT_EQ(Call(kClock, kClockRateGet, {0}).words, (Words{1200000000, 0}));
  // Rounding: down (default), up, to the nearest.
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {0, 0, 700000000, 0}), kSuccess);
  EXPECT_EQ(Call(kClock, kClockRateGet, {0}).words[0], 400000000u);
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {1 << 2, 0, 700000000, 0}), kSuccess);
  EXPECT_EQ(Call(kClock, kClockRateGet, {0}).words[0], 800000000u);
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {2 << 2, 0, 1100000000, 0}), kSuccess);
  EXPECT_EQ(Call(kClock, kClockRateGet, {0}).words[0], 1200000000u);
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {0, 1, 24500000, 0}), kSuccess);
  EXPECT_EQ(Call(kClock, kClockRateGet, {1}).words[0], 24000000u);
  EXPECT_EQ(*device_->platform().Execute("get uart"), "clock:uart=24000000,off");
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {0, 0, 100, 0}), kOutOfRange);
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {1 << 2, 0, 0, 1}), kOutOfRange);
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {3 << 2, 0, 400000000, 0}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {1 << 4, 0, 400000000, 0}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {0, 2, 400000000, 0}), kNotFound);
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {0, 0, 400000000}), kProtocolError);

  EXPECT_EQ(StatusOf(kClock, kClockConfigSet, {1, 1}), kSuccess);
  EXPECT_EQ(Call(kClock, kClockAttributes, {1}).words[0], 1u);
  EXPECT_EQ(StatusOf(kClock, kClockConfigSet, {0, 0}), kSuccess);
  EXPECT_EQ(Call(kClock, kClockAttributes, {0}).words[0], 0u);
  EXPECT_EQ(StatusOf(kClock, kClockConfigSet, {0, 2}), kInvalidParameters);
}

TEST_F(ScmiDeviceTest, ClockAsynchronousRateSet) {
  Result r = Call(kClock, kClockRateSet, {1, 0, 400000000, 0});
  EXPECT_EQ(r.status, kSuccess);
  EXPECT_TRUE(r.words.empty());
  ASSERT_EQ(r.delayed.size(), 1u);
  // CLOCK_RATE_SET_COMPLETE: the command's header as a delayed response, status, clock, rate.
  EXPECT_EQ(WordsOf(r.delayed[0], 0),
            (Words{Hdr(kClock, kClockRateSet, 0x155, kDelayedResponse), 0, 0, 400000000, 0}));
  // Bit 1: no delayed response wanted.
  EXPECT_TRUE(Call(kClock, kClockRateSet, {3, 0, 400000000, 0}).delayed.empty());
  Build(kTestPlatform, /*p2a=*/false);
  EXPECT_EQ(Call(kClock, kProtocolAttributes).words, Words{2});  // no async without eventq
  EXPECT_EQ(StatusOf(kClock, kClockRateSet, {1, 0, 400000000, 0}), kNotSupported);
}

// ---- Sensor

TEST_F(ScmiDeviceTest, SensorDescriptions) {
  EXPECT_EQ(Call(kSensor, kProtocolAttributes).words, (Words{16u << 16 | 4, 0, 0, 0}));
  Result r = Call(kSensor, kSensorDescriptionGet, {0});
  ASSERT_EQ(r.status, kSuccess);
  // 52-byte descriptors: two fit in 128 bytes, two remain.
  ASSERT_EQ(r.data.size(), 4u + 2 * 52);
  EXPECT_EQ(r.words[0], 2u | 2u << 16);
  EXPECT_EQ(r.words[1], 0u);                                 // id
  EXPECT_EQ(r.words[2], 1u << 31 | 1u << 30 | 1u << 8 | 4);  // async, notify, ext attrs, 4 trips
  EXPECT_EQ(r.words[3], 1u << 27 | 0x1du << 11 | kUnitCelsius);  // 1 s updates, 10^-3 degrees
  EXPECT_EQ(r.Name(16), "temp");
  EXPECT_EQ(r.words[8], 0u);   // power
  EXPECT_EQ(r.words[9], 1u);   // resolution
  EXPECT_EQ(r.words[10], 0u);  // min 0
  EXPECT_EQ(r.words[11], 0u);
  EXPECT_EQ(r.words[12], 100000u);  // max
  EXPECT_EQ(r.words[13], 0u);
  EXPECT_EQ(r.words[14], 1u);  // the second descriptor
  r = Call(kSensor, kSensorDescriptionGet, {2});
  EXPECT_EQ(r.words[0], 2u);
  // The accelerometer: three axes, 100 ms updates (1 * 10^-1 s), m/s^2.
  EXPECT_EQ(r.words[3], 1u << 27 | 0x1fu << 22 | 3u << 16 | 0x1du << 11 | 1u << 8 |
                            kUnitMetersPerSecondSquared);
  EXPECT_EQ(r.words[10], static_cast<uint32_t>(-20000));
  EXPECT_EQ(r.words[11], 0xffffffffu);
  // The long name: cut in the descriptor, the extended-name bit, SENSOR_NAME_GET has it all.
  EXPECT_EQ(r.words[14], 3u);
  EXPECT_EQ(r.words[15], 1u << 31 | 1u << 30 | 1u << 29 | 1u << 8 | 4);
  EXPECT_EQ(r.Name(4 + 52 + 12), "a_sensor_with_a");
  r = Call(kSensor, kSensorNameGet, {3});
  EXPECT_EQ(r.words[0], 0u);
  EXPECT_EQ(r.Name(4), "a_sensor_with_a_long_name");
  EXPECT_EQ(StatusOf(kSensor, kSensorDescriptionGet, {4}), kInvalidParameters);
  EXPECT_EQ(Call(kSensor, kSensorDescriptionGet, {0}, kReplyPrefix + 55).status, kProtocolError);
  EXPECT_EQ(Call(kSensor, kSensorDescriptionGet, {0}, kReplyPrefix + 56).words[0], 1u | 3u << 16);

  Build(kTestPlatform, /*p2a=*/false);
  r = Call(kSensor, kSensorDescriptionGet, {0});
  EXPECT_EQ(r.words[2], 1u << 8 | 4);  // neither asynchronous reads nor notifications
}

TEST_F(ScmiDeviceTest, SensorAxes) {
  Result r = Call(kSensor, kSensorAxisDescriptionGet, {2, 0});
  ASSERT_EQ(r.status, kSuccess);
  ASSERT_EQ(r.data.size(), 4u + 2 * 48);  // two of three fit
  EXPECT_EQ(r.words[0], 2u | 1u << 26);
  EXPECT_EQ(r.words[1], 0u);
  EXPECT_EQ(r.words[2], 1u << 8);
  EXPECT_EQ(r.words[3], 0x1du << 11 | kUnitMetersPerSecondSquared);
  EXPECT_EQ(r.Name(16), "accel_X");
  EXPECT_EQ(r.words[8], 1u);
  EXPECT_EQ(r.words[9], static_cast<uint32_t>(-20000));
  EXPECT_EQ(r.words[11], 20000u);
  EXPECT_EQ(r.Name(4 + 48 + 12), "accel_Y");
  r = Call(kSensor, kSensorAxisDescriptionGet, {2, 2});
  EXPECT_EQ(r.words[0], 1u);
  EXPECT_EQ(r.Name(16), "accel_Z");
  EXPECT_EQ(StatusOf(kSensor, kSensorAxisDescriptionGet, {2, 3}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kSensor, kSensorAxisDescriptionGet, {0, 0}), kNotSupported);
  EXPECT_EQ(StatusOf(kSensor, kSensorAxisDescriptionGet, {9, 0}), kNotFound);
  r = Call(kSensor, kSensorAxisNameGet, {2, 1});
  EXPECT_EQ(r.words[0], 1u | 1u << 26);  // 68-byte entries: one fits
  EXPECT_EQ(r.words[1], 1u);
  EXPECT_EQ(r.Name(8), "accel_Y");
  EXPECT_EQ(StatusOf(kSensor, kSensorAxisNameGet, {1, 0}), kNotSupported);
}

TEST_F(ScmiDeviceTest, SensorReadings) {
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {0, 0}).words, (Words{45000, 0, 0, 0}));
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {2, 0}).words,
            (Words{1, 0, 0, 0, static_cast<uint32_t>(-2), 0xffffffff, 0, 0, 9807, 0, 0, 0}));
  ASSERT_OK(device_->platform().Execute("sensor temp 51500").status());
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {0, 0}).words, (Words{51500, 0, 0, 0}));
  EXPECT_EQ(StatusOf(kSensor, kSensorReadingGet, {4, 0}), kNotFound);
  EXPECT_EQ(StatusOf(kSensor, kSensorReadingGet, {0, 2}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kSensor, kSensorReadingGet, {0}), kProtocolError);
  // Three readings need 48 bytes.
  EXPECT_EQ(Call(kSensor, kSensorReadingGet, {2, 0}, kReplyPrefix + 47).status, kProtocolError);
  // Asynchronous: SENSOR_READING_COMPLETE with the sensor and its readings.
  Result r = Call(kSensor, kSensorReadingGet, {1, 1});
  EXPECT_EQ(r.status, kSuccess);
  EXPECT_TRUE(r.words.empty());
  ASSERT_EQ(r.delayed.size(), 1u);
  EXPECT_EQ(WordsOf(r.delayed[0], 0),
            (Words{Hdr(kSensor, kSensorReadingGet, 0x155, kDelayedResponse), 0, 1, 1800, 0, 0, 0}));
  Build(kTestPlatform, /*p2a=*/false);
  EXPECT_EQ(StatusOf(kSensor, kSensorReadingGet, {1, 1}), kNotSupported);
}

TEST_F(ScmiDeviceTest, SensorConfigAndIntervals) {
  // 1 s: SECS 1, EXP 0; enabled.
  EXPECT_EQ(Call(kSensor, kSensorConfigGet, {0}).words, Words{1u << 16 | 1});
  // 250 ms: 250 * 10^-3 s.
  const uint32_t config = 250u << 16 | 0x1du << 11 | 1;
  EXPECT_EQ(StatusOf(kSensor, kSensorConfigSet, {0, config}), kSuccess);
  EXPECT_EQ(Call(kSensor, kSensorConfigGet, {0}).words, Words{25u << 16 | 0x1eu << 11 | 1});
  EXPECT_EQ(StatusOf(kSensor, kSensorConfigSet, {0, 0}), kSuccess);  // disabled, same interval
  EXPECT_EQ(Call(kSensor, kSensorConfigGet, {0}).words, Words{25u << 16 | 0x1eu << 11});
  EXPECT_EQ(StatusOf(kSensor, kSensorConfigSet, {0, 3u << 9}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kSensor, kSensorConfigSet, {0, 1u << 4}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kSensor, kSensorConfigSet, {0, 1u << 16 | 0x1au << 11}), kOutOfRange);
  EXPECT_EQ(StatusOf(kSensor, kSensorConfigSet, {0, 2u << 16 | 4u << 11}), kOutOfRange);
  EXPECT_EQ(StatusOf(kSensor, kSensorConfigSet, {7, 1}), kNotFound);
  // The supported intervals: one triplet, 1 ms to 3600 s in steps of 1 ms.
  EXPECT_EQ(Call(kSensor, kSensorListUpdateIntervals, {0, 0}).words,
            (Words{3 | 1u << 12, 1u << 5 | 0x1d, 36u << 5 | 2, 1u << 5 | 0x1d}));
  EXPECT_EQ(StatusOf(kSensor, kSensorListUpdateIntervals, {0, 1}), kInvalidParameters);
}

TEST_F(ScmiDeviceTest, SensorNotificationsAndTripPoints) {
  EXPECT_EQ(StatusOf(kSensor, kSensorContinuousUpdateNotify, {0, 1}), kSuccess);
  EXPECT_EQ(StatusOf(kSensor, kSensorContinuousUpdateNotify, {0, 2}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kSensor, kSensorContinuousUpdateNotify, {8, 1}), kNotFound);
  EXPECT_EQ(StatusOf(kSensor, kSensorTripPointNotify, {0, 1}), kSuccess);
  EXPECT_EQ(StatusOf(kSensor, kSensorTripPointNotify, {0, 4}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kSensor, kSensorTripPointConfig, {0, 3u << 4 | 1, 50000, 0}), kSuccess);
  EXPECT_EQ(StatusOf(kSensor, kSensorTripPointConfig, {0, 4u << 4 | 1, 50000, 0}),
            kInvalidParameters);
  EXPECT_EQ(StatusOf(kSensor, kSensorTripPointConfig, {0, 1u << 12 | 1, 50000, 0}),
            kInvalidParameters);
  EXPECT_EQ(StatusOf(kSensor, kSensorTripPointConfig, {0, 1, 50000}), kProtocolError);
  {
    ScmiPlatform& p = device_->platform();
    std::lock_guard<std::mutex> lock(p.mu);
    EXPECT_TRUE(p.sensors[0].update_notify);
    EXPECT_TRUE(p.sensors[0].trip_notify);
    EXPECT_EQ(p.sensors[0].trips[3].events, 1);
    EXPECT_EQ(p.sensors[0].trips[3].value, 50000);
  }
  Build(kTestPlatform, /*p2a=*/false);
  EXPECT_EQ(StatusOf(kSensor, kSensorContinuousUpdateNotify, {0, 1}), kNotSupported);
  EXPECT_EQ(StatusOf(kSensor, kSensorTripPointNotify, {0, 1}), kNotSupported);
}

// ---- Reset domain

TEST_F(ScmiDeviceTest, ResetDomain) {
  EXPECT_EQ(Call(kResetDomain, kProtocolAttributes).words, Words{1});
  Result r = Call(kResetDomain, kResetDomainAttributes, {0});
  ASSERT_EQ(r.words.size(), 6u);
  EXPECT_EQ(r.words[0], 1u << 31);  // asynchronous resets
  EXPECT_EQ(r.words[1], 0u);
  EXPECT_EQ(r.Name(8), "eth");
  EXPECT_EQ(StatusOf(kResetDomain, kResetDomainAttributes, {1}), kNotFound);
  EXPECT_EQ(StatusOf(kResetDomain, kReset, {0, 1, 0}), kSuccess);  // autonomous cold reset
  EXPECT_EQ(*device_->platform().Execute("get eth"), "reset:eth=deasserted,1");
  EXPECT_EQ(StatusOf(kResetDomain, kReset, {0, 2, 0}), kSuccess);  // assert
  EXPECT_EQ(*device_->platform().Execute("get eth"), "reset:eth=asserted,1");
  EXPECT_EQ(StatusOf(kResetDomain, kReset, {0, 0, 0}), kSuccess);  // deassert
  EXPECT_EQ(*device_->platform().Execute("get eth"), "reset:eth=deasserted,1");
  EXPECT_EQ(StatusOf(kResetDomain, kReset, {0, 1, 0x80000005}), kSuccess);
  EXPECT_EQ(StatusOf(kResetDomain, kReset, {0, 1, 5}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kResetDomain, kReset, {0, 8, 0}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kResetDomain, kReset, {1, 1, 0}), kNotFound);
  r = Call(kResetDomain, kReset, {0, 5, 0});
  ASSERT_EQ(r.delayed.size(), 1u);
  EXPECT_EQ(WordsOf(r.delayed[0], 0),
            (Words{Hdr(kResetDomain, kReset, 0x155, kDelayedResponse), 0, 0}));
  EXPECT_EQ(Call(kResetDomain, kResetDomainNameGet, {0}).Name(4), "eth");
  Build(kTestPlatform, /*p2a=*/false);
  EXPECT_EQ(StatusOf(kResetDomain, kReset, {0, 5, 0}), kNotSupported);
}

// ---- Voltage

TEST_F(ScmiDeviceTest, Voltage) {
  EXPECT_EQ(Call(kVoltage, kProtocolAttributes).words, Words{2});
  Result r = Call(kVoltage, kVoltageDomainAttributes, {0});
  ASSERT_EQ(r.words.size(), 5u);
  EXPECT_EQ(r.words[0], 0u);
  EXPECT_EQ(r.Name(4), "vdd");
  EXPECT_EQ(StatusOf(kVoltage, kVoltageDomainAttributes, {2}), kNotFound);
  EXPECT_EQ(Call(kVoltage, kVoltageDescribeLevels, {0, 0}).words,
            (Words{3 | 1u << 12, 1800000, 3300000, 100000}));
  EXPECT_EQ(Call(kVoltage, kVoltageDescribeLevels, {1, 0}).words, (Words{2, 900000, 1000000}));
  EXPECT_EQ(Call(kVoltage, kVoltageDescribeLevels, {1, 1}).words, (Words{1, 1000000}));
  EXPECT_EQ(StatusOf(kVoltage, kVoltageDescribeLevels, {1, 2}), kInvalidParameters);

  EXPECT_EQ(Call(kVoltage, kVoltageLevelGet, {0}).words, Words{3300000});
  EXPECT_EQ(StatusOf(kVoltage, kVoltageLevelSet, {0, 0, 2500000}), kSuccess);
  EXPECT_EQ(Call(kVoltage, kVoltageLevelGet, {0}).words, Words{2500000});
  EXPECT_EQ(*device_->platform().Execute("get vdd"), "voltage:vdd=2500000,on");
  EXPECT_EQ(StatusOf(kVoltage, kVoltageLevelSet, {0, 0, 2550000}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kVoltage, kVoltageLevelSet, {0, 0, 3400000}), kOutOfRange);
  EXPECT_EQ(StatusOf(kVoltage, kVoltageLevelSet, {0, 0, 0xffffffff}), kOutOfRange);
  EXPECT_EQ(StatusOf(kVoltage, kVoltageLevelSet, {0, 1, 2500000}), kNotSupported);
  EXPECT_EQ(StatusOf(kVoltage, kVoltageLevelSet, {0, 2, 2500000}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kVoltage, kVoltageLevelSet, {1, 0, 950000}), kInvalidParameters);

  EXPECT_EQ(Call(kVoltage, kVoltageConfigGet, {0}).words, Words{kVoltageOn});
  EXPECT_EQ(StatusOf(kVoltage, kVoltageConfigSet, {0, kVoltageOff}), kSuccess);
  EXPECT_EQ(Call(kVoltage, kVoltageConfigGet, {0}).words, Words{kVoltageOff});
  EXPECT_EQ(StatusOf(kVoltage, kVoltageConfigSet, {0, 1}), kInvalidParameters);
  EXPECT_EQ(StatusOf(kVoltage, kVoltageConfigSet, {0}), kProtocolError);
  EXPECT_EQ(Call(kVoltage, kVoltageDomainNameGet, {1}).Name(4), "vlist");
}

// ---- The virtio queues

class ScmiQueueTest : public ScmiDeviceTest {
 protected:
  void SetUp() override {
    ScmiDeviceTest::SetUp();
    for (int i = 0; i < 2; ++i) {
      TestQueue::Options options;
      options.index = i;
      queues_[i] = *TestQueue::Create(&ram_, options);
      ASSERT_OK(queues_[i]->Start(*device_));
    }
    request_ = ram_.Allocate(64);
    reply_ = ram_.Allocate(256);
    events_ = ram_.Allocate(16 * 256);
  }
  void TearDown() override {
    for (auto& q : queues_) q->Stop(*device_);
  }

  // Sends `words` on the command queue with `room` reply bytes; returns the used length.
  uint32_t Send(const Words& words, uint32_t room) {
    std::memcpy(ram_.Host(request_, words.size() * 4), words.data(), words.size() * 4);
    std::memset(ram_.Host(reply_, 256), 0xee, 256);
    EXPECT_OK(
        queues_[0]->Add({{request_, static_cast<uint32_t>(words.size() * 4)}}, {{reply_, room}}));
    queues_[0]->Run(*device_);
    std::vector<UsedElement> used = queues_[0]->Used();
    EXPECT_EQ(used.size(), 1u);
    return used.empty() ? 0 : used[0].len;
  }
  Words Reply(uint32_t len) {
    Words w(len / 4);
    if (!w.empty()) std::memcpy(w.data(), ram_.Host(reply_, len), len);
    return w;
  }
  void PostEventBuffers(int n, uint32_t size = 128) {
    for (int i = 0; i < n; ++i) {
      ASSERT_OK(queues_[1]->Add({}, {{events_ + 256 * posted_, size}}));
      ++posted_;
    }
  }
  // The event messages returned so far, as words.
  std::vector<Words> Events() {
    std::vector<Words> out;
    for (const UsedElement& used : queues_[1]->Used()) {
      Words w(used.len / 4);
      if (!w.empty()) std::memcpy(w.data(), ram_.Host(events_ + 256 * used.id, used.len), used.len);
      out.push_back(w);
    }
    return out;
  }

  FakeGuestMemory ram_;
  std::unique_ptr<TestQueue> queues_[2];
  uint64_t request_ = 0, reply_ = 0, events_ = 0;
  int posted_ = 0;
};

TEST_F(ScmiQueueTest, InfoAndFeatures) {
  const DeviceInfo info = device_->Info();
  EXPECT_EQ(info.virtio_id, 32u);
  EXPECT_EQ(info.num_queues, 2u);
  EXPECT_EQ(info.config_size, 0u);
  EXPECT_EQ(info.features, Bit(kFeatureVersion1) | Bit(kFeatureP2aChannels));
}

TEST_F(ScmiQueueTest, CommandsAnsweredWithinTheBuffer) {
  const uint32_t hdr = Hdr(kBase, kBaseDiscoverVendor, 7);
  EXPECT_EQ(Send({hdr}, 136), 24u);
  Words reply = Reply(24);
  EXPECT_EQ(reply[0], hdr);
  EXPECT_EQ(reply[1], 0u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&reply[2])), "vhost-user");
  // A buffer too small for the vendor: the status alone.
  EXPECT_EQ(Send({hdr}, 12), 8u);
  EXPECT_EQ(Reply(8), (Words{hdr, static_cast<uint32_t>(kProtocolError)}));
  // Too small for a status: returned empty.
  EXPECT_EQ(Send({hdr}, 4), 0u);
  // A command split over descriptors reads as one.
  const Words split = {Hdr(kClock, kClockRateGet, 9), 0};
  std::memcpy(ram_.Host(request_, 8), split.data(), 8);
  ASSERT_OK(queues_[0]->Add({{request_, 3}, {request_ + 3, 5}}, {{reply_, 8}, {reply_ + 8, 8}}));
  queues_[0]->Run(*device_);
  ASSERT_EQ(queues_[0]->Used()[0].len, 16u);
  EXPECT_EQ(Reply(16), (Words{split[0], 0, 800000000, 0}));
}

TEST_F(ScmiQueueTest, SensorUpdateNotification) {
  EXPECT_EQ(Send({Hdr(kSensor, kSensorContinuousUpdateNotify), 2, 1}, 136), 8u);
  PostEventBuffers(2);
  queues_[1]->Run(*device_);
  EXPECT_TRUE(Events().empty());
  // The host moves the accelerometer: the guest hears of it.
  ASSERT_OK(device_->platform().Execute("sensor accel 5,6,7").status());
  ASSERT_TRUE(queues_[1]->RunWhenReady(*device_, absl::Seconds(10)).has_value());
  std::vector<Words> events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], (Words{Hdr(kSensor, kSensorUpdate, 0, kNotification), 0, 2, 5, 0, 0, 0, 6, 0,
                              0, 0, 7, 0, 0, 0}));
  // A sensor without notifications stays quiet.
  ASSERT_OK(device_->platform().Execute("sensor temp 1000").status());
  queues_[1]->Run(*device_);
  EXPECT_TRUE(Events().empty());
}

TEST_F(ScmiQueueTest, PowerAndPerformanceChangesOnTheHost) {
  EXPECT_EQ(Send({Hdr(kPowerDomain, kPowerStateNotify), 0, 1}, 136), 8u);
  EXPECT_EQ(Send({Hdr(kPerformance, kPerfNotifyLevel), 0, 1}, 136), 8u);
  PostEventBuffers(3);
  ASSERT_OK(device_->platform().Execute("power gpu on").status());
  ASSERT_OK(device_->platform().Execute("perf cpu_perf 1200000").status());
  queues_[1]->Run(*device_);
  std::vector<Words> events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0],
            (Words{Hdr(kPowerDomain, kPowerStateChanged, 0, kNotification), 0, 0, kPowerStateOn}));
  EXPECT_EQ(events[1],
            (Words{Hdr(kPerformance, kPerfLevelChanged, 0, kNotification), 0, 0, 1200000}));
  // The guest's own changes are not notified back to it.
  EXPECT_EQ(Send({Hdr(kPerformance, kPerfLevelSet), 0, 400000}, 136), 8u);
  queues_[1]->Run(*device_);
  EXPECT_TRUE(Events().empty());
}

TEST_F(ScmiQueueTest, TripPointEvent) {
  EXPECT_EQ(Send({Hdr(kSensor, kSensorTripPointNotify), 0, 1}, 136), 8u);
  EXPECT_EQ(Send({Hdr(kSensor, kSensorTripPointConfig), 0, 2u << 4 | 3, 50000, 0}, 136), 8u);
  PostEventBuffers(2);
  ASSERT_OK(device_->platform().Execute("sensor temp 55000").status());
  ASSERT_OK(device_->platform().Execute("sensor temp 40000").status());
  queues_[1]->Run(*device_);
  std::vector<Words> events = Events();
  ASSERT_EQ(events.size(), 2u);
  const uint32_t hdr = Hdr(kSensor, kSensorTripPointEvent, 0, kNotification);
  EXPECT_EQ(events[0], (Words{hdr, 0, 0, 2 | 1u << 16}));  // rising through trip point 2
  EXPECT_EQ(events[1], (Words{hdr, 0, 0, 2}));             // falling
}

TEST_F(ScmiQueueTest, DelayedResponseAfterItsResponse) {
  PostEventBuffers(1);
  const uint32_t hdr = Hdr(kClock, kClockRateSet, 33);
  EXPECT_EQ(Send({hdr, 1, 0, 1200000000, 0}, 136), 8u);
  EXPECT_EQ(Reply(8), (Words{hdr, 0}));
  queues_[1]->Run(*device_);
  std::vector<Words> events = Events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0],
            (Words{Hdr(kClock, kClockRateSet, 33, kDelayedResponse), 0, 0, 1200000000, 0}));
}

TEST_F(ScmiQueueTest, EventsWaitForBuffersAndSmallBuffersComeBackEmpty) {
  EXPECT_EQ(Send({Hdr(kSystemPower, kSystemPowerStateNotify), 1}, 136), 8u);
  ASSERT_OK(device_->platform().Execute("request shutdown").status());
  ASSERT_OK(device_->platform().Execute("request reboot").status());
  queues_[1]->Run(*device_);
  EXPECT_EQ(device_->pending_events(), 2u);
  PostEventBuffers(1, /*size=*/8);  // too small for a 20-byte notification
  PostEventBuffers(1);
  queues_[1]->Run(*device_);
  std::vector<Words> events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_TRUE(events[0].empty());
  const uint32_t hdr = Hdr(kSystemPower, kSystemPowerStateNotifier, 0, kNotification);
  EXPECT_EQ(events[1], (Words{hdr, 0, 1, kSystemColdReset, 0}));
  EXPECT_EQ(device_->pending_events(), 0u);
}

TEST_F(ScmiQueueTest, StopReturnsHeldBuffersAndResetForgetsNotifications) {
  EXPECT_EQ(Send({Hdr(kSensor, kSensorContinuousUpdateNotify), 0, 1}, 136), 8u);
  PostEventBuffers(3);
  queues_[1]->Run(*device_);
  queues_[1]->Stop(*device_);
  EXPECT_EQ(queues_[1]->Used().size(), 3u);
  device_->Reset();
  ASSERT_OK(queues_[1]->Start(*device_));
  PostEventBuffers(1);
  ASSERT_OK(device_->platform().Execute("sensor temp 1000").status());
  queues_[1]->Run(*device_);
  EXPECT_TRUE(Events().empty());
}

}  // namespace
}  // namespace vhost::scmi
