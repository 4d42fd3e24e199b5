// The thread that serves started queues: it waits for the guest's kick, a watched fd, a
// wake-up or a device-chosen delay, lets the device drain the ring, pushes completions other
// threads posted, and tells the guest once per batch.
//
// By default each queue has a thread of its own. A device whose queues hand work to each other
// all the time (vsock: every guest packet's reply goes out on the rx queue) asks for one thread
// for all of them (DeviceInfo::one_worker): its queues' QueueWorkers then join a WorkerGroup,
// whose thread serves each in turn, as Linux's vhost serves a device's queues from one kernel
// thread. A hand-off between queues is then a flag, not a wake-up of another thread.
#ifndef COMMON_DEVICE_QUEUE_WORKER_H_
#define COMMON_DEVICE_QUEUE_WORKER_H_

#include <sys/epoll.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/base/unique_fd.h"
#include "common/device/device.h"
#include "common/device/queue_context.h"

namespace vhost {

// Calls a worker makes in a row for wake-ups from its own thread before it lets epoll in (the
// stop fd, other fds, other queues of a group): a device that wakes itself on every call must
// not keep the thread from them.
inline constexpr int kMaxCallsPerDrain = 64;

class WorkerGroup;

class QueueWorker {
 public:
  // `kick_fd` < 0 means the front end sends no kicks: the worker then polls the ring.
  // `busy_poll` > 0 makes the worker spin on the ring that long before sleeping (with a group,
  // the group's setting applies). `group` (may be null: a thread of its own) must outlive the
  // worker.
  QueueWorker(VirtioDevice* device, QueueContext* context, int kick_fd, absl::Duration busy_poll,
              WorkerGroup* group = nullptr)
      : device_(device),
        context_(context),
        kick_fd_(kick_fd),
        busy_poll_(busy_poll),
        group_(group) {}
  ~QueueWorker() { Stop(); }

  absl::Status Start();
  // Returns once the serving thread has finished its current batch and no longer serves this
  // queue; the calling thread then does (completions on it push directly).
  void Stop();

 private:
  friend class WorkerGroup;

  // The queue's own thread.
  void Run();
  // Handles what epoll reported on the context's set. False: the stop fd fired.
  bool HandleEvents(const epoll_event* events, int n);
  // Takes what the context's set has ready now, without waiting, and drains (a group's thread).
  void ServeReady();
  // Processes until the ring is empty (or the device asks to wait); keeps what it asked and
  // when the queue must next be looked at without an event (due_).
  void Drain();
  // How long the serving thread may sleep for this queue (its last result, or polling without
  // kicks).
  absl::Duration Wait() const;
  // Whether a busy-polling thread has work for this queue: chains in a ring the device drained,
  // posted completions, or the device's own.
  bool HasWork();
  bool SpinForWork();
  // Reads the kick that woke us (`events` from epoll); breaks the queue if the fd is unusable.
  void ConsumeKick(uint32_t events);
  void Detach();  // takes the kick and stop fds out of the context's epoll set

  VirtioDevice* const device_;
  QueueContext* const context_;
  const int kick_fd_;
  const absl::Duration busy_poll_;
  WorkerGroup* const group_;
  UniqueFd stop_fd_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  QueueResult result_ = QueueResult::Drained();
  absl::Time due_ = absl::InfiniteFuture();
  // epoll tags of the kick and stop fds in the context's set (their addresses).
  char kick_tag_ = 0;
  char stop_tag_ = 0;
  std::thread thread_;
};

// One thread serving several queues (see above). Each member's context epoll set is watched
// from the group's own set, so a member's events wake the thread and are then taken from the
// member's set without waiting.
class WorkerGroup {
 public:
  explicit WorkerGroup(absl::Duration busy_poll) : busy_poll_(busy_poll) {}
  // Every member has been removed (Backend stops its queues first).
  ~WorkerGroup();

  // The thread (started with the first member) serves `worker` from its next round on.
  absl::Status Add(QueueWorker* worker);
  // Returns once the thread has finished its current round and no longer serves `worker`.
  void Remove(QueueWorker* worker);

  // Queues served now (for tests).
  size_t size();

 private:
  void Run();
  // Applies what Add and Remove asked (on the thread). False: the group is closing.
  bool ApplyChanges();
  int TimeoutMs() const;
  // Drains the members another member woke (QueueContext::Wake on this thread), until none is.
  void DrainWoken();
  // Spins up to busy_poll_ for work on any member that drained its ring, or any event.
  void SpinForWork();

  const absl::Duration busy_poll_;
  UniqueFd epoll_;
  UniqueFd control_;  // eventfd: Add, Remove or closing
  char control_tag_ = 0;
  std::thread thread_;
  std::vector<QueueWorker*> members_;  // the thread's

  std::mutex mu_;
  std::condition_variable changed_;
  std::vector<QueueWorker*> adding_;    // under mu_
  std::vector<QueueWorker*> removing_;  // under mu_, until the thread let them go
  bool closing_ = false;                // under mu_
  bool exited_ = false;                 // under mu_: the thread ended (Remove must not wait)
  std::atomic<bool> changes_pending_{false};
};

}  // namespace vhost

#endif  // COMMON_DEVICE_QUEUE_WORKER_H_
