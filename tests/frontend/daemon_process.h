// Runs a back-end daemon for a test: spawned in its own process group, waited for until its
// socket appears, and killed (the whole group) when the object goes away. The environment can
// redirect it to another build of the daemons run through a wrapper (VHOST_USER_DAEMON_DIR,
// _WRAPPER, _EXTRA_ARGS: see daemon_process.cc), e.g. the arm64 ones under qemu-user.
#ifndef TESTS_FRONTEND_DAEMON_PROCESS_H_
#define TESTS_FRONTEND_DAEMON_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace vhost {
namespace frontend {

// A fresh directory under /tmp, removed (with the files directly in it) on destruction. Unix
// socket paths are limited to 108 bytes, and Bazel's TEST_TMPDIR is long, hence /tmp.
class TempDir {
 public:
  static absl::StatusOr<std::unique_ptr<TempDir>> Create(const std::string& prefix = "vhu");
  ~TempDir();
  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

class DaemonProcess {
 public:
  struct Options {
    std::string binary;             // path (or a name looked up in PATH)
    std::vector<std::string> args;  // without argv[0]
    std::string socket_path;        // waited for if not empty
    absl::Duration startup_timeout = absl::Seconds(10);
    absl::Duration stop_grace = absl::Seconds(5);  // SIGTERM to SIGKILL on destruction
  };

  // Spawns the daemon and waits for `socket_path` to become a socket. Fails (after killing it)
  // if it exits or the socket does not appear in time.
  static absl::StatusOr<std::unique_ptr<DaemonProcess>> Start(const Options& options);
  // SIGTERM to the group, SIGKILL after the grace period, then reaps.
  ~DaemonProcess();

  pid_t pid() const { return pid_; }
  // False once the daemon has exited (it is reaped then; exit_status() tells how).
  bool IsAlive();
  // The wait status of an exited daemon (see WIFEXITED etc.), or -1 while it runs.
  int exit_status() const { return status_; }
  // Waits up to `timeout` for it to exit; returns the wait status, DeadlineExceeded otherwise.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // Sends `signal` to the whole process group.
  absl::Status Signal(int signal);
  // SIGTERM, wait up to `grace`, then SIGKILL; returns the wait status.
  absl::StatusOr<int> Stop(absl::Duration grace);

 private:
  DaemonProcess(pid_t pid, absl::Duration grace) : pid_(pid), grace_(grace) {}
  pid_t pid_;
  absl::Duration grace_;
  int status_ = -1;
  bool reaped_ = false;
};

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_DAEMON_PROCESS_H_
