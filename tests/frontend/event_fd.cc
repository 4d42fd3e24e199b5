#include "tests/frontend/event_fd.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace vhost {
namespace frontend {

absl::StatusOr<bool> PollReadable(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    const int ms =
        left <= absl::ZeroDuration() ? 0 : static_cast<int>(absl::ToInt64Milliseconds(left) + 1);
    pollfd p{fd, POLLIN, 0};
    const int n = poll(&p, 1, ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::ErrnoToStatus(errno, "poll");
    }
    if (n > 0) return true;
    if (absl::Now() >= deadline) return false;
  }
}

absl::StatusOr<EventFd> EventFd::Create() {
  const int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return absl::ErrnoToStatus(errno, "eventfd");
  return EventFd(UniqueFd(fd));
}

absl::Status EventFd::Signal() {
  const uint64_t one = 1;
  for (;;) {
    if (write(fd_.get(), &one, sizeof(one)) == sizeof(one)) return absl::OkStatus();
    if (errno != EINTR) return absl::ErrnoToStatus(errno, "eventfd write");
  }
}

absl::StatusOr<uint64_t> EventFd::Drain() {
  uint64_t value = 0;
  for (;;) {
    if (read(fd_.get(), &value, sizeof(value)) == sizeof(value)) return value;
    if (errno == EAGAIN) return 0;
    if (errno != EINTR) return absl::ErrnoToStatus(errno, "eventfd read");
  }
}

absl::StatusOr<uint64_t> EventFd::Wait(absl::Duration timeout) {
  absl::StatusOr<bool> readable = PollReadable(fd_.get(), timeout);
  if (!readable.ok()) return readable.status();
  if (!*readable) return 0;
  return Drain();
}

}  // namespace frontend
}  // namespace vhost
