// The thread that serves one started queue: it waits for the guest's kick (or a device-chosen
// delay), lets the device drain the ring, and tells the guest once per batch.
#ifndef COMMON_QUEUE_WORKER_H_
#define COMMON_QUEUE_WORKER_H_

#include <thread>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/device.h"
#include "common/unique_fd.h"
#include "common/virtqueue.h"

namespace vhost {

class QueueWorker {
 public:
  // `kick_fd` < 0 means the front end sends no kicks: the worker then polls the ring.
  // `busy_poll` > 0 makes the worker spin on the ring that long before sleeping.
  QueueWorker(VirtioDevice* device, Virtqueue* queue, int kick_fd, absl::Duration busy_poll)
      : device_(device),
        queue_(queue),
        kick_fd_(kick_fd),
        device_fd_(device->QueueEventFd(queue->index())),
        busy_poll_(busy_poll) {}
  ~QueueWorker() { Stop(); }

  absl::Status Start();
  // Returns once the thread has finished its current batch and exited.
  void Stop();

 private:
  void Run();
  // Processes until the ring is empty (or the device asks to wait); returns the wait.
  absl::Duration Drain();
  bool SpinForWork();
  // Reads the kick that woke us (`events` from epoll); breaks the queue if the fd is unusable.
  void ConsumeKick(uint32_t events);

  VirtioDevice* const device_;
  Virtqueue* const queue_;
  const int kick_fd_;
  const int device_fd_;  // the device's own eventfd for this queue, or -1
  const absl::Duration busy_poll_;
  UniqueFd stop_fd_;
  UniqueFd epoll_fd_;
  std::thread thread_;
};

}  // namespace vhost

#endif  // COMMON_QUEUE_WORKER_H_
