// Inflight I/O tracking (vhost-user.rst, "Inflight I/O tracking"): a shared region the front
// end keeps across back-end restarts records which chains the back end took and has not
// completed, so that a restarted back end can run them again in the order they were taken.
// Split rings record heads (InflightQueue); packed rings, whose used elements overwrite ring
// descriptors and whose positions the front end cannot know after a crash, record copies of
// the chains' descriptors and the ring position (InflightQueuePacked).
//
// The region is front-end memory written by an earlier back end: nothing read from it is
// trusted. Every index is bounds-checked and a region that breaks the rules is refused (the
// queue breaks), never followed.
#ifndef COMMON_DEVICE_INFLIGHT_H_
#define COMMON_DEVICE_INFLIGHT_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "common/virtio/virtio_ring_defs.h"

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

// One record of a packed queue's part (the spec's DescStatePacked). Records form a free list
// through `next`; a chain in flight holds `num` records linked through `next`, one per ring
// descriptor, the first (its "head") carrying inflight, last, num and counter.
struct InflightDescPacked {
  uint8_t inflight;  // head: 1 while the chain is taken and not completed
  uint8_t padding;
  uint16_t next;     // the next record of the chain, or of the free list (desc_num: none)
  uint16_t last;     // head: the chain's last record
  uint16_t num;      // head: records (ring descriptors) in the chain
  uint64_t counter;  // head: order in which the chains were taken
  uint16_t id;       // the ring descriptor, as read
  uint16_t flags;
  uint32_t len;
  uint64_t addr;
};
static_assert(sizeof(InflightDescPacked) == 32);

// A packed queue's part (the spec's QueueRegionPacked), followed by desc_num records. The
// old_* fields are the state before the completion in progress, if any.
struct InflightQueueHeaderPacked {
  uint64_t features;
  uint16_t version;
  uint16_t desc_num;
  uint16_t free_head;
  uint16_t old_free_head;
  uint16_t used_idx;  // the device's next used slot and its wrap counter
  uint16_t old_used_idx;
  uint8_t used_wrap_counter;
  uint8_t old_used_wrap_counter;
  // The spec's padding. Its first byte says the rest holds a packed ring's state: the region
  // is made before the ring type is negotiated (with the split layout's empty header), and a
  // fresh part must be set up from the front end's ring base, not read.
  uint8_t packed_state;
  uint8_t padding[6];
};
static_assert(sizeof(InflightQueueHeaderPacked) == 32);

constexpr uint16_t kInflightVersion = 1;
constexpr uint8_t kInflightPackedState = 0x50;  // 'P'

// Bytes of one queue's part for `queue_size` descriptors: room for either layout, since the
// region is made before the ring type is known (each part starts 64-byte aligned).
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

// A packed queue's part. Nothing read from the region after Recover is trusted either: the
// free list and the chains' last records are kept privately as well, and the region is only
// written.
class InflightQueuePacked {
 public:
  // A chain left in flight: its head record and the ring descriptors it was taken from, copied
  // out of the region (not yet checked against guest memory).
  struct Chain {
    uint16_t record = 0;
    std::vector<vring_packed_desc> descs;
  };
  struct Recovered {
    uint32_t base = 0;          // the ring position, as for SET_VRING_BASE (PackedRing::Base())
    std::vector<Chain> chains;  // oldest first
  };
  // Whether ring slot `slot` holds a descriptor the driver made available in the lap of wrap
  // counter `wrap` (that is, not a used element written there).
  using SlotAvailable = std::function<bool(uint16_t slot, bool wrap)>;

  // `part` is this queue's part of the region (InflightQueueBytes(desc_num) bytes).
  InflightQueuePacked(uint8_t* part, uint16_t desc_num);

  // For a packed ring of `ring_size`. A part that holds no packed state yet is set up for the
  // position `base` the front end gave (nothing in flight) and returns it. Otherwise finishes
  // or undoes the completion the previous back end was cut off in and returns the region's
  // ring position, which replaces the front end's, and the chains still in flight. An error
  // means the region cannot be trusted.
  absl::StatusOr<Recovered> Recover(uint32_t ring_size, uint32_t base,
                                    const SlotAvailable& available);

  // The chain made of ring descriptors `descs` was taken (before the device acts on it);
  // returns its head record, or nullopt when there is no free record (the ring took more than
  // it holds).
  absl::optional<uint16_t> Taken(absl::Span<const vring_packed_desc> descs);
  // The chain taken last goes back to the ring untouched (repeatable in reverse order).
  void Untaken(uint16_t record);
  // Around writing the used element of the chain at `record` (`slots` ring descriptors):
  // Completing before, Completed after.
  void Completing(uint16_t record, uint16_t slots);
  void Completed(uint16_t record);

 private:
  InflightQueueHeaderPacked* header() {
    return reinterpret_cast<InflightQueueHeaderPacked*>(part_);
  }
  InflightDescPacked* desc(uint16_t record) {
    return reinterpret_cast<InflightDescPacked*>(part_ + sizeof(InflightQueueHeaderPacked)) +
           record;
  }
  uint32_t Reset(uint32_t base);

  uint8_t* const part_;
  const uint16_t desc_num_;
  uint16_t ring_size_ = 0;
  uint64_t counter_ = 0;
  // Private copies of what the region says.
  std::vector<uint16_t> next_;
  std::vector<uint16_t> last_;
  uint16_t free_head_ = 0;
  uint16_t used_idx_ = 0;
  bool used_wrap_ = true;
};

}  // namespace vhost

#endif  // COMMON_DEVICE_INFLIGHT_H_
