// virtio-scsi (virtio 1.2 §5.6): a SCSI host adapter with many targets and logical units. Queue
// 0 takes task management functions and asynchronous-notification requests, queue 1 carries
// events to the guest (LUNs added, removed or resized), queues 2.. carry commands, each served
// asynchronously on its own disk queues. The command set is ScsiLun's; this file is the
// transport: requests, LUN addressing, REPORT LUNS, task management and events.
#ifndef VHOST_USER_SCSI_SCSI_DEVICE_H_
#define VHOST_USER_SCSI_SCSI_DEVICE_H_

#include <linux/virtio_scsi.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/block/disk.h"
#include "common/device/device.h"
#include "vhost-user-scsi/logical_unit.h"

namespace vhost::scsi {

inline constexpr uint32_t kVirtioIdScsi = 8;
inline constexpr uint32_t kControlQueue = 0;
inline constexpr uint32_t kEventQueue = 1;
inline constexpr uint32_t kFirstRequestQueue = 2;

struct ScsiOptions {
  uint32_t num_queues = 1;  // request queues
  uint32_t max_queue_size = 1024;
  bool io_uring = true;  // each request queue's ring on io_uring where the kernel allows
};

// A logical unit and its disk, as main() opens them.
struct UnitToServe {
  LunSpec spec;
  std::unique_ptr<Disk> disk;
};

class ScsiDevice : public VirtioDevice {
 public:
  // Disk queues are made here, before the daemon's seccomp filter, which forbids new io_uring
  // rings. Fails if a disk cannot make its queues.
  static absl::StatusOr<std::unique_ptr<ScsiDevice>> Create(std::vector<UnitToServe> units,
                                                            ScsiOptions options);

  DeviceInfo Info() const override;
  absl::Status SetFeatures(uint64_t features) override;
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  absl::Status QueueStarted(QueueContext& context) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  bool HasCompletions(QueueContext& context) override;
  void QueueStopped(QueueContext& context) override;
  void Reset() override;
  // SIGHUP: every unit re-reads its disk's size; a grown one gets CAPACITY DATA HAS CHANGED
  // and, with VIRTIO_SCSI_F_CHANGE, a parameter-change event the guest rescans on.
  void Reload() override;

  // The events not yet delivered (for tests).
  size_t pending_events();

 private:
  struct Unit {
    std::unique_ptr<LogicalUnit> unit;
    // By request queue: the unit's view of that queue's ring.
    std::vector<std::unique_ptr<DiskQueue>> io;
  };
  // A command in its data phase, at a fixed place (by ChainToken) so its buffers stay put.
  struct Command {
    Unit* unit = nullptr;
    BlockIo io;
    uint64_t tag = 0;
    uint64_t data_in_room = 0;    // writable bytes after the response header
    uint64_t data_out_bytes = 0;  // readable bytes after the request header
    IovecList buffers;
  };
  struct RequestQueue {
    // Shared by every unit: a unit added at run time needs no new ring (which the seccomp
    // filter forbids), only a view of this one.
    std::unique_ptr<IoRing> ring;
    std::vector<Command> commands;    // by ChainToken, sized in QueueStarted
    std::vector<uint8_t> parameters;  // a command's data-out copy (parameter lists)
    bool submitted = false;           // I/O queued on the ring, not yet committed
  };
  // A task management function waiting for its logical unit's tasks to finish.
  struct PendingTmf {
    ChainToken token;
    Unit* unit;
    uint32_t subtype;
  };

  ScsiDevice(std::vector<Unit> units, std::vector<std::unique_ptr<IoRing>> rings,
             ScsiOptions options);
  static uint32_t Key(uint32_t target, uint32_t lun) { return target << 16 | lun; }
  // The unit a request's 8-byte LUN field names; `target_exists` says whether its target has
  // any unit (BAD_TARGET otherwise).
  Unit* Find(const uint8_t lun[8], bool* target_exists);

  // Request queues.
  void StartCommand(RequestQueue& queue, QueueContext& context, ChainToken token, uint32_t q);
  void Respond(QueueContext& context, ChainToken token, const ScsiResponse& response,
               uint64_t resid);
  void OnIoDone(RequestQueue& queue, QueueContext& context, uint64_t token, int64_t result);
  void Reap(RequestQueue& queue, QueueContext& context, bool drain);
  ScsiResponse ReportLuns(const uint8_t* cdb, uint32_t target, uint64_t room);
  ScsiResponse NoSuchLun(const uint8_t* cdb, uint64_t room);

  // The control queue.
  void ServeControl(QueueContext& context);
  bool FinishTmf(QueueContext& context, const PendingTmf& tmf, bool force);
  void WakeControl();

  // The event queue.
  void QueueEvent(uint32_t event, uint32_t target, uint32_t lun, uint32_t reason);
  QueueResult DeliverEvents(QueueContext& context);

  const ScsiOptions options_;
  std::vector<Unit> units_;
  absl::flat_hash_map<uint32_t, Unit*> by_address_;
  std::vector<bool> targets_;  // by target: has a unit
  std::vector<std::unique_ptr<RequestQueue>> request_queues_;
  uint64_t features_ = 0;

  std::vector<PendingTmf> pending_tmfs_;  // control queue's thread only
  absl::Mutex contexts_mu_;
  QueueContext* control_context_ ABSL_GUARDED_BY(contexts_mu_) = nullptr;
  QueueContext* event_context_ ABSL_GUARDED_BY(contexts_mu_) = nullptr;
  absl::Mutex events_mu_;
  std::deque<virtio_scsi_event> events_ ABSL_GUARDED_BY(events_mu_);
  bool events_missed_ ABSL_GUARDED_BY(events_mu_) = false;
};

}  // namespace vhost::scsi

#endif  // VHOST_USER_SCSI_SCSI_DEVICE_H_
