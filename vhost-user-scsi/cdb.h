// Command descriptor blocks: their lengths by group code (SPC-5 4.2.5) and the fields of the
// block commands (SBC-4 5.x), validated before a logical unit acts on them.
#ifndef VHOST_USER_SCSI_CDB_H_
#define VHOST_USER_SCSI_CDB_H_

#include <scsi/scsi.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/types/span.h"
#include "vhost-user-scsi/sense.h"

namespace vhost::scsi {

// Operation codes <scsi/scsi.h> lacks (SBC-4, SPC-5).
inline constexpr uint8_t kRead16 = 0x88;
inline constexpr uint8_t kCompareAndWrite = 0x89;
inline constexpr uint8_t kWrite16 = 0x8a;
inline constexpr uint8_t kVerify16 = 0x8f;
inline constexpr uint8_t kSynchronizeCache16 = 0x91;
inline constexpr uint8_t kWriteSame16 = 0x93;
inline constexpr uint8_t kServiceActionIn16 = 0x9e;
inline constexpr uint8_t kMaintenanceIn = 0xa3;
inline constexpr uint8_t kUnmap = 0x42;
inline constexpr uint8_t kVerify12 = 0xaf;
// Service actions.
inline constexpr uint8_t kReadCapacity16Action = 0x10;          // SERVICE ACTION IN(16)
inline constexpr uint8_t kReportSupportedOpcodesAction = 0x0c;  // MAINTENANCE IN

// The CDB length the opcode's group code implies: 6, 10, 12 or 16; 0 for the variable-length
// (7Fh) and vendor-specific groups, which this target does not implement.
size_t CdbLength(uint8_t opcode);

// Big-endian field readers; the caller has checked the CDB is long enough.
uint16_t Get16(absl::Span<const uint8_t> bytes, size_t at);
uint32_t Get32(absl::Span<const uint8_t> bytes, size_t at);
uint64_t Get64(absl::Span<const uint8_t> bytes, size_t at);
void Put16(uint8_t* out, uint16_t value);
void Put32(uint8_t* out, uint32_t value);
void Put64(uint8_t* out, uint64_t value);

// Whether `cdb` holds the whole CDB of its opcode: nullopt if so, else the sense to report
// (INVALID COMMAND OPERATION CODE for an unimplemented group, INVALID FIELD IN CDB for a short
// one).
std::optional<Sense> CheckCdbLength(absl::Span<const uint8_t> cdb);

// READ/WRITE/VERIFY(6/10/12/16), SYNCHRONIZE CACHE(10/16) and WRITE SAME(10/16): the LBA range.
struct BlockRange {
  uint64_t lba = 0;
  uint32_t blocks = 0;
  bool fua = false;  // READ/WRITE(10/12/16): force unit access
};

// Decodes the range of one of the commands above; the CDB's length has been checked. READ/WRITE(6)
// with a transfer length of 0 means 256 blocks (SBC-4 5.15). Returns the sense for a reserved or
// unsupported field that is set (e.g. RDPROTECT/WRPROTECT: this target has no protection
// information), or nullopt with `range` filled in.
std::optional<Sense> ParseBlockRange(absl::Span<const uint8_t> cdb, BlockRange* range);

}  // namespace vhost::scsi

#endif  // VHOST_USER_SCSI_CDB_H_
