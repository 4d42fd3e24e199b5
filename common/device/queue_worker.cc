#include "common/device/queue_worker.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/device/cpu_relax.h"
#include "glog/logging.h"

namespace vhost {
namespace {

// Without kick eventfds the ring is looked at this often.
constexpr absl::Duration kNoKickPollInterval = absl::Milliseconds(1);

}  // namespace

absl::Status QueueWorker::Start() {
  stop_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!stop_fd_) return absl::ErrnoToStatus(errno, "eventfd");
  const int epoll = context_->epoll_fd();
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &stop_tag_;
  if (epoll_ctl(epoll, EPOLL_CTL_ADD, stop_fd_.get(), &ev) != 0) {
    return absl::ErrnoToStatus(errno, "epoll_ctl(stop)");
  }
  if (kick_fd_ >= 0) {
    ev.data.ptr = &kick_tag_;
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, kick_fd_, &ev) != 0) {
      const int error = errno;
      Detach();
      return absl::ErrnoToStatus(error,
                                 absl::StrCat("epoll_ctl(kick of queue ", context_->index(), ")"));
    }
  }
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

void QueueWorker::Stop() {
  if (!thread_.joinable()) return;
  stopping_.store(true, std::memory_order_relaxed);  // ends a busy-poll spin
  eventfd_write(stop_fd_.get(), 1);
  thread_.join();
  stopping_.store(false, std::memory_order_relaxed);
  Detach();
  context_->BecomeServingThread();
}

void QueueWorker::Detach() {
  epoll_ctl(context_->epoll_fd(), EPOLL_CTL_DEL, stop_fd_.get(), nullptr);
  if (kick_fd_ >= 0) epoll_ctl(context_->epoll_fd(), EPOLL_CTL_DEL, kick_fd_, nullptr);
}

QueueResult QueueWorker::Drain() {
  Virtqueue& queue = context_->queue();
  for (;;) {
    context_->PushPosted();
    const QueueResult result = device_->ProcessQueue(*context_);
    queue.NotifyGuestIfNeeded();
    switch (result.kind()) {
      case QueueResult::Kind::kDrained:
        // Chains that came while notifications were off get no kick: take them now.
        if (queue.EnableNotifications() || context_->HasPosted()) continue;
        if (SpinForWork()) {
          queue.stats().busy_poll_hits.Add(1);
          continue;
        }
        return result;
      case QueueResult::Kind::kBlocked:
      case QueueResult::Kind::kRetryAfter:
        // The device left chains in the ring on purpose: it must not be spun on. The guest
        // still kicks when it adds buffers (event queues need that).
        queue.EnableNotifications();
        return result;
    }
  }
}

bool QueueWorker::SpinForWork() {
  if (busy_poll_ <= absl::ZeroDuration()) return false;
  const absl::Time deadline = absl::Now() + busy_poll_;
  for (unsigned spins = 1;; ++spins) {
    if (context_->queue().HasAvailable() || context_->HasPosted() ||
        device_->HasCompletions(*context_)) {
      return true;
    }
    if (stopping_.load(std::memory_order_relaxed)) return false;
    CpuRelax();
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
  if (n == sizeof(value)) context_->queue().stats().kicks.Add(value);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR))) return;
  epoll_ctl(context_->epoll_fd(), EPOLL_CTL_DEL, kick_fd_, nullptr);
  LOG_EVERY_N(WARNING, 100) << "queue " << context_->index() << ": kick fd hung up or failed";
  context_->queue().MarkBroken(
      absl::FailedPreconditionError("kick fd hung up or failed (not an eventfd?)"));
}

void QueueWorker::Run() {
  context_->BecomeServingThread();
  Virtqueue& queue = context_->queue();
  // Buffers may already be waiting when the queue starts, and completions may have been posted
  // while the worker was paused.
  QueueResult result = Drain();
  for (;;) {
    absl::Duration wait = result.delay();
    if (kick_fd_ < 0 && !queue.broken()) wait = std::min(wait, kNoKickPollInterval);
    const int timeout_ms =
        wait == absl::InfiniteDuration()
            ? -1
            : static_cast<int>(std::max<int64_t>(
                  1, absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1)))));
    epoll_event events[16];
    const int n = epoll_wait(context_->epoll_fd(), events, 16, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "epoll_wait on queue " << context_->index();
      return;
    }
    bool device_event = false;
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &stop_tag_) return;
      if (tag == &kick_tag_) {
        ConsumeKick(events[i].events);
      } else {
        device_event |= context_->Dispatch(tag, events[i].events);
      }
    }
    context_->FreeUnwatched();  // no event in hand names them now
    // A broken queue pops nothing, but the device still consumes its own events (e.g. I/O
    // completions), else its level-triggered fd would wake us in a loop.
    if (queue.broken() && !device_event) {
      result = QueueResult::Drained();
      continue;
    }
    result = Drain();
  }
}

}  // namespace vhost
