// The dirty-page log: mapping a front end's log (hostile sizes and offsets refused) and the pages
// split and packed rings mark when they push: the bytes written into a chain (across regions)
// and the ring memory, nothing when logging is off.
#include "common/virtio/dirty_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "common/base/unique_fd.h"
#include "common/testing/driver_ring.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/virtio/virtqueue.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::DriverRing;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::RingLayout;

constexpr uint64_t kLogBytes = 4096;  // covers 128 MiB of guest-physical space

// A log file as QEMU makes one: a memfd sealed against shrinking.
UniqueFd LogFile(uint64_t size, bool seal = true) {
  UniqueFd fd(memfd_create("test-log", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  EXPECT_TRUE(fd.valid());
  EXPECT_EQ(ftruncate(fd.get(), size), 0);
  if (seal) {
    EXPECT_EQ(fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
  }
  return fd;
}

// The pages whose bits are set in `size` bytes at `offset` of the file.
std::set<uint64_t> DirtyPages(int fd, uint64_t size, uint64_t offset = 0) {
  std::vector<uint8_t> bits(size);
  EXPECT_EQ(pread(fd, bits.data(), size, offset), static_cast<ssize_t>(size));
  std::set<uint64_t> pages;
  for (uint64_t i = 0; i < size * 8; ++i) {
    if (bits[i / 8] & (1u << (i % 8))) pages.insert(i);
  }
  return pages;
}

TEST(DirtyLogTest, BytesForCoversEveryPage) {
  EXPECT_EQ(DirtyLog::BytesFor(0), 0u);
  EXPECT_EQ(DirtyLog::BytesFor(1), 1u);
  EXPECT_EQ(DirtyLog::BytesFor(8 * 4096), 1u);
  EXPECT_EQ(DirtyLog::BytesFor(8 * 4096 + 1), 2u);
  EXPECT_EQ(DirtyLog::BytesFor(uint64_t{1} << 32), (uint64_t{1} << 32) / 4096 / 8);
}

TEST(DirtyLogTest, MarksPagesAtTheOffset) {
  UniqueFd fd = LogFile(100 + 16);
  auto log = DirtyLog::Map(fd.get(), 16, /*offset=*/100, /*min_size=*/16);
  ASSERT_OK(log);
  (*log)->Mark(0x3000, 0x5000);  // pages 3..7
  (*log)->Mark(0x9fff, 2);       // pages 9 and 10
  (*log)->Mark(0x20000, 0);      // nothing
  EXPECT_EQ(DirtyPages(fd.get(), 16, 100), (std::set<uint64_t>{3, 4, 5, 6, 7, 9, 10}));
  EXPECT_EQ(DirtyPages(fd.get(), 100), std::set<uint64_t>{});  // before the offset: untouched
}

TEST(DirtyLogTest, PagesBeyondTheLogAreNotMarked) {
  UniqueFd fd = LogFile(2);
  auto log = DirtyLog::Map(fd.get(), 2, 0, 0);
  ASSERT_OK(log);
  (*log)->Mark(14 * 4096, 10 * 4096);  // pages 14..23: the log ends after page 15
  (*log)->Mark(~uint64_t{0} - 10, 100);
  (*log)->Mark(1 << 30, ~uint64_t{0});
  EXPECT_EQ(DirtyPages(fd.get(), 2), (std::set<uint64_t>{14, 15}));
}

TEST(DirtyLogTest, RefusesHostileLogs) {
  UniqueFd sealed = LogFile(kLogBytes);
  UniqueFd unsealed = LogFile(kLogBytes, /*seal=*/false);
  EXPECT_FALSE(DirtyLog::Map(unsealed.get(), kLogBytes, 0, 0).ok());    // could shrink under us
  EXPECT_FALSE(DirtyLog::Map(sealed.get(), kLogBytes + 1, 0, 0).ok());  // beyond the file
  EXPECT_FALSE(DirtyLog::Map(sealed.get(), kLogBytes, 1, 0).ok());
  EXPECT_FALSE(DirtyLog::Map(sealed.get(), 16, ~uint64_t{0} - 8, 0).ok());  // wraps around
  EXPECT_FALSE(DirtyLog::Map(sealed.get(), 0, 0, 0).ok());
  EXPECT_FALSE(DirtyLog::Map(sealed.get(), 64, 0, /*min_size=*/65).ok());  // smaller than memory
  EXPECT_FALSE(DirtyLog::Map(-1, 64, 0, 0).ok());
  EXPECT_OK(DirtyLog::Map(sealed.get(), kLogBytes, 0, kLogBytes).status());
}

// Three regions; the first two adjacent in guest-physical space, so a buffer can span them.
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kRingGpa = 0x1000;
constexpr uint64_t kSpanningGpa = kMiB - 0x1800;  // pages 0xfe..0x101, regions 0 and 1
constexpr uint64_t kFarGpa = 4 * kMiB + 0x2000;   // pages 0x402.., region 2
// Where the split ring's used writes are logged (log_guest_addr): the spec lets it be any
// address the log covers.
constexpr uint64_t kUsedLogGpa = 0x800000;

class RingLogTest : public ::testing::TestWithParam<RingLayout> {
 protected:
  void SetUp() override {
    auto sizes = testing::ComputeRingSizes(GetParam(), 16);
    ASSERT_OK(sizes);
    DriverRing::Config config;
    config.layout = GetParam();
    config.size = 16;
    config.addresses = testing::LayoutRings(*sizes, kRingGpa);
    auto driver = DriverRing::Create(&ram_, config);
    ASSERT_OK(driver);
    driver_ = *std::move(driver);
    VringLayout layout{16, FakeGuestMemory::Uva(config.addresses.desc),
                       FakeGuestMemory::Uva(config.addresses.driver),
                       FakeGuestMemory::Uva(config.addresses.device), driver_->VringBase()};
    uint64_t features = Bit(kFeatureVersion1);
    if (packed()) features |= Bit(kFeatureRingPacked);
    auto queue = Virtqueue::Create(0, layout, features, ram_.memory());
    ASSERT_OK(queue);
    queue_ = *std::move(queue);
    auto log = DirtyLog::Map(log_fd_.get(), kLogBytes, 0, 0);
    ASSERT_OK(log);
    log_ = *std::move(log);
  }
  bool packed() const { return GetParam() == RingLayout::kPacked; }

  // A chain with a readable header, then writable buffers spanning regions 0 and 1 and in
  // region 2, completed with `written` bytes.
  void PushChain(uint32_t written) {
    ASSERT_OK(driver_->AddChain({{0x10000, 16}}, {{kSpanningGpa, 0x3000}, {kFarGpa, 0x2000}}));
    driver_->Publish();
    DescriptorChain chain;
    ASSERT_TRUE(queue_->Pop(&chain));
    ASSERT_EQ(chain.writable.size(), 3u);  // the spanning buffer is two segments
    queue_->Push(chain, written);
    auto used = driver_->PollUsed();
    ASSERT_OK(used);
    ASSERT_TRUE(used->has_value());
  }
  std::set<uint64_t> Dirty() { return DirtyPages(log_fd_.get(), kLogBytes); }
  // The page a ring write lands on: the split used ring at kUsedLogGpa, the packed descriptor
  // ring where it is.
  uint64_t RingPage() const { return (packed() ? kRingGpa : kUsedLogGpa) / 4096; }

  FakeGuestMemory ram_{{{0, kMiB}, {kMiB, kMiB}, {4 * kMiB, kMiB}}};
  std::unique_ptr<DriverRing> driver_;
  std::unique_ptr<Virtqueue> queue_;
  UniqueFd log_fd_ = LogFile(kLogBytes);
  std::unique_ptr<DirtyLog> log_;
};

TEST_P(RingLogTest, LogsWrittenBytesAcrossRegionsAndTheUsedRing) {
  queue_->SetDirtyLog(log_.get(), /*log_rings=*/true, kUsedLogGpa);
  // All of the spanning buffer and 0x800 bytes of the far one: its second page stays clean.
  PushChain(0x3000 + 0x800);
  EXPECT_EQ(Dirty(), (std::set<uint64_t>{0xfe, 0xff, 0x100, 0x101, 0x402, RingPage()}));
}

TEST_P(RingLogTest, LogsOnlyTheBytesWritten) {
  queue_->SetDirtyLog(log_.get(), /*log_rings=*/true, kUsedLogGpa);
  PushChain(0x700);  // within the first page of the spanning buffer (0xfe800..0xfef00)
  EXPECT_EQ(Dirty(), (std::set<uint64_t>{0xfe, RingPage()}));
}

TEST_P(RingLogTest, RingsAreLoggedOnlyWithTheRingFlag) {
  queue_->SetDirtyLog(log_.get(), /*log_rings=*/false, kUsedLogGpa);
  PushChain(0x3000 + 0x2000);
  EXPECT_EQ(Dirty(), (std::set<uint64_t>{0xfe, 0xff, 0x100, 0x101, 0x402, 0x403}));
}

TEST_P(RingLogTest, NothingIsLoggedWhenOff) {
  PushChain(0x3000);
  queue_->SetDirtyLog(log_.get(), true, kUsedLogGpa);
  queue_->SetDirtyLog(nullptr, true, kUsedLogGpa);  // dropped again
  PushChain(0x3000);
  EXPECT_EQ(Dirty(), std::set<uint64_t>{});
}

INSTANTIATE_TEST_SUITE_P(Layouts, RingLogTest,
                         ::testing::Values(RingLayout::kSplit, RingLayout::kPacked),
                         [](const ::testing::TestParamInfo<RingLayout>& info) {
                           return info.param == RingLayout::kSplit ? "Split" : "Packed";
                         });

}  // namespace
}  // namespace vhost
