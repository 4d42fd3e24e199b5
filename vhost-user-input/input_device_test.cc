// The virtio-input model on real rings in fake guest memory, with a fake event source.
#include "vhost-user-input/input_device.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/time/clock.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::StatusIs;
using ::vhost::testing::TestQueue;

class FakeSource : public EventSource {
 public:
  FakeSource() {
    description_.name = "fake pad";
    description_.serial = "SN1";
    description_.ids = {BUS_USB, 0x1234, 0x5678, 0x0100};
    description_.properties = {1u << INPUT_PROP_DIRECT};
    description_.SetCode(EV_KEY, BTN_TOUCH);
    description_.SetCode(EV_ABS, ABS_X);
    description_.axes[ABS_X] = {0, 1023, 1, 2, 3};
    description_.SetCode(EV_LED, LED_CAPSL);
  }
  const InputDescription& description() const override { return description_; }
  InputDescription& description() { return description_; }
  void WriteStatus(const virtio_input_event& event) override { status.push_back(event); }
  std::vector<virtio_input_event> status;

 private:
  InputDescription description_;
};

class InputDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto source = std::make_unique<FakeSource>();
    source_ = source.get();
    device_ = std::make_unique<InputDevice>(std::move(source));
    for (int i = 0; i < 2; ++i) {
      TestQueue::Options options;
      options.index = i;
      options.size = 16;
      auto queue = TestQueue::Create(&ram_, options);
      ASSERT_OK(queue);
      queues_[i] = *std::move(queue);
      ASSERT_OK(queues_[i]->Start(*device_));
    }
    events_ = ram_.Allocate(8 * 64);
    status_ = ram_.Allocate(8 * 16);
  }
  void TearDown() override {
    for (auto& queue : queues_) queue->Stop(*device_);
  }
  QueueResult::Kind Run(int q) { return queues_[q]->Run(*device_).kind(); }
  virtio_input_config Select(uint8_t select, uint8_t subsel) {
    const uint8_t sel[2] = {select, subsel};
    EXPECT_OK(device_->WriteConfig(0, sel));
    virtio_input_config c;
    EXPECT_OK(device_->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&c), sizeof(c))));
    return c;
  }
  void GiveEventBuffers(int count, uint32_t len = 8) {
    for (int i = 0; i < count; ++i) {
      ASSERT_OK(queues_[0]->Add({}, {{events_ + 8u * next_buffer_, len}}));
      ++next_buffer_;
    }
  }
  virtio_input_event EventAt(int buffer) {
    virtio_input_event e;
    std::memcpy(&e, ram_.Host(events_ + 8 * buffer, 8), 8);
    return e;
  }
  int UsedCount(int q) { return static_cast<int>(queues_[q]->Used().size()); }
  // Status buffer `i` holding `event`, in the status queue.
  void AddStatus(int i, const virtio_input_event& event, uint32_t len = 8) {
    std::memcpy(ram_.Host(status_ + 8 * i, 8), &event, 8);
    ASSERT_OK(queues_[1]->Add({{status_ + 8u * i, len}}, {}));
  }

  FakeGuestMemory ram_{1 << 20};
  std::unique_ptr<TestQueue> queues_[2];
  std::unique_ptr<InputDevice> device_;
  uint64_t events_ = 0;  // the guest's event buffers, 8 bytes each
  uint64_t status_ = 0;  // the guest's status buffers
  FakeSource* source_ = nullptr;
  int next_buffer_ = 0;
};

TEST_F(InputDeviceTest, ConfigSelectorsDescribeTheSource) {
  EXPECT_EQ(device_->Info().virtio_id, 18u);
  EXPECT_EQ(device_->Info().num_queues, 2u);
  virtio_input_config c = Select(VIRTIO_INPUT_CFG_ID_NAME, 0);
  EXPECT_EQ(std::string(c.u.string, c.size), "fake pad");
  c = Select(VIRTIO_INPUT_CFG_ID_SERIAL, 0);
  EXPECT_EQ(std::string(c.u.string, c.size), "SN1");
  c = Select(VIRTIO_INPUT_CFG_ID_DEVIDS, 0);
  EXPECT_EQ(c.u.ids.vendor, 0x1234);
  c = Select(VIRTIO_INPUT_CFG_PROP_BITS, 0);
  EXPECT_EQ(c.size, 1);
  EXPECT_EQ(c.u.bitmap[0], 1u << INPUT_PROP_DIRECT);
  c = Select(VIRTIO_INPUT_CFG_EV_BITS, EV_KEY);
  EXPECT_EQ(c.size, BTN_TOUCH / 8 + 1);
  c = Select(VIRTIO_INPUT_CFG_ABS_INFO, ABS_X);
  EXPECT_EQ(c.u.abs.max, 1023u);
  EXPECT_EQ(c.u.abs.res, 3u);
  EXPECT_EQ(Select(VIRTIO_INPUT_CFG_ABS_INFO, ABS_Y).size, 0);
  EXPECT_EQ(Select(VIRTIO_INPUT_CFG_EV_BITS, EV_REL).size, 0);
  EXPECT_EQ(Select(0x42, 0).size, 0);                      // unknown selector
  EXPECT_EQ(Select(VIRTIO_INPUT_CFG_ID_NAME, 1).size, 0);  // unknown subselector
}

// A source without properties (most keyboards): the empty bitmap reads as size 0 (under the
// sanitizers, a copy from its null data would stop the daemon at the guest's first probe).
TEST(InputConfigSpaceTest, EmptyBitmapsReadAsEmpty) {
  InputDescription description;
  description.name = "plain keyboard";
  InputConfigSpace config(description);
  const uint8_t select[2] = {VIRTIO_INPUT_CFG_PROP_BITS, 0};
  ASSERT_OK(config.Write(0, select));
  virtio_input_config c = config.Current();
  EXPECT_EQ(c.size, 0);
  EXPECT_EQ(c.u.bitmap[0], 0);
}

TEST_F(InputDeviceTest, OnlySelectAndSubselAreWritable) {
  const uint8_t byte = 7;
  EXPECT_THAT(device_->WriteConfig(2, absl::MakeConstSpan(&byte, 1)),
              StatusIs(absl::StatusCode::kPermissionDenied));
  EXPECT_THAT(device_->WriteConfig(8, absl::MakeConstSpan(&byte, 1)),
              StatusIs(absl::StatusCode::kPermissionDenied));
  // A whole-structure write (as QEMU does) changes select only.
  std::vector<uint8_t> whole(sizeof(virtio_input_config), 0xee);
  whole[0] = VIRTIO_INPUT_CFG_ID_NAME;
  whole[1] = 0;
  ASSERT_OK(device_->WriteConfig(0, whole));
  virtio_input_config c;
  ASSERT_OK(device_->ReadConfig(0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&c), sizeof(c))));
  EXPECT_EQ(std::string(c.u.string, c.size), "fake pad");
}

TEST_F(InputDeviceTest, EventsWaitForGuestBuffersAndKeepTheirOrder) {
  for (int i = 0; i < 3; ++i) {
    source_->buffer().Add(EV_ABS, ABS_X, 100 + i);
    source_->buffer().Add(EV_SYN, SYN_REPORT, 0);
  }
  // No buffers yet: nothing lost, and the guest's next buffers (its kick) resume.
  EXPECT_EQ(Run(0), QueueResult::Kind::kDrained);
  EXPECT_EQ(source_->buffer().ready(), 6u);
  GiveEventBuffers(4);
  EXPECT_EQ(Run(0), QueueResult::Kind::kDrained);
  EXPECT_EQ(UsedCount(0), 4);
  EXPECT_EQ(source_->buffer().ready(), 2u);
  EXPECT_EQ(EventAt(0).value, 100u);
  EXPECT_EQ(EventAt(2).value, 101u);
  GiveEventBuffers(4);
  Run(0);
  EXPECT_EQ(UsedCount(0), 2);
  EXPECT_EQ(EventAt(4).value, 102u);
  EXPECT_EQ(EventAt(5).type, EV_SYN);
}

TEST_F(InputDeviceTest, QueuedBuffersWithoutEventsAreNotBusyWork) {
  GiveEventBuffers(4);
  // The worker must sleep until an event comes rather than spin on the guest's buffers: they
  // stay in the ring, not taken.
  EXPECT_EQ(Run(0), QueueResult::Kind::kBlocked);
  EXPECT_EQ(UsedCount(0), 0);
  EXPECT_EQ(queues_[0]->context().in_flight(), 0u);
  EXPECT_TRUE(queues_[0]->queue().HasAvailable());
}

// A report made ready on another thread (the evdev reader, a command) wakes the event queue's
// worker, which then fills the buffers the guest left waiting; a stopped queue is not woken.
TEST_F(InputDeviceTest, AReportWakesTheEventQueue) {
  GiveEventBuffers(4);
  EXPECT_EQ(Run(0), QueueResult::Kind::kBlocked);
  std::thread producer([this] {
    source_->buffer().Add(EV_KEY, BTN_TOUCH, 1);
    source_->buffer().Add(EV_SYN, SYN_REPORT, 0);
  });
  const absl::optional<QueueResult> woken = queues_[0]->RunWhenReady(*device_, absl::Seconds(30));
  producer.join();
  ASSERT_TRUE(woken.has_value());
  EXPECT_EQ(UsedCount(0), 2);
  EXPECT_EQ(EventAt(0).code, BTN_TOUCH);
  EXPECT_EQ(EventAt(1).type, EV_SYN);

  queues_[0]->Stop(*device_);
  source_->buffer().Add(EV_KEY, BTN_TOUCH, 0);
  source_->buffer().Add(EV_SYN, SYN_REPORT, 0);
  EXPECT_FALSE(queues_[0]->RunWhenReady(*device_, absl::ZeroDuration()).has_value());
  EXPECT_EQ(source_->buffer().ready(), 2u);  // kept for the restart
  ASSERT_OK(queues_[0]->Start(*device_));
  Run(0);
  EXPECT_EQ(UsedCount(0), 2);
  EXPECT_EQ(EventAt(2).code, BTN_TOUCH);
  EXPECT_EQ(EventAt(2).value, 0u);
}

TEST_F(InputDeviceTest, ShortEventBufferIsReturnedEmptyAndTheEventKept) {
  source_->buffer().Add(EV_KEY, BTN_TOUCH, 1);
  source_->buffer().Add(EV_SYN, SYN_REPORT, 0);
  GiveEventBuffers(1, /*len=*/4);
  GiveEventBuffers(2);
  Run(0);
  EXPECT_EQ(UsedCount(0), 3);
  EXPECT_EQ(EventAt(1).code, BTN_TOUCH);
  EXPECT_EQ(EventAt(2).type, EV_SYN);
}

TEST_F(InputDeviceTest, BufferIsBoundedAndDropsWholeReports) {
  EventBuffer buffer(4);
  buffer.Add(EV_KEY, BTN_TOUCH, 1);
  buffer.Add(EV_SYN, SYN_REPORT, 0);
  buffer.Add(EV_KEY, BTN_TOUCH, 0);
  buffer.Add(EV_SYN, SYN_REPORT, 0);
  buffer.Add(EV_ABS, ABS_X, 5);  // a third report does not fit
  buffer.Add(EV_SYN, SYN_REPORT, 0);
  EXPECT_EQ(buffer.ready(), 4u);
  EXPECT_EQ(buffer.dropped_reports(), 1u);
  buffer.Add(EV_ABS, ABS_X, 6);  // an unfinished report is not visible
  EXPECT_EQ(buffer.ready(), 4u);
}

TEST_F(InputDeviceTest, StatusEventsReachTheSourceOnlyForCodesItHas) {
  const virtio_input_event events[] = {
      {EV_LED, LED_CAPSL, 1}, {EV_LED, LED_NUML, 1}, {EV_SND, SND_BELL, 1}, {0xffff, 0, 0}};
  for (int i = 0; i < 4; ++i) AddStatus(i, events[i]);
  AddStatus(4, events[0], /*len=*/3);  // too short
  EXPECT_EQ(Run(1), QueueResult::Kind::kDrained);
  EXPECT_EQ(UsedCount(1), 5);
  ASSERT_EQ(source_->status.size(), 1u);
  EXPECT_EQ(source_->status[0].code, LED_CAPSL);
}

// The status queue is for feedback (LEDs, sound, repeat settings, force feedback), never for
// input: with --no-grab an EV_KEY written to the host device would type into the host session.
TEST_F(InputDeviceTest, StatusQueueCarriesOnlyFeedbackEventsToTheHost) {
  source_->description().SetCode(EV_REP, REP_DELAY);
  source_->description().SetCode(EV_SND, SND_BELL);
  source_->description().SetCode(EV_FF, FF_GAIN);
  source_->description().SetCode(EV_MSC, MSC_SCAN);
  source_->description().SetCode(EV_SW, SW_LID);
  const virtio_input_event events[] = {
      {EV_KEY, BTN_TOUCH, 1},
      {EV_ABS, ABS_X, 7},
      {EV_SYN, SYN_REPORT, 0},
      {EV_MSC, MSC_SCAN, 30},
      {EV_SW, SW_LID, 1},
      {EV_LED, LED_CAPSL, 1},
      {EV_SND, SND_BELL, 1},
      {EV_REP, REP_DELAY, 250},
      {EV_REP, REP_PERIOD, 33},
      {EV_FF, FF_GAIN, 0x8000},
      {EV_FF, 0, 1},
  };
  const int n = sizeof(events) / sizeof(events[0]);
  for (int i = 0; i < n; ++i) AddStatus(i, events[i]);
  Run(1);
  EXPECT_EQ(UsedCount(1), n);  // every buffer is returned, dropped or not
  std::vector<std::pair<uint16_t, uint16_t>> passed;
  for (const virtio_input_event& e : source_->status) passed.push_back({e.type, e.code});
  // REP_PERIOD passes with REP_DELAY: an evdev device reports EV_REP without code bits.
  const std::vector<std::pair<uint16_t, uint16_t>> expected = {{EV_LED, LED_CAPSL},
                                                               {EV_SND, SND_BELL},
                                                               {EV_REP, REP_DELAY},
                                                               {EV_REP, REP_PERIOD},
                                                               {EV_FF, FF_GAIN}};
  EXPECT_EQ(passed, expected);
}

TEST(EvdevSourceTest, RefusesWhatIsNotAnEvdevDevice) {
  EXPECT_THAT(OpenEvdevSource("/nonexistent/event0", true),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(OpenEvdevSource("/dev/null", true), StatusIs(absl::StatusCode::kInvalidArgument));
}

// A script's commands become complete reports in the source's buffer; a command the device
// cannot do (relative motion on a tablet) is skipped.
TEST(VirtualSourceTest, CommandsBecomeReports) {
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string script = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                             "/virtual_source_script_" + std::to_string(getpid());
  std::ofstream(script) << "abs 100 200\nmove 1 2\n# comment\nabs 5 6\n";
  // Declared before the device: its replay thread may wake the queue until the device is gone.
  FakeGuestMemory ram;
  auto queue = TestQueue::Create(&ram);
  ASSERT_OK(queue);
  auto source = MakeVirtualSource(VirtualKind::kTablet, "", script);
  ASSERT_OK(source);
  unlink(script.c_str());
  EXPECT_TRUE((*source)->description().HasCode(EV_ABS, ABS_Y));
  EXPECT_FALSE((*source)->description().HasCode(EV_REL, REL_X));
  EventBuffer& buffer = (*source)->buffer();
  InputDevice device(*std::move(source));
  EXPECT_EQ(buffer.ready(), 0u);  // the script waits for the guest's driver
  // The event queue starts: the script replays on a thread of its own, each report waking the
  // queue. The guest gave no buffers, so the events stay in the buffer.
  ASSERT_OK((*queue)->Start(device));

  constexpr size_t kExpected = 6;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (buffer.ready() < kExpected && absl::Now() < deadline) {
    (*queue)->RunWhenReady(device, deadline - absl::Now());
  }
  virtio_input_event events[kExpected + 1] = {};
  ASSERT_EQ(buffer.Peek(events, kExpected + 1), kExpected);
  std::vector<std::tuple<uint16_t, uint16_t, uint32_t>> got;
  for (const virtio_input_event& e : events) got.emplace_back(e.type, e.code, e.value);
  got.resize(kExpected);
  const std::vector<std::tuple<uint16_t, uint16_t, uint32_t>> expected = {
      {EV_ABS, ABS_X, 100}, {EV_ABS, ABS_Y, 200}, {EV_SYN, SYN_REPORT, 0},
      {EV_ABS, ABS_X, 5},   {EV_ABS, ABS_Y, 6},   {EV_SYN, SYN_REPORT, 0}};
  EXPECT_EQ(got, expected);
  (*queue)->Stop(device);

  EXPECT_THAT(MakeVirtualSource(VirtualKind::kMouse, "", "/nonexistent/script"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost
