// The thread that serves one started queue: it waits for the guest's kick, a watched fd, a
// wake-up or a device-chosen delay, lets the device drain the ring, pushes completions other
// threads posted, and tells the guest once per batch.
#ifndef COMMON_DEVICE_QUEUE_WORKER_H_
#define COMMON_DEVICE_QUEUE_WORKER_H_

#include <atomic>
#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/base/unique_fd.h"
#include "common/device/device.h"
#include "common/device/queue_context.h"

namespace vhost {

class QueueWorker {
 public:
  // `kick_fd` < 0 means the front end sends no kicks: the worker then polls the ring.
  // `busy_poll` > 0 makes the worker spin on the ring that long before sleeping.
  QueueWorker(VirtioDevice* device, QueueContext* context, int kick_fd, absl::Duration busy_poll)
      : device_(device), context_(context), kick_fd_(kick_fd), busy_poll_(busy_poll) {}
  ~QueueWorker() { Stop(); }

  absl::Status Start();
  // Returns once the thread has finished its current batch and exited; the calling thread
  // then serves the queue (completions on it push directly).
  void Stop();

 private:
  void Run();
  // Processes until the ring is empty (or the device asks to wait); returns what it asked.
  QueueResult Drain();
  bool SpinForWork();
  // Reads the kick that woke us (`events` from epoll); breaks the queue if the fd is unusable.
  void ConsumeKick(uint32_t events);
  void Detach();  // takes the kick and stop fds out of the context's epoll set

  VirtioDevice* const device_;
  QueueContext* const context_;
  const int kick_fd_;
  const absl::Duration busy_poll_;
  UniqueFd stop_fd_;
  std::atomic<bool> stopping_{false};
  // epoll tags of the kick and stop fds in the context's set (their addresses).
  char kick_tag_ = 0;
  char stop_tag_ = 0;
  std::thread thread_;
};

}  // namespace vhost

#endif  // COMMON_DEVICE_QUEUE_WORKER_H_
