#include "common/vhost_user/state_transfer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/str_cat.h"

namespace vhost {
namespace {

constexpr size_t kChunk = 64 * 1024;

}  // namespace

StateTransfer::StateTransfer(UniqueFd fd, bool save, std::string state, size_t max_bytes,
                             absl::Duration timeout)
    : fd_(std::move(fd)),
      save_(save),
      data_(std::move(state)),
      max_bytes_(max_bytes),
      deadline_(absl::Now() + timeout) {}

absl::StatusOr<std::unique_ptr<StateTransfer>> StateTransfer::Save(UniqueFd fd, std::string state,
                                                                   absl::Duration timeout) {
  std::unique_ptr<StateTransfer> transfer(
      new StateTransfer(std::move(fd), /*save=*/true, std::move(state), 0, timeout));
  if (absl::Status started = transfer->Start(); !started.ok()) return started;
  return transfer;
}

absl::StatusOr<std::unique_ptr<StateTransfer>> StateTransfer::Load(UniqueFd fd, size_t max_bytes,
                                                                   absl::Duration timeout) {
  std::unique_ptr<StateTransfer> transfer(
      new StateTransfer(std::move(fd), /*save=*/false, "", max_bytes, timeout));
  if (absl::Status started = transfer->Start(); !started.ok()) return started;
  return transfer;
}

absl::Status StateTransfer::Start() {
  // Non-blocking: the thread waits in poll(), where the deadline and cancellation reach it. The
  // flag is on our end's open file description only (the front end keeps the other end).
  const int flags = fcntl(fd_.get(), F_GETFL);
  if (flags < 0 || fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return absl::ErrnoToStatus(errno, "device state fd: fcntl(O_NONBLOCK)");
  }
  cancel_ = UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!cancel_) return absl::ErrnoToStatus(errno, "device state transfer: eventfd");
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

StateTransfer::~StateTransfer() {
  if (thread_.joinable()) {
    eventfd_write(cancel_.get(), 1);
    thread_.join();
  }
}

absl::StatusOr<std::string> StateTransfer::Finish() {
  if (thread_.joinable()) thread_.join();  // the thread ends by the deadline at the latest
  if (!result_.ok()) return result_;
  return save_ ? std::string() : std::move(data_);
}

bool StateTransfer::Wait(short events) {
  for (;;) {
    const absl::Duration left = deadline_ - absl::Now();
    if (left <= absl::ZeroDuration()) {
      result_ = absl::DeadlineExceededError("device state transfer did not end in time");
      return false;
    }
    pollfd fds[2] = {{fd_.get(), events, 0}, {cancel_.get(), POLLIN, 0}};
    const int timeout_ms =
        static_cast<int>(std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 60 * 60 * 1000));
    const int n = poll(fds, 2, timeout_ms);
    if (n < 0 && errno != EINTR) {
      result_ = absl::ErrnoToStatus(errno, "device state transfer: poll");
      return false;
    }
    if (n > 0 && fds[1].revents != 0) {
      result_ = absl::CancelledError("device state transfer cancelled");
      return false;
    }
    // Readiness, or a hang-up/error the read or write that follows reports.
    if (n > 0 && fds[0].revents != 0) return true;
  }
}

void StateTransfer::Run() {
  Transfer();
  // Closed on every outcome: the reader sees the end of the state, a writer past the cap or
  // after a failure gets EPIPE rather than waiting for a reader that is gone.
  fd_.Reset();
  if (!result_.ok()) data_.clear();
}

void StateTransfer::Transfer() {
  if (save_) {
    size_t done = 0;
    while (done < data_.size()) {
      const ssize_t n = write(fd_.get(), data_.data() + done, data_.size() - done);
      if (n > 0) {
        done += static_cast<size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && errno == EAGAIN) {
        if (!Wait(POLLOUT)) return;
      } else {  // EPIPE: the front end stopped reading
        result_ = absl::ErrnoToStatus(errno, "writing the device state");
        return;
      }
    }
    return;
  }
  for (;;) {
    const size_t old_size = data_.size();
    data_.resize(old_size + kChunk);
    const ssize_t n = read(fd_.get(), data_.data() + old_size, kChunk);
    data_.resize(old_size + std::max<ssize_t>(n, 0));
    if (n == 0) break;  // end of file: all there is
    if (n > 0) {
      if (data_.size() > max_bytes_) {
        result_ = absl::ResourceExhaustedError(
            absl::StrCat("device state larger than ", max_bytes_, " bytes"));
        return;
      }
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN) {
      if (!Wait(POLLIN)) return;
    } else {
      result_ = absl::ErrnoToStatus(errno, "reading the device state");
      return;
    }
  }
}

}  // namespace vhost
