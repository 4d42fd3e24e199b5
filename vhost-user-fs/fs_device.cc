#include "vhost-user-fs/fs_device.h"

#include <linux/virtio_fs.h>

#include <cstring>

#include "common/message.h"

namespace vhost {

FsDevice::FsDevice(std::unique_ptr<FuseServer> server, std::string tag, uint32_t request_queues)
    : server_(std::move(server)), tag_(std::move(tag)), request_queues_(request_queues) {}

DeviceInfo FsDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdFs;
  info.num_queues = 1 + request_queues_;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1);
  info.config_size = sizeof(virtio_fs_config);
  return info;
}

absl::Status FsDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  virtio_fs_config config{};
  std::memcpy(config.tag, tag_.data(), std::min(tag_.size(), sizeof(config.tag)));
  config.num_request_queues = request_queues_;
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config) + offset, data.size());
  return absl::OkStatus();
}

absl::Duration FsDevice::ProcessQueue(Virtqueue& queue) {
  DescriptorChain chain;
  while (queue.Pop(&chain)) queue.Push(chain, server_->Handle(chain));
  return absl::InfiniteDuration();
}

}  // namespace vhost
