// The logical units a daemon serves, as --lun describes them: one SPEC per unit, given as
// repeated --lun flags or joined by ';' ("file=disk.img,target=0,lun=1,read-only=on;null=1G").
#ifndef VHOST_USER_SCSI_LUN_SPEC_H_
#define VHOST_USER_SCSI_LUN_SPEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "vhost-user-scsi/scsi_lun.h"

namespace vhost::scsi {

// virtio-scsi's flat LUN format addresses targets 0..255 and LUNs 0..16383 (virtio 1.2 §5.6.6.1).
inline constexpr uint32_t kMaxTarget = 255;
inline constexpr uint32_t kMaxLun = 16383;

struct LunSpec {
  std::string file;        // an image file or a host block device
  uint64_t null_size = 0;  // instead of file: a null disk of this many bytes (benchmarks)
  uint32_t target = 0;
  uint32_t lun = 0;
  bool read_only = false;
  uint32_t block_size = 512;
  // Where persistent reservations made with APTPL are kept across restarts (a StateFile);
  // empty: APTPL is refused.
  std::string pr_state;
  LunIdentity identity;
};

// Parses the specs; a LUN not given takes the next free number on its target. Errors name the
// flag (--lun) and the field: bad input on the command line.
absl::StatusOr<std::vector<LunSpec>> ParseLunSpecs(absl::string_view text);

// One spec, for a LUN added at run time; `taken` are the units already served (the new one's
// address must be free, and a LUN not given takes the next free number).
absl::StatusOr<LunSpec> ParseLunSpec(absl::string_view text, const std::vector<LunSpec>& taken);

}  // namespace vhost::scsi

#endif  // VHOST_USER_SCSI_LUN_SPEC_H_
