#include "tests/frontend/daemon_process.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

extern char** environ;

namespace vhost {
namespace frontend {

absl::StatusOr<std::unique_ptr<TempDir>> TempDir::Create(const std::string& prefix) {
  std::string templ = absl::StrCat("/tmp/", prefix, "-XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) return absl::ErrnoToStatus(errno, "mkdtemp");
  return std::unique_ptr<TempDir>(new TempDir(templ));
}

TempDir::~TempDir() {
  if (DIR* dir = opendir(path_.c_str())) {
    while (dirent* entry = readdir(dir)) {
      const std::string name = entry->d_name;
      if (name != "." && name != "..") unlink(File(name).c_str());
    }
    closedir(dir);
  }
  rmdir(path_.c_str());
}

namespace {

std::string Env(const char* name) {
  const char* value = getenv(name);
  return value == nullptr ? "" : value;
}

// The command line that runs `options`, after the hooks that run the same tests against another
// build of the daemons (tests/integration/arm64_test.sh: the arm64 binaries under qemu-user):
// VHOST_USER_DAEMON_DIR, a folder whose file of the binary's name replaces it; such a
// replacement runs under VHOST_USER_DAEMON_WRAPPER (a program and space-separated arguments)
// with VHOST_USER_DAEMON_EXTRA_ARGS (space-separated flags) appended: the last of a flag wins.
// Other programs a test starts (/bin/sh, setpriv) run as they are.
std::vector<std::string> CommandLine(const DaemonProcess::Options& options) {
  const std::string dir = Env("VHOST_USER_DAEMON_DIR");
  const std::string replacement =
      absl::StrCat(dir, "/", options.binary.substr(options.binary.rfind('/') + 1));
  if (dir.empty() || access(replacement.c_str(), X_OK) != 0) {
    std::vector<std::string> args = {options.binary};
    args.insert(args.end(), options.args.begin(), options.args.end());
    return args;
  }
  std::vector<std::string> args =
      absl::StrSplit(Env("VHOST_USER_DAEMON_WRAPPER"), ' ', absl::SkipEmpty());
  args.push_back(replacement);
  args.insert(args.end(), options.args.begin(), options.args.end());
  for (absl::string_view extra :
       absl::StrSplit(Env("VHOST_USER_DAEMON_EXTRA_ARGS"), ' ', absl::SkipEmpty())) {
    args.emplace_back(extra);
  }
  return args;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DaemonProcess>> DaemonProcess::Start(const Options& options) {
  std::vector<std::string> args = CommandLine(options);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty, all_default;
  sigemptyset(&empty);
  sigemptyset(&all_default);
  sigaddset(&all_default, SIGPIPE);
  sigaddset(&all_default, SIGTERM);
  sigaddset(&all_default, SIGINT);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setsigdefault(&attr, &all_default);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  const int error = posix_spawnp(&pid, args[0].c_str(), nullptr, &attr, argv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (error != 0) return absl::ErrnoToStatus(error, absl::StrCat("spawn ", options.binary));
  std::unique_ptr<DaemonProcess> daemon(new DaemonProcess(pid, options.stop_grace));

  if (options.socket_path.empty()) return daemon;
  const absl::Time deadline = absl::Now() + options.startup_timeout;
  for (;;) {
    struct stat st;
    if (stat(options.socket_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) return daemon;
    if (!daemon->IsAlive()) {
      return absl::FailedPreconditionError(absl::StrCat(options.binary, " exited (wait status 0x",
                                                        absl::Hex(daemon->exit_status()),
                                                        ") before creating ", options.socket_path));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat(options.binary, " did not create ", options.socket_path));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

DaemonProcess::~DaemonProcess() { Stop(grace_).IgnoreError(); }

bool DaemonProcess::IsAlive() {
  if (reaped_) return false;
  int status;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = status;
    return false;
  }
  if (r < 0 && errno == ECHILD) {
    reaped_ = true;
    return false;
  }
  return true;
}

absl::StatusOr<int> DaemonProcess::Wait(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  // A pidfd turns readable when the process exits: woken at once, not at the next poll tick
  // (what the crash-restart benchmark times starts there).
  const int pidfd = reaped_ ? -1 : static_cast<int>(syscall(SYS_pidfd_open, pid_, 0));
  while (IsAlive()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      if (pidfd >= 0) close(pidfd);
      return absl::DeadlineExceededError("daemon still running");
    }
    if (pidfd >= 0) {
      pollfd ready{pidfd, POLLIN, 0};
      poll(&ready, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    } else {
      absl::SleepFor(std::min(left, absl::Milliseconds(5)));
    }
  }
  if (pidfd >= 0) close(pidfd);
  return status_;
}

absl::Status DaemonProcess::Signal(int signal) {
  if (reaped_) return absl::FailedPreconditionError("daemon already exited");
  if (kill(-pid_, signal) != 0) return absl::ErrnoToStatus(errno, "kill");
  return absl::OkStatus();
}

absl::StatusOr<int> DaemonProcess::Stop(absl::Duration grace) {
  if (!reaped_) {
    kill(-pid_, SIGTERM);
    absl::StatusOr<int> status = Wait(grace);
    if (status.ok()) {
      kill(-pid_, SIGKILL);  // anything the daemon left behind in its group
      return status;
    }
    kill(-pid_, SIGKILL);
    if (waitpid(pid_, &status_, 0) == pid_) reaped_ = true;
  }
  return status_;
}

}  // namespace frontend
}  // namespace vhost
