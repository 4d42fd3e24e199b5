#include "vhost-user-scsi/scsi_lun.h"

#include <linux/virtio_scsi.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vhost-user-scsi/cdb.h"

namespace vhost::scsi {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::IsEmpty;

// A disk in memory that records what the LUN asked of it.
class MemoryBackend : public BlockBackend {
 public:
  MemoryBackend(uint64_t blocks, bool discard, bool read_only = false)
      : blocks_(blocks), discard_(discard), read_only_(read_only), data_(blocks * 512, 0) {}
  uint64_t num_blocks() const override { return blocks_; }
  uint32_t block_size() const override { return 512; }
  bool read_only() const override { return read_only_; }
  bool supports_discard() const override { return discard_; }
  absl::Status Read(uint64_t offset, absl::Span<uint8_t> data) override {
    EXPECT_LE(offset + data.size(), data_.size());
    ++reads;
    if (fail_reads) return absl::InternalError("injected");
    memcpy(data.data(), &data_[offset], data.size());
    return absl::OkStatus();
  }
  absl::Status Write(uint64_t offset, absl::Span<const uint8_t> data, bool fua) override {
    EXPECT_LE(offset + data.size(), data_.size());
    if (fail_writes) return absl::InternalError("injected");
    memcpy(&data_[offset], data.data(), data.size());
    writes.push_back({offset, data.size(), fua});
    return absl::OkStatus();
  }
  absl::Status Flush() override {
    ++flushes;
    return absl::OkStatus();
  }
  absl::Status Discard(uint64_t offset, uint64_t length) override {
    discards.push_back({offset, length, false});
    return absl::OkStatus();
  }
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool unmap) override {
    EXPECT_LE(offset + length, data_.size());
    memset(&data_[offset], 0, length);
    zeroes.push_back({offset, length, unmap});
    return absl::OkStatus();
  }

  struct Op {
    uint64_t offset;
    uint64_t length;
    bool flag;
    bool operator==(const Op& o) const {
      return offset == o.offset && length == o.length && flag == o.flag;
    }
  };
  std::vector<Op> writes, discards, zeroes;
  int flushes = 0;
  int reads = 0;
  bool fail_reads = false;
  bool fail_writes = false;
  std::vector<uint8_t>& data() { return data_; }

 private:
  uint64_t blocks_;
  bool discard_;
  bool read_only_;
  std::vector<uint8_t> data_;
};

class ScsiLunTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kBlocks = 64;

  ScsiLunTest() : backend_(kBlocks, /*discard=*/true), lun_(&backend_, Identity()) {}

  static LunIdentity Identity() {
    LunIdentity id;
    id.vendor = "ACME";
    id.product = "DISK";
    id.revision = "0.1";
    id.serial = "SN1";
    id.wwn = 0x5000000000000001;
    return id;
  }

  // The CDB padded to virtio-scsi's 32-byte CDB area.
  static std::vector<uint8_t> Cdb(std::vector<uint8_t> bytes) {
    bytes.resize(32, 0);
    return bytes;
  }

  ScsiResponse Run(std::vector<uint8_t> cdb, size_t data_in = 4096,
                   std::vector<uint8_t> data_out = {}, NexusId nexus = 0) {
    cdb_ = Cdb(std::move(cdb));
    data_out_ = std::move(data_out);
    ScsiRequest request;
    request.cdb = cdb_;
    request.data_out = data_out_;
    request.data_in_size = data_in;
    request.nexus = nexus;
    return lun_.Execute(request);
  }

  static void ExpectSense(const ScsiResponse& response, const Sense& sense) {
    EXPECT_EQ(response.response, VIRTIO_SCSI_S_OK);
    EXPECT_EQ(response.status, kStatusCheckCondition);
    EXPECT_EQ(response.sense, EncodeSense(sense, SenseFormat::kFixed));
    EXPECT_THAT(response.data_in, IsEmpty());
  }

  static void ExpectGood(const ScsiResponse& response) {
    EXPECT_EQ(response.response, VIRTIO_SCSI_S_OK);
    EXPECT_EQ(response.status, kStatusGood);
    EXPECT_THAT(response.sense, IsEmpty());
  }

  MemoryBackend backend_;
  ScsiLun lun_;
  std::vector<uint8_t> cdb_;
  std::vector<uint8_t> data_out_;
};

TEST_F(ScsiLunTest, TestUnitReadyAndStartStop) {
  ExpectGood(Run({TEST_UNIT_READY}));
  ExpectGood(Run({START_STOP, 0, 0, 0, 0x01}));
}

TEST_F(ScsiLunTest, UnknownOpcode) {
  ScsiResponse response = Run({0x3b /* WRITE BUFFER */});
  EXPECT_EQ(response.status, kStatusCheckCondition);
  EXPECT_THAT(response.sense,
              ElementsAre(0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0));
  lun_.set_descriptor_sense(true);
  response = Run({0xc5 /* vendor specific */});
  EXPECT_EQ(response.status, kStatusCheckCondition);
  EXPECT_THAT(response.sense, ElementsAre(0x72, 0x05, 0x20, 0, 0, 0, 0, 0));
}

TEST_F(ScsiLunTest, ShortCdb) {
  std::vector<uint8_t> cdb = {READ_10, 0, 0, 0, 0, 0};
  ScsiRequest request;
  request.cdb = cdb;
  request.data_in_size = 4096;
  ExpectSense(lun_.Execute(request), kInvalidFieldInCdb);
  EXPECT_TRUE(backend_.writes.empty());
}

const std::vector<uint8_t> kStandardInquiry = {0x00, 0x00, 0x07, 0x12, 31,  0x00, 0x00, 0x02, 'A',
                                               'C',  'M',  'E',  ' ',  ' ', ' ',  ' ',  'D',  'I',
                                               'S',  'K',  ' ',  ' ',  ' ', ' ',  ' ',  ' ',  ' ',
                                               ' ',  ' ',  ' ',  ' ',  ' ', '0',  '.',  '1',  ' '};

TEST_F(ScsiLunTest, StandardInquiry) {
  ScsiResponse response = Run({INQUIRY, 0, 0, 0, 0xff});
  ExpectGood(response);
  EXPECT_EQ(response.data_in, kStandardInquiry);
}

TEST_F(ScsiLunTest, InquiryTruncatedByAllocationLengthAndBuffer) {
  ScsiResponse response = Run({INQUIRY, 0, 0, 0, 5});
  ExpectGood(response);
  EXPECT_THAT(response.data_in, ElementsAre(0x00, 0x00, 0x07, 0x12, 31));
  response = Run({INQUIRY, 0, 0, 0x01, 0x00}, /*data_in=*/8);  // 256 asked, 8 room
  EXPECT_THAT(response.data_in,
              ElementsAreArray(kStandardInquiry.begin(), kStandardInquiry.begin() + 8));
}

TEST_F(ScsiLunTest, InquiryInvalidFields) {
  ExpectSense(Run({INQUIRY, 0, 0x80, 0, 0xff}), kInvalidFieldInCdb);     // page without EVPD
  ExpectSense(Run({INQUIRY, 0x02, 0, 0, 0xff}), kInvalidFieldInCdb);     // CMDDT
  ExpectSense(Run({INQUIRY, 0x01, 0x86, 0, 0xff}), kInvalidFieldInCdb);  // page not offered
}

TEST_F(ScsiLunTest, SupportedVpdPages) {
  ScsiResponse response = Run({INQUIRY, 1, 0x00, 0, 0xff});
  ExpectGood(response);
  EXPECT_THAT(response.data_in, ElementsAre(0, 0, 0, 6, 0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2));
}

TEST_F(ScsiLunTest, VpdPagesWithoutDiscardOrSerial) {
  MemoryBackend backend(kBlocks, /*discard=*/false);
  LunIdentity id = Identity();
  id.serial = "";
  ScsiLun lun(&backend, id);
  std::vector<uint8_t> cdb = Cdb({INQUIRY, 1, 0x00, 0, 0xff});
  ScsiRequest request;
  request.cdb = cdb;
  request.data_in_size = 255;
  EXPECT_THAT(lun.Execute(request).data_in, ElementsAre(0, 0, 0, 4, 0x00, 0x83, 0xb0, 0xb1));
  cdb[2] = 0xb2;
  EXPECT_EQ(lun.Execute(request).sense, EncodeSense(kInvalidFieldInCdb, SenseFormat::kFixed));
  cdb[2] = 0x80;
  EXPECT_EQ(lun.Execute(request).sense, EncodeSense(kInvalidFieldInCdb, SenseFormat::kFixed));
  cdb[2] = 0xb0;  // block limits: no unmap limits without discard
  std::vector<uint8_t> limits = lun.Execute(request).data_in;
  ASSERT_EQ(limits.size(), 64u);
  EXPECT_THAT(std::vector<uint8_t>(limits.begin() + 20, limits.begin() + 32),
              ElementsAre(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0));
}

TEST_F(ScsiLunTest, UnitSerialVpd) {
  EXPECT_THAT(Run({INQUIRY, 1, 0x80, 0, 0xff}).data_in, ElementsAre(0, 0x80, 0, 3, 'S', 'N', '1'));
}

TEST_F(ScsiLunTest, DeviceIdentificationVpd) {
  std::vector<uint8_t> expected = {0,    0x83, 0,    43,  // header
                                   0x01, 0x03, 0x00, 0x08, 0x50, 0,   0,   0,   0,   0,
                                   0,    0x01,                                   // NAA
                                   0x02, 0x01, 0x00, 27,                         // T10 vendor ID
                                   'A',  'C',  'M',  'E',  ' ',  ' ', ' ', ' ',  // vendor
                                   'D',  'I',  'S',  'K',  ' ',  ' ', ' ', ' ', ' ', ' ',
                                   ' ',  ' ',  ' ',  ' ',  ' ',  ' ', 'S', 'N', '1'};
  EXPECT_EQ(Run({INQUIRY, 1, 0x83, 0, 0xff}).data_in, expected);
}

TEST_F(ScsiLunTest, BlockLimitsVpd) {
  std::vector<uint8_t> expected(64, 0);
  expected[1] = 0xb0;
  expected[3] = 0x3c;
  expected[4] = 0x01;                                   // WSNZ
  expected[5] = ScsiLun::kMaxCompareAndWriteBlocks;     // maximum compare and write length
  Put32(&expected[8], ScsiLun::kMaxTransferBlocks);     // maximum transfer length
  Put32(&expected[20], ScsiLun::kMaxUnmapBlocks);       // maximum unmap LBA count
  Put32(&expected[24], ScsiLun::kMaxUnmapDescriptors);  // maximum unmap descriptors
  Put32(&expected[28], 1);                              // optimal unmap granularity
  Put64(&expected[36], ScsiLun::kMaxUnmapBlocks);       // maximum write same length
  EXPECT_EQ(Run({INQUIRY, 1, 0xb0, 0, 0xff}).data_in, expected);
}

TEST_F(ScsiLunTest, BlockCharacteristicsVpd) {
  std::vector<uint8_t> expected(64, 0);
  expected[1] = 0xb1;
  expected[3] = 0x3c;
  expected[5] = 0x01;  // non-rotating
  EXPECT_EQ(Run({INQUIRY, 1, 0xb1, 0, 0xff}).data_in, expected);
}

TEST_F(ScsiLunTest, ProvisioningVpd) {
  EXPECT_THAT(Run({INQUIRY, 1, 0xb2, 0, 0xff}).data_in,
              ElementsAre(0, 0xb2, 0, 4, 0, 0xe0, 0x02, 0));
}

TEST_F(ScsiLunTest, ReadCapacity) {
  EXPECT_THAT(Run({READ_CAPACITY}).data_in, ElementsAre(0, 0, 0, 63, 0, 0, 0x02, 0));
  std::vector<uint8_t> expected(32, 0);
  expected[7] = 63;
  expected[10] = 0x02;
  expected[14] = 0x80;  // LBPME
  EXPECT_EQ(
      Run({kServiceActionIn16, kReadCapacity16Action, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32}).data_in,
      expected);
  // Allocation length 12 truncates.
  EXPECT_THAT(
      Run({kServiceActionIn16, kReadCapacity16Action, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12}).data_in,
      ElementsAre(0, 0, 0, 0, 0, 0, 0, 63, 0, 0, 0x02, 0));
  ExpectSense(Run({kServiceActionIn16, 0x11}), kInvalidFieldInCdb);
}

TEST_F(ScsiLunTest, ReadCapacityOfAHugeDisk) {
  class Huge : public MemoryBackend {
   public:
    Huge() : MemoryBackend(1, false) {}
    uint64_t num_blocks() const override { return 0x100000001; }
  } huge;
  ScsiLun lun(&huge, Identity());
  std::vector<uint8_t> cdb = Cdb({READ_CAPACITY});
  ScsiRequest request;
  request.cdb = cdb;
  request.data_in_size = 8;
  EXPECT_THAT(lun.Execute(request).data_in, ElementsAre(0xff, 0xff, 0xff, 0xff, 0, 0, 0x02, 0));
  cdb = Cdb({kServiceActionIn16, kReadCapacity16Action, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8});
  request.cdb = cdb;
  EXPECT_THAT(lun.Execute(request).data_in, ElementsAre(0, 0, 0, 1, 0, 0, 0, 0));  // last LBA
}

TEST_F(ScsiLunTest, ModeSense6CachingPage) {
  ScsiResponse response = Run({MODE_SENSE, 0, 0x08, 0, 0xff});
  ExpectGood(response);
  std::vector<uint8_t> expected = {31,   0,    0x10, 8,  // header: DPOFUA, 8-byte descriptor
                                   0,    0,    0,    64, 0, 0, 0x02, 0,  // block descriptor
                                   0x08, 0x12, 0x04, 0,  0, 0, 0,    0,
                                   0,    0,    0,    0,  0, 0, 0,    0,  // caching page, WCE
                                   0,    0,    0,    0};
  EXPECT_EQ(response.data_in, expected);
}

TEST_F(ScsiLunTest, ModeSense10AllPagesWithoutBlockDescriptor) {
  ScsiResponse response = Run({MODE_SENSE_10, 0x08, 0x3f, 0, 0, 0, 0, 0, 0xff});
  ExpectGood(response);
  std::vector<uint8_t> expected = {
      0,    38,   0,    0x10, 0, 0, 0, 0,                                // header, DBD
      0x08, 0x12, 0x04, 0,    0, 0, 0, 0, 0,    0,    0, 0, 0, 0, 0, 0,  // caching
      0,    0,    0,    0,                                               //
      0x0a, 0x0a, 0x00, 0x10, 0, 0, 0, 0, 0xff, 0xff, 0, 0};             // control
  EXPECT_EQ(response.data_in, expected);
  // Changeable values: MODE SELECT may change D_SENSE (and the caching page's WCE).
  response = Run({MODE_SENSE, 0x08, 0x4a, 0, 0xff});
  EXPECT_THAT(response.data_in,
              ElementsAre(15, 0, 0x10, 0, 0x0a, 0x0a, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0));
  response = Run({MODE_SENSE, 0x08, 0x48, 0, 0xff});
  ASSERT_EQ(response.data_in.size(), 24u);
  EXPECT_EQ(response.data_in[6], 0x04);
  lun_.set_descriptor_sense(true);
  response = Run({MODE_SENSE, 0x08, 0x0a, 0, 0xff});
  EXPECT_EQ(response.data_in[6], 0x04);
  // Allocation length truncates.
  EXPECT_THAT(Run({MODE_SENSE, 0x08, 0x0a, 0, 2}).data_in, ElementsAre(15, 0));
}

TEST_F(ScsiLunTest, ModeSenseErrors) {
  ExpectSense(Run({MODE_SENSE, 0, 0xc8, 0, 0xff}), kSavingParametersNotSupported);
  ExpectSense(Run({MODE_SENSE, 0, 0x1c, 0, 0xff}), kInvalidFieldInCdb);  // page not offered
  ExpectSense(Run({MODE_SENSE, 0, 0x08, 1, 0xff}), kInvalidFieldInCdb);  // subpage
}

TEST_F(ScsiLunTest, ModeSenseReadOnly) {
  MemoryBackend backend(kBlocks, false, /*read_only=*/true);
  ScsiLun lun(&backend, Identity());
  std::vector<uint8_t> cdb = Cdb({MODE_SENSE, 0x08, 0x08, 0, 0xff});
  ScsiRequest request;
  request.cdb = cdb;
  request.data_in_size = 255;
  EXPECT_EQ(lun.Execute(request).data_in[2], 0x90);  // WP | DPOFUA
}

// What MODE SENSE(6) with DBD returns for one page, turned into a MODE SELECT(6) list.
std::vector<uint8_t> SelectList(std::vector<uint8_t> sensed) {
  sensed[0] = 0;  // MODE DATA LENGTH is reserved in MODE SELECT
  sensed[2] = 0;  // so is WP/DPOFUA
  return sensed;
}

TEST_F(ScsiLunTest, ModeSelectTurnsOffTheWriteCache) {
  std::vector<uint8_t> list = SelectList(Run({MODE_SENSE, 0x08, 0x08, 0, 0xff}).data_in);
  ASSERT_EQ(list.size(), 24u);
  list[6] &= ~0x04;  // WCE off
  ExpectGood(Run({MODE_SELECT, 0x10, 0, 0, 24}, 0, list));
  EXPECT_FALSE(lun_.write_cache_enabled());
  EXPECT_EQ(Run({MODE_SENSE, 0x08, 0x08, 0, 0xff}).data_in[6], 0x00);
  // Without the write cache every write is FUA.
  ExpectGood(Run({WRITE_10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 0, std::vector<uint8_t>(512)));
  EXPECT_TRUE(backend_.writes.back().flag);
}

TEST_F(ScsiLunTest, ModeSelect10SetsDescriptorSense) {
  std::vector<uint8_t> list = Run({MODE_SENSE_10, 0x08, 0x0a, 0, 0, 0, 0, 0, 0xff}).data_in;
  ASSERT_EQ(list.size(), 20u);
  list[0] = list[1] = list[3] = 0;
  list[10] |= 0x04;  // D_SENSE
  ExpectGood(Run({MODE_SELECT_10, 0x10, 0, 0, 0, 0, 0, 0, 20}, 0, list));
  EXPECT_THAT(Run({0x3b}).sense, ElementsAre(0x72, 0x05, 0x20, 0, 0, 0, 0, 0));
}

TEST_F(ScsiLunTest, ModeSelectErrorsChangeNothing) {
  std::vector<uint8_t> list = SelectList(Run({MODE_SENSE, 0x08, 0x08, 0, 0xff}).data_in);
  list[6] &= ~0x04;
  std::vector<uint8_t> bad = list;
  bad[7] = 0x01;  // the caching page's byte 3: not changeable
  ExpectSense(Run({MODE_SELECT, 0x10, 0, 0, 24}, 0, bad), kInvalidFieldInParameterList);
  ExpectSense(Run({MODE_SELECT, 0x11, 0, 0, 24}, 0, list), kSavingParametersNotSupported);
  ExpectSense(Run({MODE_SELECT, 0x00, 0, 0, 24}, 0, list), kInvalidFieldInCdb);  // no PF
  ExpectSense(Run({MODE_SELECT, 0x10, 0, 0, 20}, 0, list), kParameterListLengthError);
  ExpectSense(Run({MODE_SELECT, 0x10, 0, 0, 3}, 0, list), kParameterListLengthError);
  EXPECT_EQ(Run({MODE_SELECT, 0x10, 0, 0, 25}, 0, list).response, VIRTIO_SCSI_S_OVERRUN);
  bad = list;
  bad[4] = 0x1c;  // a page this target does not have
  ExpectSense(Run({MODE_SELECT, 0x10, 0, 0, 24}, 0, bad), kInvalidFieldInParameterList);
  // A block descriptor with another block length.
  std::vector<uint8_t> with_descriptor = SelectList(Run({MODE_SENSE, 0, 0x08, 0, 0xff}).data_in);
  ASSERT_EQ(with_descriptor.size(), 32u);
  with_descriptor[14] &= ~0x04;
  with_descriptor[10] = 0x10;  // 4096-byte blocks
  ExpectSense(Run({MODE_SELECT, 0x10, 0, 0, 32}, 0, with_descriptor), kInvalidFieldInParameterList);
  EXPECT_TRUE(lun_.write_cache_enabled());
  with_descriptor[10] = 0x02;  // the current block length is fine
  ExpectGood(Run({MODE_SELECT, 0x10, 0, 0, 32}, 0, with_descriptor));
  EXPECT_FALSE(lun_.write_cache_enabled());
}

TEST_F(ScsiLunTest, RequestSense) {
  EXPECT_EQ(Run({REQUEST_SENSE, 0, 0, 0, 0xff}).data_in,
            EncodeSense(kNoSense, SenseFormat::kFixed));
  EXPECT_THAT(Run({REQUEST_SENSE, 1, 0, 0, 0xff}).data_in, ElementsAre(0x72, 0, 0, 0, 0, 0, 0, 0));
  EXPECT_THAT(Run({REQUEST_SENSE, 0, 0, 0, 3}).data_in, ElementsAre(0x70, 0, 0));
}

TEST_F(ScsiLunTest, UnitAttentionReportedOnce) {
  lun_.SetUnitAttention(kCapacityDataChanged);
  // INQUIRY is answered normally and leaves it pending.
  EXPECT_EQ(Run({INQUIRY, 0, 0, 0, 0xff}).data_in, kStandardInquiry);
  ScsiResponse response = Run({TEST_UNIT_READY});
  EXPECT_EQ(response.status, kStatusCheckCondition);
  EXPECT_THAT(response.sense,
              ElementsAre(0x70, 0, 0x06, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x2a, 0x09, 0, 0, 0, 0));
  ExpectGood(Run({TEST_UNIT_READY}));
  // REQUEST SENSE returns it instead, in the format asked for, and clears it.
  lun_.SetUnitAttention(kCapacityDataChanged);
  response = Run({REQUEST_SENSE, 1, 0, 0, 0xff});
  ExpectGood(response);
  EXPECT_THAT(response.data_in, ElementsAre(0x72, 0x06, 0x2a, 0x09, 0, 0, 0, 0));
  EXPECT_EQ(Run({REQUEST_SENSE, 0, 0, 0, 0xff}).data_in,
            EncodeSense(kNoSense, SenseFormat::kFixed));
  // A READ with a unit attention pending does no I/O.
  lun_.SetUnitAttention(kCapacityDataChanged);
  response = Run({READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0});
  EXPECT_EQ(response.status, kStatusCheckCondition);
  EXPECT_THAT(response.data_in, IsEmpty());
}

TEST_F(ScsiLunTest, ReportSupportedOperationCodes) {
  ScsiResponse response =
      Run({kMaintenanceIn, kReportSupportedOpcodesAction, 0, 0, 0, 0, 0, 0, 0x10, 0});
  ExpectGood(response);
  const std::vector<uint8_t>& data = response.data_in;
  ASSERT_GE(data.size(), 4u);
  uint32_t length = Get32(data, 0);
  ASSERT_EQ(data.size(), 4 + length);
  ASSERT_EQ(length % 8, 0u);
  EXPECT_EQ(length / 8, 28u);
  EXPECT_THAT(std::vector<uint8_t>(data.begin() + 4, data.begin() + 12),
              ElementsAre(TEST_UNIT_READY, 0, 0, 0, 0, 0, 0, 6));
  bool unmap = false, read_capacity16 = false, compare_and_write = false;
  for (size_t at = 4; at < data.size(); at += 8) {
    if (data[at] == kUnmap) unmap = true;
    if (data[at] == kCompareAndWrite) {
      compare_and_write = true;
      EXPECT_THAT(std::vector<uint8_t>(data.begin() + at, data.begin() + at + 8),
                  ElementsAre(0x89, 0, 0, 0, 0, 0, 0, 16));
    }
    // No persistent reservations object: PERSISTENT RESERVE IN/OUT are not offered.
    EXPECT_NE(data[at], PERSISTENT_RESERVE_IN);
    EXPECT_NE(data[at], PERSISTENT_RESERVE_OUT);
    if (data[at] == kServiceActionIn16) {
      read_capacity16 = true;
      EXPECT_THAT(std::vector<uint8_t>(data.begin() + at, data.begin() + at + 8),
                  ElementsAre(0x9e, 0, 0, 0x10, 0, 0x01, 0, 16));
    }
  }
  EXPECT_TRUE(unmap);
  EXPECT_TRUE(read_capacity16);
  EXPECT_TRUE(compare_and_write);
  // Allocation length 4: just the header, which still says how much there is.
  EXPECT_THAT(Run({kMaintenanceIn, kReportSupportedOpcodesAction, 0, 0, 0, 0, 0, 0, 0, 4}).data_in,
              ElementsAre(0, 0, 0, 224));
  // One-command forms and timeouts are not implemented.
  ExpectSense(Run({kMaintenanceIn, kReportSupportedOpcodesAction, 1, READ_10, 0, 0, 0, 0, 1, 0}),
              kInvalidFieldInCdb);
  ExpectSense(Run({kMaintenanceIn, kReportSupportedOpcodesAction, 0x80, 0, 0, 0, 0, 0, 1, 0}),
              kInvalidFieldInCdb);
}

TEST_F(ScsiLunTest, ReportSupportedOperationCodesWithoutDiscard) {
  MemoryBackend backend(kBlocks, false);
  ScsiLun lun(&backend, Identity());
  std::vector<uint8_t> cdb =
      Cdb({kMaintenanceIn, kReportSupportedOpcodesAction, 0, 0, 0, 0, 0, 0, 0x10, 0});
  ScsiRequest request;
  request.cdb = cdb;
  request.data_in_size = 4096;
  std::vector<uint8_t> data = lun.Execute(request).data_in;
  EXPECT_EQ(Get32(data, 0), 27u * 8);
  for (size_t at = 4; at < data.size(); at += 8) EXPECT_NE(data[at], kUnmap);
  cdb = Cdb({kUnmap, 0, 0, 0, 0, 0, 0, 0, 24});
  request.cdb = cdb;
  EXPECT_EQ(lun.Execute(request).sense, EncodeSense(kInvalidOpcode, SenseFormat::kFixed));
}

TEST_F(ScsiLunTest, WriteThenRead) {
  std::vector<uint8_t> block(1024);
  for (size_t i = 0; i < block.size(); ++i) block[i] = i * 7;
  ExpectGood(Run({WRITE_10, 0x08, 0, 0, 0, 5, 0, 0, 2, 0}, 0, block));
  EXPECT_THAT(backend_.writes, ElementsAre(MemoryBackend::Op{5 * 512, 1024, true}));
  ScsiResponse response = Run({kRead16, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2}, 1024);
  ExpectGood(response);
  EXPECT_EQ(response.data_in, block);
  EXPECT_EQ(Run({READ_6, 0, 0, 5, 2}, 1024).data_in, block);
  EXPECT_EQ(Run({READ_12, 0, 0, 0, 0, 5, 0, 0, 0, 2}, 1024).data_in, block);
  ExpectGood(Run({WRITE_6, 0, 0, 63, 1}, 0, std::vector<uint8_t>(512, 1)));  // the last block
  EXPECT_EQ(backend_.writes.back(), (MemoryBackend::Op{63 * 512, 512, false}));
}

TEST_F(ScsiLunTest, PrepareHandsTheDataPhaseToTheCaller) {
  std::vector<uint8_t> cdb = Cdb({kWrite16, 0x08, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2});
  std::vector<uint8_t> data(1024, 5);
  ScsiRequest request;
  request.cdb = cdb;
  request.data_out = data;
  std::variant<ScsiResponse, BlockIo> prepared = lun_.Prepare(request);
  ASSERT_TRUE(std::holds_alternative<BlockIo>(prepared));
  BlockIo io = std::get<BlockIo>(prepared);
  EXPECT_EQ(io.kind, BlockIo::kWrite);
  EXPECT_EQ(io.offset, 3u * 512);
  EXPECT_EQ(io.length, 1024u);
  EXPECT_TRUE(io.fua);
  EXPECT_TRUE(backend_.writes.empty());  // nothing ran yet
  ExpectGood(lun_.CompleteIo(io, 1024));
  ExpectSense(lun_.CompleteIo(io, -EIO), kWriteError);

  cdb = Cdb({READ_10, 0, 0, 0, 0, 1, 0, 0, 1, 0});
  request.cdb = cdb;
  request.data_out = {};
  request.data_in_size = 512;
  prepared = lun_.Prepare(request);
  ASSERT_TRUE(std::holds_alternative<BlockIo>(prepared));
  io = std::get<BlockIo>(prepared);
  EXPECT_EQ(io.kind, BlockIo::kRead);
  EXPECT_EQ(io.offset, 512u);
  EXPECT_EQ(io.length, 512u);
  EXPECT_FALSE(io.fua);
  ExpectSense(lun_.CompleteIo(io, -EIO), kUnrecoveredReadError);

  cdb = Cdb({SYNCHRONIZE_CACHE});
  request.cdb = cdb;
  prepared = lun_.Prepare(request);
  ASSERT_TRUE(std::holds_alternative<BlockIo>(prepared));
  EXPECT_EQ(std::get<BlockIo>(prepared).kind, BlockIo::kFlush);
  EXPECT_EQ(backend_.flushes, 0);

  // Everything else is answered at once.
  cdb = Cdb({READ_10, 0, 0, 0, 0, 64, 0, 0, 1, 0});
  request.cdb = cdb;
  prepared = lun_.Prepare(request);
  ASSERT_TRUE(std::holds_alternative<ScsiResponse>(prepared));
  ExpectSense(std::get<ScsiResponse>(prepared), kLbaOutOfRange);
}

TEST_F(ScsiLunTest, WriteDataPassedByReference) {
  // The device copies no WRITE data: only its size says whether the buffers hold the transfer.
  std::vector<uint8_t> cdb = Cdb({WRITE_10, 0, 0, 0, 0, 2, 0, 0, 2, 0});
  ScsiRequest request;
  request.cdb = cdb;
  request.data_out_size = 1024;
  std::variant<ScsiResponse, BlockIo> prepared = lun_.Prepare(request);
  ASSERT_TRUE(std::holds_alternative<BlockIo>(prepared));
  EXPECT_EQ(std::get<BlockIo>(prepared).length, 1024u);
  request.data_out_size = 1023;
  prepared = lun_.Prepare(request);
  ASSERT_TRUE(std::holds_alternative<ScsiResponse>(prepared));
  EXPECT_EQ(std::get<ScsiResponse>(prepared).response, VIRTIO_SCSI_S_OVERRUN);
}

TEST_F(ScsiLunTest, LbaBeyondCapacity) {
  ExpectSense(Run({READ_10, 0, 0, 0, 0, 63, 0, 0, 2, 0}), kLbaOutOfRange);
  ExpectSense(Run({READ_10, 0, 0, 0, 0, 64, 0, 0, 1, 0}), kLbaOutOfRange);
  ExpectSense(Run({READ_6, 0, 0, 64, 1}), kLbaOutOfRange);
  // LBA + length wraps 64 bits.
  ExpectSense(Run({kWrite16, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2}, 0,
                  std::vector<uint8_t>(1024)),
              kLbaOutOfRange);
  ExpectSense(Run({WRITE_12, 0, 0, 0, 0, 60, 0, 0, 0, 5}, 0, std::vector<uint8_t>(5 * 512)),
              kLbaOutOfRange);
  ExpectSense(Run({VERIFY, 0, 0, 0, 0, 60, 0, 0, 5, 0}), kLbaOutOfRange);
  ExpectSense(Run({kVerify16, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 1}), kLbaOutOfRange);
  ExpectSense(Run({SYNCHRONIZE_CACHE, 0, 0, 0, 0, 65, 0, 0, 0, 0}), kLbaOutOfRange);
  EXPECT_TRUE(backend_.writes.empty());
  EXPECT_EQ(backend_.flushes, 0);
}

TEST_F(ScsiLunTest, ZeroLengthTransfers) {
  ScsiResponse response = Run({READ_10, 0, 0, 0, 0, 63, 0, 0, 0, 0});
  ExpectGood(response);
  EXPECT_THAT(response.data_in, IsEmpty());
  ExpectGood(Run({WRITE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_TRUE(backend_.writes.empty());
  // The LBA of a zero-length transfer is still checked.
  ExpectSense(Run({READ_10, 0, 0, 0, 0, 64, 0, 0, 0, 0}), kLbaOutOfRange);
  ExpectSense(Run({kWrite16, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 0}), kLbaOutOfRange);
}

TEST_F(ScsiLunTest, TransferLongerThanBuffers) {
  ScsiResponse response = Run({READ_10, 0, 0, 0, 0, 0, 0, 0, 2, 0}, /*data_in=*/1023);
  EXPECT_EQ(response.response, VIRTIO_SCSI_S_OVERRUN);
  EXPECT_THAT(response.data_in, IsEmpty());
  response = Run({WRITE_10, 0, 0, 0, 0, 0, 0, 0, 2, 0}, 0, std::vector<uint8_t>(1023));
  EXPECT_EQ(response.response, VIRTIO_SCSI_S_OVERRUN);
  EXPECT_TRUE(backend_.writes.empty());
  // More than the block limits page allows.
  ExpectSense(Run({READ_12, 0, 0, 0, 0, 0, 0, 0x01, 0, 0x01}), kInvalidFieldInCdb);
}

TEST_F(ScsiLunTest, WriteToReadOnlyLun) {
  MemoryBackend backend(kBlocks, true, /*read_only=*/true);
  ScsiLun lun(&backend, Identity());
  std::vector<uint8_t> cdb = Cdb({WRITE_10, 0, 0, 0, 0, 0, 0, 0, 1, 0});
  std::vector<uint8_t> data(512, 1);
  ScsiRequest request;
  request.cdb = cdb;
  request.data_out = data;
  EXPECT_EQ(lun.Execute(request).sense, EncodeSense(kWriteProtected, SenseFormat::kFixed));
  EXPECT_TRUE(backend.writes.empty());
}

TEST_F(ScsiLunTest, VerifyAndSynchronizeCache) {
  ExpectGood(Run({VERIFY, 0, 0, 0, 0, 0, 0, 0, 64, 0}));
  // BYTCHK 10b is reserved, 11b is not implemented (01b: VerifyComparesWithDataOut).
  ExpectSense(Run({VERIFY, 0x04, 0, 0, 0, 0, 0, 0, 1, 0}), kInvalidFieldInCdb);
  ExpectSense(Run({VERIFY, 0x06, 0, 0, 0, 0, 0, 0, 1, 0}), kInvalidFieldInCdb);
  ExpectGood(Run({SYNCHRONIZE_CACHE}));
  ExpectGood(Run({kSynchronizeCache16, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 4}));
  EXPECT_EQ(backend_.flushes, 2);
}

std::vector<uint8_t> UnmapList(std::vector<std::pair<uint64_t, uint32_t>> ranges) {
  std::vector<uint8_t> list(8 + 16 * ranges.size(), 0);
  Put16(&list[0], list.size() - 2);
  Put16(&list[2], list.size() - 8);
  for (size_t i = 0; i < ranges.size(); ++i) {
    Put64(&list[8 + 16 * i], ranges[i].first);
    Put32(&list[16 + 16 * i], ranges[i].second);
  }
  return list;
}

TEST_F(ScsiLunTest, Unmap) {
  std::vector<uint8_t> list = UnmapList({{0, 4}, {60, 4}});
  ExpectGood(Run({kUnmap, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(list.size())}, 0, list));
  EXPECT_THAT(backend_.discards, ElementsAre(MemoryBackend::Op{0, 2048, false},
                                             MemoryBackend::Op{60 * 512, 2048, false}));
}

TEST_F(ScsiLunTest, UnmapBeyondCapacityChangesNothing) {
  std::vector<uint8_t> list = UnmapList({{0, 4}, {61, 4}});
  ExpectSense(Run({kUnmap, 0, 0, 0, 0, 0, 0, 0, static_cast<uint8_t>(list.size())}, 0, list),
              kLbaOutOfRange);
  EXPECT_TRUE(backend_.discards.empty());
}

TEST_F(ScsiLunTest, UnmapBadParameterLists) {
  std::vector<uint8_t> list = UnmapList({{0, 4}});
  // Shorter than the header.
  ExpectSense(Run({kUnmap, 0, 0, 0, 0, 0, 0, 0, 4}, 0, list), kParameterListLengthError);
  // Descriptors running past the parameter list.
  ExpectSense(Run({kUnmap, 0, 0, 0, 0, 0, 0, 0, 20}, 0, list), kParameterListLengthError);
  // A parameter list longer than the buffer.
  EXPECT_EQ(Run({kUnmap, 0, 0, 0, 0, 0, 0, 0, 40}, 0, list).response, VIRTIO_SCSI_S_OVERRUN);
  // No parameter list: nothing to do.
  ExpectGood(Run({kUnmap}));
  EXPECT_TRUE(backend_.discards.empty());
}

TEST_F(ScsiLunTest, WriteSame) {
  std::vector<uint8_t> pattern(512, 0xab);
  ExpectGood(Run({WRITE_SAME, 0, 0, 0, 0, 2, 0, 0, 3, 0}, 0, pattern));
  ASSERT_EQ(backend_.writes.size(), 3u);
  EXPECT_EQ(backend_.data()[2 * 512], 0xab);
  EXPECT_EQ(backend_.data()[5 * 512 - 1], 0xab);
  EXPECT_EQ(backend_.data()[5 * 512], 0);
  // A zero block with UNMAP: the range is zeroed and may be deallocated.
  ExpectGood(Run({kWriteSame16, 0x08, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3}, 0,
                 std::vector<uint8_t>(512, 0)));
  EXPECT_THAT(backend_.zeroes, ElementsAre(MemoryBackend::Op{2 * 512, 3 * 512, true}));
  EXPECT_EQ(backend_.data()[2 * 512], 0);
  // NDOB: no data-out buffer at all.
  ExpectGood(Run({kWriteSame16, 0x01, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 1}));
  EXPECT_EQ(backend_.zeroes.back(), (MemoryBackend::Op{10 * 512, 512, false}));
}

TEST_F(ScsiLunTest, WriteSameErrors) {
  std::vector<uint8_t> pattern(512, 0xab);
  ExpectSense(Run({WRITE_SAME, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0, pattern), kInvalidFieldInCdb);
  ExpectSense(Run({WRITE_SAME, 0, 0, 0, 0, 62, 0, 0, 3, 0}, 0, pattern), kLbaOutOfRange);
  EXPECT_EQ(Run({WRITE_SAME, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 0, std::vector<uint8_t>(511)).response,
            VIRTIO_SCSI_S_OVERRUN);
  EXPECT_TRUE(backend_.writes.empty());
  EXPECT_TRUE(backend_.zeroes.empty());
}

std::vector<uint8_t> CompareAndWriteCdb(uint64_t lba, uint8_t blocks, uint8_t flags = 0) {
  std::vector<uint8_t> cdb(16, 0);
  cdb[0] = kCompareAndWrite;
  cdb[1] = flags;
  Put64(&cdb[2], lba);
  cdb[13] = blocks;
  return cdb;
}

TEST_F(ScsiLunTest, CompareAndWriteWritesWhenTheMediumMatches) {
  memset(&backend_.data()[3 * 512], 0x11, 512);
  std::vector<uint8_t> data(512, 0x11);
  data.resize(1024, 0x22);
  ExpectGood(Run(CompareAndWriteCdb(3, 1), 0, data));
  EXPECT_EQ(backend_.data()[3 * 512], 0x22);
  EXPECT_EQ(backend_.data()[4 * 512 - 1], 0x22);
  EXPECT_EQ(backend_.data()[4 * 512], 0);
  EXPECT_THAT(backend_.writes, ElementsAre(MemoryBackend::Op{3 * 512, 512, false}));
  // FUA writes through.
  std::vector<uint8_t> again(512, 0x22);
  again.resize(1024, 0x33);
  ExpectGood(Run(CompareAndWriteCdb(3, 1, 0x08), 0, again));
  EXPECT_EQ(backend_.writes.back(), (MemoryBackend::Op{3 * 512, 512, true}));
  EXPECT_EQ(backend_.data()[3 * 512], 0x33);
}

TEST_F(ScsiLunTest, CompareAndWriteMiscompareWritesNothing) {
  std::vector<uint8_t> data(2048, 0);
  data[700] = 0x01;  // in the second block of the compare half
  std::fill(data.begin() + 1024, data.end(), 0xff);
  ScsiResponse response = Run(CompareAndWriteCdb(4, 2), 0, data);
  EXPECT_EQ(response.status, kStatusCheckCondition);
  // MISCOMPARE, 1D/00, INFORMATION 700 (2BCh) with VALID.
  EXPECT_THAT(response.sense, ElementsAre(0xf0, 0, 0x0e, 0x00, 0x00, 0x02, 0xbc, 0x0a, 0, 0, 0, 0,
                                          0x1d, 0x00, 0, 0, 0, 0));
  lun_.set_descriptor_sense(true);
  response = Run(CompareAndWriteCdb(4, 2), 0, data);
  EXPECT_THAT(response.sense, ElementsAre(0x72, 0x0e, 0x1d, 0x00, 0, 0, 0, 12, 0x00, 0x0a, 0x80, 0,
                                          0, 0, 0, 0, 0, 0, 0x02, 0xbc));
  EXPECT_TRUE(backend_.writes.empty());
  EXPECT_TRUE(std::all_of(backend_.data().begin(), backend_.data().end(),
                          [](uint8_t b) { return b == 0; }));
}

TEST_F(ScsiLunTest, CompareAndWriteBadInput) {
  std::vector<uint8_t> two_blocks(1024, 0);
  uint8_t too_many = ScsiLun::kMaxCompareAndWriteBlocks + 1;
  ExpectSense(Run(CompareAndWriteCdb(0, too_many), 0, std::vector<uint8_t>(too_many * 1024)),
              kInvalidFieldInCdb);
  ExpectSense(Run(CompareAndWriteCdb(63, 2), 0, std::vector<uint8_t>(2048)), kLbaOutOfRange);
  ExpectSense(Run(CompareAndWriteCdb(64, 1), 0, two_blocks), kLbaOutOfRange);
  ExpectSense(Run(CompareAndWriteCdb(~uint64_t{0}, 1), 0, two_blocks), kLbaOutOfRange);
  ExpectSense(Run(CompareAndWriteCdb(0, 1, 0x20 /* WRPROTECT */), 0, two_blocks),
              kInvalidFieldInCdb);
  // Buffers shorter than both halves: nothing happens.
  EXPECT_EQ(Run(CompareAndWriteCdb(0, 1), 0, std::vector<uint8_t>(1023)).response,
            VIRTIO_SCSI_S_OVERRUN);
  // Data-out sent but not copied for the command set: the device's bug, not the initiator's.
  std::vector<uint8_t> cdb = Cdb(CompareAndWriteCdb(0, 1));
  ScsiRequest request;
  request.cdb = cdb;
  request.data_out_size = 1024;
  ExpectSense(lun_.Execute(request), kInternalTargetFailure);
  EXPECT_EQ(backend_.reads, 0);
  // No blocks: nothing read or written, no error.
  ExpectGood(Run(CompareAndWriteCdb(0, 0)));
  EXPECT_EQ(backend_.reads, 0);
  backend_.fail_reads = true;
  ExpectSense(Run(CompareAndWriteCdb(0, 1), 0, two_blocks), kUnrecoveredReadError);
  backend_.fail_reads = false;
  backend_.fail_writes = true;
  ExpectSense(Run(CompareAndWriteCdb(0, 1), 0, two_blocks), kWriteError);
  EXPECT_TRUE(backend_.writes.empty());

  MemoryBackend read_only(kBlocks, false, /*read_only=*/true);
  ScsiLun lun(&read_only, Identity());
  request.data_out = two_blocks;
  EXPECT_EQ(lun.Execute(request).sense, EncodeSense(kWriteProtected, SenseFormat::kFixed));
  EXPECT_TRUE(read_only.writes.empty());
}

TEST_F(ScsiLunTest, VerifyComparesWithDataOut) {
  std::vector<uint8_t> expected(3 * 512);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = i * 3;
  memcpy(&backend_.data()[2 * 512], expected.data(), expected.size());
  ExpectGood(Run({VERIFY, 0x02, 0, 0, 0, 2, 0, 0, 3, 0}, 0, expected));
  ExpectGood(Run({kVerify16, 0x02, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3}, 0, expected));
  std::vector<uint8_t> wrong = expected;
  wrong[1030] ^= 0x80;
  ScsiResponse response = Run({kVerify12, 0x02, 0, 0, 0, 2, 0, 0, 0, 3}, 0, wrong);
  EXPECT_EQ(response.status, kStatusCheckCondition);
  EXPECT_THAT(response.sense, ElementsAre(0xf0, 0, 0x0e, 0x00, 0x00, 0x04, 0x06, 0x0a, 0, 0, 0, 0,
                                          0x1d, 0x00, 0, 0, 0, 0));
  lun_.set_descriptor_sense(true);
  EXPECT_THAT(Run({VERIFY, 0x02, 0, 0, 0, 2, 0, 0, 3, 0}, 0, wrong).sense,
              ElementsAre(0x72, 0x0e, 0x1d, 0x00, 0, 0, 0, 12, 0x00, 0x0a, 0x80, 0, 0, 0, 0, 0, 0,
                          0, 0x04, 0x06));
  lun_.set_descriptor_sense(false);
  EXPECT_TRUE(backend_.writes.empty());
}

TEST_F(ScsiLunTest, VerifyWithDataOutBadInput) {
  std::vector<uint8_t> block(512, 0);
  // Buffers shorter than the verification length: nothing read.
  EXPECT_EQ(Run({VERIFY, 0x02, 0, 0, 0, 0, 0, 0, 2, 0}, 0, block).response, VIRTIO_SCSI_S_OVERRUN);
  ExpectSense(Run({VERIFY, 0x02, 0, 0, 0, 63, 0, 0, 2, 0}, 0, std::vector<uint8_t>(1024)),
              kLbaOutOfRange);
  // More than the data-out the device copies.
  uint32_t blocks = ScsiLun::kMaxVerifyCompareBytes / 512 + 1;
  ExpectSense(Run({VERIFY, 0x02, 0, 0, 0, 0, 0, static_cast<uint8_t>(blocks >> 8),
                   static_cast<uint8_t>(blocks), 0}),
              kInvalidFieldInCdb);
  ExpectSense(Run({VERIFY, 0xe2, 0, 0, 0, 0, 0, 0, 1, 0}, 0, block), kInvalidFieldInCdb);
  EXPECT_EQ(backend_.reads, 0);
  ExpectGood(Run({VERIFY, 0x02, 0, 0, 0, 0, 0, 0, 0, 0}));  // nothing to compare
  EXPECT_EQ(backend_.reads, 0);
  backend_.fail_reads = true;
  ExpectSense(Run({VERIFY, 0x02, 0, 0, 0, 0, 0, 0, 1, 0}, 0, block), kUnrecoveredReadError);
}

TEST_F(ScsiLunTest, PersistentReserveWithoutReservations) {
  ExpectSense(Run({PERSISTENT_RESERVE_IN, 0, 0, 0, 0, 0, 0, 0, 0x10, 0}), kInvalidOpcode);
  ExpectSense(
      Run({PERSISTENT_RESERVE_OUT, 0, 0, 0, 0, 0, 0, 0, 24, 0}, 0, std::vector<uint8_t>(24)),
      kInvalidOpcode);
}

class ScsiLunReservationTest : public ScsiLunTest {
 protected:
  ScsiLunReservationTest() { lun_.set_reservations(&reservations_); }

  ScsiResponse Out(NexusId nexus, uint8_t action, uint8_t type, uint64_t key, uint64_t action_key) {
    std::vector<uint8_t> params(24, 0);
    Put64(&params[0], key);
    Put64(&params[8], action_key);
    return Run({PERSISTENT_RESERVE_OUT, action, type, 0, 0, 0, 0, 0, 24, 0}, 0, params, nexus);
  }
  static void ExpectConflict(const ScsiResponse& response) {
    EXPECT_EQ(response.response, VIRTIO_SCSI_S_OK);
    EXPECT_EQ(response.status, kStatusReservationConflict);
    EXPECT_THAT(response.sense, IsEmpty());
    EXPECT_THAT(response.data_in, IsEmpty());
  }

  PersistentReservations reservations_;
};

TEST_F(ScsiLunReservationTest, ReservationConflicts) {
  ExpectGood(Out(1, 0 /* REGISTER */, 0, 0, 0xaa));
  ExpectGood(Out(2, 0, 0, 0, 0xbb));
  ExpectGood(Out(1, 1 /* RESERVE */, 1 /* Write Exclusive */, 0xaa, 0));
  std::vector<uint8_t> block(512, 0x5a);
  ExpectConflict(Run({WRITE_10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 0, block, 2));
  ExpectConflict(Run(CompareAndWriteCdb(0, 1), 0, std::vector<uint8_t>(1024), 2));
  ExpectConflict(Run({kUnmap, 0, 0, 0, 0, 0, 0, 0, 24, 0}, 0, std::vector<uint8_t>(24), 3));
  EXPECT_TRUE(backend_.writes.empty());
  EXPECT_TRUE(backend_.discards.empty());
  ExpectGood(Run({READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512, {}, 2));
  ExpectGood(Run({WRITE_10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 0, block, 1));
  EXPECT_EQ(backend_.writes.size(), 1u);
  // READ RESERVATION truncated to the allocation length still says how much there is.
  ScsiResponse response = Run({PERSISTENT_RESERVE_IN, 1, 0, 0, 0, 0, 0, 0, 8, 0}, 4096, {}, 3);
  ExpectGood(response);
  EXPECT_THAT(response.data_in, ElementsAre(0, 0, 0, 2, 0, 0, 0, 16));
  // Exclusive Access: reads conflict too; INQUIRY and READ CAPACITY do not.
  ExpectGood(Out(1, 2 /* RELEASE */, 1, 0xaa, 0));
  ExpectGood(Out(1, 1, 3 /* Exclusive Access */, 0xaa, 0));
  ExpectConflict(Run({READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512, {}, 2));
  ExpectGood(Run({INQUIRY, 0, 0, 0, 36}, 4096, {}, 2));
  ExpectGood(Run({READ_CAPACITY}, 4096, {}, 2));
}

TEST_F(ScsiLunReservationTest, PreemptAndAbortAndItsUnitAttention) {
  ExpectGood(Out(1, 0, 0, 0, 0xaa));
  ExpectGood(Out(2, 0, 0, 0, 0xbb));
  ExpectGood(Out(2, 1, 1, 0xbb, 0));
  ScsiResponse response = Out(1, 5 /* PREEMPT AND ABORT */, 3, 0xaa, 0xbb);
  ExpectGood(response);
  EXPECT_THAT(response.abort_nexuses, ElementsAre(2));
  // INQUIRY leaves the unit attention; the next other command reports it, once.
  ExpectGood(Run({INQUIRY, 0, 0, 0, 36}, 4096, {}, 2));
  ExpectSense(Run({TEST_UNIT_READY}, 0, {}, 2), kRegistrationsPreempted);
  ExpectGood(Run({TEST_UNIT_READY}, 0, {}, 2));
  ExpectConflict(Run({READ_10, 0, 0, 0, 0, 0, 0, 0, 1, 0}, 512, {}, 2));
  // REQUEST SENSE returns one, in the format it asks for.
  ExpectGood(Out(2, 0, 0, 0, 0xbb));
  ExpectGood(Out(1, 3 /* CLEAR */, 0, 0xaa, 0));
  EXPECT_THAT(Run({REQUEST_SENSE, 0x01, 0, 0, 252}, 4096, {}, 2).data_in,
              ElementsAre(0x72, 0x06, 0x2a, 0x03, 0, 0, 0, 0));
  ExpectGood(Run({TEST_UNIT_READY}, 0, {}, 2));
  ExpectGood(Run({TEST_UNIT_READY}, 0, {}, 1));  // the nexus that cleared hears nothing
}

TEST_F(ScsiLunReservationTest, BadPersistentReserveOut) {
  // The parameter list length says more than the buffers hold: nothing happens.
  EXPECT_EQ(
      Run({PERSISTENT_RESERVE_OUT, 0, 0, 0, 0, 0, 0, 0, 24, 0}, 0, std::vector<uint8_t>(23), 1)
          .response,
      VIRTIO_SCSI_S_OVERRUN);
  ScsiResponse response =
      Run({PERSISTENT_RESERVE_OUT, 0, 0, 0, 0, 0, 0, 0, 23, 0}, 0, std::vector<uint8_t>(23), 1);
  EXPECT_THAT(response.sense,
              ElementsAre(0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x1a, 0x00, 0, 0, 0, 0));
  ExpectGood(Out(1, 0, 0, 0, 0xaa));
  ExpectGood(Out(1, 1, 5, 0xaa, 0));
  lun_.set_descriptor_sense(true);
  EXPECT_THAT(Out(1, 2, 6 /* not the type held */, 0xaa, 0).sense,
              ElementsAre(0x72, 0x05, 0x26, 0x04, 0, 0, 0, 0));
  EXPECT_THAT(Out(1, 1, 2 /* no such type */, 0xaa, 0).sense,
              ElementsAre(0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0));
  ExpectConflict(Out(2, 2, 5, 0xaa, 0));  // not registered
  EXPECT_THAT(
      reservations_.In(1, std::vector<uint8_t>{PERSISTENT_RESERVE_IN, 1, 0, 0, 0, 0, 0, 0, 0x10, 0})
          .data_in[21],
      5);
}

TEST_F(ScsiLunReservationTest, ReportSupportedOperationCodesListsThem) {
  ScsiResponse response =
      Run({kMaintenanceIn, kReportSupportedOpcodesAction, 0, 0, 0, 0, 0, 0, 0x10, 0});
  const std::vector<uint8_t>& data = response.data_in;
  ASSERT_EQ(Get32(data, 0), (28u + 11u) * 8);
  std::vector<std::vector<uint8_t>> reservation_descriptors;
  for (size_t at = 4; at < data.size(); at += 8) {
    if (data[at] == PERSISTENT_RESERVE_IN || data[at] == PERSISTENT_RESERVE_OUT) {
      reservation_descriptors.emplace_back(data.begin() + at, data.begin() + at + 8);
    }
  }
  ASSERT_EQ(reservation_descriptors.size(), 11u);
  EXPECT_THAT(reservation_descriptors[3], ElementsAre(0x5e, 0, 0, 0x03, 0, 0x01, 0, 10));
  EXPECT_THAT(reservation_descriptors[10], ElementsAre(0x5f, 0, 0, 0x06, 0, 0x01, 0, 10));
}

}  // namespace
}  // namespace vhost::scsi
