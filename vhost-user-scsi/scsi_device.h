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
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/base/unique_fd.h"
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
  std::unique_ptr<ReservationStore> reservations;  // spec.pr_state, opened; or null
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

  // LUNs added and removed while the guest runs (the control socket's commands): the guest
  // hears of them through TRANSPORT_RESET events (VIRTIO_SCSI_F_HOTPLUG) and the other LUNs of
  // the target report REPORTED LUNS DATA HAS CHANGED. Any thread.
  absl::Status AddUnit(UnitToServe unit);
  absl::Status RemoveUnit(uint32_t target, uint32_t lun);
  // One control-socket line: "add SPEC" (the --lun syntax; a file LUN comes as the descriptors
  // sent with the line: the file, and optionally the same file opened with O_DIRECT; file=
  // only names it), "remove target=T,lun=L", "list". Answers "target=T lun=L" for add.
  absl::StatusOr<std::string> Control(absl::string_view line, std::vector<UniqueFd>& fds);

  // The events not yet delivered (for tests).
  size_t pending_events();

 private:
  struct Unit {
    std::unique_ptr<LogicalUnit> unit;
    // By request queue: the unit's view of that queue's ring.
    std::vector<std::unique_ptr<DiskQueue>> io;
  };
  // The units served, replaced whole when one is added or removed: a request queue keeps the
  // table it last saw (and so every unit in it) until its next turn, and a command in flight
  // keeps its unit.
  struct UnitTable {
    absl::flat_hash_map<uint32_t, std::shared_ptr<Unit>> by_address;
    std::vector<uint32_t> units_per_target = std::vector<uint32_t>(kMaxTarget + 1, 0);
  };
  // A command in its data phase, at a fixed place (by ChainToken) so its buffers stay put.
  struct Command {
    std::shared_ptr<Unit> unit;
    // What QUERY TASK reads from the control queue's thread while the command is in its data
    // phase (the unit is set last and cleared first).
    std::atomic<const Unit*> active_unit{nullptr};
    std::atomic<uint64_t> active_tag{0};
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
    // By ChainToken: one per ring entry of the largest ring, made once so that QUERY TASK can
    // read them from another thread at any time.
    std::unique_ptr<Command[]> commands;
    std::vector<uint8_t> parameters;         // a command's data-out copy (parameter lists)
    std::shared_ptr<const UnitTable> table;  // as of this queue's last turn
    uint64_t table_generation = 0;
    bool submitted = false;  // I/O queued on the ring, not yet committed
  };
  // A task management function waiting for its logical unit's tasks to finish.
  struct PendingTmf {
    ChainToken token;
    std::shared_ptr<Unit> unit;
    uint32_t subtype;
  };

  ScsiDevice(std::vector<std::unique_ptr<IoRing>> rings, ScsiOptions options);
  // A unit with its views of every request queue's ring (no syscall: after the filter too).
  absl::StatusOr<std::shared_ptr<Unit>> MakeUnit(UnitToServe unit);
  // Serves the unit; `announce`: tell the guest (hotplug) rather than start with it.
  absl::Status Insert(UnitToServe unit, bool announce);
  std::shared_ptr<const UnitTable> Table();
  static uint32_t Key(uint32_t target, uint32_t lun) { return target << 16 | lun; }
  // The unit a request's 8-byte LUN field names; `target_exists` says whether its target has
  // any unit (BAD_TARGET otherwise).
  static const std::shared_ptr<Unit>* Find(const UnitTable& table, const uint8_t lun[8],
                                           bool* target_exists);

  // Request queues.
  void StartCommand(RequestQueue& queue, QueueContext& context, ChainToken token, uint32_t q);
  void Respond(QueueContext& context, ChainToken token, const ScsiResponse& response,
               uint64_t resid);
  void OnIoDone(RequestQueue& queue, QueueContext& context, uint64_t token, int64_t result);
  void Reap(RequestQueue& queue, QueueContext& context, bool drain);
  // Whether a command of `unit` with `tag` is in its data phase on any request queue.
  bool HasTask(const Unit* unit, uint64_t tag) const;
  static ScsiResponse ReportLuns(const UnitTable& table, const uint8_t* cdb, uint32_t target,
                                 uint64_t room);
  ScsiResponse NoSuchLun(const uint8_t* cdb, uint64_t room);

  // The control queue.
  void ServeControl(QueueContext& context);
  bool FinishTmf(QueueContext& context, const PendingTmf& tmf, bool force, const UnitTable& table);
  void WakeControl();

  // The event queue.
  void QueueEvent(uint32_t event, uint32_t target, uint32_t lun, uint32_t reason);
  QueueResult DeliverEvents(QueueContext& context);

  const ScsiOptions options_;
  std::vector<std::unique_ptr<RequestQueue>> request_queues_;
  std::atomic<uint64_t> features_{0};
  absl::Mutex table_mu_;
  std::shared_ptr<const UnitTable> table_ ABSL_GUARDED_BY(table_mu_);
  std::atomic<uint64_t> table_generation_{1};

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
