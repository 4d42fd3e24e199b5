#include "common/virtio/packed_ring.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/virtio/ring_access.h"

namespace vhost {
namespace {

constexpr uint16_t kAvail = 1u << VRING_PACKED_DESC_F_AVAIL;
constexpr uint16_t kUsed = 1u << VRING_PACKED_DESC_F_USED;

}  // namespace

PackedRing::PackedRing(int index, const VringLayout& layout, uint64_t features)
    : Virtqueue(index, layout, features),
      next_avail_(layout.base & 0x7fff),
      avail_wrap_(layout.base & 0x8000),
      // Front ends that send only the avail half mean nothing is in flight: used == avail.
      next_used_((layout.base >> 16) == 0 ? next_avail_ : (layout.base >> 16) & 0x7fff),
      used_wrap_((layout.base >> 16) == 0 ? avail_wrap_ : (layout.base >> 31) != 0),
      signalled_used_(next_used_) {}

uint32_t PackedRing::Base() const {
  const uint32_t avail = next_avail_ | (avail_wrap_ ? 1u << 15 : 0);
  const uint32_t used = next_used_ | (used_wrap_ ? 1u << 15 : 0);
  return avail | used << 16;
}

bool PackedRing::SetBase(uint32_t base) {
  const uint16_t avail = base & 0x7fff;
  const uint16_t used = (base >> 16) & 0x7fff;
  if (avail >= layout_.size || used >= layout_.size) return false;
  next_avail_ = avail;
  avail_wrap_ = base & 0x8000;
  next_used_ = used;
  used_wrap_ = (base >> 31) != 0;
  signalled_used_ = next_used_;
  signalled_used_valid_ = false;
  return true;
}

bool PackedRing::SlotAvailable(uint16_t slot, bool wrap) const {
  return !broken() && slot < layout_.size && IsAvailable(slot, wrap);
}

void PackedRing::RecordPopped(bool on) {
  record_popped_ = on;
  popped_.clear();
  if (on) popped_.reserve(layout_.size);
}

absl::Status PackedRing::MapRings(const GuestMemory& memory) {
  const uint64_t n = layout_.size;
  if (n == 0 || n > kMaxQueueSize) {
    return absl::InvalidArgumentError(absl::StrCat("packed queue size ", n, " not in 1..32768"));
  }
  if (next_avail_ >= n || next_used_ >= n) {
    return absl::InvalidArgumentError(
        absl::StrCat("packed ring base 0x", absl::Hex(layout_.base), " beyond queue size ", n));
  }
  if (layout_.desc_addr % 16 || layout_.avail_addr % 4 || layout_.used_addr % 4) {
    return absl::InvalidArgumentError("misaligned packed ring address");
  }
  // Translate all three areas first and commit them together: a failed re-map (a memory table
  // change that dropped the ring's region) must leave the old pointers whole, never half new.
  auto* desc = reinterpret_cast<vring_packed_desc*>(memory.TranslateUva(layout_.desc_addr, 16 * n));
  auto* driver_event = reinterpret_cast<vring_packed_desc_event*>(
      memory.TranslateUva(layout_.avail_addr, sizeof(vring_packed_desc_event)));
  auto* device_event = reinterpret_cast<vring_packed_desc_event*>(
      memory.TranslateUva(layout_.used_addr, sizeof(vring_packed_desc_event)));
  if (desc == nullptr || driver_event == nullptr || device_event == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "packed ring (desc 0x", absl::Hex(layout_.desc_addr), ") lies outside guest memory"));
  }
  // The front end chooses how its addresses map onto the file: check where they really land.
  if (reinterpret_cast<uintptr_t>(desc) % 16 || reinterpret_cast<uintptr_t>(driver_event) % 4 ||
      reinterpret_cast<uintptr_t>(device_event) % 4) {
    return absl::InvalidArgumentError("packed ring misaligned in host memory");
  }
  desc_ = desc;
  driver_event_ = driver_event;
  device_event_ = device_event;
  return absl::OkStatus();
}

bool PackedRing::IsAvailable(uint16_t slot, bool wrap) const {
  const uint16_t flags = LoadAcquire(&desc_[slot].flags);  // guest-controlled
  return static_cast<bool>(flags & kAvail) == wrap && static_cast<bool>(flags & kUsed) != wrap;
}

bool PackedRing::HasAvailable() { return !broken() && IsAvailable(next_avail_, avail_wrap_); }

bool PackedRing::Pop(DescriptorChain* chain) {
  if (!HasAvailable()) return false;
  chain->Clear();
  popped_.clear();
  uint16_t slot = next_avail_;
  bool wrap = avail_wrap_;
  absl::Status status;
  uint32_t hops = 0;
  for (;; ++hops) {
    if (hops >= layout_.size) {
      status = absl::InvalidArgumentError("chain longer than the ring");
      break;
    }
    if (hops > 0 && !IsAvailable(slot, wrap)) {
      status = absl::InvalidArgumentError("chain continues into a descriptor not made available");
      break;
    }
    vring_packed_desc d;
    std::memcpy(&d, &desc_[slot], sizeof(d));  // read once: the guest may change it under us
    if (record_popped_) popped_.push_back(d);
    if (++slot == layout_.size) {
      slot = 0;
      wrap = !wrap;
    }
    bool more = false;
    status = AddDescriptor(d, hops, chain, &more);
    if (!status.ok() || !more) break;
  }
  if (!status.ok()) {
    MarkBroken(absl::Status(status.code(),
                            absl::StrCat("chain at slot ", next_avail_, ": ", status.message())));
    return false;
  }
  chain->ring_slots = hops + 1;
  next_avail_ = slot;
  avail_wrap_ = wrap;
  return true;
}

absl::Status PackedRing::AddDescriptor(const vring_packed_desc& d, uint32_t hop,
                                       DescriptorChain* chain, bool* more) {
  chain->head = d.id;
  *more = false;
  if (d.flags & VRING_DESC_F_INDIRECT) {
    if (hop != 0 || (d.flags & VRING_DESC_F_NEXT)) {
      return absl::InvalidArgumentError("indirect descriptor must be alone in its chain");
    }
    return WalkIndirect(d, chain);
  }
  *more = d.flags & VRING_DESC_F_NEXT;
  return chain->AddBuffer(*memory_, d.addr, d.len, d.flags & VRING_DESC_F_WRITE);
}

bool PackedRing::PopSaved(absl::Span<const vring_packed_desc> descs, DescriptorChain* chain) {
  if (broken()) return false;
  chain->Clear();
  absl::Status status;
  if (descs.empty() || descs.size() > layout_.size) {
    status = absl::InvalidArgumentError(absl::StrCat("chain of ", descs.size(), " descriptors"));
  }
  for (uint32_t hop = 0; status.ok() && hop < descs.size(); ++hop) {
    bool more = false;
    status = AddDescriptor(descs[hop], hop, chain, &more);
    if (status.ok() && more != (hop + 1 < descs.size())) {
      status = absl::InvalidArgumentError("NEXT flags disagree with the chain's length");
    }
  }
  if (!status.ok()) {
    MarkBroken(absl::Status(
        status.code(), absl::StrCat("chain saved in the inflight region: ", status.message())));
    return false;
  }
  chain->ring_slots = static_cast<uint16_t>(descs.size());
  return true;
}

absl::Status PackedRing::WalkIndirect(const vring_packed_desc& d, DescriptorChain* chain) {
  if (!has_feature(kFeatureIndirectDesc)) {
    return absl::InvalidArgumentError("indirect descriptor without VIRTIO_F_INDIRECT_DESC");
  }
  if (d.len == 0 || d.len % sizeof(vring_packed_desc) != 0 ||
      d.len / sizeof(vring_packed_desc) > kMaxQueueSize) {
    return absl::InvalidArgumentError(absl::StrCat("indirect table of ", d.len, " bytes"));
  }
  // Indirect tables need not be aligned: entries are copied out bytewise.
  const uint8_t* table = memory_->TranslateGpa(d.addr, d.len);
  if (table == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("indirect table at gpa 0x", absl::Hex(d.addr), " outside guest memory"));
  }
  // Entries of an indirect table are used in order; their NEXT flags carry no meaning.
  for (uint32_t i = 0; i < d.len / sizeof(vring_packed_desc); ++i) {
    vring_packed_desc e;
    std::memcpy(&e, table + i * sizeof(e), sizeof(e));
    if (e.flags & VRING_DESC_F_INDIRECT) {
      return absl::InvalidArgumentError("indirect table inside an indirect table");
    }
    RETURN_IF_ERROR(chain->AddBuffer(*memory_, e.addr, e.len, e.flags & VRING_DESC_F_WRITE));
  }
  return absl::OkStatus();
}

void PackedRing::Unpop(const DescriptorChain& chain) {
  if (next_avail_ < chain.ring_slots) {
    next_avail_ += layout_.size;
    avail_wrap_ = !avail_wrap_;
  }
  next_avail_ -= chain.ring_slots;
}

void PackedRing::Push(const DescriptorChain& chain, uint32_t written) {
  if (broken()) return;
  // Migrating: the data's pages are logged before the guest may see the chain used.
  if (log_ != nullptr) LogWritten(chain, written);
  vring_packed_desc* d = &desc_[next_used_];
  StoreRelaxed(&d->id, chain.head);
  StoreRelaxed(&d->len, written);
  StoreRelease(&d->flags, used_wrap_ ? (kAvail | kUsed) : 0);  // publishes id and len
  // The used descriptor lies in the descriptor ring, which QEMU's log_guest_addr (the device
  // area) does not name: its guest address comes from the memory table.
  if (log_ != nullptr && log_rings_) LogHostWrite(d, sizeof(*d));
  next_used_ += chain.ring_slots;
  if (next_used_ >= layout_.size) {
    next_used_ -= layout_.size;
    used_wrap_ = !used_wrap_;
  }
}

Virtqueue::Notify PackedRing::ShouldNotify() {
  FullFence();
  const uint16_t old_idx = signalled_used_;
  const uint16_t new_idx = next_used_;
  if (old_idx == new_idx) return Notify::kNothingNew;
  signalled_used_ = new_idx;
  const uint16_t flags = LoadRelaxed(&driver_event_->flags);
  if (flags == VRING_PACKED_EVENT_FLAG_DISABLE) return Notify::kSuppressed;
  if (flags != VRING_PACKED_EVENT_FLAG_DESC || !has_feature(kFeatureEventIdx)) return Notify::kYes;
  const bool first = !signalled_used_valid_;
  signalled_used_valid_ = true;
  const uint16_t off_wrap = LoadRelaxed(&driver_event_->off_wrap);
  // An event offset from the previous lap of the ring counts as that far behind.
  int event = off_wrap & 0x7fff;
  if (static_cast<bool>(off_wrap >> 15) != used_wrap_) event -= layout_.size;
  return first || NeedEvent(static_cast<uint16_t>(event), new_idx, old_idx) ? Notify::kYes
                                                                            : Notify::kSuppressed;
}

bool PackedRing::EnableNotifications() {
  if (broken()) return false;
  if (has_feature(kFeatureEventIdx)) {
    StoreRelaxed(&device_event_->off_wrap, Base());
    StoreRelease(&device_event_->flags, VRING_PACKED_EVENT_FLAG_DESC);
  } else {
    StoreRelease(&device_event_->flags, VRING_PACKED_EVENT_FLAG_ENABLE);
  }
  if (log_ != nullptr && log_rings_) LogHostWrite(device_event_, sizeof(*device_event_));
  FullFence();
  return HasAvailable();
}

}  // namespace vhost
