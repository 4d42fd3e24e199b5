// ResourceTable: creation checks and caps, host-byte accounting, backing checks against guest
// memory, and TRANSFER_TO_HOST_2D's bounds (rect in the resource, rows in the backing) and copy
// through scattered entries, translated through the memory table given at transfer time.
#include "vhost-user-gpu/resource_table.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "common/testing/fake_guest_memory.h"
#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"
#include "vhost-user-gpu/gpu_spec.h"

namespace vhost::gpu {
namespace {

using ::vhost::testing::FakeGuestMemory;
using ::vhost::testing::IsOk;
using ::vhost::testing::StatusIs;
using Code = absl::StatusCode;

constexpr uint32_t kFormat = kFormatB8G8R8X8;

ResourceTable::Limits SmallLimits() {
  ResourceTable::Limits limits;
  limits.max_resources = 4;
  limits.max_host_bytes = 64 * 64 * 4 * 2;  // two 64x64 resources
  limits.max_backing_entries = 8;
  limits.max_backing_bytes = 1 << 20;
  return limits;
}

// Fills guest bytes [gpa, gpa + n) with a pattern of their own addresses.
void FillPattern(FakeGuestMemory& ram, uint64_t gpa, uint64_t n) {
  uint8_t* p = ram.Host(gpa, n);
  for (uint64_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>((gpa + i) * 7 + ((gpa + i) >> 8));
}
uint8_t PatternAt(uint64_t gpa) { return static_cast<uint8_t>(gpa * 7 + (gpa >> 8)); }

TEST(ResourceTableTest, CreateChecksAndAccounts) {
  ResourceTable table(SmallLimits());
  EXPECT_OK(table.Create(1, kFormat, 64, 64));
  EXPECT_EQ(table.host_bytes(), 64u * 64 * 4);
  const Resource2d* r = table.Find(1);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->pixels.size(), 64u * 64 * 4);
  EXPECT_EQ(r->stride(), 256u);
  EXPECT_FALSE(r->attached);

  EXPECT_THAT(table.Create(1, kFormat, 8, 8), StatusIs(Code::kAlreadyExists));
  EXPECT_THAT(table.Create(0, kFormat, 8, 8), StatusIs(Code::kAlreadyExists));
  EXPECT_THAT(table.Create(2, 0, 8, 8), StatusIs(Code::kInvalidArgument));
  EXPECT_THAT(table.Create(2, 5, 8, 8), StatusIs(Code::kInvalidArgument));
  EXPECT_THAT(table.Create(2, kFormat, 0, 8), StatusIs(Code::kInvalidArgument));
  EXPECT_THAT(table.Create(2, kFormat, 8, 0), StatusIs(Code::kInvalidArgument));
  EXPECT_EQ(table.size(), 1u);
  EXPECT_EQ(table.host_bytes(), 64u * 64 * 4);
}

TEST(ResourceTableTest, OverflowingDimensions) {
  ResourceTable::Limits limits;
  limits.max_host_bytes = UINT64_MAX;  // only the arithmetic stands in the way
  ResourceTable table(limits);
  // width * height * 4 overflows 64 bits.
  EXPECT_THAT(table.Create(1, kFormat, UINT32_MAX, UINT32_MAX), StatusIs(Code::kResourceExhausted));
  EXPECT_THAT(table.Create(1, kFormat, 0x80000000u, 0x80000000u),
              StatusIs(Code::kResourceExhausted));
  // A row of 2^30 pixels is 2^32 bytes: beyond a 32-bit stride.
  EXPECT_THAT(table.Create(1, kFormat, 0x40000000u, 1), StatusIs(Code::kResourceExhausted));
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.host_bytes(), 0u);
}

TEST(ResourceTableTest, CapsAndUnrefFreesBytes) {
  ResourceTable table(SmallLimits());
  ASSERT_OK(table.Create(1, kFormat, 64, 64));
  ASSERT_OK(table.Create(2, kFormat, 64, 64));
  // The host bytes are used up: even one more pixel is refused.
  EXPECT_THAT(table.Create(3, kFormat, 1, 1), StatusIs(Code::kResourceExhausted));
  EXPECT_OK(table.Unref(1));
  EXPECT_EQ(table.host_bytes(), 64u * 64 * 4);
  EXPECT_EQ(table.Find(1), nullptr);
  EXPECT_THAT(table.Unref(1), StatusIs(Code::kNotFound));
  EXPECT_OK(table.Create(3, kFormat, 64, 64));  // the freed bytes are available again
  // The number of resources.
  ASSERT_OK(table.Unref(3));
  EXPECT_OK(table.Create(4, kFormat, 1, 1));
  EXPECT_OK(table.Create(5, kFormat, 1, 1));
  EXPECT_OK(table.Create(6, kFormat, 1, 1));
  EXPECT_THAT(table.Create(7, kFormat, 1, 1), StatusIs(Code::kResourceExhausted));
  table.Clear();
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.host_bytes(), 0u);
}

TEST(ResourceTableTest, BackingChecks) {
  FakeGuestMemory ram(1 << 20);
  const GuestMemory& memory = *ram.memory();
  ResourceTable table(SmallLimits());
  ASSERT_OK(table.Create(1, kFormat, 16, 16));
  const BackingEntry good{0x1000, 1024};
  EXPECT_THAT(table.AttachBacking(9, {good}, memory), StatusIs(Code::kNotFound));
  EXPECT_THAT(table.AttachBacking(1, {}, memory), StatusIs(Code::kInvalidArgument));
  // Outside guest memory: beyond its end, straddling it, wrapping around 2^64.
  EXPECT_THAT(table.AttachBacking(1, {{1 << 20, 16}}, memory), StatusIs(Code::kInvalidArgument));
  EXPECT_THAT(table.AttachBacking(1, {good, {(1 << 20) - 8, 16}}, memory),
              StatusIs(Code::kInvalidArgument));
  EXPECT_THAT(table.AttachBacking(1, {{UINT64_MAX - 7, 16}}, memory),
              StatusIs(Code::kInvalidArgument));
  // Too many entries (8 at most here) and too many bytes (1 MiB).
  std::vector<BackingEntry> nine(9, BackingEntry{0x1000, 16});
  EXPECT_THAT(table.AttachBacking(1, nine, memory), StatusIs(Code::kResourceExhausted));
  std::vector<BackingEntry> big(3, BackingEntry{0, 512 * 1024});
  EXPECT_THAT(table.AttachBacking(1, big, memory), StatusIs(Code::kResourceExhausted));
  EXPECT_FALSE(table.Find(1)->attached);  // none of that attached anything

  EXPECT_OK(table.AttachBacking(1, {good}, memory));
  EXPECT_EQ(table.Find(1)->backing_bytes, 1024u);
  EXPECT_THAT(table.AttachBacking(1, {good}, memory), StatusIs(Code::kFailedPrecondition));
  EXPECT_OK(table.DetachBacking(1));
  EXPECT_FALSE(table.Find(1)->attached);
  EXPECT_THAT(table.DetachBacking(1), StatusIs(Code::kFailedPrecondition));
  EXPECT_THAT(table.DetachBacking(9), StatusIs(Code::kNotFound));
  EXPECT_OK(table.AttachBacking(1, {good}, memory));  // again after a detach
}

TEST(ResourceTableTest, TransferBoundsChecks) {
  FakeGuestMemory ram(1 << 20);
  const GuestMemory& memory = *ram.memory();
  ResourceTable table(SmallLimits());
  ASSERT_OK(table.Create(1, kFormat, 16, 8));  // stride 64, 512 bytes
  EXPECT_THAT(table.TransferToHost(1, {0, 0, 16, 8}, 0, memory),
              StatusIs(Code::kFailedPrecondition));  // no backing yet
  EXPECT_THAT(table.TransferToHost(2, {0, 0, 1, 1}, 0, memory), StatusIs(Code::kNotFound));
  ASSERT_OK(table.AttachBacking(1, {{0x2000, 512}}, memory));
  EXPECT_OK(table.TransferToHost(1, {0, 0, 16, 8}, 0, memory));

  // Rects beyond the resource, including ones whose ends wrap in 32 bits.
  for (const GpuRect& r :
       {GpuRect{0, 0, 17, 1}, GpuRect{0, 0, 1, 9}, GpuRect{15, 0, 2, 1}, GpuRect{0, 7, 1, 2},
        GpuRect{1, 0, UINT32_MAX, 1}, GpuRect{0, 1, 1, UINT32_MAX}, GpuRect{UINT32_MAX, 0, 1, 1}}) {
    SCOPED_TRACE(::testing::Message() << r.width << "x" << r.height << "+" << r.x << "+" << r.y);
    EXPECT_THAT(table.TransferToHost(1, r, 0, memory), StatusIs(Code::kInvalidArgument));
  }
  // Rows beyond the backing: the last row's end is offset + stride * (h - 1) + w * 4.
  EXPECT_THAT(table.TransferToHost(1, {0, 0, 16, 8}, 4, memory), StatusIs(Code::kInvalidArgument));
  EXPECT_OK(table.TransferToHost(1, {2, 3, 14, 5}, 3 * 64 + 2 * 4, memory));  // ends at 512
  EXPECT_THAT(table.TransferToHost(1, {2, 3, 14, 5}, 3 * 64 + 2 * 4 + 1, memory),
              StatusIs(Code::kInvalidArgument));
  EXPECT_THAT(table.TransferToHost(1, {0, 0, 1, 1}, UINT64_MAX, memory),
              StatusIs(Code::kInvalidArgument));
  EXPECT_THAT(table.TransferToHost(1, {0, 0, 1, 1}, UINT64_MAX - 2, memory),
              StatusIs(Code::kInvalidArgument));
  // A backing too short for the resource's stride * height.
  ASSERT_OK(table.Create(2, kFormat, 16, 8));
  ASSERT_OK(table.AttachBacking(2, {{0x2000, 511}}, memory));
  EXPECT_THAT(table.TransferToHost(2, {0, 0, 16, 8}, 0, memory), StatusIs(Code::kInvalidArgument));
  EXPECT_OK(table.TransferToHost(2, {0, 0, 16, 7}, 0, memory));
  // An empty rect copies nothing and is fine wherever it is.
  EXPECT_OK(table.TransferToHost(2, {16, 8, 0, 0}, 0, memory));
}

// A backing of entries scattered through guest memory, out of address order and of odd sizes
// (one empty), across two adjacent regions.
class TransferTest : public ::testing::Test {
 protected:
  TransferTest() : ram_({{0, 1 << 16}, {1 << 16, 1 << 16}}) {
    FillPattern(ram_, 0, 1 << 16);  // each region on its own: their host views are apart
    FillPattern(ram_, 1 << 16, 1 << 16);
    // 16 x 8 pixels of 4 bytes: 512 bytes in entries of 100, 0, 212, 200 bytes, the third
    // running from the first region into the second.
    entries_ = {{0x9000, 100}, {0x100, 0}, {(1 << 16) - 100, 212}, {0x300, 200}};
    for (const BackingEntry& e : entries_) {
      for (uint32_t i = 0; i < e.length; ++i) linear_.push_back(PatternAt(e.addr + i));
    }
  }
  FakeGuestMemory ram_;
  std::vector<BackingEntry> entries_;
  std::vector<uint8_t> linear_;  // the backing as one buffer
};

TEST_F(TransferTest, WholeResourceThroughScatteredEntries) {
  ResourceTable table(SmallLimits());
  ASSERT_OK(table.Create(1, kFormat, 16, 8));
  ASSERT_OK(table.AttachBacking(1, entries_, *ram_.memory()));
  EXPECT_EQ(table.Find(1)->backing_bytes, 512u);
  ASSERT_OK(table.TransferToHost(1, {0, 0, 16, 8}, 0, *ram_.memory()));
  EXPECT_EQ(table.Find(1)->pixels, linear_);
}

TEST_F(TransferTest, PartialRectCopiesOnlyTheRect) {
  ResourceTable table(SmallLimits());
  ASSERT_OK(table.Create(1, kFormat, 16, 8));
  ASSERT_OK(table.AttachBacking(1, entries_, *ram_.memory()));
  const GpuRect rect{3, 2, 5, 4};
  const uint64_t offset = 2 * 64 + 3 * 4;
  ASSERT_OK(table.TransferToHost(1, rect, offset, *ram_.memory()));
  const std::vector<uint8_t>& pixels = table.Find(1)->pixels;
  for (uint32_t y = 0; y < 8; ++y) {
    for (uint32_t x = 0; x < 16 * 4; ++x) {
      const bool inside = y >= 2 && y < 6 && x >= 12 && x < 32;
      const size_t i = y * 64 + x;
      ASSERT_EQ(pixels[i], inside ? linear_[i] : 0) << "row " << y << " byte " << x;
    }
  }
}

TEST_F(TransferTest, TranslatesThroughTheMemoryGivenAtTransferTime) {
  ResourceTable table(SmallLimits());
  ASSERT_OK(table.Create(1, kFormat, 16, 8));
  ASSERT_OK(table.AttachBacking(1, entries_, *ram_.memory()));
  // A new memory table with the same layout and other contents: the transfer reads it.
  FakeGuestMemory other({{0, 1 << 16}, {1 << 16, 1 << 16}});
  std::memset(other.Host(0, 1 << 16), 0xab, 1 << 16);
  std::memset(other.Host(1 << 16, 1 << 16), 0xab, 1 << 16);
  ASSERT_OK(table.TransferToHost(1, {0, 0, 16, 8}, 0, *other.memory()));
  EXPECT_EQ(table.Find(1)->pixels, std::vector<uint8_t>(512, 0xab));
  // A table without the second region: the backing is no longer all in guest memory.
  FakeGuestMemory smaller(1 << 16);
  EXPECT_THAT(table.TransferToHost(1, {0, 0, 16, 8}, 0, *smaller.memory()),
              StatusIs(Code::kFailedPrecondition));
}

}  // namespace
}  // namespace vhost::gpu
