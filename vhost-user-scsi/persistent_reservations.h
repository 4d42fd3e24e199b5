// Persistent reservations of one logical unit (SPC-5 5.14, PERSISTENT RESERVE IN/OUT 6.15/6.16):
// registrations and the reservation keyed by I_T nexus, the RESERVATION CONFLICT rules of each
// reservation type for the commands a non-holder sends, the unit attentions PR OUT raises for
// other nexuses, and APTPL (persist through power loss) through a ReservationStore.
//
// One object per logical unit, shared by every ScsiLun serving that unit (one per connection or
// initiator): it is thread-safe. Not supported, and refused as SPC says: SPEC_I_PT, ALL_TG_PT,
// REGISTER AND MOVE, REPLACE LOST RESERVATION, element scope.
#ifndef VHOST_USER_SCSI_PERSISTENT_RESERVATIONS_H_
#define VHOST_USER_SCSI_PERSISTENT_RESERVATIONS_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "vhost-user-scsi/sense.h"

namespace vhost::scsi {

// Which I_T nexus (initiator port to target port) a command came on. The device picks the ids;
// they must be stable across a daemon restart for APTPL state to mean the same initiators.
using NexusId = uint64_t;

// Where APTPL state lives between runs (the device: a state file next to the image).
class ReservationStore {
 public:
  virtual ~ReservationStore() = default;
  // The bytes last saved; empty if nothing was ever saved.
  virtual absl::StatusOr<std::vector<uint8_t>> Load() = 0;
  // Replaces the saved bytes; on stable storage when it returns OK.
  virtual absl::Status Save(absl::Span<const uint8_t> bytes) = 0;
};

// PERSISTENT RESERVE OUT TYPE field values (SPC-5 table 197).
enum class ReservationType : uint8_t {
  kWriteExclusive = 0x1,
  kExclusiveAccess = 0x3,
  kWriteExclusiveRegistrantsOnly = 0x5,
  kExclusiveAccessRegistrantsOnly = 0x6,
  kWriteExclusiveAllRegistrants = 0x7,
  kExclusiveAccessAllRegistrants = 0x8,
};

// The outcome of a PERSISTENT RESERVE IN/OUT command.
struct PrResult {
  uint8_t status = kStatusGood;  // GOOD, CHECK CONDITION (with `sense`) or RESERVATION CONFLICT
  Sense sense;
  std::vector<uint8_t> data_in;  // PR IN's parameter data, whole (the caller truncates it)
  // PREEMPT AND ABORT: the other nexuses whose registrations were preempted; the caller aborts
  // their commands to this logical unit (SPC-5 5.14.11.4.4) before completing this one.
  std::vector<NexusId> aborted;
};

// What stands in a command's way before it runs (SAM-5 5.14: unit attention first).
struct Admission {
  std::optional<Sense> unit_attention;  // report as CHECK CONDITION (now taken off the queue)
  bool conflict = false;                // answer RESERVATION CONFLICT, no sense
};

class PersistentReservations {
 public:
  // `store` may be null: APTPL is then not supported (PTPL_C 0, APTPL 1 refused).
  explicit PersistentReservations(ReservationStore* store = nullptr) : store_(store) {}

  // Restores the state saved with APTPL, if any. Call once, before the first command.
  absl::Status Load();

  // PERSISTENT RESERVE IN (5Eh); `cdb` is the whole 10-byte CDB.
  PrResult In(NexusId nexus, absl::Span<const uint8_t> cdb);
  // PERSISTENT RESERVE OUT (5Fh); `parameters` is the parameter list, exactly the PARAMETER LIST
  // LENGTH bytes of the CDB (the caller checked the buffers hold them). Changes nothing unless
  // it returns GOOD, and with APTPL, only once the store saved the new state.
  PrResult Out(NexusId nexus, absl::Span<const uint8_t> cdb, absl::Span<const uint8_t> parameters);

  // Called for every other command (whole CDB): a pending reservation unit attention for this
  // nexus (not for INQUIRY, REQUEST SENSE and REPORT LUNS), else whether the reservation keeps
  // `nexus` from running it (SPC-5 table 61, SBC-4 table 14).
  Admission Admit(NexusId nexus, absl::Span<const uint8_t> cdb);
  // REQUEST SENSE: the oldest pending reservation unit attention for `nexus`, taken off.
  std::optional<Sense> TakeUnitAttention(NexusId nexus);
  // The nexus is gone (connection closed): its pending unit attentions go. Registrations and
  // the reservation stay (SPC-5 5.14.4: they survive I_T nexus loss and resets).
  void NexusLost(NexusId nexus);

  // The state as the store saves it; Deserialize refuses bytes that are not such a state.
  std::vector<uint8_t> Serialize() const;
  absl::Status Deserialize(absl::Span<const uint8_t> bytes);

  static constexpr size_t kMaxRegistrations = 1024;
  static constexpr size_t kMaxPendingUnitAttentions = 16;

 private:
  struct Reservation {
    NexusId holder = 0;  // ignored by the all-registrants types: every registrant holds it
    ReservationType type = ReservationType::kWriteExclusive;
  };
  struct State {
    std::map<NexusId, uint64_t> keys;  // registrations: nexus -> reservation key (non-zero)
    std::optional<Reservation> reservation;
    uint32_t generation = 0;  // PRGENERATION
    bool aptpl = false;
  };
  // One PR OUT service action applied to `next`; the unit attentions it raises go to `raised`.
  struct Change {
    State next;
    std::vector<std::pair<NexusId, Sense>> raised;
    std::vector<NexusId> aborted;
  };

  static std::vector<uint8_t> SerializeState(const State& state);
  static bool AllRegistrants(ReservationType type);
  static bool Holds(const State& state, NexusId nexus);
  std::vector<uint8_t> ReadKeys() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::vector<uint8_t> ReadReservation() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::vector<uint8_t> ReportCapabilities() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  std::vector<uint8_t> ReadFullStatus() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  PrResult Register(NexusId nexus, uint64_t key, uint64_t new_key, bool ignore_key, bool aptpl,
                    Change* change) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  PrResult Preempt(NexusId nexus, uint64_t victim_key, ReservationType type, bool abort,
                   Change* change) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void Raise(NexusId nexus, const Sense& sense) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);
  void UpdateBusy() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_);

  ReservationStore* store_;
  mutable absl::Mutex mutex_;
  State state_ ABSL_GUARDED_BY(mutex_);
  std::map<NexusId, std::deque<Sense>> attentions_ ABSL_GUARDED_BY(mutex_);
  // Whether a reservation or a unit attention exists: Admit's lock-free fast path for the
  // common case of neither.
  std::atomic<bool> busy_{false};
};

}  // namespace vhost::scsi

#endif  // VHOST_USER_SCSI_PERSISTENT_RESERVATIONS_H_
