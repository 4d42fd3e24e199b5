#include "common/vhost_user/channel.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace vhost {
namespace {

absl::Status ErrnoError(absl::string_view what) { return absl::ErrnoToStatus(errno, what); }

}  // namespace

absl::Status SetReceiveTimeout(int socket_fd, int milliseconds) {
  timeval tv{};
  tv.tv_sec = milliseconds / 1000;
  tv.tv_usec = (milliseconds % 1000) * 1000;
  if (setsockopt(socket_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0) {
    return ErrnoError("setsockopt(SO_RCVTIMEO)");
  }
  return absl::OkStatus();
}

absl::Status Channel::ReadFully(void* buffer, size_t size) {
  auto* bytes = static_cast<uint8_t*>(buffer);
  while (size > 0) {
    const ssize_t n = recv(socket_.get(), bytes, size, 0);
    if (n == 0) return absl::DataLossError("connection closed in the middle of a message");
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("recv");
    }
    bytes += n;
    size -= n;
  }
  return absl::OkStatus();
}

absl::StatusOr<Message> Channel::Receive() {
  Message message;
  iovec iov{&message.header, sizeof(message.header)};
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFdsPerMessage * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);

  ssize_t n;
  do {
    n = recvmsg(socket_.get(), &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n == 0) return absl::UnavailableError("peer closed the connection");
  if (n < 0) return ErrnoError("recvmsg");

  // Take ownership of every fd that arrived before judging anything, so none leaks.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      message.fds.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    return absl::InvalidArgumentError(
        absl::StrCat("message carries more than ", kMaxFdsPerMessage, " file descriptors"));
  }
  if (static_cast<size_t>(n) < sizeof(message.header)) {
    const size_t got = n;
    auto* header = reinterpret_cast<uint8_t*>(&message.header);
    absl::Status status = ReadFully(header + got, sizeof(message.header) - got);
    if (!status.ok()) return absl::DataLossError("truncated message header");
  }
  if (message.header.size > kMaxPayloadSize) {
    return absl::InvalidArgumentError(absl::StrCat(
        "payload of ", message.header.size, " bytes exceeds the limit of ", kMaxPayloadSize));
  }
  message.payload.resize(message.header.size);
  if (!message.payload.empty()) {
    absl::Status status = ReadFully(message.payload.data(), message.payload.size());
    if (!status.ok()) {
      return absl::DataLossError(absl::StrCat(
          "truncated payload of ", RequestName(message.request()), ": ", status.message()));
    }
  }
  return message;
}

absl::Status Channel::Send(const Message& message) {
  if (message.fds.size() > kMaxFdsPerMessage) {
    return absl::InvalidArgumentError("too many fds to send");
  }
  MessageHeader header = message.header;
  header.size = message.payload.size();
  iovec iov[2] = {{&header, sizeof(header)},
                  {const_cast<uint8_t*>(message.payload.data()), message.payload.size()}};
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFdsPerMessage * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = message.payload.empty() ? 1 : 2;
  if (!message.fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(message.fds.size() * sizeof(int));
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(message.fds.size() * sizeof(int));
    for (size_t i = 0; i < message.fds.size(); ++i) {
      const int fd = message.fds[i].get();
      std::memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(int));
    }
  }
  size_t remaining = sizeof(header) + message.payload.size();
  while (remaining > 0) {
    const ssize_t n = sendmsg(socket_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("sendmsg");
    }
    remaining -= n;
    if (remaining == 0) break;
    // Partial send: skip what went out; the fds went with the first byte.
    size_t sent = n;
    while (msg.msg_iovlen > 0 && sent >= msg.msg_iov[0].iov_len) {
      sent -= msg.msg_iov[0].iov_len;
      ++msg.msg_iov;
      --msg.msg_iovlen;
    }
    msg.msg_iov[0].iov_base = static_cast<uint8_t*>(msg.msg_iov[0].iov_base) + sent;
    msg.msg_iov[0].iov_len -= sent;
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
  }
  return absl::OkStatus();
}

absl::StatusOr<Message> Channel::Call(const Message& request) {
  if (absl::Status s = Send(request); !s.ok()) return s;
  absl::StatusOr<Message> reply = Receive();
  if (!reply.ok()) return reply.status();
  if (reply->header.request != request.header.request || !(reply->header.flags & kFlagReply)) {
    return absl::InvalidArgumentError(absl::StrCat("unexpected reply ", reply->header.request,
                                                   " to request ", request.header.request));
  }
  return reply;
}

}  // namespace vhost
