#include "vhost-user-scsi/cdb.h"

namespace vhost::scsi {

size_t CdbLength(uint8_t opcode) {
  switch (opcode >> 5) {  // the group code
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    default:  // 3: reserved and variable length; 6, 7: vendor specific
      return 0;
  }
}

uint16_t Get16(absl::Span<const uint8_t> bytes, size_t at) {
  return static_cast<uint16_t>(bytes[at] << 8 | bytes[at + 1]);
}

uint32_t Get32(absl::Span<const uint8_t> bytes, size_t at) {
  return static_cast<uint32_t>(Get16(bytes, at)) << 16 | Get16(bytes, at + 2);
}

uint64_t Get64(absl::Span<const uint8_t> bytes, size_t at) {
  return static_cast<uint64_t>(Get32(bytes, at)) << 32 | Get32(bytes, at + 4);
}

void Put16(uint8_t* out, uint16_t value) {
  out[0] = value >> 8;
  out[1] = value & 0xff;
}

void Put32(uint8_t* out, uint32_t value) {
  Put16(out, value >> 16);
  Put16(out + 2, value & 0xffff);
}

void Put64(uint8_t* out, uint64_t value) {
  Put32(out, value >> 32);
  Put32(out + 4, value & 0xffffffff);
}

std::optional<Sense> CheckCdbLength(absl::Span<const uint8_t> cdb) {
  if (cdb.empty()) return kInvalidFieldInCdb;
  size_t needed = CdbLength(cdb[0]);
  if (needed == 0) return kInvalidOpcode;
  if (cdb.size() < needed) return kInvalidFieldInCdb;
  return std::nullopt;
}

std::optional<Sense> ParseBlockRange(absl::Span<const uint8_t> cdb, BlockRange* range) {
  *range = BlockRange{};
  switch (cdb[0]) {
    case READ_6:
    case WRITE_6:
      range->lba = (cdb[1] & 0x1f) << 16 | Get16(cdb, 2);
      range->blocks = cdb[4] == 0 ? 256 : cdb[4];
      return std::nullopt;
    case READ_10:
    case WRITE_10:
    case VERIFY:
    case SYNCHRONIZE_CACHE:
    case WRITE_SAME:
      range->lba = Get32(cdb, 2);
      range->blocks = Get16(cdb, 7);
      break;
    case READ_12:
    case WRITE_12:
    case kVerify12:
      range->lba = Get32(cdb, 2);
      range->blocks = Get32(cdb, 6);
      break;
    case kRead16:
    case kWrite16:
    case kVerify16:
    case kSynchronizeCache16:
    case kWriteSame16:
      range->lba = Get64(cdb, 2);
      range->blocks = Get32(cdb, 10);
      break;
    default:
      return kInvalidOpcode;
  }
  // Byte 1 bits 7-5: RDPROTECT/WRPROTECT/VRPROTECT; this target formats no protection information.
  if (cdb[1] & 0xe0) return kInvalidFieldInCdb;
  switch (cdb[0]) {
    case READ_10:
    case WRITE_10:
    case READ_12:
    case WRITE_12:
    case kRead16:
    case kWrite16:
      range->fua = (cdb[1] & 0x08) != 0;
      break;
    default:
      break;
  }
  return std::nullopt;
}

}  // namespace vhost::scsi
