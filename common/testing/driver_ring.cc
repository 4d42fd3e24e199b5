#include "common/testing/driver_ring.h"

#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>

namespace vhost {
namespace testing {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio rings are little-endian");
static_assert(sizeof(vring_desc) == 16 && sizeof(vring_packed_desc) == 16);

constexpr uint64_t kDescSize = 16;
constexpr uint16_t kPackedAvail = 1u << VRING_PACKED_DESC_F_AVAIL;
constexpr uint16_t kPackedUsed = 1u << VRING_PACKED_DESC_F_USED;

uint64_t AlignUp(uint64_t value, uint64_t align) { return (value + align - 1) & ~(align - 1); }

uint16_t* U16(uint8_t* base, size_t offset) { return reinterpret_cast<uint16_t*>(base + offset); }
uint16_t Load(const uint8_t* base, size_t offset, int order = __ATOMIC_RELAXED) {
  return __atomic_load_n(reinterpret_cast<const uint16_t*>(base + offset), order);
}
void Store(uint8_t* base, size_t offset, uint16_t value, int order = __ATOMIC_RELAXED) {
  __atomic_store_n(U16(base, offset), value, order);
}
void FullBarrier() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// Offsets inside the split areas.
constexpr size_t kFlagsOffset = 0;
constexpr size_t kIdxOffset = 2;
constexpr size_t kRingOffset = 4;

void WriteSplitDesc(uint8_t* at, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
  vring_desc d;
  d.addr = addr;
  d.len = len;
  d.flags = flags;
  d.next = next;
  std::memcpy(at, &d, sizeof(d));
}

// Writes everything but the flags, which are stored with `order` (relaxed for non-heads).
void WritePackedDesc(uint8_t* at, uint64_t addr, uint32_t len, uint16_t id, uint16_t flags,
                     int order) {
  std::memcpy(at + offsetof(vring_packed_desc, addr), &addr, sizeof(addr));
  std::memcpy(at + offsetof(vring_packed_desc, len), &len, sizeof(len));
  std::memcpy(at + offsetof(vring_packed_desc, id), &id, sizeof(id));
  Store(at, offsetof(vring_packed_desc, flags), flags, order);
}

}  // namespace

absl::StatusOr<RingSizes> ComputeRingSizes(RingLayout layout, uint32_t queue_size) {
  if (queue_size == 0 || queue_size > kMaxRingSize) {
    return absl::InvalidArgumentError(absl::StrCat("queue size ", queue_size, " not in 1..32768"));
  }
  RingSizes s;
  s.desc_size = kDescSize * queue_size;
  s.desc_align = 16;
  if (layout == RingLayout::kSplit) {
    if ((queue_size & (queue_size - 1)) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("split queue size ", queue_size, " is not a power of two"));
    }
    s.driver_size = kRingOffset + 2 * queue_size + 2;
    s.driver_align = 2;
    s.device_size = kRingOffset + sizeof(vring_used_elem) * queue_size + 2;
    s.device_align = 4;
  } else {
    s.driver_size = sizeof(vring_packed_desc_event);
    s.driver_align = 4;
    s.device_size = sizeof(vring_packed_desc_event);
    s.device_align = 4;
  }
  const RingAddresses a = LayoutRings(s, 0);
  s.total_size = a.device + s.device_size;
  return s;
}

RingAddresses LayoutRings(const RingSizes& sizes, uint64_t base) {
  RingAddresses a;
  a.desc = AlignUp(base, 16);
  a.driver = AlignUp(a.desc + sizes.desc_size, sizes.driver_align);
  a.device = AlignUp(a.driver + sizes.driver_size, sizes.device_align);
  return a;
}

DriverRing::DriverRing(DriverMemory* memory, const Config& config)
    : memory_(memory), config_(config) {}

absl::StatusOr<std::unique_ptr<DriverRing>> DriverRing::Create(DriverMemory* memory,
                                                               const Config& config) {
  absl::StatusOr<RingSizes> sizes = ComputeRingSizes(config.layout, config.size);
  if (!sizes.ok()) return sizes.status();
  struct Area {
    const char* name;
    uint64_t gpa, size, align;
    uint8_t** host;
  };
  std::unique_ptr<DriverRing> ring(new DriverRing(memory, config));
  const Area areas[] = {
      {"descriptor", config.addresses.desc, sizes->desc_size, sizes->desc_align, &ring->desc_},
      {"driver", config.addresses.driver, sizes->driver_size, sizes->driver_align, &ring->driver_},
      {"device", config.addresses.device, sizes->device_size, sizes->device_align, &ring->device_},
  };
  for (const Area& area : areas) {
    uint8_t* host = memory->HostAddress(area.gpa, area.size);
    if (host == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(area.name, " area at 0x", absl::Hex(area.gpa),
                                                     " (", area.size, " bytes) is not mapped"));
    }
    if (area.gpa % area.align != 0 || reinterpret_cast<uintptr_t>(host) % area.align != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(area.name, " area at 0x", absl::Hex(area.gpa), " is misaligned"));
    }
    std::memset(host, 0, area.size);
    *area.host = host;
  }

  const uint32_t n = config.size;
  ring->num_free_ = n;
  ring->free_stack_.resize(n);
  for (uint32_t i = 0; i < n; ++i) ring->free_stack_[i] = n - 1 - i;
  ring->free_top_ = n;
  ring->next_.assign(n, 0);
  ring->chain_count_.assign(n, 0);
  ring->raw_.assign(n, 0);
  if (config.layout == RingLayout::kSplit) {
    const uint16_t start = config.start_index;
    ring->avail_idx_ = ring->published_idx_ = ring->used_idx_ = start;
    Store(ring->driver_, kIdxOffset, start);
    Store(ring->driver_, kRingOffset + 2 * n, start);  // used_event
    Store(ring->device_, kIdxOffset, start);
    Store(ring->device_, kRingOffset + sizeof(vring_used_elem) * n, start);  // avail_event
  } else {
    ring->pending_slot_.resize(n);
    ring->pending_flags_.resize(n);
  }
  FullBarrier();
  return ring;
}

absl::StatusOr<uint16_t> DriverRing::AddChain(absl::Span<const Buffer> readable,
                                              absl::Span<const Buffer> writable,
                                              absl::optional<uint64_t> indirect_table_gpa) {
  const size_t n = readable.size() + writable.size();
  if (n == 0 || n > config_.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("a chain of ", n, " buffers on a ring of ", config_.size));
  }
  const uint32_t needed = indirect_table_gpa.has_value() ? 1 : n;
  if (needed > num_free_ || free_top_ == 0) {
    return absl::ResourceExhaustedError("ring full");
  }
  if (indirect_table_gpa.has_value()) {
    absl::Status status = WriteIndirect(*indirect_table_gpa, readable, writable);
    if (!status.ok()) return status;
  }
  return packed() ? AddPackedChain(readable, writable, indirect_table_gpa)
                  : AddSplitChain(readable, writable, indirect_table_gpa);
}

absl::Status DriverRing::WriteIndirect(uint64_t gpa, absl::Span<const Buffer> readable,
                                       absl::Span<const Buffer> writable) {
  const size_t n = readable.size() + writable.size();
  uint8_t* table = memory_->HostAddress(gpa, n * kDescSize);
  if (table == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("indirect table at 0x", absl::Hex(gpa), " is not mapped"));
  }
  for (size_t i = 0; i < n; ++i) {
    const bool write = i >= readable.size();
    const Buffer& b = write ? writable[i - readable.size()] : readable[i];
    uint16_t flags = write ? VRING_DESC_F_WRITE : 0;
    uint8_t* at = table + i * kDescSize;
    if (packed()) {
      WritePackedDesc(at, b.gpa, b.len, 0, flags, __ATOMIC_RELAXED);
    } else {
      if (i + 1 < n) flags |= VRING_DESC_F_NEXT;
      WriteSplitDesc(at, b.gpa, b.len, flags, i + 1 < n ? i + 1 : 0);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> DriverRing::AddSplitChain(absl::Span<const Buffer> readable,
                                                   absl::Span<const Buffer> writable,
                                                   absl::optional<uint64_t> indirect_table_gpa) {
  const uint16_t head = free_stack_[--free_top_];
  uint32_t count = 1;
  if (indirect_table_gpa.has_value()) {
    const size_t n = readable.size() + writable.size();
    WriteSplitDesc(desc_ + head * kDescSize, *indirect_table_gpa, n * kDescSize,
                   VRING_DESC_F_INDIRECT, 0);
    next_[head] = 0;
  } else {
    count = readable.size() + writable.size();
    uint16_t cur = head;
    for (uint32_t i = 0; i < count; ++i) {
      const bool write = i >= readable.size();
      const Buffer& b = write ? writable[i - readable.size()] : readable[i];
      const bool last = i + 1 == count;
      const uint16_t next = last ? 0 : free_stack_[--free_top_];
      const uint16_t flags = (write ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT);
      WriteSplitDesc(desc_ + cur * kDescSize, b.gpa, b.len, flags, next);
      next_[cur] = next;
      cur = next;
    }
  }
  chain_count_[head] = count;
  num_free_ -= count;
  ++in_flight_;
  Store(driver_, kRingOffset + 2 * (avail_idx_ & (config_.size - 1)), head);
  ++avail_idx_;
  return head;
}

uint16_t DriverRing::PackedAvailBits() const { return avail_wrap_ ? kPackedAvail : kPackedUsed; }

void DriverRing::AdvancePackedAvail() {
  if (++avail_idx_ == config_.size) {
    avail_idx_ = 0;
    avail_wrap_ = !avail_wrap_;
  }
}

absl::StatusOr<uint16_t> DriverRing::AddPackedChain(absl::Span<const Buffer> readable,
                                                    absl::Span<const Buffer> writable,
                                                    absl::optional<uint64_t> indirect_table_gpa) {
  const uint16_t id = free_stack_[--free_top_];
  const uint16_t head_slot = avail_idx_;
  uint16_t head_flags = 0;
  uint32_t count = 1;
  if (indirect_table_gpa.has_value()) {
    const size_t n = readable.size() + writable.size();
    head_flags = VRING_DESC_F_INDIRECT | PackedAvailBits();
    WritePackedDesc(desc_ + head_slot * kDescSize, *indirect_table_gpa, n * kDescSize, id, 0,
                    __ATOMIC_RELAXED);
    AdvancePackedAvail();
  } else {
    count = readable.size() + writable.size();
    for (uint32_t i = 0; i < count; ++i) {
      const bool write = i >= readable.size();
      const Buffer& b = write ? writable[i - readable.size()] : readable[i];
      const uint16_t flags = (write ? VRING_DESC_F_WRITE : 0) |
                             (i + 1 < count ? VRING_DESC_F_NEXT : 0) | PackedAvailBits();
      if (i == 0) {
        head_flags = flags;
        WritePackedDesc(desc_ + avail_idx_ * kDescSize, b.gpa, b.len, id, 0, __ATOMIC_RELAXED);
      } else {
        WritePackedDesc(desc_ + avail_idx_ * kDescSize, b.gpa, b.len, id, flags, __ATOMIC_RELAXED);
      }
      AdvancePackedAvail();
    }
  }
  pending_slot_[num_pending_] = head_slot;
  pending_flags_[num_pending_] = head_flags;
  ++num_pending_;
  chain_count_[id] = count;
  num_free_ -= count;
  ++in_flight_;
  return id;
}

bool DriverRing::Publish() {
  if (packed()) {
    for (uint32_t i = 0; i < num_pending_; ++i) {
      Store(desc_ + pending_slot_[i] * kDescSize, offsetof(vring_packed_desc, flags),
            pending_flags_[i], __ATOMIC_RELEASE);
    }
    num_pending_ = 0;
    FullBarrier();
    return PackedKickNeeded();
  }
  Store(driver_, kIdxOffset, avail_idx_, __ATOMIC_RELEASE);
  FullBarrier();
  return SplitKickNeeded();
}

bool DriverRing::SplitKickNeeded() {
  const uint16_t old_idx = published_idx_;
  const uint16_t new_idx = avail_idx_;
  published_idx_ = new_idx;
  if (old_idx == new_idx) return false;
  if (config_.event_idx) return vring_need_event(AvailEvent(), new_idx, old_idx);
  return !(UsedFlags() & VRING_USED_F_NO_NOTIFY);
}

bool DriverRing::PackedKickNeeded() {
  // Positions over two laps of the ring: the wrap counter starts at 1 for the first lap.
  const uint32_t n = config_.size;
  auto linear = [n](uint32_t slot, bool wrap) { return slot + (wrap ? 0 : n); };
  const uint32_t old_pos = linear(published_idx_, published_wrap_);
  const uint32_t added = (linear(avail_idx_, avail_wrap_) + 2 * n - old_pos) % (2 * n);
  published_idx_ = avail_idx_;
  published_wrap_ = avail_wrap_;
  if (added == 0) return false;
  const PackedEvent event = DeviceEvent();
  if (event.flags == VRING_PACKED_EVENT_FLAG_DISABLE) return false;
  if (event.flags != VRING_PACKED_EVENT_FLAG_DESC || !config_.event_idx) return true;
  const uint32_t off = event.off_wrap & 0x7fff;
  if (off >= n) return true;  // nonsense from the device: kick to be safe
  const bool wrap = event.off_wrap >> VRING_PACKED_EVENT_F_WRAP_CTR;
  // Kick if the requested slot is among those just made available.
  return (linear(off, wrap) + 2 * n - old_pos) % (2 * n) < added;
}

bool DriverRing::Complete(uint32_t id, uint32_t* slots) {
  if (id < config_.size && chain_count_[id] != 0) {
    const uint32_t count = chain_count_[id];
    chain_count_[id] = 0;
    *slots = count;
    if (raw_[id]) {
      raw_[id] = 0;
      --raw_outstanding_;
      return true;
    }
    if (packed()) {
      free_stack_[free_top_++] = id;
    } else {
      uint16_t cur = id;
      for (uint32_t i = 0; i < count; ++i) {
        free_stack_[free_top_++] = cur;
        cur = next_[cur];
      }
    }
    num_free_ += count;
    --in_flight_;
    return true;
  }
  if (raw_outstanding_ > 0) {
    --raw_outstanding_;
    *slots = 1;
    return true;
  }
  return false;
}

absl::StatusOr<absl::optional<UsedElement>> DriverRing::PollUsed() {
  return packed() ? PollPacked() : PollSplit();
}

absl::StatusOr<absl::optional<UsedElement>> DriverRing::PollSplit() {
  const uint16_t device_idx = Load(device_, kIdxOffset, __ATOMIC_ACQUIRE);
  if (device_idx == used_idx_) return absl::nullopt;
  const uint16_t pending = device_idx - used_idx_;
  if (pending > in_flight_ + raw_outstanding_) {
    return absl::InternalError(absl::StrCat("device moved the used index by ", pending, " with ",
                                            in_flight_ + raw_outstanding_, " chains in flight"));
  }
  vring_used_elem elem;
  std::memcpy(&elem, device_ + kRingOffset + sizeof(elem) * (used_idx_ & (config_.size - 1)),
              sizeof(elem));
  uint32_t slots;
  if (!Complete(elem.id, &slots)) {
    return absl::InternalError(
        absl::StrCat("device reported id ", elem.id, " which is not in flight"));
  }
  ++used_idx_;
  return UsedElement{elem.id, elem.len};
}

absl::StatusOr<absl::optional<UsedElement>> DriverRing::PollPacked() {
  uint8_t* at = desc_ + used_idx_ * kDescSize;
  const uint16_t flags = Load(at, offsetof(vring_packed_desc, flags), __ATOMIC_ACQUIRE);
  const bool avail = flags & kPackedAvail;
  const bool used = flags & kPackedUsed;
  if (avail != used || used != used_wrap_) return absl::nullopt;
  vring_packed_desc d;
  std::memcpy(&d, at, sizeof(d));
  uint32_t slots;
  if (!Complete(d.id, &slots)) {
    return absl::InternalError(
        absl::StrCat("device reported id ", d.id, " which is not in flight"));
  }
  used_idx_ += slots;
  if (used_idx_ >= config_.size) {
    used_idx_ -= config_.size;
    used_wrap_ = !used_wrap_;
  }
  return UsedElement{d.id, d.len};
}

absl::optional<UsedElement> DriverRing::PollUsedRaw() {
  UsedElement out;
  if (packed()) {
    uint8_t* at = desc_ + used_idx_ * kDescSize;
    const uint16_t flags = Load(at, offsetof(vring_packed_desc, flags), __ATOMIC_ACQUIRE);
    if (bool(flags & kPackedAvail) != used_wrap_ || bool(flags & kPackedUsed) != used_wrap_) {
      return absl::nullopt;
    }
    vring_packed_desc d;
    std::memcpy(&d, at, sizeof(d));
    uint32_t slots = 1;
    Complete(d.id, &slots);
    used_idx_ += slots;
    while (used_idx_ >= config_.size) {
      used_idx_ -= config_.size;
      used_wrap_ = !used_wrap_;
    }
    out = {d.id, d.len};
  } else {
    if (Load(device_, kIdxOffset, __ATOMIC_ACQUIRE) == used_idx_) return absl::nullopt;
    vring_used_elem elem;
    std::memcpy(&elem, device_ + kRingOffset + sizeof(elem) * (used_idx_ & (config_.size - 1)),
                sizeof(elem));
    uint32_t slots;
    Complete(elem.id, &slots);
    ++used_idx_;
    out = {elem.id, elem.len};
  }
  return out;
}

void DriverRing::EnableInterrupts() {
  if (packed()) {
    if (config_.event_idx) {
      SetDriverEvent({static_cast<uint16_t>(used_idx_ | (used_wrap_ ? 0x8000 : 0)),
                      VRING_PACKED_EVENT_FLAG_DESC});
    } else {
      SetDriverEvent({0, VRING_PACKED_EVENT_FLAG_ENABLE});
    }
  } else {
    SetAvailFlags(0);
    if (config_.event_idx) SetUsedEvent(used_idx_);
  }
  FullBarrier();
}

void DriverRing::DisableInterrupts() {
  if (packed()) {
    SetDriverEvent({0, VRING_PACKED_EVENT_FLAG_DISABLE});
  } else {
    SetAvailFlags(VRING_AVAIL_F_NO_INTERRUPT);
    if (config_.event_idx) SetUsedEvent(used_idx_ - 1);
  }
  FullBarrier();
}

void DriverRing::SetAvailFlags(uint16_t flags) {
  if (!packed()) Store(driver_, kFlagsOffset, flags, __ATOMIC_RELEASE);
}

void DriverRing::SetUsedEvent(uint16_t used_event) {
  if (!packed()) Store(driver_, kRingOffset + 2 * config_.size, used_event, __ATOMIC_RELEASE);
}

void DriverRing::SetDriverEvent(PackedEvent event) {
  if (!packed()) return;
  Store(driver_, offsetof(vring_packed_desc_event, off_wrap), event.off_wrap);
  Store(driver_, offsetof(vring_packed_desc_event, flags), event.flags, __ATOMIC_RELEASE);
}

uint16_t DriverRing::UsedFlags() const {
  return packed() ? 0 : Load(device_, kFlagsOffset, __ATOMIC_ACQUIRE);
}

uint16_t DriverRing::UsedIdx() const {
  return packed() ? 0 : Load(device_, kIdxOffset, __ATOMIC_ACQUIRE);
}

uint16_t DriverRing::AvailEvent() const {
  return packed() ? 0
                  : Load(device_, kRingOffset + sizeof(vring_used_elem) * config_.size,
                         __ATOMIC_ACQUIRE);
}

PackedEvent DriverRing::DeviceEvent() const {
  if (!packed()) return {};
  PackedEvent event;
  event.flags = Load(device_, offsetof(vring_packed_desc_event, flags), __ATOMIC_ACQUIRE);
  event.off_wrap = Load(device_, offsetof(vring_packed_desc_event, off_wrap), __ATOMIC_ACQUIRE);
  return event;
}

void DriverRing::WriteDescriptor(uint32_t index, const RawDescriptor& desc) {
  if (index >= config_.size) return;
  uint8_t* at = desc_ + index * kDescSize;
  if (packed()) {
    WritePackedDesc(at, desc.addr, desc.len, desc.id, desc.flags, __ATOMIC_RELEASE);
  } else {
    WriteSplitDesc(at, desc.addr, desc.len, 0, desc.next);
    Store(at, offsetof(vring_desc, flags), desc.flags, __ATOMIC_RELEASE);
  }
}

absl::Status DriverRing::WriteTable(uint64_t gpa, absl::Span<const RawDescriptor> table) {
  uint8_t* at = memory_->HostAddress(gpa, table.size() * kDescSize);
  if (at == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("table at 0x", absl::Hex(gpa), " is not mapped"));
  }
  for (const RawDescriptor& d : table) {
    if (packed()) {
      WritePackedDesc(at, d.addr, d.len, d.id, d.flags, __ATOMIC_RELAXED);
    } else {
      WriteSplitDesc(at, d.addr, d.len, d.flags, d.next);
    }
    at += kDescSize;
  }
  return absl::OkStatus();
}

void DriverRing::PushAvailHead(uint16_t head) {
  if (packed()) return;
  Store(driver_, kRingOffset + 2 * (avail_idx_ & (config_.size - 1)), head);
  ++avail_idx_;
  ++raw_outstanding_;
}

void DriverRing::SetAvailIdx(uint16_t idx) {
  if (packed()) return;
  Store(driver_, kIdxOffset, idx, __ATOMIC_RELEASE);
  avail_idx_ = published_idx_ = idx;
}

uint16_t DriverRing::AddRawPackedChain(absl::Span<const RawDescriptor> descs, bool raw_flags) {
  const uint16_t first = avail_idx_;
  if (!packed() || descs.empty()) return first;
  if (num_pending_ == config_.size) Publish();
  for (size_t i = 0; i < descs.size(); ++i) {
    const RawDescriptor& d = descs[i];
    const uint16_t flags = raw_flags ? d.flags : (d.flags | PackedAvailBits());
    uint8_t* at = desc_ + avail_idx_ * kDescSize;
    if (i == 0) {
      WritePackedDesc(at, d.addr, d.len, d.id, 0, __ATOMIC_RELAXED);
      pending_slot_[num_pending_] = avail_idx_;
      pending_flags_[num_pending_] = flags;
      ++num_pending_;
    } else {
      WritePackedDesc(at, d.addr, d.len, d.id, flags, __ATOMIC_RELAXED);
    }
    AdvancePackedAvail();
  }
  const uint16_t id = descs.back().id;
  if (id < config_.size && chain_count_[id] == 0) {
    chain_count_[id] = descs.size();
    raw_[id] = 1;
  }
  ++raw_outstanding_;
  return first;
}

uint32_t DriverRing::VringBase() const {
  if (!packed()) return published_idx_;
  const uint32_t avail = published_idx_ | (published_wrap_ ? 0x8000u : 0);
  const uint32_t used = used_idx_ | (used_wrap_ ? 0x8000u : 0);
  return avail | used << 16;
}

}  // namespace testing
}  // namespace vhost
