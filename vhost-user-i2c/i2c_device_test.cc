// The virtio-i2c model on real rings in fake guest memory, against simulated buses.
#include "vhost-user-i2c/i2c_device.h"

#include <linux/i2c-dev.h>
#include <linux/virtio_i2c.h>

#include <cstring>
#include <vector>

#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "common/virtio/features.h"
#include "gtest/gtest.h"
#include "vhost-user-i2c/device_list.h"
#include "vhost-user-i2c/simulated_bus.h"

namespace vhost {
namespace {

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;

// One message as the guest's driver queues it.
struct Msg {
  uint16_t addr;
  bool read;
  std::vector<uint8_t> data;  // to write, or (read) sized to the length to read
};

class I2cDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bus_ = std::make_shared<SimulatedBus>(std::vector<uint16_t>{0x50, 0x51});
    other_ = std::make_shared<SimulatedBus>(std::vector<uint16_t>{0x60});
    I2cBusMap map{{0x50, bus_}, {0x51, bus_}, {0x60, other_}, {0x70, bus_}};  // 0x70: no chip
    Build(map, Bit(kFeatureVersion1) | Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST));
  }
  void Build(I2cBusMap map, uint64_t features) {
    device_ = std::make_unique<I2cDevice>(std::move(map), 64);
    ASSERT_OK(device_->SetFeatures(features));
    TestQueue::Options options;
    options.features = features;
    options.size = 256;  // room for a transaction of more than 42 messages
    auto queue = TestQueue::Create(&ram_, options);
    ASSERT_OK(queue);
    queue_ = *std::move(queue);
    ASSERT_OK(queue_->Start(*device_));
  }
  // One turn of the queue's worker: the device takes every chain.
  void Run() { EXPECT_EQ(queue_->Run(*device_).kind(), QueueResult::Kind::kDrained); }

  // Queues `msgs` as one transaction (FAIL_NEXT on all but the last, unless `cut_short`), runs
  // the queue, and returns each message's status; read data lands back in `msgs`.
  std::vector<uint8_t> Transfer(std::vector<Msg>& msgs, bool cut_short = false) {
    std::vector<uint64_t> status_gpa, data_gpa;
    for (size_t i = 0; i < msgs.size(); ++i) {
      virtio_i2c_out_hdr header{};
      header.addr = msgs[i].addr << 1;
      header.flags = (msgs[i].read ? VIRTIO_I2C_FLAGS_M_RD : 0) |
                     (i + 1 < msgs.size() || cut_short ? VIRTIO_I2C_FLAGS_FAIL_NEXT : 0);
      const uint64_t h = ram_.Allocate(8), d = ram_.Allocate(msgs[i].data.size() + 1),
                     s = ram_.Allocate(1);
      std::memcpy(ram_.Host(h, 8), &header, 8);
      if (!msgs[i].data.empty()) {
        std::memcpy(ram_.Host(d, msgs[i].data.size()), msgs[i].data.data(), msgs[i].data.size());
      }
      *ram_.Host(s) = 0xee;
      std::vector<testing::Buffer> readable{{h, 8}}, writable;
      const uint32_t n = static_cast<uint32_t>(msgs[i].data.size());
      if (n) (msgs[i].read ? writable : readable).push_back({d, n});
      writable.push_back({s, 1});
      EXPECT_OK(queue_->Add(readable, writable));
      status_gpa.push_back(s);
      data_gpa.push_back(d);
    }
    Run();
    std::vector<uint8_t> statuses;
    for (size_t i = 0; i < msgs.size(); ++i) {
      auto used = queue_->driver().PollUsed();
      EXPECT_TRUE(used.ok() && used->has_value());
      statuses.push_back(*ram_.Host(status_gpa[i]));
      if (msgs[i].read && !msgs[i].data.empty()) {
        std::memcpy(msgs[i].data.data(), ram_.Host(data_gpa[i], 1), msgs[i].data.size());
      }
    }
    return statuses;
  }

  // Sends raw readable/writable buffers as one message; returns (status byte, used length).
  std::pair<uint8_t, uint32_t> Raw(uint32_t header_len, uint32_t writable_len, bool read,
                                   uint16_t addr = 0x50) {
    virtio_i2c_out_hdr header{};
    header.addr = addr << 1;
    header.flags = read ? VIRTIO_I2C_FLAGS_M_RD : 0;
    const uint64_t h = ram_.Allocate(8), w = ram_.Allocate(256);
    std::memcpy(ram_.Host(h, 8), &header, 8);
    std::memset(ram_.Host(w, 256), 0xee, 256);
    std::vector<testing::Buffer> writable;
    if (writable_len) writable.push_back({w, writable_len});
    EXPECT_OK(queue_->Add({{h, header_len}}, writable));
    Run();
    auto used = queue_->driver().PollUsed();
    EXPECT_TRUE(used.ok() && used->has_value());
    const uint32_t len = used.ok() && used->has_value() ? (*used)->len : 0;
    return {writable_len ? *ram_.Host(w + writable_len - 1) : uint8_t{0xee}, len};
  }

  FakeGuestMemory ram_{1 << 20};
  std::shared_ptr<SimulatedBus> bus_, other_;
  std::unique_ptr<I2cDevice> device_;
  std::unique_ptr<TestQueue> queue_;
};

constexpr uint8_t kOk = VIRTIO_I2C_MSG_OK;
constexpr uint8_t kErr = VIRTIO_I2C_MSG_ERR;

TEST_F(I2cDeviceTest, Info) {
  EXPECT_EQ(device_->Info().virtio_id, 34u);
  EXPECT_TRUE(device_->Info().features & Bit(VIRTIO_I2C_F_ZERO_LENGTH_REQUEST));
}

TEST_F(I2cDeviceTest, WriteThenRandomReadInOneTransaction) {
  std::vector<Msg> write{{0x50, false, {0x10, 'a', 'b', 'c'}}};
  EXPECT_EQ(Transfer(write), std::vector<uint8_t>{kOk});
  std::vector<Msg> read{{0x50, false, {0x10}}, {0x50, true, std::vector<uint8_t>(3)}};
  EXPECT_EQ(Transfer(read), (std::vector<uint8_t>{kOk, kOk}));
  EXPECT_EQ(read[1].data, (std::vector<uint8_t>{'a', 'b', 'c'}));
  EXPECT_EQ(bus_->Contents(0x51)[0x10], 0);  // the other EEPROM is untouched
}

TEST_F(I2cDeviceTest, ATransactionWithAnUnlistedAddressFailsWholeAndSendsNothing) {
  std::vector<Msg> msgs{{0x50, false, {0x00, 0x42}}, {0x23, false, {0x00}}};
  EXPECT_EQ(Transfer(msgs), (std::vector<uint8_t>{kErr, kErr}));
  EXPECT_EQ(bus_->Contents(0x50)[0], 0);
}

TEST_F(I2cDeviceTest, TransactionsAcrossAdaptersFail) {
  std::vector<Msg> msgs{{0x50, false, {0x00, 0x42}}, {0x60, false, {0x00, 1}}};
  EXPECT_EQ(Transfer(msgs), (std::vector<uint8_t>{kErr, kErr}));
  EXPECT_EQ(bus_->Contents(0x50)[0], 0);
  EXPECT_EQ(other_->Contents(0x60)[0], 0);
}

TEST_F(I2cDeviceTest, NoAcknowledgeFailsTheTransaction) {
  std::vector<Msg> msgs{{0x70, true, std::vector<uint8_t>(1)}};
  EXPECT_EQ(Transfer(msgs), std::vector<uint8_t>{kErr});
}

TEST_F(I2cDeviceTest, ZeroLengthNeedsTheFeature) {
  std::vector<Msg> quick{{0x50, false, {}}};
  EXPECT_EQ(Transfer(quick), std::vector<uint8_t>{kOk});
  Build({{0x50, bus_}}, Bit(kFeatureVersion1));
  EXPECT_EQ(Transfer(quick), std::vector<uint8_t>{kErr});
}

TEST_F(I2cDeviceTest, MessagesOverTheLimitFail) {
  std::vector<Msg> big{{0x50, true, std::vector<uint8_t>(65)}};
  EXPECT_EQ(Transfer(big), std::vector<uint8_t>{kErr});
  std::vector<Msg> fits{{0x50, true, std::vector<uint8_t>(64)}};
  EXPECT_EQ(Transfer(fits), std::vector<uint8_t>{kOk});
}

// A transaction holds at most I2C_RDWR_IOCTL_MAX_MSGS (42) messages: the daemon keeps no more
// than that (plus the one that breaks it) waiting for its end, and a longer one fails whole.
TEST_F(I2cDeviceTest, TransactionsOfMoreMessagesThanI2cDevTakesFailWhole) {
  std::vector<Msg> most(I2C_RDWR_IOCTL_MAX_MSGS, Msg{0x50, false, {0x00}});
  EXPECT_EQ(Transfer(most), std::vector<uint8_t>(I2C_RDWR_IOCTL_MAX_MSGS, kOk));
  std::vector<Msg> more(I2C_RDWR_IOCTL_MAX_MSGS + 1, Msg{0x50, false, {0x00}});
  EXPECT_EQ(Transfer(more), std::vector<uint8_t>(I2C_RDWR_IOCTL_MAX_MSGS + 1, kErr));
}

TEST_F(I2cDeviceTest, MalformedChains) {
  EXPECT_EQ(Raw(4, 1, false), std::make_pair(kErr, 1u));  // short header
  EXPECT_EQ(Raw(4, 3, true), std::make_pair(kErr, 3u));   // short header, status at the end
  EXPECT_EQ(Raw(8, 0, false).second, 0u);                 // no status byte: returned empty
  EXPECT_EQ(Raw(8, 3, false), std::make_pair(kErr, 3u));  // a write with writable data
  // A read with 3 bytes of data: fine.
  EXPECT_EQ(Raw(8, 4, true), std::make_pair(kOk, 4u));
}

TEST_F(I2cDeviceTest, ATransactionCutShortRunsAsFarAsItGoes) {
  std::vector<Msg> msgs{{0x51, false, {0x05, 7}}};
  EXPECT_EQ(Transfer(msgs, /*cut_short=*/true), std::vector<uint8_t>{kOk});
  EXPECT_EQ(bus_->Contents(0x51)[5], 7);
}

TEST(I2cDeviceListTest, Parses) {
  auto list = ParseI2cDeviceList("1:0x50:81,sim:32");
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_FALSE((*list)[0].simulated);
  EXPECT_EQ((*list)[0].number, 1u);
  EXPECT_EQ((*list)[0].addresses, (std::vector<uint16_t>{0x50, 81}));
  EXPECT_TRUE((*list)[1].simulated);
  EXPECT_EQ((*list)[1].addresses, std::vector<uint16_t>{32});
  for (const char* bad : {"", "1", "1:0x7f", "1:3", "x:0x50", "1:0x50,sim:0x50", "1:zz"}) {
    EXPECT_FALSE(ParseI2cDeviceList(bad).ok()) << bad;
  }
}

TEST(SimulatedBusTest, EepromPointerWraps) {
  SimulatedBus bus({0x50});
  std::vector<I2cMessage> write{{0x50, false, {0xff, 1, 2}}};
  ASSERT_OK(bus.Transfer(absl::MakeSpan(write)));
  EXPECT_EQ(bus.Contents(0x50)[0xff], 1);
  EXPECT_EQ(bus.Contents(0x50)[0x00], 2);
  std::vector<I2cMessage> read{{0x50, true, std::vector<uint8_t>(2)}};
  ASSERT_OK(bus.Transfer(absl::MakeSpan(read)));  // continues from the pointer (0x01)
  EXPECT_EQ(read[0].data, (std::vector<uint8_t>{0, 0}));
}

}  // namespace
}  // namespace vhost
