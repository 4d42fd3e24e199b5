#include "common/virtio/virtqueue.h"

#include <sys/eventfd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/virtio/dirty_log.h"
#include "common/virtio/packed_ring.h"
#include "common/virtio/split_ring.h"
#include "glog/logging.h"

namespace vhost {

absl::StatusOr<std::unique_ptr<Virtqueue>> Virtqueue::Create(
    int index, const VringLayout& layout, uint64_t features,
    std::shared_ptr<const GuestMemory> memory) {
  std::unique_ptr<Virtqueue> queue;
  if (features & Bit(kFeatureRingPacked)) {
    queue = std::make_unique<PackedRing>(index, layout, features);
  } else {
    queue = std::make_unique<SplitRing>(index, layout, features);
  }
  RETURN_IF_ERROR(queue->UpdateMemory(std::move(memory)));
  return queue;
}

absl::Status Virtqueue::UpdateMemory(std::shared_ptr<const GuestMemory> memory) {
  absl::Status status = MapRings(*memory);
  if (!status.ok()) {
    return absl::Status(status.code(), absl::StrCat("queue ", index_, ": ", status.message()));
  }
  memory_ = std::move(memory);
  return absl::OkStatus();
}

void Virtqueue::NotifyGuestIfNeeded() {
  const uint32_t faults = GuestMemoryFaultCount();
  if (faults != memory_faults_seen_) {
    memory_faults_seen_ = faults;
    if (memory_ && memory_->faulted()) {
      MarkBroken(absl::DataLossError(
          "the front end shrank a guest memory file under its mapping (SIGBUS survived)"));
    }
  }
  if (broken()) return;
  // A failed write (EAGAIN on a full non-eventfd) only loses this call: the front end's problem.
  switch (ShouldNotify()) {
    case Notify::kNothingNew:
      return;
    case Notify::kSuppressed:
      stats_->suppressed.Add(1);
      return;
    case Notify::kYes:
      stats_->notifications.Add(1);
      if (call_fd_ >= 0) eventfd_write(call_fd_, 1);
      return;
  }
}

void Virtqueue::LogWritten(const DescriptorChain& chain, uint32_t written) const {
  // A device that claims more than the chain holds gets the chain's bytes logged, no more.
  uint64_t left = std::min<uint64_t>(written, chain.writable_bytes);
  for (const iovec& segment : chain.writable) {
    if (left == 0) break;
    const uint64_t n = std::min<uint64_t>(left, segment.iov_len);
    LogHostWrite(segment.iov_base, n);  // a segment never spans regions (AppendSegments)
    left -= n;
  }
}

void Virtqueue::LogHostWrite(const void* host, uint64_t len) const {
  uint64_t gpa;
  if (memory_->HostToGpa(host, &gpa)) log_->Mark(gpa, len);
}

void Virtqueue::MarkBroken(const absl::Status& why) {
  if (broken_.exchange(true, std::memory_order_relaxed)) return;
  stats_->errors.AddShared(1);
  LOG(ERROR) << "queue " << index_
             << " is broken and stops until it is set up again: " << why.message();
  if (err_fd_ >= 0) eventfd_write(err_fd_, 1);
}

}  // namespace vhost
