// Inflight I/O tracking (vhost-user.rst, "Inflight I/O tracking"), split rings: a shared region
// the front end keeps across back-end restarts records which chains the back end took and has
// not completed, so that a restarted back end can run them again in the order they were taken.
//
// The region is front-end memory written by an earlier back end: nothing read from it is
// trusted. Every index is bounds-checked and a region that breaks the rules is refused (the
// queue breaks), never followed.
#ifndef COMMON_DEVICE_INFLIGHT_H_
#define COMMON_DEVICE_INFLIGHT_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace vhost {

// One descriptor head's record (the spec's layout).
struct InflightDescSplit {
  uint8_t inflight;  // 1 while the chain at this head is taken and not completed
  uint8_t padding[5];
  uint16_t next;     // unused: chains are completed one at a time, never in batches
  uint64_t counter;  // order in which the chains were taken
};
static_assert(sizeof(InflightDescSplit) == 16);

// One queue's part of the region (the spec's layout), followed by desc_num records.
struct InflightQueueHeader {
  uint64_t features;
  uint16_t version;
  uint16_t desc_num;
  uint16_t last_batch_head;  // the head completed last
  uint16_t used_idx;         // the used index after that completion
};
static_assert(sizeof(InflightQueueHeader) == 16);

constexpr uint16_t kInflightVersion = 1;

// Bytes of one queue's part for `queue_size` descriptors (each part starts 64-byte aligned).
size_t InflightQueueBytes(uint16_t queue_size);
// Writes empty headers for `num_queues` parts of `queue_size` into a zeroed region.
void InitInflightRegion(uint8_t* region, uint16_t num_queues, uint16_t queue_size);

class InflightQueue {
 public:
  // `part` is this queue's part of the region (InflightQueueBytes(desc_num) bytes).
  InflightQueue(uint8_t* part, uint16_t desc_num);

  // For a queue of `ring_size` whose device has published used index `used_idx`: finishes a
  // completion the previous back end was cut off in, and returns the heads still in flight,
  // oldest first. An error means the region cannot be trusted.
  absl::StatusOr<std::vector<uint16_t>> Recover(uint32_t ring_size, uint16_t used_idx);

  // The chain at `head` was taken (before the device acts on it).
  void Taken(uint16_t head);
  // The chain at `head` goes back to the avail ring untouched.
  void Untaken(uint16_t head);
  // Around publishing the used entry of `head`: Completing before, Completed after with the
  // new used index.
  void Completing(uint16_t head);
  void Completed(uint16_t head, uint16_t used_idx);

 private:
  InflightQueueHeader* header() { return reinterpret_cast<InflightQueueHeader*>(part_); }
  InflightDescSplit* desc(uint16_t head) {
    return reinterpret_cast<InflightDescSplit*>(part_ + sizeof(InflightQueueHeader)) + head;
  }

  uint8_t* const part_;
  const uint16_t desc_num_;
  uint64_t counter_ = 0;
};

}  // namespace vhost

#endif  // COMMON_DEVICE_INFLIGHT_H_
