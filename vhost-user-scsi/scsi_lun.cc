#include "vhost-user-scsi/scsi_lun.h"

#include <linux/virtio_scsi.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "glog/logging.h"
#include "vhost-user-scsi/cdb.h"

namespace vhost::scsi {
namespace {

// VPD pages (SPC-5 7.7, SBC-4 6.6).
constexpr uint8_t kVpdSupportedPages = 0x00;
constexpr uint8_t kVpdUnitSerial = 0x80;
constexpr uint8_t kVpdDeviceId = 0x83;
constexpr uint8_t kVpdBlockLimits = 0xb0;
constexpr uint8_t kVpdBlockCharacteristics = 0xb1;
constexpr uint8_t kVpdProvisioning = 0xb2;

// Mode pages (SBC-4 6.5).
constexpr uint8_t kModeCachingPage = 0x08;
constexpr uint8_t kModeControlPage = 0x0a;
constexpr uint8_t kModeAllPages = 0x3f;

// What a command needs to be offered, beyond the LUN itself.
enum Needs { kAlways, kDiscard, kReservations };

struct OpcodeInfo {
  uint8_t opcode;
  uint16_t service_action;
  bool has_service_action;
  Needs needs;  // discard: the backend can deallocate; reservations: set_reservations()
};

// What Execute implements, in the order REPORT SUPPORTED OPERATION CODES lists it.
constexpr OpcodeInfo kOpcodes[] = {
    {TEST_UNIT_READY, 0, false, kAlways},
    {REQUEST_SENSE, 0, false, kAlways},
    {READ_6, 0, false, kAlways},
    {WRITE_6, 0, false, kAlways},
    {INQUIRY, 0, false, kAlways},
    {MODE_SELECT, 0, false, kAlways},
    {MODE_SENSE, 0, false, kAlways},
    {START_STOP, 0, false, kAlways},
    {READ_CAPACITY, 0, false, kAlways},
    {READ_10, 0, false, kAlways},
    {WRITE_10, 0, false, kAlways},
    {VERIFY, 0, false, kAlways},
    {SYNCHRONIZE_CACHE, 0, false, kAlways},
    {WRITE_SAME, 0, false, kAlways},
    {kUnmap, 0, false, kDiscard},
    {MODE_SELECT_10, 0, false, kAlways},
    {MODE_SENSE_10, 0, false, kAlways},
    {PERSISTENT_RESERVE_IN, 0x00, true, kReservations},   // READ KEYS
    {PERSISTENT_RESERVE_IN, 0x01, true, kReservations},   // READ RESERVATION
    {PERSISTENT_RESERVE_IN, 0x02, true, kReservations},   // REPORT CAPABILITIES
    {PERSISTENT_RESERVE_IN, 0x03, true, kReservations},   // READ FULL STATUS
    {PERSISTENT_RESERVE_OUT, 0x00, true, kReservations},  // REGISTER
    {PERSISTENT_RESERVE_OUT, 0x01, true, kReservations},  // RESERVE
    {PERSISTENT_RESERVE_OUT, 0x02, true, kReservations},  // RELEASE
    {PERSISTENT_RESERVE_OUT, 0x03, true, kReservations},  // CLEAR
    {PERSISTENT_RESERVE_OUT, 0x04, true, kReservations},  // PREEMPT
    {PERSISTENT_RESERVE_OUT, 0x05, true, kReservations},  // PREEMPT AND ABORT
    {PERSISTENT_RESERVE_OUT, 0x06, true, kReservations},  // REGISTER AND IGNORE EXISTING KEY
    {kRead16, 0, false, kAlways},
    {kCompareAndWrite, 0, false, kAlways},
    {kWrite16, 0, false, kAlways},
    {kVerify16, 0, false, kAlways},
    {kSynchronizeCache16, 0, false, kAlways},
    {kWriteSame16, 0, false, kAlways},
    {kServiceActionIn16, kReadCapacity16Action, true, kAlways},
    {kMaintenanceIn, kReportSupportedOpcodesAction, true, kAlways},
    {READ_12, 0, false, kAlways},
    {WRITE_12, 0, false, kAlways},
    {kVerify12, 0, false, kAlways},
};

// Copies `text` into a space-padded ASCII field of `width` bytes (INQUIRY, SPC-5 4.3.1).
void PutAscii(uint8_t* out, const std::string& text, size_t width) {
  for (size_t i = 0; i < width; ++i) out[i] = i < text.size() ? text[i] : ' ';
}

// The mode pages' bytes; with `changeable`, the mask of what MODE SELECT may change: WCE and
// D_SENSE.
std::vector<uint8_t> CachingPage(bool wce, bool changeable) {
  std::vector<uint8_t> page(20, 0);
  page[0] = kModeCachingPage;
  page[1] = page.size() - 2;
  if (changeable || wce) page[2] = 0x04;  // WCE
  return page;
}

std::vector<uint8_t> ControlPage(bool d_sense, bool changeable) {
  std::vector<uint8_t> page(12, 0);
  page[0] = kModeControlPage;
  page[1] = page.size() - 2;
  if (changeable) {
    page[2] = 0x04;  // D_SENSE
    return page;
  }
  page[2] = d_sense ? 0x04 : 0x00;
  page[3] = 0x10;           // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering
  Put16(&page[8], 0xffff);  // BUSY TIMEOUT PERIOD: unlimited
  return page;
}

// Whether `sent` differs from `current` only in the bits of `mask` (bytes 0-1, the page code and
// length, are checked by the caller; PS, in byte 0, is reserved in MODE SELECT).
bool OnlyChangeableDiffer(absl::Span<const uint8_t> sent, const std::vector<uint8_t>& current,
                          const std::vector<uint8_t>& mask) {
  for (size_t i = 2; i < current.size(); ++i) {
    if ((sent[i] & ~mask[i]) != (current[i] & ~mask[i])) return false;
  }
  return true;
}

}  // namespace

ScsiLun::ScsiLun(BlockBackend* backend, LunIdentity identity)
    : backend_(backend), identity_(std::move(identity)) {}

bool ScsiLun::NeedsDataOutCopy(uint8_t opcode) {
  return opcode != WRITE_6 && opcode != WRITE_10 && opcode != WRITE_12 && opcode != kWrite16;
}

ScsiResponse ScsiLun::CheckCondition(const Sense& sense, uint64_t information) const {
  ScsiResponse response = CheckCondition(sense);
  response.sense = EncodeSense(
      sense, descriptor_sense_ ? SenseFormat::kDescriptor : SenseFormat::kFixed, information);
  return response;
}

ScsiResponse ScsiLun::Overrun() const {
  ScsiResponse response;
  response.response = VIRTIO_SCSI_S_OVERRUN;
  return response;
}

ScsiResponse ScsiLun::CheckCondition(const Sense& sense) const {
  ScsiResponse response;
  response.response = VIRTIO_SCSI_S_OK;
  response.status = kStatusCheckCondition;
  response.sense =
      EncodeSense(sense, descriptor_sense_ ? SenseFormat::kDescriptor : SenseFormat::kFixed);
  return response;
}

// Data-in for the informational commands: truncated to the allocation length (SPC-5 4.2.5.6)
// and to the room the initiator gave.
ScsiResponse ScsiLun::DataIn(std::vector<uint8_t> data, size_t allocation_length,
                             const ScsiRequest& request) const {
  data.resize(std::min({data.size(), allocation_length, request.data_in_size}));
  ScsiResponse response;
  response.data_in = std::move(data);
  return response;
}

bool ScsiLun::InRange(uint64_t lba, uint64_t blocks) const {
  uint64_t capacity = backend_->num_blocks();
  // A zero-length command still names its LBA, which must be on the medium (LBA 0 of an empty
  // one is let through: SYNCHRONIZE CACHE of everything).
  if (blocks == 0) return lba < capacity || lba == 0;
  return lba < capacity && blocks <= capacity - lba;
}

ScsiResponse ScsiLun::Execute(const ScsiRequest& request) {
  std::variant<ScsiResponse, BlockIo> prepared = Prepare(request);
  if (ScsiResponse* response = std::get_if<ScsiResponse>(&prepared)) return std::move(*response);
  const BlockIo& io = std::get<BlockIo>(prepared);
  std::vector<uint8_t> data;
  absl::Status status;
  switch (io.kind) {
    case BlockIo::kRead:
      data.resize(io.length);
      status = backend_->Read(io.offset, absl::MakeSpan(data));
      break;
    case BlockIo::kWrite:
      status = backend_->Write(io.offset, request.data_out.first(io.length), io.fua);
      break;
    case BlockIo::kFlush:
      status = backend_->Flush();
      break;
  }
  ScsiResponse response = CompleteIo(io, status.ok() ? 0 : -EIO);
  if (response.status == kStatusGood) response.data_in = std::move(data);
  return response;
}

ScsiResponse ScsiLun::CompleteIo(const BlockIo& io, int64_t result) const {
  if (result >= 0) return ScsiResponse{};
  LOG_EVERY_N(WARNING, 100) << "scsi: backend I/O failed: " << -result;
  return CheckCondition(io.kind == BlockIo::kRead ? kUnrecoveredReadError : kWriteError);
}

std::variant<ScsiResponse, BlockIo> ScsiLun::Prepare(const ScsiRequest& request) {
  absl::Span<const uint8_t> cdb = request.cdb;
  if (std::optional<Sense> bad = CheckCdbLength(cdb)) {
    LOG_EVERY_N(WARNING, 100) << "scsi: CDB of " << cdb.size() << " bytes rejected";
    return CheckCondition(*bad);
  }
  cdb = cdb.first(CdbLength(cdb[0]));
  if (unit_attention_ && cdb[0] != INQUIRY && cdb[0] != REQUEST_SENSE) {
    Sense attention = *unit_attention_;
    unit_attention_.reset();
    return CheckCondition(attention);
  }
  if (reservations_ != nullptr) {
    Admission admission = reservations_->Admit(request.nexus, cdb);
    if (admission.unit_attention) return CheckCondition(*admission.unit_attention);
    if (admission.conflict) {
      ScsiResponse response;
      response.status = kStatusReservationConflict;
      return response;
    }
  }
  switch (cdb[0]) {
    case TEST_UNIT_READY:
      return ScsiResponse{};
    case START_STOP:
      // A virtual disk has no medium to spin or eject: every power condition is accepted.
      return ScsiResponse{};
    case INQUIRY:
      return Inquiry(cdb, request);
    case REQUEST_SENSE:
      return RequestSense(cdb, request);
    case READ_CAPACITY:
      return ReadCapacity10(request);
    case kServiceActionIn16:
      if ((cdb[1] & 0x1f) == kReadCapacity16Action) return ReadCapacity16(cdb, request);
      return CheckCondition(kInvalidFieldInCdb);
    case kMaintenanceIn:
      if ((cdb[1] & 0x1f) == kReportSupportedOpcodesAction) return ReportOpcodes(cdb, request);
      return CheckCondition(kInvalidFieldInCdb);
    case MODE_SENSE:
    case MODE_SENSE_10:
      return ModeSense(cdb, request);
    case MODE_SELECT:
    case MODE_SELECT_10:
      return ModeSelect(cdb, request);
    case READ_6:
    case READ_10:
    case READ_12:
    case kRead16:
    case WRITE_6:
    case WRITE_10:
    case WRITE_12:
    case kWrite16:
      return ReadWrite(cdb, request);
    case VERIFY:
    case kVerify12:
    case kVerify16:
      return Verify(cdb, request);
    case kCompareAndWrite:
      return CompareAndWrite(cdb, request);
    case PERSISTENT_RESERVE_IN:
      if (reservations_ == nullptr) return CheckCondition(kInvalidOpcode);
      return PersistentReserveIn(cdb, request);
    case PERSISTENT_RESERVE_OUT:
      if (reservations_ == nullptr) return CheckCondition(kInvalidOpcode);
      return PersistentReserveOut(cdb, request);
    case SYNCHRONIZE_CACHE:
    case kSynchronizeCache16:
      return SynchronizeCache(cdb);
    case kUnmap:
      if (!backend_->supports_discard()) return CheckCondition(kInvalidOpcode);
      return Unmap(cdb, request);
    case WRITE_SAME:
    case kWriteSame16:
      return WriteSame(cdb, request);
    default:
      return CheckCondition(kInvalidOpcode);
  }
}

ScsiResponse ScsiLun::Inquiry(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  bool evpd = cdb[1] & 0x01;
  if (cdb[1] & 0xfe) return CheckCondition(kInvalidFieldInCdb);  // CMDDT (obsolete), reserved
  uint16_t allocation_length = Get16(cdb, 3);
  if (!evpd) {
    if (cdb[2] != 0) return CheckCondition(kInvalidFieldInCdb);
    return DataIn(StandardInquiry(), allocation_length, request);
  }
  bool found = false;
  std::vector<uint8_t> page = VpdPage(cdb[2], &found);
  if (!found) return CheckCondition(kInvalidFieldInCdb);
  return DataIn(std::move(page), allocation_length, request);
}

std::vector<uint8_t> ScsiLun::StandardInquiry() const {
  std::vector<uint8_t> data(36, 0);
  data[0] = TYPE_DISK;  // peripheral qualifier 0: connected
  data[2] = 0x07;       // VERSION: SPC-5
  data[3] = 0x12;       // HISUP, RESPONSE DATA FORMAT 2
  data[4] = data.size() - 5;
  data[7] = 0x02;  // CMDQUE: tagged queueing
  PutAscii(&data[8], identity_.vendor, 8);
  PutAscii(&data[16], identity_.product, 16);
  PutAscii(&data[32], identity_.revision, 4);
  return data;
}

std::vector<uint8_t> ScsiLun::VpdPage(uint8_t page, bool* found) const {
  std::vector<uint8_t> pages = {kVpdSupportedPages};
  if (!identity_.serial.empty()) pages.push_back(kVpdUnitSerial);
  pages.push_back(kVpdDeviceId);
  pages.push_back(kVpdBlockLimits);
  pages.push_back(kVpdBlockCharacteristics);
  if (backend_->supports_discard()) pages.push_back(kVpdProvisioning);
  *found = std::find(pages.begin(), pages.end(), page) != pages.end();
  if (!*found) return {};

  std::vector<uint8_t> data(4, 0);
  data[1] = page;
  switch (page) {
    case kVpdSupportedPages:
      data.insert(data.end(), pages.begin(), pages.end());
      break;
    case kVpdUnitSerial:
      data.insert(data.end(), identity_.serial.begin(), identity_.serial.end());
      break;
    case kVpdDeviceId: {
      if (identity_.wwn != 0) {
        // NAA designator: binary code set, associated with the LUN, 8 bytes.
        uint8_t naa[12] = {0x01, 0x03, 0x00, 0x08};
        Put64(&naa[4], identity_.wwn);
        data.insert(data.end(), naa, naa + sizeof(naa));
      }
      // T10 vendor ID designator: ASCII, vendor (8) + product (16) + serial.
      std::vector<uint8_t> t10(4 + 24, 0);
      t10[0] = 0x02;
      t10[1] = 0x01;
      PutAscii(&t10[4], identity_.vendor, 8);
      PutAscii(&t10[12], identity_.product, 16);
      t10.insert(t10.end(), identity_.serial.begin(), identity_.serial.end());
      t10[3] = t10.size() - 4;
      data.insert(data.end(), t10.begin(), t10.end());
      break;
    }
    case kVpdBlockLimits: {
      data.resize(64, 0);
      data[4] = 0x01;  // WSNZ: WRITE SAME with 0 blocks is refused
      Put32(&data[8], kMaxTransferBlocks);
      if (backend_->supports_discard()) {
        Put32(&data[20], kMaxUnmapBlocks);
        Put32(&data[24], kMaxUnmapDescriptors);
        Put32(&data[28], 1);  // OPTIMAL UNMAP GRANULARITY
      }
      data[5] = kMaxCompareAndWriteBlocks;
      Put64(&data[36], kMaxUnmapBlocks);  // MAXIMUM WRITE SAME LENGTH
      break;
    }
    case kVpdBlockCharacteristics:
      data.resize(64, 0);
      Put16(&data[4], 0x0001);  // MEDIUM ROTATION RATE: non-rotating
      break;
    case kVpdProvisioning:
      data.resize(8, 0);
      data[5] = 0xe0;  // LBPU, LBPWS, LBPWS10: UNMAP and WRITE SAME(16/10) with UNMAP
      data[6] = 0x02;  // PROVISIONING TYPE: thin
      break;
  }
  Put16(&data[2], data.size() - 4);
  return data;
}

ScsiResponse ScsiLun::ReadCapacity10(const ScsiRequest& request) {
  std::vector<uint8_t> data(8, 0);
  uint64_t last = backend_->num_blocks() == 0 ? 0 : backend_->num_blocks() - 1;
  // Too large for 32 bits: FFFFFFFFh tells the initiator to use READ CAPACITY(16).
  Put32(&data[0], last > 0xffffffffu ? 0xffffffffu : last);
  Put32(&data[4], backend_->block_size());
  // READ CAPACITY(10) has no allocation length: all 8 bytes, as the buffer allows. (The size
  // is taken before the move: argument order is unspecified, and clang moves first.)
  const size_t size = data.size();
  return DataIn(std::move(data), size, request);
}

ScsiResponse ScsiLun::ReadCapacity16(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  std::vector<uint8_t> data(32, 0);
  uint64_t last = backend_->num_blocks() == 0 ? 0 : backend_->num_blocks() - 1;
  Put64(&data[0], last);
  Put32(&data[8], backend_->block_size());
  if (backend_->supports_discard()) data[14] = 0x80;  // LBPME
  return DataIn(std::move(data), Get32(cdb, 10), request);
}

ScsiResponse ScsiLun::ModeSense(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  bool ten = cdb[0] == MODE_SENSE_10;
  bool dbd = cdb[1] & 0x08;
  uint8_t control = cdb[2] >> 6;  // PC: current, changeable, default, saved
  uint8_t page = cdb[2] & 0x3f;
  if (control == 3) return CheckCondition(kSavingParametersNotSupported);
  if (cdb[3] != 0) return CheckCondition(kInvalidFieldInCdb);  // no subpages
  bool changeable = control == 1;
  // Defaults are the current values: nothing changes them yet.
  std::vector<uint8_t> pages;
  if (page == kModeCachingPage || page == kModeAllPages) {
    std::vector<uint8_t> p = CachingPage(write_cache_enabled_, changeable);
    pages.insert(pages.end(), p.begin(), p.end());
  }
  if (page == kModeControlPage || page == kModeAllPages) {
    std::vector<uint8_t> p = ControlPage(descriptor_sense_, changeable);
    pages.insert(pages.end(), p.begin(), p.end());
  }
  if (pages.empty()) return CheckCondition(kInvalidFieldInCdb);

  std::vector<uint8_t> block_descriptor;
  if (!dbd) {
    block_descriptor.resize(8, 0);
    uint64_t blocks = backend_->num_blocks();
    Put32(&block_descriptor[0], blocks > 0xffffffffu ? 0xffffffffu : blocks);
    Put32(&block_descriptor[4], backend_->block_size() & 0xffffff);  // byte 4: density code 0
  }
  uint8_t device_specific = 0x10;                      // DPOFUA
  if (backend_->read_only()) device_specific |= 0x80;  // WP

  std::vector<uint8_t> data(ten ? 8 : 4, 0);
  if (ten) {
    data[3] = device_specific;
    Put16(&data[6], block_descriptor.size());
  } else {
    data[2] = device_specific;
    data[3] = block_descriptor.size();
  }
  data.insert(data.end(), block_descriptor.begin(), block_descriptor.end());
  data.insert(data.end(), pages.begin(), pages.end());
  if (ten) {
    Put16(&data[0], data.size() - 2);
  } else {
    data[0] = data.size() - 1;
  }
  return DataIn(std::move(data), ten ? Get16(cdb, 7) : cdb[4], request);
}

ScsiResponse ScsiLun::ModeSelect(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  bool ten = cdb[0] == MODE_SELECT_10;
  if (cdb[1] & 0x01) return CheckCondition(kSavingParametersNotSupported);  // SP
  if (!(cdb[1] & 0x10)) return CheckCondition(kInvalidFieldInCdb);          // PF: only SPC pages
  size_t length = ten ? Get16(cdb, 7) : cdb[4];
  if (length == 0) return ScsiResponse{};
  if (length > request.data_out.size()) {
    ScsiResponse response;
    response.response = VIRTIO_SCSI_S_OVERRUN;
    return response;
  }
  absl::Span<const uint8_t> list = request.data_out.first(length);
  size_t header = ten ? 8 : 4;
  if (list.size() < header) return CheckCondition(kParameterListLengthError);
  size_t descriptor_length = ten ? Get16(list, 6) : list[3];
  if (header + descriptor_length > list.size()) return CheckCondition(kParameterListLengthError);
  if (descriptor_length != 0) {
    // One short block descriptor, which may only restate the block length.
    if (descriptor_length != 8) return CheckCondition(kInvalidFieldInParameterList);
    if ((Get32(list, header + 4) & 0xffffff) != backend_->block_size()) {
      return CheckCondition(kInvalidFieldInParameterList);
    }
  }
  // Every page is checked before any is applied so a bad list changes nothing.
  bool wce = write_cache_enabled_;
  bool d_sense = descriptor_sense_;
  for (size_t at = header + descriptor_length; at < list.size();) {
    if (list.size() - at < 2) return CheckCondition(kParameterListLengthError);
    uint8_t code = list[at] & 0x7f;  // SPF (subpages) set: no page here has one
    size_t page_length = 2 + list[at + 1];
    if (page_length > list.size() - at) return CheckCondition(kParameterListLengthError);
    absl::Span<const uint8_t> page = list.subspan(at, page_length);
    std::vector<uint8_t> current, mask;
    if (code == kModeCachingPage) {
      current = CachingPage(write_cache_enabled_, false);
      mask = CachingPage(false, true);
    } else if (code == kModeControlPage) {
      current = ControlPage(descriptor_sense_, false);
      mask = ControlPage(false, true);
    } else {
      return CheckCondition(kInvalidFieldInParameterList);
    }
    if (page.size() != current.size() || !OnlyChangeableDiffer(page, current, mask)) {
      return CheckCondition(kInvalidFieldInParameterList);
    }
    if (code == kModeCachingPage) wce = page[2] & 0x04;
    if (code == kModeControlPage) d_sense = page[2] & 0x04;
    at += page_length;
  }
  write_cache_enabled_ = wce;
  descriptor_sense_ = d_sense;
  return ScsiResponse{};
}

ScsiResponse ScsiLun::RequestSense(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  // A pending unit attention is reported (and cleared), else NO SENSE: no deferred errors are
  // kept, every command's own error went back with it as CHECK CONDITION.
  bool descriptor = cdb[1] & 0x01;
  Sense sense = unit_attention_.value_or(kNoSense);
  if (unit_attention_) {
    unit_attention_.reset();
  } else if (reservations_ != nullptr) {
    sense = reservations_->TakeUnitAttention(request.nexus).value_or(kNoSense);
  }
  return DataIn(EncodeSense(sense, descriptor ? SenseFormat::kDescriptor : SenseFormat::kFixed),
                cdb[4], request);
}

ScsiResponse ScsiLun::ReportOpcodes(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  uint8_t options = cdb[2] & 0x07;
  bool timeouts = cdb[2] & 0x80;  // RCTD: no timeouts descriptors are kept
  if (options != 0 || timeouts) return CheckCondition(kInvalidFieldInCdb);
  std::vector<uint8_t> data(4, 0);
  for (const OpcodeInfo& info : kOpcodes) {
    if (info.needs == kDiscard && !backend_->supports_discard()) continue;
    if (info.needs == kReservations && reservations_ == nullptr) continue;
    uint8_t descriptor[8] = {info.opcode, 0};
    Put16(&descriptor[2], info.service_action);
    descriptor[5] = info.has_service_action ? 0x01 : 0x00;  // SERVACTV
    Put16(&descriptor[6], CdbLength(info.opcode));
    data.insert(data.end(), descriptor, descriptor + sizeof(descriptor));
  }
  Put32(&data[0], data.size() - 4);
  return DataIn(std::move(data), Get32(cdb, 6), request);
}

std::variant<ScsiResponse, BlockIo> ScsiLun::ReadWrite(absl::Span<const uint8_t> cdb,
                                                       const ScsiRequest& request) {
  BlockRange range;
  if (std::optional<Sense> bad = ParseBlockRange(cdb, &range)) return CheckCondition(*bad);
  bool write = cdb[0] == WRITE_6 || cdb[0] == WRITE_10 || cdb[0] == WRITE_12 || cdb[0] == kWrite16;
  if (write && backend_->read_only()) return CheckCondition(kWriteProtected);
  if (range.blocks > kMaxTransferBlocks) return CheckCondition(kInvalidFieldInCdb);
  if (!InRange(range.lba, range.blocks)) return CheckCondition(kLbaOutOfRange);
  uint64_t block_size = backend_->block_size();
  uint64_t bytes = range.blocks * block_size;
  size_t room =
      write ? std::max(request.data_out.size(), request.data_out_size) : request.data_in_size;
  if (bytes > room) {
    // The initiator's buffers cannot hold the transfer: the virtio-scsi response says so and
    // nothing is read or written.
    LOG_EVERY_N(WARNING, 100) << "scsi: transfer of " << bytes << " bytes, buffers hold " << room;
    ScsiResponse response;
    response.response = VIRTIO_SCSI_S_OVERRUN;
    return response;
  }
  uint64_t offset = range.lba * block_size;
  ScsiResponse response;
  if (bytes == 0) return response;  // transfer length 0: nothing moves, and that is no error
  BlockIo io;
  io.kind = write ? BlockIo::kWrite : BlockIo::kRead;
  io.offset = offset;
  io.length = bytes;
  io.fua = write && (range.fua || !write_cache_enabled_);
  return io;
}

ScsiResponse ScsiLun::Verify(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  // BYTCHK (byte 1 bits 2-1): 00b checks the medium, which here is a bounds check (the backend
  // has no media errors to find ahead of a read); 01b compares it with the data-out buffer;
  // 11b (one block against each) is not implemented, 10b is reserved.
  uint8_t bytchk = (cdb[1] >> 1) & 0x03;
  if (bytchk > 1) return CheckCondition(kInvalidFieldInCdb);
  BlockRange range;
  if (std::optional<Sense> bad = ParseBlockRange(cdb, &range)) return CheckCondition(*bad);
  uint64_t block_size = backend_->block_size();
  uint64_t bytes = uint64_t{range.blocks} * block_size;
  if (bytchk && bytes > kMaxVerifyCompareBytes) return CheckCondition(kInvalidFieldInCdb);
  if (!InRange(range.lba, range.blocks)) return CheckCondition(kLbaOutOfRange);
  if (!bytchk || range.blocks == 0) return ScsiResponse{};
  std::variant<ScsiResponse, absl::Span<const uint8_t>> data_out = DataOut(request, bytes);
  if (ScsiResponse* refused = std::get_if<ScsiResponse>(&data_out)) return std::move(*refused);
  absl::Span<const uint8_t> expected = std::get<absl::Span<const uint8_t>>(data_out);
  std::vector<uint8_t> medium(bytes);
  if (!backend_->Read(range.lba * block_size, absl::MakeSpan(medium)).ok()) {
    return CheckCondition(kUnrecoveredReadError);
  }
  auto differ = std::mismatch(medium.begin(), medium.end(), expected.begin());
  if (differ.first != medium.end()) {
    // INFORMATION: the offset in the data-out buffer of the first byte that differed.
    return CheckCondition(kMiscompareDuringVerify, differ.first - medium.begin());
  }
  return ScsiResponse{};
}

std::variant<ScsiResponse, absl::Span<const uint8_t>> ScsiLun::DataOut(const ScsiRequest& request,
                                                                       uint64_t bytes) const {
  if (request.data_out.size() >= bytes) return request.data_out.first(bytes);
  if (std::max(request.data_out.size(), request.data_out_size) < bytes) {
    LOG_EVERY_N(WARNING, 100) << "scsi: data-out of " << bytes << " bytes, buffers hold "
                              << std::max(request.data_out.size(), request.data_out_size);
    return Overrun();
  }
  // The initiator sent enough but the device did not copy it (NeedsDataOutCopy): its bug.
  LOG_EVERY_N(ERROR, 100) << "scsi: opcode " << int{request.cdb[0]} << " needs its data-out copied";
  return CheckCondition(kInternalTargetFailure);
}

// COMPARE AND WRITE (SBC-4 5.2): the data-out buffer holds the blocks to compare, then the
// blocks to write in their place if the medium matched. Synchronous: it is rare, and the
// compare and the write must not be split by another command on this thread.
ScsiResponse ScsiLun::CompareAndWrite(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  if (cdb[1] & 0xe0) return CheckCondition(kInvalidFieldInCdb);  // WRPROTECT: no protection info
  uint64_t lba = Get64(cdb, 2);
  uint32_t blocks = cdb[13];
  if (backend_->read_only()) return CheckCondition(kWriteProtected);
  if (blocks > kMaxCompareAndWriteBlocks) return CheckCondition(kInvalidFieldInCdb);
  if (!InRange(lba, blocks)) return CheckCondition(kLbaOutOfRange);
  if (blocks == 0) return ScsiResponse{};  // nothing compared or written, and no error
  uint64_t block_size = backend_->block_size();
  uint64_t bytes = blocks * block_size;
  std::variant<ScsiResponse, absl::Span<const uint8_t>> data_out = DataOut(request, 2 * bytes);
  if (ScsiResponse* refused = std::get_if<ScsiResponse>(&data_out)) return std::move(*refused);
  absl::Span<const uint8_t> compare = std::get<absl::Span<const uint8_t>>(data_out).first(bytes);
  absl::Span<const uint8_t> write = std::get<absl::Span<const uint8_t>>(data_out).subspan(bytes);
  std::vector<uint8_t> medium(bytes);
  if (!backend_->Read(lba * block_size, absl::MakeSpan(medium)).ok()) {
    return CheckCondition(kUnrecoveredReadError);
  }
  auto differ = std::mismatch(medium.begin(), medium.end(), compare.begin());
  if (differ.first != medium.end()) {
    // INFORMATION: the offset in the data-out buffer of the first byte that differed.
    return CheckCondition(kMiscompareDuringVerify, differ.first - medium.begin());
  }
  bool fua = (cdb[1] & 0x08) || !write_cache_enabled_;
  if (!backend_->Write(lba * block_size, write, fua).ok()) return CheckCondition(kWriteError);
  return ScsiResponse{};
}

ScsiResponse ScsiLun::PersistentReserveIn(absl::Span<const uint8_t> cdb,
                                          const ScsiRequest& request) {
  return FromPr(reservations_->In(request.nexus, cdb), Get16(cdb, 7), request);
}

ScsiResponse ScsiLun::PersistentReserveOut(absl::Span<const uint8_t> cdb,
                                           const ScsiRequest& request) {
  uint32_t length = Get32(cdb, 5);
  std::variant<ScsiResponse, absl::Span<const uint8_t>> parameters = DataOut(request, length);
  if (ScsiResponse* refused = std::get_if<ScsiResponse>(&parameters)) return std::move(*refused);
  return FromPr(
      reservations_->Out(request.nexus, cdb, std::get<absl::Span<const uint8_t>>(parameters)), 0,
      request);
}

ScsiResponse ScsiLun::FromPr(PrResult result, size_t allocation_length,
                             const ScsiRequest& request) const {
  ScsiResponse response;
  switch (result.status) {
    case kStatusGood:
      response = DataIn(std::move(result.data_in), allocation_length, request);
      break;
    case kStatusCheckCondition:
      return CheckCondition(result.sense);
    default:
      response.status = result.status;
      break;
  }
  response.abort_nexuses = std::move(result.aborted);
  return response;
}

std::variant<ScsiResponse, BlockIo> ScsiLun::SynchronizeCache(absl::Span<const uint8_t> cdb) {
  BlockRange range;
  if (std::optional<Sense> bad = ParseBlockRange(cdb, &range)) return CheckCondition(*bad);
  // NUMBER OF LOGICAL BLOCKS 0 means "to the end of the medium".
  if (!InRange(range.lba, range.blocks)) return CheckCondition(kLbaOutOfRange);
  BlockIo io;
  io.kind = BlockIo::kFlush;
  return io;
}

ScsiResponse ScsiLun::Unmap(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  if (backend_->read_only()) return CheckCondition(kWriteProtected);
  if (cdb[1] & 0x01) return CheckCondition(kInvalidFieldInCdb);  // ANCHOR: not supported
  uint16_t list_length = Get16(cdb, 7);
  if (list_length == 0) return ScsiResponse{};  // nothing to unmap (SBC-4 5.37)
  if (list_length > request.data_out.size()) {
    ScsiResponse response;
    response.response = VIRTIO_SCSI_S_OVERRUN;
    return response;
  }
  absl::Span<const uint8_t> list = request.data_out.first(list_length);
  if (list.size() < 8) return CheckCondition(kParameterListLengthError);
  uint16_t descriptors_length = Get16(list, 2);
  if (descriptors_length % 16 != 0 || 8u + descriptors_length > list.size()) {
    return CheckCondition(kParameterListLengthError);
  }
  size_t count = descriptors_length / 16;
  if (count > kMaxUnmapDescriptors) return CheckCondition(kInvalidFieldInParameterList);
  // Every descriptor is checked before any is applied so a bad list changes nothing.
  for (size_t i = 0; i < count; ++i) {
    uint64_t lba = Get64(list, 8 + 16 * i);
    uint32_t blocks = Get32(list, 16 + 16 * i);
    if (!InRange(lba, blocks)) return CheckCondition(kLbaOutOfRange);
    if (blocks > kMaxUnmapBlocks) return CheckCondition(kInvalidFieldInParameterList);
  }
  uint64_t block_size = backend_->block_size();
  for (size_t i = 0; i < count; ++i) {
    uint64_t lba = Get64(list, 8 + 16 * i);
    uint32_t blocks = Get32(list, 16 + 16 * i);
    if (blocks == 0) continue;
    if (!backend_->Discard(lba * block_size, blocks * block_size).ok()) {
      return CheckCondition(kWriteError);
    }
  }
  return ScsiResponse{};
}

ScsiResponse ScsiLun::WriteSame(absl::Span<const uint8_t> cdb, const ScsiRequest& request) {
  bool unmap = cdb[1] & 0x08;
  bool anchor = cdb[1] & 0x10;
  bool no_data = cdb[0] == kWriteSame16 && (cdb[1] & 0x01);  // NDOB: the block is zeroes
  if (anchor) return CheckCondition(kInvalidFieldInCdb);
  if (unmap && !backend_->supports_discard()) return CheckCondition(kInvalidFieldInCdb);
  BlockRange range;
  if (std::optional<Sense> bad = ParseBlockRange(cdb, &range)) return CheckCondition(*bad);
  if (backend_->read_only()) return CheckCondition(kWriteProtected);
  // WSNZ is set in the block limits page: 0 blocks ("to the end") is refused.
  if (range.blocks == 0 || range.blocks > kMaxUnmapBlocks) {
    return CheckCondition(kInvalidFieldInCdb);
  }
  if (!InRange(range.lba, range.blocks)) return CheckCondition(kLbaOutOfRange);
  uint64_t block_size = backend_->block_size();
  absl::Span<const uint8_t> block;
  if (!no_data) {
    if (request.data_out.size() < block_size) {
      ScsiResponse response;
      response.response = VIRTIO_SCSI_S_OVERRUN;
      return response;
    }
    block = request.data_out.first(block_size);
  }
  bool zeroes = no_data || std::all_of(block.begin(), block.end(), [](uint8_t b) { return !b; });
  uint64_t offset = range.lba * block_size;
  uint64_t length = range.blocks * block_size;
  if (zeroes) {
    if (!backend_->WriteZeroes(offset, length, unmap).ok()) return CheckCondition(kWriteError);
    return ScsiResponse{};
  }
  // UNMAP with a non-zero block cannot deallocate: the blocks are written (SBC-4 5.50).
  for (uint32_t i = 0; i < range.blocks; ++i) {
    if (!backend_->Write(offset + i * block_size, block, !write_cache_enabled_).ok()) {
      return CheckCondition(kWriteError);
    }
  }
  return ScsiResponse{};
}

}  // namespace vhost::scsi
