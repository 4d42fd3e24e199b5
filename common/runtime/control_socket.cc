#include "common/runtime/control_socket.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/runtime/unix_listener.h"

namespace vhost {
namespace {
constexpr size_t kMaxLine = 4096;  // no command is longer: a client sending more is not ours
}  // namespace

absl::StatusOr<std::unique_ptr<ControlSocket>> ControlSocket::Start(const std::string& path,
                                                                    const std::string& flag,
                                                                    Handler handler) {
  return Start(path, flag,
               [handler = std::move(handler)](absl::string_view line, std::vector<UniqueFd>&) {
                 return handler(line);
               });
}

absl::StatusOr<std::unique_ptr<ControlSocket>> ControlSocket::Start(const std::string& path,
                                                                    const std::string& flag,
                                                                    FdHandler handler) {
  absl::StatusOr<UniqueFd> listener = Listen(path, flag);
  if (!listener.ok()) return listener.status();
  return std::unique_ptr<ControlSocket>(
      new ControlSocket(*std::move(listener), std::move(handler)));
}

absl::StatusOr<UniqueFd> ControlSocket::Listen(const std::string& path, const std::string& flag) {
  return ListenOnUnixSocket(path, flag, /*backlog=*/4);
}

std::unique_ptr<ControlSocket> ControlSocket::StartOn(UniqueFd listener, Handler handler) {
  return std::unique_ptr<ControlSocket>(new ControlSocket(
      std::move(listener),
      [handler = std::move(handler)](absl::string_view line, std::vector<UniqueFd>&) {
        return handler(line);
      }));
}

ControlSocket::ControlSocket(UniqueFd listener, FdHandler handler)
    : listener_(std::move(listener)),
      stop_(eventfd(0, EFD_CLOEXEC)),
      handler_(std::move(handler)),
      thread_([this] { Serve(); }) {}

ControlSocket::~ControlSocket() {
  eventfd_write(stop_.get(), 1);
  thread_.join();
}

void ControlSocket::Serve() {
  for (;;) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    UniqueFd client(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (client) ServeClient(client.get());
  }
}

void ControlSocket::ServeClient(int client) {
  std::string pending;
  std::vector<UniqueFd> fds;  // come with the next line
  char chunk[512];
  for (;;) {
    pollfd polled[2] = {{client, POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (poll(polled, 2, -1) < 0 && errno != EINTR) return;
    if (polled[1].revents) return;
    iovec iov = {chunk, sizeof(chunk)};
    alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
    msghdr msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    const ssize_t n = recvmsg(client, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0) return;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
        // Kept only up to kMaxFds waiting at once: a client cannot make the daemon hold more.
        if (fds.size() < kMaxFds) {
          fds.emplace_back(fd);
        } else {
          close(fd);
        }
      }
    }
    pending.append(chunk, n);
    for (size_t end; (end = pending.find('\n')) != std::string::npos;) {
      absl::string_view line(pending.data(), end);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      absl::StatusOr<std::string> answer = handler_(line, fds);
      fds.clear();
      pending.erase(0, end + 1);
      const std::string reply = !answer.ok()
                                    ? absl::StrCat("error: ", answer.status().message(), "\n")
                                : answer->empty() ? std::string("ok\n")
                                                  : absl::StrCat("ok ", *answer, "\n");
      (void)send(client, reply.data(), reply.size(), MSG_NOSIGNAL);
    }
    if (pending.size() > kMaxLine) return;
  }
}

absl::StatusOr<std::string> SendControlLine(const std::string& path, absl::string_view line,
                                            const std::vector<UniqueFd>& fds) {
  if (fds.size() > ControlSocket::kMaxFds) {
    return absl::InvalidArgumentError("too many descriptors for one line");
  }
  UniqueFd socket(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": path too long for a socket"));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  if (!socket || connect(socket.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return absl::UnavailableError(absl::StrCat(path, ": ", strerror(errno)));
  }
  std::string text = absl::StrCat(line, "\n");
  iovec iov = {text.data(), text.size()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(ControlSocket::kMaxFds * sizeof(int))] = {};
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
    for (size_t i = 0; i < fds.size(); ++i) {
      const int fd = fds[i].get();
      std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(fd));
    }
  }
  if (sendmsg(socket.get(), &msg, MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
    return absl::UnavailableError(absl::StrCat(path, ": ", strerror(errno)));
  }
  std::string answer;
  char c;
  while (answer.size() < kMaxLine) {
    const ssize_t n = read(socket.get(), &c, 1);
    if (n <= 0 || c == '\n') break;
    answer += c;
  }
  return answer;
}

}  // namespace vhost
