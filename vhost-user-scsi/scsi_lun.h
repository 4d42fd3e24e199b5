// One logical unit: the SPC-5/SBC-4 command set of a direct-access block device, emulated on top
// of a BlockBackend. No threads and no I/O of its own: the virtio-scsi device decodes a request and
// hands the CDB and data buffers to Execute (synchronous, through the BlockBackend) or to Prepare
// (the data phase comes back as a BlockIo for the device's own I/O path), then writes the response.
#ifndef VHOST_USER_SCSI_SCSI_LUN_H_
#define VHOST_USER_SCSI_SCSI_LUN_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "vhost-user-scsi/persistent_reservations.h"
#include "vhost-user-scsi/sense.h"

namespace vhost::scsi {

// The storage behind a LUN. Offsets and lengths are in bytes and multiples of block_size();
// the LUN has checked them against the capacity.
class BlockBackend {
 public:
  virtual ~BlockBackend() = default;
  virtual uint64_t num_blocks() const = 0;
  virtual uint32_t block_size() const = 0;
  virtual bool read_only() const = 0;
  // Whether Discard deallocates (thin provisioning): enables UNMAP, WRITE SAME's UNMAP bit, LBPME
  // and the logical block provisioning VPD page.
  virtual bool supports_discard() const = 0;
  virtual absl::Status Read(uint64_t offset, absl::Span<uint8_t> data) = 0;
  // `fua`: the data is on stable storage when Write returns.
  virtual absl::Status Write(uint64_t offset, absl::Span<const uint8_t> data, bool fua) = 0;
  virtual absl::Status Flush() = 0;
  virtual absl::Status Discard(uint64_t offset, uint64_t length) = 0;
  // `unmap`: the range may be deallocated as long as it then reads as zeroes.
  virtual absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool unmap) = 0;
};

struct LunIdentity {
  std::string vendor = "VHOST";          // INQUIRY T10 vendor identification, 8 bytes
  std::string product = "VIRTUAL-DISK";  // 16 bytes
  std::string revision = "1.0";          // 4 bytes
  std::string serial;                    // unit serial number VPD page (80h); empty: none
  uint64_t wwn = 0;                      // NAA designator in the identification page; 0: none
};

struct ScsiRequest {
  absl::Span<const uint8_t> cdb;       // the CDB area of the request (may be longer than the CDB)
  absl::Span<const uint8_t> data_out;  // what the initiator sends (WRITE, UNMAP, ...)
  // Bytes the initiator sends in all, when more than data_out holds: a device passes a WRITE's
  // data by reference (guest buffers) and copies only parameter lists into data_out.
  size_t data_out_size = 0;
  size_t data_in_size = 0;  // room the initiator gave for data coming back
  // The I_T nexus the command came on, for persistent reservations and their unit attentions.
  NexusId nexus = 0;
};

struct ScsiResponse {
  // The virtio-scsi response: VIRTIO_SCSI_S_OK, or VIRTIO_SCSI_S_OVERRUN when the command's
  // transfer length does not fit the buffers the initiator gave (nothing was transferred).
  uint8_t response = 0;
  uint8_t status = kStatusGood;  // SAM status
  std::vector<uint8_t> sense;    // with CHECK CONDITION
  std::vector<uint8_t> data_in;  // at most data_in_size bytes
  // PERSISTENT RESERVE OUT / PREEMPT AND ABORT: the nexuses whose commands to this logical unit
  // the device aborts (as ABORT TASK SET would) before sending this response.
  std::vector<NexusId> abort_nexuses;
};

// A READ, WRITE or SYNCHRONIZE CACHE that passed every check: the data phase, for the caller to run
// on its own I/O path (blk's DiskQueue) before CompleteIo. Byte offsets, within the capacity.
struct BlockIo {
  enum Kind { kRead, kWrite, kFlush } kind = kRead;
  uint64_t offset = 0;
  uint64_t length = 0;  // the first `length` bytes of the data-in/data-out buffers
  bool fua = false;     // write through (FUA, or the write cache is off)
};

class ScsiLun {
 public:
  // Maximum blocks one READ/WRITE may move (block limits VPD page); larger ones get INVALID FIELD.
  static constexpr uint32_t kMaxTransferBlocks = 1 << 16;
  static constexpr uint32_t kMaxUnmapBlocks = 1 << 22;
  static constexpr uint32_t kMaxUnmapDescriptors = 256;
  // MAXIMUM COMPARE AND WRITE LENGTH (block limits VPD page): COMPARE AND WRITE runs
  // synchronously on the caller's thread, so it is kept short.
  static constexpr uint8_t kMaxCompareAndWriteBlocks = 32;
  // VERIFY with BYTCHK compares at most this many bytes of data-out (which the device copies
  // into data_out, NeedsDataOutCopy); longer ones get INVALID FIELD IN CDB.
  static constexpr uint64_t kMaxVerifyCompareBytes = 1 << 20;

  ScsiLun(BlockBackend* backend, LunIdentity identity);

  // Enables PERSISTENT RESERVE IN/OUT and the reservation checks on every command; null (the
  // default) disables them (the opcodes are then unsupported). Not owned; one object per
  // logical unit, shared by every ScsiLun (nexus) serving that unit.
  void set_reservations(PersistentReservations* reservations) { reservations_ = reservations; }

  // Whether the command reads its data-out buffer in ScsiRequest::data_out (parameter lists,
  // COMPARE AND WRITE, VERIFY with BYTCHK, WRITE SAME's block): every command but
  // WRITE(6/10/12/16), whose data may be passed by reference with data_out_size only.
  static bool NeedsDataOutCopy(uint8_t opcode);

  // Runs one command. Never fails: errors become CHECK CONDITION with sense data. The data
  // phase goes through the BlockBackend synchronously (Prepare + backend + CompleteIo).
  ScsiResponse Execute(const ScsiRequest& request);

  // The asynchronous form: every command but the data phase of READ/WRITE/SYNCHRONIZE CACHE is
  // answered at once; those come back as a BlockIo, which the caller runs (reading into or writing
  // from the request's buffers) and then hands to CompleteIo with the result (>= 0, or -errno).
  std::variant<ScsiResponse, BlockIo> Prepare(const ScsiRequest& request);
  ScsiResponse CompleteIo(const BlockIo& io, int64_t result) const;

  // Queues a unit attention (e.g. kCapacityDataChanged after the backing grew, or a reset's
  // 29/00): the next command other than INQUIRY and REQUEST SENSE gets it as CHECK CONDITION,
  // or REQUEST SENSE returns it; either clears it. A newer one replaces one not yet reported.
  void SetUnitAttention(const Sense& sense) { unit_attention_ = sense; }

  // Sense data format for CHECK CONDITION (the control mode page's D_SENSE, which MODE SELECT
  // changes too).
  void set_descriptor_sense(bool descriptor) { descriptor_sense_ = descriptor; }
  bool write_cache_enabled() const { return write_cache_enabled_; }

 private:
  ScsiResponse CheckCondition(const Sense& sense) const;
  ScsiResponse CheckCondition(const Sense& sense, uint64_t information) const;
  ScsiResponse Overrun() const;
  ScsiResponse DataIn(std::vector<uint8_t> data, size_t allocation_length,
                      const ScsiRequest& request) const;
  ScsiResponse Inquiry(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  std::vector<uint8_t> StandardInquiry() const;
  std::vector<uint8_t> VpdPage(uint8_t page, bool* found) const;
  ScsiResponse ReadCapacity10(const ScsiRequest& request);
  ScsiResponse ReadCapacity16(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  ScsiResponse ModeSense(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  ScsiResponse ModeSelect(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  ScsiResponse RequestSense(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  ScsiResponse ReportOpcodes(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  std::variant<ScsiResponse, BlockIo> ReadWrite(absl::Span<const uint8_t> cdb,
                                                const ScsiRequest& request);
  ScsiResponse Verify(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  ScsiResponse CompareAndWrite(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  // The data-out bytes a command compares or writes, or the response refusing the command when
  // the buffers cannot hold them.
  std::variant<ScsiResponse, absl::Span<const uint8_t>> DataOut(const ScsiRequest& request,
                                                                uint64_t bytes) const;
  ScsiResponse PersistentReserveIn(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  ScsiResponse PersistentReserveOut(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  ScsiResponse FromPr(PrResult result, size_t allocation_length, const ScsiRequest& request) const;
  std::variant<ScsiResponse, BlockIo> SynchronizeCache(absl::Span<const uint8_t> cdb);
  ScsiResponse Unmap(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  ScsiResponse WriteSame(absl::Span<const uint8_t> cdb, const ScsiRequest& request);
  bool InRange(uint64_t lba, uint64_t blocks) const;

  BlockBackend* backend_;
  LunIdentity identity_;
  bool descriptor_sense_ = false;
  bool write_cache_enabled_ = true;
  std::optional<Sense> unit_attention_;
  PersistentReservations* reservations_ = nullptr;
};

}  // namespace vhost::scsi

#endif  // VHOST_USER_SCSI_SCSI_LUN_H_
