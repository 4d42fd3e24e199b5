#include "vhost-user-scsi/persistent_reservations.h"

#include <scsi/scsi.h>

#include <optional>
#include <tuple>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vhost-user-scsi/cdb.h"

namespace vhost::scsi {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint8_t kRegister = 0, kReserve = 1, kRelease = 2, kClear = 3, kPreempt = 4,
                  kPreemptAndAbort = 5, kRegisterIgnore = 6;
constexpr uint8_t kWe = 1, kEa = 3, kWeRo = 5, kEaRo = 6, kWeAr = 7, kEaAr = 8;
constexpr uint8_t kAptplFlag = 0x01;

// A store in memory; `fail` makes Save fail.
class MemoryStore : public ReservationStore {
 public:
  absl::StatusOr<std::vector<uint8_t>> Load() override { return saved; }
  absl::Status Save(absl::Span<const uint8_t> bytes) override {
    ++saves;
    if (fail) return absl::UnavailableError("disk full");
    saved.assign(bytes.begin(), bytes.end());
    return absl::OkStatus();
  }
  std::vector<uint8_t> saved;
  int saves = 0;
  bool fail = false;
};

std::vector<uint8_t> Params(uint64_t key, uint64_t action_key, uint8_t flags = 0) {
  std::vector<uint8_t> params(24, 0);
  Put64(&params[0], key);
  Put64(&params[8], action_key);
  params[20] = flags;
  return params;
}

std::vector<uint8_t> OutCdb(uint8_t action, uint8_t type, uint32_t length = 24, uint8_t scope = 0) {
  std::vector<uint8_t> cdb = {
      PERSISTENT_RESERVE_OUT, action, static_cast<uint8_t>(scope << 4 | type), 0, 0, 0, 0, 0, 0, 0};
  Put32(&cdb[5], length);
  return cdb;
}

class PersistentReservationsTest : public ::testing::Test {
 protected:
  PrResult Out(NexusId nexus, uint8_t action, uint8_t type, uint64_t key, uint64_t action_key,
               uint8_t flags = 0) {
    return pr_.Out(nexus, OutCdb(action, type), Params(key, action_key, flags));
  }
  std::vector<uint8_t> In(uint8_t action, NexusId nexus = 1) {
    std::vector<uint8_t> cdb = {PERSISTENT_RESERVE_IN, action, 0, 0, 0, 0, 0, 0x10, 0, 0};
    PrResult result = pr_.In(nexus, cdb);
    EXPECT_EQ(result.status, kStatusGood);
    return result.data_in;
  }
  // Whether `nexus` may run the command.
  bool Conflicts(NexusId nexus, std::vector<uint8_t> cdb) {
    cdb.resize(16, 0);
    Admission admission = pr_.Admit(nexus, cdb);
    EXPECT_FALSE(admission.unit_attention);
    return admission.conflict;
  }
  std::vector<uint64_t> Keys() {
    std::vector<uint8_t> data = In(0);
    std::vector<uint64_t> keys;
    for (size_t at = 8; at + 8 <= data.size(); at += 8) keys.push_back(Get64(data, at));
    return keys;
  }
  uint32_t Generation() { return Get32(In(0), 0); }
  static void ExpectGood(const PrResult& result) {
    EXPECT_EQ(result.status, kStatusGood);
    EXPECT_THAT(result.aborted, IsEmpty());
  }
  static void ExpectConflict(const PrResult& result) {
    EXPECT_EQ(result.status, kStatusReservationConflict);
  }
  static void ExpectCheck(const PrResult& result, const Sense& sense) {
    EXPECT_EQ(result.status, kStatusCheckCondition);
    EXPECT_EQ(result.sense, sense);
  }

  PersistentReservations pr_;
};

TEST_F(PersistentReservationsTest, RegisterChangeAndUnregister) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  EXPECT_THAT(In(0), ElementsAre(0, 0, 0, 2, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0, 0, 0, 0, 0,
                                 0, 0, 0xbb));
  // Registered: the current key must be given to change it; unregistered: key 0.
  ExpectConflict(Out(1, kRegister, 0, 0xab, 0xcc));
  ExpectConflict(Out(3, kRegister, 0, 0x01, 0xcc));
  EXPECT_EQ(Generation(), 2u);  // conflicts change nothing
  ExpectGood(Out(1, kRegister, 0, 0xaa, 0xcc));
  EXPECT_THAT(Keys(), ElementsAre(0xcc, 0xbb));
  // REGISTER AND IGNORE EXISTING KEY: the key given does not matter.
  ExpectGood(Out(2, kRegisterIgnore, 0, 0x1234, 0xdd));
  EXPECT_THAT(Keys(), ElementsAre(0xcc, 0xdd));
  ExpectGood(Out(3, kRegisterIgnore, 0, 0x1234, 0xee));
  // Service action key 0 unregisters.
  ExpectGood(Out(1, kRegister, 0, 0xcc, 0));
  ExpectGood(Out(3, kRegisterIgnore, 0, 0, 0));
  EXPECT_THAT(Keys(), ElementsAre(0xdd));
  EXPECT_EQ(Generation(), 7u);
  // Unregistered nexuses run everything while nothing is reserved.
  EXPECT_FALSE(Conflicts(1, {WRITE_10}));
}

TEST_F(PersistentReservationsTest, ReserveAndReadReservation) {
  EXPECT_THAT(In(1), ElementsAre(0, 0, 0, 0, 0, 0, 0, 0));
  ExpectConflict(Out(1, kReserve, kWe, 0xaa, 0));  // not registered
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectConflict(Out(1, kReserve, kWe, 0xab, 0));  // wrong key
  ExpectGood(Out(1, kReserve, kWe, 0xaa, 0));
  EXPECT_THAT(In(1), ElementsAre(0, 0, 0, 2, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0, 0, 0, 0, 0,
                                 kWe, 0, 0));
  ExpectGood(Out(1, kReserve, kWe, 0xaa, 0));      // again: no change
  ExpectConflict(Out(1, kReserve, kEa, 0xaa, 0));  // another type
  ExpectConflict(Out(2, kReserve, kWe, 0xbb, 0));  // another nexus
  EXPECT_EQ(Generation(), 2u);                     // RESERVE does not count
  EXPECT_EQ(In(1)[21], kWe);
}

TEST_F(PersistentReservationsTest, AllRegistrantsReservationReportsKeyZero) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(1, kReserve, kEaAr, 0xaa, 0));
  // Every registrant holds it: the second RESERVE of the same type is no conflict.
  ExpectGood(Out(2, kReserve, kEaAr, 0xbb, 0));
  EXPECT_THAT(In(1), ElementsAre(0, 0, 0, 2, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                 kEaAr, 0, 0));
  // Unregistering a holder keeps it while a registrant is left.
  ExpectGood(Out(1, kRegister, 0, 0xaa, 0));
  EXPECT_EQ(In(1).size(), 24u);
  EXPECT_TRUE(Conflicts(1, {READ_10}));
  ExpectGood(Out(2, kRegister, 0, 0xbb, 0));
  EXPECT_EQ(In(1).size(), 8u);
  EXPECT_FALSE(Conflicts(1, {WRITE_10}));
}

TEST_F(PersistentReservationsTest, ConflictsByTypeAndNexus) {
  // Nexus 1 holds the reservation, 2 is registered, 3 is not.
  struct Row {
    uint8_t type;
    bool registered_read, registered_write, other_read, other_write;
  };
  const Row rows[] = {
      {kWe, false, true, false, true},    {kEa, true, true, true, true},
      {kWeRo, false, false, false, true}, {kEaRo, false, false, true, true},
      {kWeAr, false, false, false, true}, {kEaAr, false, false, true, true},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(int{row.type});
    PersistentReservations pr;
    std::vector<uint8_t> cdb = OutCdb(kRegister, 0);
    ASSERT_EQ(pr.Out(1, cdb, Params(0, 0xaa)).status, kStatusGood);
    ASSERT_EQ(pr.Out(2, cdb, Params(0, 0xbb)).status, kStatusGood);
    ASSERT_EQ(pr.Out(1, OutCdb(kReserve, row.type), Params(0xaa, 0)).status, kStatusGood);
    auto conflicts = [&](NexusId nexus, std::vector<uint8_t> command) {
      command.resize(16, 0);
      return pr.Admit(nexus, command).conflict;
    };
    const std::vector<std::vector<uint8_t>> reads = {
        {READ_6}, {READ_10}, {READ_12}, {kRead16}, {VERIFY}, {kVerify16}, {MODE_SENSE_10}};
    const std::vector<std::vector<uint8_t>> writes = {
        {WRITE_6},           {WRITE_10},    {kWrite16},
        {WRITE_SAME},        {kUnmap},      {kCompareAndWrite},
        {SYNCHRONIZE_CACHE}, {MODE_SELECT}, {START_STOP, 0, 0, 0, 0x00 /* stop */}};
    const std::vector<std::vector<uint8_t>> allowed = {{INQUIRY},
                                                       {TEST_UNIT_READY},
                                                       {READ_CAPACITY},
                                                       {kServiceActionIn16, 0x10},
                                                       {REQUEST_SENSE},
                                                       {0xa0 /* REPORT LUNS */},
                                                       {PERSISTENT_RESERVE_IN},
                                                       {PERSISTENT_RESERVE_OUT},
                                                       {kMaintenanceIn, 0x0c},
                                                       {START_STOP, 0, 0, 0, 0x01 /* start */}};
    for (const auto& command : reads) {
      EXPECT_FALSE(conflicts(1, command));
      EXPECT_EQ(conflicts(2, command), row.registered_read) << int{command[0]};
      EXPECT_EQ(conflicts(3, command), row.other_read) << int{command[0]};
    }
    for (const auto& command : writes) {
      EXPECT_FALSE(conflicts(1, command));
      EXPECT_EQ(conflicts(2, command), row.registered_write) << int{command[0]};
      EXPECT_EQ(conflicts(3, command), row.other_write) << int{command[0]};
    }
    for (const auto& command : allowed) {
      EXPECT_FALSE(conflicts(2, command)) << int{command[0]};
      EXPECT_FALSE(conflicts(3, command)) << int{command[0]};
    }
  }
}

TEST_F(PersistentReservationsTest, Release) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(3, kRegister, 0, 0, 0xcc));
  ExpectGood(Out(1, kRelease, kWe, 0xaa, 0));  // nothing reserved: no error
  ExpectGood(Out(1, kReserve, kWeRo, 0xaa, 0));
  ExpectConflict(Out(2, kRelease, kWeRo, 0xab, 0));  // wrong key
  ExpectGood(Out(2, kRelease, kWeRo, 0xbb, 0));      // not the holder: no effect
  EXPECT_EQ(In(1)[21], kWeRo);
  ExpectCheck(Out(1, kRelease, kWe, 0xaa, 0), kInvalidReleaseOfPersistentReservation);
  EXPECT_EQ(In(1)[21], kWeRo);
  ExpectGood(Out(1, kRelease, kWeRo, 0xaa, 0));
  EXPECT_EQ(In(1).size(), 8u);
  // Registrants-only: the other registrants learn of it, the releasing nexus does not.
  EXPECT_EQ(pr_.TakeUnitAttention(2), kReservationsReleased);
  EXPECT_EQ(pr_.TakeUnitAttention(3), kReservationsReleased);
  EXPECT_EQ(pr_.TakeUnitAttention(1), std::nullopt);
  EXPECT_EQ(pr_.TakeUnitAttention(2), std::nullopt);
  // Write Exclusive: released silently.
  ExpectGood(Out(1, kReserve, kWe, 0xaa, 0));
  ExpectGood(Out(1, kRelease, kWe, 0xaa, 0));
  EXPECT_EQ(pr_.TakeUnitAttention(2), std::nullopt);
  EXPECT_EQ(Generation(), 3u);
}

TEST_F(PersistentReservationsTest, UnregisteringTheHolderReleases) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(1, kReserve, kEaRo, 0xaa, 0));
  EXPECT_TRUE(Conflicts(3, {READ_10}));
  ExpectGood(Out(1, kRegister, 0, 0xaa, 0));
  EXPECT_EQ(In(1).size(), 8u);
  EXPECT_EQ(pr_.TakeUnitAttention(2), kReservationsReleased);
  EXPECT_EQ(pr_.TakeUnitAttention(1), std::nullopt);
  EXPECT_FALSE(Conflicts(3, {READ_10}));
}

TEST_F(PersistentReservationsTest, Clear) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(2, kReserve, kEa, 0xbb, 0));
  ExpectConflict(Out(3, kClear, 0, 0, 0));     // not registered
  ExpectConflict(Out(1, kClear, 0, 0xbb, 0));  // another nexus's key
  EXPECT_THAT(Keys(), ElementsAre(0xaa, 0xbb));
  ExpectGood(Out(1, kClear, 0, 0xaa, 0));
  EXPECT_THAT(Keys(), IsEmpty());
  EXPECT_EQ(In(1).size(), 8u);
  EXPECT_EQ(Generation(), 3u);
  EXPECT_EQ(pr_.TakeUnitAttention(2), kReservationsPreempted);
  EXPECT_EQ(pr_.TakeUnitAttention(1), std::nullopt);
}

TEST_F(PersistentReservationsTest, PreemptTheHolder) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(3, kRegister, 0, 0, 0xcc));
  ExpectGood(Out(2, kReserve, kWe, 0xbb, 0));
  ExpectConflict(Out(1, kPreempt, kEa, 0xab, 0xbb));  // wrong key
  PrResult result = Out(1, kPreemptAndAbort, kEa, 0xaa, 0xbb);
  EXPECT_EQ(result.status, kStatusGood);
  EXPECT_THAT(result.aborted, ElementsAre(2));
  EXPECT_THAT(Keys(), ElementsAre(0xaa, 0xcc));
  EXPECT_THAT(In(1), ElementsAre(0, 0, 0, 4, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0, 0, 0, 0, 0,
                                 kEa, 0, 0));
  // The preempted nexus lost its registration; the third saw the type change.
  EXPECT_EQ(pr_.TakeUnitAttention(2), kRegistrationsPreempted);
  EXPECT_EQ(pr_.TakeUnitAttention(3), kReservationsReleased);
  EXPECT_EQ(pr_.TakeUnitAttention(1), std::nullopt);
  EXPECT_TRUE(Conflicts(2, {READ_10}));
  // Preempting the holder's key with the same type: no RESERVATIONS RELEASED.
  ExpectGood(Out(3, kPreempt, kEa, 0xcc, 0xaa));
  EXPECT_EQ(pr_.TakeUnitAttention(1), kRegistrationsPreempted);
  EXPECT_EQ(pr_.TakeUnitAttention(3), std::nullopt);
  EXPECT_THAT(Keys(), ElementsAre(0xcc));
}

TEST_F(PersistentReservationsTest, PreemptRegistrationsOnly) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(3, kRegister, 0, 0, 0xbb));  // keys need not be unique
  ExpectGood(Out(4, kRegister, 0, 0, 0xdd));
  // Nothing reserved: key 0 is invalid, an unknown key conflicts.
  ExpectCheck(Out(1, kPreempt, kWe, 0xaa, 0), kInvalidFieldInParameterList);
  ExpectConflict(Out(1, kPreempt, kWe, 0xaa, 0x99));
  EXPECT_EQ(Generation(), 4u);
  PrResult result = Out(1, kPreemptAndAbort, kWe, 0xaa, 0xbb);
  EXPECT_EQ(result.status, kStatusGood);
  EXPECT_THAT(result.aborted, ElementsAre(2, 3));
  EXPECT_THAT(Keys(), ElementsAre(0xaa, 0xdd));
  EXPECT_EQ(In(1).size(), 8u);  // no reservation was made
  EXPECT_EQ(pr_.TakeUnitAttention(2), kRegistrationsPreempted);
  EXPECT_EQ(pr_.TakeUnitAttention(3), kRegistrationsPreempted);
  // A reservation held by 4: preempting another key removes it, the reservation stays.
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(4, kReserve, kWe, 0xdd, 0));
  ExpectCheck(Out(1, kPreempt, kWe, 0xaa, 0), kInvalidFieldInParameterList);
  ExpectGood(Out(1, kPreempt, kEa, 0xaa, 0xbb));
  EXPECT_THAT(Keys(), ElementsAre(0xaa, 0xdd));
  std::vector<uint8_t> reservation = In(1);
  EXPECT_THAT(std::vector<uint8_t>(reservation.begin() + 8, reservation.begin() + 16),
              ElementsAre(0, 0, 0, 0, 0, 0, 0, 0xdd));
  EXPECT_EQ(In(1)[21], kWe);
}

TEST_F(PersistentReservationsTest, PreemptAllRegistrantsWithKeyZero) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(3, kRegister, 0, 0, 0xcc));
  ExpectGood(Out(2, kReserve, kWeAr, 0xbb, 0));
  PrResult result = Out(1, kPreemptAndAbort, kEa, 0xaa, 0);
  EXPECT_EQ(result.status, kStatusGood);
  EXPECT_THAT(result.aborted, ElementsAre(2, 3));
  EXPECT_THAT(Keys(), ElementsAre(0xaa));
  EXPECT_THAT(In(1), ElementsAre(0, 0, 0, 4, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0, 0, 0, 0, 0,
                                 kEa, 0, 0));
  EXPECT_EQ(pr_.TakeUnitAttention(2), kRegistrationsPreempted);
  EXPECT_EQ(pr_.TakeUnitAttention(3), kRegistrationsPreempted);
}

TEST_F(PersistentReservationsTest, BadCommandsChangeNothing) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  std::vector<uint8_t> params = Params(0xaa, 0);
  // Parameter list lengths other than 24.
  for (size_t length : {0, 8, 23, 25, 32}) {
    std::vector<uint8_t> list(length, 0);
    ExpectCheck(pr_.Out(1, OutCdb(kReserve, kWe, length), list), kParameterListLengthError);
  }
  ExpectCheck(Out(1, kReserve, kWe, 0xaa, 0, 0x08), kInvalidFieldInParameterList);  // SPEC_I_PT
  ExpectCheck(Out(2, kRegister, 0, 0, 0xbb, 0x04), kInvalidFieldInParameterList);   // ALL_TG_PT
  ExpectCheck(Out(2, kRegister, 0, 0, 0xbb, kAptplFlag), kInvalidFieldInParameterList);  // no store
  for (uint8_t type : {0, 2, 4, 9, 15}) {
    ExpectCheck(Out(1, kReserve, type, 0xaa, 0), kInvalidFieldInCdb);
  }
  ExpectCheck(pr_.Out(1, OutCdb(kReserve, kWe, 24, /*scope=*/1), params), kInvalidFieldInCdb);
  for (uint8_t action : {7, 8, 0x1f}) {
    ExpectCheck(pr_.Out(1, OutCdb(action, kWe), params), kInvalidFieldInCdb);
  }
  std::vector<uint8_t> in = {PERSISTENT_RESERVE_IN, 4, 0, 0, 0, 0, 0, 0x10, 0, 0};
  ExpectCheck(pr_.In(1, in), kInvalidFieldInCdb);
  EXPECT_THAT(Keys(), ElementsAre(0xaa));
  EXPECT_EQ(Generation(), 1u);
  EXPECT_EQ(In(1).size(), 8u);
  EXPECT_FALSE(Conflicts(2, {WRITE_10}));
}

TEST_F(PersistentReservationsTest, ReportCapabilities) {
  EXPECT_THAT(In(2), ElementsAre(0, 8, 0x00, 0x80, 0xea, 0x01, 0, 0));
  MemoryStore store;
  PersistentReservations pr(&store);
  std::vector<uint8_t> cdb = {PERSISTENT_RESERVE_IN, 2, 0, 0, 0, 0, 0, 0x10, 0, 0};
  EXPECT_THAT(pr.In(1, cdb).data_in, ElementsAre(0, 8, 0x01, 0x80, 0xea, 0x01, 0, 0));  // PTPL_C
  ASSERT_EQ(pr.Out(1, OutCdb(kRegister, 0), Params(0, 0xaa, kAptplFlag)).status, kStatusGood);
  EXPECT_THAT(pr.In(1, cdb).data_in, ElementsAre(0, 8, 0x01, 0x81, 0xea, 0x01, 0, 0));  // PTPL_A
}

TEST_F(PersistentReservationsTest, ReadFullStatus) {
  ExpectGood(Out(7, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(9, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(9, kReserve, kEaRo, 0xbb, 0));
  std::vector<uint8_t> expected = {0, 0, 0, 2, 0, 0, 0, 96};
  for (auto [nexus, key, holder] : {std::tuple{7, 0xaa, false}, std::tuple{9, 0xbb, true}}) {
    std::vector<uint8_t> descriptor(48, 0);
    descriptor[7] = key;
    descriptor[12] = holder ? 0x01 : 0x00;
    descriptor[13] = holder ? kEaRo : 0;
    descriptor[19] = 1;   // relative target port
    descriptor[23] = 24;  // TransportID length
    descriptor[24] = 0x06;
    descriptor[35] = nexus;
    expected.insert(expected.end(), descriptor.begin(), descriptor.end());
  }
  EXPECT_EQ(In(3), expected);
}

TEST_F(PersistentReservationsTest, UnitAttentionsAreQueuedPerNexus) {
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(1, kReserve, kWeRo, 0xaa, 0));
  ExpectGood(Out(1, kRelease, kWeRo, 0xaa, 0));
  ExpectGood(Out(1, kReserve, kWeRo, 0xaa, 0));
  ExpectGood(Out(1, kRelease, kWeRo, 0xaa, 0));  // the same condition again: reported once
  ExpectGood(Out(1, kClear, 0, 0xaa, 0));
  // INQUIRY does not take it; the next other command does, in order.
  std::vector<uint8_t> inquiry(16, 0);
  inquiry[0] = INQUIRY;
  EXPECT_EQ(pr_.Admit(2, inquiry).unit_attention, std::nullopt);
  std::vector<uint8_t> read(16, 0);
  read[0] = READ_10;
  EXPECT_EQ(pr_.Admit(2, read).unit_attention, kReservationsReleased);
  EXPECT_EQ(pr_.Admit(2, read).unit_attention, kReservationsPreempted);
  EXPECT_EQ(pr_.Admit(2, read).unit_attention, std::nullopt);
  // A lost nexus's attentions go with it.
  ExpectGood(Out(1, kRegister, 0, 0, 0xaa));
  ExpectGood(Out(2, kRegister, 0, 0, 0xbb));
  ExpectGood(Out(1, kClear, 0, 0xaa, 0));
  pr_.NexusLost(2);
  EXPECT_EQ(pr_.TakeUnitAttention(2), std::nullopt);
}

TEST_F(PersistentReservationsTest, AptplStateIsSavedAndRestored) {
  MemoryStore store;
  {
    PersistentReservations pr(&store);
    ASSERT_TRUE(pr.Load().ok());  // nothing saved yet
    ASSERT_EQ(pr.Out(1, OutCdb(kRegister, 0), Params(0, 0xaa)).status, kStatusGood);
    EXPECT_EQ(store.saves, 0);  // no APTPL: nothing to keep
    ASSERT_EQ(pr.Out(2, OutCdb(kRegister, 0), Params(0, 0xbb, kAptplFlag)).status, kStatusGood);
    ASSERT_EQ(pr.Out(2, OutCdb(kReserve, kEaRo), Params(0xbb, 0)).status, kStatusGood);
    EXPECT_EQ(store.saves, 2);
    EXPECT_EQ(store.saved, pr.Serialize());
  }
  PersistentReservations restored(&store);
  ASSERT_TRUE(restored.Load().ok());
  std::vector<uint8_t> keys = {PERSISTENT_RESERVE_IN, 0, 0, 0, 0, 0, 0, 0x10, 0, 0};
  EXPECT_THAT(restored.In(1, keys).data_in, ElementsAre(0, 0, 0, 2, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0,
                                                        0, 0xaa, 0, 0, 0, 0, 0, 0, 0, 0xbb));
  std::vector<uint8_t> read(16, 0);
  read[0] = READ_10;
  EXPECT_TRUE(restored.Admit(3, read).conflict);
  EXPECT_FALSE(restored.Admit(1, read).conflict);
  // An unregistered nexus "unregistering" leaves APTPL as it is.
  ASSERT_EQ(restored.Out(3, OutCdb(kRegister, 0), Params(0, 0)).status, kStatusGood);
  std::vector<uint8_t> capabilities = {PERSISTENT_RESERVE_IN, 2, 0, 0, 0, 0, 0, 0x10, 0, 0};
  EXPECT_EQ(restored.In(3, capabilities).data_in[3], 0x81);  // PTPL_A still set
  EXPECT_EQ(restored.Serialize(), store.saved);
  // APTPL cleared: the saved state becomes an empty one.
  ASSERT_EQ(restored.Out(1, OutCdb(kRegister, 0), Params(0xaa, 0xac)).status, kStatusGood);
  PersistentReservations empty(&store);
  ASSERT_TRUE(empty.Load().ok());
  EXPECT_THAT(empty.In(1, keys).data_in, ElementsAre(0, 0, 0, 0, 0, 0, 0, 0));
  EXPECT_FALSE(empty.Admit(3, read).conflict);
}

TEST_F(PersistentReservationsTest, FailedSaveChangesNothing) {
  MemoryStore store;
  PersistentReservations pr(&store);
  ASSERT_EQ(pr.Out(1, OutCdb(kRegister, 0), Params(0, 0xaa, kAptplFlag)).status, kStatusGood);
  ASSERT_EQ(pr.Out(2, OutCdb(kRegister, 0), Params(0, 0xbb, kAptplFlag)).status, kStatusGood);
  ASSERT_EQ(pr.Out(2, OutCdb(kReserve, kWeRo), Params(0xbb, 0)).status, kStatusGood);
  std::vector<uint8_t> before = pr.Serialize();
  store.fail = true;
  PrResult result = pr.Out(1, OutCdb(kClear, 0), Params(0xaa, 0));
  EXPECT_EQ(result.status, kStatusCheckCondition);
  EXPECT_EQ(result.sense, kInsufficientRegistrationResources);
  result = pr.Out(3, OutCdb(kRegister, 0), Params(0, 0xcc, kAptplFlag));
  EXPECT_EQ(result.sense, kInsufficientRegistrationResources);
  result = pr.Out(2, OutCdb(kRelease, kWeRo), Params(0xbb, 0));
  EXPECT_EQ(result.sense, kInsufficientRegistrationResources);
  EXPECT_EQ(pr.Serialize(), before);
  EXPECT_EQ(pr.TakeUnitAttention(2), std::nullopt);  // no unit attention for what did not happen
  // Commands that change nothing do not need the store.
  EXPECT_EQ(pr.Out(2, OutCdb(kReserve, kWeRo), Params(0xbb, 0)).status, kStatusGood);
}

TEST_F(PersistentReservationsTest, CorruptStateIsRefused) {
  MemoryStore store;
  PersistentReservations pr(&store);
  ASSERT_EQ(pr.Out(1, OutCdb(kRegister, 0), Params(0, 0xaa, kAptplFlag)).status, kStatusGood);
  ASSERT_EQ(pr.Out(1, OutCdb(kReserve, kWe), Params(0xaa, 0)).status, kStatusGood);
  const std::vector<uint8_t> good = store.saved;
  PersistentReservations other;
  ASSERT_TRUE(other.Deserialize(good).ok());
  EXPECT_EQ(other.Serialize(), good);
  auto corrupt = [&](size_t at, uint8_t value) {
    std::vector<uint8_t> bytes = good;
    bytes[at] = value;
    return bytes;
  };
  std::vector<uint8_t> truncated(good.begin(), good.end() - 1);
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  for (const std::vector<uint8_t>& bytes :
       {truncated, longer, corrupt(0, 'X'), corrupt(4, 2), corrupt(5, 0x03),
        corrupt(10, 2) /* reservation flag */, corrupt(11, 4) /* type */,
        corrupt(19, 2) /* holder not registered */, corrupt(23, 2) /* count */,
        corrupt(24 + 15, 0) /* key 0 */}) {
    PersistentReservations fresh;
    EXPECT_FALSE(fresh.Deserialize(bytes).ok());
    EXPECT_EQ(fresh.Serialize(), PersistentReservations().Serialize());
  }
  store.saved = corrupt(0, 'X');
  PersistentReservations loaded(&store);
  EXPECT_EQ(loaded.Load().code(), absl::StatusCode::kDataLoss);
}

TEST_F(PersistentReservationsTest, RegistrationsAreBounded) {
  for (NexusId nexus = 0; nexus < PersistentReservations::kMaxRegistrations; ++nexus) {
    ASSERT_EQ(Out(nexus, kRegister, 0, 0, nexus + 1).status, kStatusGood);
  }
  ExpectCheck(Out(PersistentReservations::kMaxRegistrations, kRegister, 0, 0, 1),
              kInsufficientRegistrationResources);
  // Changing an existing key still works.
  ExpectGood(Out(0, kRegister, 0, 1, 2));
}

}  // namespace
}  // namespace vhost::scsi
