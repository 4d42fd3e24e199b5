#include "vhost-user-scsi/cdb.h"

#include <optional>
#include <vector>

#include "gtest/gtest.h"

namespace vhost::scsi {
namespace {

TEST(CdbTest, LengthByGroup) {
  EXPECT_EQ(CdbLength(TEST_UNIT_READY), 6u);
  EXPECT_EQ(CdbLength(READ_6), 6u);
  EXPECT_EQ(CdbLength(READ_10), 10u);
  EXPECT_EQ(CdbLength(MODE_SENSE_10), 10u);  // group 2
  EXPECT_EQ(CdbLength(0x7f), 0u);            // variable length
  EXPECT_EQ(CdbLength(kRead16), 16u);
  EXPECT_EQ(CdbLength(READ_12), 12u);
  EXPECT_EQ(CdbLength(0xc0), 0u);  // vendor specific
  EXPECT_EQ(CdbLength(0xe0), 0u);
}

// Every opcode group: one byte short is INVALID FIELD IN CDB, the full length passes.
TEST(CdbTest, EveryLengthBound) {
  for (uint8_t opcode :
       std::vector<uint8_t>{TEST_UNIT_READY, READ_10, MODE_SENSE_10, kRead16, READ_12}) {
    size_t needed = CdbLength(opcode);
    std::vector<uint8_t> cdb(needed, 0);
    cdb[0] = opcode;
    EXPECT_EQ(CheckCdbLength(cdb), std::nullopt) << int(opcode);
    for (size_t n = 1; n < needed; ++n) {
      EXPECT_EQ(CheckCdbLength(absl::MakeConstSpan(cdb).first(n)), kInvalidFieldInCdb)
          << int(opcode) << " " << n;
    }
  }
  EXPECT_EQ(CheckCdbLength({}), kInvalidFieldInCdb);
  std::vector<uint8_t> variable(32, 0);
  variable[0] = 0x7f;
  EXPECT_EQ(CheckCdbLength(variable), kInvalidOpcode);
}

TEST(CdbTest, Read6) {
  BlockRange range;
  std::vector<uint8_t> cdb = {READ_6, 0xe1, 0x23, 0x45, 0x00, 0};
  ASSERT_EQ(ParseBlockRange(cdb, &range), std::nullopt);
  EXPECT_EQ(range.lba, 0x012345u);  // 21 bits: byte 1's top bits are not the LBA
  EXPECT_EQ(range.blocks, 256u);    // 0 means 256
  EXPECT_FALSE(range.fua);
  cdb[4] = 7;
  ASSERT_EQ(ParseBlockRange(cdb, &range), std::nullopt);
  EXPECT_EQ(range.blocks, 7u);
}

TEST(CdbTest, Write10WithFua) {
  BlockRange range;
  std::vector<uint8_t> cdb = {WRITE_10, 0x08, 0x12, 0x34, 0x56, 0x78, 0, 0x01, 0x02, 0};
  ASSERT_EQ(ParseBlockRange(cdb, &range), std::nullopt);
  EXPECT_EQ(range.lba, 0x12345678u);
  EXPECT_EQ(range.blocks, 0x0102u);
  EXPECT_TRUE(range.fua);
}

TEST(CdbTest, Read12) {
  BlockRange range;
  std::vector<uint8_t> cdb = {READ_12, 0, 0, 0, 0x10, 0, 0x00, 0x01, 0x00, 0x00, 0, 0};
  ASSERT_EQ(ParseBlockRange(cdb, &range), std::nullopt);
  EXPECT_EQ(range.lba, 0x1000u);
  EXPECT_EQ(range.blocks, 0x10000u);
}

TEST(CdbTest, Write16) {
  BlockRange range;
  std::vector<uint8_t> cdb = {kWrite16, 0x08, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
                              0x07,     0x08, 0x00, 0x00, 0x10, 0x00, 0,    0};
  ASSERT_EQ(ParseBlockRange(cdb, &range), std::nullopt);
  EXPECT_EQ(range.lba, 0x0102030405060708u);
  EXPECT_EQ(range.blocks, 0x1000u);
  EXPECT_TRUE(range.fua);
}

TEST(CdbTest, ProtectionFieldsRefused) {
  BlockRange range;
  std::vector<uint8_t> cdb = {READ_10, 0x20, 0, 0, 0, 0, 0, 0, 1, 0};  // RDPROTECT 1
  EXPECT_EQ(ParseBlockRange(cdb, &range), kInvalidFieldInCdb);
}

TEST(CdbTest, NotABlockCommand) {
  BlockRange range;
  std::vector<uint8_t> cdb = {INQUIRY, 0, 0, 0, 0, 0};
  EXPECT_EQ(ParseBlockRange(cdb, &range), kInvalidOpcode);
}

}  // namespace
}  // namespace vhost::scsi
