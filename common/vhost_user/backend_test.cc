// The connection state machine, driven message by message through Backend::Handle.
#include "common/vhost_user/backend.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/testing/driver_ring.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/vhost_user/channel.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::StatusIs;

class CountingDevice : public VirtioDevice {
 public:
  DeviceInfo Info() const override {
    DeviceInfo info;
    info.virtio_id = 42;
    info.num_queues = 2;
    info.max_queue_size = 256;
    info.features = Bit(kFeatureVersion1) | Bit(5);
    info.config_size = 8;
    return info;
  }
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override {
    ++config_reads;
    for (size_t i = 0; i < data.size(); ++i) data[i] = config_[offset + i];
    return absl::OkStatus();
  }
  absl::Status WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) override {
    ++config_writes;
    if (offset < 4) return absl::PermissionDeniedError("read-only field");
    for (size_t i = 0; i < data.size(); ++i) config_[offset + i] = data[i];
    return absl::OkStatus();
  }
  QueueResult ProcessQueue(QueueContext& context) override { return QueueResult::Drained(); }
  void Reset() override { ++resets; }
  absl::Status SetFeatures(uint64_t acked) override {
    features = acked;
    return absl::OkStatus();
  }
  absl::Status SetDisplaySocket(UniqueFd socket) override {
    display_socket = std::move(socket);
    return absl::OkStatus();
  }
  absl::Status NotifyConfigChange() { return notify_config_change_(); }
  UniqueFd display_socket;
  uint64_t features = 0;
  int resets = 0;
  int config_reads = 0;
  int config_writes = 0;
  uint8_t config_[8] = {1, 2, 3, 4, 5, 6, 7, 8};
};

Message Request(FrontendRequest r) { return MakeRequest(static_cast<uint32_t>(r)); }

template <typename T>
Message Request(FrontendRequest r, const T& payload) {
  Message m = Request(r);
  m.Append(payload);
  return m;
}

class BackendTest : public ::testing::Test {
 protected:
  absl::StatusOr<absl::optional<Message>> Send(Message m) {
    absl::Status valid = ValidateFrontendMessage(m);
    if (!valid.ok()) return valid;
    return backend_.Handle(m);
  }
  uint64_t GetU64(FrontendRequest r) {
    auto reply = Send(Request(r));
    EXPECT_OK(reply);
    EXPECT_TRUE(reply->has_value());
    return *(*reply)->Read<uint64_t>();
  }
  // SET_MEM_TABLE with one region of fresh guest RAM.
  Message MemTable(uint64_t gpa, uint64_t size) {
    const testing::FakeGuestMemory ram({{gpa, size}});
    Message m = Request(FrontendRequest::kSetMemTable, MemoryTableHeader{1, 0});
    m.Append(ram.region(0));
    m.fds.push_back(UniqueFd(dup(ram.fd(0))));
    return m;
  }

  CountingDevice device_;
  Backend backend_{&device_, BackendOptions{}};
};

TEST_F(BackendTest, OffersDeviceAndEngineFeatures) {
  const uint64_t features = GetU64(FrontendRequest::kGetFeatures);
  EXPECT_TRUE(features & Bit(5));
  EXPECT_TRUE(features & Bit(kFeatureVersion1));
  EXPECT_TRUE(features & Bit(kFeatureProtocolFeatures));
  EXPECT_TRUE(features & Bit(kFeatureEventIdx));
  EXPECT_TRUE(features & Bit(kFeatureIndirectDesc));
  EXPECT_FALSE(features & Bit(kFeatureRingPacked));  // only on request
  const uint64_t protocol = GetU64(FrontendRequest::kGetProtocolFeatures);
  for (uint32_t bit : {kProtocolMq, kProtocolReplyAck, kProtocolConfig, kProtocolBackendReq,
                       kProtocolResetDevice, kProtocolConfigureMemSlots, kProtocolStatus}) {
    EXPECT_TRUE(protocol & Bit(bit)) << bit;
  }
  EXPECT_FALSE(protocol & Bit(kProtocolLogShmfd));       // the device did not opt in
  EXPECT_FALSE(protocol & Bit(kProtocolInflightShmfd));  // the device did not opt in
  EXPECT_EQ(GetU64(FrontendRequest::kGetQueueNum), 2u);
  EXPECT_EQ(GetU64(FrontendRequest::kGetMaxMemSlots), kMaxMemSlots);
}

TEST(BackendOptionsTest, PackedRingsOnRequest) {
  CountingDevice device;
  BackendOptions options;
  options.offer_packed_ring = true;
  Backend backend(&device, options);
  EXPECT_TRUE(backend.OfferedFeatures() & Bit(kFeatureRingPacked));
}

TEST_F(BackendTest, RefusesFeaturesNeverOffered) {
  EXPECT_THAT(Send(Request(FrontendRequest::kSetFeatures, Bit(6))),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Send(Request(FrontendRequest::kSetProtocolFeatures, Bit(kProtocolLogShmfd))),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_OK(Send(Request(FrontendRequest::kSetFeatures, Bit(kFeatureVersion1) | Bit(5))));
}

TEST_F(BackendTest, GpuSetSocketHandsTheSocketToTheDevice) {
  EXPECT_THAT(Send(Request(FrontendRequest::kGpuSetSocket)),
              StatusIs(absl::StatusCode::kInvalidArgument));  // no fd
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd frontend_end(fds[0]);
  Message set_socket = Request(FrontendRequest::kGpuSetSocket);
  set_socket.fds.push_back(UniqueFd(fds[1]));
  ASSERT_OK(Send(std::move(set_socket)));
  ASSERT_TRUE(device_.display_socket.valid());
  ASSERT_EQ(write(device_.display_socket.get(), "x", 1), 1);
  char byte = 0;
  EXPECT_EQ(read(frontend_end.get(), &byte, 1), 1);
  EXPECT_EQ(byte, 'x');
}

TEST(BackendDisplayTest, DevicesWithoutADisplayRefuseTheSocket) {
  class NoDisplay : public CountingDevice {
   public:
    absl::Status SetDisplaySocket(UniqueFd socket) override {
      return VirtioDevice::SetDisplaySocket(std::move(socket));
    }
  } device;
  Backend backend(&device, BackendOptions{});
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  UniqueFd frontend_end(fds[0]);
  Message set_socket = Request(FrontendRequest::kGpuSetSocket);
  set_socket.fds.push_back(UniqueFd(fds[1]));
  EXPECT_THAT(backend.Handle(set_socket), StatusIs(absl::StatusCode::kUnimplemented));
}

TEST_F(BackendTest, RingResetAckedButNeverOfferedIsDropped) {
  // As QEMU's vhost-user-gpu-pci sends it: RING_RESET from its own transport.
  ASSERT_OK(Send(Request(FrontendRequest::kSetFeatures,
                         Bit(kFeatureVersion1) | Bit(5) | Bit(kFeatureRingReset))));
  EXPECT_EQ(device_.features, Bit(kFeatureVersion1) | Bit(5));
  // Any other bit never offered is still refused.
  EXPECT_THAT(Send(Request(FrontendRequest::kSetFeatures, Bit(kFeatureVersion1) | Bit(41))),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BackendTest, ConfigSpaceReadsAndWritesWithinBounds) {
  Message get = Request(FrontendRequest::kGetConfig, ConfigHeader{2, 4, 0});
  get.AppendBytes(std::vector<uint8_t>(4));
  auto reply = Send(std::move(get));
  ASSERT_OK(reply);
  ASSERT_TRUE(reply->has_value());
  ASSERT_EQ((*reply)->payload.size(), sizeof(ConfigHeader) + 4);
  EXPECT_EQ((*reply)->payload[sizeof(ConfigHeader)], 3);

  Message beyond = Request(FrontendRequest::kGetConfig, ConfigHeader{6, 4, 0});
  beyond.AppendBytes(std::vector<uint8_t>(4));
  reply = Send(std::move(beyond));
  ASSERT_OK(reply);
  EXPECT_TRUE((*reply)->payload.empty());  // the spec's error reply

  Message write_ro = Request(FrontendRequest::kSetConfig, ConfigHeader{0, 1, 0});
  write_ro.AppendBytes(std::vector<uint8_t>{9});
  EXPECT_THAT(Send(std::move(write_ro)), StatusIs(absl::StatusCode::kPermissionDenied));
  Message write = Request(FrontendRequest::kSetConfig, ConfigHeader{4, 2, 0});
  write.AppendBytes(std::vector<uint8_t>{9, 9});
  EXPECT_OK(Send(std::move(write)));
  EXPECT_EQ(device_.config_[5], 9);
}

// Zero-length config accesses never reach the device: its buffer would be empty (a null data
// pointer, undefined behaviour in the memcpy devices do). GET_CONFIG answers with the header and
// no bytes, SET_CONFIG with success.
TEST_F(BackendTest, ZeroLengthConfigAccessesStayInTheEngine) {
  for (uint32_t offset : {0u, 4u, 8u}) {
    auto reply = Send(Request(FrontendRequest::kGetConfig, ConfigHeader{offset, 0, 0}));
    ASSERT_OK(reply);
    ASSERT_TRUE(reply->has_value());
    EXPECT_EQ((*reply)->payload.size(), sizeof(ConfigHeader)) << offset;
    EXPECT_OK(Send(Request(FrontendRequest::kSetConfig, ConfigHeader{offset, 0, 0})));
  }
  EXPECT_EQ(device_.config_reads, 0);
  EXPECT_EQ(device_.config_writes, 0);
  // Beyond the end it is still an error (empty reply).
  auto beyond = Send(Request(FrontendRequest::kGetConfig, ConfigHeader{9, 0, 0}));
  ASSERT_OK(beyond);
  EXPECT_TRUE((*beyond)->payload.empty());
}

TEST_F(BackendTest, ValidatesQueueSetup) {
  ASSERT_OK(Send(Request(FrontendRequest::kSetFeatures, Bit(kFeatureVersion1))));
  EXPECT_THAT(Send(Request(FrontendRequest::kSetVringNum, VringState{2, 64})),
              StatusIs(absl::StatusCode::kInvalidArgument));  // index out of range
  EXPECT_THAT(Send(Request(FrontendRequest::kSetVringNum, VringState{0, 0})),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Send(Request(FrontendRequest::kSetVringNum, VringState{0, 100})),
              StatusIs(absl::StatusCode::kInvalidArgument));  // split rings need a power of two
  EXPECT_THAT(Send(Request(FrontendRequest::kSetVringNum, VringState{0, 512})),
              StatusIs(absl::StatusCode::kInvalidArgument));  // above the device maximum
  EXPECT_OK(Send(Request(FrontendRequest::kSetVringNum, VringState{0, 256})));

  ASSERT_OK(Send(MemTable(0, 1 << 20)));
  VringAddr outside{0, 0, 0x7f0000000000 + (2 << 20), 0x7f0000000000, 0x7f0000000000 + 0x2000, 0};
  EXPECT_THAT(Send(Request(FrontendRequest::kSetVringAddr, outside)),
              StatusIs(absl::StatusCode::kInvalidArgument));
  VringAddr inside{0, 0, 0x7f0000000000, 0x7f0000000000 + 0x2000, 0x7f0000000000 + 0x1000, 0};
  EXPECT_OK(Send(Request(FrontendRequest::kSetVringAddr, inside)));
}

TEST_F(BackendTest, RejectsBadMemoryTables) {
  Message overlapping = Request(FrontendRequest::kSetMemTable, MemoryTableHeader{2, 0});
  overlapping.Append(MemoryRegion{0, 0x2000, 0x10000, 0});
  overlapping.Append(MemoryRegion{0x1000, 0x2000, 0x20000, 0});
  for (int i = 0; i < 2; ++i) {
    UniqueFd fd(memfd_create("ram", MFD_CLOEXEC));
    ASSERT_EQ(ftruncate(fd.get(), 0x2000), 0);
    overlapping.fds.push_back(std::move(fd));
  }
  EXPECT_THAT(Send(std::move(overlapping)), StatusIs(absl::StatusCode::kInvalidArgument));
  Message unmappable = Request(FrontendRequest::kSetMemTable, MemoryTableHeader{1, 0});
  unmappable.Append(MemoryRegion{0, 0x1000, 0x10000, 0});
  unmappable.fds.push_back(UniqueFd(eventfd(0, EFD_CLOEXEC)));
  EXPECT_FALSE(Send(std::move(unmappable)).ok());
}

TEST_F(BackendTest, StatusReportsWhatWasSet) {
  EXPECT_OK(Send(Request(FrontendRequest::kSetStatus, uint64_t{0xf})));
  EXPECT_EQ(GetU64(FrontendRequest::kGetStatus), 0xfu);
  EXPECT_THAT(Send(Request(FrontendRequest::kSetStatus, uint64_t{0x100})),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(BackendTest, ResetDeviceResetsTheModel) {
  EXPECT_OK(Send(Request(FrontendRequest::kSetStatus, uint64_t{0xf})));
  EXPECT_OK(Send(Request(FrontendRequest::kResetDevice)));
  EXPECT_EQ(device_.resets, 1);
  EXPECT_EQ(GetU64(FrontendRequest::kGetStatus), 0u);
}

TEST_F(BackendTest, MemSlotsNeedTheProtocolFeature) {
  Message add = Request(FrontendRequest::kAddMemReg, SingleMemoryRegion{0, {0, 0x1000, 0x1000, 0}});
  UniqueFd fd(memfd_create("ram", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(fd.get(), 0x1000), 0);
  add.fds.push_back(std::move(fd));
  EXPECT_THAT(Send(std::move(add)), StatusIs(absl::StatusCode::kFailedPrecondition));
}

class ResubmittingDevice : public CountingDevice {
 public:
  DeviceInfo Info() const override {
    DeviceInfo info = CountingDevice::Info();
    info.resubmit_queues = DeviceInfo::kAllQueues;
    return info;
  }
};

TEST(BackendInflightTest, RegionHandedOutSealedAndTakenBackChecked) {
  ResubmittingDevice device;
  Backend backend(&device, BackendOptions{});
  ASSERT_TRUE(backend.OfferedProtocolFeatures() & Bit(kProtocolInflightShmfd));
  auto send = [&](Message m) -> absl::StatusOr<absl::optional<Message>> {
    absl::Status valid = ValidateFrontendMessage(m);
    if (!valid.ok()) return valid;
    return backend.Handle(m);
  };
  const InflightDescription ask{0, 0, 2, 128, 0};
  // Only once negotiated.
  EXPECT_THAT(send(Request(FrontendRequest::kGetInflightFd, ask)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK(send(Request(FrontendRequest::kSetProtocolFeatures, Bit(kProtocolInflightShmfd))));
  EXPECT_THAT(send(Request(FrontendRequest::kGetInflightFd, InflightDescription{0, 0, 3, 128, 0})),
              StatusIs(absl::StatusCode::kInvalidArgument));  // more queues than the device has

  absl::StatusOr<absl::optional<Message>> reply =
      send(Request(FrontendRequest::kGetInflightFd, ask));
  ASSERT_OK(reply);
  ASSERT_TRUE(reply->has_value());
  Message& got = **reply;
  const InflightDescription region = *got.Read<InflightDescription>();
  EXPECT_EQ(region.num_queues, 2);
  EXPECT_EQ(region.queue_size, 128);
  EXPECT_EQ(region.mmap_offset, 0u);
  EXPECT_EQ(region.mmap_size, 2 * InflightQueueBytes(128));
  ASSERT_EQ(got.fds.size(), 1u);
  const int fd = got.fds[0].get();
  EXPECT_TRUE(fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK);
  // Each queue's part starts with an empty header for the ring size asked.
  void* map = mmap(nullptr, region.mmap_size, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  const auto* second = reinterpret_cast<const InflightQueueHeader*>(
      static_cast<const uint8_t*>(map) + InflightQueueBytes(128));
  EXPECT_EQ(second->version, kInflightVersion);
  EXPECT_EQ(second->desc_num, 128);
  munmap(map, region.mmap_size);

  Message set = Request(FrontendRequest::kSetInflightFd, region);
  set.fds.push_back(UniqueFd(dup(fd)));
  EXPECT_OK(send(std::move(set)));
  // A size that does not match the layout, or a file that could shrink under the mapping.
  InflightDescription wrong = region;
  wrong.mmap_size += 4096;
  Message bad_size = Request(FrontendRequest::kSetInflightFd, wrong);
  bad_size.fds.push_back(UniqueFd(dup(fd)));
  EXPECT_THAT(send(std::move(bad_size)), StatusIs(absl::StatusCode::kInvalidArgument));
  UniqueFd unsealed(memfd_create("inflight", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(unsealed.get(), region.mmap_size), 0);
  Message unsealed_set = Request(FrontendRequest::kSetInflightFd, region);
  unsealed_set.fds.push_back(std::move(unsealed));
  EXPECT_THAT(send(std::move(unsealed_set)), StatusIs(absl::StatusCode::kInvalidArgument));
}

// After a reconnect the front end's call fd is signalled once when it arrives: QEMU's
// vhost-user-scsi enables its rings before it sends the call fd the guest listens on, so
// completions of resubmitted chains may have gone to a notifier nobody reads.
TEST(BackendInflightTest, CallFdSignalledOnceWhenARegionIsSet) {
  for (bool with_region : {false, true}) {
    SCOPED_TRACE(with_region);
    ResubmittingDevice device;
    Backend backend(&device, BackendOptions{});
    auto send = [&](Message m) -> absl::StatusOr<absl::optional<Message>> {
      absl::Status valid = ValidateFrontendMessage(m);
      if (!valid.ok()) return valid;
      return backend.Handle(m);
    };
    ASSERT_OK(send(Request(FrontendRequest::kSetProtocolFeatures, Bit(kProtocolInflightShmfd))));
    if (with_region) {
      absl::StatusOr<absl::optional<Message>> reply =
          send(Request(FrontendRequest::kGetInflightFd, InflightDescription{0, 0, 2, 128, 0}));
      ASSERT_OK(reply);
      ASSERT_TRUE(reply->has_value());
      Message set =
          Request(FrontendRequest::kSetInflightFd, *(*reply)->Read<InflightDescription>());
      set.fds.push_back(UniqueFd(dup((*reply)->fds[0].get())));
      ASSERT_OK(send(std::move(set)));
    }
    UniqueFd call(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    Message set_call = Request(FrontendRequest::kSetVringCall, uint64_t{0});
    set_call.fds.push_back(UniqueFd(dup(call.get())));
    ASSERT_OK(send(std::move(set_call)));
    eventfd_t count = 0;
    const bool signalled = eventfd_read(call.get(), &count) == 0;
    EXPECT_EQ(signalled, with_region);
    EXPECT_EQ(count, signalled ? 1u : 0u);
  }
}

TEST_F(BackendTest, ConfigChangeGoesOverTheBackendChannel) {
  EXPECT_THAT(device_.NotifyConfigChange(), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK(
      Send(Request(FrontendRequest::kSetProtocolFeatures,
                   Bit(kProtocolBackendReq) | Bit(kProtocolConfig) | Bit(kProtocolReplyAck))));
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  Channel frontend_side{UniqueFd(fds[0])};
  Message set_fd = Request(FrontendRequest::kSetBackendReqFd);
  set_fd.fds.push_back(UniqueFd(fds[1]));
  ASSERT_OK(Send(std::move(set_fd)));

  std::thread frontend([&] {
    absl::StatusOr<Message> request = frontend_side.Receive();
    ASSERT_OK(request);
    EXPECT_EQ(request->header.request, static_cast<uint32_t>(BackendRequest::kConfigChangeMsg));
    EXPECT_TRUE(request->need_reply());
    Message ack = MakeReply(*request);
    ack.Append(uint64_t{0});
    EXPECT_OK(frontend_side.Send(ack));
  });
  EXPECT_OK(device_.NotifyConfigChange());
  frontend.join();
}

// A device that holds the chains it pops (requests in flight) and completes them when its queue
// stops, as vhost-user-blk does with its I/O.
class HoldingDevice : public VirtioDevice {
 public:
  DeviceInfo Info() const override {
    DeviceInfo info;
    info.features = Bit(kFeatureVersion1);
    return info;
  }
  QueueResult ProcessQueue(QueueContext& context) override {
    while (absl::optional<ChainToken> token = context.Take()) held_.push_back(*token);
    if (!held_.empty() && !popped.HasBeenNotified()) popped.Notify();
    return QueueResult::Drained();
  }
  void QueueStopped(QueueContext& context) override {
    for (ChainToken token : held_) context.Complete(token, 0);
    held_.clear();
  }
  absl::Notification popped;

 private:
  std::vector<ChainToken> held_;
};

// ADD_MEM_REG (with the region's fd) or REM_MEM_REG (without) of region i of `ram`.
Message MemReg(const testing::FakeGuestMemory& ram, FrontendRequest request, size_t i) {
  Message m = Request(request, SingleMemoryRegion{0, ram.region(i)});
  if (request == FrontendRequest::kAddMemReg) m.fds.push_back(UniqueFd(dup(ram.fd(i))));
  return m;
}

// The crash: the front end removes the region under a ring while requests are in
// flight. The device completes them as its queue stops, the ring cannot be re-mapped, and the
// restarted worker used to notify the guest through a null avail pointer. Now the queue breaks
// (NEEDS_RESET) and the daemon lives on.
TEST(BackendMemoryTest, RemovingTheRingRegionWithRequestsInFlightBreaksTheQueue) {
  HoldingDevice device;
  Backend backend(&device, BackendOptions{});
  auto send = [&](Message m) -> absl::StatusOr<absl::optional<Message>> {
    absl::Status valid = ValidateFrontendMessage(m);
    if (!valid.ok()) return valid;
    return backend.Handle(m);
  };
  testing::FakeGuestMemory ram({{0, 1 << 20}, {1 << 20, 1 << 16}});  // buffers, the ring
  ASSERT_OK(send(Request(FrontendRequest::kSetProtocolFeatures,
                         Bit(kProtocolConfigureMemSlots) | Bit(kProtocolStatus)))
                .status());
  ASSERT_OK(send(Request(FrontendRequest::kSetFeatures,
                         Bit(kFeatureVersion1) | Bit(kFeatureProtocolFeatures)))
                .status());
  ASSERT_OK(send(MemReg(ram, FrontendRequest::kAddMemReg, 0)).status());
  ASSERT_OK(send(MemReg(ram, FrontendRequest::kAddMemReg, 1)).status());

  auto sizes = testing::ComputeRingSizes(testing::RingLayout::kSplit, 16);
  ASSERT_OK(sizes);
  testing::DriverRing::Config config;
  config.size = 16;
  config.addresses = testing::LayoutRings(*sizes, 1 << 20);
  auto driver = testing::DriverRing::Create(&ram, config);
  ASSERT_OK(driver);
  ASSERT_OK(send(Request(FrontendRequest::kSetVringNum, VringState{0, 16})).status());
  const uint64_t uva = testing::FakeGuestMemory::kUvaOffset;
  ASSERT_OK(send(Request(FrontendRequest::kSetVringAddr,
                         VringAddr{0, 0, config.addresses.desc + uva, config.addresses.device + uva,
                                   config.addresses.driver + uva, 0}))
                .status());
  UniqueFd kick(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  Message set_kick = Request(FrontendRequest::kSetVringKick, uint64_t{0});
  set_kick.fds.push_back(UniqueFd(dup(kick.get())));
  ASSERT_OK(send(std::move(set_kick)).status());
  UniqueFd call(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  Message set_call = Request(FrontendRequest::kSetVringCall, uint64_t{0});
  set_call.fds.push_back(UniqueFd(dup(call.get())));
  ASSERT_OK(send(std::move(set_call)).status());
  ASSERT_OK(send(Request(FrontendRequest::kSetVringEnable, VringState{0, 1})).status());

  ASSERT_OK((*driver)->AddChain({}, {{0x1000, 512}}).status());
  (*driver)->Publish();
  ASSERT_EQ(eventfd_write(kick.get(), 1), 0);
  ASSERT_TRUE(device.popped.WaitForNotificationWithTimeout(absl::Seconds(10)));

  ASSERT_OK(send(MemReg(ram, FrontendRequest::kRemMemReg, 1)).status());
  auto status = send(Request(FrontendRequest::kGetStatus));
  ASSERT_OK(status);
  EXPECT_TRUE(*(*status)->Read<uint64_t>() & kStatusNeedsReset);
  // The completion pushed while stopping landed in the old ring, which stayed mapped.
  auto used = (*driver)->PollUsed();
  ASSERT_OK(used);
  EXPECT_TRUE(used->has_value());
  ASSERT_OK(send(Request(FrontendRequest::kGetVringBase, VringState{0, 0})).status());
}

// ---- Device state (VHOST_USER_PROTOCOL_F_DEVICE_STATE)

class MigratingDevice : public CountingDevice {
 public:
  DeviceInfo Info() const override {
    DeviceInfo info = CountingDevice::Info();
    info.migrates_state = true;
    return info;
  }
  absl::StatusOr<std::string> SaveState() override {
    if (!save_error.ok()) return save_error;
    return state;
  }
  absl::Status LoadState(absl::string_view data) override {
    if (data == "bad") return absl::InvalidArgumentError("bad state");
    loaded = std::string(data);
    return absl::OkStatus();
  }
  std::string state;
  absl::Status save_error;
  std::string loaded;
};

class DeviceStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(backend_->OfferedProtocolFeatures() & Bit(kProtocolDeviceState));
    ASSERT_OK(Send(Request(FrontendRequest::kSetProtocolFeatures, Bit(kProtocolDeviceState))));
  }
  absl::StatusOr<absl::optional<Message>> Send(Message m) {
    absl::Status valid = ValidateFrontendMessage(m);
    if (!valid.ok()) return valid;
    return backend_->Handle(m);
  }
  // SET_DEVICE_STATE_FD with `fd`; returns the u64 reply.
  uint64_t SetFd(uint32_t direction, uint32_t phase, UniqueFd fd) {
    Message m = Request(FrontendRequest::kSetDeviceStateFd, DeviceStateTransfer{direction, phase});
    m.fds.push_back(std::move(fd));
    absl::StatusOr<absl::optional<Message>> reply = Send(std::move(m));
    EXPECT_OK(reply);
    if (!reply.ok() || !reply->has_value()) return ~uint64_t{0};
    EXPECT_TRUE((*reply)->fds.empty());  // the front end's channel is used
    return *(*reply)->Read<uint64_t>();
  }
  uint64_t Check() {
    absl::StatusOr<absl::optional<Message>> reply =
        Send(Request(FrontendRequest::kCheckDeviceState));
    EXPECT_OK(reply);
    if (!reply.ok() || !reply->has_value()) return ~uint64_t{0};
    return *(*reply)->Read<uint64_t>();
  }
  // A pipe: [0] read end, [1] write end.
  static std::pair<UniqueFd, UniqueFd> Pipe() {
    int fds[2];
    EXPECT_EQ(pipe2(fds, O_CLOEXEC), 0);
    return {UniqueFd(fds[0]), UniqueFd(fds[1])};
  }
  static std::string ReadToEnd(int fd) {
    std::string data;
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0) data.append(buf, n);
    return data;
  }
  static bool WriteAll(int fd, const std::string& data) {
    for (size_t done = 0; done < data.size();) {
      const ssize_t n = write(fd, data.data() + done, data.size() - done);
      if (n <= 0) return false;
      done += n;
    }
    return true;
  }

  MigratingDevice device_;
  BackendOptions options_;
  std::unique_ptr<Backend> backend_ = std::make_unique<Backend>(&device_, options_);
};

TEST_F(BackendTest, DeviceStateOnlyForDevicesThatMigrateIt) {
  EXPECT_FALSE(backend_.OfferedProtocolFeatures() & Bit(kProtocolDeviceState));
  EXPECT_THAT(Send(Request(FrontendRequest::kSetProtocolFeatures, Bit(kProtocolDeviceState))),
              StatusIs(absl::StatusCode::kInvalidArgument));
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  UniqueFd read_end(fds[0]);
  Message m = Request(FrontendRequest::kSetDeviceStateFd, DeviceStateTransfer{kTransferSave, 0});
  m.fds.push_back(UniqueFd(fds[1]));
  auto reply = Send(std::move(m));
  ASSERT_OK(reply);
  ASSERT_TRUE(reply->has_value());
  EXPECT_NE(*(*reply)->Read<uint64_t>() & 0xff, 0u);  // refused: not negotiated
  auto check = Send(Request(FrontendRequest::kCheckDeviceState));
  ASSERT_OK(check);
  EXPECT_NE(*(*check)->Read<uint64_t>(), 0u);
}

TEST_F(DeviceStateTest, SavesMoreThanAPipeHolds) {
  // Larger than a pipe's buffer: the back end must reply before it writes, and write while the
  // front end reads.
  device_.state = std::string(1 << 20, 'x') + "end";
  auto [read_end, write_end] = Pipe();
  EXPECT_EQ(SetFd(kTransferSave, kTransferPhaseStopped, std::move(write_end)), kDeviceStateNoFd);
  EXPECT_EQ(ReadToEnd(read_end.get()), device_.state);
  EXPECT_EQ(Check(), 0u);
  // Checked once: a second check has no transfer.
  EXPECT_NE(Check(), 0u);
}

TEST_F(DeviceStateTest, LoadsWhatTheFrontEndWrites) {
  auto [read_end, write_end] = Pipe();
  EXPECT_EQ(SetFd(kTransferLoad, kTransferPhaseStopped, std::move(read_end)), kDeviceStateNoFd);
  const std::string state = std::string(300000, 'y') + "tail";
  ASSERT_TRUE(WriteAll(write_end.get(), state));
  write_end.Reset();
  EXPECT_EQ(Check(), 0u);
  EXPECT_EQ(device_.loaded, state);
}

TEST_F(DeviceStateTest, AStateTheDeviceRefusesFailsTheCheck) {
  auto [read_end, write_end] = Pipe();
  EXPECT_EQ(SetFd(kTransferLoad, kTransferPhaseStopped, std::move(read_end)), kDeviceStateNoFd);
  ASSERT_TRUE(WriteAll(write_end.get(), "bad"));
  write_end.Reset();
  EXPECT_EQ(Check(), 1u);
  EXPECT_EQ(device_.loaded, "");
}

TEST_F(DeviceStateTest, AStateTheDeviceCannotGiveFailsTheCheck) {
  device_.save_error = absl::FailedPreconditionError("locks held");
  auto [read_end, write_end] = Pipe();
  EXPECT_EQ(SetFd(kTransferSave, kTransferPhaseStopped, std::move(write_end)), kDeviceStateNoFd);
  EXPECT_EQ(ReadToEnd(read_end.get()), "");  // an empty stream, then the failure
  EXPECT_EQ(Check(), 1u);
}

TEST_F(DeviceStateTest, RefusesUnknownDirectionsAndPhases) {
  EXPECT_EQ(SetFd(2, kTransferPhaseStopped, Pipe().first) & 0xff, 1u);
  EXPECT_EQ(SetFd(kTransferLoad, 1, Pipe().first) & 0xff, 1u);
  EXPECT_NE(Check(), 0u);
  // No fd, or two: malformed, refused before the device sees it.
  Message none = Request(FrontendRequest::kSetDeviceStateFd, DeviceStateTransfer{kTransferLoad, 0});
  EXPECT_THAT(Send(std::move(none)), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(DeviceStateTest, AStateOverTheCapIsRefused) {
  options_.max_device_state_bytes = 100000;
  backend_ = std::make_unique<Backend>(&device_, options_);
  SetUp();
  signal(SIGPIPE, SIG_IGN);  // the back end closes its end at the cap: our write gets EPIPE
  auto [read_end, write_end] = Pipe();
  EXPECT_EQ(SetFd(kTransferLoad, kTransferPhaseStopped, std::move(read_end)), kDeviceStateNoFd);
  EXPECT_FALSE(WriteAll(write_end.get(), std::string(1 << 20, 'z')));
  EXPECT_EQ(errno, EPIPE);
  write_end.Reset();
  EXPECT_EQ(Check(), 1u);
  EXPECT_EQ(device_.loaded, "");
}

TEST_F(DeviceStateTest, AFrontEndThatNeverEndsTheTransferFailsAtTheDeadline) {
  options_.state_transfer_timeout = absl::Milliseconds(50);
  backend_ = std::make_unique<Backend>(&device_, options_);
  SetUp();
  auto [read_end, write_end] = Pipe();
  EXPECT_EQ(SetFd(kTransferLoad, kTransferPhaseStopped, std::move(read_end)), kDeviceStateNoFd);
  ASSERT_TRUE(WriteAll(write_end.get(), "partial"));
  // The write end stays open: no end of file ever comes.
  EXPECT_EQ(Check(), 1u);
  EXPECT_EQ(device_.loaded, "");
  // Saving to a front end that never reads fails the same way.
  device_.state = std::string(1 << 20, 's');
  auto [unread, save_end] = Pipe();
  EXPECT_EQ(SetFd(kTransferSave, kTransferPhaseStopped, std::move(save_end)), kDeviceStateNoFd);
  EXPECT_EQ(Check(), 1u);
}

// The only phase there is: the device and its rings stopped. A running queue could change the
// state while it is saved, or serve the guest from a session about to be replaced.
TEST_F(DeviceStateTest, OnlyWhileEveryQueueIsStopped) {
  testing::FakeGuestMemory ram({{0, 1 << 16}});
  ASSERT_OK(Send(Request(FrontendRequest::kSetFeatures,
                         Bit(kFeatureVersion1) | Bit(kFeatureProtocolFeatures))));
  Message table = Request(FrontendRequest::kSetMemTable, MemoryTableHeader{1, 0});
  table.Append(ram.region(0));
  table.fds.push_back(UniqueFd(dup(ram.fd(0))));
  ASSERT_OK(Send(std::move(table)));
  auto sizes = testing::ComputeRingSizes(testing::RingLayout::kSplit, 16);
  ASSERT_OK(sizes);
  const testing::RingAddresses rings = testing::LayoutRings(*sizes, 0x8000);
  const uint64_t uva = testing::FakeGuestMemory::kUvaOffset;
  UniqueFd kick(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  auto start_queue = [&]() {
    ASSERT_OK(Send(Request(FrontendRequest::kSetVringNum, VringState{0, 16})));
    ASSERT_OK(Send(
        Request(FrontendRequest::kSetVringAddr,
                VringAddr{0, 0, rings.desc + uva, rings.device + uva, rings.driver + uva, 0})));
    Message set_kick = Request(FrontendRequest::kSetVringKick, uint64_t{0});
    set_kick.fds.push_back(UniqueFd(dup(kick.get())));
    ASSERT_OK(Send(std::move(set_kick)));
    ASSERT_OK(Send(Request(FrontendRequest::kSetVringEnable, VringState{0, 1})));
  };
  ASSERT_NO_FATAL_FAILURE(start_queue());
  device_.state = "saved";
  EXPECT_EQ(SetFd(kTransferSave, kTransferPhaseStopped, Pipe().second) & 0xff, 1u);
  // Stopped (GET_VRING_BASE, as QEMU stops a VM): now it may.
  ASSERT_OK(Send(Request(FrontendRequest::kGetVringBase, VringState{0, 0})));
  auto [read_end, write_end] = Pipe();
  EXPECT_EQ(SetFd(kTransferSave, kTransferPhaseStopped, std::move(write_end)), kDeviceStateNoFd);
  EXPECT_EQ(ReadToEnd(read_end.get()), "saved");
  EXPECT_EQ(Check(), 0u);
  // A load whose queue starts before the check is not applied.
  auto [load_read, load_write] = Pipe();
  EXPECT_EQ(SetFd(kTransferLoad, kTransferPhaseStopped, std::move(load_read)), kDeviceStateNoFd);
  ASSERT_TRUE(WriteAll(load_write.get(), "state"));
  load_write.Reset();
  ASSERT_NO_FATAL_FAILURE(start_queue());
  EXPECT_EQ(Check(), 1u);
  EXPECT_EQ(device_.loaded, "");
}

TEST_F(DeviceStateTest, ADisconnectCancelsATransferUnderWay) {
  // The default deadline is long; the connection ending must not wait for it.
  auto [read_end, write_end] = Pipe();
  EXPECT_EQ(SetFd(kTransferLoad, kTransferPhaseStopped, std::move(read_end)), kDeviceStateNoFd);
  backend_->Reset();
  EXPECT_EQ(device_.loaded, "");
  EXPECT_NE(Check(), 0u);  // nothing left to check
}

// ---- Dirty-page logging for live migration (VHOST_F_LOG_ALL, LOG_SHMFD)

// Fills every writable byte of each chain it takes and completes it at once.
class FillingDevice : public VirtioDevice {
 public:
  DeviceInfo Info() const override {
    DeviceInfo info;
    info.features = Bit(kFeatureVersion1);
    info.logs_dirty_pages = true;
    return info;
  }
  QueueResult ProcessQueue(QueueContext& context) override {
    while (absl::optional<ChainToken> token = context.Take()) {
      const DescriptorChain& chain = context.chain(*token);
      const std::string fill(chain.writable_bytes, 'x');
      context.Complete(*token, CopyToSegments(chain.writable, 0, fill.data(), fill.size()));
    }
    return QueueResult::Drained();
  }
};

// A log as QEMU makes it: a memfd sealed against shrinking.
UniqueFd SealedLog(uint64_t size, bool seal = true) {
  UniqueFd fd(memfd_create("log", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_EQ(ftruncate(fd.get(), size), 0);
  if (seal) {
    EXPECT_EQ(fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK), 0);
  }
  return fd;
}

bool PageDirty(int log_fd, uint64_t gpa) {
  const uint64_t page = gpa / 4096;
  uint8_t byte = 0;
  EXPECT_EQ(pread(log_fd, &byte, 1, page / 8), 1);
  return byte & (1u << (page % 8));
}

class BackendDirtyLogTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kRingGpa = 1 << 20;
  static constexpr uint64_t kLogBytes = (2 << 20) / 4096 / 8;  // covers the 2 MiB of memory
  static constexpr uint64_t kUva = testing::FakeGuestMemory::kUvaOffset;

  void SetUp() override {
    ASSERT_OK(Send(Request(FrontendRequest::kSetProtocolFeatures,
                           Bit(kProtocolLogShmfd) | Bit(kProtocolConfigureMemSlots))));
    ASSERT_OK(Send(Request(FrontendRequest::kSetFeatures, kFeatures)));
    for (size_t i = 0; i < 2; ++i) {
      Message m = Request(FrontendRequest::kAddMemReg, SingleMemoryRegion{0, ram_.region(i)});
      m.fds.push_back(UniqueFd(dup(ram_.fd(i))));
      ASSERT_OK(Send(std::move(m)));
    }
    auto sizes = testing::ComputeRingSizes(testing::RingLayout::kSplit, 16);
    ASSERT_OK(sizes);
    config_.size = 16;
    config_.addresses = testing::LayoutRings(*sizes, kRingGpa);
    auto driver = testing::DriverRing::Create(&ram_, config_);
    ASSERT_OK(driver);
    driver_ = *std::move(driver);
    ASSERT_OK(Send(Request(FrontendRequest::kSetVringNum, VringState{0, 16})));
    ASSERT_OK(Send(RingAddr(0, 0)));
    Message kick = Request(FrontendRequest::kSetVringKick, uint64_t{0});
    kick.fds.push_back(UniqueFd(dup(kick_.get())));
    ASSERT_OK(Send(std::move(kick)));
    Message call = Request(FrontendRequest::kSetVringCall, uint64_t{0});
    call.fds.push_back(UniqueFd(dup(call_.get())));
    ASSERT_OK(Send(std::move(call)));
    ASSERT_OK(Send(Request(FrontendRequest::kSetVringEnable, VringState{0, 1})));
  }
  absl::StatusOr<absl::optional<Message>> Send(Message m) {
    absl::Status valid = ValidateFrontendMessage(m);
    if (!valid.ok()) return valid;
    return backend_.Handle(m);
  }
  Message RingAddr(uint32_t flags, uint64_t log_guest_addr) {
    return Request(
        FrontendRequest::kSetVringAddr,
        VringAddr{0, flags, config_.addresses.desc + kUva, config_.addresses.device + kUva,
                  config_.addresses.driver + kUva, log_guest_addr});
  }
  absl::StatusOr<absl::optional<Message>> SetLogBase(UniqueFd fd, uint64_t size,
                                                     uint64_t offset = 0) {
    Message m = Request(FrontendRequest::kSetLogBase, LogDescription{size, offset});
    m.fds.push_back(std::move(fd));
    return Send(std::move(m));
  }
  // One request with a 6000-byte writable buffer at `gpa` (two pages), served by the worker.
  void Serve(uint64_t gpa) {
    ASSERT_OK(driver_->AddChain({}, {{gpa, 6000}}).status());
    driver_->Publish();
    ASSERT_EQ(eventfd_write(kick_.get(), 1), 0);
    for (;;) {
      auto used = driver_->PollUsed();
      ASSERT_OK(used);
      if (used->has_value()) return;
      pollfd fd = {call_.get(), POLLIN, 0};
      ASSERT_EQ(poll(&fd, 1, 10000), 1);  // the worker signals the call fd
      eventfd_t ignored;
      eventfd_read(call_.get(), &ignored);
    }
  }

  static constexpr uint64_t kFeatures = Bit(kFeatureVersion1) | Bit(kFeatureProtocolFeatures);
  testing::FakeGuestMemory ram_{{{0, 1 << 20}, {1 << 20, 1 << 20}}};  // buffers, the ring
  testing::DriverRing::Config config_;
  std::unique_ptr<testing::DriverRing> driver_;
  UniqueFd kick_{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  UniqueFd call_{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  FillingDevice device_;
  Backend backend_{&device_, BackendOptions{}};
};

TEST_F(BackendTest, LoggingOnlyForDevicesThatOptIn) {
  EXPECT_FALSE(backend_.OfferedFeatures() & Bit(kFeatureLogAll));
  EXPECT_FALSE(backend_.OfferedProtocolFeatures() & Bit(kProtocolLogShmfd));
  FillingDevice device;
  Backend backend(&device, BackendOptions{});
  EXPECT_TRUE(backend.OfferedFeatures() & Bit(kFeatureLogAll));
  EXPECT_TRUE(backend.OfferedProtocolFeatures() & Bit(kProtocolLogShmfd));
}

TEST_F(BackendDirtyLogTest, RefusesHostileLogs) {
  EXPECT_FALSE(SetLogBase(SealedLog(kLogBytes, /*seal=*/false), kLogBytes).ok());
  EXPECT_FALSE(SetLogBase(SealedLog(kLogBytes - 1), kLogBytes - 1).ok());  // memory not covered
  EXPECT_FALSE(SetLogBase(SealedLog(kLogBytes), kLogBytes, 1).ok());       // past the file
  EXPECT_FALSE(SetLogBase(SealedLog(kLogBytes), kLogBytes, ~uint64_t{0}).ok());
  Message no_fd = Request(FrontendRequest::kSetLogBase, LogDescription{kLogBytes, 0});
  EXPECT_FALSE(Send(std::move(no_fd)).ok());
  auto reply = SetLogBase(SealedLog(kLogBytes), kLogBytes);
  ASSERT_OK(reply);
  ASSERT_TRUE(reply->has_value());  // QEMU waits for it
  EXPECT_EQ(*(*reply)->Read<uint64_t>(), 0u);
}

TEST_F(BackendDirtyLogTest, RunningQueuesLogWhatTheyWriteWhileLogAllIsOn) {
  UniqueFd log = SealedLog(kLogBytes);
  ASSERT_OK(SetLogBase(UniqueFd(dup(log.get())), kLogBytes));
  Serve(0x10000);  // LOG_ALL not negotiated yet: nothing logged
  EXPECT_FALSE(PageDirty(log.get(), 0x10000));

  // Migration starts as QEMU starts it: features, then ring addresses, queues running. Only
  // the log bit may change while they run, and the rings may not move.
  EXPECT_FALSE(Send(Request(FrontendRequest::kSetFeatures,
                            kFeatures | Bit(kFeatureLogAll) | Bit(kFeatureEventIdx)))
                   .ok());
  ASSERT_OK(Send(Request(FrontendRequest::kSetFeatures, kFeatures | Bit(kFeatureLogAll))));
  ASSERT_OK(Send(RingAddr(kVringFlagLog, config_.addresses.device)));
  Message moved = RingAddr(kVringFlagLog, config_.addresses.device);
  moved.payload[8] += 16;  // desc_user_addr
  EXPECT_FALSE(Send(std::move(moved)).ok());

  Serve(0x20000 + 4000);  // 6000 bytes: pages 0x20 and 0x21, and 0x22 for the last 1808 bytes
  EXPECT_TRUE(PageDirty(log.get(), 0x20000));
  EXPECT_TRUE(PageDirty(log.get(), 0x21000));
  EXPECT_TRUE(PageDirty(log.get(), 0x22000));
  EXPECT_FALSE(PageDirty(log.get(), 0x23000));
  EXPECT_TRUE(PageDirty(log.get(), config_.addresses.device));  // the used ring

  // The log is replaced while the queue runs (QEMU resizes it): the new one gets the writes.
  UniqueFd bigger = SealedLog(2 * kLogBytes);
  ASSERT_OK(SetLogBase(UniqueFd(dup(bigger.get())), 2 * kLogBytes));
  Serve(0x30000);
  EXPECT_TRUE(PageDirty(bigger.get(), 0x30000));
  EXPECT_FALSE(PageDirty(log.get(), 0x30000));

  // Migration ends (or fails): logging stops.
  ASSERT_OK(Send(Request(FrontendRequest::kSetFeatures, kFeatures)));
  Serve(0x40000);
  EXPECT_FALSE(PageDirty(bigger.get(), 0x40000));
  ASSERT_OK(Send(Request(FrontendRequest::kGetVringBase, VringState{0, 0})));
}

// What the stats socket reports: requests, bytes each way, kicks, interrupts sent and the ones
// the guest asked to go without, chains in flight; counted across a queue's restarts.
// Waits until the stats hold `expected` (the worker reads a kick's eventfd when it next polls,
// which may be after it already served the chain the kick announced).
std::string WaitForStats(const Backend& backend, const std::string& expected) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  std::string stats = backend.StatsJson();
  while (stats.find(expected) == std::string::npos && absl::Now() < deadline) {
    sched_yield();
    stats = backend.StatsJson();
  }
  return stats;
}

TEST_F(BackendDirtyLogTest, StatsCountWhatTheQueueDid) {
  Serve(0x10000);
  Serve(0x20000);
  const std::string expected =
      "\"queue\":0,\"starts\":1,\"requests\":2,\"bytes_in\":0,\"bytes_out\":12000,"
      "\"kicks\":2,\"notifications\":2,\"suppressed\":0,\"busy_poll_hits\":0,\"errors\":0,"
      "\"in_flight\":0}";
  std::string stats = WaitForStats(backend_, expected);
  EXPECT_NE(stats.find(expected), std::string::npos) << stats;

  // A chain with 100 readable bytes, the guest asking for no interrupt: it is done all the
  // same (the used ring says so), counted as suppressed, not notified.
  driver_->DisableInterrupts();
  ASSERT_OK(driver_->AddChain({{0x30000, 100}}, {{0x40000, 50}}).status());
  driver_->Publish();
  ASSERT_EQ(eventfd_write(kick_.get(), 1), 0);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (;;) {
    auto used = driver_->PollUsed();
    ASSERT_OK(used);
    if (used->has_value()) break;
    ASSERT_LT(absl::Now(), deadline) << "the chain never came back";
    sched_yield();
  }
  const std::string after =
      "\"requests\":3,\"bytes_in\":100,\"bytes_out\":12050,\"kicks\":3,"
      "\"notifications\":2,\"suppressed\":1,";
  stats = WaitForStats(backend_, after);
  EXPECT_NE(stats.find(after), std::string::npos) << stats;
  ASSERT_OK(Send(Request(FrontendRequest::kGetVringBase, VringState{0, 0})));  // stops the queue
  EXPECT_NE(stats.find("\"connections\":0,\"resets\":0,"), std::string::npos) << stats;
}

}  // namespace
}  // namespace vhost
