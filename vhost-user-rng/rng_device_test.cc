// The rng device model on a real ring in fake guest memory, with fake entropy and a fake clock.
#include "vhost-user-rng/rng_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <set>

#include "common/testing/driver_ring.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// A mkdtemp/mkstemp template in the test's own directory ($TEST_TMPDIR; /tmp outside Bazel).
std::string TempTemplate(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/" + name + "XXXXXX";
}

using ::vhost::testing::DriverRing;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::RingLayout;

// Counts bytes: 0, 1, 2, ... so tests can tell which bytes went where.
class CountingSource : public EntropySource {
 public:
  absl::StatusOr<size_t> Fill(const IovecList& buffers, size_t max_bytes) override {
    if (unavailable) return absl::UnavailableError("later");
    size_t written = 0;
    for (const iovec& b : buffers) {
      for (size_t i = 0; i < b.iov_len && written < max_bytes; ++i) {
        static_cast<uint8_t*>(b.iov_base)[i] = static_cast<uint8_t>(next_++);
        ++written;
      }
    }
    return written;
  }
  bool unavailable = false;

 private:
  uint32_t next_ = 0;
};

class RngDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sizes = testing::ComputeRingSizes(RingLayout::kSplit, 64);
    DriverRing::Config config;
    config.size = 64;
    config.addresses = testing::LayoutRings(*sizes, 0x1000);
    driver_ = *DriverRing::Create(&ram_, config);
    VringLayout layout{64, FakeGuestMemory::Uva(config.addresses.desc),
                       FakeGuestMemory::Uva(config.addresses.driver),
                       FakeGuestMemory::Uva(config.addresses.device), 0};
    queue_ = *Virtqueue::Create(0, layout, Bit(kFeatureVersion1), ram_.memory());
  }
  void MakeDevice(absl::optional<RateLimiter> limiter = absl::nullopt) {
    auto source = std::make_unique<CountingSource>();
    source_ = source.get();
    device_ =
        std::make_unique<RngDevice>(std::move(source), std::move(limiter), [this] { return now_; });
  }
  uint16_t Request(uint64_t gpa, uint32_t len) {
    auto id = driver_->AddChain({}, {{gpa, len}});
    EXPECT_OK(id);
    driver_->Publish();
    return *id;
  }
  std::vector<testing::UsedElement> Used() {
    std::vector<testing::UsedElement> out;
    for (;;) {
      auto used = driver_->PollUsed();
      EXPECT_OK(used);
      if (!used.ok() || !used->has_value()) return out;
      out.push_back(**used);
    }
  }

  FakeGuestMemory ram_{1 << 20};
  std::unique_ptr<DriverRing> driver_;
  std::unique_ptr<Virtqueue> queue_;
  std::unique_ptr<RngDevice> device_;
  CountingSource* source_ = nullptr;
  absl::Time now_ = absl::FromUnixSeconds(1000);
};

TEST_F(RngDeviceTest, DescribesAVirtioRng) {
  MakeDevice();
  const DeviceInfo info = device_->Info();
  EXPECT_EQ(info.virtio_id, 4u);
  EXPECT_EQ(info.num_queues, 1u);
  EXPECT_EQ(info.config_size, 0u);
  EXPECT_TRUE(info.features & Bit(kFeatureVersion1));
}

TEST_F(RngDeviceTest, FillsEveryConcurrentRequestCompletely) {
  MakeDevice();
  const uint16_t a = Request(0x40000, 64);
  const uint16_t b = Request(0x50000, 4096);
  const uint16_t c = Request(0x60000, 1);
  EXPECT_EQ(device_->ProcessQueue(*queue_), absl::InfiniteDuration());
  auto used = Used();
  ASSERT_EQ(used.size(), 3u);
  EXPECT_EQ(used[0].id, a);
  EXPECT_EQ(used[0].len, 64u);
  EXPECT_EQ(used[1].id, b);
  EXPECT_EQ(used[1].len, 4096u);
  EXPECT_EQ(used[2].id, c);
  EXPECT_EQ(used[2].len, 1u);
  EXPECT_EQ(ram_.Host(0x40000)[63], 63);  // written straight into guest memory
  EXPECT_EQ(ram_.Host(0x60000)[0], static_cast<uint8_t>(64 + 4096));
}

TEST_F(RngDeviceTest, RequestWithoutWritableBufferGetsNothing) {
  MakeDevice();
  auto id = driver_->AddChain({{0x40000, 16}}, {});
  ASSERT_OK(id);
  driver_->Publish();
  device_->ProcessQueue(*queue_);
  auto used = Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 0u);
}

TEST_F(RngDeviceTest, RateLimitDelaysButNeverDrops) {
  MakeDevice(RateLimiter(100, absl::Seconds(1)));
  Request(0x40000, 64);
  Request(0x50000, 64);
  Request(0x60000, 64);
  // 100 bytes this second: the first request whole, the second gets the remaining 36.
  absl::Duration wait = device_->ProcessQueue(*queue_);
  EXPECT_EQ(wait, absl::Seconds(1));
  auto used = Used();
  ASSERT_EQ(used.size(), 2u);
  EXPECT_EQ(used[0].len, 64u);
  EXPECT_EQ(used[1].len, 36u);
  // Nothing more until the period ends; the third request stays queued in the ring.
  now_ += absl::Milliseconds(500);
  EXPECT_EQ(device_->ProcessQueue(*queue_), absl::Milliseconds(500));
  EXPECT_TRUE(Used().empty());
  EXPECT_TRUE(queue_->HasAvailable());
  now_ += absl::Milliseconds(500);
  EXPECT_EQ(device_->ProcessQueue(*queue_), absl::InfiniteDuration());
  used = Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 64u);
}

TEST_F(RngDeviceTest, SlowSourceHoldsTheRequestAndHandsItBackOnStop) {
  MakeDevice();
  const uint32_t base = queue_->Base();
  Request(0x40000, 32);
  source_->unavailable = true;
  const absl::Duration wait = device_->ProcessQueue(*queue_);
  EXPECT_GT(wait, absl::ZeroDuration());
  EXPECT_LT(wait, absl::Seconds(1));
  EXPECT_TRUE(Used().empty());
  device_->QueueStopped(0, queue_.get());
  EXPECT_EQ(queue_->Base(), base);  // the request will be served after a restart
  source_->unavailable = false;
  device_->ProcessQueue(*queue_);
  auto used = Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 32u);
}

TEST(EntropySourceTest, GetrandomFillsScatteredBuffers) {
  auto source = MakeGetrandomSource();
  std::vector<uint8_t> a(4096, 0), b(4096, 0);
  IovecList buffers = {{a.data(), a.size()}, {b.data(), b.size()}};
  auto n = source->Fill(buffers, 6000);
  ASSERT_OK(n);
  EXPECT_EQ(*n, 6000u);
  std::set<uint8_t> seen(a.begin(), a.end());
  EXPECT_GT(seen.size(), 200u);  // 4 KiB of random bytes hits nearly every value
  EXPECT_TRUE(std::all_of(b.begin() + (6000 - 4096), b.end(), [](uint8_t v) { return v == 0; }));
}

TEST(EntropySourceTest, FileSourceReadsAndReportsExhaustion) {
  std::string path = TempTemplate("rng-source-");
  const int fd = mkstemp(path.data());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "0123456789", 10), 10);
  close(fd);
  auto source = MakeFileSource(path);
  ASSERT_OK(source);
  char out[16] = {};
  IovecList buffers = {{out, sizeof(out)}};
  EXPECT_EQ(*(*source)->Fill(buffers, 4), 4u);
  EXPECT_EQ(std::string(out, 4), "0123");
  EXPECT_EQ(*(*source)->Fill(buffers, 16), 6u);
  EXPECT_EQ(*(*source)->Fill(buffers, 16), 0u);  // exhausted
  unlink(path.c_str());
  EXPECT_THAT(MakeFileSource("/nonexistent/rng"),
              ::vhost::testing::StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(MakeFileSource("/tmp"),
              ::vhost::testing::StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost
