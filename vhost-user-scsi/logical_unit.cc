#include "vhost-user-scsi/logical_unit.h"

#include <sys/uio.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace vhost::scsi {

// ScsiLun's view of the disk. Capacity is read by request queues while SIGHUP's Refresh changes
// it: atomic. Read/Write/Flush are the rare synchronous commands, run on the unit's own
// synchronous queue (the data phase of READ/WRITE goes through each request queue's disk queue).
class LogicalUnit::DiskBackend : public BlockBackend {
 public:
  // The synchronous ring has no fd: made at any time, after the seccomp filter too.
  DiskBackend(Disk* disk, const LunSpec& spec)
      : disk_(disk),
        block_size_(spec.block_size),
        read_only_(spec.read_only),
        blocks_(disk->size_bytes() / spec.block_size),
        sync_ring_(IoRing::Create(1, /*use_io_uring=*/false)),
        sync_queue_(disk->NewQueue(*sync_ring_)) {}

  uint64_t num_blocks() const override { return blocks_.load(std::memory_order_relaxed); }
  void set_num_blocks(uint64_t blocks) { blocks_.store(blocks, std::memory_order_relaxed); }
  uint32_t block_size() const override { return block_size_; }
  bool read_only() const override { return read_only_; }
  // Files punch holes, block devices BLKDISCARD; where neither works the data stays, which
  // UNMAP allows (it is a hint).
  bool supports_discard() const override { return true; }

  absl::Status Read(uint64_t offset, absl::Span<uint8_t> data) override {
    return Run(sync_queue_->SubmitRead(Iov(data.data(), data.size()), offset, 0), data.size());
  }
  absl::Status Write(uint64_t offset, absl::Span<const uint8_t> data, bool fua) override {
    return Run(sync_queue_->SubmitWrite(Iov(const_cast<uint8_t*>(data.data()), data.size()), offset,
                                        fua, 0),
               data.size());
  }
  absl::Status Flush() override { return Run(sync_queue_->SubmitFlush(0), 0); }
  absl::Status Discard(uint64_t offset, uint64_t length) override {
    absl::Status s = disk_->Discard(offset, length);
    return absl::IsUnimplemented(s) ? absl::OkStatus() : s;
  }
  absl::Status WriteZeroes(uint64_t offset, uint64_t length, bool unmap) override {
    return disk_->WriteZeroes(offset, length, unmap);
  }

 private:
  static IovecList Iov(uint8_t* data, size_t size) {
    IovecList iov;
    iov.push_back({data, size});
    return iov;
  }
  absl::Status Run(bool submitted, uint64_t expected) {
    if (!submitted) return absl::ResourceExhaustedError("no room on the synchronous queue");
    sync_ring_->Commit();
    int64_t result = -EIO;
    sync_ring_->Drain([&](uint64_t, int64_t r) { result = r; });
    if (result < 0 || static_cast<uint64_t>(result) != expected) {
      return absl::DataLossError(absl::StrCat("synchronous I/O returned ", result));
    }
    return absl::OkStatus();
  }

  Disk* const disk_;
  const uint32_t block_size_;
  const bool read_only_;
  std::atomic<uint64_t> blocks_;
  const std::unique_ptr<IoRing> sync_ring_;
  const std::unique_ptr<DiskQueue> sync_queue_;
};

absl::StatusOr<std::unique_ptr<LogicalUnit>> LogicalUnit::Create(
    const LunSpec& spec, std::unique_ptr<Disk> disk, std::unique_ptr<ReservationStore> store) {
  std::unique_ptr<LogicalUnit> unit(new LogicalUnit(spec, std::move(disk), std::move(store)));
  std::lock_guard<std::mutex> lock(unit->mu_);
  if (absl::Status s = unit->reservations_.Load(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(spec.pr_state, ": ", s.message()));
  }
  return unit;
}

LogicalUnit::LogicalUnit(const LunSpec& spec, std::unique_ptr<Disk> disk,
                         std::unique_ptr<ReservationStore> store)
    : spec_(spec),
      disk_(std::move(disk)),
      backend_(std::make_unique<DiskBackend>(disk_.get(), spec_)),
      store_(std::move(store)),
      reservations_(store_.get()),
      lun_(backend_.get(), spec_.identity) {
  lun_.set_reservations(&reservations_);
}

LogicalUnit::~LogicalUnit() = default;

std::variant<ScsiResponse, BlockIo> LogicalUnit::Prepare(const ScsiRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  std::variant<ScsiResponse, BlockIo> prepared = lun_.Prepare(request);
  if (std::holds_alternative<BlockIo>(prepared)) tasks_.fetch_add(1);
  return prepared;
}

ScsiResponse LogicalUnit::CompleteIo(const BlockIo& io, int64_t result, bool* now_idle) {
  // The last task out tells a waiting task management function. Sequentially consistent with
  // IdleOrNotify's store-then-load: either it sees no task left, or this sees its flag.
  // (The load first spares a locked exchange on every completion but the one that wakes.)
  *now_idle = tasks_.fetch_sub(1) == 1 && notify_idle_.load() && notify_idle_.exchange(false);
  if (result >= 0) return ScsiResponse{};
  std::lock_guard<std::mutex> lock(mu_);  // the sense format is the unit's state
  return lun_.CompleteIo(io, result);
}

bool LogicalUnit::IdleOrNotify() {
  notify_idle_.store(true);
  if (tasks_.load() != 0) return false;
  notify_idle_.store(false);
  return true;
}

void LogicalUnit::SetUnitAttention(const Sense& sense) {
  std::lock_guard<std::mutex> lock(mu_);
  lun_.SetUnitAttention(sense);
}

absl::StatusOr<bool> LogicalUnit::Refresh() {
  absl::StatusOr<uint64_t> size = disk_->Refresh();
  if (!size.ok()) return size.status();
  const uint64_t blocks = *size / spec_.block_size;
  if (blocks == backend_->num_blocks()) return false;
  LOG(INFO) << "target " << spec_.target << " LUN " << spec_.lun << ": " << backend_->num_blocks()
            << " -> " << blocks << " blocks";
  backend_->set_num_blocks(blocks);
  SetUnitAttention(kCapacityDataChanged);
  return true;
}

}  // namespace vhost::scsi
