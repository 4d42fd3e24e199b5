#include "common/testing/driver_ring.h"

#include <cstring>
#include <deque>
#include <random>
#include <vector>

#include "common/testing/fake_guest_memory.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

#ifndef VIRTIO_RING_NO_LEGACY
#define VIRTIO_RING_NO_LEGACY
#endif
#include <linux/virtio_ring.h>

namespace vhost {
namespace testing {
namespace {

constexpr uint64_t kBase = 0x10000;
constexpr uint64_t kMemSize = 1 << 20;
constexpr uint64_t kBufferArea = kBase + 0x80000;
constexpr uint16_t kAvail = 1 << VRING_PACKED_DESC_F_AVAIL;
constexpr uint16_t kUsed = 1 << VRING_PACKED_DESC_F_USED;

vring_desc ReadDesc(DriverMemory& mem, uint64_t gpa) {
  vring_desc d;
  std::memcpy(&d, mem.HostAddress(gpa, sizeof(d)), sizeof(d));
  return d;
}
vring_packed_desc ReadPacked(DriverMemory& mem, uint64_t gpa) {
  vring_packed_desc d;
  std::memcpy(&d, mem.HostAddress(gpa, sizeof(d)), sizeof(d));
  return d;
}
uint16_t ReadU16(DriverMemory& mem, uint64_t gpa) {
  uint16_t v;
  std::memcpy(&v, mem.HostAddress(gpa, 2), 2);
  return v;
}
void WriteU16(DriverMemory& mem, uint64_t gpa, uint16_t v) {
  std::memcpy(mem.HostAddress(gpa, 2), &v, 2);
}

// A minimal, trusting device for round trips.
class SimDevice {
 public:
  struct Chain {
    uint32_t id;
    uint32_t slots;
    std::vector<Buffer> readable, writable;
  };
  SimDevice(DriverMemory& mem, const DriverRing& ring)
      : mem_(mem), cfg_(ring.config()), avail_(cfg_.start_index), used_(cfg_.start_index) {}

  bool Pop(Chain* chain) {
    return cfg_.layout == RingLayout::kSplit ? PopSplit(chain) : PopPacked(chain);
  }

  void Push(const Chain& chain, uint32_t len) {
    if (cfg_.layout == RingLayout::kSplit) {
      vring_used_elem e{chain.id, len};
      const uint64_t at = cfg_.addresses.device + 4 + 8 * (used_ & (cfg_.size - 1));
      std::memcpy(mem_.HostAddress(at, 8), &e, 8);
      ++used_;
      WriteU16(mem_, cfg_.addresses.device + 2, used_);
      return;
    }
    const uint64_t at = cfg_.addresses.desc + 16 * used_slot_;
    vring_packed_desc d{};
    d.id = chain.id;
    d.len = len;
    d.flags = used_wrap_ ? (kAvail | kUsed) : 0;
    std::memcpy(mem_.HostAddress(at, 16), &d, 16);
    used_slot_ += chain.slots;
    if (used_slot_ >= cfg_.size) {
      used_slot_ -= cfg_.size;
      used_wrap_ = !used_wrap_;
    }
  }

  uint16_t avail_index() const { return avail_; }

 private:
  void AddBuffer(Chain* chain, uint64_t addr, uint32_t len, uint16_t flags) {
    (flags & VRING_DESC_F_WRITE ? chain->writable : chain->readable).push_back({addr, len});
  }

  bool PopSplit(Chain* chain) {
    if (ReadU16(mem_, cfg_.addresses.driver + 2) == avail_) return false;
    const uint16_t head = ReadU16(mem_, cfg_.addresses.driver + 4 + 2 * (avail_ & (cfg_.size - 1)));
    ++avail_;
    *chain = Chain{head, 1, {}, {}};
    uint16_t i = head;
    for (;;) {
      const vring_desc d = ReadDesc(mem_, cfg_.addresses.desc + 16 * i);
      if (d.flags & VRING_DESC_F_INDIRECT) {
        for (uint32_t k = 0; k < d.len / 16; ++k) {
          const vring_desc t = ReadDesc(mem_, d.addr + 16 * k);
          AddBuffer(chain, t.addr, t.len, t.flags);
        }
      } else {
        AddBuffer(chain, d.addr, d.len, d.flags);
      }
      if (!(d.flags & VRING_DESC_F_NEXT)) break;
      i = d.next;
    }
    return true;
  }

  bool PopPacked(Chain* chain) {
    vring_packed_desc d = ReadPacked(mem_, cfg_.addresses.desc + 16 * avail_slot_);
    const bool avail = d.flags & kAvail, used = d.flags & kUsed;
    if (avail != avail_wrap_ || used == avail_wrap_) return false;
    *chain = Chain{0, 0, {}, {}};
    for (;;) {
      ++chain->slots;
      if (d.flags & VRING_DESC_F_INDIRECT) {
        for (uint32_t k = 0; k < d.len / 16; ++k) {
          const vring_packed_desc t = ReadPacked(mem_, d.addr + 16 * k);
          AddBuffer(chain, t.addr, t.len, t.flags);
        }
      } else {
        AddBuffer(chain, d.addr, d.len, d.flags);
      }
      chain->id = d.id;
      if (++avail_slot_ == cfg_.size) {
        avail_slot_ = 0;
        avail_wrap_ = !avail_wrap_;
      }
      if (!(d.flags & VRING_DESC_F_NEXT)) break;
      d = ReadPacked(mem_, cfg_.addresses.desc + 16 * avail_slot_);
    }
    return true;
  }

  DriverMemory& mem_;
  const DriverRing::Config cfg_;
  uint16_t avail_, used_;  // split
  uint16_t avail_slot_ = 0, used_slot_ = 0;
  bool avail_wrap_ = true, used_wrap_ = true;
};

DriverRing::Config MakeConfig(RingLayout layout, uint32_t size, bool event_idx = false) {
  DriverRing::Config c;
  c.layout = layout;
  c.size = size;
  c.event_idx = event_idx;
  c.addresses = LayoutRings(*ComputeRingSizes(layout, size), kBase);
  return c;
}

TEST(RingSizesTest, Split) {
  absl::StatusOr<RingSizes> s = ComputeRingSizes(RingLayout::kSplit, 256);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->desc_size, 4096u);
  EXPECT_EQ(s->desc_align, 16u);
  EXPECT_EQ(s->driver_size, 4u + 512 + 2);
  EXPECT_EQ(s->driver_align, 2u);
  EXPECT_EQ(s->device_size, 4u + 2048 + 2);
  EXPECT_EQ(s->device_align, 4u);
  EXPECT_EQ(s->total_size, 4616u + 2054);
  const RingAddresses a = LayoutRings(*s, 0x1001);
  EXPECT_EQ(a.desc, 0x1010u);
  EXPECT_EQ(a.driver, 0x2010u);
  EXPECT_EQ(a.device, 0x2010u + 520);
}

TEST(RingSizesTest, Packed) {
  absl::StatusOr<RingSizes> s = ComputeRingSizes(RingLayout::kPacked, 3);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->desc_size, 48u);
  EXPECT_EQ(s->driver_size, 4u);
  EXPECT_EQ(s->device_size, 4u);
  EXPECT_EQ(s->total_size, 56u);
  EXPECT_TRUE(ComputeRingSizes(RingLayout::kPacked, 32768).ok());
}

TEST(RingSizesTest, RejectsBadSizes) {
  EXPECT_FALSE(ComputeRingSizes(RingLayout::kSplit, 0).ok());
  EXPECT_FALSE(ComputeRingSizes(RingLayout::kSplit, 3).ok());
  EXPECT_FALSE(ComputeRingSizes(RingLayout::kSplit, 65536).ok());
  EXPECT_FALSE(ComputeRingSizes(RingLayout::kPacked, 32769).ok());
  EXPECT_TRUE(ComputeRingSizes(RingLayout::kSplit, 32768).ok());
}

TEST(DriverRingTest, RejectsUnmappedOrMisalignedAreas) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  DriverRing::Config c = MakeConfig(RingLayout::kSplit, 256);
  c.addresses.device = kBase + kMemSize - 8;
  EXPECT_FALSE(DriverRing::Create(&mem, c).ok());
  c = MakeConfig(RingLayout::kSplit, 256);
  c.addresses.desc += 8;
  EXPECT_FALSE(DriverRing::Create(&mem, c).ok());
}

TEST(DriverRingTest, SplitChainLayout) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kSplit, 8);
  auto ring = *DriverRing::Create(&mem, c);
  const Buffer r[] = {{kBufferArea, 16}, {kBufferArea + 16, 100}};
  const Buffer w[] = {{kBufferArea + 200, 1}};
  absl::StatusOr<uint16_t> head = ring->AddChain(r, w);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(ring->num_free(), 5u);
  EXPECT_EQ(ring->in_flight(), 1u);
  // Not visible before Publish.
  EXPECT_EQ(ReadU16(mem, c.addresses.driver + 2), 0);
  EXPECT_TRUE(ring->Publish());
  EXPECT_EQ(ReadU16(mem, c.addresses.driver + 2), 1);
  EXPECT_EQ(ReadU16(mem, c.addresses.driver + 4), *head);

  vring_desc d0 = ReadDesc(mem, c.addresses.desc + 16 * *head);
  EXPECT_EQ(d0.addr, kBufferArea);
  EXPECT_EQ(d0.len, 16u);
  EXPECT_EQ(d0.flags, VRING_DESC_F_NEXT);
  vring_desc d1 = ReadDesc(mem, c.addresses.desc + 16 * d0.next);
  EXPECT_EQ(d1.len, 100u);
  EXPECT_EQ(d1.flags, VRING_DESC_F_NEXT);
  vring_desc d2 = ReadDesc(mem, c.addresses.desc + 16 * d1.next);
  EXPECT_EQ(d2.addr, kBufferArea + 200);
  EXPECT_EQ(d2.flags, VRING_DESC_F_WRITE);
  EXPECT_NE(*head, d0.next);
  EXPECT_NE(d0.next, d1.next);
}

TEST(DriverRingTest, SplitIndirect) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kSplit, 8);
  auto ring = *DriverRing::Create(&mem, c);
  const Buffer r[] = {{kBufferArea, 16}};
  const Buffer w[] = {{kBufferArea + 100, 512}, {kBufferArea + 1000, 1}};
  const uint64_t table = kBufferArea + 0x1000;
  absl::StatusOr<uint16_t> head = ring->AddChain(r, w, table);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(ring->num_free(), 7u);
  vring_desc d = ReadDesc(mem, c.addresses.desc + 16 * *head);
  EXPECT_EQ(d.flags, VRING_DESC_F_INDIRECT);
  EXPECT_EQ(d.addr, table);
  EXPECT_EQ(d.len, 48u);
  vring_desc t0 = ReadDesc(mem, table), t1 = ReadDesc(mem, table + 16),
             t2 = ReadDesc(mem, table + 32);
  EXPECT_EQ(t0.flags, VRING_DESC_F_NEXT);
  EXPECT_EQ(t0.next, 1);
  EXPECT_EQ(t1.flags, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE);
  EXPECT_EQ(t1.next, 2);
  EXPECT_EQ(t2.flags, VRING_DESC_F_WRITE);
  EXPECT_EQ(t2.len, 1u);
  EXPECT_FALSE(ring->AddChain(r, w, kBase + kMemSize - 8).ok());
}

TEST(DriverRingTest, RejectsEmptyAndOverlongChains) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  auto ring = *DriverRing::Create(&mem, MakeConfig(RingLayout::kSplit, 4));
  EXPECT_FALSE(ring->AddChain({}, {}).ok());
  std::vector<Buffer> five(5, Buffer{kBufferArea, 1});
  EXPECT_FALSE(ring->AddChain(five, {}).ok());
}

TEST(DriverRingTest, SplitFullRingAndRecycle) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  auto ring = *DriverRing::Create(&mem, MakeConfig(RingLayout::kSplit, 4));
  SimDevice dev(mem, *ring);
  const Buffer b[] = {{kBufferArea, 8}, {kBufferArea + 8, 8}};
  ASSERT_TRUE(ring->AddChain(b, {}).ok());
  ASSERT_TRUE(ring->AddChain({}, b).ok());
  EXPECT_EQ(ring->AddChain(b, {}).status().code(), absl::StatusCode::kResourceExhausted);
  ring->Publish();
  SimDevice::Chain chain;
  ASSERT_TRUE(dev.Pop(&chain));
  EXPECT_EQ(chain.readable.size(), 2u);
  dev.Push(chain, 0);
  absl::StatusOr<absl::optional<UsedElement>> used = ring->PollUsed();
  ASSERT_TRUE(used.ok() && used->has_value());
  EXPECT_EQ((*used)->id, chain.id);
  EXPECT_EQ(ring->num_free(), 2u);
  EXPECT_TRUE(ring->AddChain(b, {}).ok());
}

TEST(DriverRingTest, SplitRejectsUnknownUsedIds) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kSplit, 4);
  auto ring = *DriverRing::Create(&mem, c);
  const Buffer b[] = {{kBufferArea, 8}};
  const uint16_t head = *ring->AddChain(b, {});
  ring->Publish();
  // Device reports an id that is not the head.
  vring_used_elem e{static_cast<uint32_t>(head + 1), 0};
  std::memcpy(mem.HostAddress(c.addresses.device + 4, 8), &e, 8);
  WriteU16(mem, c.addresses.device + 2, 1);
  EXPECT_FALSE(ring->PollUsed().ok());
  // Or jumps the used index beyond what is in flight.
  auto ring2 = *DriverRing::Create(&mem, c);
  ASSERT_TRUE(ring2->AddChain(b, {}).ok());
  ring2->Publish();
  WriteU16(mem, c.addresses.device + 2, 2);
  EXPECT_FALSE(ring2->PollUsed().ok());
}

TEST(DriverRingTest, SplitKickWithoutEventIdx) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kSplit, 4);
  auto ring = *DriverRing::Create(&mem, c);
  const Buffer b[] = {{kBufferArea, 8}};
  EXPECT_FALSE(ring->Publish());  // nothing added
  ring->AddChain(b, {}).IgnoreError();
  EXPECT_TRUE(ring->Publish());
  WriteU16(mem, c.addresses.device, VRING_USED_F_NO_NOTIFY);
  ring->AddChain(b, {}).IgnoreError();
  EXPECT_FALSE(ring->Publish());
}

TEST(DriverRingTest, SplitKickWithEventIdx) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kSplit, 8, /*event_idx=*/true);
  auto ring = *DriverRing::Create(&mem, c);
  const uint64_t avail_event = c.addresses.device + 4 + 8 * 8;
  const Buffer b[] = {{kBufferArea, 8}};
  // avail_event = 0: kick when entry 0 is published.
  ring->AddChain(b, {}).IgnoreError();
  EXPECT_TRUE(ring->Publish());
  // Device wants a kick only once entry 3 is published.
  WriteU16(mem, avail_event, 3);
  ring->AddChain(b, {}).IgnoreError();  // entry 1
  EXPECT_FALSE(ring->Publish());
  ring->AddChain(b, {}).IgnoreError();  // entry 2
  ring->AddChain(b, {}).IgnoreError();  // entry 3
  EXPECT_TRUE(ring->Publish());
  EXPECT_EQ(ring->AvailEvent(), 3);
  // NO_NOTIFY is ignored under EVENT_IDX.
  WriteU16(mem, c.addresses.device, VRING_USED_F_NO_NOTIFY);
  WriteU16(mem, avail_event, 4);
  ring->AddChain(b, {}).IgnoreError();
  EXPECT_TRUE(ring->Publish());
}

TEST(DriverRingTest, SplitInterruptControl) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kSplit, 8, /*event_idx=*/true);
  auto ring = *DriverRing::Create(&mem, c);
  SimDevice dev(mem, *ring);
  const uint64_t used_event = c.addresses.driver + 4 + 2 * 8;
  const Buffer b[] = {{kBufferArea, 8}};
  for (int i = 0; i < 3; ++i) ring->AddChain(b, {}).IgnoreError();
  ring->Publish();
  SimDevice::Chain chain;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(dev.Pop(&chain));
    dev.Push(chain, 0);
  }
  ASSERT_TRUE(ring->PollUsed().ok());
  ring->EnableInterrupts();
  EXPECT_EQ(ReadU16(mem, used_event), 1);
  EXPECT_EQ(ReadU16(mem, c.addresses.driver), 0);
  ring->DisableInterrupts();
  EXPECT_EQ(ReadU16(mem, c.addresses.driver), VRING_AVAIL_F_NO_INTERRUPT);
  EXPECT_EQ(ReadU16(mem, used_event), 0);
  ring->SetUsedEvent(77);
  EXPECT_EQ(ReadU16(mem, used_event), 77);
}

TEST(DriverRingTest, SplitStartIndexWraps) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  DriverRing::Config c = MakeConfig(RingLayout::kSplit, 4);
  c.start_index = 65534;
  auto ring = *DriverRing::Create(&mem, c);
  EXPECT_EQ(ring->VringBase(), 65534u);
  EXPECT_EQ(ReadU16(mem, c.addresses.device + 2), 65534);
  SimDevice dev(mem, *ring);
  const Buffer b[] = {{kBufferArea, 8}};
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(ring->AddChain(b, {}).ok());
    ring->Publish();
    SimDevice::Chain chain;
    while (dev.Pop(&chain)) dev.Push(chain, 1);
    for (int i = 0; i < 4; ++i) {
      absl::StatusOr<absl::optional<UsedElement>> used = ring->PollUsed();
      ASSERT_TRUE(used.ok() && used->has_value()) << used.status();
    }
  }
  EXPECT_EQ(ring->avail_idx(), static_cast<uint16_t>(65534 + 12));
  EXPECT_EQ(ring->VringBase(), 10u);
}

TEST(DriverRingTest, PackedChainLayoutAndWrap) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kPacked, 3);
  auto ring = *DriverRing::Create(&mem, c);
  EXPECT_EQ(ring->VringBase(), 0x80008000u);
  const Buffer r[] = {{kBufferArea, 16}};
  const Buffer w[] = {{kBufferArea + 16, 1}};
  absl::StatusOr<uint16_t> id = ring->AddChain(r, w);
  ASSERT_TRUE(id.ok());
  // Head flags are written at Publish; the second descriptor is complete already.
  EXPECT_EQ(ReadPacked(mem, c.addresses.desc).flags, 0);
  EXPECT_EQ(ReadPacked(mem, c.addresses.desc + 16).flags, VRING_DESC_F_WRITE | kAvail);
  EXPECT_TRUE(ring->Publish());
  vring_packed_desc d0 = ReadPacked(mem, c.addresses.desc);
  EXPECT_EQ(d0.flags, VRING_DESC_F_NEXT | kAvail);
  EXPECT_EQ(d0.addr, kBufferArea);
  EXPECT_EQ(d0.id, *id);

  SimDevice dev(mem, *ring);
  SimDevice::Chain chain;
  ASSERT_TRUE(dev.Pop(&chain));
  EXPECT_EQ(chain.id, *id);
  EXPECT_EQ(chain.slots, 2u);
  dev.Push(chain, 1);
  absl::StatusOr<absl::optional<UsedElement>> used = ring->PollUsed();
  ASSERT_TRUE(used.ok() && used->has_value());
  EXPECT_EQ((*used)->len, 1u);
  EXPECT_EQ(ring->num_free(), 3u);

  // The next chain straddles the end of the ring: slot 2 with wrap 1, slot 0 with wrap 0.
  id = ring->AddChain(r, w);
  ASSERT_TRUE(id.ok());
  ring->Publish();
  EXPECT_EQ(ReadPacked(mem, c.addresses.desc + 32).flags, VRING_DESC_F_NEXT | kAvail);
  EXPECT_EQ(ReadPacked(mem, c.addresses.desc).flags, VRING_DESC_F_WRITE | kUsed);
  EXPECT_FALSE(ring->avail_wrap());
  ASSERT_TRUE(dev.Pop(&chain));
  dev.Push(chain, 7);
  used = ring->PollUsed();
  ASSERT_TRUE(used.ok() && used->has_value());
  EXPECT_EQ((*used)->id, *id);
  EXPECT_FALSE(ring->used_wrap());
  EXPECT_EQ(ring->VringBase(), 1u | 1u << 16);
}

TEST(DriverRingTest, PackedIndirect) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kPacked, 4);
  auto ring = *DriverRing::Create(&mem, c);
  const Buffer r[] = {{kBufferArea, 16}};
  const Buffer w[] = {{kBufferArea + 16, 512}, {kBufferArea + 600, 1}};
  const uint64_t table = kBufferArea + 0x1000;
  absl::StatusOr<uint16_t> id = ring->AddChain(r, w, table);
  ASSERT_TRUE(id.ok());
  ring->Publish();
  vring_packed_desc d = ReadPacked(mem, c.addresses.desc);
  EXPECT_EQ(d.flags, VRING_DESC_F_INDIRECT | kAvail);
  EXPECT_EQ(d.len, 48u);
  EXPECT_EQ(ReadPacked(mem, table).flags, 0);
  EXPECT_EQ(ReadPacked(mem, table + 16).flags, VRING_DESC_F_WRITE);
  EXPECT_EQ(ReadPacked(mem, table + 32).len, 1u);
  EXPECT_EQ(ring->num_free(), 3u);
}

TEST(DriverRingTest, PackedKickSuppression) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kPacked, 4, /*event_idx=*/true);
  auto ring = *DriverRing::Create(&mem, c);
  const Buffer b[] = {{kBufferArea, 8}};
  ring->AddChain(b, {}).IgnoreError();  // slot 0
  EXPECT_TRUE(ring->Publish());         // ENABLE
  WriteU16(mem, c.addresses.device + 2, VRING_PACKED_EVENT_FLAG_DISABLE);
  ring->AddChain(b, {}).IgnoreError();  // slot 1
  EXPECT_FALSE(ring->Publish());
  // Kick when slot 3 of the first lap is made available.
  WriteU16(mem, c.addresses.device, 3 | 0x8000);
  WriteU16(mem, c.addresses.device + 2, VRING_PACKED_EVENT_FLAG_DESC);
  EXPECT_EQ(ring->DeviceEvent().off_wrap, 3 | 0x8000);
  ring->AddChain(b, {}).IgnoreError();  // slot 2
  EXPECT_FALSE(ring->Publish());
  ring->AddChain(b, {}).IgnoreError();  // slot 3
  EXPECT_TRUE(ring->Publish());
  // Slot 0 of the second lap (wrap 0).
  SimDevice dev(mem, *ring);
  SimDevice::Chain chain;
  while (dev.Pop(&chain)) dev.Push(chain, 0);
  while (ring->PollUsed().value().has_value()) {
  }
  WriteU16(mem, c.addresses.device, 1);
  ring->AddChain(b, {}).IgnoreError();  // slot 0, wrap 0
  EXPECT_FALSE(ring->Publish());
  ring->AddChain(b, {}).IgnoreError();  // slot 1, wrap 0
  EXPECT_TRUE(ring->Publish());
}

TEST(DriverRingTest, PackedInterruptControl) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kPacked, 4, /*event_idx=*/true);
  auto ring = *DriverRing::Create(&mem, c);
  ring->EnableInterrupts();
  EXPECT_EQ(ReadU16(mem, c.addresses.driver), 0x8000);
  EXPECT_EQ(ReadU16(mem, c.addresses.driver + 2), VRING_PACKED_EVENT_FLAG_DESC);
  ring->DisableInterrupts();
  EXPECT_EQ(ReadU16(mem, c.addresses.driver + 2), VRING_PACKED_EVENT_FLAG_DISABLE);
}

TEST(DriverRingTest, RawSplitLoop) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kSplit, 4);
  auto ring = *DriverRing::Create(&mem, c);
  ring->WriteDescriptor(0, {kBufferArea, 8, VRING_DESC_F_NEXT, 1});
  ring->WriteDescriptor(1, {kBufferArea, 8, VRING_DESC_F_NEXT, 0});
  ring->WriteDescriptor(9, {kBufferArea, 8, 0, 0});  // ignored: out of range
  ring->PushAvailHead(0);
  EXPECT_TRUE(ring->Publish());
  EXPECT_EQ(ReadDesc(mem, c.addresses.desc + 16).next, 0);
  EXPECT_EQ(ReadU16(mem, c.addresses.driver + 2), 1);
  // A device that reports the raw head with length 0 is accepted once.
  vring_used_elem e{0, 0};
  std::memcpy(mem.HostAddress(c.addresses.device + 4, 8), &e, 8);
  WriteU16(mem, c.addresses.device + 2, 1);
  absl::StatusOr<absl::optional<UsedElement>> used = ring->PollUsed();
  ASSERT_TRUE(used.ok() && used->has_value());
  ring->SetAvailIdx(1000);
  EXPECT_EQ(ReadU16(mem, c.addresses.driver + 2), 1000);
}

TEST(DriverRingTest, RawTables) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  auto ring = *DriverRing::Create(&mem, MakeConfig(RingLayout::kSplit, 4));
  const RawDescriptor nested[] = {{kBufferArea, 32, VRING_DESC_F_INDIRECT, 0}};
  ASSERT_TRUE(ring->WriteTable(kBufferArea + 0x100, nested).ok());
  EXPECT_EQ(ReadDesc(mem, kBufferArea + 0x100).flags, VRING_DESC_F_INDIRECT);
  EXPECT_TRUE(ring->WriteTable(kBufferArea, {}).ok());
  EXPECT_FALSE(ring->WriteTable(kBase + kMemSize - 8, nested).ok());
}

TEST(DriverRingTest, RawPackedChain) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  const DriverRing::Config c = MakeConfig(RingLayout::kPacked, 4);
  auto ring = *DriverRing::Create(&mem, c);
  RawDescriptor d[2];
  d[0] = {kBufferArea, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0,
          2};  // writable before readable
  d[1] = {kBufferArea + 8, 8, 0, 0, 2};
  EXPECT_EQ(ring->AddRawPackedChain(d), 0);
  EXPECT_EQ(ReadPacked(mem, c.addresses.desc).flags, 0);
  ring->Publish();
  EXPECT_EQ(ReadPacked(mem, c.addresses.desc).flags,
            VRING_DESC_F_WRITE | VRING_DESC_F_NEXT | kAvail);
  EXPECT_EQ(ReadPacked(mem, c.addresses.desc + 16).flags, kAvail);
  SimDevice dev(mem, *ring);
  SimDevice::Chain chain;
  ASSERT_TRUE(dev.Pop(&chain));
  EXPECT_EQ(chain.slots, 2u);
  dev.Push(chain, 0);
  absl::optional<UsedElement> used = ring->PollUsedRaw();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->id, 2u);
  EXPECT_EQ(ring->used_idx(), 2);
  EXPECT_FALSE(ring->PollUsedRaw().has_value());
}

// Random round trips with out-of-order completion, across many wraps.
class RoundTripTest : public ::testing::TestWithParam<std::tuple<RingLayout, uint32_t>> {};

TEST_P(RoundTripTest, RandomChains) {
  const auto [layout, size] = GetParam();
  FakeGuestMemory mem({{kBase, 4 << 20}});
  DriverRing::Config c;
  c.layout = layout;
  c.size = size;
  c.event_idx = true;
  c.addresses = LayoutRings(*ComputeRingSizes(layout, size), kBase);
  auto ring = *DriverRing::Create(&mem, c);
  SimDevice dev(mem, *ring);
  std::mt19937 rng(size);
  std::deque<SimDevice::Chain> popped;
  uint64_t completed = 0;
  const uint64_t table = kBase + (2 << 20);
  for (int step = 0; step < 20000; ++step) {
    const uint32_t nr = rng() % 3, nw = 1 + rng() % 3;
    std::vector<Buffer> r(nr, Buffer{kBufferArea, 4}), w(nw, Buffer{kBufferArea + 64, 4});
    const bool indirect = rng() % 4 == 0;
    absl::StatusOr<uint16_t> id = ring->AddChain(
        r, w, indirect ? absl::make_optional(table + 128 * (step % 1024)) : absl::nullopt);
    if (id.ok() && rng() % 3) continue;
    ring->Publish();
    SimDevice::Chain chain;
    while (dev.Pop(&chain)) popped.push_back(chain);
    while (!popped.empty() && rng() % 2) {
      const size_t pick = rng() % popped.size();
      dev.Push(popped[pick], popped[pick].writable.size());
      popped.erase(popped.begin() + pick);
    }
    for (;;) {
      absl::StatusOr<absl::optional<UsedElement>> used = ring->PollUsed();
      ASSERT_TRUE(used.ok()) << used.status();
      if (!used->has_value()) break;
      ++completed;
    }
  }
  EXPECT_GT(completed, 1000u);
  EXPECT_EQ(ring->in_flight(), popped.size());
}

INSTANTIATE_TEST_SUITE_P(Layouts, RoundTripTest,
                         ::testing::Combine(::testing::Values(RingLayout::kSplit,
                                                              RingLayout::kPacked),
                                            ::testing::Values(1u, 4u, 16u, 32768u)));

TEST(DriverRingTest, PackedOddSize) {
  FakeGuestMemory mem({{kBase, kMemSize}});
  auto ring = *DriverRing::Create(&mem, MakeConfig(RingLayout::kPacked, 5));
  SimDevice dev(mem, *ring);
  const Buffer b[] = {{kBufferArea, 8}, {kBufferArea, 8}};
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(ring->AddChain(b, {}).ok());
    ring->Publish();
    SimDevice::Chain chain;
    ASSERT_TRUE(dev.Pop(&chain));
    dev.Push(chain, 0);
    absl::StatusOr<absl::optional<UsedElement>> used = ring->PollUsed();
    ASSERT_TRUE(used.ok() && used->has_value());
  }
}

}  // namespace
}  // namespace testing
}  // namespace vhost
