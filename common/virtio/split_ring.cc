#include "common/virtio/split_ring.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/virtio/dirty_log.h"
#include "common/virtio/ring_access.h"

namespace vhost {
namespace {

bool Aligned(uint64_t addr, uint64_t alignment) { return addr % alignment == 0; }

}  // namespace

absl::Status SplitRing::MapRings(const GuestMemory& memory) {
  const uint64_t n = layout_.size;
  if (n == 0 || (n & (n - 1)) != 0 || n > kMaxQueueSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("split queue size ", n, " is not a power of two in 1..32768"));
  }
  if (!Aligned(layout_.desc_addr, 16) || !Aligned(layout_.avail_addr, 2) ||
      !Aligned(layout_.used_addr, 4)) {
    return absl::InvalidArgumentError("misaligned split ring address");
  }
  // The event index fields exist whether or not EVENT_IDX is negotiated; require them only if
  // they will be used.
  const uint64_t event = has_feature(kFeatureEventIdx) ? 2 : 0;
  // Translate all three areas first and commit them together: a failed re-map (a memory table
  // change that dropped the ring's region) must leave the old pointers whole, never half new.
  auto* desc = reinterpret_cast<vring_desc*>(memory.TranslateUva(layout_.desc_addr, 16 * n));
  auto* avail =
      reinterpret_cast<vring_avail*>(memory.TranslateUva(layout_.avail_addr, 4 + 2 * n + event));
  auto* used =
      reinterpret_cast<vring_used*>(memory.TranslateUva(layout_.used_addr, 4 + 8 * n + event));
  if (desc == nullptr || avail == nullptr || used == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("split ring (desc 0x", absl::Hex(layout_.desc_addr), ", avail 0x",
                     absl::Hex(layout_.avail_addr), ", used 0x", absl::Hex(layout_.used_addr),
                     ") lies outside guest memory"));
  }
  // The front end chooses how its addresses map onto the file: check where they really land.
  if (!Aligned(reinterpret_cast<uintptr_t>(desc), 16) ||
      !Aligned(reinterpret_cast<uintptr_t>(avail), 2) ||
      !Aligned(reinterpret_cast<uintptr_t>(used), 4)) {
    return absl::InvalidArgumentError("split ring misaligned in host memory");
  }
  desc_ = desc;
  avail_ = avail;
  used_ = used;
  if (!mapped_once_) {
    // The used index in guest memory is the truth after a (re)start.
    used_idx_ = LoadAcquire(&used_->idx);
    signalled_used_ = used_idx_;
    mapped_once_ = true;
  }
  return absl::OkStatus();
}

bool SplitRing::HasAvailable() { return !broken() && LoadAcquire(&avail_->idx) != last_avail_; }

bool SplitRing::Pop(DescriptorChain* chain) {
  if (broken()) return false;
  if (shadow_avail_idx_ == last_avail_) {
    shadow_avail_idx_ = LoadAcquire(&avail_->idx);  // guest-controlled
  }
  const uint16_t avail_idx = shadow_avail_idx_;
  const uint16_t pending = avail_idx - last_avail_;
  if (pending == 0) return false;
  if (pending > layout_.size) {
    MarkBroken(absl::InvalidArgumentError(absl::StrCat("avail index ", avail_idx, " is ", pending,
                                                       " ahead of ", last_avail_,
                                                       ", more than the queue size")));
    return false;
  }
  const uint16_t head = LoadRelaxed(&avail_->ring[last_avail_ & (layout_.size - 1)]);
  ++last_avail_;
  chain->Clear();
  chain->head = head;
  absl::Status status = WalkTable(reinterpret_cast<const uint8_t*>(desc_), layout_.size, head,
                                  /*top_level=*/true, chain);
  if (!status.ok()) {
    MarkBroken(
        absl::Status(status.code(), absl::StrCat("chain at head ", head, ": ", status.message())));
    return false;
  }
  return true;
}

bool SplitRing::PopAt(uint16_t head, DescriptorChain* chain) {
  if (broken()) return false;
  chain->Clear();
  chain->head = head;
  absl::Status status = WalkTable(reinterpret_cast<const uint8_t*>(desc_), layout_.size, head,
                                  /*top_level=*/true, chain);
  if (!status.ok()) {
    MarkBroken(absl::Status(
        status.code(), absl::StrCat("resubmitted chain at head ", head, ": ", status.message())));
    return false;
  }
  return true;
}

absl::Status SplitRing::WalkTable(const uint8_t* table, uint32_t count, uint16_t first,
                                  bool top_level, DescriptorChain* chain) {
  uint32_t i = first;
  // A chain visits each descriptor at most once, so more hops than entries means a loop.
  for (uint32_t hops = 0;; ++hops) {
    if (i >= count)
      return absl::InvalidArgumentError(absl::StrCat("descriptor index ", i, " >= ", count));
    if (hops >= count) return absl::InvalidArgumentError("descriptor loop");
    vring_desc d;
    std::memcpy(&d, table + i * sizeof(d), sizeof(d));  // read once: the guest may change it
    if (d.flags & VRING_DESC_F_INDIRECT) {
      if (!top_level) return absl::InvalidArgumentError("indirect table inside an indirect table");
      if (!has_feature(kFeatureIndirectDesc)) {
        return absl::InvalidArgumentError("indirect descriptor without VIRTIO_F_INDIRECT_DESC");
      }
      if (hops != 0 || (d.flags & VRING_DESC_F_NEXT)) {
        return absl::InvalidArgumentError("indirect descriptor must be alone in its chain");
      }
      if (d.len == 0 || d.len % sizeof(vring_desc) != 0 ||
          d.len / sizeof(vring_desc) > kMaxQueueSize) {
        return absl::InvalidArgumentError(absl::StrCat("indirect table of ", d.len, " bytes"));
      }
      const uint8_t* indirect = memory_->TranslateGpa(d.addr, d.len);
      if (indirect == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("indirect table at gpa 0x", absl::Hex(d.addr), " outside guest memory"));
      }
      return WalkTable(indirect, d.len / sizeof(vring_desc), 0, /*top_level=*/false, chain);
    }
    absl::Status s = chain->AddBuffer(*memory_, d.addr, d.len, d.flags & VRING_DESC_F_WRITE);
    if (!s.ok()) return s;
    if (!(d.flags & VRING_DESC_F_NEXT)) return absl::OkStatus();
    i = d.next;
  }
}

void SplitRing::Push(const DescriptorChain& chain, uint32_t written) {
  if (broken()) return;
  // Migrating: the data's pages are logged before the guest may see the chain used.
  if (log_ != nullptr) LogWritten(chain, written);
  vring_used_elem* elem = &used_->ring[used_idx_ & (layout_.size - 1)];
  StoreRelaxed(&elem->id, chain.head);
  StoreRelaxed(&elem->len, written);
  ++used_idx_;
  StoreRelease(&used_->idx, used_idx_);  // publishes the element written above
  if (log_ != nullptr) {
    LogUsed(elem, sizeof(*elem));
    LogUsed(&used_->idx, sizeof(used_->idx));
  }
}

void SplitRing::LogUsed(const void* field, uint64_t len) const {
  if (!log_rings_) return;
  const auto offset = static_cast<uint64_t>(static_cast<const uint8_t*>(field) -
                                            reinterpret_cast<const uint8_t*>(used_));
  log_->Mark(used_log_gpa_ + offset, len);
}

Virtqueue::Notify SplitRing::ShouldNotify() {
  FullFence();
  const uint16_t old_idx = signalled_used_;
  const uint16_t new_idx = used_idx_;
  if (old_idx == new_idx) return Notify::kNothingNew;
  signalled_used_ = new_idx;
  if (has_feature(kFeatureNotifyOnEmpty) && LoadAcquire(&avail_->idx) == last_avail_) {
    return Notify::kYes;
  }
  bool notify;
  if (has_feature(kFeatureEventIdx)) {
    // After a (re)start we don't know what the guest was last told: notify once to be safe.
    const bool first = !signalled_used_valid_;
    signalled_used_valid_ = true;
    notify = first || NeedEvent(LoadRelaxed(used_event()), new_idx, old_idx);
  } else {
    notify = !(LoadRelaxed(&avail_->flags) & VRING_AVAIL_F_NO_INTERRUPT);
  }
  return notify ? Notify::kYes : Notify::kSuppressed;
}

bool SplitRing::EnableNotifications() {
  if (broken()) return false;
  if (has_feature(kFeatureEventIdx)) {
    StoreRelease(avail_event(), last_avail_);
    if (log_ != nullptr) LogUsed(avail_event(), sizeof(uint16_t));
  }
  FullFence();  // the guest must see avail_event before we look at its avail index again
  return HasAvailable();
}

}  // namespace vhost
