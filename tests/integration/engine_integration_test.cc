// The engine against a hostile front end, through a real daemon (vhost-user-rng, the simplest
// device) under its kill-mode seccomp policy: call/kick fds that are not eventfds, and guest
// memory files truncated under the daemon. Each time the daemon must neither block, spin nor
// die, report the queue broken (NEEDS_RESET), and serve the next connection.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_process.h"
#include "tests/frontend/event_fd.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonProcess;
using frontend::Frontend;
using frontend::FrontendQueue;
using frontend::GuestRam;
using frontend::QueueConfig;
using frontend::TempDir;
using testing::UsedElement;

constexpr absl::Duration kTimeout = absl::Seconds(10);
constexpr uint64_t kRamSize = 4 << 20;
constexpr uint8_t kNeedsReset = 0x40;

class EngineDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(dir_, TempDir::Create("engine"));
    socket_ = dir_->File("sock");
    DaemonProcess::Options options;
    options.binary = RunfilePath("vhost-user-rng/vhost-user-rng");
    options.args = {"--socket-path=" + socket_};
    options.socket_path = socket_;
    ASSERT_OK_AND_ASSIGN(daemon_, DaemonProcess::Start(options));
  }

  // Negotiation and memory table, no queue yet.
  void Connect() {
    ASSERT_OK_AND_ASSIGN(frontend_, Frontend::Connect(socket_));
    ASSERT_OK(frontend_->Handshake());
    ASSERT_OK(frontend_->NegotiateFeatures(Bit(kFeatureVersion1)).status());
    ASSERT_OK_AND_ASSIGN(ram_, GuestRam::Create(kRamSize));
  }
  // QEMU's sequence up to a running queue 0.
  void Open() {
    Connect();
    ASSERT_OK(frontend_->SetMemTable(*ram_));
    QueueConfig config;
    config.size = 64;
    ASSERT_OK_AND_ASSIGN(queue_, FrontendQueue::Start(frontend_.get(), ram_.get(), config));
  }

  // One request for 16 bytes of entropy, completed (seen by spinning on the used ring, so no
  // call is needed).
  void ExpectRequestServed() {
    ASSERT_OK_AND_ASSIGN(const uint64_t gpa, ram_->Allocate(16));
    ASSERT_OK(queue_->ring().AddChain({}, {{gpa, 16}}).status());
    ASSERT_OK(queue_->Submit().status());
    ASSERT_OK_AND_ASSIGN(const UsedElement used, queue_->WaitForUsed(kTimeout, /*busy_poll=*/true));
    EXPECT_EQ(used.len, 16u);
  }

  // The queue's error eventfd fired and GET_STATUS reports NEEDS_RESET.
  void ExpectQueueBroken() {
    ASSERT_OK_AND_ASSIGN(const bool readable, frontend::PollReadable(queue_->err_fd(), kTimeout));
    EXPECT_TRUE(readable) << "error eventfd not signalled";
    ASSERT_OK_AND_ASSIGN(const uint8_t status, frontend_->GetStatus());
    EXPECT_TRUE(status & kNeedsReset) << "NEEDS_RESET not reported";
  }

  void ExpectServesNextConnection() {
    ASSERT_TRUE(daemon_->IsAlive());
    queue_.reset();
    frontend_.reset();
    ram_.reset();
    Open();
    ExpectRequestServed();
    ASSERT_OK(queue_->Stop(frontend_.get()).status());
  }

  std::unique_ptr<TempDir> dir_;
  std::string socket_;
  std::unique_ptr<DaemonProcess> daemon_;
  std::unique_ptr<Frontend> frontend_;
  std::unique_ptr<GuestRam> ram_;
  std::unique_ptr<FrontendQueue> queue_;
};

// A pipe as call fd whose reader never reads: once it is full, a blocking write would hold the
// worker forever (and GET_VRING_BASE, which joins it, with it).
TEST_F(EngineDaemonTest, FullPipeAsCallFdDoesNotBlockTheWorker) {
  Open();
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd reader(pipe_fds[0]), writer(pipe_fds[1]);
  // Fill it, then hand it over in blocking mode as a hostile front end would.
  ASSERT_EQ(fcntl(writer.get(), F_SETFL, O_NONBLOCK), 0);
  const std::vector<char> chunk(4096, 'x');
  while (write(writer.get(), chunk.data(), chunk.size()) > 0) {
  }
  ASSERT_EQ(errno, EAGAIN);
  ASSERT_EQ(fcntl(writer.get(), F_SETFL, 0), 0);
  ASSERT_OK(frontend_->SetVringCall(0, writer.get()));

  for (int i = 0; i < 3; ++i) ExpectRequestServed();
  ASSERT_OK_AND_ASSIGN(const uint32_t base, queue_->Stop(frontend_.get()));
  EXPECT_EQ(base, 3u);
  ExpectServesNextConnection();
}

// The read end of a pipe whose write end is closed as kick fd: it is readable (EOF) and hung up
// for good. Polling it level-triggered would spin a CPU; the queue must break instead.
TEST_F(EngineDaemonTest, HungUpKickFdBreaksTheQueueInsteadOfSpinning) {
  Open();
  ExpectRequestServed();
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd reader(pipe_fds[0]);
  close(pipe_fds[1]);
  ASSERT_OK(frontend_->SetVringKick(0, reader.get()));
  ExpectQueueBroken();
  ASSERT_OK(queue_->Stop(frontend_.get()).status());  // the worker still answers
  ExpectServesNextConnection();
}

// The front end shrinks its guest RAM file under a running queue: the daemon's next access to
// the ring would raise SIGBUS. The daemon must survive it, break the queue, and go on serving.
// Nothing was served before, so the zero pages that replace the lost ones look like an empty
// ring: only the fault itself can break the queue.
TEST_F(EngineDaemonTest, TruncatedGuestMemoryBreaksTheQueueNotTheDaemon) {
  Open();
  // From here on this process must not touch the ring memory either.
  ASSERT_EQ(ftruncate(ram_->region(0).fd.get(), 0), 0);
  ASSERT_OK(queue_->Kick());
  ExpectQueueBroken();
  EXPECT_TRUE(daemon_->IsAlive());
  ASSERT_OK(queue_->Stop(frontend_.get()).status());
  ExpectServesNextConnection();
}

// A memory file shorter than the region it backs is refused when the table arrives.
TEST_F(EngineDaemonTest, MemoryFileShorterThanItsRegionIsRefused) {
  Connect();
  ASSERT_EQ(ftruncate(ram_->region(0).fd.get(), kRamSize / 2), 0);
  EXPECT_FALSE(frontend_->SetMemTable(*ram_).ok());
  ExpectServesNextConnection();
}

// A daemon started as root (as the tests run) serves with no capability left: not in its
// effective, permitted, inheritable or ambient sets, nor in its bounding set.
TEST_F(EngineDaemonTest, ServesWithoutCapabilities) {
  Open();
  ExpectRequestServed();  // serving: past the point where capabilities are dropped
  std::ifstream status("/proc/" + std::to_string(daemon_->pid()) + "/status");
  ASSERT_TRUE(status.is_open());
  int seen = 0;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Cap", 0) != 0) continue;
    ++seen;
    EXPECT_EQ(line.substr(line.find(':') + 1), "\t0000000000000000") << line;
  }
  EXPECT_EQ(seen, 5);  // CapInh, CapPrm, CapEff, CapBnd, CapAmb
}

}  // namespace
}  // namespace vhost
