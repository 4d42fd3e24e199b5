#include "common/device/inflight.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"

namespace vhost {
namespace {

// The region outlives this process: a later back end reads what a SIGKILL left. A kill lands
// between two instructions, and every store before it reaches memory, so program order is all
// that matters: the compiler must not move these stores across the ring updates they guard. No
// CPU fence (an mfence per store on the request path) is needed; nobody reads the region while
// this back end lives.
void Order() { std::atomic_signal_fence(std::memory_order_seq_cst); }

}  // namespace

size_t InflightQueueBytes(uint16_t queue_size) {
  const size_t bytes = sizeof(InflightQueueHeader) + size_t{queue_size} * sizeof(InflightDescSplit);
  return (bytes + 63) / 64 * 64;
}

void InitInflightRegion(uint8_t* region, uint16_t num_queues, uint16_t queue_size) {
  for (uint16_t i = 0; i < num_queues; ++i) {
    auto* header =
        reinterpret_cast<InflightQueueHeader*>(region + i * InflightQueueBytes(queue_size));
    header->version = kInflightVersion;
    header->desc_num = queue_size;
  }
}

InflightQueue::InflightQueue(uint8_t* part, uint16_t desc_num) : part_(part), desc_num_(desc_num) {}

absl::StatusOr<std::vector<uint16_t>> InflightQueue::Recover(uint32_t ring_size,
                                                             uint16_t used_idx) {
  // Copy the header once: the front end may change it meanwhile.
  const InflightQueueHeader h = *header();
  if (h.version != kInflightVersion || h.desc_num != desc_num_ || ring_size > desc_num_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "inflight region version ", h.version, " for ", h.desc_num, " descriptors (expected ",
        kInflightVersion, ", ", desc_num_, ", a ring of ", ring_size, ")"));
  }
  if (h.used_idx != used_idx) {
    // Cut off between publishing a used entry and clearing its record: it is done.
    if (h.last_batch_head >= ring_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("inflight region: last head ", h.last_batch_head, " beyond the ring"));
    }
    desc(h.last_batch_head)->inflight = 0;
    header()->used_idx = used_idx;
  }
  std::vector<std::pair<uint64_t, uint16_t>> taken;
  counter_ = 0;
  for (uint32_t head = 0; head < desc_num_; ++head) {
    const InflightDescSplit d = *desc(head);
    if (d.inflight == 0) continue;
    if (d.inflight != 1 || head >= ring_size) {
      return absl::InvalidArgumentError(absl::StrCat("inflight region: head ", head, " marked ",
                                                     d.inflight, " in a ring of ", ring_size));
    }
    taken.emplace_back(d.counter, head);
    counter_ = std::max(counter_, d.counter);
  }
  std::sort(taken.begin(), taken.end());
  std::vector<uint16_t> heads;
  heads.reserve(taken.size());
  for (const auto& [counter, head] : taken) heads.push_back(head);
  return heads;
}

void InflightQueue::Taken(uint16_t head) {
  if (head >= desc_num_) return;
  desc(head)->counter = ++counter_;
  Order();
  desc(head)->inflight = 1;
  Order();
}

void InflightQueue::Untaken(uint16_t head) {
  if (head >= desc_num_) return;
  desc(head)->inflight = 0;
  Order();
}

void InflightQueue::Completing(uint16_t head) {
  header()->last_batch_head = head;
  Order();
}

void InflightQueue::Completed(uint16_t head, uint16_t used_idx) {
  Order();
  if (head < desc_num_) desc(head)->inflight = 0;
  Order();
  header()->used_idx = used_idx;
  Order();
}

}  // namespace vhost
