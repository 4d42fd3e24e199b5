#include "vhost-user-scsi/persistent_reservations.h"

#include <scsi/scsi.h>

#include <algorithm>
#include <iterator>
#include <string>
#include <utility>

#include "glog/logging.h"
#include "vhost-user-scsi/cdb.h"

namespace vhost::scsi {
namespace {

constexpr uint8_t kReportLunsOpcode = 0xa0;  // answered by the device, never by a ScsiLun

// PERSISTENT RESERVE IN service actions (SPC-5 6.15.1).
constexpr uint8_t kReadKeys = 0x00;
constexpr uint8_t kReadReservation = 0x01;
constexpr uint8_t kReportCapabilities = 0x02;
constexpr uint8_t kReadFullStatus = 0x03;

// PERSISTENT RESERVE OUT service actions (SPC-5 6.16.2).
constexpr uint8_t kRegister = 0x00;
constexpr uint8_t kReserve = 0x01;
constexpr uint8_t kRelease = 0x02;
constexpr uint8_t kClear = 0x03;
constexpr uint8_t kPreempt = 0x04;
constexpr uint8_t kPreemptAndAbort = 0x05;
constexpr uint8_t kRegisterAndIgnoreExistingKey = 0x06;

constexpr size_t kOutParameterListLength = 24;  // the basic list, SPEC_I_PT clear
constexpr uint8_t kSpecIPt = 0x08;
constexpr uint8_t kAllTgPt = 0x04;
constexpr uint8_t kAptpl = 0x01;

// The relative target port identifier READ FULL STATUS reports: virtio-scsi has one port.
constexpr uint16_t kRelativeTargetPort = 1;

// Serialized state: magic, version, flags, generation, reservation, registrations.
constexpr uint8_t kMagic[4] = {'V', 'S', 'P', 'R'};
constexpr uint8_t kVersion = 1;
constexpr size_t kHeaderLength = 24;
constexpr size_t kEntryLength = 16;

bool ValidType(uint8_t type) {
  switch (static_cast<ReservationType>(type)) {
    case ReservationType::kWriteExclusive:
    case ReservationType::kExclusiveAccess:
    case ReservationType::kWriteExclusiveRegistrantsOnly:
    case ReservationType::kExclusiveAccessRegistrantsOnly:
    case ReservationType::kWriteExclusiveAllRegistrants:
    case ReservationType::kExclusiveAccessAllRegistrants:
      return true;
  }
  return false;
}

bool ExclusiveAccess(ReservationType type) {
  return type == ReservationType::kExclusiveAccess ||
         type == ReservationType::kExclusiveAccessRegistrantsOnly ||
         type == ReservationType::kExclusiveAccessAllRegistrants;
}

bool RegistrantsOnly(ReservationType type) {
  return type == ReservationType::kWriteExclusiveRegistrantsOnly ||
         type == ReservationType::kExclusiveAccessRegistrantsOnly;
}

// What a command does to the medium, for the conflict rules: commands a reservation never
// blocks, reads (blocked by the Exclusive Access types only) and the rest (blocked by every
// type). Unknown opcodes count as writes: a reservation must not let an unlisted command by.
enum class Access { kAllowed, kRead, kWrite };

Access AccessOf(absl::Span<const uint8_t> cdb) {
  switch (cdb[0]) {
    case INQUIRY:
    case REQUEST_SENSE:
    case TEST_UNIT_READY:
    case kReportLunsOpcode:
    case READ_CAPACITY:
    case kServiceActionIn16:  // READ CAPACITY(16)
    case kMaintenanceIn:      // REPORT SUPPORTED OPERATION CODES
    case PERSISTENT_RESERVE_IN:
    case PERSISTENT_RESERVE_OUT:
      return Access::kAllowed;
    case START_STOP:
      // SBC-4 table 14: allowed with START set and no power condition, else a conflict.
      return (cdb[4] & 0x01) && (cdb[4] >> 4) == 0 ? Access::kAllowed : Access::kWrite;
    case READ_6:
    case READ_10:
    case READ_12:
    case kRead16:
    case VERIFY:
    case kVerify12:
    case kVerify16:
    case MODE_SENSE:
    case MODE_SENSE_10:
      return Access::kRead;
    default:  // WRITE, WRITE SAME, UNMAP, COMPARE AND WRITE, SYNCHRONIZE CACHE, MODE SELECT, ...
      return Access::kWrite;
  }
}

PrResult Good() { return PrResult{}; }

PrResult Check(const Sense& sense) {
  PrResult result;
  result.status = kStatusCheckCondition;
  result.sense = sense;
  return result;
}

PrResult Conflict() {
  PrResult result;
  result.status = kStatusReservationConflict;
  return result;
}

}  // namespace

bool PersistentReservations::AllRegistrants(ReservationType type) {
  return type == ReservationType::kWriteExclusiveAllRegistrants ||
         type == ReservationType::kExclusiveAccessAllRegistrants;
}

// The reservation holder (SPC-5 5.14.10): every registrant for the all-registrants types, else
// the nexus that reserved.
bool PersistentReservations::Holds(const State& state, NexusId nexus) {
  if (!state.reservation) return false;
  if (AllRegistrants(state.reservation->type)) return state.keys.count(nexus) != 0;
  return state.reservation->holder == nexus;
}

absl::Status PersistentReservations::Load() {
  if (store_ == nullptr) return absl::OkStatus();
  absl::StatusOr<std::vector<uint8_t>> bytes = store_->Load();
  if (!bytes.ok()) return bytes.status();
  if (bytes->empty()) return absl::OkStatus();
  return Deserialize(*bytes);
}

PrResult PersistentReservations::In(NexusId nexus, absl::Span<const uint8_t> cdb) {
  (void)nexus;  // every nexus sees the same state
  absl::MutexLock lock(&mutex_);
  PrResult result;
  switch (cdb[1] & 0x1f) {
    case kReadKeys:
      result.data_in = ReadKeys();
      return result;
    case kReadReservation:
      result.data_in = ReadReservation();
      return result;
    case kReportCapabilities:
      result.data_in = ReportCapabilities();
      return result;
    case kReadFullStatus:
      result.data_in = ReadFullStatus();
      return result;
    default:
      return Check(kInvalidFieldInCdb);
  }
}

std::vector<uint8_t> PersistentReservations::ReadKeys() const {
  std::vector<uint8_t> data(8 + 8 * state_.keys.size(), 0);
  Put32(&data[0], state_.generation);
  Put32(&data[4], data.size() - 8);
  size_t at = 8;
  for (const auto& [nexus, key] : state_.keys) {
    Put64(&data[at], key);
    at += 8;
  }
  return data;
}

std::vector<uint8_t> PersistentReservations::ReadReservation() const {
  std::vector<uint8_t> data(8, 0);
  Put32(&data[0], state_.generation);
  if (!state_.reservation) return data;
  data.resize(8 + 16, 0);
  Put32(&data[4], 16);
  // All-registrants reservations report key 0 (SPC-5 6.15.3.3); otherwise the holder's key.
  if (!AllRegistrants(state_.reservation->type)) {
    Put64(&data[8], state_.keys.at(state_.reservation->holder));
  }
  data[21] = static_cast<uint8_t>(state_.reservation->type);  // SCOPE 0: logical unit
  return data;
}

std::vector<uint8_t> PersistentReservations::ReportCapabilities() const {
  std::vector<uint8_t> data(8, 0);
  Put16(&data[0], data.size());
  // No CRH, SIP_C or ATP_C; PTPL_C when there is a store to persist to.
  data[2] = store_ != nullptr ? 0x01 : 0x00;
  data[3] = 0x80 | (state_.aptpl ? 0x01 : 0x00);  // TMV, PTPL_A
  // The type mask: WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX; EX_AC_AR.
  data[4] = 0xea;
  data[5] = 0x01;
  return data;
}

std::vector<uint8_t> PersistentReservations::ReadFullStatus() const {
  std::vector<uint8_t> data(8, 0);
  Put32(&data[0], state_.generation);
  for (const auto& [nexus, key] : state_.keys) {
    // A full status descriptor with a SAS-format TransportID (SPC-5 7.6.4.6) carrying the nexus
    // id as the SAS address: virtio-scsi has no TransportID format of its own.
    uint8_t descriptor[24 + 24] = {};
    Put64(&descriptor[0], key);
    if (Holds(state_, nexus)) {
      descriptor[12] = 0x01;  // R_HOLDER
      descriptor[13] = static_cast<uint8_t>(state_.reservation->type);
    }
    Put16(&descriptor[18], kRelativeTargetPort);
    Put32(&descriptor[20], 24);  // ADDITIONAL DESCRIPTOR LENGTH: the TransportID
    descriptor[24] = 0x06;       // FORMAT CODE 0, PROTOCOL IDENTIFIER SAS
    Put64(&descriptor[28], nexus);
    data.insert(data.end(), descriptor, descriptor + sizeof(descriptor));
  }
  Put32(&data[4], data.size() - 8);
  return data;
}

PrResult PersistentReservations::Out(NexusId nexus, absl::Span<const uint8_t> cdb,
                                     absl::Span<const uint8_t> parameters) {
  uint8_t action = cdb[1] & 0x1f;
  uint8_t scope = cdb[2] >> 4;
  uint8_t type = cdb[2] & 0x0f;
  if (action > kRegisterAndIgnoreExistingKey) return Check(kInvalidFieldInCdb);
  if (parameters.size() != kOutParameterListLength) return Check(kParameterListLengthError);
  uint64_t key = Get64(parameters, 0);
  uint64_t action_key = Get64(parameters, 8);
  uint8_t flags = parameters[20];
  // SPEC_I_PT is not supported (SIP_C 0): refused for every service action (SPC-5 6.16.3).
  if (flags & kSpecIPt) return Check(kInvalidFieldInParameterList);
  bool registers = action == kRegister || action == kRegisterAndIgnoreExistingKey;
  if (registers) {
    if (flags & kAllTgPt) return Check(kInvalidFieldInParameterList);  // ATP_C 0
    if ((flags & kAptpl) && store_ == nullptr) return Check(kInvalidFieldInParameterList);
  }
  bool typed =
      action == kReserve || action == kRelease || action == kPreempt || action == kPreemptAndAbort;
  if (typed && (scope != 0 || !ValidType(type))) return Check(kInvalidFieldInCdb);
  ReservationType reservation_type = static_cast<ReservationType>(type);

  absl::MutexLock lock(&mutex_);
  Change change{state_, {}, {}};
  State& next = change.next;
  PrResult result;
  auto registration = state_.keys.find(nexus);
  if (registers) {
    result = Register(nexus, key, action_key, action == kRegisterAndIgnoreExistingKey,
                      flags & kAptpl, &change);
  } else if (registration == state_.keys.end() || registration->second != key) {
    // Every other service action needs the nexus registered under the key it names.
    return Conflict();
  } else if (action == kReserve) {
    if (state_.reservation) {
      // Reserving again what this nexus holds is no change; anything else conflicts.
      if (Holds(state_, nexus) && state_.reservation->type == reservation_type) return Good();
      return Conflict();
    }
    next.reservation = Reservation{nexus, reservation_type};
  } else if (action == kRelease) {
    if (!Holds(state_, nexus)) return Good();  // no reservation, or another nexus holds it
    if (state_.reservation->type != reservation_type) {
      return Check(kInvalidReleaseOfPersistentReservation);
    }
    next.reservation.reset();
    if (RegistrantsOnly(reservation_type) || AllRegistrants(reservation_type)) {
      for (const auto& [other, other_key] : next.keys) {
        if (other != nexus) change.raised.emplace_back(other, kReservationsReleased);
      }
    }
  } else if (action == kClear) {
    for (const auto& [other, other_key] : next.keys) {
      if (other != nexus) change.raised.emplace_back(other, kReservationsPreempted);
    }
    next.keys.clear();
    next.reservation.reset();
    ++next.generation;
  } else {
    result = Preempt(nexus, action_key, reservation_type, action == kPreemptAndAbort, &change);
  }
  if (result.status != kStatusGood) return result;

  // With APTPL (now or until now), the state on disk changes first: if it cannot, nothing does.
  if (store_ != nullptr && (next.aptpl || state_.aptpl)) {
    absl::Status saved = store_->Save(SerializeState(next));
    if (!saved.ok()) {
      LOG_EVERY_N(WARNING, 100) << "scsi: persistent reservation state not saved: " << saved;
      return Check(kInsufficientRegistrationResources);
    }
  }
  state_ = std::move(next);
  for (const auto& [other, sense] : change.raised) Raise(other, sense);
  UpdateBusy();
  result.aborted = std::move(change.aborted);
  return result;
}

// REGISTER and REGISTER AND IGNORE EXISTING KEY (SPC-5 5.14.7): register, change the key, or
// (new key 0) unregister, which releases a reservation the nexus held.
PrResult PersistentReservations::Register(NexusId nexus, uint64_t key, uint64_t new_key,
                                          bool ignore_key, bool aptpl, Change* change) const {
  State& next = change->next;
  auto registration = next.keys.find(nexus);
  if (registration == next.keys.end()) {
    if (!ignore_key && key != 0) return Conflict();
    if (new_key == 0) {
      // Unregistering what is not registered succeeds and changes nothing, not even APTPL:
      // a nexus that holds no registration does not decide what survives a power loss.
      ++next.generation;
      return Good();
    }
    if (next.keys.size() >= kMaxRegistrations) return Check(kInsufficientRegistrationResources);
    next.keys[nexus] = new_key;
  } else {
    if (!ignore_key && key != registration->second) return Conflict();
    if (new_key != 0) {
      registration->second = new_key;
    } else {
      bool held = Holds(next, nexus);
      next.keys.erase(registration);
      if (next.reservation) {
        ReservationType type = next.reservation->type;
        if (AllRegistrants(type)) {
          // Released with the last registrant only; nobody is left to tell.
          if (next.keys.empty()) next.reservation.reset();
        } else if (held) {
          next.reservation.reset();
          if (RegistrantsOnly(type)) {
            for (const auto& [other, other_key] : next.keys) {
              change->raised.emplace_back(other, kReservationsReleased);
            }
          }
        }
      }
    }
  }
  next.aptpl = aptpl;  // the last valid APTPL received governs (SPC-5 5.14.5)
  ++next.generation;
  return Good();
}

// PREEMPT and PREEMPT AND ABORT (SPC-5 5.14.11.4): remove the registrations under
// `victim_key`, taking over the reservation when the victim held it.
PrResult PersistentReservations::Preempt(NexusId nexus, uint64_t victim_key, ReservationType type,
                                         bool abort, Change* change) const {
  State& next = change->next;
  std::vector<NexusId> removed;
  auto remove_matching = [&](bool keep_self) {
    for (auto it = next.keys.begin(); it != next.keys.end();) {
      if (it->second == victim_key && !(keep_self && it->first == nexus)) {
        removed.push_back(it->first);
        it = next.keys.erase(it);
      } else {
        ++it;
      }
    }
  };
  std::optional<Reservation> old = next.reservation;
  if (old && AllRegistrants(old->type) && victim_key == 0) {
    // Key 0 against an all-registrants reservation: everyone else goes, the preempting nexus
    // gets a reservation of the new type.
    for (auto it = next.keys.begin(); it != next.keys.end();) {
      if (it->first != nexus) {
        removed.push_back(it->first);
        it = next.keys.erase(it);
      } else {
        ++it;
      }
    }
    next.reservation = Reservation{nexus, type};
  } else if (old && !AllRegistrants(old->type) && victim_key == next.keys.at(old->holder)) {
    // The holder is preempted: its reservation passes to this nexus, with the new type.
    remove_matching(/*keep_self=*/true);
    next.reservation = Reservation{nexus, type};
    if (old->type != type) {
      for (const auto& [other, other_key] : next.keys) {
        if (other != nexus) change->raised.emplace_back(other, kReservationsReleased);
      }
    }
  } else {
    // Only registrations go; the reservation (if any) stays with its holder.
    if (victim_key == 0) return Check(kInvalidFieldInParameterList);
    remove_matching(/*keep_self=*/false);
    if (removed.empty()) return Conflict();
    if (old && AllRegistrants(old->type) && next.keys.empty()) next.reservation.reset();
  }
  for (NexusId other : removed) {
    if (other == nexus) continue;
    change->raised.emplace_back(other, kRegistrationsPreempted);
    if (abort) change->aborted.push_back(other);
  }
  ++next.generation;
  return Good();
}

Admission PersistentReservations::Admit(NexusId nexus, absl::Span<const uint8_t> cdb) {
  if (!busy_.load(std::memory_order_acquire)) return {};
  absl::MutexLock lock(&mutex_);
  Admission admission;
  if (cdb[0] != INQUIRY && cdb[0] != REQUEST_SENSE && cdb[0] != kReportLunsOpcode) {
    auto pending = attentions_.find(nexus);
    if (pending != attentions_.end()) {
      admission.unit_attention = pending->second.front();
      pending->second.pop_front();
      if (pending->second.empty()) attentions_.erase(pending);
      UpdateBusy();
      return admission;
    }
  }
  if (!state_.reservation) return admission;
  ReservationType type = state_.reservation->type;
  // Registrants-only and all-registrants types let every registrant in; the others only the
  // holder (SPC-5 5.14.2).
  bool access = RegistrantsOnly(type) || AllRegistrants(type) ? state_.keys.count(nexus) != 0
                                                              : state_.reservation->holder == nexus;
  if (access) return admission;
  switch (AccessOf(cdb)) {
    case Access::kAllowed:
      break;
    case Access::kRead:
      admission.conflict = ExclusiveAccess(type);
      break;
    case Access::kWrite:
      admission.conflict = true;
      break;
  }
  return admission;
}

std::optional<Sense> PersistentReservations::TakeUnitAttention(NexusId nexus) {
  if (!busy_.load(std::memory_order_acquire)) return std::nullopt;
  absl::MutexLock lock(&mutex_);
  auto pending = attentions_.find(nexus);
  if (pending == attentions_.end()) return std::nullopt;
  Sense sense = pending->second.front();
  pending->second.pop_front();
  if (pending->second.empty()) attentions_.erase(pending);
  UpdateBusy();
  return sense;
}

void PersistentReservations::NexusLost(NexusId nexus) {
  absl::MutexLock lock(&mutex_);
  attentions_.erase(nexus);
  UpdateBusy();
}

void PersistentReservations::Raise(NexusId nexus, const Sense& sense) {
  std::deque<Sense>& queue = attentions_[nexus];
  for (const Sense& queued : queue) {
    if (queued == sense) return;  // already pending: reported once
  }
  // A full queue drops the oldest: the newest says most about the current state.
  if (queue.size() >= kMaxPendingUnitAttentions) queue.pop_front();
  queue.push_back(sense);
}

void PersistentReservations::UpdateBusy() {
  busy_.store(state_.reservation.has_value() || !attentions_.empty(), std::memory_order_release);
}

std::vector<uint8_t> PersistentReservations::Serialize() const {
  absl::MutexLock lock(&mutex_);
  return SerializeState(state_);
}

// Without APTPL nothing is to survive a power loss: the saved state is an empty one.
std::vector<uint8_t> PersistentReservations::SerializeState(const State& state) {
  std::vector<uint8_t> data(kHeaderLength, 0);
  std::copy(std::begin(kMagic), std::end(kMagic), data.begin());
  data[4] = kVersion;
  if (!state.aptpl) return data;
  data[5] = kAptpl;
  Put32(&data[6], state.generation);
  if (state.reservation) {
    data[10] = 1;
    data[11] = static_cast<uint8_t>(state.reservation->type);
    Put64(&data[12], state.reservation->holder);
  }
  Put32(&data[20], state.keys.size());
  for (const auto& [nexus, key] : state.keys) {
    uint8_t entry[kEntryLength];
    Put64(&entry[0], nexus);
    Put64(&entry[8], key);
    data.insert(data.end(), entry, entry + sizeof(entry));
  }
  return data;
}

absl::Status PersistentReservations::Deserialize(absl::Span<const uint8_t> bytes) {
  auto bad = [](const std::string& why) {
    return absl::DataLossError("persistent reservation state: " + why);
  };
  if (bytes.size() < kHeaderLength ||
      !std::equal(std::begin(kMagic), std::end(kMagic), bytes.begin())) {
    return bad("not a saved state");
  }
  if (bytes[4] != kVersion) return bad("version " + std::to_string(bytes[4]));
  if (bytes[5] & ~kAptpl) return bad("unknown flags");
  uint32_t count = Get32(bytes, 20);
  if (count > kMaxRegistrations || bytes.size() != kHeaderLength + count * kEntryLength) {
    return bad("length");
  }
  State state;
  state.aptpl = bytes[5] & kAptpl;
  state.generation = Get32(bytes, 6);
  for (size_t i = 0; i < count; ++i) {
    size_t at = kHeaderLength + i * kEntryLength;
    uint64_t key = Get64(bytes, at + 8);
    if (key == 0 || !state.keys.emplace(Get64(bytes, at), key).second) return bad("registration");
  }
  if (bytes[10] > 1) return bad("reservation flag");
  if (bytes[10] == 1) {
    if (!ValidType(bytes[11])) return bad("reservation type");
    Reservation reservation{Get64(bytes, 12), static_cast<ReservationType>(bytes[11])};
    // The holder is a registrant (an all-registrants reservation needs one at least).
    bool held = AllRegistrants(reservation.type) ? !state.keys.empty()
                                                 : state.keys.count(reservation.holder) != 0;
    if (!held) return bad("reservation without its holder");
    state.reservation = reservation;
  }
  absl::MutexLock lock(&mutex_);
  state_ = std::move(state);
  attentions_.clear();
  UpdateBusy();
  return absl::OkStatus();
}

}  // namespace vhost::scsi
