// The queue worker and its context with a scripted device: batching, busy polling, the lost-kick
// race, stopping mid-batch, completions from other threads, watched fds, and the ring rules the
// context enforces on chains in flight. The worker's tests run twice: with a thread of its own
// and as a member of a WorkerGroup; the group's own tests follow.
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

// Waits (on the call eventfd `call_fd`) until `used` holds `n` of the queue's used elements.
void WaitForUsed(TestQueue& queue, int call_fd, size_t n, std::vector<UsedElement>* used) {
  const absl::Time deadline = absl::Now() + kTimeout;
  while (used->size() < n && absl::Now() < deadline) {
    for (const UsedElement& e : queue.Used()) used->push_back(e);
    if (used->size() >= n) break;
    pollfd p{call_fd, POLLIN, 0};
    poll(&p, 1, 100);
    eventfd_t ignored;
    eventfd_read(call_fd, &ignored);
  }
}

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

class QueueWorkerTest : public ::testing::TestWithParam<bool> {
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
  // With GetParam(), the worker joins a group (made on the first start) spinning `busy_poll`.
  void StartWorker(absl::Duration busy_poll = absl::ZeroDuration()) {
    if (GetParam() && !group_) group_ = std::make_unique<WorkerGroup>(busy_poll);
    worker_ = std::make_unique<QueueWorker>(&device_, &queue_->context(), kick_.get(), busy_poll,
                                            group_.get());
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
    WaitForUsed(*queue_, call_.get(), n, &used_);
    return used_;
  }

  FakeGuestMemory ram_;
  std::unique_ptr<TestQueue> queue_;
  ScriptedDevice device_;
  UniqueFd kick_, call_;
  uint64_t buffer_ = 0;
  std::vector<UsedElement> used_;
  std::unique_ptr<WorkerGroup> group_;  // outlives the worker
  std::unique_ptr<QueueWorker> worker_;
};

TEST_P(QueueWorkerTest, ChainsWaitingAtStartAreOneBatchWithOneSignal) {
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

TEST_P(QueueWorkerTest, KickedChainsAreServed) {
  StartWorker();
  AddChain();
  Kick();
  EXPECT_EQ(WaitUsed(1).size(), 1u);
}

TEST_P(QueueWorkerTest, ChainAddedWhileNotificationsWereOffIsNotLost) {
  // The guest adds a chain after the device's last Take but before the worker re-enables
  // notifications: it saw them off and does not kick. The worker must look again.
  // The driver's side is touched by the worker only until both are done (it is not
  // thread-safe): this thread looks at the used ring once the worker has stopped.
  std::atomic<bool> added{false};
  int completed = 0;
  Notification both;
  device_.process = [&](QueueContext& context) {
    while (absl::optional<ChainToken> token = context.Take()) {
      context.Complete(*token, 1);
      if (++completed == 2) both.Notify();
    }
    if (!added.exchange(true)) AddChain(1);  // no kick
    return QueueResult::Drained();
  };
  AddChain(0);
  StartWorker();
  EXPECT_TRUE(both.WaitForNotificationWithTimeout(kTimeout));
  worker_->Stop();
  EXPECT_EQ(queue_->Used().size(), 2u);
}

TEST_P(QueueWorkerTest, BusyPollingServesChainsWithoutKicks) {
  StartWorker(/*busy_poll=*/absl::Seconds(30));
  AddChain(0);
  Kick();
  ASSERT_EQ(WaitUsed(1).size(), 1u);
  // The worker is spinning now: a chain without a kick is still taken.
  AddChain(1);
  EXPECT_EQ(WaitUsed(2).size(), 2u);
}

TEST_P(QueueWorkerTest, StopWaitsForTheBatchInProgress) {
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

TEST_P(QueueWorkerTest, CompletionsFromOtherThreadsArePushedByTheWorker) {
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
  worker_->Stop();  // before the locals `process` uses go
}

TEST_P(QueueWorkerTest, StoppingWaitsForChainsCompletedElsewhere) {
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

TEST_P(QueueWorkerTest, WatchedFdsAndWakeUpsRunTheDevice) {
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

TEST_P(QueueWorkerTest, RetryAfterCallsAgainWithoutEvents) {
  Notification second;
  device_.process = [&](QueueContext&) {
    if (device_.calls >= 2 && !second.HasBeenNotified()) second.Notify();
    return QueueResult::RetryAfter(absl::Milliseconds(1));
  };
  StartWorker();
  EXPECT_TRUE(second.WaitForNotificationWithTimeout(kTimeout));
  worker_->Stop();  // before the locals `process` uses go
}

TEST_P(QueueWorkerTest, BlockedLeavesChainsInTheRingUntilAnEvent) {
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
  worker_->Stop();  // before the locals `process` uses go
}

TEST_P(QueueWorkerTest, ADeviceWakingItselfOnEveryCallStillStops) {
  // Each call asks for another (a wake-up on its own thread, a flag): the thread must still
  // look at epoll now and then, or it would never see Stop (the test would time out).
  QueueContext* context = &queue_->context();
  device_.process = [context](QueueContext&) {
    context->Wake();
    return QueueResult::Blocked();
  };
  StartWorker();
  ASSERT_TRUE(device_.WaitCalls(1000));  // it goes on calling
  worker_->Stop();
  EXPECT_GE(device_.calls, 1000);
}

INSTANTIATE_TEST_SUITE_P(OwnThreadOrGroup, QueueWorkerTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "InAGroup" : "OwnThread";
                         });

// Two queues of one device served by a WorkerGroup, as vsock's rx and tx queues are.
class WorkerGroupTest : public ::testing::Test {
 protected:
  struct Member {
    std::unique_ptr<TestQueue> queue;
    UniqueFd kick, call;
    std::unique_ptr<QueueWorker> worker;
  };
  void SetUp() override {
    buffer_ = ram_.Allocate(4096);
    for (int i = 0; i < 2; ++i) {
      TestQueue::Options options;
      options.index = i;
      ASSERT_OK_AND_ASSIGN(members_[i].queue, TestQueue::Create(&ram_, options));
      members_[i].kick.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      members_[i].call.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      members_[i].queue->queue().set_call_fd(members_[i].call.get());
    }
    // Every call: which thread, and whether another call was running at the same time.
    device_.process = [this](QueueContext& context) {
      if (++running_ > 1) overlapped_ = true;
      {
        std::lock_guard<std::mutex> lock(mu_);
        threads_.push_back(std::this_thread::get_id());
      }
      QueueResult result = QueueResult::Drained();
      if (process) {
        result = process(context);
      } else {
        while (absl::optional<ChainToken> token = context.Take()) context.Complete(*token, 1);
      }
      --running_;
      return result;
    };
  }
  void TearDown() override { StopAll(); }
  // Called at the end of a test whose `process` refers to its locals: the thread may call it
  // until its queues stop.
  void StopAll() {
    for (Member& m : members_) {
      if (m.worker) m.worker->Stop();
    }
  }
  void Start(int i, absl::Duration busy_poll = absl::ZeroDuration()) {
    if (!group_) group_ = std::make_unique<WorkerGroup>(busy_poll);
    Member& m = members_[i];
    m.worker = std::make_unique<QueueWorker>(&device_, &m.queue->context(), m.kick.get(), busy_poll,
                                             group_.get());
    ASSERT_OK(m.worker->Start());
  }
  void AddChain(int i, uint32_t slot) {
    const Buffer out{buffer_ + slot * 16, 16};
    EXPECT_OK(members_[i].queue->Add({}, {&out, 1}));
  }
  void Kick(int i) { eventfd_write(members_[i].kick.get(), 1); }
  // Waits until queue `i` has reported `n` used elements in all.
  size_t WaitUsed(int i, size_t n) {
    WaitForUsed(*members_[i].queue, members_[i].call.get(), n, &used_[i]);
    return used_[i].size();
  }
  std::vector<std::thread::id> Threads() {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_;
  }

  FakeGuestMemory ram_;
  uint64_t buffer_ = 0;
  ScriptedDevice device_;
  std::function<QueueResult(QueueContext&)> process;  // the test's part of each call
  std::unique_ptr<WorkerGroup> group_;                // outlives the workers
  Member members_[2];
  std::vector<UsedElement> used_[2];
  std::atomic<int> running_{0};
  std::atomic<bool> overlapped_{false};
  std::mutex mu_;
  std::vector<std::thread::id> threads_;  // under mu_
};

TEST_F(WorkerGroupTest, OneThreadServesEveryQueueOneCallAtATime) {
  Start(0);
  Start(1);
  for (uint32_t round = 0; round < 20; ++round) {
    AddChain(0, round % 8);
    AddChain(1, 8 + round % 8);
    Kick(0);
    Kick(1);
  }
  EXPECT_EQ(WaitUsed(0, 20), 20u);
  EXPECT_EQ(WaitUsed(1, 20), 20u);
  EXPECT_EQ(group_->size(), 2u);
  EXPECT_FALSE(overlapped_);
  const std::vector<std::thread::id> threads = Threads();
  ASSERT_FALSE(threads.empty());
  for (const std::thread::id& id : threads) EXPECT_EQ(id, threads[0]);
  EXPECT_NE(threads[0], std::this_thread::get_id());
}

TEST_F(WorkerGroupTest, AQueueWokenByAnotherIsServedOnTheSameThread) {
  // Queue 1 takes its chains only when queue 0 has seen a request (vsock: a reply waits for
  // the rx queue): queue 0's call wakes it, and the group serves it with no kick.
  std::atomic<bool> requested{false};
  QueueContext& replies = members_[1].queue->context();
  process = [&](QueueContext& context) {
    if (context.index() == 1 && !requested) return QueueResult::Blocked();
    while (absl::optional<ChainToken> token = context.Take()) context.Complete(*token, 1);
    if (context.index() == 0) {
      requested = true;
      replies.Wake();
    }
    return QueueResult::Drained();
  };
  AddChain(1, 1);  // a buffer for the reply, waiting
  Start(1);
  Start(0);
  AddChain(0, 0);
  Kick(0);
  EXPECT_EQ(WaitUsed(0, 1), 1u);
  EXPECT_EQ(WaitUsed(1, 1), 1u);
  StopAll();
  const std::vector<std::thread::id> threads = Threads();
  for (const std::thread::id& id : threads) EXPECT_EQ(id, threads[0]);
}

TEST_F(WorkerGroupTest, AStoppedQueueLeavesTheOtherServed) {
  Start(0);
  Start(1);
  members_[0].worker->Stop();
  EXPECT_EQ(group_->size(), 1u);
  // Queue 0 is now this thread's: a completion here goes to the ring at once.
  AddChain(0, 0);
  QueueContext& stopped = members_[0].queue->context();
  absl::optional<ChainToken> token = stopped.Take();
  ASSERT_TRUE(token.has_value());
  stopped.Complete(*token, 1);
  EXPECT_EQ(members_[0].queue->Used().size(), 1u);
  AddChain(1, 1);
  Kick(1);
  EXPECT_EQ(WaitUsed(1, 1), 1u);
  // And it joins again.
  Start(0);
  AddChain(0, 2);
  Kick(0);
  EXPECT_EQ(WaitUsed(0, 1), 1u);
}

TEST_F(WorkerGroupTest, BusyPollingCoversEveryQueue) {
  Start(0, /*busy_poll=*/absl::Seconds(30));
  Start(1, /*busy_poll=*/absl::Seconds(30));
  // A kicked chain on each: both queues are the thread's now, and it has nothing else to do.
  AddChain(1, 0);
  Kick(1);
  ASSERT_EQ(WaitUsed(1, 1), 1u);
  AddChain(0, 0);
  Kick(0);
  ASSERT_EQ(WaitUsed(0, 1), 1u);
  // The thread spins now: chains without kicks, on either queue, are taken.
  AddChain(1, 1);
  EXPECT_EQ(WaitUsed(1, 2), 2u);
  AddChain(0, 2);
  EXPECT_EQ(WaitUsed(0, 2), 2u);
  EXPECT_GT(members_[0].queue->queue().stats().busy_poll_hits.Get() +
                members_[1].queue->queue().stats().busy_poll_hits.Get(),
            0u);
}

TEST_F(WorkerGroupTest, RetryAfterOfOneQueueIsKeptWhileTheOtherSleeps) {
  Notification retried;
  process = [&](QueueContext& context) {
    if (context.index() == 0) {
      if (device_.calls >= 3 && !retried.HasBeenNotified()) retried.Notify();
      return QueueResult::RetryAfter(absl::Milliseconds(1));
    }
    return QueueResult::Blocked();
  };
  Start(1);
  Start(0);
  EXPECT_TRUE(retried.WaitForNotificationWithTimeout(kTimeout));
  StopAll();
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
