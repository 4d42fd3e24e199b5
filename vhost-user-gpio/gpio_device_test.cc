// The virtio-gpio model on real rings in fake guest memory, against the simulated chip.
#include "vhost-user-gpio/gpio_device.h"

#include <linux/virtio_gpio.h>

#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "common/virtio/features.h"
#include "gtest/gtest.h"
#include "vhost-user-gpio/simulated_chip.h"

namespace vhost {
namespace {

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UsedElement;

// How long a test waits for a wake-up that must already have been sent: only a failing test
// waits this long.
constexpr absl::Duration kReady = absl::Seconds(10);

constexpr uint8_t kOk = VIRTIO_GPIO_STATUS_OK;
constexpr uint8_t kErr = VIRTIO_GPIO_STATUS_ERR;
constexpr uint8_t kValid = VIRTIO_GPIO_IRQ_STATUS_VALID;
constexpr uint8_t kInvalid = VIRTIO_GPIO_IRQ_STATUS_INVALID;

struct Response {
  uint8_t status = 0xff;
  uint8_t value = 0xff;
  uint32_t len = 0;
};

class GpioDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    request_ = ram_.Allocate(sizeof(virtio_gpio_request));
    response_ = ram_.Allocate(4096);
    irq_buffers_ = ram_.Allocate(64 * 16);
    Build(Bit(kFeatureVersion1) | Bit(VIRTIO_GPIO_F_IRQ));
  }
  void TearDown() override { StopQueues(); }

  void Build(uint64_t features) {
    StopQueues();
    std::vector<SimulatedLine> named = *ParseSimulatedLines("button@in,led@out,free");
    auto chip = std::make_unique<SimulatedChip>(5, named);
    chip_ = chip.get();
    device_ = std::make_unique<GpioDevice>(std::move(chip));
    ASSERT_OK(device_->SetFeatures(features));
    for (int i = 0; i < 2; ++i) {
      TestQueue::Options options;
      options.index = i;
      options.features = features;
      queues_[i] = *TestQueue::Create(&ram_, options);
      ASSERT_OK(queues_[i]->Start(*device_));
    }
  }
  void StopQueues() {
    for (auto& queue : queues_) {
      if (queue) queue->Stop(*device_);
      queue.reset();
    }
  }

  // Sends one request with a `response_len`-byte response buffer and returns the response.
  Response Request(uint16_t type, uint16_t gpio, uint32_t value, uint32_t response_len = 2,
                   uint32_t request_len = sizeof(virtio_gpio_request)) {
    const virtio_gpio_request request{type, gpio, value};
    std::memset(ram_.Host(request_, 16), 0, 16);
    std::memcpy(ram_.Host(request_, 8), &request, sizeof(request));
    std::memset(ram_.Host(response_, 4096), 0xff, 4096);
    EXPECT_OK(queues_[0]->Add({{request_, request_len}}, {{response_, response_len}}));
    EXPECT_EQ(queues_[0]->Run(*device_).kind(), QueueResult::Kind::kDrained);
    std::vector<UsedElement> used = queues_[0]->Used();
    Response r;
    if (used.empty()) return r;
    EXPECT_EQ(used.size(), 1u);
    r.len = used[0].len;
    r.status = *ram_.Host(response_);
    r.value = *ram_.Host(response_ + 1);
    return r;
  }
  uint8_t Status(uint16_t type, uint16_t gpio, uint32_t value) {
    return Request(type, gpio, value).status;
  }

  // Queues an interrupt buffer pair for `line` (unmasking it) and runs the event queue.
  void Unmask(uint16_t line) {
    const uint64_t slot = next_slot_++ % 64;
    const uint64_t req = irq_buffers_ + slot * 16;
    std::memcpy(ram_.Host(req, 2), &line, 2);
    *ram_.Host(req + 8) = 0xee;
    auto id = queues_[1]->Add({{req, 2}}, {{req + 8, 1}});
    ASSERT_OK(id.status());
    buffers_[*id] = {line, req + 8};
    RunEvents();
  }
  void RunEvents() {
    // Held buffers wait for events: the worker must sleep, not spin on them.
    EXPECT_EQ(queues_[1]->Run(*device_).kind(), QueueResult::Kind::kDrained);
  }
  // The interrupt buffers returned since the last call: (line, status), in order.
  std::vector<std::pair<uint16_t, uint8_t>> Returned() {
    std::vector<std::pair<uint16_t, uint8_t>> out;
    for (const UsedElement& used : queues_[1]->Used()) {
      const auto& buffer = buffers_[used.id];
      EXPECT_EQ(used.len, 1u);
      out.push_back({buffer.first, *ram_.Host(buffer.second)});
    }
    return out;
  }
  void Drive(uint16_t line, bool level) {
    chip_->Drive(line, level);
    RunEvents();
  }

  FakeGuestMemory ram_{1 << 20};
  uint64_t request_ = 0, response_ = 0, irq_buffers_ = 0;  // gpas
  SimulatedChip* chip_ = nullptr;
  std::unique_ptr<GpioDevice> device_;
  std::unique_ptr<TestQueue> queues_[2];
  std::map<uint16_t, std::pair<uint16_t, uint64_t>> buffers_;  // id -> line, response gpa
  uint64_t next_slot_ = 0;
};

using Returns = std::vector<std::pair<uint16_t, uint8_t>>;

TEST_F(GpioDeviceTest, ConfigAndNames) {
  EXPECT_EQ(device_->Info().virtio_id, 41u);
  EXPECT_EQ(device_->Info().num_queues, 2u);
  EXPECT_TRUE(device_->Info().features & Bit(VIRTIO_GPIO_F_IRQ));
  virtio_gpio_config config;
  ASSERT_OK(
      device_->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&config), sizeof(config))));
  EXPECT_EQ(config.ngpio, 5);
  // A read reaching past the structure is refused, not served from beyond it.
  uint8_t past[2];
  EXPECT_EQ(device_->ReadConfig(sizeof(config) - 1, absl::MakeSpan(past)).code(),
            absl::StatusCode::kOutOfRange);
  const std::string names("button\0led\0free\0line3\0line4\0", 28);
  EXPECT_EQ(config.gpio_names_size, names.size());
  Response r = Request(VIRTIO_GPIO_MSG_GET_NAMES, 0, 0, 1 + names.size());
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.len, 1 + names.size());
  EXPECT_EQ(std::string(reinterpret_cast<char*>(ram_.Host(response_ + 1)), names.size()), names);
  // A response buffer too small for the names.
  EXPECT_EQ(Request(VIRTIO_GPIO_MSG_GET_NAMES, 0, 0, names.size()).status, kErr);
}

TEST_F(GpioDeviceTest, DirectionsHonourTheHostsRestrictions) {
  EXPECT_EQ(Request(VIRTIO_GPIO_MSG_GET_DIRECTION, 0, 0).value, VIRTIO_GPIO_DIRECTION_IN);
  EXPECT_EQ(Request(VIRTIO_GPIO_MSG_GET_DIRECTION, 1, 0).value, VIRTIO_GPIO_DIRECTION_OUT);
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 0, VIRTIO_GPIO_DIRECTION_OUT), kErr);
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 1, VIRTIO_GPIO_DIRECTION_IN), kErr);
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 2, VIRTIO_GPIO_DIRECTION_OUT), kOk);
  EXPECT_EQ(Request(VIRTIO_GPIO_MSG_GET_DIRECTION, 2, 0).value, VIRTIO_GPIO_DIRECTION_OUT);
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 2, VIRTIO_GPIO_DIRECTION_NONE), kOk);
  EXPECT_EQ(Request(VIRTIO_GPIO_MSG_GET_DIRECTION, 2, 0).value, VIRTIO_GPIO_DIRECTION_NONE);
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_GET_VALUE, 2, 0), kErr);  // released
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 2, 3), kErr);
}

TEST_F(GpioDeviceTest, ValuesReachTheChipAndComeBack) {
  // The value set before the line becomes an output is the one it starts with.
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_SET_VALUE, 2, 1), kOk);
  EXPECT_EQ(chip_->Describe(2), "in 0");
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 2, VIRTIO_GPIO_DIRECTION_OUT), kOk);
  EXPECT_EQ(chip_->Describe(2), "out 1");
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_SET_VALUE, 2, 0), kOk);
  EXPECT_EQ(chip_->Describe(2), "out 0");
  EXPECT_EQ(Request(VIRTIO_GPIO_MSG_GET_VALUE, 2, 0).value, 0);
  chip_->Drive(0, true);
  Response r = Request(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0);
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.value, 1);
  EXPECT_EQ(r.len, 2u);
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_SET_VALUE, 2, 2), kErr);
}

TEST_F(GpioDeviceTest, BadRequestsGetErr) {
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_GET_VALUE, 5, 0), kErr);  // no such line
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_GET_VALUE, 0xffff, 0), kErr);
  EXPECT_EQ(Status(0x77, 0, 0), kErr);  // unknown type
  EXPECT_EQ(Status(0, 0, 0), kErr);
  EXPECT_EQ(Request(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0, 2, 6).status, kErr);   // short request
  EXPECT_EQ(Request(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0, 2, 12).status, kErr);  // long request
  Response r = Request(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0, 1);                 // response too short
  EXPECT_EQ(r.status, kErr);
  EXPECT_EQ(r.len, 1u);
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, 7), kErr);  // not a trigger type
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 1, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kErr);  // out
  // Still serving after all that.
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0), kOk);
}

TEST_F(GpioDeviceTest, InterruptsNeedTheFeature) {
  Build(Bit(kFeatureVersion1));
  EXPECT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kErr);
}

TEST_F(GpioDeviceTest, RisingEdgeDeliveredOnceWhileUnmasked) {
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  Unmask(0);
  EXPECT_TRUE(Returned().empty());
  Drive(0, true);
  EXPECT_EQ(Returned(), (Returns{{0, kValid}}));
  Drive(0, false);  // falling: not this trigger
  Unmask(0);
  EXPECT_TRUE(Returned().empty());
  Drive(0, true);
  EXPECT_EQ(Returned(), (Returns{{0, kValid}}));
  EXPECT_TRUE(Returned().empty());
}

TEST_F(GpioDeviceTest, EdgesWhileMaskedAreLatchedAndDeliveredOnUnmask) {
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH), kOk);
  Drive(0, true);   // masked: latched
  Drive(0, false);  // coalesces with the latched one
  EXPECT_TRUE(Returned().empty());
  Unmask(0);
  EXPECT_EQ(Returned(), (Returns{{0, kValid}}));
  Unmask(0);  // nothing more was latched
  EXPECT_TRUE(Returned().empty());
  Drive(0, true);
  EXPECT_EQ(Returned(), (Returns{{0, kValid}}));
}

TEST_F(GpioDeviceTest, LevelInterruptRepeatsWhileActiveAndIsNotLatched) {
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH), kOk);
  Drive(2, true);
  Drive(2, false);  // active and gone while masked: not latched
  Unmask(2);
  EXPECT_TRUE(Returned().empty());
  Drive(2, true);
  EXPECT_EQ(Returned(), (Returns{{2, kValid}}));
  Unmask(2);  // still high: fires again at once
  EXPECT_EQ(Returned(), (Returns{{2, kValid}}));
  Drive(2, false);
  Unmask(2);
  EXPECT_TRUE(Returned().empty());
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_NONE), kOk);
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_LEVEL_LOW), kOk);
  RunEvents();
  EXPECT_EQ(Returned(), (Returns{{2, kInvalid}}));  // the disable returned the held buffer
  Unmask(2);
  EXPECT_EQ(Returned(), (Returns{{2, kValid}}));  // low is now active
}

TEST_F(GpioDeviceTest, DisablingReturnsTheHeldBufferInvalid) {
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  Unmask(0);
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_NONE), kOk);
  RunEvents();
  EXPECT_EQ(Returned(), (Returns{{0, kInvalid}}));
  Drive(0, true);
  EXPECT_TRUE(Returned().empty());
}

TEST_F(GpioDeviceTest, BadEventBuffersComeBackInvalid) {
  Unmask(0);  // not enabled
  EXPECT_EQ(Returned(), (Returns{{0, kInvalid}}));
  Unmask(9);  // no such line
  EXPECT_EQ(Returned(), (Returns{{9, kInvalid}}));
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  Unmask(0);
  Unmask(0);  // a second pair for the same line
  EXPECT_EQ(Returned(), (Returns{{0, kInvalid}}));
  Drive(0, true);
  EXPECT_EQ(Returned(), (Returns{{0, kValid}}));
}

TEST_F(GpioDeviceTest, InterruptsArriveInTheOrderOfTheEdges) {
  for (uint16_t line : {0, 2, 3}) {
    ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, line, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
    Unmask(line);
  }
  chip_->Drive(3, true);
  chip_->Drive(0, true);
  chip_->Drive(2, true);
  RunEvents();
  EXPECT_EQ(Returned(), (Returns{{3, kValid}, {0, kValid}, {2, kValid}}));
}

TEST_F(GpioDeviceTest, StoppingTheQueueHandsHeldBuffersBack) {
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  Unmask(0);
  queues_[1]->Stop(*device_);
  EXPECT_EQ(Returned(), (Returns{{0, kInvalid}}));
  // Nothing stays in flight: the ring position the front end gets is past the buffer.
  EXPECT_EQ(queues_[1]->context().in_flight(), 0u);
  EXPECT_EQ(queues_[1]->queue().Base(), 1u);
}

TEST_F(GpioDeviceTest, StoppingHandsBackOnlyWhatIsHeld) {
  for (uint16_t line : {0, 2}) {
    ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, line, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
    Unmask(line);
  }
  Drive(2, true);
  EXPECT_EQ(Returned(), (Returns{{2, kValid}}));
  queues_[1]->Stop(*device_);
  EXPECT_EQ(Returned(), (Returns{{0, kInvalid}}));
  EXPECT_EQ(queues_[1]->context().in_flight(), 0u);
  EXPECT_EQ(queues_[1]->queue().Base(), 2u);
  // After the restart the line is unmasked again by a new buffer, as after a fresh start.
  ASSERT_OK(queues_[1]->Start(*device_));
  Unmask(0);
  Drive(0, true);
  EXPECT_EQ(Returned(), (Returns{{0, kValid}}));
}

TEST_F(GpioDeviceTest, ARequestWakesTheEventQueue) {
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  Unmask(0);
  // The request queue's thread disables the interrupt: the event queue must run without a kick
  // to hand the buffer back.
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_NONE), kOk);
  ASSERT_TRUE(queues_[1]->RunWhenReady(*device_, kReady).has_value());
  EXPECT_EQ(Returned(), (Returns{{0, kInvalid}}));
}

TEST_F(GpioDeviceTest, AnEdgeWakesTheEventQueue) {
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  Unmask(0);
  chip_->Drive(0, true);  // the chip's event fd, watched by the event queue
  ASSERT_TRUE(queues_[1]->RunWhenReady(*device_, kReady).has_value());
  EXPECT_EQ(Returned(), (Returns{{0, kValid}}));
}

TEST_F(GpioDeviceTest, ChangesWhileTheEventQueueIsStoppedAreKept) {
  queues_[1]->Stop(*device_);
  // Enabled, and an edge, while no event queue serves: its next start sees both.
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH), kOk);
  chip_->Drive(0, true);
  chip_->Drive(2, true);
  ASSERT_OK(queues_[1]->Start(*device_));
  RunEvents();
  Unmask(0);
  Unmask(2);
  EXPECT_EQ(Returned(), (Returns{{0, kValid}, {2, kValid}}));
}

TEST_F(GpioDeviceTest, ResetReleasesEverything) {
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 2, VIRTIO_GPIO_DIRECTION_OUT), kOk);
  ASSERT_EQ(Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  device_->Reset();
  EXPECT_EQ(chip_->Describe(2), "in 0");
  chip_->Drive(0, true);
  EXPECT_TRUE(chip_->TakeEvents().empty());  // no longer watched
}

TEST(SimulatedChipTest, ControlCommands) {
  SimulatedChip chip(3, *ParseSimulatedLines("a,b@out"));
  EXPECT_EQ(*chip.Execute("lines"), "3 a,b,line2");
  EXPECT_EQ(*chip.Execute("get b"), "out 0");
  EXPECT_OK(chip.Execute("set a 1"));
  EXPECT_EQ(*chip.Execute("get 0"), "in 1");
  EXPECT_OK(chip.WatchEdges(0, true));
  EXPECT_OK(chip.Execute("pulse a"));
  auto events = chip.TakeEvents();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_FALSE(events[0].level);
  EXPECT_TRUE(events[1].level);
  EXPECT_FALSE(chip.Execute("set 3 1").ok());
  EXPECT_FALSE(chip.Execute("set a 2").ok());
  EXPECT_FALSE(chip.Execute("frobnicate a").ok());
  EXPECT_FALSE(chip.Execute("").ok());
  EXPECT_FALSE(ParseSimulatedLines("x@sideways").ok());
  EXPECT_FALSE(ParseSimulatedLines("a,,b").ok());
}

}  // namespace
}  // namespace vhost
