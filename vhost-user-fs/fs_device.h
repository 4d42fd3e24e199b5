// virtio-fs (virtio 1.2 §5.11): a high-priority queue (FORGET, INTERRUPT) and request queues,
// every request served by the FUSE server of the shared directory.
#ifndef VHOST_USER_FS_FS_DEVICE_H_
#define VHOST_USER_FS_FS_DEVICE_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/device.h"
#include "vhost-user-fs/fuse_server.h"
#include "vhost-user-fs/request_pool.h"

namespace vhost {

constexpr uint32_t kVirtioIdFs = 26;

class FsDevice : public VirtioDevice {
 public:
  // thread_pool_size 0: each queue's worker serves its requests itself, one at a time.
  // `server` may be null until set_server (the daemon makes it inside its sandbox), which
  // must come before the first queue starts.
  FsDevice(std::unique_ptr<FuseServer> server, std::string tag, uint32_t request_queues,
           int thread_pool_size = 0);

  DeviceInfo Info() const override;
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  absl::Duration ProcessQueue(Virtqueue& queue) override;
  int QueueEventFd(int index) override;
  bool QueueHasCompletions(int index) override;
  void QueueStopped(int index, Virtqueue* queue) override;
  // The guest's session ends with the device: its inodes, open files and locks go.
  void Reset() override;

  FuseServer& server() { return *server_; }
  void set_server(std::unique_ptr<FuseServer> server) { server_ = std::move(server); }

 private:
  // `may_wait`: on a pool thread, where a waiting request can be interrupted.
  uint32_t Serve(int queue, const DescriptorChain& chain, bool may_wait);

  std::unique_ptr<FuseServer> server_;
  const std::string tag_;
  const uint32_t request_queues_;
  const int thread_pool_size_;
  std::once_flag pool_started_;
  std::unique_ptr<RequestPool> pool_;  // started by the first queue (after the sandbox)
  // With the pool: the heads each queue has in the pool (a guest re-publishing one breaks the
  // queue), which bounds the pool's backlog by the ring sizes. Each used by its queue's worker.
  // A flag per possible head (a packed ring's buffer id is any 16-bit value the driver picks),
  // so the pool path allocates nothing per request.
  struct InFlight {
    std::vector<bool> heads;
    uint32_t count = 0;
  };
  std::vector<InFlight> in_flight_;
};

}  // namespace vhost

#endif  // VHOST_USER_FS_FS_DEVICE_H_
