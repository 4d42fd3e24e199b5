#include "common/device/queue_worker.h"

#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/device/cpu_relax.h"
#include "glog/logging.h"

namespace vhost {
namespace {

// Without kick eventfds the ring is looked at this often.
constexpr absl::Duration kNoKickPollInterval = absl::Milliseconds(1);

int ToTimeoutMs(absl::Duration wait) {
  if (wait == absl::InfiniteDuration()) return -1;
  if (wait == absl::ZeroDuration()) return 0;
  return static_cast<int>(
      std::max<int64_t>(1, absl::ToInt64Milliseconds(absl::Ceil(wait, absl::Milliseconds(1)))));
}

}  // namespace

// ---- QueueWorker

absl::Status QueueWorker::Start() {
  const int epoll = context_->epoll_fd();
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (group_ == nullptr) {
    stop_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_fd_) return absl::ErrnoToStatus(errno, "eventfd");
    ev.data.ptr = &stop_tag_;
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, stop_fd_.get(), &ev) != 0) {
      return absl::ErrnoToStatus(errno, "epoll_ctl(stop)");
    }
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
  if (group_ != nullptr) {
    if (absl::Status added = group_->Add(this); !added.ok()) {
      Detach();
      return added;
    }
  } else {
    thread_ = std::thread([this] { Run(); });
  }
  started_ = true;
  return absl::OkStatus();
}

void QueueWorker::Stop() {
  if (!started_) return;
  if (group_ != nullptr) {
    group_->Remove(this);
  } else {
    stopping_.store(true, std::memory_order_relaxed);  // ends a busy-poll spin
    eventfd_write(stop_fd_.get(), 1);
    thread_.join();
    stopping_.store(false, std::memory_order_relaxed);
  }
  started_ = false;
  Detach();
  context_->BecomeServingThread();
}

void QueueWorker::Detach() {
  if (stop_fd_) epoll_ctl(context_->epoll_fd(), EPOLL_CTL_DEL, stop_fd_.get(), nullptr);
  if (kick_fd_ >= 0) epoll_ctl(context_->epoll_fd(), EPOLL_CTL_DEL, kick_fd_, nullptr);
}

void QueueWorker::Drain() {
  Virtqueue& queue = context_->queue();
  for (int calls = 1;; ++calls) {
    context_->PushPosted();
    context_->TakeLocalWake();  // this call answers it
    result_ = device_->ProcessQueue(*context_);
    queue.NotifyGuestIfNeeded();
    // Woken by itself, or a handler of ours: again, or (the flag left set) after a look at
    // epoll that does not wait.
    if (context_->HasLocalWake()) {
      if (calls < kMaxCallsPerDrain) continue;
      break;
    }
    if (result_.kind() != QueueResult::Kind::kDrained) {
      // The device left chains in the ring on purpose: it must not be spun on. The guest
      // still kicks when it adds buffers (event queues need that).
      queue.EnableNotifications();
      break;
    }
    // Chains that came while notifications were off get no kick: take them now.
    if (queue.EnableNotifications() || context_->HasPosted()) continue;
    // A group spins for all its queues at once.
    if (group_ == nullptr && SpinForWork()) {
      queue.stats().busy_poll_hits.Add(1);
      continue;
    }
    break;
  }
  // A group keeps each queue's deadline; a queue's own thread asks Wait() before it sleeps.
  if (group_ != nullptr) {
    const absl::Duration wait = Wait();
    due_ = wait == absl::InfiniteDuration() ? absl::InfiniteFuture() : absl::Now() + wait;
  }
}

absl::Duration QueueWorker::Wait() const {
  if (context_->HasLocalWake()) return absl::ZeroDuration();
  absl::Duration wait = result_.delay();
  if (kick_fd_ < 0 && !context_->queue().broken()) wait = std::min(wait, kNoKickPollInterval);
  return wait;
}

bool QueueWorker::HasWork() {
  return result_.kind() == QueueResult::Kind::kDrained &&
         (context_->queue().HasAvailable() || context_->HasPosted() ||
          device_->HasCompletions(*context_));
}

bool QueueWorker::SpinForWork() {
  if (busy_poll_ <= absl::ZeroDuration()) return false;
  const absl::Time deadline = absl::Now() + busy_poll_;
  for (unsigned spins = 1;; ++spins) {
    if (HasWork()) return true;
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

bool QueueWorker::HandleEvents(const epoll_event* events, int n) {
  bool device_event = false;
  for (int i = 0; i < n; ++i) {
    void* tag = events[i].data.ptr;
    if (tag == &stop_tag_) return false;
    if (tag == &kick_tag_) {
      ConsumeKick(events[i].events);
    } else {
      device_event |= context_->Dispatch(tag, events[i].events);
    }
  }
  context_->FreeUnwatched();  // no event in hand names them now
  // A broken queue pops nothing, but the device still consumes its own events (e.g. I/O
  // completions), else its level-triggered fd would wake us in a loop.
  if (context_->queue().broken() && !device_event) {
    context_->TakeLocalWake();  // nothing to do for it: not a reason to look again
    result_ = QueueResult::Drained();
    due_ = absl::InfiniteFuture();
    return true;
  }
  Drain();
  return true;
}

void QueueWorker::ServeReady() {
  epoll_event events[16];
  const int n = epoll_wait(context_->epoll_fd(), events, 16, 0);
  HandleEvents(events, std::max(n, 0));
}

void QueueWorker::Run() {
  context_->BecomeServingThread();
  // Buffers may already be waiting when the queue starts, and completions may have been posted
  // while the worker was paused.
  Drain();
  for (;;) {
    epoll_event events[16];
    const int n = epoll_wait(context_->epoll_fd(), events, 16, ToTimeoutMs(Wait()));
    if (n < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "epoll_wait on queue " << context_->index();
      return;
    }
    if (!HandleEvents(events, n)) return;
  }
}

// ---- WorkerGroup

WorkerGroup::~WorkerGroup() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    closing_ = true;
    changes_pending_.store(true);
  }
  eventfd_write(control_.get(), 1);
  thread_.join();
}

absl::Status WorkerGroup::Add(QueueWorker* worker) {
  if (!thread_.joinable()) {
    // Threads start with the first queue (after the sandbox; see Backend).
    epoll_.Reset(epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return absl::ErrnoToStatus(errno, "epoll_create1(worker group)");
    control_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!control_) return absl::ErrnoToStatus(errno, "eventfd(worker group)");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &control_tag_;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, control_.get(), &ev) != 0) {
      return absl::ErrnoToStatus(errno, "epoll_ctl(worker group)");
    }
    thread_ = std::thread([this] { Run(); });
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    adding_.push_back(worker);
    changes_pending_.store(true);
  }
  eventfd_write(control_.get(), 1);
  return absl::OkStatus();
}

void WorkerGroup::Remove(QueueWorker* worker) {
  std::unique_lock<std::mutex> lock(mu_);
  removing_.push_back(worker);
  changes_pending_.store(true);
  eventfd_write(control_.get(), 1);
  changed_.wait(lock, [&] {
    return exited_ || std::find(removing_.begin(), removing_.end(), worker) == removing_.end();
  });
}

size_t WorkerGroup::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return members_.size() + adding_.size();
}

bool WorkerGroup::ApplyChanges() {
  std::vector<QueueWorker*> added;
  {
    std::lock_guard<std::mutex> lock(mu_);
    changes_pending_.store(false);
    if (closing_) return false;
    for (QueueWorker* worker : removing_) {
      // One not yet served (added and removed within a round) is only forgotten.
      auto pending = std::find(adding_.begin(), adding_.end(), worker);
      if (pending != adding_.end()) adding_.erase(pending);
      auto member = std::find(members_.begin(), members_.end(), worker);
      if (member == members_.end()) continue;
      members_.erase(member);
      epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, worker->context_->epoll_fd(), nullptr);
    }
    removing_.clear();
    added.swap(adding_);
    members_.insert(members_.end(), added.begin(), added.end());
  }
  changed_.notify_all();
  for (QueueWorker* worker : added) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = worker;
    if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, worker->context_->epoll_fd(), &ev) != 0) {
      PLOG(ERROR) << "epoll_ctl(queue " << worker->context_->index() << " into its group)";
      worker->context_->queue().MarkBroken(
          absl::ErrnoToStatus(errno, "queue cannot join its worker group"));
    }
    worker->context_->BecomeServingThread();
    // Buffers may already be waiting, and completions may have been posted while paused.
    worker->Drain();
  }
  DrainWoken();
  return true;
}

int WorkerGroup::TimeoutMs() const {
  absl::Time due = absl::InfiniteFuture();
  for (const QueueWorker* worker : members_) {
    if (worker->context_->HasLocalWake()) return 0;  // DrainWoken stopped short of it
    due = std::min(due, worker->due_);
  }
  if (due == absl::InfiniteFuture()) return -1;
  return ToTimeoutMs(std::max(due - absl::Now(), absl::ZeroDuration()));
}

void WorkerGroup::DrainWoken() {
  // Bounded as Drain is: a wake left over makes the next epoll_wait return at once.
  bool again = true;
  for (int rounds = 0; again && rounds < kMaxCallsPerDrain; ++rounds) {
    again = false;
    for (QueueWorker* worker : members_) {
      if (!worker->context_->HasLocalWake()) continue;
      worker->Drain();
      again = true;
    }
  }
}

void WorkerGroup::SpinForWork() {
  if (busy_poll_ <= absl::ZeroDuration() || members_.empty()) return;
  absl::Time deadline = absl::Now() + busy_poll_;
  for (unsigned spins = 1;; ++spins) {
    for (QueueWorker* worker : members_) {
      if (!worker->HasWork()) continue;
      worker->context_->queue().stats().busy_poll_hits.Add(1);
      worker->Drain();
      DrainWoken();
      deadline = absl::Now() + busy_poll_;
    }
    if (changes_pending_.load(std::memory_order_relaxed)) return;
    CpuRelax();
    if (spins % 64 == 0) {
      sched_yield();
      // A watched fd, a wake-up or a kick: the main loop takes it (epoll reports it again).
      epoll_event event;
      if (epoll_wait(epoll_.get(), &event, 1, 0) > 0) return;
      if (absl::Now() >= deadline) return;
    }
  }
}

void WorkerGroup::Run() {
  for (;;) {
    if (changes_pending_.load() && !ApplyChanges()) return;
    epoll_event events[16];
    const int n = epoll_wait(epoll_.get(), events, 16, TimeoutMs());
    if (n < 0) {
      if (errno == EINTR) continue;
      PLOG(ERROR) << "epoll_wait on a worker group";
      std::lock_guard<std::mutex> lock(mu_);
      exited_ = true;
      changed_.notify_all();
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == &control_tag_) {
        eventfd_t ignored;
        (void)eventfd_read(control_.get(), &ignored);  // applied at the top of the round
        continue;
      }
      // Only members are in the set: one removed left it before this wait.
      static_cast<QueueWorker*>(events[i].data.ptr)->ServeReady();
    }
    const absl::Time now = absl::Now();
    for (QueueWorker* worker : members_) {
      if (worker->due_ <= now) worker->HandleEvents(nullptr, 0);
    }
    DrainWoken();
    SpinForWork();
  }
}

}  // namespace vhost
