// Fuzzes the SCSI command set of one logical unit (ScsiLun) with what an initiator controls: the
// input configures a unit on an in-memory BlockBackend (size, block size, read-only, thin,
// persistent reservations with an APTPL store whose saved state may be garbage) and becomes a
// stream of commands from up to four I_T nexuses (any CDB, parameter data, buffer sizes), run
// synchronously (Execute) or as the device does (Prepare, the data phase here, CompleteIo with
// success or an error), interleaved with unit attentions, a capacity change and a restart of the
// reservations from their store. It must not crash, touch the backend outside its capacity or
// write to a read-only one, return more data than the buffers hold, or answer CHECK CONDITION
// without well-formed sense data.
#include <linux/virtio_scsi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <variant>
#include <vector>

#include "absl/types/span.h"
#include "glog/logging.h"
#include "tests/fuzz/fuzz_input.h"
#include "vhost-user-scsi/cdb.h"
#include "vhost-user-scsi/persistent_reservations.h"
#include "vhost-user-scsi/scsi_lun.h"
#include "vhost-user-scsi/sense.h"

namespace vhost::scsi {
namespace {

constexpr uint64_t kMaxBlocks = 256;
constexpr size_t kMaxSense = 252;  // SPC-5 4.4.1: the additional sense length is one byte

// Blocks of memory; every operation's range is checked against the capacity the LUN was told
// (which the input may change), so an I/O outside the image aborts.
class MemoryBackend : public BlockBackend {
 public:
  MemoryBackend(uint32_t block_size, uint64_t blocks, bool read_only, bool discard)
      : block_size_(block_size),
        blocks_(blocks),
        read_only_(read_only),
        discard_(discard),
        data_(kMaxBlocks * block_size) {}

  uint64_t num_blocks() const override { return blocks_; }
  uint32_t block_size() const override { return block_size_; }
  bool read_only() const override { return read_only_; }
  bool supports_discard() const override { return discard_; }
  absl::Status Read(uint64_t offset, absl::Span<uint8_t> data) override {
    Check(offset, data.size());
    if (fail_) return absl::DataLossError("injected");
    std::memcpy(data.data(), &data_[offset], data.size());
    return absl::OkStatus();
  }
  absl::Status Write(uint64_t offset, absl::Span<const uint8_t> data, bool) override {
    CheckWrite(offset, data.size());
    if (fail_) return absl::DataLossError("injected");
    std::memcpy(&data_[offset], data.data(), data.size());
    return absl::OkStatus();
  }
  absl::Status Flush() override {
    return fail_ ? absl::DataLossError("injected") : absl::OkStatus();
  }
  absl::Status Discard(uint64_t offset, uint64_t length) override {
    if (!discard_) std::abort();  // UNMAP was not offered
    CheckWrite(offset, length);
    if (fail_) return absl::DataLossError("injected");
    std::memset(&data_[offset], 0, length);
    return absl::OkStatus();
  }
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool unmap) override {
    if (unmap && !discard_) std::abort();  // WRITE SAME's UNMAP bit was not offered
    CheckWrite(offset, length);
    if (fail_) return absl::DataLossError("injected");
    std::memset(&data_[offset], 0, length);
    return absl::OkStatus();
  }

  void set_blocks(uint64_t blocks) { blocks_ = blocks; }
  void set_fail(bool fail) { fail_ = fail; }
  // The BlockIo checks: whole blocks, inside the capacity.
  void Check(uint64_t offset, uint64_t length) const {
    if (offset % block_size_ != 0 || length % block_size_ != 0) std::abort();
    if (offset > blocks_ * block_size_ || length > blocks_ * block_size_ - offset) std::abort();
  }
  void CheckWrite(uint64_t offset, uint64_t length) const {
    if (read_only_) std::abort();
    Check(offset, length);
  }
  uint8_t* at(uint64_t offset) { return &data_[offset]; }

 private:
  const uint32_t block_size_;
  uint64_t blocks_;
  const bool read_only_;
  const bool discard_;
  bool fail_ = false;
  std::vector<uint8_t> data_;
};

// The APTPL state file, in memory.
class MemoryStore : public ReservationStore {
 public:
  absl::StatusOr<std::vector<uint8_t>> Load() override { return bytes_; }
  absl::Status Save(absl::Span<const uint8_t> bytes) override {
    if (fail_) return absl::UnavailableError("injected");
    bytes_.assign(bytes.begin(), bytes.end());
    ours_ = true;
    return absl::OkStatus();
  }
  std::vector<uint8_t> bytes_;
  bool ours_ = false;  // the bytes are a state Save wrote, not the input's
  bool fail_ = false;
};

// Opcodes the unit implements (and a few it does not), for inputs that pick one by index: a
// mutated first CDB byte rarely lands on one.
constexpr uint8_t kOpcodes[] = {TEST_UNIT_READY,
                                REQUEST_SENSE,
                                READ_6,
                                WRITE_6,
                                INQUIRY,
                                MODE_SELECT,
                                MODE_SENSE,
                                START_STOP,
                                READ_CAPACITY,
                                READ_10,
                                WRITE_10,
                                VERIFY,
                                SYNCHRONIZE_CACHE,
                                WRITE_SAME,
                                kUnmap,
                                MODE_SELECT_10,
                                MODE_SENSE_10,
                                PERSISTENT_RESERVE_IN,
                                PERSISTENT_RESERVE_OUT,
                                kRead16,
                                kCompareAndWrite,
                                kWrite16,
                                kVerify16,
                                kSynchronizeCache16,
                                kWriteSame16,
                                kServiceActionIn16,
                                kMaintenanceIn,
                                READ_12,
                                WRITE_12,
                                kVerify12,
                                0xa0 /* REPORT LUNS: the device's */,
                                0x7f /* variable length */,
                                0xc0 /* vendor */};

constexpr Sense kAttentions[] = {kPowerOnReset, kLogicalUnitReset, kNexusLoss,
                                 kCapacityDataChanged};

void CheckSense(const std::vector<uint8_t>& sense) {
  if (sense.size() < 8 || sense.size() > kMaxSense) std::abort();
  const uint8_t code = sense[0] & 0x7f;
  if (code != 0x70 && code != 0x72) std::abort();
  if (sense.size() != 8u + sense[7]) std::abort();  // ADDITIONAL SENSE LENGTH covers the rest
}

void CheckResponse(const ScsiResponse& r, const ScsiRequest& request) {
  if (r.data_in.size() > request.data_in_size) std::abort();
  if (r.response != VIRTIO_SCSI_S_OK && r.response != VIRTIO_SCSI_S_OVERRUN) std::abort();
  if (r.response == VIRTIO_SCSI_S_OVERRUN && (!r.data_in.empty() || !r.sense.empty())) {
    std::abort();  // nothing was transferred
  }
  if (r.status == kStatusCheckCondition) {
    CheckSense(r.sense);
    if (!r.data_in.empty()) std::abort();
  } else if (!r.sense.empty()) {
    std::abort();  // sense data only with CHECK CONDITION
  }
  if (r.status != kStatusGood && r.status != kStatusCheckCondition &&
      r.status != kStatusReservationConflict) {
    std::abort();
  }
  if (!r.abort_nexuses.empty() &&
      (request.cdb.empty() || request.cdb[0] != PERSISTENT_RESERVE_OUT ||
       r.status != kStatusGood)) {
    std::abort();  // only a PREEMPT AND ABORT that succeeded aborts other nexuses' commands
  }
}

// The saved state of the reservations reads back as the same state.
void CheckRoundTrip(const PersistentReservations& reservations) {
  const std::vector<uint8_t> bytes = reservations.Serialize();
  PersistentReservations copy;
  if (!copy.Deserialize(bytes).ok() || copy.Serialize() != bytes) std::abort();
}

void Fuzz(FuzzInput& in) {
  const uint8_t config = in.Take<uint8_t>();
  const bool read_only = config & 0x01;
  const bool discard = config & 0x02;
  const bool with_reservations = config & 0x04;
  const bool with_store = config & 0x08;
  const uint32_t block_size = (config & 0x10) ? 4096 : 512;
  const uint64_t blocks = in.Take<uint8_t>() % (kMaxBlocks + 1);
  MemoryBackend backend(block_size, blocks, read_only, discard);
  for (uint64_t i = 0; i < blocks; i += 7) *backend.at(i * block_size) = static_cast<uint8_t>(i);

  MemoryStore store;
  if (config & 0x40) {  // a state file the input wrote (corrupt, or a valid one mutated)
    store.bytes_.resize(in.Take<uint8_t>());
    store.bytes_.resize(in.TakeBytes(store.bytes_.data(), store.bytes_.size()));
  }
  auto reservations = std::make_unique<PersistentReservations>(with_store ? &store : nullptr);
  (void)reservations->Load();  // a bad state file is refused, and the unit starts empty

  LunIdentity identity;
  if (config & 0x80) {
    identity.serial = "SERIAL0123456789";
    identity.wwn = 0x5000c50012345678;
  }
  ScsiLun lun(&backend, identity);
  if (with_reservations) lun.set_reservations(reservations.get());
  if (config & 0x20) lun.set_descriptor_sense(true);

  std::vector<uint8_t> cdb, data_out, data_in;
  while (in.remaining() > 0) {
    const uint8_t op = in.Take<uint8_t>();
    switch (op >> 5) {
      case 0: {  // a unit attention, as a reset or a grown disk leaves
        lun.SetUnitAttention(kAttentions[op % 4]);
        continue;
      }
      case 1: {  // the backing changed size (SIGHUP's Refresh)
        backend.set_blocks(in.Take<uint8_t>() % (kMaxBlocks + 1));
        lun.SetUnitAttention(kCapacityDataChanged);
        continue;
      }
      case 2: {  // the daemon restarts: the reservations come back from the store
        if (!with_store) continue;
        store.fail_ = op & 1;  // and later saves fail
        auto restarted = std::make_unique<PersistentReservations>(&store);
        const bool loaded = restarted->Load().ok();
        if (store.ours_ && !loaded) std::abort();  // a state Save wrote must load
        if (!loaded) continue;
        reservations = std::move(restarted);
        if (with_reservations) lun.set_reservations(reservations.get());
        continue;
      }
      default:
        break;
    }
    // A command: op's low bits pick the nexus and how it runs.
    const NexusId nexus = op & 0x03;
    const bool async = op & 0x04;
    const bool pick_opcode = op & 0x08;
    const bool io_fails = op & 0x10;
    cdb.assign(in.Take<uint8_t>() % 33, 0);
    in.TakeBytes(cdb.data(), cdb.size());
    if (pick_opcode && !cdb.empty()) cdb[0] = kOpcodes[cdb[0] % sizeof(kOpcodes)];
    // Data-out: the bytes the initiator sent; by reference (only data_out_size) for a WRITE
    // when the device would not copy it.
    const uint16_t out_len = in.Take<uint16_t>();
    // (The largest: COMPARE AND WRITE's 2 x 32 blocks.)
    data_out.assign((out_len & 0x8000) ? 2 * 32 * block_size : out_len & 0x1fff, 0);
    in.TakeBytes(data_out.data(), data_out.size());
    const uint16_t in_len = in.Take<uint16_t>();
    const size_t data_in_size = (in_len & 0x8000) ? (in_len & 0x7fff) * 8 : in_len;

    ScsiRequest request;
    request.cdb = cdb;
    request.nexus = nexus;
    request.data_in_size = data_in_size;
    request.data_out = data_out;
    backend.set_fail(io_fails);

    ScsiResponse response;
    if (!async) {
      response = lun.Execute(request);
    } else {
      if (!cdb.empty() && !ScsiLun::NeedsDataOutCopy(cdb[0])) {
        request.data_out_size = data_out.size();
        request.data_out = {};
      }
      std::variant<ScsiResponse, BlockIo> prepared = lun.Prepare(request);
      if (ScsiResponse* r = std::get_if<ScsiResponse>(&prepared)) {
        response = std::move(*r);
      } else {
        const BlockIo& io = std::get<BlockIo>(prepared);
        int64_t result = 0;
        switch (io.kind) {
          case BlockIo::kRead:
            if (io.length == 0 || io.length > data_in_size) std::abort();
            data_in.resize(io.length);
            result = backend.Read(io.offset, absl::MakeSpan(data_in)).ok() ? io.length : -5;
            break;
          case BlockIo::kWrite:
            if (io.length == 0 || io.length > data_out.size()) std::abort();
            result =
                backend.Write(io.offset, absl::MakeConstSpan(data_out).first(io.length), io.fua)
                        .ok()
                    ? io.length
                    : -5;
            break;
          case BlockIo::kFlush:
            result = backend.Flush().ok() ? 0 : -5;
            break;
        }
        response = lun.CompleteIo(io, result);
        if (response.status == kStatusGood && !response.data_in.empty()) std::abort();
      }
    }
    CheckResponse(response, request);
    backend.set_fail(false);
    CheckRoundTrip(*reservations);
  }
}

}  // namespace
}  // namespace vhost::scsi

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bool quiet = [] {
    FLAGS_minloglevel = 3;  // the unit logs every bad command; expected here
    return true;
  }();
  (void)quiet;
  vhost::FuzzInput in(data, size);
  vhost::scsi::Fuzz(in);
  return 0;
}
