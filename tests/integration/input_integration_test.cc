// vhost-user-input driven over its socket by our front end, with the virtual keyboard, mouse and
// tablet: config selectors, events in order a report at a time, back-pressure while the guest
// queues no buffers, status events, bad config writes.
#include <linux/input.h>
#include <linux/virtio_input.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/control_client.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::Frontend;
using frontend::FrontendQueue;
using frontend::GuestRam;
using testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(10);

class InputDaemonTest : public ::testing::Test {
 protected:
  void StartDaemon(const std::string& kind, bool packed = false, const std::string& script = "") {
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("input"));
    control_ = session_->File("ctl");
    std::vector<std::string> args = {"--socket-path=" + session_->socket(),
                                     "--virtual-device=" + kind, "--control-socket=" + control_};
    if (packed) args.push_back("--packed-ring");
    if (!script.empty()) {
      const std::string path = session_->File("script");
      FILE* f = fopen(path.c_str(), "w");
      fputs(script.c_str(), f);
      fclose(f);
      args.push_back("--script=" + path);
    }
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-input/vhost-user-input"), args));
    DeviceOptions options;
    options.features =
        Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | (packed ? Bit(kFeatureRingPacked) : 0);
    options.required_features = options.features;
    options.ram_size = 4 << 20;
    options.queue_sizes = {64, 64};
    ASSERT_OK_AND_ASSIGN(device_, session_->Open(options));
    frontend_ = device_->frontend();
    ram_ = device_->ram();
  }
  FrontendQueue* queue(int i) { return device_->queue(i); }

  // Sends command lines to the control socket; returns the replies.
  std::string Command(const std::string& lines) {
    absl::StatusOr<std::string> replies = frontend::SendControlCommands(control_, lines);
    EXPECT_OK(replies);
    return replies.ok() ? *replies : "";
  }

  // Gives the event queue `count` 8-byte buffers; returns their addresses.
  std::vector<uint64_t> GiveEventBuffers(int count) {
    std::vector<uint64_t> gpas;
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<uint64_t> gpa = ram_->Allocate(sizeof(virtio_input_event));
      EXPECT_OK(gpa);
      EXPECT_OK(queue(0)->ring().AddChain({}, {{*gpa, sizeof(virtio_input_event)}}));
      gpas.push_back(*gpa);
    }
    EXPECT_OK(queue(0)->Submit());
    return gpas;
  }

  // The next `count` events the device delivers.
  std::vector<virtio_input_event> Events(int count) {
    std::vector<virtio_input_event> events;
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<UsedElement> used = queue(0)->WaitForUsed(kTimeout);
      EXPECT_OK(used);
      if (!used.ok()) break;
      EXPECT_EQ(used->len, sizeof(virtio_input_event));
      events.push_back(event_at_[used->id]);
    }
    return events;
  }

  virtio_input_config Select(uint8_t select, uint8_t subsel) {
    const uint8_t sel[2] = {select, subsel};
    EXPECT_OK(frontend_->SetConfig(0, sel));
    virtio_input_config config{};
    absl::StatusOr<std::vector<uint8_t>> bytes = frontend_->GetConfig(0, sizeof(config));
    EXPECT_OK(bytes);
    if (bytes.ok()) std::memcpy(&config, bytes->data(), sizeof(config));
    return config;
  }

  std::unique_ptr<DaemonSession> session_;
  std::string control_;
  std::unique_ptr<DeviceConnection> device_;
  Frontend* frontend_ = nullptr;  // device_'s
  GuestRam* ram_ = nullptr;
  std::map<uint32_t, virtio_input_event> event_at_;
};

TEST_F(InputDaemonTest, KeyboardConfigSelectors) {
  StartDaemon("keyboard");
  virtio_input_config c = Select(VIRTIO_INPUT_CFG_ID_NAME, 0);
  EXPECT_EQ(std::string(c.u.string, c.size), "vhost-user virtual keyboard");
  c = Select(VIRTIO_INPUT_CFG_ID_DEVIDS, 0);
  EXPECT_EQ(c.size, sizeof(virtio_input_devids));
  EXPECT_EQ(c.u.ids.bustype, BUS_VIRTUAL);
  c = Select(VIRTIO_INPUT_CFG_EV_BITS, EV_KEY);
  ASSERT_GT(c.size, KEY_A / 8);
  EXPECT_TRUE(c.u.bitmap[KEY_A / 8] & (1 << (KEY_A % 8)));
  c = Select(VIRTIO_INPUT_CFG_EV_BITS, EV_REL);
  EXPECT_EQ(c.size, 0);  // a keyboard does not move
  c = Select(VIRTIO_INPUT_CFG_EV_BITS, EV_LED);
  EXPECT_EQ(c.size, 1);
  c = Select(0x7f, 0);  // unknown selector: size 0
  EXPECT_EQ(c.size, 0);
  // Read-only bytes cannot be written.
  const uint8_t byte = 9;
  EXPECT_FALSE(frontend_->SetConfig(2, absl::MakeConstSpan(&byte, 1)).ok());
  EXPECT_FALSE(frontend_->SetConfig(8, absl::MakeConstSpan(&byte, 1)).ok());
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

TEST_F(InputDaemonTest, TabletAxes) {
  StartDaemon("tablet");
  virtio_input_config c = Select(VIRTIO_INPUT_CFG_ABS_INFO, ABS_X);
  EXPECT_EQ(c.size, sizeof(virtio_input_absinfo));
  EXPECT_EQ(c.u.abs.max, 32767u);
  EXPECT_EQ(Select(VIRTIO_INPUT_CFG_ABS_INFO, ABS_Z).size, 0);
}

TEST_F(InputDaemonTest, KeyPressArrivesAsAReport) {
  for (bool packed : {false, true}) {
    SCOPED_TRACE(packed ? "packed" : "split");
    StartDaemon("keyboard", packed);
    const std::vector<uint64_t> gpas = GiveEventBuffers(64);
    EXPECT_EQ(Command("press KEY_A\n"), "ok\n");
    std::vector<virtio_input_event> events;
    for (int i = 0; i < 4; ++i) {
      ASSERT_OK(queue(0)->WaitForUsed(kTimeout).status());
      virtio_input_event e;
      std::memcpy(&e, ram_->HostAddress(gpas[i], sizeof(e)), sizeof(e));
      events.push_back(e);
    }
    EXPECT_EQ(events[0].type, EV_KEY);
    EXPECT_EQ(events[0].code, KEY_A);
    EXPECT_EQ(events[0].value, 1u);
    EXPECT_EQ(events[1].type, EV_SYN);
    EXPECT_EQ(events[2].code, KEY_A);
    EXPECT_EQ(events[2].value, 0u);
    EXPECT_EQ(events[3].type, EV_SYN);
  }
}

TEST_F(InputDaemonTest, ScriptReplaysOnceTheDriverIsReady) {
  StartDaemon("keyboard", false, "# two keys\nsleep 100\ntype aB\n");
  const std::vector<uint64_t> gpas = GiveEventBuffers(12);  // a: 4 events, B: shift + 6
  std::vector<uint16_t> presses;
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(queue(0)->WaitForUsed(kTimeout).status());
    virtio_input_event e;
    std::memcpy(&e, ram_->HostAddress(gpas[i], sizeof(e)), sizeof(e));
    if (e.type == EV_KEY && e.value == 1) presses.push_back(e.code);
  }
  EXPECT_EQ(presses, (std::vector<uint16_t>{KEY_A, KEY_LEFTSHIFT, KEY_B}));
}

TEST_F(InputDaemonTest, EventsWaitForBuffersInOrder) {
  StartDaemon("mouse");
  // No buffers yet: the device must keep the events.
  EXPECT_EQ(Command("move 1 2\nmove 3 4\nbutton BTN_LEFT 1\n"), "ok\nok\nok\n");
  // Each event was buffered before its "ok", while the guest had no buffer for it: the buffers
  // given now must receive them all, in order.
  const std::vector<uint64_t> gpas = GiveEventBuffers(8);  // 3 + 3 + 2 events
  std::vector<virtio_input_event> events;
  for (int i = 0; i < 8; ++i) {
    ASSERT_OK(queue(0)->WaitForUsed(kTimeout).status());
    virtio_input_event e;
    std::memcpy(&e, ram_->HostAddress(gpas[i], sizeof(e)), sizeof(e));
    events.push_back(e);
  }
  EXPECT_EQ(events[0].code, REL_X);
  EXPECT_EQ(events[0].value, 1u);
  EXPECT_EQ(events[3].code, REL_X);
  EXPECT_EQ(events[3].value, 3u);
  EXPECT_EQ(events[6].type, EV_KEY);
  EXPECT_EQ(events[6].code, BTN_LEFT);
  EXPECT_EQ(events[7].type, EV_SYN);
}

TEST_F(InputDaemonTest, BadCommandsAndStatusEventsAreRefusedCleanly) {
  StartDaemon("keyboard");
  EXPECT_EQ(Command("move 1 2\n").substr(0, 6), "error:");  // a keyboard has no REL axes
  EXPECT_EQ(Command("fly away\n").substr(0, 6), "error:");
  // Status events: an LED the keyboard has, one it lacks, and a short buffer.
  for (auto [type, code, len] : {std::tuple<uint16_t, uint16_t, uint32_t>{EV_LED, LED_CAPSL, 8},
                                 {EV_LED, LED_MAIL, 8},
                                 {EV_LED, LED_NUML, 3}}) {
    ASSERT_OK_AND_ASSIGN(const uint64_t gpa, ram_->Allocate(8));
    virtio_input_event e{type, code, 1};
    std::memcpy(ram_->HostAddress(gpa, 8), &e, 8);
    ASSERT_OK(queue(1)->ring().AddChain({{gpa, len}}, {}));
    ASSERT_OK(queue(1)->Submit());
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue(1)->WaitForUsed(kTimeout));
    EXPECT_EQ(used.len, 0u);
  }
  EXPECT_TRUE(session_->daemon()->IsAlive());
  GiveEventBuffers(2);
  EXPECT_EQ(Command("key KEY_B 1\n"), "ok\n");
  EXPECT_OK(queue(0)->WaitForUsed(kTimeout).status());
}

}  // namespace
}  // namespace vhost
