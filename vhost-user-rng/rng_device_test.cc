// The rng device model on a real ring in fake guest memory, with fake entropy and a fake clock.
#include "vhost-user-rng/rng_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <set>

#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// A mkdtemp/mkstemp template in the test's own directory ($TEST_TMPDIR; /tmp outside Bazel).
std::string TempTemplate(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/" + name + "XXXXXX";
}

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;

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
    auto queue = TestQueue::Create(&ram_);
    ASSERT_OK(queue);
    queue_ = *std::move(queue);
  }
  void MakeDevice(absl::optional<RateLimiter> limiter = absl::nullopt) {
    auto source = std::make_unique<CountingSource>();
    source_ = source.get();
    device_ =
        std::make_unique<RngDevice>(std::move(source), std::move(limiter), [this] { return now_; });
    ASSERT_OK(queue_->Start(*device_));
  }
  // A request for `len` bytes at `*gpa` (allocated here).
  uint16_t Request(uint32_t len, uint64_t* gpa = nullptr) {
    const uint64_t buffer = ram_.Allocate(len);
    if (gpa != nullptr) *gpa = buffer;
    auto id = queue_->Add({}, {{buffer, len}});
    EXPECT_OK(id);
    return id.ok() ? *id : 0;
  }
  QueueResult Run() { return queue_->Run(*device_); }
  std::vector<testing::UsedElement> Used() { return queue_->Used(); }

  FakeGuestMemory ram_{1 << 20};
  std::unique_ptr<TestQueue> queue_;
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
  uint64_t a_gpa = 0, c_gpa = 0;
  const uint16_t a = Request(64, &a_gpa);
  const uint16_t b = Request(4096);
  const uint16_t c = Request(1, &c_gpa);
  EXPECT_EQ(Run().kind(), QueueResult::Kind::kDrained);
  auto used = Used();
  ASSERT_EQ(used.size(), 3u);
  EXPECT_EQ(used[0].id, a);
  EXPECT_EQ(used[0].len, 64u);
  EXPECT_EQ(used[1].id, b);
  EXPECT_EQ(used[1].len, 4096u);
  EXPECT_EQ(used[2].id, c);
  EXPECT_EQ(used[2].len, 1u);
  EXPECT_EQ(ram_.Host(a_gpa)[63], 63);  // written straight into guest memory
  EXPECT_EQ(ram_.Host(c_gpa)[0], static_cast<uint8_t>(64 + 4096));
}

TEST_F(RngDeviceTest, RequestWithoutWritableBufferGetsNothing) {
  MakeDevice();
  ASSERT_OK(queue_->Add({{ram_.Allocate(16), 16}}, {}));
  Run();
  auto used = Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 0u);
}

TEST_F(RngDeviceTest, RateLimitDelaysButNeverDrops) {
  MakeDevice(RateLimiter(100, absl::Seconds(1)));
  Request(64);
  Request(64);
  Request(64);
  // 100 bytes this second: the first request whole, the second gets the remaining 36.
  QueueResult result = Run();
  EXPECT_EQ(result.kind(), QueueResult::Kind::kRetryAfter);
  EXPECT_EQ(result.delay(), absl::Seconds(1));
  auto used = Used();
  ASSERT_EQ(used.size(), 2u);
  EXPECT_EQ(used[0].len, 64u);
  EXPECT_EQ(used[1].len, 36u);
  // Nothing more until the period ends; the third request stays queued in the ring, not held
  // by the device.
  now_ += absl::Milliseconds(500);
  result = Run();
  EXPECT_EQ(result.kind(), QueueResult::Kind::kRetryAfter);
  EXPECT_EQ(result.delay(), absl::Milliseconds(500));
  EXPECT_TRUE(Used().empty());
  EXPECT_TRUE(queue_->queue().HasAvailable());
  EXPECT_EQ(queue_->context().in_flight(), 0u);
  now_ += absl::Milliseconds(500);
  EXPECT_EQ(Run().kind(), QueueResult::Kind::kDrained);
  used = Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 64u);
}

TEST_F(RngDeviceTest, RateLimitedRequestIsInTheRingAtAStop) {
  MakeDevice(RateLimiter(10, absl::Seconds(1)));
  const uint32_t base = queue_->queue().Base();
  Request(10);
  const uint16_t held = Request(8);
  EXPECT_EQ(Run().kind(), QueueResult::Kind::kRetryAfter);
  ASSERT_EQ(Used().size(), 1u);
  queue_->Stop(*device_);
  // One request answered, the other one offered again after a restart.
  EXPECT_EQ(queue_->queue().Base(), base + 1);
  EXPECT_EQ(queue_->context().in_flight(), 0u);
  ASSERT_OK(queue_->Start(*device_));
  now_ += absl::Seconds(1);
  EXPECT_EQ(Run().kind(), QueueResult::Kind::kDrained);
  auto used = Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].id, held);
  EXPECT_EQ(used[0].len, 8u);
}

TEST_F(RngDeviceTest, SlowSourceLeavesTheRequestInTheRingAcrossAStop) {
  MakeDevice();
  const uint32_t base = queue_->queue().Base();
  Request(32);
  source_->unavailable = true;
  const QueueResult result = Run();
  EXPECT_EQ(result.kind(), QueueResult::Kind::kRetryAfter);
  EXPECT_GT(result.delay(), absl::ZeroDuration());
  EXPECT_LT(result.delay(), absl::Seconds(1));
  EXPECT_TRUE(Used().empty());
  EXPECT_EQ(queue_->context().in_flight(), 0u);  // nothing held between calls
  queue_->Stop(*device_);
  EXPECT_EQ(queue_->queue().Base(), base);  // the request will be served after a restart
  ASSERT_OK(queue_->Start(*device_));
  source_->unavailable = false;
  Run();
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
