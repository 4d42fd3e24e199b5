// SCSI sense data (SPC-5 4.4): a sense key with its additional sense code and qualifier, encoded in
// the fixed (70h) or descriptor (72h) format, whichever the initiator asked for.
#ifndef VHOST_USER_SCSI_SENSE_H_
#define VHOST_USER_SCSI_SENSE_H_

#include <scsi/scsi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vhost::scsi {

// SAM status bytes. <scsi/scsi.h> has them shifted right by one (CHECK_CONDITION is 0x01), so the
// wire values are spelled out here.
inline constexpr uint8_t kStatusGood = 0x00;
inline constexpr uint8_t kStatusCheckCondition = 0x02;
inline constexpr uint8_t kStatusReservationConflict = 0x18;

struct Sense {
  uint8_t key = NO_SENSE;  // <scsi/scsi.h>: ILLEGAL_REQUEST, DATA_PROTECT, ...
  uint8_t asc = 0;
  uint8_t ascq = 0;
  bool operator==(const Sense& other) const {
    return key == other.key && asc == other.asc && ascq == other.ascq;
  }
};

// The conditions the command set reports (SPC-5 Annex D).
inline constexpr Sense kNoSense{NO_SENSE, 0x00, 0x00};
inline constexpr Sense kInvalidOpcode{ILLEGAL_REQUEST, 0x20, 0x00};
inline constexpr Sense kLbaOutOfRange{ILLEGAL_REQUEST, 0x21, 0x00};
inline constexpr Sense kInvalidFieldInCdb{ILLEGAL_REQUEST, 0x24, 0x00};
inline constexpr Sense kParameterListLengthError{ILLEGAL_REQUEST, 0x1a, 0x00};
inline constexpr Sense kInvalidFieldInParameterList{ILLEGAL_REQUEST, 0x26, 0x00};
inline constexpr Sense kSavingParametersNotSupported{ILLEGAL_REQUEST, 0x39, 0x00};
inline constexpr Sense kWriteProtected{DATA_PROTECT, 0x27, 0x00};
inline constexpr Sense kUnrecoveredReadError{MEDIUM_ERROR, 0x11, 0x00};
inline constexpr Sense kWriteError{MEDIUM_ERROR, 0x0c, 0x00};
inline constexpr Sense kInternalTargetFailure{HARDWARE_ERROR, 0x44, 0x00};
inline constexpr Sense kCapacityDataChanged{UNIT_ATTENTION, 0x2a, 0x09};
// COMPARE AND WRITE and VERIFY(BYTCHK): the medium differs from the data-out buffer.
inline constexpr Sense kMiscompareDuringVerify{MISCOMPARE, 0x1d, 0x00};
// Persistent reservations (SPC-5 5.14).
inline constexpr Sense kInvalidReleaseOfPersistentReservation{ILLEGAL_REQUEST, 0x26, 0x04};
inline constexpr Sense kInsufficientRegistrationResources{ILLEGAL_REQUEST, 0x55, 0x04};
inline constexpr Sense kReservationsPreempted{UNIT_ATTENTION, 0x2a, 0x03};
inline constexpr Sense kReservationsReleased{UNIT_ATTENTION, 0x2a, 0x04};
inline constexpr Sense kRegistrationsPreempted{UNIT_ATTENTION, 0x2a, 0x05};
// Resets (SAM-5 6.3): power on / device reset, LOGICAL UNIT RESET, I_T NEXUS RESET or loss.
inline constexpr Sense kPowerOnReset{UNIT_ATTENTION, 0x29, 0x00};
inline constexpr Sense kLogicalUnitReset{UNIT_ATTENTION, 0x29, 0x03};
inline constexpr Sense kNexusLoss{UNIT_ATTENTION, 0x29, 0x07};

enum class SenseFormat { kFixed, kDescriptor };

// Fixed format is 18 bytes (additional length 10); descriptor format is the 8-byte header with no
// descriptors. Both mark the sense current (70h / 72h).
inline constexpr size_t kFixedSenseLength = 18;
inline constexpr size_t kDescriptorSenseLength = 8;
std::vector<uint8_t> EncodeSense(const Sense& sense, SenseFormat format);

// The same with the INFORMATION field set (e.g. a miscompare's offset): fixed format sets VALID
// and bytes 3-6 (a value above 32 bits leaves VALID clear and the field zero, SPC-5 4.4.3);
// descriptor format appends the 12-byte information descriptor (type 00h), 20 bytes in all.
inline constexpr size_t kDescriptorSenseWithInformationLength = 20;
std::vector<uint8_t> EncodeSense(const Sense& sense, SenseFormat format, uint64_t information);

}  // namespace vhost::scsi

#endif  // VHOST_USER_SCSI_SENSE_H_
