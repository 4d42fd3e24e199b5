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

TEST(SenseTest, InformationField) {
  // Fixed: VALID and bytes 3-6.
  EXPECT_THAT(
      EncodeSense(kMiscompareDuringVerify, SenseFormat::kFixed, 0x12345),
      ElementsAre(0xf0, 0, 0x0e, 0x00, 0x01, 0x23, 0x45, 0x0a, 0, 0, 0, 0, 0x1d, 0x00, 0, 0, 0, 0));
  // Too large for the fixed format's 4 bytes: VALID clear, no information.
  EXPECT_EQ(EncodeSense(kMiscompareDuringVerify, SenseFormat::kFixed, uint64_t{1} << 32),
            EncodeSense(kMiscompareDuringVerify, SenseFormat::kFixed));
  // Descriptor: the information descriptor after the header.
  EXPECT_THAT(EncodeSense(kMiscompareDuringVerify, SenseFormat::kDescriptor, 0x0102030405060708),
              ElementsAre(0x72, 0x0e, 0x1d, 0x00, 0, 0, 0, 12, 0x00, 0x0a, 0x80, 0, 1, 2, 3, 4, 5,
                          6, 7, 8));
}

TEST(SenseTest, Constants) {
  EXPECT_EQ(kInvalidOpcode, (Sense{0x05, 0x20, 0x00}));
  EXPECT_EQ(kParameterListLengthError, (Sense{0x05, 0x1a, 0x00}));
  EXPECT_EQ(kUnrecoveredReadError, (Sense{0x03, 0x11, 0x00}));
  EXPECT_EQ(kStatusCheckCondition, 0x02);
  EXPECT_EQ(kStatusReservationConflict, 0x18);
  EXPECT_EQ(kInvalidReleaseOfPersistentReservation, (Sense{0x05, 0x26, 0x04}));
  EXPECT_EQ(kInsufficientRegistrationResources, (Sense{0x05, 0x55, 0x04}));
  EXPECT_EQ(kReservationsPreempted, (Sense{0x06, 0x2a, 0x03}));
  EXPECT_EQ(kReservationsReleased, (Sense{0x06, 0x2a, 0x04}));
  EXPECT_EQ(kRegistrationsPreempted, (Sense{0x06, 0x2a, 0x05}));
  EXPECT_EQ(kLogicalUnitReset, (Sense{0x06, 0x29, 0x03}));
  EXPECT_EQ(kNexusLoss, (Sense{0x06, 0x29, 0x07}));
}

}  // namespace
}  // namespace vhost::scsi
