#include "common/virtio/chain_cursor.h"

#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace vhost {
namespace {

// A buffer holding bytes 0, 1, 2, ... split into segments of the given lengths.
struct Segmented {
  explicit Segmented(std::vector<size_t> lengths) {
    const size_t total = std::accumulate(lengths.begin(), lengths.end(), size_t{0});
    bytes.resize(total);
    std::iota(bytes.begin(), bytes.end(), uint8_t{0});
    size_t at = 0;
    for (size_t len : lengths) {
      segments.push_back({bytes.data() + at, len});
      at += len;
    }
  }
  std::vector<uint8_t> bytes;
  IovecList segments;
};

TEST(ChainReaderTest, ReadsValuesSplitAcrossSegments) {
  Segmented s({1, 3, 0, 2, 10});
  ChainReader reader(s.segments);
  EXPECT_EQ(reader.size(), 16u);
  uint8_t b = 0xff;
  ASSERT_TRUE(reader.Read(&b));
  EXPECT_EQ(b, 0);
  uint32_t word = 0;  // bytes 1..4: ends in the second segment's last byte, then a new one
  ASSERT_TRUE(reader.Read(&word));
  EXPECT_EQ(word, 0x04030201u);
  uint64_t quad = 0;  // bytes 5..12: crosses the empty segment and one boundary
  ASSERT_TRUE(reader.Read(&quad));
  EXPECT_EQ(quad, 0x0c0b0a0908070605u);
  EXPECT_EQ(reader.position(), 13u);
  EXPECT_EQ(reader.remaining(), 3u);
  uint8_t rest[3];
  ASSERT_TRUE(reader.ReadBytes(absl::MakeSpan(rest)));
  EXPECT_EQ(rest[0], 13);
  EXPECT_EQ(rest[2], 15);
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_FALSE(reader.Read(&b));
  EXPECT_TRUE(reader.ReadBytes({}));  // nothing asked, nothing read
}

TEST(ChainReaderTest, ValuesFillingTheirSegmentsExactly) {
  Segmented s({4, 0, 4});  // e.g. a header in its own descriptor
  ChainReader reader(s.segments);
  uint32_t a = 0, b = 0;
  ASSERT_TRUE(reader.Read(&a));
  ASSERT_TRUE(reader.Read(&b));
  EXPECT_EQ(a, 0x03020100u);
  EXPECT_EQ(b, 0x07060504u);
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_FALSE(reader.Read(&a));
}

TEST(ChainReaderTest, ShortChainFailsWithoutMoving) {
  Segmented s({2, 1});
  ChainReader reader(s.segments);
  uint32_t word = 0x11223344;
  EXPECT_FALSE(reader.Read(&word));
  EXPECT_EQ(word, 0x11223344u);  // untouched
  EXPECT_EQ(reader.position(), 0u);
  uint16_t half = 0;
  ASSERT_TRUE(reader.Read(&half));
  EXPECT_EQ(half, 0x0100);
}

TEST(ChainReaderTest, EmptyChain) {
  IovecList none;
  ChainReader reader(none);
  uint8_t b;
  EXPECT_FALSE(reader.Read(&b));
  EXPECT_TRUE(reader.Skip(0));
  EXPECT_FALSE(reader.Skip(1));
  IovecList out;
  EXPECT_TRUE(reader.Slice(0, &out));
  EXPECT_TRUE(out.empty());
}

TEST(ChainReaderTest, HugeSizesAreRejectedNotWrapped) {
  Segmented s({4, 4});
  ChainReader reader(s.segments);
  ASSERT_TRUE(reader.Skip(3));
  for (uint64_t n :
       {uint64_t{6}, uint64_t{1} << 32, (uint64_t{1} << 32) + 1,
        std::numeric_limits<uint64_t>::max(), std::numeric_limits<uint64_t>::max() - 2}) {
    EXPECT_FALSE(reader.Skip(n)) << n;
    IovecList out;
    EXPECT_FALSE(reader.Slice(n, &out)) << n;
    EXPECT_TRUE(out.empty());
  }
  // A span whose size would wrap position + size; never dereferenced.
  uint8_t byte;
  EXPECT_FALSE(reader.ReadBytes(absl::Span<uint8_t>(&byte, std::numeric_limits<size_t>::max())));
  EXPECT_EQ(reader.position(), 3u);
  EXPECT_TRUE(reader.Skip(5));
  EXPECT_EQ(reader.remaining(), 0u);
}

TEST(ChainReaderTest, SliceCoversTheNextBytes) {
  Segmented s({3, 5, 2});
  ChainReader reader(s.segments);
  ASSERT_TRUE(reader.Skip(2));
  IovecList out;
  ASSERT_TRUE(reader.Slice(6, &out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].iov_base, s.bytes.data() + 2);
  EXPECT_EQ(out[0].iov_len, 1u);
  EXPECT_EQ(out[1].iov_base, s.bytes.data() + 3);
  EXPECT_EQ(out[1].iov_len, 5u);
  uint8_t b;
  ASSERT_TRUE(reader.Read(&b));
  EXPECT_EQ(b, 8);
}

TEST(ChainReaderTest, UsesTheChainsReadablePart) {
  Segmented readable({4});
  DescriptorChain chain;
  chain.readable = readable.segments;
  chain.readable_bytes = 4;
  ChainReader reader(chain);
  uint32_t word;
  ASSERT_TRUE(reader.Read(&word));
  EXPECT_EQ(word, 0x03020100u);
}

TEST(ChainWriterTest, WritesAcrossSegmentsAndReportsBytesWritten) {
  Segmented s({1, 2, 0, 5});
  std::fill(s.bytes.begin(), s.bytes.end(), 0);
  ChainWriter writer(s.segments);
  EXPECT_EQ(writer.bytes_written(), 0u);
  ASSERT_TRUE(writer.Write(uint16_t{0x0201}));
  ASSERT_TRUE(writer.Write(uint32_t{0x06050403}));
  EXPECT_EQ(writer.position(), 6u);
  EXPECT_EQ(writer.bytes_written(), 6u);
  EXPECT_FALSE(writer.Write(uint32_t{0xffffffff}));  // 2 bytes left
  EXPECT_EQ(writer.position(), 6u);
  const uint8_t tail[] = {7, 8};
  ASSERT_TRUE(writer.WriteBytes(tail));
  EXPECT_EQ(s.bytes, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(writer.bytes_written(), 8u);
  EXPECT_FALSE(writer.Write(uint8_t{0}));
}

TEST(ChainWriterTest, StatusByteAfterTheData) {
  Segmented s({3, 3});
  std::fill(s.bytes.begin(), s.bytes.end(), 0);
  ChainWriter writer(s.segments);
  ASSERT_TRUE(writer.WriteAt(writer.size() - 1, uint8_t{0xee}));
  EXPECT_EQ(writer.position(), 0u);  // the cursor did not move
  EXPECT_EQ(writer.bytes_written(), 6u);
  ASSERT_TRUE(writer.Write(uint16_t{0x0201}));
  EXPECT_EQ(writer.bytes_written(), 6u);  // the furthest byte still counts
  EXPECT_EQ(s.bytes, (std::vector<uint8_t>{1, 2, 0, 0, 0, 0xee}));
  ASSERT_TRUE(writer.WriteAt(2, uint16_t{0x0403}));  // across the boundary
  EXPECT_EQ(s.bytes, (std::vector<uint8_t>{1, 2, 3, 4, 0, 0xee}));
}

TEST(ChainWriterTest, HugeOffsetsAreRejectedNotWrapped) {
  Segmented s({4});
  ChainWriter writer(s.segments);
  for (uint64_t offset :
       {uint64_t{3}, uint64_t{4}, uint64_t{5}, uint64_t{1} << 32,
        std::numeric_limits<uint64_t>::max(), std::numeric_limits<uint64_t>::max() - 1}) {
    EXPECT_FALSE(writer.WriteAt(offset, uint16_t{0})) << offset;
  }
  const uint8_t byte = 0;
  EXPECT_FALSE(
      writer.WriteBytes(absl::Span<const uint8_t>(&byte, std::numeric_limits<size_t>::max())));
  EXPECT_EQ(writer.bytes_written(), 0u);
  writer.Mark(std::numeric_limits<uint64_t>::max());  // beyond the chain: ignored
  EXPECT_EQ(writer.bytes_written(), 0u);
}

TEST(ChainWriterTest, EmptyWritablePart) {
  DescriptorChain chain;
  ChainWriter writer(chain);
  EXPECT_FALSE(writer.Write(uint8_t{0}));
  EXPECT_FALSE(writer.WriteAt(0, uint8_t{0}));
  EXPECT_EQ(writer.bytes_written(), 0u);
}

}  // namespace
}  // namespace vhost
