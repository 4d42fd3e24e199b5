// Split virtqueue (virtio 1.2 §2.7): descriptor table, available ring, used ring.
#ifndef COMMON_VIRTIO_SPLIT_RING_H_
#define COMMON_VIRTIO_SPLIT_RING_H_

#include "common/virtio/virtio_ring_defs.h"
#include "common/virtio/virtqueue.h"

namespace vhost {

class SplitRing : public Virtqueue {
 public:
  SplitRing(int index, const VringLayout& layout, uint64_t features)
      : Virtqueue(index, layout, features),
        last_avail_(layout.base),
        shadow_avail_idx_(layout.base) {}

  bool Pop(DescriptorChain* chain) override;
  void Push(const DescriptorChain& chain, uint32_t written) override;
  void Unpop(const DescriptorChain& chain) override { --last_avail_; }
  bool HasAvailable() override;
  bool EnableNotifications() override;
  uint32_t Base() const override { return last_avail_; }
  bool PopAt(uint16_t head, DescriptorChain* chain) override;
  uint16_t UsedIndex() const override { return used_idx_; }
  void SetNextAvail(uint16_t next) override { last_avail_ = shadow_avail_idx_ = next; }

 protected:
  absl::Status MapRings(const GuestMemory& memory) override;
  Notify ShouldNotify() override;

 private:
  // Follows a chain through `table` (the ring's descriptor table or an indirect table).
  // `table` may be unaligned (indirect tables need not be), so entries are copied out bytewise.
  absl::Status WalkTable(const uint8_t* table, uint32_t count, uint16_t first, bool top_level,
                         DescriptorChain* chain);
  // With a log and VHOST_VRING_F_LOG: marks a write to the used ring, at the front end's
  // log_guest_addr (the spec's rule; it need not be a guest-physical address we know).
  void LogUsed(const void* field, uint64_t len) const;
  uint16_t* used_event() { return &avail_->ring[layout_.size]; }
  uint16_t* avail_event() { return reinterpret_cast<uint16_t*>(&used_->ring[layout_.size]); }

  vring_desc* desc_ = nullptr;
  vring_avail* avail_ = nullptr;
  vring_used* used_ = nullptr;
  uint16_t last_avail_;
  uint16_t shadow_avail_idx_ = 0;  // last avail index read: saves touching the guest's line
  uint16_t used_idx_ = 0;
  uint16_t signalled_used_ = 0;
  bool signalled_used_valid_ = false;
  bool mapped_once_ = false;
};

}  // namespace vhost

#endif  // COMMON_VIRTIO_SPLIT_RING_H_
