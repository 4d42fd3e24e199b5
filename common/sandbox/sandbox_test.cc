// Runs the real seccomp policy in forked children and checks what it allows and what kills.
#include "common/sandbox/sandbox.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

using ::vhost::testing::StatusIs;

// Runs `body` in a child under the sandbox; returns the child's wait status.
int RunSandboxed(SeccompMode mode, const SandboxPolicy& policy, std::function<int()> body) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (!ApplySandbox(mode, policy).ok()) _exit(100);
    _exit(body());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

bool KilledBySigsys(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS; }
bool ExitedWith(int status, int code) { return WIFEXITED(status) && WEXITSTATUS(status) == code; }

// Like RunSandboxed, and returns what the child wrote to stderr as well.
int RunSandboxedCapturingStderr(SeccompMode mode, const SandboxPolicy& policy,
                                std::function<int()> body, std::string* err) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    dup2(pipe_fds[1], STDERR_FILENO);
    if (!ApplySandbox(mode, policy).ok()) _exit(100);
    _exit(body());
  }
  close(pipe_fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof(buf))) > 0) err->append(buf, n);  // until it dies
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// A process that stays around as the target of signals and rlimit changes, not our own.
class OtherProcess {
 public:
  OtherProcess() : pid_(fork()) {
    if (pid_ == 0) {
      pause();
      _exit(0);
    }
  }
  ~OtherProcess() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

 private:
  const pid_t pid_;
};

TEST(SandboxTest, AllowsWhatTheEngineNeeds) {
  const int ok = RunSandboxed(SeccompMode::kKill, {}, [] {
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return 1;
    std::thread t([] {});  // threads are allowed
    t.join();
    if (write(STDERR_FILENO, "", 0) != 0) return 2;
    // Opening files is refused politely, not fatally.
    if (open("/etc/hostname", O_RDONLY) != -1 || errno != ENOENT) return 3;
    return 0;
  });
  EXPECT_TRUE(ExitedWith(ok, 0)) << ok;
}

TEST(SandboxTest, ContendedAbslMutexSurvives) {
  // Contention sends absl::Mutex down its slow path, which reads the thread's priority.
  const int status = RunSandboxed(SeccompMode::kKill, SandboxPolicy(), [] {
    absl::Mutex mutex;
    int counter = 0;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < 20000; ++i) {
          absl::MutexLock lock(&mutex);
          ++counter;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    sched_param param;
    int policy;
    // What absl calls on the slow path, called directly: contention alone may not reach it.
    return pthread_getschedparam(pthread_self(), &policy, &param) == 0 && counter == 80000 ? 0 : 1;
  });
  EXPECT_TRUE(ExitedWith(status, 0)) << status;
}

TEST(SandboxTest, KillsForbiddenSyscalls) {
  EXPECT_TRUE(KilledBySigsys(RunSandboxed(
      SeccompMode::kKill, {}, [] { return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 0 : 1; })));
  EXPECT_TRUE(KilledBySigsys(RunSandboxed(SeccompMode::kKill, {}, [] {
    return mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) ==
                   MAP_FAILED
               ? 1
               : 0;
  })));
  EXPECT_TRUE(KilledBySigsys(RunSandboxed(SeccompMode::kKill, {}, [] {
    const pid_t child = fork();  // a new process, not a thread
    if (child == 0) _exit(0);
    return 0;
  })));
  EXPECT_TRUE(KilledBySigsys(RunSandboxed(SeccompMode::kKill, {}, [] {
    char* argv[] = {nullptr};
    execve("/bin/true", argv, argv);
    return 1;
  })));
}

TEST(SandboxTest, DeviceAdditionsAreAllowed) {
  EXPECT_TRUE(ExitedWith(RunSandboxed(SeccompMode::kKill, SandboxPolicy().Allow("socket"),
                                      [] { return socket(AF_UNIX, SOCK_STREAM, 0) >= 0 ? 0 : 1; }),
                         0));
  EXPECT_THAT(SandboxPolicy().Allow("no_such_syscall").Build(),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ApplySandbox(SeccompMode::kKill, SandboxPolicy().Allow("no_such_syscall")),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// A device's groups: files opened relative to a directory, written at an offset.
TEST(SandboxTest, DeviceGroupsAreAllowed) {
  const SandboxPolicy policy = SandboxPolicy().FileIoAt().FileAttributes().FileData();
  EXPECT_TRUE(ExitedWith(RunSandboxed(SeccompMode::kKill, policy,
                                      [] {
                                        const int fd = openat(AT_FDCWD, "/dev/null", O_WRONLY);
                                        if (fd < 0) return 1;
                                        if (pwrite(fd, "x", 1, 0) != 1) return 2;
                                        return fsync(fd) == 0 || errno == EINVAL ? 0 : 3;
                                      }),
                         0));
  // Without them, opening fails politely and writing at an offset is forbidden.
  EXPECT_TRUE(ExitedWith(
      RunSandboxed(
          SeccompMode::kKill, {},
          [] { return openat(AT_FDCWD, "/dev/null", O_WRONLY) == -1 && errno == ENOENT ? 0 : 1; }),
      0));
  EXPECT_TRUE(KilledBySigsys(RunSandboxed(
      SeccompMode::kKill, {}, [] { return pwrite(STDERR_FILENO, "", 0, 0) == 0 ? 0 : 1; })));
}

TEST(SandboxTest, OnlyTheAllowedIoctlRequests) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  const int fd = fds[0];
  const SandboxPolicy policy = SandboxPolicy().AllowIoctl(FIONREAD);
  EXPECT_TRUE(ExitedWith(RunSandboxed(SeccompMode::kKill, policy,
                                      [fd] {
                                        int n = -1;
                                        return ioctl(fd, FIONREAD, &n) == 0 && n == 0 ? 0 : 1;
                                      }),
                         0));
  EXPECT_TRUE(KilledBySigsys(
      RunSandboxed(SeccompMode::kKill, policy, [fd] { return ioctl(fd, FIOCLEX) == 0 ? 0 : 1; })));
  close(fds[0]);
  close(fds[1]);
}

// Each syscall has one place in a policy: a second is a mistake, reported with both places.
TEST(SandboxTest, RejectsSyscallsAddedTwice) {
  EXPECT_OK(SandboxPolicy().Build());
  // Twice by a device.
  absl::Status twice = SandboxPolicy().Allow("connect").Allow("connect").Build().status();
  EXPECT_THAT(twice, StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(twice.message(),
            "seccomp policy: connect from Allow is already there as connect from Allow");
  // Already in the engine's base.
  absl::Status in_base = SandboxPolicy().Allow("lseek").Build().status();
  EXPECT_EQ(in_base.message(),
            "seccomp policy: lseek from Allow is already there as lseek from DescriptorIo");
  // A group twice, or a group and a syscall it holds.
  EXPECT_THAT(SandboxPolicy().FileData().FileData().Build(),
              StatusIs(absl::StatusCode::kAlreadyExists));
  absl::Status in_group = SandboxPolicy().FileIoAt().Allow("openat").Build().status();
  EXPECT_EQ(in_group.message(),
            "seccomp policy: openat from Allow is already there as openat from FileIoAt");
  // A group of the base added by a device.
  EXPECT_THAT(SandboxPolicy().EventLoop().Build(), StatusIs(absl::StatusCode::kAlreadyExists));
  // Allowed always and in some form: the form is redundant.
  absl::Status both =
      SandboxPolicy().Allow("socket").AllowIf({"socket", {Arg(0) == AF_UNIX}}).Build().status();
  EXPECT_EQ(both.message(),
            "seccomp policy: socket(arg0 == 0x1) from AllowIf is already there as socket from "
            "Allow");
  // The same form twice.
  absl::Status ioctl = SandboxPolicy().AllowIoctl(0x1234).AllowIoctl(0x1234).Build().status();
  EXPECT_EQ(ioctl.message(),
            "seccomp policy: ioctl(arg1 == 0x1234) from AllowIoctl is already there as "
            "ioctl(arg1 == 0x1234) from AllowIoctl");
  // Different forms of one syscall are alternatives.
  EXPECT_OK(SandboxPolicy().AllowIoctl(0x1234).AllowIoctl(0x5678).Build());
  EXPECT_OK(SandboxPolicy()
                .AllowIf({"socket", {Arg(0) == AF_UNIX, (Arg(1) & kSocketTypeMask) == SOCK_STREAM}})
                .AllowIf({"socket", {Arg(0) == AF_UNIX, (Arg(1) & kSocketTypeMask) == 5}})
                .Build());
}

// A policy with a duplicate is never installed: the daemon refuses to start.
TEST(SandboxTest, DuplicatesAreNotApplied) {
  EXPECT_THAT(ApplySandbox(SeccompMode::kKill, SandboxPolicy().Allow("read")),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(SandboxTest, ArgumentConditionsAllowOnlyMatchingCalls) {
  SandboxPolicy policy = SandboxPolicy().AllowIf({"socket", {Arg(0) == AF_UNIX}});
  EXPECT_TRUE(ExitedWith(RunSandboxed(SeccompMode::kKill, policy,
                                      [] { return socket(AF_UNIX, SOCK_STREAM, 0) >= 0 ? 0 : 1; }),
                         0));
  EXPECT_TRUE(KilledBySigsys(RunSandboxed(
      SeccompMode::kKill, policy, [] { return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 0 : 1; })));
  // Masked conditions: the socket type without its flags.
  policy = SandboxPolicy().AllowIf(
      {"socket", {Arg(0) == AF_UNIX, (Arg(1) & kSocketTypeMask) == SOCK_STREAM}});
  EXPECT_TRUE(ExitedWith(
      RunSandboxed(SeccompMode::kKill, policy,
                   [] { return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) >= 0 ? 0 : 1; }),
      0));
  EXPECT_TRUE(KilledBySigsys(RunSandboxed(
      SeccompMode::kKill, policy, [] { return socket(AF_UNIX, SOCK_DGRAM, 0) >= 0 ? 0 : 1; })));
}

// tgkill and prlimit64 reach only the daemon itself: its own threads, its own limits.
TEST(SandboxTest, SignalsAndLimitsOnlyForTheDaemonItself) {
  OtherProcess other;
  const pid_t other_pid = other.pid();
  EXPECT_TRUE(ExitedWith(RunSandboxed(SeccompMode::kKill, {},
                                      [] {
                                        // glibc's getrlimit is prlimit64(0, ...).
                                        rlimit limit;
                                        if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1;
                                        if (prlimit(getpid(), RLIMIT_NOFILE, nullptr, &limit) != 0)
                                          return 2;
                                        // pthread_kill is tgkill(getpid(), tid, ...).
                                        std::thread t([] {});
                                        if (pthread_kill(pthread_self(), 0) != 0) return 3;
                                        t.join();
                                        return 0;
                                      }),
                         0));
  EXPECT_TRUE(KilledBySigsys(RunSandboxed(SeccompMode::kKill, {}, [other_pid] {
    return syscall(SYS_tgkill, other_pid, other_pid, 0) == 0 ? 0 : 1;
  })));
  EXPECT_TRUE(KilledBySigsys(RunSandboxed(SeccompMode::kKill, {}, [other_pid] {
    rlimit limit;
    return prlimit(other_pid, RLIMIT_NOFILE, nullptr, &limit) == 0 ? 0 : 1;
  })));
}

// A forbidden syscall does not kill silently: the process names it on stderr, then dies of
// SIGSYS as before. In a sanitizer build this is what keeps a report's cause visible.
TEST(SandboxTest, ForbiddenSyscallIsNamedOnStderrBeforeTheProcessDies) {
  std::string err;
  const int status = RunSandboxedCapturingStderr(
      SeccompMode::kKill, {}, [] { return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 0 : 1; }, &err);
  EXPECT_TRUE(KilledBySigsys(status)) << status;
  EXPECT_NE(err.find("forbidden syscall 41 (socket)"), std::string::npos) << err;
}

#if defined(__SANITIZE_ADDRESS__)
// Sanitizer builds: a report made under the filter is printed in full, not cut short by it.
TEST(SandboxTest, SanitizerReportsSurviveTheFilter) {
  std::string err;
  const int status = RunSandboxedCapturingStderr(
      SeccompMode::kKill, {},
      [] {
        volatile char* p = new char[8];
        delete[] p;
        return static_cast<int>(p[0]);  // a use after free, reported by AddressSanitizer
      },
      &err);
  EXPECT_TRUE(ExitedWith(status, 1)) << status << "\n" << err;
  EXPECT_NE(err.find("ERROR: AddressSanitizer: heap-use-after-free"), std::string::npos) << err;
  EXPECT_NE(err.find("SUMMARY: AddressSanitizer"), std::string::npos) << err;
  EXPECT_EQ(err.find("forbidden syscall"), std::string::npos) << err;
}
#endif

// The capability sets of this process, as /proc/self/status shows them (hex masks).
std::string CapabilitySets() {
  std::ifstream status("/proc/self/status");
  std::string sets;
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Cap", 0) == 0) sets += line + "\n";
  }
  return sets;
}

TEST(SandboxTest, DropsEveryCapabilityButTheKeptOnes) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to hold capabilities";  // CI runs as root
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    if (!DropCapabilities({CAP_DAC_OVERRIDE}).ok()) _exit(1);
    const std::string sets = CapabilitySets();
    _exit(write(pipe_fds[1], sets.data(), sets.size()) == static_cast<ssize_t>(sets.size()) ? 0
                                                                                            : 2);
  }
  close(pipe_fds[1]);
  std::string sets;
  char buf[512];
  for (ssize_t n; (n = read(pipe_fds[0], buf, sizeof(buf))) > 0;) sets.append(buf, n);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(ExitedWith(status, 0));
  // CAP_DAC_OVERRIDE is bit 1.
  EXPECT_EQ(sets,
            "CapInh:\t0000000000000000\nCapPrm:\t0000000000000002\n"
            "CapEff:\t0000000000000002\nCapBnd:\t0000000000000002\n"
            "CapAmb:\t0000000000000000\n");
}

TEST(SandboxTest, LogAndOffModesDoNotKill) {
  for (SeccompMode mode : {SeccompMode::kLog, SeccompMode::kOff}) {
    EXPECT_TRUE(ExitedWith(RunSandboxed(mode, {},
                                        [] {
                                          const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
                                          return fd >= 0 ? 0 : 1;
                                        }),
                           0));
  }
}

TEST(SandboxTest, ParsesModes) {
  EXPECT_EQ(*ParseSeccompMode("kill"), SeccompMode::kKill);
  EXPECT_EQ(*ParseSeccompMode("log"), SeccompMode::kLog);
  EXPECT_EQ(*ParseSeccompMode("off"), SeccompMode::kOff);
  EXPECT_THAT(ParseSeccompMode("maybe"), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace vhost
