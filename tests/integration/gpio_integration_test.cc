// vhost-user-gpio driven over its socket by our front end, on a simulated chip whose inputs the
// test drives through the control socket: every request type and error status, interrupts
// (edges, levels, masking, latching, disabling, ordering), several guests from one process.
#include <linux/virtio_gpio.h>
#include <signal.h>

#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/base/status_macros.h"
#include "common/device/inflight.h"
#include "common/testing/status_matchers.h"
#include "common/vhost_user/message.h"
#include "gtest/gtest.h"
#include "tests/frontend/control_client.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonProcess;
using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::Frontend;
using frontend::FrontendQueue;
using frontend::GuestRam;
using testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr uint8_t kOk = VIRTIO_GPIO_STATUS_OK;
constexpr uint8_t kErr = VIRTIO_GPIO_STATUS_ERR;
constexpr uint8_t kValid = VIRTIO_GPIO_IRQ_STATUS_VALID;
constexpr uint8_t kInvalid = VIRTIO_GPIO_IRQ_STATUS_INVALID;

// One guest's connection to one of the daemon's sockets.
struct Guest {
  std::unique_ptr<DeviceConnection> device;
  Frontend* frontend = nullptr;  // device's
  GuestRam* ram = nullptr;
  FrontendQueue* queues[2] = {};
  std::map<uint32_t, std::pair<uint16_t, uint8_t*>> irq_buffers;  // id -> line, status byte

  DeviceOptions options;

  absl::Status Connect(const std::string& socket, uint64_t features, bool inflight = false) {
    options = DeviceOptions();
    options.inflight = inflight;
    options.features = features;
    options.ram_size = 2 << 20;
    options.queue_sizes = {64, 64};
    ASSIGN_OR_RETURN(device, DeviceConnection::Open(socket, options));
    frontend = device->frontend();
    ram = device->ram();
    queues[0] = device->queue(0);
    queues[1] = device->queue(1);
    return absl::OkStatus();
  }

  struct Response {
    uint8_t status = 0xff;
    uint8_t value = 0xff;
    uint32_t len = 0;
    std::string names;
  };
  Response Request(uint16_t type, uint16_t gpio, uint32_t value, uint32_t response_len = 2,
                   uint32_t request_len = sizeof(virtio_gpio_request)) {
    Response r;
    uint8_t* req;
    uint8_t* resp;
    absl::StatusOr<uint64_t> req_gpa = ram->Allocate(16, 64, &req);
    absl::StatusOr<uint64_t> resp_gpa = ram->Allocate(response_len, 64, &resp);
    EXPECT_OK(req_gpa);
    EXPECT_OK(resp_gpa);
    if (!req_gpa.ok() || !resp_gpa.ok()) return r;
    const virtio_gpio_request request{type, gpio, value};
    std::memcpy(req, &request, sizeof(request));
    std::memset(resp, 0xff, response_len);
    EXPECT_OK(queues[0]->ring().AddChain({{*req_gpa, request_len}}, {{*resp_gpa, response_len}}));
    EXPECT_OK(queues[0]->Submit());
    return Wait(resp, response_len);
  }
  // Waits for the next completed request, whose response buffer is `resp`.
  Response Wait(const uint8_t* resp, uint32_t response_len = 2) {
    Response r;
    absl::StatusOr<UsedElement> used = queues[0]->WaitForUsed(kTimeout);
    EXPECT_OK(used);
    if (!used.ok()) return r;
    r.len = used->len;
    r.status = resp[0];
    if (response_len > 1) r.value = resp[1];
    if (used->len > 1) r.names.assign(reinterpret_cast<const char*>(resp) + 1, used->len - 1);
    return r;
  }
  uint8_t Status(uint16_t type, uint16_t gpio, uint32_t value) {
    return Request(type, gpio, value).status;
  }

  // Queues an interrupt buffer pair for `line`: unmasks it.
  void Unmask(uint16_t line) {
    uint8_t* req;
    uint8_t* resp;
    absl::StatusOr<uint64_t> req_gpa = ram->Allocate(2, 64, &req);
    absl::StatusOr<uint64_t> resp_gpa = ram->Allocate(1, 64, &resp);
    ASSERT_OK(req_gpa);
    ASSERT_OK(resp_gpa);
    std::memcpy(req, &line, 2);
    *resp = 0xee;
    ASSERT_OK_AND_ASSIGN(uint16_t id,
                         queues[1]->ring().AddChain({{*req_gpa, 2}}, {{*resp_gpa, 1}}));
    irq_buffers[id] = {line, resp};
    ASSERT_OK(queues[1]->Submit());
  }
  // Waits for the next returned interrupt buffer: (line, status).
  std::pair<uint16_t, uint8_t> NextInterrupt(absl::Duration timeout = kTimeout) {
    absl::StatusOr<UsedElement> used = queues[1]->WaitForUsed(timeout);
    if (!used.ok()) return {0xffff, 0xff};
    EXPECT_EQ(used->len, 1u);
    const auto& buffer = irq_buffers[used->id];
    return {buffer.first, *buffer.second};
  }
  bool NoInterruptFor(absl::Duration d) { return !queues[1]->WaitForUsed(d).ok(); }
};

class GpioDaemonTest : public ::testing::Test {
 protected:
  void StartDaemon(std::vector<std::string> extra = {}) {
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("gpio"));
    socket_ = session_->socket();
    control_ = session_->File("ctl");
    std::vector<std::string> args = {"--socket-path=" + socket_, "--control-socket=" + control_,
                                     "--sim-lines=button@in,led@out,irq0,irq1"};
    bool count_given = false;
    for (const std::string& arg : extra) count_given |= arg.rfind("--socket-count", 0) == 0;
    if (!count_given) args.push_back("--device-list=s6");
    args.insert(args.end(), extra.begin(), extra.end());
    args_ = args;
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-gpio/vhost-user-gpio"), args,
                              count_given ? socket_ + "1" : socket_));
  }
  // The same daemon again, on the same sockets (after the last one died).
  void RestartDaemon() {
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-gpio/vhost-user-gpio"), args_, socket_));
  }
  DaemonProcess* daemon() { return session_->daemon(); }
  void ConnectGuest(uint64_t features = Bit(kFeatureVersion1) | Bit(VIRTIO_GPIO_F_IRQ) |
                                        Bit(kFeatureEventIdx)) {
    ASSERT_OK(guest_.Connect(socket_, features));
  }
  std::string Command(const std::string& lines, const std::string& control = "") {
    absl::StatusOr<std::string> replies =
        frontend::SendControlCommands(control.empty() ? control_ : control, lines);
    EXPECT_OK(replies);
    return replies.ok() ? *replies : "";
  }

  std::unique_ptr<DaemonSession> session_;
  std::string socket_, control_;
  std::vector<std::string> args_;
  Guest guest_;
};

TEST_F(GpioDaemonTest, ConfigAndNames) {
  StartDaemon();
  ConnectGuest();
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> bytes, guest_.frontend->GetConfig(0, 8));
  virtio_gpio_config config;
  std::memcpy(&config, bytes.data(), sizeof(config));
  const std::string names("button\0led\0irq0\0irq1\0line4\0line5\0", 33);
  EXPECT_EQ(config.ngpio, 6);
  EXPECT_EQ(config.gpio_names_size, names.size());
  Guest::Response r = guest_.Request(VIRTIO_GPIO_MSG_GET_NAMES, 0, 0, 1 + names.size());
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.names, names);
  EXPECT_EQ(guest_.Request(VIRTIO_GPIO_MSG_GET_NAMES, 0, 0, 5).status, kErr);
}

TEST_F(GpioDaemonTest, EveryRequestTypeAndStatus) {
  StartDaemon();
  ConnectGuest();
  EXPECT_EQ(guest_.Request(VIRTIO_GPIO_MSG_GET_DIRECTION, 0, 0).value, VIRTIO_GPIO_DIRECTION_IN);
  EXPECT_EQ(guest_.Request(VIRTIO_GPIO_MSG_GET_DIRECTION, 1, 0).value, VIRTIO_GPIO_DIRECTION_OUT);
  // Output: the value set in the guest reaches the simulated line.
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_SET_VALUE, 1, 1), kOk);
  EXPECT_EQ(Command("get led\n"), "ok out 1\n");
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 2, VIRTIO_GPIO_DIRECTION_OUT), kOk);
  EXPECT_EQ(Command("get irq0\n"), "ok out 0\n");
  // Input: a level driven from outside reaches the guest.
  EXPECT_EQ(Command("set button 1\n"), "ok\n");
  Guest::Response r = guest_.Request(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0);
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.value, 1);
  EXPECT_EQ(r.len, 2u);
  // Errors.
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 0, VIRTIO_GPIO_DIRECTION_OUT), kErr);
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 1, VIRTIO_GPIO_DIRECTION_IN), kErr);
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_GET_VALUE, 6, 0), kErr);
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_SET_VALUE, 0xffff, 1), kErr);
  EXPECT_EQ(guest_.Status(0x99, 0, 0), kErr);
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_SET_VALUE, 1, 5), kErr);
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, 0x10), kErr);
  EXPECT_EQ(guest_.Request(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0, 2, 4).status, kErr);
  EXPECT_EQ(guest_.Request(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0, 1).status, kErr);
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 2, VIRTIO_GPIO_DIRECTION_NONE), kOk);
  EXPECT_EQ(guest_.Request(VIRTIO_GPIO_MSG_GET_DIRECTION, 2, 0).value, VIRTIO_GPIO_DIRECTION_NONE);
  EXPECT_TRUE(daemon()->IsAlive());
}

TEST_F(GpioDaemonTest, EdgeInterruptsMaskingAndLatching) {
  StartDaemon();
  ConnectGuest();
  ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  guest_.Unmask(2);
  EXPECT_TRUE(guest_.NoInterruptFor(absl::Milliseconds(100)));
  EXPECT_EQ(Command("set irq0 1\n"), "ok\n");
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{2}, kValid));
  // Masked now: two rising edges latch one interrupt, delivered once on unmask.
  EXPECT_EQ(Command("pulse irq0\nset irq0 0\nset irq0 1\n"), "ok\nok\nok\n");
  EXPECT_TRUE(guest_.NoInterruptFor(absl::Milliseconds(100)));
  guest_.Unmask(2);
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{2}, kValid));
  guest_.Unmask(2);
  EXPECT_TRUE(guest_.NoInterruptFor(absl::Milliseconds(100)));
  // Disabling hands the buffer back INVALID.
  ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_NONE), kOk);
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{2}, kInvalid));
}

TEST_F(GpioDaemonTest, LevelInterruptsAndOrderAcrossLines) {
  StartDaemon();
  ConnectGuest();
  ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 3, VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH), kOk);
  EXPECT_EQ(Command("set irq1 1\n"), "ok\n");
  guest_.Unmask(3);
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{3}, kValid));
  guest_.Unmask(3);  // still high
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{3}, kValid));
  EXPECT_EQ(Command("set irq1 0\n"), "ok\n");
  guest_.Unmask(3);
  EXPECT_TRUE(guest_.NoInterruptFor(absl::Milliseconds(100)));
  ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_EDGE_BOTH), kOk);
  ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_EDGE_FALLING), kOk);
  EXPECT_EQ(Command("set line4 1\n"), "ok\n");  // rising: not line 4's trigger
  guest_.Unmask(2);
  guest_.Unmask(4);
  EXPECT_TRUE(guest_.NoInterruptFor(absl::Milliseconds(100)));
  EXPECT_EQ(Command("set line4 0\nset irq1 1\nset irq0 1\n"), "ok\nok\nok\n");
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{4}, kValid));
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{3}, kValid));
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{2}, kValid));
}

// GET_VRING_BASE on the event queue hands the held buffer back INVALID, so the base is past it
// and nothing is left in flight; what happens while the queue is stopped (a request enabling an
// interrupt, edges) takes effect when it starts again.
TEST_F(GpioDaemonTest, StoppingTheEventQueueHandsHeldBuffersBack) {
  StartDaemon();
  ConnectGuest();
  for (uint16_t line : {2, 3}) {
    ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, line, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
    guest_.Unmask(line);
  }
  // Line 3's interrupt shows that the daemon took both buffers (line 2's came first).
  EXPECT_EQ(Command("set irq1 1\n"), "ok\n");
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{3}, kValid));
  ASSERT_OK_AND_ASSIGN(uint32_t base, guest_.queues[1]->Stop(guest_.frontend));
  EXPECT_EQ(base, 2u);
  ASSERT_OK_AND_ASSIGN(absl::optional<UsedElement> used, guest_.queues[1]->PollUsed());
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(guest_.irq_buffers[used->id].first, 2);
  EXPECT_EQ(*guest_.irq_buffers[used->id].second, kInvalid);
  // Stopped: an interrupt enabled at an active level, an edge on a line without a buffer.
  ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 4, VIRTIO_GPIO_IRQ_TYPE_LEVEL_HIGH), kOk);
  EXPECT_EQ(Command("set line4 1\nset irq0 1\n"), "ok\nok\n");
  ASSERT_OK(guest_.queues[1]->SendSetup(guest_.frontend));
  guest_.Unmask(2);
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{2}, kValid));  // the latched edge
  guest_.Unmask(4);
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{4}, kValid));
}

TEST_F(GpioDaemonTest, HostileEventBuffersComeBackInvalid) {
  StartDaemon();
  ConnectGuest();
  guest_.Unmask(2);  // interrupt not enabled
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{2}, kInvalid));
  guest_.Unmask(60000);
  EXPECT_EQ(guest_.NextInterrupt(), std::make_pair(uint16_t{60000}, kInvalid));
  EXPECT_TRUE(daemon()->IsAlive());
}

TEST_F(GpioDaemonTest, InterruptsNeedTheFeature) {
  StartDaemon();
  ConnectGuest(Bit(kFeatureVersion1));
  EXPECT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kErr);
}

TEST_F(GpioDaemonTest, ReconnectStartsFromAReleasedChip) {
  StartDaemon();
  ConnectGuest();
  ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_SET_DIRECTION, 2, VIRTIO_GPIO_DIRECTION_OUT), kOk);
  ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_SET_VALUE, 2, 1), kOk);
  EXPECT_EQ(Command("get irq0\n"), "ok out 1\n");
  guest_ = Guest();
  // The daemon serves one front end at a time and resets the device (releasing the chip) before
  // it answers the next: once the new guest is connected, the old session is gone.
  ConnectGuest();
  EXPECT_EQ(Command("get irq0\n"), "ok in 0\n");
  EXPECT_EQ(guest_.Request(VIRTIO_GPIO_MSG_GET_DIRECTION, 2, 0).value, VIRTIO_GPIO_DIRECTION_IN);
}

// Requests a killed daemon had taken on the request queue (recorded in the front end's inflight
// region as a daemon records them) run on its successor, in order. The event queue is not
// tracked: its held buffers are taken again from the used index, as without a region.
TEST_F(GpioDaemonTest, RequestsInFlightAtASigkillRunAfterARestart) {
  StartDaemon();
  ASSERT_OK(guest_.Connect(socket_, Bit(kFeatureVersion1) | Bit(VIRTIO_GPIO_F_IRQ), true));
  uint8_t* region = guest_.device->inflight_region();
  auto part = [&](int queue) {
    return reinterpret_cast<InflightDescSplit*>(region + queue * InflightQueueBytes(64) +
                                                sizeof(InflightQueueHeader));
  };
  ASSERT_EQ(guest_.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 2, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  guest_.Unmask(2);  // held by the daemon
  ASSERT_OK(guest_.queues[0]->Stop(guest_.frontend).status());
  for (int head = 0; head < 64; ++head) EXPECT_EQ(part(1)[head].inflight, 0) << head;
  ASSERT_OK(daemon()->Signal(SIGKILL));
  ASSERT_OK(daemon()->Wait(kTimeout).status());

  // Two requests the killed daemon had taken: the led made an output, then driven high.
  std::vector<uint8_t*> responses;
  for (const virtio_gpio_request& request :
       {virtio_gpio_request{VIRTIO_GPIO_MSG_SET_DIRECTION, 1, VIRTIO_GPIO_DIRECTION_OUT},
        virtio_gpio_request{VIRTIO_GPIO_MSG_SET_VALUE, 1, 1}}) {
    uint8_t *req, *resp;
    ASSERT_OK_AND_ASSIGN(const uint64_t req_gpa, guest_.ram->Allocate(16, 64, &req));
    ASSERT_OK_AND_ASSIGN(const uint64_t resp_gpa, guest_.ram->Allocate(2, 64, &resp));
    std::memcpy(req, &request, sizeof(request));
    std::memset(resp, 0xff, 2);
    ASSERT_OK_AND_ASSIGN(const uint16_t head, guest_.queues[0]->ring().AddChain(
                                                  {{req_gpa, sizeof(request)}}, {{resp_gpa, 2}}));
    part(0)[head].counter = 5 + responses.size();
    part(0)[head].inflight = 1;
    responses.push_back(resp);
  }
  ASSERT_OK(guest_.queues[0]->Submit());
  RestartDaemon();
  ASSERT_OK(guest_.device->Reconnect(socket_, guest_.options));
  guest_.frontend = guest_.device->frontend();
  for (uint8_t* resp : responses) EXPECT_EQ(guest_.Wait(resp).status, kOk);
  EXPECT_EQ(Command("get led\n"), "ok out 1\n");
  ASSERT_OK(guest_.queues[0]->Stop(guest_.frontend).status());
  for (int head = 0; head < 64; ++head) EXPECT_EQ(part(0)[head].inflight, 0) << head;
}

TEST_F(GpioDaemonTest, SeveralGuestsEachWithTheirOwnChip) {
  StartDaemon({"--socket-count=2", "--device-list=s6:s2", "--sim-lines=button@in,led@out:x,y"});
  Guest first, second;
  const uint64_t features = Bit(kFeatureVersion1) | Bit(VIRTIO_GPIO_F_IRQ);
  ASSERT_OK(first.Connect(socket_ + "0", features));
  ASSERT_OK(second.Connect(socket_ + "1", features));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> a, first.frontend->GetConfig(0, 2));
  ASSERT_OK_AND_ASSIGN(std::vector<uint8_t> b, second.frontend->GetConfig(0, 2));
  EXPECT_EQ(a[0], 6);
  EXPECT_EQ(b[0], 2);
  ASSERT_EQ(second.Status(VIRTIO_GPIO_MSG_IRQ_TYPE, 0, VIRTIO_GPIO_IRQ_TYPE_EDGE_RISING), kOk);
  second.Unmask(0);
  EXPECT_EQ(Command("set 0 1\n", control_ + "1"), "ok\n");
  EXPECT_EQ(second.NextInterrupt(), std::make_pair(uint16_t{0}, kValid));
  EXPECT_EQ(Command("get button\n", control_ + "0"), "ok in 0\n");
  EXPECT_EQ(first.Request(VIRTIO_GPIO_MSG_GET_VALUE, 0, 0).value, 0);
}

}  // namespace
}  // namespace vhost
