#include "common/block/disk_sandbox.h"

#include <liburing.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

TEST(DiskSandboxTest, Builds) {
  SandboxPolicy policy;
  EXPECT_OK(AddDiskIo(policy).Build());
}

// seccomp cannot see io_uring_setup's flags (they are behind a pointer): were it allowed, a
// compromised daemon would make a ring without restrictions and open files or sockets with it.
TEST(DiskSandboxTest, NoNewRingAfterTheFilter) {
  SandboxPolicy policy;
  AddDiskIo(policy);
  const absl::StatusOr<std::vector<SyscallRule>> rules = policy.Build();
  ASSERT_TRUE(rules.ok()) << rules.status();
  // Nor io_uring_register: the rings are set up before the filter too.
  for (const SyscallRule& rule : *rules) {
    EXPECT_NE(rule.name, "io_uring_setup");
    EXPECT_NE(rule.name, "io_uring_register");
  }
  const pid_t pid = fork();
  if (pid == 0) {
    if (!ApplySandbox(SeccompMode::kKill, policy).ok()) _exit(100);
    io_uring_params params{};
    _exit(syscall(__NR_io_uring_setup, 8, &params) >= 0 ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) << "wait status " << status;
}

}  // namespace
}  // namespace vhost
