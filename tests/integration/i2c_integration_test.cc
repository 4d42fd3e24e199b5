// vhost-user-i2c driven over its socket by our front end, on simulated EEPROM buses: write and
// random read, whole-transaction failure for unlisted addresses, length limits, malformed
// chains, several guests from one process each with their own EEPROMs.
#include <linux/virtio_i2c.h>
#include <signal.h>

#include <cstring>
#include <string>
#include <vector>

#include "common/base/status_macros.h"
#include "common/device/inflight.h"
#include "common/testing/status_matchers.h"
#include "common/vhost_user/message.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonSession;
using frontend::DeviceConnection;
using frontend::DeviceOptions;
using frontend::FrontendQueue;
using frontend::GuestRam;
using testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr uint8_t kOk = VIRTIO_I2C_MSG_OK;
constexpr uint8_t kErr = VIRTIO_I2C_MSG_ERR;

struct Msg {
  uint16_t addr;
  bool read;
  std::vector<uint8_t> data;
};

struct Guest {
  std::unique_ptr<DeviceConnection> device;
  FrontendQueue* queue = nullptr;  // device's
  GuestRam* ram = nullptr;

  DeviceOptions options;

  absl::Status Connect(const std::string& socket, bool inflight = false) {
    options = DeviceOptions();
    options.inflight = inflight;
    options.features =
        Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST);
    options.required_features = Bit(kFeatureVersion1) | Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST);
    options.ram_size = 2 << 20;
    options.queue_sizes = {64};
    ASSIGN_OR_RETURN(device, DeviceConnection::Open(socket, options));
    ram = device->ram();
    queue = device->queue();
    return absl::OkStatus();
  }

  // Where a transaction's statuses and read data land.
  struct Pending {
    std::vector<uint8_t*> status, data;
    std::vector<uint16_t> heads;
  };

  // Adds one transaction (FAIL_NEXT linking the messages) to the ring, not yet made available.
  Pending Add(const std::vector<Msg>& msgs, uint32_t header_len = 8) {
    Pending pending;
    for (size_t i = 0; i < msgs.size(); ++i) {
      uint8_t *h, *d, *s;
      const uint32_t n = static_cast<uint32_t>(msgs[i].data.size());
      absl::StatusOr<uint64_t> hg = ram->Allocate(8, 8, &h);
      absl::StatusOr<uint64_t> dg = ram->Allocate(n + 1, 8, &d);
      absl::StatusOr<uint64_t> sg = ram->Allocate(1, 8, &s);
      EXPECT_TRUE(hg.ok() && dg.ok() && sg.ok());
      virtio_i2c_out_hdr header{};
      header.addr = msgs[i].addr << 1;
      header.flags = (msgs[i].read ? VIRTIO_I2C_FLAGS_M_RD : 0) |
                     (i + 1 < msgs.size() ? VIRTIO_I2C_FLAGS_FAIL_NEXT : 0);
      std::memcpy(h, &header, sizeof(header));
      if (n) std::memcpy(d, msgs[i].data.data(), n);
      *s = 0xee;
      std::vector<testing::Buffer> readable{{*hg, header_len}}, writable;
      if (n) (msgs[i].read ? writable : readable).push_back({*dg, n});
      writable.push_back({*sg, 1});
      absl::StatusOr<uint16_t> head = queue->ring().AddChain(readable, writable);
      EXPECT_OK(head);
      pending.heads.push_back(head.ok() ? *head : 0);
      pending.status.push_back(s);
      pending.data.push_back(d);
    }
    return pending;
  }

  // One transaction; returns the statuses, reads land in msgs.
  std::vector<uint8_t> Transfer(std::vector<Msg>& msgs, uint32_t header_len = 8) {
    const Pending pending = Add(msgs, header_len);
    EXPECT_OK(queue->Submit());
    std::vector<uint8_t> statuses;
    for (size_t i = 0; i < msgs.size(); ++i) {
      EXPECT_OK(queue->WaitForUsed(kTimeout));
    }
    for (size_t i = 0; i < msgs.size(); ++i) {
      statuses.push_back(*pending.status[i]);
      if (msgs[i].read && !msgs[i].data.empty()) {
        std::memcpy(msgs[i].data.data(), pending.data[i], msgs[i].data.size());
      }
    }
    return statuses;
  }
};

class I2cDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("i2c")); }
  void StartDaemon(std::vector<std::string> args) {
    socket_ = session_->socket();
    args.insert(args.begin(), "--socket-path=" + socket_);
    bool several = false;
    for (const std::string& a : args) several |= a.rfind("--socket-count", 0) == 0;
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-i2c/vhost-user-i2c"), args,
                              several ? socket_ + "1" : socket_));
  }

  std::unique_ptr<DaemonSession> session_;
  std::string socket_;
};

TEST_F(I2cDaemonTest, EepromRoundTripAndErrors) {
  StartDaemon({"--device-list=sim:0x50:0x51"});
  Guest guest;
  ASSERT_OK(guest.Connect(socket_));
  std::vector<Msg> write{{0x50, false, {0x20, 'v', 'h', 'o', 's', 't'}}};
  EXPECT_EQ(guest.Transfer(write), std::vector<uint8_t>{kOk});
  std::vector<Msg> read{{0x50, false, {0x20}}, {0x50, true, std::vector<uint8_t>(5)}};
  EXPECT_EQ(guest.Transfer(read), (std::vector<uint8_t>{kOk, kOk}));
  EXPECT_EQ(std::string(read[1].data.begin(), read[1].data.end()), "vhost");
  // A transaction that also touches an unlisted address fails whole: the write did not happen.
  std::vector<Msg> mixed{{0x50, false, {0x20, 'X'}}, {0x33, true, std::vector<uint8_t>(1)}};
  EXPECT_EQ(guest.Transfer(mixed), (std::vector<uint8_t>{kErr, kErr}));
  std::vector<Msg> again{{0x50, false, {0x20}}, {0x50, true, std::vector<uint8_t>(1)}};
  EXPECT_EQ(guest.Transfer(again), (std::vector<uint8_t>{kOk, kOk}));
  EXPECT_EQ(again[1].data[0], 'v');
  // Longer than i2c-dev allows.
  std::vector<Msg> huge{{0x51, true, std::vector<uint8_t>(8193)}};
  EXPECT_EQ(guest.Transfer(huge), std::vector<uint8_t>{kErr});
  // Zero-length (SMBus quick, what i2cdetect uses) to a listed and an unlisted address.
  std::vector<Msg> quick{{0x51, false, {}}};
  EXPECT_EQ(guest.Transfer(quick), std::vector<uint8_t>{kOk});
  std::vector<Msg> absent{{0x52, false, {}}};
  EXPECT_EQ(guest.Transfer(absent), std::vector<uint8_t>{kErr});
  // A header cut short (a read: nothing else is readable to make up the 8 bytes).
  std::vector<Msg> shorty{{0x50, true, std::vector<uint8_t>(1)}};
  EXPECT_EQ(guest.Transfer(shorty, 6), std::vector<uint8_t>{kErr});
  EXPECT_TRUE(session_->daemon()->IsAlive());
}

// A transaction a killed daemon had taken (recorded in the front end's inflight region as a
// daemon records it) runs on its successor before what the guest queued next.
TEST_F(I2cDaemonTest, TransfersInFlightAtASigkillRunAfterARestart) {
  StartDaemon({"--device-list=sim:0x50"});
  Guest guest;
  ASSERT_OK(guest.Connect(socket_, /*inflight=*/true));
  auto* desc = reinterpret_cast<InflightDescSplit*>(guest.device->inflight_region() +
                                                    sizeof(InflightQueueHeader));
  ASSERT_OK(guest.queue->Stop(guest.device->frontend()).status());
  ASSERT_OK(session_->daemon()->Signal(SIGKILL));
  ASSERT_OK(session_->daemon()->Wait(kTimeout).status());

  // Two messages of one write transaction (a chain each), both taken.
  const std::vector<Msg> write{{0x50, false, {0x30}}, {0x50, false, {0x30, 'Z', 'Y'}}};
  const Guest::Pending written = guest.Add(write);
  ASSERT_OK(guest.queue->Submit());
  for (size_t i = 0; i < 2; ++i) {
    desc[written.heads[i]].counter = 20 + i;
    desc[written.heads[i]].inflight = 1;
  }
  StartDaemon({"--device-list=sim:0x50"});
  ASSERT_OK(guest.device->Reconnect(socket_, guest.options));
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(const UsedElement used, guest.queue->WaitForUsed(kTimeout));
    EXPECT_EQ(used.id, written.heads[i]);
    EXPECT_EQ(*written.status[i], kOk);
  }
  // The new daemon's EEPROM has what the resubmitted write put there.
  std::vector<Msg> read{{0x50, false, {0x30}}, {0x50, true, std::vector<uint8_t>(2)}};
  EXPECT_EQ(guest.Transfer(read), (std::vector<uint8_t>{kOk, kOk}));
  EXPECT_EQ(std::string(read[1].data.begin(), read[1].data.end()), "ZY");
  ASSERT_OK(guest.queue->Stop(guest.device->frontend()).status());
  for (uint16_t head = 0; head < 64; ++head) EXPECT_EQ(desc[head].inflight, 0) << head;
}

TEST_F(I2cDaemonTest, SeveralGuestsHaveTheirOwnSimulatedBus) {
  StartDaemon({"--socket-count=2", "--device-list=sim:0x50"});
  Guest first, second;
  ASSERT_OK(first.Connect(socket_ + "0"));
  ASSERT_OK(second.Connect(socket_ + "1"));
  std::vector<Msg> write{{0x50, false, {0x00, 0xaa}}};
  EXPECT_EQ(first.Transfer(write), std::vector<uint8_t>{kOk});
  std::vector<Msg> read{{0x50, false, {0x00}}, {0x50, true, std::vector<uint8_t>(1)}};
  EXPECT_EQ(second.Transfer(read), (std::vector<uint8_t>{kOk, kOk}));
  EXPECT_EQ(read[1].data[0], 0);
  EXPECT_EQ(first.Transfer(read), (std::vector<uint8_t>{kOk, kOk}));
  EXPECT_EQ(read[1].data[0], 0xaa);
}

TEST_F(I2cDaemonTest, UnknownHostAdapterIsAUsageError) {
  const absl::Status started =
      session_->Start(RunfilePath("vhost-user-i2c/vhost-user-i2c"),
                      {"--socket-path=" + session_->socket(), "--device-list=250:0x50"});
  ASSERT_FALSE(started.ok());
  EXPECT_NE(started.ToString().find("0x200"), std::string::npos) << started;
}

}  // namespace
}  // namespace vhost
