// virtio-blk (virtio 1.2 §5.2): reads and writes straight between the backing store and the
// guest's buffers on one asynchronous IoRing per virtqueue; FLUSH, write-back or
// write-through (CONFIG_WCE), DISCARD and WRITE_ZEROES, GET_ID, read-only disks, several queues.
#ifndef VHOST_USER_BLK_BLK_DEVICE_H_
#define VHOST_USER_BLK_BLK_DEVICE_H_

#include <linux/virtio_blk.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "common/block/disk.h"
#include "common/device/device.h"
#include "vhost-user-blk/blk_request.h"

namespace vhost {

constexpr uint32_t kVirtioIdBlock = 2;

struct BlkOptions {
  uint32_t num_queues = 1;
  uint32_t max_queue_size = 1024;
  bool read_only = false;
  std::string serial;  // GET_ID, at most 20 bytes
  uint32_t logical_block_size = 512;
  uint32_t physical_block_size = 4096;
  // Limits advertised for DISCARD / WRITE_ZEROES (honest: what one request may ask of us).
  uint32_t max_discard_sectors = 1u << 30;
  uint32_t max_discard_segments = 32;
};

class BlkDevice : public VirtioDevice {
 public:
  BlkDevice(std::unique_ptr<Disk> disk, BlkOptions options);

  DeviceInfo Info() const override;
  absl::Status SetFeatures(uint64_t features) override;
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  absl::Status WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) override;
  absl::Status QueueStarted(QueueContext& context) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  bool HasCompletions(QueueContext& context) override;
  void QueueStopped(QueueContext& context) override;
  void Reset() override;
  void Reload() override;

  uint64_t capacity_sectors() const { return capacity_sectors_.load(); }
  bool writeback() const { return writeback_.load(); }

 private:
  // What a request in flight needs besides its chain (which the context holds), at a fixed
  // place so the I/O can point into it. Its ChainToken is the I/O's token.
  struct Request {
    BlkRequest request;
    uint64_t expected = 0;  // bytes the I/O must transfer
  };
  struct QueueState {
    std::unique_ptr<IoRing> ring;
    std::unique_ptr<DiskQueue> io;  // the disk on `ring`
    std::vector<Request> requests;  // by ChainToken: one per ring entry, sized in QueueStarted
  };

  virtio_blk_config Config() const;
  // Starts the request or completes it at once. Returns true if I/O was submitted.
  bool Start(QueueState& state, QueueContext& context, ChainToken token);
  void Finish(QueueState& state, QueueContext& context, ChainToken token, uint8_t status);
  void OnIoDone(QueueState& state, QueueContext& context, uint64_t token, int64_t result);
  uint8_t CheckRange(uint64_t sector, uint64_t bytes) const;
  uint8_t DiscardOrWriteZeroes(const BlkRequest& request);

  const std::unique_ptr<Disk> disk_;
  const BlkOptions options_;
  std::atomic<uint64_t> capacity_sectors_;
  std::atomic<bool> writeback_{true};
  uint64_t features_ = 0;
  // Made by the constructor and kept, one per virtqueue.
  std::vector<std::unique_ptr<QueueState>> queues_;
};

}  // namespace vhost

#endif  // VHOST_USER_BLK_BLK_DEVICE_H_
