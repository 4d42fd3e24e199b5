// Inflight I/O tracking through a QueueContext: a context that "crashes" (is dropped with
// chains in flight) leaves a region from which a new context on the same ring takes those
// chains again, oldest first, while the ring never reports a chain twice.
#include "common/device/inflight.h"

#include <cstring>
#include <memory>
#include <vector>

#include "common/device/queue_context.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::Buffer;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UsedElement;

constexpr uint16_t kSize = 8;

class InflightTest : public ::testing::Test {
 protected:
  void SetUp() override {
    region_.assign(InflightQueueBytes(kSize), 0);
    InitInflightRegion(region_.data(), 1, kSize);
    first_ = *TestQueue::Create(&ram_, Options());
    ASSERT_OK(first_->context().TrackInflight(Tracker()));
  }

  static TestQueue::Options Options() {
    TestQueue::Options options;
    options.size = kSize;
    return options;
  }
  std::unique_ptr<InflightQueue> Tracker() {
    return std::make_unique<InflightQueue>(region_.data(), kSize);
  }
  InflightQueueHeader* header() { return reinterpret_cast<InflightQueueHeader*>(region_.data()); }
  InflightDescSplit* desc(uint16_t head) {
    return reinterpret_cast<InflightDescSplit*>(region_.data() + sizeof(InflightQueueHeader)) +
           head;
  }

  // A chain whose one readable byte is `tag`; returns its head.
  uint16_t AddRequest(uint8_t tag) {
    const uint64_t gpa = ram_.Allocate(1);
    *ram_.Host(gpa) = tag;
    return *first_->Add({{gpa, 1}}, {});
  }
  static uint8_t Tag(const DescriptorChain& chain) {
    return *static_cast<const uint8_t*>(chain.readable[0].iov_base);
  }

  // What a restarted back end builds on the same ring: the front end's base after a crash is
  // the used index it saw.
  std::unique_ptr<Virtqueue> RestartedQueue() {
    VringLayout layout = first_->layout();
    layout.base = first_->queue().UsedIndex();
    return *Virtqueue::Create(0, layout, Bit(kFeatureVersion1), ram_.memory());
  }

  FakeGuestMemory ram_;
  std::vector<uint8_t> region_;
  std::unique_ptr<TestQueue> first_;
};

TEST_F(InflightTest, RestartResubmitsChainsInFlightInOrderAndOnce) {
  AddRequest(1);
  AddRequest(2);
  AddRequest(3);
  QueueContext& ctx = first_->context();
  const ChainToken a = *ctx.Take();
  const ChainToken b = *ctx.Take();
  const ChainToken c = *ctx.Take();
  const uint16_t head_a = ctx.chain(a).head;
  const uint16_t head_c = ctx.chain(c).head;
  EXPECT_EQ(desc(head_a)->inflight, 1);
  ctx.Complete(b, 0);  // completed before the crash: not run again
  EXPECT_EQ(header()->used_idx, 1);
  EXPECT_EQ(desc(ctx.chain(b).head)->inflight, 0);
  const uint16_t head_d = AddRequest(4);  // made available, never taken

  // The daemon dies with a and c in flight; a new one starts on the same ring and region.
  std::unique_ptr<Virtqueue> queue = RestartedQueue();
  std::unique_ptr<QueueContext> restarted = *QueueContext::Create(queue.get(), nullptr);
  ASSERT_OK(restarted->TrackInflight(Tracker()));
  EXPECT_EQ(restarted->resubmit_pending(), 2u);
  std::vector<uint8_t> tags;
  std::vector<ChainToken> tokens;
  while (auto token = restarted->Take()) {
    tags.push_back(Tag(restarted->chain(*token)));
    tokens.push_back(*token);
  }
  // The oldest first, then the avail ring from where the previous daemon stopped taking.
  EXPECT_EQ(tags, (std::vector<uint8_t>{1, 3, 4}));
  EXPECT_FALSE(queue->broken());
  for (ChainToken token : tokens) restarted->Complete(token, 0);
  std::vector<uint16_t> used;
  for (const UsedElement& e : first_->Used()) used.push_back(e.id);
  EXPECT_EQ(used, (std::vector<uint16_t>{ctx.chain(b).head, head_a, head_c, head_d}));
  for (uint16_t head = 0; head < kSize; ++head) EXPECT_EQ(desc(head)->inflight, 0) << head;
}

TEST_F(InflightTest, CompletionCutOffAfterTheUsedRingIsNotRunAgain) {
  AddRequest(1);
  AddRequest(2);
  QueueContext& ctx = first_->context();
  const ChainToken a = *ctx.Take();
  ctx.Take();
  const uint16_t head_a = ctx.chain(a).head;
  ctx.Complete(a, 0);
  // Killed after publishing a's used entry, before clearing its record.
  desc(head_a)->inflight = 1;
  header()->used_idx = 0;

  std::unique_ptr<Virtqueue> queue = RestartedQueue();
  std::unique_ptr<QueueContext> restarted = *QueueContext::Create(queue.get(), nullptr);
  ASSERT_OK(restarted->TrackInflight(Tracker()));
  auto token = restarted->Take();
  ASSERT_TRUE(token.has_value());
  EXPECT_EQ(Tag(restarted->chain(*token)), 2);
  EXPECT_FALSE(restarted->Take().has_value());
  EXPECT_EQ(header()->used_idx, 1);
}

TEST_F(InflightTest, GivenBackChainsAreNotInFlight) {
  AddRequest(1);
  QueueContext& ctx = first_->context();
  const ChainToken a = *ctx.Take();
  const uint16_t head = ctx.chain(a).head;
  ctx.GiveBack(a);
  EXPECT_EQ(desc(head)->inflight, 0);

  // A resubmitted chain given back is offered again from the region, not the avail ring.
  const ChainToken again = *ctx.Take();
  EXPECT_EQ(desc(head)->inflight, 1);
  (void)again;
  std::unique_ptr<Virtqueue> queue = RestartedQueue();
  std::unique_ptr<QueueContext> restarted = *QueueContext::Create(queue.get(), nullptr);
  ASSERT_OK(restarted->TrackInflight(Tracker()));
  const ChainToken resubmitted = *restarted->Take();
  restarted->GiveBack(resubmitted);
  EXPECT_EQ(restarted->resubmit_pending(), 1u);
  EXPECT_EQ(desc(head)->inflight, 1);
  const ChainToken taken = *restarted->Take();
  EXPECT_EQ(Tag(restarted->chain(taken)), 1);
  EXPECT_FALSE(restarted->Take().has_value());
}

TEST_F(InflightTest, HostileRegionsAreRefused) {
  AddRequest(1);
  first_->context().Take();
  const std::vector<uint8_t> good = region_;
  auto refused = [&] {
    std::unique_ptr<Virtqueue> queue = RestartedQueue();
    std::unique_ptr<QueueContext> restarted = *QueueContext::Create(queue.get(), nullptr);
    return !restarted->TrackInflight(Tracker()).ok();
  };
  EXPECT_FALSE(refused());

  desc(5)->inflight = 7;  // not a flag
  EXPECT_TRUE(refused());
  region_ = good;
  header()->desc_num = kSize * 2;  // not the ring it was made for
  EXPECT_TRUE(refused());
  region_ = good;
  header()->version = 9;
  EXPECT_TRUE(refused());
  region_ = good;
  header()->used_idx = 5;  // a completion cut off, at a head beyond the ring
  header()->last_batch_head = kSize;
  EXPECT_TRUE(refused());
}

TEST_F(InflightTest, AHeadBeyondASmallerRingIsRefused) {
  // The region was made for 8 descriptors; the ring now has 4.
  desc(6)->inflight = 1;
  InflightQueue tracker(region_.data(), kSize);
  EXPECT_FALSE(tracker.Recover(4, 0).ok());
  desc(6)->inflight = 0;
  desc(2)->inflight = 1;
  desc(2)->counter = 9;
  desc(1)->inflight = 1;
  desc(1)->counter = 10;
  absl::StatusOr<std::vector<uint16_t>> heads = tracker.Recover(4, 0);
  ASSERT_OK(heads.status());
  EXPECT_EQ(*heads, (std::vector<uint16_t>{2, 1}));
}

}  // namespace
}  // namespace vhost
