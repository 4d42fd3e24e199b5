#include "common/runtime/socket_activation.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace vhost {
namespace {

// The variable's value; `present` says whether it is set at all.
std::string GetEnv(const char* name, bool* present) {
  const char* value = getenv(name);
  *present = value != nullptr;
  return value != nullptr ? value : "";
}

int SocketOption(int fd, int option, bool* ok) {
  int value = 0;
  socklen_t len = sizeof(value);
  *ok = getsockopt(fd, SOL_SOCKET, option, &value, &len) == 0;
  return value;
}

}  // namespace

absl::Status CheckListeningUnixSocket(int fd, const std::string& source) {
  bool ok = false;
  const int accepting = SocketOption(fd, SO_ACCEPTCONN, &ok);
  if (!ok || !accepting) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", fd, " is not a listening socket"));
  }
  const int domain = SocketOption(fd, SO_DOMAIN, &ok);
  const int type = ok ? SocketOption(fd, SO_TYPE, &ok) : 0;
  if (!ok || domain != AF_UNIX || type != SOCK_STREAM) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", fd, " is not a Unix stream socket (vhost-user needs one)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int> TakeActivatedListener(int first_fd) {
  bool has_pid = false, has_fds = false;
  const std::string pid_text = GetEnv("LISTEN_PID", &has_pid);
  const std::string fds_text = GetEnv("LISTEN_FDS", &has_fds);
  // LISTEN_FDNAMES would name the one socket (FileDescriptorName=); the daemon needs no name.
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  if (!has_fds || !has_pid) return -1;
  int pid = 0;
  if (!absl::SimpleAtoi(pid_text, &pid) || pid <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("LISTEN_PID: not a process id: '", pid_text, "'"));
  }
  if (pid != getpid()) return -1;  // meant for the process that started us
  int count = 0;
  if (!absl::SimpleAtoi(fds_text, &count) || count < 0) {
    return absl::InvalidArgumentError(absl::StrCat("LISTEN_FDS: not a count: '", fds_text, "'"));
  }
  if (count == 0) return -1;
  if (count > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("LISTEN_FDS=", count,
                     ": this daemon serves one socket; give its socket unit one ListenStream="));
  }
  if (absl::Status s = CheckListeningUnixSocket(first_fd, "LISTEN_FDS"); !s.ok()) return s;
  // As sd_listen_fds does: the socket is ours, not a program's we might start.
  const int flags = fcntl(first_fd, F_GETFD);
  if (flags < 0 || fcntl(first_fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    return absl::ErrnoToStatus(errno, "fcntl FD_CLOEXEC on the activated socket");
  }
  return first_fd;
}

std::string DescribeListener(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
      addr.sun_family == AF_UNIX && len > offsetof(sockaddr_un, sun_path) &&
      addr.sun_path[0] != '\0') {
    return std::string(addr.sun_path,
                       strnlen(addr.sun_path, len - offsetof(sockaddr_un, sun_path)));
  }
  return absl::StrCat("fd ", fd);
}

}  // namespace vhost
