// Blocking waits of FUSE requests (a SETLKW under --posix-lock waits for a lock as long as its
// holder likes) with a way out: FUSE_INTERRUPT names the waiting request by its unique id, and a
// queue that stops (GET_VRING_BASE, reset, disconnect) ends every wait of its requests, so no
// guest request holds a thread the connection thread then waits for.
//
// The wait is the blocking system call itself, in the thread serving the request; ending it
// sends that thread kInterruptSignal (tgkill of our own process), whose handler does nothing
// and is installed without SA_RESTART, so the call fails with EINTR. A signal that lands just
// before the call starts would be lost: the interrupter sends it again until the waiter has
// left.
#ifndef VHOST_USER_FS_REQUEST_WAITS_H_
#define VHOST_USER_FS_REQUEST_WAITS_H_

#include <signal.h>
#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <set>

namespace vhost {

class RequestWaits {
 public:
  static constexpr int kInterruptSignal = SIGUSR2;
  // Interrupts for requests not waiting (yet) are remembered, this many at most.
  static constexpr size_t kMaxEarlyInterrupts = 64;

  // Installs the signal handler (once per process).
  RequestWaits();

  // The queue the request served on this thread came from, for StopQueue, and whether it may
  // wait at all (only where something can interrupt it: not on a queue's own worker, which the
  // engine joins before telling the device the queue stopped).
  class ScopedQueue {
   public:
    ScopedQueue(int queue, bool may_wait);
    ~ScopedQueue();

   private:
    const int previous_queue_;
    const bool previous_may_wait_;
  };

  // Runs `call`, a blocking system call returning -1 with errno EINTR when interrupted, for
  // request `unique`. Returns its result; -1 with errno EINTR, without calling it, when the
  // request was interrupted before, its queue is stopping, or the thread may not wait.
  int Run(uint64_t unique, const std::function<int()>& call);
  // FUSE_INTERRUPT: ends the wait of request `unique` (or the one it starts soon).
  void Interrupt(uint64_t unique);
  // Ends every wait of queue `queue`'s requests and refuses new ones until ResumeQueue.
  void StopQueue(int queue);
  void ResumeQueue(int queue);

 private:
  struct Waiter {
    pid_t tid;
    uint64_t unique;
    int queue;
    bool interrupted = false;
  };
  // Signals the waiters marked interrupted until they have all left. Called with `lock` held.
  void WakeInterrupted(std::unique_lock<std::mutex>& lock);

  std::mutex mu_;
  std::condition_variable left_;
  std::list<Waiter*> waiters_;
  std::set<int> stopped_queues_;
  std::deque<uint64_t> early_interrupts_;
};

}  // namespace vhost

#endif  // VHOST_USER_FS_REQUEST_WAITS_H_
