// The engine against a hostile front end, through a real daemon (vhost-user-rng, the simplest
// device) under its kill-mode seccomp policy: call/kick fds that are not eventfds, and guest
// memory files truncated under the daemon. Each time the daemon must neither block, spin nor
// die, report the queue broken (NEEDS_RESET), and serve the next connection.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/runtime/daemon.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/event_fd.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"
#include "tests/integration/runfiles.h"

namespace vhost {
namespace {

using frontend::DaemonProcess;
using frontend::DaemonSession;
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
    ASSERT_OK_AND_ASSIGN(session_, DaemonSession::Create("engine"));
    socket_ = session_->socket();
    ASSERT_OK(session_->Start(RunfilePath("vhost-user-rng/vhost-user-rng"),
                              {"--socket-path=" + socket_}));
  }
  DaemonProcess* daemon() { return session_->daemon(); }

  // The front end's steps are its own here (Connect stops before the memory table, tests break
  // what comes after), not DeviceConnection's.

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
    ASSERT_TRUE(daemon()->IsAlive());
    queue_.reset();
    frontend_.reset();
    ram_.reset();
    Open();
    ExpectRequestServed();
    ASSERT_OK(queue_->Stop(frontend_.get()).status());
  }

  std::unique_ptr<DaemonSession> session_;
  std::string socket_;
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
  EXPECT_TRUE(daemon()->IsAlive());
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
  std::ifstream status("/proc/" + std::to_string(daemon()->pid()) + "/status");
  ASSERT_TRUE(status.is_open());
  int seen = 0;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Cap", 0) != 0) continue;
    ++seen;
    EXPECT_EQ(line.substr(line.find(':') + 1), "\t0000000000000000") << line;
  }
  EXPECT_EQ(seen, 5);  // CapInh, CapPrm, CapEff, CapBnd, CapAmb
}

// What the daemon of SighupReloadsEveryInstance writes once it listens (not an instance index).
constexpr uint8_t kReady = 0xff;

// A device that reports each Reload() by writing its index to a pipe.
class ReloadReporter : public VirtioDevice {
 public:
  ReloadReporter(int index, int pipe_fd) : index_(index), pipe_fd_(pipe_fd) {}
  DeviceInfo Info() const override { return DeviceInfo(); }
  QueueResult ProcessQueue(QueueContext& context) override { return QueueResult::Drained(); }
  void Reload() override {
    const uint8_t byte = index_;
    (void)!write(pipe_fd_, &byte, 1);
  }

 private:
  const int index_;
  const int pipe_fd_;
};

// With --socket-count=2 the main thread owns the signalfd: SIGHUP must reach every instance's
// device, as it reaches the one device of a single-socket daemon.
TEST(MultiInstanceDaemonTest, SighupReloadsEveryInstance) {
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<TempDir> dir, TempDir::Create("sighup"));
  const std::string socket = dir->File("s");
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipe_fds[0]);
    const int reports = pipe_fds[1];
    DaemonSpec spec;
    spec.program = "reload-reporter";
    spec.create_instance = [reports](int index,
                                     int count) -> absl::StatusOr<std::unique_ptr<VirtioDevice>> {
      return std::make_unique<ReloadReporter>(index, reports);
    };
    // Runs once every socket listens, with the signals already blocked: SIGHUP may come.
    spec.before_seccomp = [reports] {
      const uint8_t ready = kReady;
      return write(reports, &ready, 1) == 1 ? absl::OkStatus()
                                            : absl::ErrnoToStatus(errno, "ready");
    };
    std::string socket_flag = "--socket-path=" + socket;
    std::string program = "reload-reporter";
    std::string count_flag = "--socket-count=2";
    std::string seccomp_flag = "--seccomp=off";
    char* argv[] = {program.data(), socket_flag.data(), count_flag.data(), seccomp_flag.data(),
                    nullptr};
    _exit(RunDaemon(4, argv, spec));
  }
  close(pipe_fds[1]);
  const absl::Time deadline = absl::Now() + kTimeout;
  // The next byte the daemon reports, or -1 at the deadline.
  auto next_report = [&]() -> int {
    pollfd pfd = {pipe_fds[0], POLLIN, 0};
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    uint8_t byte;
    if (left <= 0 || poll(&pfd, 1, static_cast<int>(left)) <= 0) return -1;
    return read(pipe_fds[0], &byte, 1) == 1 ? byte : -1;
  };
  ASSERT_EQ(next_report(), kReady) << "the daemon never got to listen";
  struct stat st;
  ASSERT_EQ(stat((socket + "0").c_str(), &st), 0);
  ASSERT_EQ(stat((socket + "1").c_str(), &st), 0);

  ASSERT_EQ(kill(pid, SIGHUP), 0);
  std::set<int> reloaded;
  while (reloaded.size() < 2) {
    const int index = next_report();
    if (index < 0) break;
    reloaded.insert(index);
  }
  EXPECT_EQ(reloaded, (std::set<int>{0, 1})) << "SIGHUP did not reach every instance's Reload()";

  // Still serving after the reload: SIGTERM ends it cleanly.
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
  close(pipe_fds[0]);
}

}  // namespace
}  // namespace vhost
