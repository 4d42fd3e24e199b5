// Inflight I/O tracking of packed rings through a QueueContext: a context that "crashes" (is
// dropped with chains in flight) leaves a region from which a new context on the same ring, told
// a stale ring position by the front end, takes those chains again from the descriptors the
// region saved (the ring's may be overwritten by used elements by then), oldest first, and then
// continues from the position the region recorded.
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#include "common/device/inflight.h"
#include "common/device/queue_context.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::RingLayout;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UsedElement;

constexpr uint16_t kSize = 8;
constexpr uint64_t kFeatures =
    Bit(kFeatureVersion1) | Bit(kFeatureRingPacked) | Bit(kFeatureIndirectDesc);

class InflightPackedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    region_.assign(InflightQueueBytes(kSize), 0);
    InitInflightRegion(region_.data(), 1, kSize);
    TestQueue::Options options;
    options.size = kSize;
    options.layout = RingLayout::kPacked;
    options.features = kFeatures;
    first_ = *TestQueue::Create(&ram_, options);
    stale_base_ = first_->layout().base;
    ASSERT_OK(first_->context().TrackInflight(Tracker()));
    EXPECT_EQ(header()->packed_state, kInflightPackedState);
  }

  std::unique_ptr<InflightQueuePacked> Tracker() {
    return std::make_unique<InflightQueuePacked>(region_.data(), kSize);
  }
  InflightQueueHeaderPacked* header() {
    return reinterpret_cast<InflightQueueHeaderPacked*>(region_.data());
  }
  InflightDescPacked* desc(uint16_t record) {
    return reinterpret_cast<InflightDescPacked*>(region_.data() +
                                                 sizeof(InflightQueueHeaderPacked)) +
           record;
  }
  int RecordsInFlight() {
    int n = 0;
    for (uint16_t r = 0; r < kSize; ++r) n += desc(r)->inflight != 0;
    return n;
  }

  uint16_t OldestInFlight() {
    uint16_t oldest = kSize;
    for (uint16_t r = 0; r < kSize; ++r) {
      if (desc(r)->inflight && (oldest == kSize || desc(r)->counter < desc(oldest)->counter)) {
        oldest = r;
      }
    }
    return oldest;
  }

  // A chain whose one readable byte is `tag`, with one writable byte: two ring descriptors.
  uint16_t AddRequest(uint8_t tag) {
    const uint64_t gpa = ram_.Allocate(2);
    *ram_.Host(gpa) = tag;
    return *first_->Add({{gpa, 1}}, {{gpa + 1, 1}});
  }
  static uint8_t Tag(const DescriptorChain& chain) {
    return *static_cast<const uint8_t*>(chain.readable[0].iov_base);
  }

  // What a restarted back end builds on the same ring. After a crash the front end cannot know
  // a packed ring's position: it sends what it had at the start.
  struct Restarted {
    std::unique_ptr<Virtqueue> queue;
    std::unique_ptr<QueueContext> context;
  };
  Restarted Restart() {
    VringLayout layout = first_->layout();
    layout.base = stale_base_;
    Restarted r;
    r.queue = *Virtqueue::Create(0, layout, kFeatures, ram_.memory());
    r.context = *QueueContext::Create(r.queue.get(), nullptr);
    return r;
  }
  // Takes everything, returns the tags in order and completes them.
  static std::vector<uint8_t> TakeAll(QueueContext& ctx) {
    std::vector<uint8_t> tags;
    std::vector<ChainToken> tokens;
    while (auto token = ctx.Take()) {
      tags.push_back(Tag(ctx.chain(*token)));
      tokens.push_back(*token);
    }
    for (ChainToken token : tokens) ctx.Complete(token, 1);
    return tags;
  }
  std::vector<uint16_t> UsedIds() {
    std::vector<uint16_t> ids;
    for (const UsedElement& e : first_->Used()) ids.push_back(e.id);
    return ids;
  }

  FakeGuestMemory ram_;
  std::vector<uint8_t> region_;
  std::unique_ptr<TestQueue> first_;
  uint32_t stale_base_ = 0;
};

TEST_F(InflightPackedTest, RestartResubmitsChainsInFlightInOrderAndOnce) {
  const uint16_t id_a = AddRequest(1);
  const uint16_t id_b = AddRequest(2);
  const uint16_t id_c = AddRequest(3);
  QueueContext& ctx = first_->context();
  const ChainToken a = *ctx.Take();
  const ChainToken b = *ctx.Take();
  *ctx.Take();
  EXPECT_EQ(RecordsInFlight(), 3);
  // b completes first: its used element goes into slot 0, over a's first ring descriptor.
  ctx.Complete(b, 1);
  EXPECT_EQ(header()->used_idx, 2);
  EXPECT_EQ(header()->old_used_idx, 2);
  EXPECT_EQ(RecordsInFlight(), 2);
  const uint16_t id_d = AddRequest(4);  // made available, never taken
  (void)a;

  // The daemon dies with a and c in flight; a new one starts on the same ring and region.
  Restarted r = Restart();
  ASSERT_OK(r.context->TrackInflight(Tracker()));
  EXPECT_EQ(r.context->resubmit_pending(), 2u);
  // The region's position, not the front end's: used at slot 2, avail past c.
  EXPECT_EQ(r.queue->Base(), 6u | 1u << 15 | (2u | 1u << 15) << 16);
  // The oldest first, then the ring from where the previous daemon stopped taking.
  EXPECT_EQ(TakeAll(*r.context), (std::vector<uint8_t>{1, 3, 4}));
  EXPECT_FALSE(r.queue->broken());
  EXPECT_EQ(UsedIds(), (std::vector<uint16_t>{id_b, id_a, id_c, id_d}));
  EXPECT_EQ(RecordsInFlight(), 0);
  // Every record is free again and the position is recorded: one more restart resubmits
  // nothing and continues where this one stopped.
  EXPECT_EQ(header()->used_idx, 0);
  EXPECT_EQ(header()->used_wrap_counter, 0);
  Restarted again = Restart();
  ASSERT_OK(again.context->TrackInflight(Tracker()));
  EXPECT_EQ(again.context->resubmit_pending(), 0u);
  EXPECT_EQ(again.queue->Base(), r.queue->Base());
}

TEST_F(InflightPackedTest, ResubmittedIndirectChainsReadTheirTableAgain) {
  const uint64_t data = ram_.Allocate(2);
  *ram_.Host(data) = 9;
  const uint64_t table = ram_.Allocate(32);
  const uint16_t id = *first_->driver().AddChain({{data, 1}}, {{data + 1, 1}}, table);
  first_->driver().Publish();
  ASSERT_TRUE(first_->context().Take().has_value());
  EXPECT_EQ(desc(0)->num, 1);  // one ring descriptor: the INDIRECT one
  EXPECT_EQ(desc(0)->addr, table);

  Restarted r = Restart();
  ASSERT_OK(r.context->TrackInflight(Tracker()));
  EXPECT_EQ(TakeAll(*r.context), (std::vector<uint8_t>{9}));
  EXPECT_EQ(UsedIds(), (std::vector<uint16_t>{id}));
}

// Killed between writing a completion's used element and recording it: done, not run again.
TEST_F(InflightPackedTest, CompletionCutOffAfterTheUsedElementIsNotRunAgain) {
  const uint16_t id_a = AddRequest(1);
  const uint16_t id_b = AddRequest(2);
  QueueContext& ctx = first_->context();
  const ChainToken a = *ctx.Take();
  ctx.Take();
  const InflightQueueHeaderPacked before = *header();
  const uint16_t record_a = OldestInFlight();
  ASSERT_EQ(record_a, 0);
  ctx.Complete(a, 1);
  // Cut off before Completed: the head still marked, the old state not yet moved on.
  desc(record_a)->inflight = 1;
  header()->old_free_head = before.old_free_head;
  header()->old_used_idx = before.old_used_idx;
  header()->old_used_wrap_counter = before.old_used_wrap_counter;

  Restarted r = Restart();
  ASSERT_OK(r.context->TrackInflight(Tracker()));
  EXPECT_EQ(TakeAll(*r.context), (std::vector<uint8_t>{2}));
  EXPECT_EQ(UsedIds(), (std::vector<uint16_t>{id_a, id_b}));
  EXPECT_EQ(RecordsInFlight(), 0);
}

// Killed after recording a completion's new position, before writing its used element: undone,
// the chain runs again.
TEST_F(InflightPackedTest, CompletionCutOffBeforeTheUsedElementRunsAgain) {
  const uint16_t id_a = AddRequest(1);
  const uint16_t id_b = AddRequest(2);
  QueueContext& ctx = first_->context();
  ctx.Take();
  ctx.Take();
  // What Completing(a) writes: a's records back on the free list, the used slot past a.
  desc(desc(0)->last)->next = header()->free_head;
  header()->free_head = 0;
  header()->used_idx = 2;

  Restarted r = Restart();
  ASSERT_OK(r.context->TrackInflight(Tracker()));
  EXPECT_EQ(r.context->resubmit_pending(), 2u);
  EXPECT_EQ(TakeAll(*r.context), (std::vector<uint8_t>{1, 2}));
  EXPECT_EQ(UsedIds(), (std::vector<uint16_t>{id_a, id_b}));
}

// Killed in the middle of recording a take: the chain was not acted on and is taken again from
// the ring.
TEST_F(InflightPackedTest, TakeCutOffIsTakenAgainFromTheRing) {
  const uint16_t id_a = AddRequest(1);
  first_->context().Take();
  // Records written and the head marked, the free list not yet moved past them.
  header()->old_free_head = 0;

  Restarted r = Restart();
  ASSERT_OK(r.context->TrackInflight(Tracker()));
  EXPECT_EQ(r.context->resubmit_pending(), 0u);
  EXPECT_EQ(desc(0)->inflight, 0);
  EXPECT_EQ(TakeAll(*r.context), (std::vector<uint8_t>{1}));
  EXPECT_EQ(UsedIds(), (std::vector<uint16_t>{id_a}));
}

// A completion that moves the used slot across the end of the ring, cut off at each store:
// the slot recovery looks at is the one the completion wrote, even with the old position half
// updated and the driver already reusing that slot in the next lap.
TEST_F(InflightPackedTest, CompletionAcrossTheWrapCutOffAtEachStore) {
  // Three chains used and read: the next ones sit at slots 6-7 and (wrapped) 0-1.
  for (uint8_t tag = 1; tag <= 3; ++tag) AddRequest(tag);
  EXPECT_EQ(TakeAll(first_->context()).size(), 3u);
  EXPECT_EQ(UsedIds().size(), 3u);
  const uint16_t id_x = AddRequest(10);
  const uint16_t id_y = AddRequest(11);
  QueueContext& ctx = first_->context();
  const ChainToken x = *ctx.Take();
  ctx.Take();
  const std::vector<uint8_t> before = region_;
  ctx.Complete(x, 1);
  const std::vector<uint8_t> after = region_;
  EXPECT_EQ(header()->used_idx, 0);
  EXPECT_EQ(header()->used_wrap_counter, 0);
  // The driver reads x's element and fills the ring again, slot 6 included (lap 0).
  EXPECT_EQ(UsedIds(), (std::vector<uint16_t>{id_x}));
  const uint16_t id_z1 = AddRequest(12);
  const uint16_t id_z2 = AddRequest(13);
  const uint16_t id_z3 = AddRequest(14);

  // Completed cut off after old_used_wrap_counter, before old_used_idx.
  region_ = after;
  const auto* old = reinterpret_cast<const InflightQueueHeaderPacked*>(before.data());
  header()->old_used_idx = old->old_used_idx;
  Restarted r = Restart();
  ASSERT_OK(r.context->TrackInflight(Tracker()));
  EXPECT_EQ(r.context->resubmit_pending(), 1u);
  EXPECT_EQ(TakeAll(*r.context), (std::vector<uint8_t>{11, 12, 13, 14}));
  EXPECT_EQ(UsedIds(), (std::vector<uint16_t>{id_y, id_z1, id_z2, id_z3}));
  EXPECT_FALSE(r.queue->broken());
}

TEST_F(InflightPackedTest, CompletionAcrossTheWrapCutOffBeforeItsUsedElement) {
  for (uint8_t tag = 1; tag <= 3; ++tag) AddRequest(tag);
  EXPECT_EQ(TakeAll(first_->context()).size(), 3u);
  EXPECT_EQ(UsedIds().size(), 3u);
  const uint16_t id_x = AddRequest(10);
  const uint16_t id_y = AddRequest(11);
  QueueContext& ctx = first_->context();
  ctx.Take();
  ctx.Take();
  // Completing(x) cut off after used_wrap_counter, before used_idx.
  const uint16_t x = OldestInFlight();
  desc(desc(x)->last)->next = header()->free_head;
  header()->free_head = x;
  header()->used_wrap_counter = 0;

  Restarted r = Restart();
  ASSERT_OK(r.context->TrackInflight(Tracker()));
  EXPECT_EQ(TakeAll(*r.context), (std::vector<uint8_t>{10, 11}));
  EXPECT_EQ(UsedIds(), (std::vector<uint16_t>{id_x, id_y}));
  EXPECT_EQ(header()->used_idx, 2);
  EXPECT_EQ(header()->used_wrap_counter, 0);
}

TEST_F(InflightPackedTest, GivenBackChainsAreNotInFlight) {
  AddRequest(1);
  QueueContext& ctx = first_->context();
  const ChainToken a = *ctx.Take();
  ctx.GiveBack(a);
  EXPECT_EQ(RecordsInFlight(), 0);
  EXPECT_EQ(header()->free_head, 0);
  ASSERT_TRUE(ctx.Take().has_value());
  EXPECT_EQ(RecordsInFlight(), 1);

  // A resubmitted chain given back is offered again from the region, not the ring.
  Restarted r = Restart();
  ASSERT_OK(r.context->TrackInflight(Tracker()));
  const ChainToken resubmitted = *r.context->Take();
  r.context->GiveBack(resubmitted);
  EXPECT_EQ(r.context->resubmit_pending(), 1u);
  EXPECT_EQ(RecordsInFlight(), 1);
  EXPECT_EQ(TakeAll(*r.context), (std::vector<uint8_t>{1}));
}

TEST_F(InflightPackedTest, AFreshRegionStartsFromTheFrontEndsPosition) {
  // A region made by GET_INFLIGHT_FD (split header only), a ring the front end resumes at slot
  // 5 of lap 0 with nothing in flight.
  std::vector<uint8_t> fresh(InflightQueueBytes(kSize), 0);
  InitInflightRegion(fresh.data(), 1, kSize);
  VringLayout layout = first_->layout();
  layout.base = 5 | (5u << 16);
  std::unique_ptr<Virtqueue> queue = *Virtqueue::Create(0, layout, kFeatures, ram_.memory());
  std::unique_ptr<QueueContext> ctx = *QueueContext::Create(queue.get(), nullptr);
  ASSERT_OK(ctx->TrackInflight(std::make_unique<InflightQueuePacked>(fresh.data(), kSize)));
  EXPECT_EQ(queue->Base(), 5u | 5u << 16);
  const auto* h = reinterpret_cast<const InflightQueueHeaderPacked*>(fresh.data());
  EXPECT_EQ(h->packed_state, kInflightPackedState);
  EXPECT_EQ(h->used_idx, 5);
  EXPECT_EQ(h->used_wrap_counter, 0);
  EXPECT_EQ(h->free_head, 0);

  // Tracked as split afterwards (the front end kept the region across a renegotiation), the
  // part starts empty rather than read packed records as heads.
  InflightQueue as_split(fresh.data(), kSize);
  ASSERT_OK_AND_ASSIGN(std::vector<uint16_t> heads, as_split.Recover(kSize, 0));
  EXPECT_TRUE(heads.empty());
  EXPECT_EQ(h->packed_state, 0);
}

TEST_F(InflightPackedTest, HostileRegionsAreRefused) {
  AddRequest(1);
  AddRequest(2);
  first_->context().Take();
  first_->context().Take();
  // Chains at records 0-1 and 2-3, records 4-7 free.
  const std::vector<uint8_t> good = region_;
  auto refused = [&] {
    Restarted r = Restart();
    return !r.context->TrackInflight(Tracker()).ok();
  };
  auto check = [&](const char* what, const std::function<void()>& corrupt) {
    region_ = good;
    corrupt();
    EXPECT_TRUE(refused()) << what;
  };
  EXPECT_FALSE(refused());
  check("version", [&] { header()->version = 2; });
  check("desc_num", [&] { header()->desc_num = kSize * 2; });
  check("inflight not a flag", [&] { desc(2)->inflight = 7; });
  check("used slot beyond the ring", [&] { header()->used_idx = header()->old_used_idx = kSize; });
  check("wrap counter", [&] { header()->used_wrap_counter = header()->old_used_wrap_counter = 2; });
  check("free head beyond", [&] { header()->free_head = header()->old_free_head = kSize + 1; });
  check("no descriptors", [&] { desc(2)->num = 0; });
  check("more than the ring", [&] { desc(2)->num = kSize + 1; });
  check("chain loops", [&] {
    desc(2)->num = 3;
    desc(3)->next = 2;
  });
  check("chain runs off the records", [&] { desc(2)->next = kSize; });
  check("last is not the end", [&] { desc(2)->last = 2; });
  check("chains share records", [&] { desc(2)->next = 1; });
  check("free list loops", [&] { desc(5)->next = 4; });
  check("free list misses records", [&] { desc(5)->next = kSize; });
  check("free list runs into a chain", [&] { desc(7)->next = 3; });
  check("a free record marked", [&] {
    desc(5)->inflight = 1;
    desc(5)->num = 1;
    desc(5)->last = 5;
  });
  region_ = good;
  EXPECT_FALSE(refused());
}

TEST_F(InflightPackedTest, HostileSavedDescriptorsBreakTheQueue) {
  AddRequest(1);
  first_->context().Take();
  const std::vector<uint8_t> good = region_;
  auto broken = [&](const char* what, const std::function<void()>& corrupt) {
    region_ = good;
    corrupt();
    Restarted r = Restart();
    ASSERT_OK(r.context->TrackInflight(Tracker())) << what;
    EXPECT_FALSE(r.context->Take().has_value()) << what;
    EXPECT_TRUE(r.queue->broken()) << what;
  };
  broken("address outside guest memory", [&] { desc(0)->addr = uint64_t{1} << 50; });
  broken("length past guest memory", [&] { desc(1)->len = 0xffffffff; });
  broken("NEXT on the last", [&] { desc(1)->flags |= VRING_DESC_F_NEXT; });
  broken("no NEXT before the last", [&] { desc(0)->flags &= ~VRING_DESC_F_NEXT; });
  broken("INDIRECT in a chain", [&] { desc(1)->flags |= VRING_DESC_F_INDIRECT; });
  broken("readable after writable", [&] {
    desc(0)->flags |= VRING_DESC_F_WRITE;
    desc(1)->flags &= ~VRING_DESC_F_WRITE;
  });
  // Two chains naming one buffer id.
  region_ = good;
  AddRequest(2);
  first_->context().Take();
  desc(2)->id = desc(0)->id;
  desc(3)->id = desc(1)->id;
  Restarted r = Restart();
  ASSERT_OK(r.context->TrackInflight(Tracker()));
  ASSERT_TRUE(r.context->Take().has_value());
  EXPECT_FALSE(r.context->Take().has_value());
  EXPECT_TRUE(r.queue->broken());
}

}  // namespace
}  // namespace vhost
