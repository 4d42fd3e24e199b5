#include "tests/frontend/raw_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>
#include <vector>

#include "common/vhost_user/channel.h"
#include "tests/frontend/event_fd.h"

namespace vhost {
namespace frontend {

absl::Status SendRawBytes(int socket_fd, absl::Span<const uint8_t> bytes,
                          absl::Span<const int> fds) {
  constexpr size_t kMaxFds = 253;  // SCM_MAX_FD
  if (fds.size() > kMaxFds) return absl::InvalidArgumentError("too many fds");
  std::vector<char> control(fds.empty() ? 0 : CMSG_SPACE(fds.size() * sizeof(int)));
  size_t sent = 0;
  bool first = true;
  do {
    iovec iov{const_cast<uint8_t*>(bytes.data()) + sent, bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (first && !fds.empty()) {
      msg.msg_control = control.data();
      msg.msg_controllen = control.size();
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    const ssize_t n = sendmsg(socket_fd, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "sendmsg");
    }
    first = false;
    sent += n;
  } while (sent < bytes.size());
  return absl::OkStatus();
}

absl::Status SendRawMessage(int socket_fd, uint32_t request, uint32_t flags, uint32_t size_field,
                            absl::Span<const uint8_t> payload, absl::Span<const int> fds) {
  const MessageHeader header{request, flags, size_field};
  std::vector<uint8_t> frame(sizeof(header) + payload.size());
  std::memcpy(frame.data(), &header, sizeof(header));
  if (!payload.empty()) std::memcpy(frame.data() + sizeof(header), payload.data(), payload.size());
  return SendRawBytes(socket_fd, frame, fds);
}

absl::StatusOr<Message> ReceiveMessage(int socket_fd, absl::Duration timeout) {
  absl::StatusOr<bool> readable = PollReadable(socket_fd, timeout);
  if (!readable.ok()) return readable.status();
  if (!*readable) return absl::DeadlineExceededError("no message from the peer");
  // A duplicate shares the socket; closing it leaves `socket_fd` open.
  const int dup_fd = fcntl(socket_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) return absl::ErrnoToStatus(errno, "fcntl(F_DUPFD_CLOEXEC)");
  Channel channel{UniqueFd(dup_fd)};
  return channel.Receive();
}

bool WaitForPeerClose(int socket_fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    absl::StatusOr<bool> readable = PollReadable(socket_fd, deadline - absl::Now());
    if (!readable.ok() || !*readable) return false;
    char buffer[4096];
    const ssize_t n = recv(socket_fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) return errno == ECONNRESET || errno == EPIPE;
    // Discard whatever the peer sent (replies, fds are closed by the kernel) and keep waiting.
  }
}

}  // namespace frontend
}  // namespace vhost
