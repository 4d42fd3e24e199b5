// Packed virtqueue (virtio 1.2 §2.8): one descriptor ring shared by driver and device, with
// wrap counters, plus the two event suppression structures.
#ifndef COMMON_VIRTIO_PACKED_RING_H_
#define COMMON_VIRTIO_PACKED_RING_H_

#include <vector>

#include "common/virtio/virtio_ring_defs.h"
#include "common/virtio/virtqueue.h"

namespace vhost {

class PackedRing : public Virtqueue {
 public:
  PackedRing(int index, const VringLayout& layout, uint64_t features);

  bool Pop(DescriptorChain* chain) override;
  void Push(const DescriptorChain& chain, uint32_t written) override;
  void Unpop(const DescriptorChain& chain) override;
  bool HasAvailable() override;
  bool EnableNotifications() override;
  // vhost-user.rst: bits 0-14 next avail slot, 15 its wrap counter, 16-30 next used slot, 31
  // its wrap counter.
  uint32_t Base() const override;
  bool SetBase(uint32_t base) override;
  bool SlotAvailable(uint16_t slot, bool wrap) const override;
  void RecordPopped(bool on) override;
  absl::Span<const vring_packed_desc> Popped() const override { return popped_; }
  bool PopSaved(absl::Span<const vring_packed_desc> descs, DescriptorChain* chain) override;

 protected:
  absl::Status MapRings(const GuestMemory& memory) override;
  Notify ShouldNotify() override;

 private:
  bool IsAvailable(uint16_t slot, bool wrap) const;
  absl::Status WalkIndirect(const vring_packed_desc& d, DescriptorChain* chain);
  // Adds descriptor `d`, the `hop`th of its chain; `more` says whether the chain goes on.
  absl::Status AddDescriptor(const vring_packed_desc& d, uint32_t hop, DescriptorChain* chain,
                             bool* more);

  vring_packed_desc* desc_ = nullptr;
  vring_packed_desc_event* driver_event_ = nullptr;  // written by the guest
  vring_packed_desc_event* device_event_ = nullptr;  // written by us
  uint16_t next_avail_;
  bool avail_wrap_;
  uint16_t next_used_;
  bool used_wrap_;
  uint16_t signalled_used_;
  bool signalled_used_valid_ = false;
  bool record_popped_ = false;
  std::vector<vring_packed_desc> popped_;
};

}  // namespace vhost

#endif  // COMMON_VIRTIO_PACKED_RING_H_
