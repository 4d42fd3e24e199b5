// Runs the real seccomp policy in forked children and checks what it allows and what kills.
#include "common/sandbox.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <thread>

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
  SandboxPolicy policy;
  policy.extra_syscalls = {"socket"};
  EXPECT_TRUE(ExitedWith(RunSandboxed(SeccompMode::kKill, policy,
                                      [] { return socket(AF_UNIX, SOCK_STREAM, 0) >= 0 ? 0 : 1; }),
                         0));
  policy.extra_syscalls = {"no_such_syscall"};
  EXPECT_THAT(ApplySandbox(SeccompMode::kKill, policy),
              StatusIs(absl::StatusCode::kInvalidArgument));
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
