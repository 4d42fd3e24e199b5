// The queue worker and its context with a scripted device: batching, busy polling, the lost-kick
// race, stopping mid-batch, completions from other threads, watched fds, and the ring rules the
// context enforces on chains in flight.
#include "common/device/queue_worker.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "common/device/work_pool.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::Buffer;
using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(10);

// Notification on std::mutex: Debian's Abseil is not built for ThreadSanitizer, which
// then cannot see the ordering its primitives give (this test runs under --config=tsan).
class Notification {
 public:
  void Notify() {
    std::lock_guard<std::mutex> lock(mu_);
    notified_ = true;
    cv_.notify_all();
  }
  bool HasBeenNotified() {
    std::lock_guard<std::mutex> lock(mu_);
    return notified_;
  }
  void WaitForNotification() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return notified_; });
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoSeconds(timeout), [&] { return notified_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool notified_ = false;
};

// A device whose ProcessQueue runs what the test sets; by default it completes every chain at
// once with 1 byte written.
class ScriptedDevice : public VirtioDevice {
 public:
  DeviceInfo Info() const override { return DeviceInfo(); }
  QueueResult ProcessQueue(QueueContext& context) override {
    QueueResult result = QueueResult::Drained();
    if (process) {
      result = process(context);
    } else {
      while (absl::optional<ChainToken> token = context.Take()) context.Complete(*token, 1);
    }
    ++calls;
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_seen_;
    cv_.notify_all();
    return result;
  }
  // Waits until ProcessQueue has returned `n` times in all.
  bool WaitCalls(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoSeconds(kTimeout), [&] { return calls_seen_ >= n; });
  }
  void QueueStopped(QueueContext& context) override {
    if (stopped) stopped(context);
  }
  std::function<QueueResult(QueueContext&)> process;
  std::function<void(QueueContext&)> stopped;
  std::atomic<int> calls{0};

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int calls_seen_ = 0;  // under mu_
};

class QueueWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(queue_, TestQueue::Create(&ram_));
    kick_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    call_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    queue_->queue().set_call_fd(call_.get());
    buffer_ = ram_.Allocate(4096);
  }
  void TearDown() override {
    if (worker_) worker_->Stop();
  }
  void StartWorker(absl::Duration busy_poll = absl::ZeroDuration()) {
    worker_ = std::make_unique<QueueWorker>(&device_, &queue_->context(), kick_.get(), busy_poll);
    ASSERT_OK(worker_->Start());
  }
  uint16_t AddChain(uint32_t index = 0) {
    const Buffer out{buffer_ + index * 16, 16};
    absl::StatusOr<uint16_t> id = queue_->Add({}, {&out, 1});
    EXPECT_OK(id);
    return id.ok() ? *id : 0;
  }
  void Kick() { eventfd_write(kick_.get(), 1); }
  // Reads the call eventfd: how many times the guest was signalled since the last read.
  uint64_t Calls() {
    eventfd_t value = 0;
    return eventfd_read(call_.get(), &value) == 0 ? value : 0;
  }
  // Waits (on the call eventfd) until `n` used elements arrived in total.
  std::vector<UsedElement> WaitUsed(size_t n) {
    const absl::Time deadline = absl::Now() + kTimeout;
    while (used_.size() < n && absl::Now() < deadline) {
      for (const UsedElement& e : queue_->Used()) used_.push_back(e);
      if (used_.size() >= n) break;
      pollfd p{call_.get(), POLLIN, 0};
      poll(&p, 1, 100);
      Calls();
    }
    return used_;
  }

  FakeGuestMemory ram_;
  std::unique_ptr<TestQueue> queue_;
  ScriptedDevice device_;
  UniqueFd kick_, call_;
  uint64_t buffer_ = 0;
  std::vector<UsedElement> used_;
  std::unique_ptr<QueueWorker> worker_;
};

TEST_F(QueueWorkerTest, ChainsWaitingAtStartAreOneBatchWithOneSignal) {
  for (uint32_t i = 0; i < 8; ++i) AddChain(i);
  Notification done;
  device_.process = [&](QueueContext& context) {
    while (absl::optional<ChainToken> token = context.Take()) context.Complete(*token, 1);
    if (context.in_flight() == 0 && !done.HasBeenNotified()) done.Notify();
    return QueueResult::Drained();
  };
  StartWorker();
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kTimeout));
  worker_->Stop();
  EXPECT_EQ(WaitUsed(8).size(), 8u);
  EXPECT_EQ(device_.calls, 1);  // no kick came: one call drained all
  EXPECT_EQ(Calls(), 1u);       // eight chains, one interrupt
}

TEST_F(QueueWorkerTest, KickedChainsAreServed) {
  StartWorker();
  AddChain();
  Kick();
  EXPECT_EQ(WaitUsed(1).size(), 1u);
}

TEST_F(QueueWorkerTest, ChainAddedWhileNotificationsWereOffIsNotLost) {
  // The guest adds a chain after the device's last Take but before the worker re-enables
  // notifications: it saw them off and does not kick. The worker must look again.
  std::atomic<bool> added{false};
  device_.process = [&](QueueContext& context) {
    while (absl::optional<ChainToken> token = context.Take()) context.Complete(*token, 1);
    if (!added.exchange(true)) AddChain(1);  // no kick
    return QueueResult::Drained();
  };
  AddChain(0);
  StartWorker();
  EXPECT_EQ(WaitUsed(2).size(), 2u);
}

TEST_F(QueueWorkerTest, BusyPollingServesChainsWithoutKicks) {
  StartWorker(/*busy_poll=*/absl::Seconds(30));
  AddChain(0);
  Kick();
  ASSERT_EQ(WaitUsed(1).size(), 1u);
  // The worker is spinning now: a chain without a kick is still taken.
  AddChain(1);
  EXPECT_EQ(WaitUsed(2).size(), 2u);
}

TEST_F(QueueWorkerTest, StopWaitsForTheBatchInProgress) {
  Notification entered, release;
  std::atomic<bool> batch_finished{false};
  device_.process = [&](QueueContext& context) {
    while (absl::optional<ChainToken> token = context.Take()) {
      if (!entered.HasBeenNotified()) {
        entered.Notify();
        release.WaitForNotification();
      }
      context.Complete(*token, 1);
    }
    batch_finished = true;
    return QueueResult::Drained();
  };
  AddChain(0);
  AddChain(1);
  StartWorker();
  ASSERT_TRUE(entered.WaitForNotificationWithTimeout(kTimeout));
  std::atomic<bool> finished_before_stop_returned{false};
  std::thread stopper([&] {
    worker_->Stop();
    finished_before_stop_returned = batch_finished.load();
  });
  release.Notify();
  stopper.join();
  EXPECT_TRUE(finished_before_stop_returned);
  EXPECT_EQ(queue_->Used().size(), 2u);
  EXPECT_EQ(queue_->queue().Base(), 2u);  // the position covers the whole batch
}

TEST_F(QueueWorkerTest, CompletionsFromOtherThreadsArePushedByTheWorker) {
  std::vector<ChainToken> taken;
  Notification took;
  device_.process = [&](QueueContext& context) {
    while (absl::optional<ChainToken> token = context.Take()) taken.push_back(*token);
    if (taken.size() == 2 && !took.HasBeenNotified()) took.Notify();
    return QueueResult::Drained();
  };
  AddChain(0);
  AddChain(1);
  StartWorker();
  ASSERT_TRUE(took.WaitForNotificationWithTimeout(kTimeout));
  EXPECT_EQ(queue_->context().in_flight(), 2u);
  std::thread([&] { queue_->context().Complete(taken[1], 7); }).join();
  std::vector<UsedElement> used = WaitUsed(1);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 7u);
  std::thread([&] { queue_->context().Complete(taken[0], 3); }).join();
  EXPECT_EQ(WaitUsed(2).size(), 2u);
  EXPECT_EQ(queue_->context().in_flight(), 0u);
}

TEST_F(QueueWorkerTest, StoppingWaitsForChainsCompletedElsewhere) {
  std::vector<ChainToken> taken;
  Notification took;
  device_.process = [&](QueueContext& context) {
    while (absl::optional<ChainToken> token = context.Take()) taken.push_back(*token);
    if (!taken.empty() && !took.HasBeenNotified()) took.Notify();
    return QueueResult::Drained();
  };
  AddChain(0);
  StartWorker();
  ASSERT_TRUE(took.WaitForNotificationWithTimeout(kTimeout));
  worker_->Stop();
  // The device hands its request to another thread when told to stop, as blk's I/O or fs's
  // pool finish theirs; the stop does not return before it is on the ring.
  std::thread finisher;
  device_.stopped = [&](QueueContext& context) {
    finisher = std::thread([&context, token = taken[0]] { context.Complete(token, 5); });
  };
  device_.QueueStopped(queue_->context());
  queue_->context().FinishInFlight();
  finisher.join();
  EXPECT_EQ(queue_->context().in_flight(), 0u);
  std::vector<UsedElement> used = queue_->Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 5u);
  EXPECT_EQ(queue_->queue().Base(), 1u);
}

TEST_F(QueueWorkerTest, WatchedFdsAndWakeUpsRunTheDevice) {
  UniqueFd event(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  std::atomic<int> handled{0};
  ASSERT_OK(queue_->context().Watch(event.get(), EPOLLIN, [&](uint32_t) {
    eventfd_t ignored;
    eventfd_read(event.get(), &ignored);
    ++handled;
  }));
  device_.process = [&](QueueContext&) { return QueueResult::Blocked(); };
  StartWorker();
  ASSERT_TRUE(device_.WaitCalls(1));  // the start
  eventfd_write(event.get(), 1);
  ASSERT_TRUE(device_.WaitCalls(2));  // the watched fd, its handler first
  EXPECT_EQ(handled, 1);
  std::thread([&] { queue_->context().Wake(); }).join();
  ASSERT_TRUE(device_.WaitCalls(3));  // the wake-up from another thread
  // Unwatched from another thread: later events reach no handler.
  std::thread([&] { queue_->context().Unwatch(event.get()); }).join();
  worker_->Stop();
  eventfd_write(event.get(), 1);
  StartWorker();
  ASSERT_TRUE(device_.WaitCalls(4));  // the restart
  worker_->Stop();
  EXPECT_EQ(handled, 1);
}

TEST_F(QueueWorkerTest, RetryAfterCallsAgainWithoutEvents) {
  Notification second;
  device_.process = [&](QueueContext&) {
    if (device_.calls >= 2 && !second.HasBeenNotified()) second.Notify();
    return QueueResult::RetryAfter(absl::Milliseconds(1));
  };
  StartWorker();
  EXPECT_TRUE(second.WaitForNotificationWithTimeout(kTimeout));
}

TEST_F(QueueWorkerTest, BlockedLeavesChainsInTheRingUntilAnEvent) {
  // A device out of I/O slots returns Blocked: the worker must sleep, not spin on the chain
  // that stays available (even with busy polling on), and come back when the device wakes it.
  std::atomic<bool> slots_free{false};
  device_.process = [&](QueueContext& context) {
    if (!slots_free) return QueueResult::Blocked();
    while (absl::optional<ChainToken> token = context.Take()) context.Complete(*token, 1);
    return QueueResult::Drained();
  };
  AddChain();
  StartWorker(/*busy_poll=*/absl::Seconds(30));
  ASSERT_TRUE(device_.WaitCalls(1));  // the start: the chain stays in the ring
  Kick();
  ASSERT_TRUE(device_.WaitCalls(2));  // one call per event, none in between
  EXPECT_EQ(device_.calls, 2);
  slots_free = true;
  queue_->context().Wake();
  EXPECT_EQ(WaitUsed(1).size(), 1u);
}

class QueueContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(queue_, TestQueue::Create(&ram_));
    buffer_ = ram_.Allocate(4096);
  }
  FakeGuestMemory ram_;
  std::unique_ptr<TestQueue> queue_;
  uint64_t buffer_ = 0;
};

TEST_F(QueueContextTest, AHeadMadeAvailableAgainWhileInFlightBreaksTheQueue) {
  const Buffer out{buffer_, 16};
  ASSERT_OK_AND_ASSIGN(uint16_t head, queue_->Add({}, {&out, 1}));
  QueueContext& context = queue_->context();
  ASSERT_TRUE(context.Take().has_value());
  queue_->driver().PushAvailHead(head);  // the same head again, still ours
  queue_->driver().Publish();
  EXPECT_FALSE(context.Take().has_value());
  EXPECT_TRUE(context.queue().broken());
}

TEST_F(QueueContextTest, GiveBackOffersTheChainAgain) {
  const Buffer out{buffer_, 16};
  ASSERT_OK(queue_->Add({}, {&out, 1}));
  QueueContext& context = queue_->context();
  absl::optional<ChainToken> token = context.Take();
  ASSERT_TRUE(token.has_value());
  context.GiveBack(*token);
  EXPECT_EQ(context.in_flight(), 0u);
  EXPECT_EQ(context.queue().Base(), 0u);
  token = context.Take();
  ASSERT_TRUE(token.has_value());
  context.Complete(*token, 4);
  std::vector<UsedElement> used = queue_->Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].len, 4u);
}

TEST_F(QueueContextTest, SubmittedWorkCompletesTheChain) {
  WorkPool pool(2);
  TestQueue::Options options;
  options.pool = &pool;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TestQueue> queue, TestQueue::Create(&ram_, options));
  const Buffer out{buffer_, 16};
  for (int i = 0; i < 4; ++i) ASSERT_OK(queue->Add({}, {&out, 1}));
  QueueContext& context = queue->context();
  while (absl::optional<ChainToken> token = context.Take()) {
    context.Submit(*token, [](const DescriptorChain& chain) {
      return static_cast<uint32_t>(chain.writable_bytes);
    });
  }
  context.FinishInFlight();
  std::vector<UsedElement> used = queue->Used();
  ASSERT_EQ(used.size(), 4u);
  for (const UsedElement& e : used) EXPECT_EQ(e.len, 16u);
}

TEST(WorkPoolTest, FinishRunsQueuedWorkWhenEveryThreadIsHeld) {
  WorkPool pool(1);
  Notification held, release;
  int other = 0, mine = 0;
  pool.Submit(&other, [&] {
    held.Notify();
    release.WaitForNotification();
  });
  ASSERT_TRUE(held.WaitForNotificationWithTimeout(kTimeout));
  pool.Submit(&mine, [&] { ++mine; });
  pool.Finish(&mine);  // the only thread is held by another owner: runs here
  EXPECT_EQ(mine, 1);
  release.Notify();
  pool.Finish(&other);
}

}  // namespace
}  // namespace vhost
