#include "common/runtime/control_socket.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/runtime/unix_listener.h"

namespace vhost {
namespace {
constexpr size_t kMaxLine = 4096;  // no command is longer: a client sending more is not ours
}  // namespace

absl::StatusOr<std::unique_ptr<ControlSocket>> ControlSocket::Start(const std::string& path,
                                                                    const std::string& flag,
                                                                    Handler handler) {
  absl::StatusOr<UniqueFd> listener = ListenOnUnixSocket(path, flag, /*backlog=*/4);
  if (!listener.ok()) return listener.status();
  return std::unique_ptr<ControlSocket>(
      new ControlSocket(*std::move(listener), std::move(handler)));
}

ControlSocket::ControlSocket(UniqueFd listener, Handler handler)
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
  char chunk[512];
  for (;;) {
    pollfd fds[2] = {{client, POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents) return;
    const ssize_t n = read(client, chunk, sizeof(chunk));
    if (n <= 0) return;
    pending.append(chunk, n);
    for (size_t end; (end = pending.find('\n')) != std::string::npos;) {
      absl::string_view line(pending.data(), end);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      absl::StatusOr<std::string> answer = handler_(line);
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

}  // namespace vhost
