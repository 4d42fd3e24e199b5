// RunDaemon's way out: before_devices_destroyed runs before the device goes, whether the daemon
// ends on a signal or fails after making it (a daemon's control socket, which calls into the
// device from a thread of its own, stops there).
#include "common/runtime/daemon.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace vhost {
namespace {

// Reports its destruction on a pipe.
class ReportingDevice : public VirtioDevice {
 public:
  explicit ReportingDevice(int pipe_fd) : pipe_fd_(pipe_fd) {}
  ~ReportingDevice() override { (void)!write(pipe_fd_, "D", 1); }
  DeviceInfo Info() const override { return DeviceInfo(); }
  QueueResult ProcessQueue(QueueContext& context) override { return QueueResult::Drained(); }

 private:
  const int pipe_fd_;
};

// Runs RunDaemon in a child whose device ('D'), hook ('H') and before_seccomp ('R', or 'F'
// when `fail` makes it fail) report on a pipe; SIGTERMs it once ready. Returns what the pipe
// said, in order, and the exit status.
std::pair<std::string, int> RunReporting(bool fail) {
  // In /tmp: Bazel's TEST_TMPDIR is too long for a socket path.
  const std::string socket = "/tmp/daemon_test_" + std::to_string(getpid());
  int pipe_fds[2];
  EXPECT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  const pid_t pid = fork();
  EXPECT_GE(pid, 0);
  if (pid == 0) {
    close(pipe_fds[0]);
    const int reports = pipe_fds[1];
    DaemonSpec spec;
    spec.program = "reporting";
    spec.create_device = [reports]() -> absl::StatusOr<std::unique_ptr<VirtioDevice>> {
      return std::make_unique<ReportingDevice>(reports);
    };
    spec.before_seccomp = [reports, fail] {
      (void)!write(reports, fail ? "F" : "R", 1);
      return fail ? absl::InternalError("told to fail") : absl::OkStatus();
    };
    spec.before_devices_destroyed = [reports] { (void)!write(reports, "H", 1); };
    std::string program = "reporting";
    std::string socket_flag = "--socket-path=" + socket;
    std::string seccomp_flag = "--seccomp=off";
    char* argv[] = {program.data(), socket_flag.data(), seccomp_flag.data(), nullptr};
    _exit(RunDaemon(3, argv, spec));
  }
  close(pipe_fds[1]);
  std::string said;
  char c;
  while (read(pipe_fds[0], &c, 1) == 1) {
    said += c;
    if (c == 'R') {
      EXPECT_EQ(kill(pid, SIGTERM), 0);  // the signals are blocked by now
    }
  }
  close(pipe_fds[0]);
  int wstatus = 0;
  EXPECT_EQ(waitpid(pid, &wstatus, 0), pid);
  unlink(socket.c_str());
  return {said, WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1};
}

TEST(DaemonTest, HookRunsBeforeTheDeviceIsDestroyedOnSignal) {
  EXPECT_EQ(RunReporting(/*fail=*/false), std::make_pair(std::string("RHD"), 0));
}

TEST(DaemonTest, HookRunsBeforeTheDeviceIsDestroyedOnFailure) {
  EXPECT_EQ(RunReporting(/*fail=*/true), std::make_pair(std::string("FHD"), 1));
}

}  // namespace
}  // namespace vhost
