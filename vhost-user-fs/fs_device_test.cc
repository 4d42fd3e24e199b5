// FsDevice with its request pool, over a request queue in fake guest memory: a SETLKW waiting
// for a lock a host process holds ends with EINTR on FUSE_INTERRUPT and when its queue stops
// (so GET_VRING_BASE, reset and disconnect never wait for a lock holder), and a head the guest
// makes available again while it is in flight breaks the queue instead of growing the pool.
#include "vhost-user-fs/fs_device.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include "common/message.h"
#include "common/testing/driver_ring.h"
#include "common/testing/fake_guest_memory.h"
#include "common/testing/kernel_locks.h"
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

constexpr uint64_t kRingGpa = 0x1000;
constexpr uint64_t kBuffersGpa = 0x20000;  // one request and its reply per 8 KiB slot
constexpr uint32_t kQueueSize = 16;
constexpr int kRequestQueue = 1;
// Only a safety net, so that a wait that is never cut short fails the test instead of hanging
// it: nothing here waits this long when the code works.
constexpr auto kGiveUp = std::chrono::seconds(20);

template <typename T>
std::string Bytes(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(v));
}

class FsDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
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
    device_ = std::make_unique<FsDevice>(std::move(server), "tag", 1, /*thread_pool_size=*/2);
    pool_event_ = device_->QueueEventFd(kRequestQueue);
    ASSERT_GE(pool_event_, 0);

    auto sizes = testing::ComputeRingSizes(RingLayout::kSplit, kQueueSize);
    ASSERT_OK(sizes);
    DriverRing::Config config;
    config.size = kQueueSize;
    config.addresses = testing::LayoutRings(*sizes, kRingGpa);
    ASSERT_OK_AND_ASSIGN(driver_, DriverRing::Create(&ram_, config));
    VringLayout layout{kQueueSize, FakeGuestMemory::Uva(config.addresses.desc),
                       FakeGuestMemory::Uva(config.addresses.driver),
                       FakeGuestMemory::Uva(config.addresses.device), driver_->VringBase()};
    ASSERT_OK_AND_ASSIGN(
        queue_, Virtqueue::Create(kRequestQueue, layout, Bit(kFeatureVersion1), ram_.memory()));
    queue_->set_call_fd(call_.get());
    queue_->set_err_fd(err_.get());

    ASSERT_EQ(Call(FUSE_LOOKUP, 1, std::string("file") + '\0'), 0);
    fuse_entry_out entry;
    std::memcpy(&entry, ReplyBody(0).data(), sizeof(entry));
    file_node_ = entry.nodeid;
  }

  void TearDown() override {
    if (host_fd_ >= 0) close(host_fd_);
    if (queue_ != nullptr) device_->QueueStopped(kRequestQueue, queue_.get());
    std::filesystem::remove_all(dir_);
  }

  // Places request `unique` (header, then `args`) in slot `slot` and makes it available.
  uint16_t Add(int slot, uint32_t opcode, uint64_t unique, uint64_t nodeid,
               const std::string& args) {
    fuse_in_header in{};
    in.opcode = opcode;
    in.unique = unique;
    in.nodeid = nodeid;
    in.len = static_cast<uint32_t>(sizeof(in) + args.size());
    const std::string request = Bytes(in) + args;
    const uint64_t gpa = kBuffersGpa + slot * 0x2000;
    std::memcpy(ram_.Host(gpa, request.size()), request.data(), request.size());
    std::memset(ram_.Host(gpa + 0x1000, 0x1000), 0, 0x1000);
    auto head =
        driver_->AddChain({{gpa, static_cast<uint32_t>(request.size())}}, {{gpa + 0x1000, 0x1000}});
    EXPECT_OK(head);
    return head.value_or(0);
  }
  fuse_out_header ReplyHeader(int slot) {
    fuse_out_header out;
    std::memcpy(&out, ram_.Host(kBuffersGpa + slot * 0x2000 + 0x1000, sizeof(out)), sizeof(out));
    return out;
  }
  std::string ReplyBody(int slot) {
    return std::string(reinterpret_cast<char*>(ram_.Host(
                           kBuffersGpa + slot * 0x2000 + 0x1000 + sizeof(fuse_out_header), 256)),
                       256);
  }
  // Waits for the pool to finish something (false after kGiveUp), then pushes it.
  bool Complete() {
    pollfd p{pool_event_, POLLIN, 0};
    const int ready =
        poll(&p, 1, std::chrono::duration_cast<std::chrono::milliseconds>(kGiveUp).count());
    device_->ProcessQueue(*queue_);
    return ready == 1;
  }
  // One request in slot 0, served to the end; its reply's errno.
  int Call(uint32_t opcode, uint64_t nodeid, const std::string& args) {
    Add(0, opcode, ++unique_, nodeid, args);
    driver_->Publish();
    device_->ProcessQueue(*queue_);
    for (;;) {
      auto used = driver_->PollUsed();
      EXPECT_OK(used);
      if (!used.ok()) return -1;
      if (used->has_value()) return -ReplyHeader(0).error;
      if (!Complete()) return -1;
    }
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
  UniqueFd call_{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  UniqueFd err_{eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  std::unique_ptr<DriverRing> driver_;
  std::unique_ptr<Virtqueue> queue_;
  std::unique_ptr<FsDevice> device_;
  int pool_event_ = -1;
};

TEST_F(FsDeviceTest, FuseInterruptEndsAWaitingSetlkw) {
  HoldOnTheHost();
  Add(1, FUSE_SETLKW, 4242, file_node_, LockArgs(7));
  driver_->Publish();
  device_->ProcessQueue(*queue_);
  AwaitKernelWaiters(1);
  // FUSE_INTERRUPT naming it, as the high-priority queue brings it.
  fuse_interrupt_in interrupt{4242};
  fuse_in_header in{};
  in.opcode = FUSE_INTERRUPT;
  in.unique = 4243;
  in.len = sizeof(in) + sizeof(interrupt);
  std::string request = Bytes(in) + Bytes(interrupt);
  DescriptorChain chain;
  chain.readable.push_back({request.data(), request.size()});
  chain.readable_bytes = request.size();
  EXPECT_EQ(device_->server().Handle(chain), 0u);  // no reply to an INTERRUPT
  if (!Complete()) {
    ADD_FAILURE() << "the SETLKW still waits after FUSE_INTERRUPT";
    ReleaseOnTheHost();
    ASSERT_TRUE(Complete());
  }
  EXPECT_EQ(ReplyHeader(1).unique, 4242u);
  EXPECT_EQ(ReplyHeader(1).error, -EINTR);
  EXPECT_EQ(testing::LockWaiters(file_ino_), 0);
  // The queue serves on, and the same owner gets the lock once the host lets go.
  ReleaseOnTheHost();
  EXPECT_EQ(Call(FUSE_SETLKW, file_node_, LockArgs(7)), 0);
}

TEST_F(FsDeviceTest, StoppingTheQueueEndsEveryWaitingSetlkw) {
  HoldOnTheHost();
  // Three waiting lock requests (of one owner) for a pool of two threads: one is not even
  // started.
  for (int i = 1; i <= 3; ++i) Add(i, FUSE_SETLKW, 100 + i, file_node_, LockArgs(11));
  driver_->Publish();
  device_->ProcessQueue(*queue_);
  AwaitKernelWaiters(2);
  // GET_VRING_BASE, a reset or a disconnect stop the queue.
  auto stopped =
      std::async(std::launch::async, [&] { device_->QueueStopped(kRequestQueue, queue_.get()); });
  if (stopped.wait_for(kGiveUp) != std::future_status::ready) {
    ADD_FAILURE() << "stopping the queue waits for the lock holder";
    ReleaseOnTheHost();
    stopped.wait();
  }
  for (int i = 1; i <= 3; ++i) {
    auto used = driver_->PollUsed();
    ASSERT_OK(used);
    ASSERT_TRUE(used->has_value()) << "request " << i << " not answered";
    EXPECT_EQ(ReplyHeader(i).error, -EINTR) << "request " << i;
  }
  EXPECT_EQ(testing::LockWaiters(file_ino_), 0);
  queue_.reset();  // stopped already
}

TEST_F(FsDeviceTest, AHeadMadeAvailableAgainWhileInFlightBreaksTheQueue) {
  const uint16_t head = Add(1, FUSE_GETATTR, 55, file_node_, std::string(16, '\0'));
  driver_->PushAvailHead(head);  // the same chain again, still the device's
  driver_->Publish();
  device_->ProcessQueue(*queue_);
  EXPECT_TRUE(queue_->broken());
  eventfd_t errors = 0;
  EXPECT_EQ(eventfd_read(err_.get(), &errors), 0);
  EXPECT_EQ(errors, 1u);
}

}  // namespace
}  // namespace vhost
