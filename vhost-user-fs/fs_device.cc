#include "vhost-user-fs/fs_device.h"

#include <linux/virtio_fs.h>

#include <algorithm>
#include <cstring>

#include "common/virtio/features.h"

namespace vhost {

FsDevice::FsDevice(std::unique_ptr<FuseServer> server, std::string tag, uint32_t request_queues,
                   int thread_pool_size)
    : server_(std::move(server)),
      tag_(std::move(tag)),
      request_queues_(request_queues),
      thread_pool_size_(thread_pool_size) {}

DeviceInfo FsDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdFs;
  info.num_queues = 1 + request_queues_;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1);
  info.config_size = sizeof(virtio_fs_config);
  // The engine starts these threads with the first queue, after the sandbox (a user namespace
  // needs a single-threaded process).
  info.pool_threads = thread_pool_size_;
  // Live migration: the FUSE session travels as device state (fs_state.cc).
  info.migrates_state = true;
  // Replies reach guest memory only through completions, which report the bytes written: the
  // engine's dirty log covers them while QEMU copies memory.
  info.logs_dirty_pages = true;
  return info;
}

absl::Status FsDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  virtio_fs_config config{};
  std::memcpy(config.tag, tag_.data(), std::min(tag_.size(), sizeof(config.tag)));
  config.num_request_queues = request_queues_;
  return ReadConfigBytes(config, offset, data);
}

uint32_t FsDevice::Serve(int queue, const DescriptorChain& chain, bool may_wait) {
  RequestWaits::ScopedQueue scope(queue, may_wait);
  return server_->Handle(chain);
}

QueueResult FsDevice::ProcessQueue(QueueContext& context) {
  const int index = context.index();
  // The high-priority queue (FORGET, INTERRUPT) is served by its own worker even with the
  // pool: an INTERRUPT must get through while every pool thread waits for a lock.
  const bool inline_serving = thread_pool_size_ == 0 || index == 0;
  while (absl::optional<ChainToken> token = context.Take()) {
    if (inline_serving) {
      context.Complete(*token, Serve(index, context.chain(*token), /*may_wait=*/false));
    } else {
      context.Submit(*token, [this, index](const DescriptorChain& chain) {
        return Serve(index, chain, /*may_wait=*/true);
      });
    }
  }
  return QueueResult::Drained();
}

void FsDevice::Reset() {
  if (server_ != nullptr) server_->Reset();
}

absl::StatusOr<std::string> FsDevice::SaveState() {
  if (server_ == nullptr) return absl::FailedPreconditionError("no file system served yet");
  return server_->SaveState();
}

absl::Status FsDevice::LoadState(absl::string_view state) {
  if (server_ == nullptr) return absl::FailedPreconditionError("no file system served yet");
  return server_->LoadState(state);
}

void FsDevice::QueueStopped(QueueContext& context) {
  // Requests in flight finish and are answered before the ring position is reported; those
  // waiting (SETLKW) are cut short with EINTR rather than held up for a lock holder, and so
  // are those no pool thread has started yet (served here, on a stopped queue).
  server_->waits().StopQueue(context.index());
  context.FinishInFlight();
  server_->waits().ResumeQueue(context.index());
}

}  // namespace vhost
