// An eventfd as the front end uses it for kicks, calls and errors.
#ifndef TESTS_FRONTEND_EVENT_FD_H_
#define TESTS_FRONTEND_EVENT_FD_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/unique_fd.h"

namespace vhost {
namespace frontend {

class EventFd {
 public:
  // A non-blocking eventfd with counter 0.
  static absl::StatusOr<EventFd> Create();

  // Adds 1 to the counter (one write).
  absl::Status Signal();
  // Reads and resets the counter without waiting: 0 if it was not signalled.
  absl::StatusOr<uint64_t> Drain();
  // Waits up to `timeout` for a signal, then drains: 0 on timeout.
  absl::StatusOr<uint64_t> Wait(absl::Duration timeout);

  int fd() const { return fd_.get(); }

 private:
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// poll() for POLLIN on `fd` for up to `timeout` (retrying on EINTR): true when readable.
absl::StatusOr<bool> PollReadable(int fd, absl::Duration timeout);

}  // namespace frontend
}  // namespace vhost

#endif  // TESTS_FRONTEND_EVENT_FD_H_
