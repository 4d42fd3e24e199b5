// The device side of split and packed rings, driven by the driver-side ring from common/testing
// over memfd-backed guest memory.
#include "common/virtio/virtqueue.h"

#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/testing/driver_ring.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/virtio/virtio_ring_defs.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::Buffer;
using ::vhost::testing::DriverRing;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::RawDescriptor;
using ::vhost::testing::RingLayout;

constexpr uint64_t kRingGpa = 0x1000;
constexpr uint64_t kBufferGpa = 0x40000;

struct Param {
  RingLayout layout;
  bool event_idx;
};

std::string Name(const ::testing::TestParamInfo<Param>& info) {
  return std::string(info.param.layout == RingLayout::kSplit ? "Split" : "Packed") +
         (info.param.event_idx ? "EventIdx" : "");
}

class VirtqueueTest : public ::testing::TestWithParam<Param> {
 protected:
  void Build(uint32_t size, uint16_t start_index = 0, bool indirect = true) {
    auto sizes = testing::ComputeRingSizes(GetParam().layout, size);
    ASSERT_OK(sizes);
    DriverRing::Config config;
    config.layout = GetParam().layout;
    config.size = size;
    config.addresses = testing::LayoutRings(*sizes, kRingGpa);
    config.event_idx = GetParam().event_idx;
    config.start_index = start_index;
    auto driver = DriverRing::Create(&ram_, config);
    ASSERT_OK(driver);
    driver_ = *std::move(driver);
    VringLayout layout{size, FakeGuestMemory::Uva(config.addresses.desc),
                       FakeGuestMemory::Uva(config.addresses.driver),
                       FakeGuestMemory::Uva(config.addresses.device), driver_->VringBase()};
    uint64_t features = Bit(kFeatureVersion1);
    if (indirect) features |= Bit(kFeatureIndirectDesc);
    if (packed()) features |= Bit(kFeatureRingPacked);
    if (GetParam().event_idx) features |= Bit(kFeatureEventIdx);
    auto queue = Virtqueue::Create(0, layout, features, ram_.memory());
    ASSERT_OK(queue);
    queue_ = *std::move(queue);
    queue_->set_call_fd(call_.get());
    queue_->set_err_fd(err_.get());
  }
  bool packed() const { return GetParam().layout == RingLayout::kPacked; }
  static bool Signalled(const UniqueFd& fd) {
    eventfd_t value = 0;
    return eventfd_read(fd.get(), &value) == 0 && value > 0;
  }
  void Write(uint64_t gpa, const std::string& data) {
    std::memcpy(ram_.Host(gpa, data.size()), data.data(), data.size());
  }
  std::string Read(uint64_t gpa, size_t len) {
    return std::string(reinterpret_cast<char*>(ram_.Host(gpa, len)), len);
  }
  // One request/response round trip; returns the used element the driver saw.
  testing::UsedElement RoundTrip(const std::string& request, const std::string& reply) {
    Write(kBufferGpa, request);
    auto id = driver_->AddChain({{kBufferGpa, static_cast<uint32_t>(request.size())}},
                                {{kBufferGpa + 0x1000, 64}});
    EXPECT_OK(id);
    driver_->Publish();
    DescriptorChain chain;
    EXPECT_TRUE(queue_->Pop(&chain));
    EXPECT_EQ(chain.head, *id);
    std::string got(chain.readable_bytes, '\0');
    CopyFromSegments(chain.readable, 0, got.data(), got.size());
    EXPECT_EQ(got, request);
    EXPECT_EQ(chain.writable_bytes, 64u);
    queue_->Push(chain, CopyToSegments(chain.writable, 0, reply.data(), reply.size()));
    queue_->NotifyGuestIfNeeded();
    auto used = driver_->PollUsed();
    EXPECT_OK(used);
    EXPECT_TRUE(used->has_value());
    EXPECT_EQ(Read(kBufferGpa + 0x1000, reply.size()), reply);
    return used->value_or(testing::UsedElement{});
  }
  void ExpectBroken() {
    DescriptorChain chain;
    EXPECT_FALSE(queue_->Pop(&chain));
    EXPECT_TRUE(queue_->broken());
    EXPECT_TRUE(Signalled(err_));
    EXPECT_FALSE(queue_->Pop(&chain));  // stays broken
  }

  FakeGuestMemory ram_{1 << 20};
  std::unique_ptr<DriverRing> driver_;
  std::unique_ptr<Virtqueue> queue_;
  UniqueFd call_{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  UniqueFd err_{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
};

TEST_P(VirtqueueTest, RequestAndReply) {
  Build(16);
  const testing::UsedElement used = RoundTrip("hello", "world!");
  EXPECT_EQ(used.len, 6u);
  EXPECT_TRUE(Signalled(call_));
  DescriptorChain chain;
  EXPECT_FALSE(queue_->Pop(&chain));  // empty now
  EXPECT_FALSE(queue_->broken());
}

TEST_P(VirtqueueTest, ManyLapsAroundTheRing) {
  Build(4, /*start_index=*/packed() ? 0 : 65530);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(RoundTrip("req" + std::to_string(i), "rep" + std::to_string(i)).len,
              3 + std::to_string(i).size());
  }
  EXPECT_FALSE(queue_->broken());
}

TEST_P(VirtqueueTest, IndirectChain) {
  Build(8);
  Write(kBufferGpa, "abc");
  Write(kBufferGpa + 0x100, "def");
  auto id = driver_->AddChain({{kBufferGpa, 3}, {kBufferGpa + 0x100, 3}},
                              {{kBufferGpa + 0x1000, 8}, {kBufferGpa + 0x2000, 8}},
                              /*indirect_table_gpa=*/0x30000);
  ASSERT_OK(id);
  driver_->Publish();
  DescriptorChain chain;
  ASSERT_TRUE(queue_->Pop(&chain));
  EXPECT_EQ(chain.head, *id);
  EXPECT_EQ(chain.readable.size(), 2u);
  EXPECT_EQ(chain.writable.size(), 2u);
  EXPECT_EQ(chain.writable_bytes, 16u);
  char data[6];
  ASSERT_EQ(CopyFromSegments(chain.readable, 0, data, 6), 6u);
  EXPECT_EQ(std::string(data, 6), "abcdef");
  queue_->Push(chain, 0);
  auto used = driver_->PollUsed();
  ASSERT_OK(used);
  ASSERT_TRUE(used->has_value());
  EXPECT_EQ((*used)->id, *id);
}

TEST_P(VirtqueueTest, IndirectNotNegotiatedBreaksTheQueue) {
  Build(8, 0, /*indirect=*/false);
  ASSERT_OK(driver_->AddChain({{kBufferGpa, 3}}, {}, 0x30000));
  driver_->Publish();
  ExpectBroken();
}

TEST_P(VirtqueueTest, BufferOutsideGuestMemoryBreaksTheQueue) {
  Build(8);
  ASSERT_OK(driver_->AddChain({{(1 << 20) - 4, 8}}, {}));  // runs off the end of RAM
  driver_->Publish();
  ExpectBroken();
}

TEST_P(VirtqueueTest, ReadableAfterWritableBreaksTheQueue) {
  Build(8);
  RawDescriptor table[2] = {{kBufferGpa, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1, 0},
                            {kBufferGpa + 8, 8, 0, 0, 0}};
  ASSERT_OK(driver_->WriteTable(0x30000, table));
  if (packed()) {
    RawDescriptor d{0x30000, sizeof(table), VRING_DESC_F_INDIRECT, 0, 7};
    driver_->AddRawPackedChain({&d, 1});
  } else {
    driver_->WriteDescriptor(0, {0x30000, sizeof(table), VRING_DESC_F_INDIRECT, 0, 0});
    driver_->PushAvailHead(0);
  }
  driver_->Publish();
  ExpectBroken();
}

TEST_P(VirtqueueTest, NestedIndirectTableBreaksTheQueue) {
  Build(8);
  RawDescriptor inner[1] = {{kBufferGpa, 8, 0, 0, 0}};
  ASSERT_OK(driver_->WriteTable(0x31000, inner));
  RawDescriptor outer[1] = {{0x31000, 16, VRING_DESC_F_INDIRECT, 0, 0}};
  ASSERT_OK(driver_->WriteTable(0x30000, outer));
  if (packed()) {
    RawDescriptor d{0x30000, 16, VRING_DESC_F_INDIRECT, 0, 3};
    driver_->AddRawPackedChain({&d, 1});
  } else {
    driver_->WriteDescriptor(0, {0x30000, 16, VRING_DESC_F_INDIRECT, 0, 0});
    driver_->PushAvailHead(0);
  }
  driver_->Publish();
  ExpectBroken();
}

TEST_P(VirtqueueTest, EmptyOrRaggedIndirectTableBreaksTheQueue) {
  for (uint32_t len : {0u, 20u}) {
    Build(8);
    if (packed()) {
      RawDescriptor d{0x30000, len, VRING_DESC_F_INDIRECT, 0, 3};
      driver_->AddRawPackedChain({&d, 1});
    } else {
      driver_->WriteDescriptor(0, {0x30000, len, VRING_DESC_F_INDIRECT, 0, 0});
      driver_->PushAvailHead(0);
    }
    driver_->Publish();
    ExpectBroken();
  }
}

TEST_P(VirtqueueTest, UnpopHandsTheChainBackAndBaseFollows) {
  Build(8);
  ASSERT_OK(driver_->AddChain({{kBufferGpa, 4}}, {{kBufferGpa + 0x100, 4}}));
  driver_->Publish();
  const uint32_t base = queue_->Base();
  DescriptorChain first, again;
  ASSERT_TRUE(queue_->Pop(&first));
  EXPECT_NE(queue_->Base(), base);
  queue_->Unpop(first);
  EXPECT_EQ(queue_->Base(), base);
  ASSERT_TRUE(queue_->Pop(&again));
  EXPECT_EQ(again.head, first.head);
}

TEST_P(VirtqueueTest, EnableNotificationsReportsLateArrivals) {
  Build(8);
  EXPECT_FALSE(queue_->EnableNotifications());
  ASSERT_OK(driver_->AddChain({{kBufferGpa, 4}}, {}));
  EXPECT_TRUE(driver_->Publish());  // the device asked for kicks
  EXPECT_TRUE(queue_->HasAvailable());
  EXPECT_TRUE(queue_->EnableNotifications());
}

TEST_P(VirtqueueTest, GuestCanSuppressNotifications) {
  Build(8);
  RoundTrip("a", "b");
  Signalled(call_);  // the first notification after a start is always sent
  driver_->DisableInterrupts();
  RoundTrip("c", "d");
  EXPECT_FALSE(Signalled(call_));
  driver_->EnableInterrupts();
  RoundTrip("e", "f");
  EXPECT_TRUE(Signalled(call_));
}

TEST_P(VirtqueueTest, BuffersMayStraddleAdjacentRegions) {
  ram_ = FakeGuestMemory({{0, 0x50000}, {0x50000, 0x50000}});
  Build(8);
  ASSERT_OK(driver_->AddChain({}, {{0x4ff00, 0x200}}));
  driver_->Publish();
  DescriptorChain chain;
  ASSERT_TRUE(queue_->Pop(&chain));
  EXPECT_EQ(chain.writable.size(), 2u);
  EXPECT_EQ(chain.writable_bytes, 0x200u);
}

// A memory table change that leaves part of the ring outside the new table: the queue keeps all
// three ring pointers of the old table (nothing half re-pointed) and the caller can mark it broken.
TEST_P(VirtqueueTest, FailedRemapLeavesTheRingsAsTheyWere) {
  Build(16);
  // Covers the descriptor area at kRingGpa but not the rest of the ring.
  FakeGuestMemory too_small({{0, kRingGpa + 16 * 16}});
  EXPECT_FALSE(queue_->UpdateMemory(too_small.memory()).ok());
  EXPECT_FALSE(queue_->broken());
  // Still served from the old table, as one piece.
  EXPECT_EQ(RoundTrip("still", "here").len, 4u);
}

// Once broken, a queue touches no ring memory: no pop, no push, no notification (which would
// read the guest's event index or flags through pointers that may be stale).
TEST_P(VirtqueueTest, BrokenQueueTouchesNoRing) {
  Build(16);
  ASSERT_OK(driver_->AddChain({}, {{kBufferGpa, 8}}).status());
  ASSERT_OK(driver_->AddChain({}, {{kBufferGpa + 8, 8}}).status());
  driver_->Publish();
  DescriptorChain chain;
  ASSERT_TRUE(queue_->Pop(&chain));
  queue_->Push(chain, 8);  // pushed, not yet notified
  queue_->MarkBroken(absl::InternalError("test"));
  EXPECT_TRUE(Signalled(err_));
  queue_->NotifyGuestIfNeeded();
  EXPECT_FALSE(Signalled(call_));
  EXPECT_FALSE(queue_->HasAvailable());
  EXPECT_FALSE(queue_->EnableNotifications());
  EXPECT_FALSE(queue_->Pop(&chain));
}

INSTANTIATE_TEST_SUITE_P(Layouts, VirtqueueTest,
                         ::testing::Values(Param{RingLayout::kSplit, false},
                                           Param{RingLayout::kSplit, true},
                                           Param{RingLayout::kPacked, false},
                                           Param{RingLayout::kPacked, true}),
                         Name);

// Split-only hostile rings: the descriptor table is indexed by the guest.
class SplitRingTest : public VirtqueueTest {};

TEST_P(SplitRingTest, DescriptorLoopBreaksTheQueue) {
  Build(8);
  driver_->WriteDescriptor(0, {kBufferGpa, 8, VRING_DESC_F_NEXT, 1, 0});
  driver_->WriteDescriptor(1, {kBufferGpa, 8, VRING_DESC_F_NEXT, 0, 0});
  driver_->PushAvailHead(0);
  driver_->Publish();
  ExpectBroken();
}

TEST_P(SplitRingTest, NextIndexOutOfRangeBreaksTheQueue) {
  Build(8);
  driver_->WriteDescriptor(0, {kBufferGpa, 8, VRING_DESC_F_NEXT, 8, 0});
  driver_->PushAvailHead(0);
  driver_->Publish();
  ExpectBroken();
}

TEST_P(SplitRingTest, HeadOutOfRangeBreaksTheQueue) {
  Build(8);
  driver_->PushAvailHead(200);
  driver_->Publish();
  ExpectBroken();
}

TEST_P(SplitRingTest, AvailIndexJumpBeyondSizeBreaksTheQueue) {
  Build(8);
  driver_->SetAvailIdx(9);
  ExpectBroken();
}

TEST_P(SplitRingTest, IndirectTableLoopBreaksTheQueue) {
  Build(8);
  RawDescriptor table[2] = {{kBufferGpa, 8, VRING_DESC_F_NEXT, 1, 0},
                            {kBufferGpa, 8, VRING_DESC_F_NEXT, 0, 0}};
  ASSERT_OK(driver_->WriteTable(0x30000, table));
  driver_->WriteDescriptor(0, {0x30000, sizeof(table), VRING_DESC_F_INDIRECT, 0, 0});
  driver_->PushAvailHead(0);
  driver_->Publish();
  ExpectBroken();
}

INSTANTIATE_TEST_SUITE_P(Split, SplitRingTest,
                         ::testing::Values(Param{RingLayout::kSplit, false},
                                           Param{RingLayout::kSplit, true}),
                         Name);

class PackedRingTest : public VirtqueueTest {};

TEST_P(PackedRingTest, ChainLongerThanTheRingBreaksTheQueue) {
  Build(4);
  RawDescriptor d[4];
  for (auto& one : d) one = {kBufferGpa, 8, VRING_DESC_F_NEXT, 0, 1};
  driver_->AddRawPackedChain(d);
  driver_->Publish();
  ExpectBroken();
}

INSTANTIATE_TEST_SUITE_P(Packed, PackedRingTest,
                         ::testing::Values(Param{RingLayout::kPacked, false},
                                           Param{RingLayout::kPacked, true}),
                         Name);

TEST(VirtqueueCreateTest, RejectsBadLayouts) {
  FakeGuestMemory ram(1 << 20);
  const uint64_t base = FakeGuestMemory::Uva(0x1000);
  // Each bad layout is InvalidArgument, with a message naming what is wrong.
  auto expect_rejected = [&](VringLayout layout, uint64_t features, const std::string& why) {
    const absl::Status status = Virtqueue::Create(0, layout, features, ram.memory()).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_NE(status.message().find(why), absl::string_view::npos) << status << " lacks " << why;
  };
  expect_rejected({100, base, base + 0x1000, base + 0x2000, 0}, 0,
                  "split queue size 100 is not a power of two in 1..32768");
  expect_rejected({65536, base, base + 0x1000, base + 0x2000, 0}, 0,
                  "split queue size 65536 is not a power of two");
  expect_rejected({0, base, base + 0x1000, base + 0x2000, 0}, 0, "split queue size 0 is not");
  expect_rejected({8, base + 8, base + 0x1000, base + 0x2000, 0}, 0,
                  "misaligned split ring address");
  expect_rejected({8, base, base + (1 << 20), base + 0x2000, 0}, 0, "lies outside guest memory");
  const uint64_t packed = Bit(kFeatureRingPacked);
  expect_rejected({0, base, base + 0x1000, base + 0x2000, 0}, packed,
                  "packed queue size 0 not in 1..32768");
  expect_rejected({8, base, base + 0x1000, base + 0x2000, 9}, packed,
                  "packed ring base 0x9 beyond queue size 8");
  expect_rejected({8, base + 8, base + 0x1000, base + 0x2000, 0}, packed,
                  "misaligned packed ring address");
  expect_rejected({8, base + (1 << 20), base + 0x1000, base + 0x2000, 0}, packed,
                  "packed ring (desc 0x");
  EXPECT_OK(Virtqueue::Create(0, {8, base, base + 0x1000, base + 0x2000, 0}, 0, ram.memory()));
  EXPECT_OK(Virtqueue::Create(0, {8, base, base + 0x1000, base + 0x2000, 0}, packed, ram.memory()));
}

TEST(VirtqueueCreateTest, RejectsRingsThatLandMisalignedInHostMemory) {
  // The front end picks mmap_offset: an aligned address can land on an odd host address.
  UniqueFd fd(memfd_create("ram", MFD_CLOEXEC));
  ASSERT_EQ(ftruncate(fd.get(), 0x20000), 0);
  auto region = MapGuestRegion({0, 0x10000, 0x100000, 1}, fd.get());
  ASSERT_OK(region);
  auto memory = GuestMemory::Create({*region});
  ASSERT_OK(memory);
  for (uint64_t packed : {uint64_t{0}, Bit(kFeatureRingPacked)}) {
    EXPECT_FALSE(Virtqueue::Create(0, {8, 0x100000, 0x101000, 0x102000, 0}, packed, *memory).ok());
  }
}

}  // namespace
}  // namespace vhost
