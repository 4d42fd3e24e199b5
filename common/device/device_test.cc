#include "common/device/device.h"

#include <cstdint>
#include <limits>
#include <vector>

#include "gtest/gtest.h"

namespace vhost {
namespace {

struct TestConfig {
  uint32_t a = 0x04030201;
  uint16_t b = 0x0605;
  uint8_t c = 7;
  uint8_t d = 8;
};

TEST(ReadConfigBytesTest, CopiesTheRequestedBytes) {
  std::vector<uint8_t> out(3);
  ASSERT_TRUE(ReadConfigBytes(TestConfig{}, 3, absl::MakeSpan(out)).ok());
  EXPECT_EQ(out, (std::vector<uint8_t>{4, 5, 6}));
  std::vector<uint8_t> all(sizeof(TestConfig));
  ASSERT_TRUE(ReadConfigBytes(TestConfig{}, 0, absl::MakeSpan(all)).ok());
  EXPECT_EQ(all, (std::vector<uint8_t>{1, 2, 3, 4, 5, 6, 7, 8}));
}

TEST(ReadConfigBytesTest, EmptyReadsAreFineUpToTheEnd) {
  EXPECT_TRUE(ReadConfigBytes(TestConfig{}, 0, {}).ok());
  EXPECT_TRUE(ReadConfigBytes(TestConfig{}, sizeof(TestConfig), {}).ok());
  EXPECT_EQ(ReadConfigBytes(TestConfig{}, sizeof(TestConfig) + 1, {}).code(),
            absl::StatusCode::kOutOfRange);
}

TEST(ReadConfigBytesTest, ReadsPastTheStructureAreRefused) {
  std::vector<uint8_t> out(2, 0xaa);
  EXPECT_EQ(ReadConfigBytes(TestConfig{}, sizeof(TestConfig) - 1, absl::MakeSpan(out)).code(),
            absl::StatusCode::kOutOfRange);
  EXPECT_EQ(out, (std::vector<uint8_t>{0xaa, 0xaa}));  // nothing copied
  for (uint32_t offset : {uint32_t{9}, std::numeric_limits<uint32_t>::max(),
                          std::numeric_limits<uint32_t>::max() - 1}) {
    EXPECT_FALSE(ReadConfigBytes(TestConfig{}, offset, absl::MakeSpan(out)).ok()) << offset;
  }
  // A size that would wrap offset + size; never dereferenced.
  uint8_t byte;
  EXPECT_FALSE(ReadConfigBytes(TestConfig{}, 4,
                               absl::Span<uint8_t>(&byte, std::numeric_limits<size_t>::max()))
                   .ok());
}

TEST(DeviceInfoTest, ResubmittingQueuesAreChosenOneByOne) {
  DeviceInfo info;
  EXPECT_FALSE(info.Resubmits(0));
  info.resubmit_queues = 1;  // a request queue beside an event queue
  EXPECT_TRUE(info.Resubmits(0));
  EXPECT_FALSE(info.Resubmits(1));
  info.resubmit_queues = DeviceInfo::kAllQueues;
  for (uint32_t queue : {0u, 1u, 63u, 64u, 1000u}) EXPECT_TRUE(info.Resubmits(queue)) << queue;
  info.resubmit_queues = uint64_t{1} << 63;  // queues from 63 on
  EXPECT_FALSE(info.Resubmits(62));
  EXPECT_TRUE(info.Resubmits(500));
}

}  // namespace
}  // namespace vhost
