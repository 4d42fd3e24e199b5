// virtio-fs (virtio 1.2 §5.11): a high-priority queue (FORGET, INTERRUPT) and request queues,
// every request served by the FUSE server of the shared directory.
#ifndef VHOST_USER_FS_FS_DEVICE_H_
#define VHOST_USER_FS_FS_DEVICE_H_

#include <memory>
#include <string>

#include "common/device/device.h"
#include "vhost-user-fs/fuse_server.h"

namespace vhost {

constexpr uint32_t kVirtioIdFs = 26;

class FsDevice : public VirtioDevice {
 public:
  // thread_pool_size 0: each queue's worker serves its requests itself, one at a time; else
  // the engine's pool of that many threads serves the request queues' requests in parallel.
  // `server` may be null until set_server (the daemon makes it inside its sandbox), which
  // must come before the first queue starts.
  FsDevice(std::unique_ptr<FuseServer> server, std::string tag, uint32_t request_queues,
           int thread_pool_size = 0);

  DeviceInfo Info() const override;
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  void QueueStopped(QueueContext& context) override;
  // The guest's session ends with the device: its inodes, open files and locks go.
  void Reset() override;
  // Live migration: the FUSE session (fs_state.cc).
  absl::StatusOr<std::string> SaveState() override;
  absl::Status LoadState(absl::string_view state) override;

  FuseServer& server() { return *server_; }
  void set_server(std::unique_ptr<FuseServer> server) { server_ = std::move(server); }

 private:
  // `may_wait`: on a pool thread, where a waiting request can be interrupted.
  uint32_t Serve(int queue, const DescriptorChain& chain, bool may_wait);

  std::unique_ptr<FuseServer> server_;
  const std::string tag_;
  const uint32_t request_queues_;
  const int thread_pool_size_;
};

}  // namespace vhost

#endif  // VHOST_USER_FS_FS_DEVICE_H_
