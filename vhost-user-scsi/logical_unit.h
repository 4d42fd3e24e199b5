// One logical unit as the virtio-scsi device serves it: its disk, the SCSI command set on top
// (ScsiLun) and the tasks in flight, which the task management functions wait for. Several
// request queues (threads) use a unit at once: the command set's state (unit attentions, mode
// pages, reservations) is behind the unit's lock; the data phase runs outside it, on each
// queue's own disk queue.
#ifndef VHOST_USER_SCSI_LOGICAL_UNIT_H_
#define VHOST_USER_SCSI_LOGICAL_UNIT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <variant>

#include "absl/status/statusor.h"
#include "common/block/disk.h"
#include "vhost-user-scsi/lun_spec.h"
#include "vhost-user-scsi/persistent_reservations.h"
#include "vhost-user-scsi/scsi_lun.h"

namespace vhost::scsi {

class LogicalUnit {
 public:
  // `disk` serves the data; the unit makes a synchronous ring of its own for the rare commands
  // that read or write on the command's thread (WRITE SAME with a pattern, COMPARE AND WRITE,
  // VERIFY with BYTCHK).
  // `store` (or null: APTPL refused) holds the reservations across restarts; what it holds is
  // loaded here.
  static absl::StatusOr<std::unique_ptr<LogicalUnit>> Create(
      const LunSpec& spec, std::unique_ptr<Disk> disk,
      std::unique_ptr<ReservationStore> store = nullptr);
  ~LogicalUnit();

  const LunSpec& spec() const { return spec_; }
  Disk& disk() { return *disk_; }
  uint32_t block_size() const { return spec_.block_size; }

  // The command set, under the unit's lock. A command that goes on to the data phase counts as
  // a task in flight until CompleteIo (the device knows which tags they have).
  std::variant<ScsiResponse, BlockIo> Prepare(const ScsiRequest& request);
  // Ends the task; `*now_idle` says whether it was the last one while a task management
  // function waits for the unit to go idle (the caller wakes it). A successful one takes no
  // lock: the hot path of every READ and WRITE.
  ScsiResponse CompleteIo(const BlockIo& io, int64_t result, bool* now_idle);

  // For task management functions.
  size_t tasks() const { return tasks_.load(); }
  // Whether the unit is idle now; if not, the next CompleteIo that makes it idle reports it.
  bool IdleOrNotify();
  void SetUnitAttention(const Sense& sense);

  // Re-reads the disk's size (the image grew). Returns whether it changed; the unit then has
  // the CAPACITY DATA HAS CHANGED unit attention queued.
  absl::StatusOr<bool> Refresh();

 private:
  class DiskBackend;
  LogicalUnit(const LunSpec& spec, std::unique_ptr<Disk> disk,
              std::unique_ptr<ReservationStore> store);

  const LunSpec spec_;
  std::unique_ptr<Disk> disk_;
  std::unique_ptr<DiskBackend> backend_;
  // Held twice per command (Prepare, CompleteIo), briefly: a plain futex lock. absl::Mutex
  // costs a third of the daemon's CPU here (its deadlock detector, in Debian's build).
  std::mutex mu_;
  const std::unique_ptr<ReservationStore> store_;
  // Guarded by mu_:
  PersistentReservations reservations_;
  ScsiLun lun_;
  // Lock-free, so that completions need no lock (see IdleOrNotify for how they pair).
  std::atomic<size_t> tasks_{0};
  std::atomic<bool> notify_idle_{false};
};

}  // namespace vhost::scsi

#endif  // VHOST_USER_SCSI_LOGICAL_UNIT_H_
