#include "vhost-user-scsi/sense.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vhost::scsi {
namespace {

using ::testing::ElementsAre;

TEST(SenseTest, FixedFormat) {
  EXPECT_THAT(EncodeSense(kInvalidFieldInCdb, SenseFormat::kFixed),
              ElementsAre(0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x24, 0x00, 0, 0, 0, 0));
  EXPECT_THAT(EncodeSense(kCapacityDataChanged, SenseFormat::kFixed),
              ElementsAre(0x70, 0, 0x06, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x2a, 0x09, 0, 0, 0, 0));
}

TEST(SenseTest, DescriptorFormat) {
  EXPECT_THAT(EncodeSense(kLbaOutOfRange, SenseFormat::kDescriptor),
              ElementsAre(0x72, 0x05, 0x21, 0x00, 0, 0, 0, 0));
  EXPECT_THAT(EncodeSense(kWriteProtected, SenseFormat::kDescriptor),
              ElementsAre(0x72, 0x07, 0x27, 0x00, 0, 0, 0, 0));
}

TEST(SenseTest, Constants) {
  EXPECT_EQ(kInvalidOpcode, (Sense{0x05, 0x20, 0x00}));
  EXPECT_EQ(kParameterListLengthError, (Sense{0x05, 0x1a, 0x00}));
  EXPECT_EQ(kUnrecoveredReadError, (Sense{0x03, 0x11, 0x00}));
  EXPECT_EQ(kStatusCheckCondition, 0x02);
}

}  // namespace
}  // namespace vhost::scsi
