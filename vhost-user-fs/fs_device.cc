#include "vhost-user-fs/fs_device.h"

#include <linux/virtio_fs.h>

#include <cstring>

#include "common/message.h"
#include "glog/logging.h"

namespace vhost {

FsDevice::FsDevice(std::unique_ptr<FuseServer> server, std::string tag, uint32_t request_queues,
                   int thread_pool_size)
    : server_(std::move(server)),
      tag_(std::move(tag)),
      request_queues_(request_queues),
      thread_pool_size_(thread_pool_size),
      in_flight_(1 + request_queues) {}

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
  return ReadConfigBytes(config, offset, data);
}

int FsDevice::QueueEventFd(int index) {
  if (thread_pool_size_ == 0) return -1;
  // Threads are started here, once the daemon is sandboxed (a user namespace needs a
  // single-threaded process).
  std::call_once(pool_started_, [this] {
    pool_ = std::make_unique<RequestPool>(
        thread_pool_size_, 1 + request_queues_,
        [this](int queue, const DescriptorChain& chain) { return Serve(queue, chain, true); });
  });
  return pool_->event_fd(index);
}

uint32_t FsDevice::Serve(int queue, const DescriptorChain& chain, bool may_wait) {
  RequestWaits::ScopedQueue scope(queue, may_wait);
  return server_->Handle(chain);
}

bool FsDevice::QueueHasCompletions(int index) {
  return pool_ != nullptr && pool_->HasCompletions(index);
}

absl::Duration FsDevice::ProcessQueue(Virtqueue& queue) {
  DescriptorChain chain;
  // The high-priority queue (FORGET, INTERRUPT) is served by its own worker even with the
  // pool: an INTERRUPT must get through while every pool thread waits for a lock.
  if (pool_ == nullptr || queue.index() == 0) {
    while (queue.Pop(&chain)) queue.Push(chain, Serve(queue.index(), chain, false));
    return absl::InfiniteDuration();
  }
  InFlight& in_flight = in_flight_[queue.index()];
  if (in_flight.heads.empty()) in_flight.heads.assign(1 << 16, false);
  for (auto& [done, written] : pool_->TakeCompletions(queue.index())) {
    in_flight.heads[done.head] = false;
    --in_flight.count;
    queue.Push(done, written);
  }
  while (queue.Pop(&chain)) {
    if (in_flight.count >= queue.size() || in_flight.heads[chain.head]) {
      // The ring holds each head once: the guest made one available again while it is ours.
      LOG_EVERY_N(WARNING, 100) << "fs queue " << queue.index() << ": head " << chain.head
                                << " made available while in flight";
      queue.MarkBroken(absl::DataLossError("a chain made available again while in flight"));
      break;
    }
    in_flight.heads[chain.head] = true;
    ++in_flight.count;
    pool_->Submit(queue.index(), chain);
  }
  // Requests in the pool come back through the queue's eventfd.
  return kHoldingUntilDeviceEvent;
}

void FsDevice::Reset() {
  if (server_ != nullptr) server_->Reset();
}

void FsDevice::QueueStopped(int index, Virtqueue* queue) {
  if (pool_ == nullptr) return;
  // Requests in flight finish and are answered before the ring position is reported; those
  // waiting (SETLKW) are cut short with EINTR rather than held up for a lock holder.
  server_->waits().StopQueue(index);
  pool_->Drain(index);
  server_->waits().ResumeQueue(index);
  for (auto& [done, written] : pool_->TakeCompletions(index)) {
    if (queue != nullptr) queue->Push(done, written);
  }
  in_flight_[index] = InFlight();
  if (queue != nullptr) queue->NotifyGuestIfNeeded();
}

}  // namespace vhost
