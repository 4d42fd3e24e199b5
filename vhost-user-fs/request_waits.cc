#include "vhost-user-fs/request_waits.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

namespace vhost {
namespace {

thread_local int t_queue = -1;
thread_local bool t_may_wait = true;

void IgnoreSignal(int) {}

}  // namespace

RequestWaits::RequestWaits() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action {};
    action.sa_handler = IgnoreSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: the interrupted call fails with EINTR
    sigaction(kInterruptSignal, &action, nullptr);
  });
}

RequestWaits::ScopedQueue::ScopedQueue(int queue, bool may_wait)
    : previous_queue_(t_queue), previous_may_wait_(t_may_wait) {
  t_queue = queue;
  t_may_wait = may_wait;
}

RequestWaits::ScopedQueue::~ScopedQueue() {
  t_queue = previous_queue_;
  t_may_wait = previous_may_wait_;
}

int RequestWaits::Run(uint64_t unique, const std::function<int()>& call) {
  // The thread may have inherited a mask that blocks the signal.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kInterruptSignal);
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  Waiter waiter{static_cast<pid_t>(syscall(SYS_gettid)), unique, t_queue};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto early = std::find(early_interrupts_.begin(), early_interrupts_.end(), unique);
    if (early != early_interrupts_.end() || stopped_queues_.count(waiter.queue) || !t_may_wait) {
      if (early != early_interrupts_.end()) early_interrupts_.erase(early);
      errno = EINTR;
      return -1;
    }
    waiters_.push_back(&waiter);
  }
  int result, error;
  for (;;) {
    result = call();
    error = errno;
    if (result != -1 || error != EINTR) break;
    std::lock_guard<std::mutex> lock(mu_);
    if (waiter.interrupted) break;
    // Else a late signal meant for an earlier wait of this thread: wait on.
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    waiters_.remove(&waiter);
  }
  left_.notify_all();
  errno = error;
  return result;
}

void RequestWaits::Interrupt(uint64_t unique) {
  std::unique_lock<std::mutex> lock(mu_);
  bool found = false;
  for (Waiter* w : waiters_) {
    if (w->unique == unique) w->interrupted = found = true;
  }
  if (!found) {
    // Served concurrently on another thread, the request may not wait yet.
    early_interrupts_.push_back(unique);
    if (early_interrupts_.size() > kMaxEarlyInterrupts) early_interrupts_.pop_front();
    return;
  }
  WakeInterrupted(lock);
}

void RequestWaits::StopQueue(int queue) {
  std::unique_lock<std::mutex> lock(mu_);
  stopped_queues_.insert(queue);
  for (Waiter* w : waiters_) {
    if (w->queue == queue) w->interrupted = true;
  }
  WakeInterrupted(lock);
}

void RequestWaits::ResumeQueue(int queue) {
  std::lock_guard<std::mutex> lock(mu_);
  stopped_queues_.erase(queue);
}

void RequestWaits::WakeInterrupted(std::unique_lock<std::mutex>& lock) {
  const pid_t pid = getpid();
  for (;;) {
    bool any = false;
    for (Waiter* w : waiters_) {
      if (!w->interrupted) continue;
      any = true;
      // Under mu_, so the waiter is still registered: every signal is sent before it leaves.
      syscall(SYS_tgkill, pid, w->tid, kInterruptSignal);
    }
    if (!any) return;
    // Re-sent after a while in case it landed before the waiter entered its call.
    left_.wait_for(lock, std::chrono::milliseconds(10));
  }
}

}  // namespace vhost
