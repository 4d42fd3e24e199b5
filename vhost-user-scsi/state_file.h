// A logical unit's persistent-reservation state (APTPL) in a file of its own, opened before the
// sandbox and rewritten through that descriptor only (the daemon opens no files later). Two
// slots, each with a sequence number and a checksum: a save writes the slot not holding the
// latest state and syncs it, so a crash mid-save leaves the previous state readable.
#ifndef VHOST_USER_SCSI_STATE_FILE_H_
#define VHOST_USER_SCSI_STATE_FILE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/unique_fd.h"
#include "vhost-user-scsi/persistent_reservations.h"

namespace vhost::scsi {

class StateFile : public ReservationStore {
 public:
  // Bytes one state may take (the slot size less its header).
  static constexpr size_t kMaxState = 60 * 1024;

  // Opens (creating if needed) `path`; errors name it.
  static absl::StatusOr<std::unique_ptr<StateFile>> Open(const std::string& path);
  // On a descriptor already open for reading and writing.
  explicit StateFile(UniqueFd fd) : fd_(std::move(fd)) {}

  absl::StatusOr<std::vector<uint8_t>> Load() override;
  absl::Status Save(absl::Span<const uint8_t> bytes) override;

 private:
  UniqueFd fd_;
  uint64_t sequence_ = 0;  // of the latest slot
  int latest_slot_ = -1;   // -1: none valid
};

}  // namespace vhost::scsi

#endif  // VHOST_USER_SCSI_STATE_FILE_H_
