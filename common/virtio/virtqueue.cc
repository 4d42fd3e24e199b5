#include "common/virtio/virtqueue.h"

#include <sys/eventfd.h>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
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
  if (call_fd_ >= 0 && ShouldNotify()) eventfd_write(call_fd_, 1);
}

void Virtqueue::MarkBroken(const absl::Status& why) {
  if (broken_.exchange(true, std::memory_order_relaxed)) return;
  LOG(ERROR) << "queue " << index_
             << " is broken and stops until it is set up again: " << why.message();
  if (err_fd_ >= 0) eventfd_write(err_fd_, 1);
}

}  // namespace vhost
