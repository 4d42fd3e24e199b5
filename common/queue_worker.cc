#include "common/queue_worker.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace vhost {
namespace {

// Without kick eventfds the ring is looked at this often.
constexpr absl::Duration kNoKickPollInterval = absl::Milliseconds(1);

}  // namespace

absl::Status QueueWorker::Start() {
  stop_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_fd_.Reset(epoll_create1(EPOLL_CLOEXEC));
  if (!stop_fd_ || !epoll_fd_) return absl::ErrnoToStatus(errno, "eventfd/epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = stop_fd_.get();
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, stop_fd_.get(), &ev) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl(stop)");
  }
  for (int fd : {kick_fd_, device_fd_}) {
    if (fd < 0) continue;
    ev.data.fd = fd;
    if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("epoll_ctl(queue ", queue_->index(), ")"));
    }
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void QueueWorker::Stop() {
  if (!thread_.joinable()) return;
  eventfd_write(stop_fd_.get(), 1);
  thread_.join();
}

absl::Duration QueueWorker::Drain() {
  for (;;) {
    const absl::Duration wait = device_->ProcessQueue(*queue_);
    queue_->NotifyGuestIfNeeded();
    // A device that left work for later must not be spun on; the guest may still kick when it
    // adds buffers (it needs to for event queues).
    if (wait == kHoldingUntilDeviceEvent) {
      if (queue_->EnableNotifications()) continue;  // new chains came meanwhile: pop them
      return wait;
    }
    if (wait != absl::InfiniteDuration()) {
      queue_->EnableNotifications();
      return wait;
    }
    if (!queue_->EnableNotifications() && !SpinForWork()) return wait;
  }
}

bool QueueWorker::SpinForWork() {
  if (busy_poll_ <= absl::ZeroDuration()) return false;
  const absl::Time deadline = absl::Now() + busy_poll_;
  for (unsigned spins = 1;; ++spins) {
    if (queue_->HasAvailable() || device_->QueueHasCompletions(queue_->index())) return true;
    __builtin_ia32_pause();
    // Now and then yield, so a thread of ours woken on this CPU (another queue's worker) waits
    // microseconds, not the whole spin (vhost-user-fs: FORGETs on the high-priority queue).
    if (spins % 64 == 0) {
      sched_yield();
      if (absl::Now() >= deadline) return false;
    }
  }
}

void QueueWorker::ConsumeKick(uint32_t events) {
  // The kick fd is the front end's (the backend made it non-blocking): an eventfd resets on one
  // 8-byte read. Anything else that keeps epoll firing without a kick to read (a hung-up or
  // failed pipe or socket, EOF) would spin this thread: such a queue breaks and its kick fd
  // leaves the epoll set.
  uint64_t value;
  const ssize_t n = (events & (EPOLLHUP | EPOLLERR)) ? 0 : read(kick_fd_, &value, sizeof(value));
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return;
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, kick_fd_, nullptr);
  LOG_EVERY_N(WARNING, 100) << "queue " << queue_->index() << ": kick fd hung up or failed";
  queue_->MarkBroken(absl::FailedPreconditionError("kick fd hung up or failed (not an eventfd?)"));
}

void QueueWorker::Run() {
  // Buffers may already be waiting when the queue starts.
  absl::Duration wait = Drain();
  for (;;) {
    if (kick_fd_ < 0 && !queue_->broken()) wait = std::min(wait, kNoKickPollInterval);
    const int timeout_ms =
        wait == absl::InfiniteDuration()
            ? -1
            : static_cast<int>(std::max<int64_t>(
                  1, absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1)))));
    epoll_event events[3];
    const int n = epoll_wait(epoll_fd_.get(), events, 3, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "epoll_wait on queue " << queue_->index();
      return;
    }
    bool device_event = false;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == stop_fd_.get()) return;
      if (fd == kick_fd_) {
        ConsumeKick(events[i].events);
      } else {
        device_event = true;
      }
    }
    // A broken queue pops nothing, but the device still consumes its own events (e.g. I/O
    // completions), else its level-triggered fd would wake us in a loop.
    if (queue_->broken() && !device_event) {
      wait = absl::InfiniteDuration();
      continue;
    }
    wait = Drain();
  }
}

}  // namespace vhost
