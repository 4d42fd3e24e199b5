// FsDevice over its queues in fake guest memory, with the engine's pool for the request queue:
// a SETLKW waiting for a lock a host process holds ends with EINTR on FUSE_INTERRUPT (which the
// high-priority queue brings, served by its own worker while every pool thread waits) and when
// its queue stops (so GET_VRING_BASE, reset and disconnect never wait for a lock holder, and
// the ring position reported is exact), and a head the guest makes available again while it
// is in flight breaks the queue instead of growing the pool. Without a pool every request is
// served on its queue's worker, where nothing may wait.
#include "vhost-user-fs/fs_device.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include "common/device/work_pool.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/kernel_locks.h"
#include "common/testing/status_matchers.h"
#include "common/testing/test_queue.h"
#include "gtest/gtest.h"
#include "vhost-user-fs/request_waits.h"

namespace vhost {
namespace {

// A mkdtemp/mkstemp template in the test's own directory ($TEST_TMPDIR; /tmp outside Bazel).
std::string TempTemplate(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr && *dir != '\0' ? dir : "/tmp") + "/" + name + "XXXXXX";
}

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::TestQueue;
using ::vhost::testing::UsedElement;

constexpr uint32_t kQueueSize = 16;
constexpr int kHighPriorityQueue = 0;
constexpr int kRequestQueue = 1;
constexpr int kPoolThreads = 2;
constexpr int kSlots = 4;  // one request and its reply each
constexpr uint32_t kSlotHalf = 0x1000;
// Only a safety net, so that a wait that is never cut short fails the test instead of hanging
// it: nothing here waits this long when the code works.
constexpr auto kGiveUp = std::chrono::seconds(20);

template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}

class FsDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Make(kPoolThreads)); }

  // The device with a pool of `pool_threads` (none for 0), its two queues started, and the
  // shared file looked up.
  void Make(int pool_threads) {
    std::string tmpl = TempTemplate("fs-device-");
    dir_ = mkdtemp(tmpl.data());
    std::ofstream(dir_ + "/file") << std::string(1000, 'x');
    struct stat st;
    ASSERT_EQ(stat((dir_ + "/file").c_str(), &st), 0);
    file_ino_ = st.st_ino;
    FsOptions options;
    options.shared_dir = dir_;
    options.posix_lock = true;
    ASSERT_OK_AND_ASSIGN(auto server, FuseServer::Create(options));
    device_ = std::make_unique<FsDevice>(std::move(server), "tag", 1, pool_threads);
    // The engine makes the pool the device asks for.
    ASSERT_EQ(device_->Info().pool_threads, pool_threads);
    if (pool_threads > 0) pool_ = std::make_unique<WorkPool>(pool_threads);

    TestQueue::Options hiprio;
    hiprio.index = kHighPriorityQueue;
    hiprio.size = kQueueSize;
    hiprio.pool = pool_.get();
    ASSERT_OK_AND_ASSIGN(hiprio_, TestQueue::Create(&ram_, hiprio));
    TestQueue::Options request = hiprio;
    request.index = kRequestQueue;
    ASSERT_OK_AND_ASSIGN(queue_, TestQueue::Create(&ram_, request));
    queue_->queue().set_err_fd(err_.get());
    for (uint64_t& gpa : slots_) gpa = ram_.Allocate(2 * kSlotHalf);
    ASSERT_OK(hiprio_->Start(*device_));
    ASSERT_OK(queue_->Start(*device_));
    running_ = true;

    ASSERT_EQ(Call(FUSE_LOOKUP, 1, std::string("file") + '\0'), 0);
    fuse_entry_out entry;
    std::memcpy(&entry, ReplyBody(0).data(), sizeof(entry));
    file_node_ = entry.nodeid;
  }

  void TearDown() override {
    if (host_fd_ >= 0) close(host_fd_);
    StopQueues();
    std::filesystem::remove_all(dir_);
  }

  void StopQueues() {
    if (!running_) return;
    running_ = false;
    queue_->Stop(*device_);
    hiprio_->Stop(*device_);
  }

  // Places request `unique` (header, then `args`) in slot `slot` and makes it available on the
  // request queue.
  uint16_t Add(int slot, uint32_t opcode, uint64_t unique, uint64_t nodeid,
               const std::string& args) {
    const std::string request = Request(slot, opcode, unique, nodeid, args);
    auto head = queue_->Add({{slots_[slot], static_cast<uint32_t>(request.size())}},
                            {{slots_[slot] + kSlotHalf, kSlotHalf}});
    EXPECT_OK(head);
    return head.value_or(0);
  }
  // Writes the request into slot `slot` (and clears its reply half).
  std::string Request(int slot, uint32_t opcode, uint64_t unique, uint64_t nodeid,
                      const std::string& args) {
    fuse_in_header in{};
    in.opcode = opcode;
    in.unique = unique;
    in.nodeid = nodeid;
    in.len = static_cast<uint32_t>(sizeof(in) + args.size());
    const std::string request = Bytes(in) + args;
    std::memcpy(ram_.Host(slots_[slot], request.size()), request.data(), request.size());
    std::memset(ram_.Host(slots_[slot] + kSlotHalf, kSlotHalf), 0, kSlotHalf);
    return request;
  }
  // FUSE_INTERRUPT of request `unique`, through the high-priority queue; what it reported.
  std::vector<UsedElement> Interrupt(int slot, uint64_t unique) {
    fuse_interrupt_in interrupt{unique};
    const std::string request = Request(slot, FUSE_INTERRUPT, unique + 1, 0, Bytes(interrupt));
    EXPECT_OK(hiprio_->Add({{slots_[slot], static_cast<uint32_t>(request.size())}}, {}));
    hiprio_->Run(*device_);
    return hiprio_->Used();
  }
  fuse_out_header ReplyHeader(int slot) {
    fuse_out_header out;
    std::memcpy(&out, ram_.Host(slots_[slot] + kSlotHalf, sizeof(out)), sizeof(out));
    return out;
  }
  std::string ReplyBody(int slot) {
    return std::string(
        reinterpret_cast<char*>(ram_.Host(slots_[slot] + kSlotHalf + sizeof(fuse_out_header), 256)),
        256);
  }
  // Waits for the pool to finish something (false after kGiveUp), then pushes it.
  bool Complete() { return queue_->RunWhenReady(*device_, absl::FromChrono(kGiveUp)).has_value(); }
  // The request queue's used elements, waiting for `n` of them (fewer after kGiveUp).
  std::vector<UsedElement> AwaitUsed(size_t n) {
    std::vector<UsedElement> used = queue_->Used();
    while (used.size() < n && Complete()) {
      for (const UsedElement& u : queue_->Used()) used.push_back(u);
    }
    return used;
  }
  // One request in slot 0, served to the end; its reply's errno.
  int Call(uint32_t opcode, uint64_t nodeid, const std::string& args) {
    const uint16_t head = Add(0, opcode, ++unique_, nodeid, args);
    queue_->Run(*device_);
    const std::vector<UsedElement> used = AwaitUsed(1);
    EXPECT_EQ(used.size(), 1u);
    if (used.size() != 1 || used[0].id != head) return -1;
    EXPECT_EQ(ReplyHeader(0).unique, unique_);
    return -ReplyHeader(0).error;
  }
  std::string LockArgs(uint64_t owner) {
    fuse_lk_in in{};
    in.owner = owner;
    in.lk = {0, static_cast<uint64_t>(INT64_MAX), F_WRLCK, 0};
    return Bytes(in);
  }
  // A host process (this one, through its own open file) holds a write lock on the file.
  void HoldOnTheHost() {
    host_fd_ = open((dir_ + "/file").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(host_fd_, 0);
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    ASSERT_EQ(fcntl(host_fd_, F_OFD_SETLK, &fl), 0);
  }
  void ReleaseOnTheHost() {
    close(host_fd_);
    host_fd_ = -1;
  }
  // Waits until `n` lock requests wait in the kernel: the SETLKWs are really blocked.
  void AwaitKernelWaiters(int n) {
    ASSERT_TRUE(testing::AwaitLockWaiters(file_ino_, n, absl::Seconds(20)))
        << testing::LockWaiters(file_ino_) << " lock requests wait, not " << n;
  }

  std::string dir_;
  ino_t file_ino_ = 0;
  uint64_t file_node_ = 0;
  uint64_t unique_ = 0;
  int host_fd_ = -1;
  FakeGuestMemory ram_{1 << 20};
  uint64_t slots_[kSlots] = {};
  UniqueFd err_{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  std::unique_ptr<FsDevice> device_;
  std::unique_ptr<WorkPool> pool_;
  std::unique_ptr<TestQueue> hiprio_;
  std::unique_ptr<TestQueue> queue_;
  bool running_ = false;
};

TEST_F(FsDeviceTest, FuseInterruptEndsAWaitingSetlkw) {
  HoldOnTheHost();
  Add(1, FUSE_SETLKW, 4242, file_node_, LockArgs(7));
  queue_->Run(*device_);
  AwaitKernelWaiters(1);
  // FUSE_INTERRUPT naming it, on the high-priority queue: answered at once, with no reply.
  const std::vector<UsedElement> interrupted = Interrupt(2, 4242);
  ASSERT_EQ(interrupted.size(), 1u);
  EXPECT_EQ(interrupted[0].len, 0u);
  if (!Complete()) {
    ADD_FAILURE() << "the SETLKW still waits after FUSE_INTERRUPT";
    ReleaseOnTheHost();
    ASSERT_TRUE(Complete());
  }
  EXPECT_EQ(queue_->Used().size(), 1u);
  EXPECT_EQ(ReplyHeader(1).unique, 4242u);
  EXPECT_EQ(ReplyHeader(1).error, -EINTR);
  EXPECT_EQ(testing::LockWaiters(file_ino_), 0);
  // The queue serves on, and the same owner gets the lock once the host lets go.
  ReleaseOnTheHost();
  EXPECT_EQ(Call(FUSE_SETLKW, file_node_, LockArgs(7)), 0);
}

// The high-priority queue is served by its own worker, not the pool: its INTERRUPTs get through
// while every pool thread waits for a lock.
TEST_F(FsDeviceTest, InterruptsGetThroughWhileEveryPoolThreadWaits) {
  HoldOnTheHost();
  Add(1, FUSE_SETLKW, 301, file_node_, LockArgs(21));
  Add(2, FUSE_SETLKW, 302, file_node_, LockArgs(21));
  queue_->Run(*device_);
  AwaitKernelWaiters(kPoolThreads);
  for (int slot : {1, 2}) {
    const uint64_t unique = 300 + slot;
    ASSERT_EQ(Interrupt(3, unique).size(), 1u) << "INTERRUPT of " << unique << " not served";
    const std::vector<UsedElement> used = AwaitUsed(1);
    ASSERT_EQ(used.size(), 1u) << "request " << unique << " not answered";
    EXPECT_EQ(ReplyHeader(slot).unique, unique);
    EXPECT_EQ(ReplyHeader(slot).error, -EINTR);
  }
  EXPECT_EQ(testing::LockWaiters(file_ino_), 0);
}

TEST_F(FsDeviceTest, StoppingTheQueueEndsEveryWaitingSetlkw) {
  HoldOnTheHost();
  // Three waiting lock requests (of one owner) for a pool of two threads: one is not even
  // started.
  for (int i = 1; i <= 3; ++i) Add(i, FUSE_SETLKW, 100 + i, file_node_, LockArgs(11));
  queue_->Run(*device_);
  AwaitKernelWaiters(2);
  // GET_VRING_BASE, a reset or a disconnect stop the queue.
  auto stopped = std::async(std::launch::async, [&] { StopQueues(); });
  if (stopped.wait_for(kGiveUp) != std::future_status::ready) {
    ADD_FAILURE() << "stopping the queue waits for the lock holder";
    ReleaseOnTheHost();
    stopped.wait();
  }
  const std::vector<UsedElement> used = queue_->Used();
  ASSERT_EQ(used.size(), 3u) << "requests not answered";
  for (int i = 1; i <= 3; ++i) EXPECT_EQ(ReplyHeader(i).error, -EINTR) << "request " << i;
  EXPECT_EQ(testing::LockWaiters(file_ino_), 0);
  // The ring position reported to the front end is exact: every chain taken was answered.
  EXPECT_EQ(queue_->context().in_flight(), 0u);
  EXPECT_EQ(queue_->queue().Base(), queue_->driver().avail_idx());
  EXPECT_EQ(queue_->driver().UsedIdx(), queue_->driver().avail_idx());
}

TEST_F(FsDeviceTest, AHeadMadeAvailableAgainWhileInFlightBreaksTheQueue) {
  const uint16_t head = Add(1, FUSE_GETATTR, 55, file_node_, std::string(16, '\0'));
  queue_->driver().PushAvailHead(head);  // the same chain again, still the device's
  queue_->driver().Publish();
  queue_->Run(*device_);
  EXPECT_TRUE(queue_->queue().broken());
  eventfd_t errors = 0;
  EXPECT_EQ(eventfd_read(err_.get(), &errors), 0);
  EXPECT_EQ(errors, 1u);
}

class FsDeviceWithoutPoolTest : public FsDeviceTest {
 protected:
  void SetUp() override { ASSERT_NO_FATAL_FAILURE(Make(0)); }
};

// Without a pool each queue's worker serves its requests at once, and as nothing could
// interrupt a wait there, a SETLKW fails with EINTR instead of waiting (main.cc refuses
// --posix-lock without a pool).
TEST_F(FsDeviceWithoutPoolTest, RequestsAreServedOnTheQueuesWorkerWhereNothingWaits) {
  HoldOnTheHost();
  Add(1, FUSE_SETLKW, 501, file_node_, LockArgs(31));
  queue_->Run(*device_);
  const std::vector<UsedElement> used = queue_->Used();
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(ReplyHeader(1).unique, 501u);
  EXPECT_EQ(ReplyHeader(1).error, -EINTR);
  EXPECT_EQ(testing::LockWaiters(file_ino_), 0);
  // SETLK, which never waits, takes the lock once the host lets go.
  ReleaseOnTheHost();
  EXPECT_EQ(Call(FUSE_SETLK, file_node_, LockArgs(31)), 0);
}

// FUSE_INTERRUPTs for requests that are not waiting are remembered (the request may be about
// to wait), at most kMaxEarlyInterrupts of them: a guest interrupting requests that never wait
// makes the oldest forgotten, not the list grow.
TEST(RequestWaitsTest, EarlyInterruptsAreBounded) {
  RequestWaits waits;
  RequestWaits::ScopedQueue queue(1, /*may_wait=*/true);
  const uint64_t n = RequestWaits::kMaxEarlyInterrupts + 1;
  for (uint64_t unique = 1; unique <= n; ++unique) waits.Interrupt(unique);
  int calls = 0;
  auto call = [&] {
    ++calls;
    return 0;
  };
  EXPECT_EQ(waits.Run(1, call), 0);  // forgotten: it runs
  EXPECT_EQ(calls, 1);
  for (uint64_t unique = 2; unique <= n; ++unique) {
    EXPECT_EQ(waits.Run(unique, call), -1) << unique;  // remembered: interrupted at once
  }
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(waits.Run(2, call), 0);  // each is used once
}

}  // namespace
}  // namespace vhost
