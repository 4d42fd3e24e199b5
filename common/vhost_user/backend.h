// The vhost-user connection state machine: feature and protocol-feature negotiation, the memory
// table, ring setup and start/stop, config space, status, reset, and the back-end channel.
// It turns front-end messages into calls on a VirtioDevice and runs one QueueWorker per started
// queue. Everything here runs on the connection thread.
#ifndef COMMON_VHOST_USER_BACKEND_H_
#define COMMON_VHOST_USER_BACKEND_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "common/device/device.h"
#include "common/device/queue_context.h"
#include "common/device/queue_worker.h"
#include "common/device/work_pool.h"
#include "common/vhost_user/channel.h"
#include "common/vhost_user/message.h"
#include "common/vhost_user/state_transfer.h"
#include "common/virtio/dirty_log.h"
#include "common/virtio/guest_memory.h"
#include "common/virtio/queue_stats.h"
#include "common/virtio/virtqueue.h"

namespace vhost {

// Memory slots offered with CONFIGURE_MEM_SLOTS (what QEMU's own back ends offer).
constexpr uint64_t kMaxMemSlots = 509;
// virtio device status bit the back end sets when a queue broke.
constexpr uint8_t kStatusNeedsReset = 0x40;

struct BackendOptions {
  absl::Duration busy_poll = absl::ZeroDuration();
  // Offer VIRTIO_F_RING_PACKED (see --packed-ring for why it is off by default).
  bool offer_packed_ring = false;
  // A device state transfer (SET_DEVICE_STATE_FD) not ended by then fails; CHECK_DEVICE_STATE
  // waits at most that long for it.
  absl::Duration state_transfer_timeout = absl::Seconds(30);
  // The largest device state loaded: a front end cannot make the back end hold more.
  size_t max_device_state_bytes = 64 << 20;
};

class Backend {
 public:
  Backend(VirtioDevice* device, BackendOptions options);
  ~Backend();

  // Serves one connected front end until it disconnects or misbehaves. When `wake_fd` becomes
  // readable, `on_wake` runs; if it returns true serving stops. Returns OK on a clean disconnect,
  // CancelledError when stopped, else the reason the connection was dropped. Either way the
  // device is reset afterwards, ready for the next front end.
  absl::Status Serve(UniqueFd connection, int wake_fd, const std::function<bool()>& on_wake);

  // Handles one validated message; returns the reply to send, if any. Exposed for tests/fuzzing.
  absl::StatusOr<absl::optional<Message>> Handle(Message& message);

  // Drops all connection state: stops queues, unmaps memory, resets the device.
  void Reset();

  uint64_t OfferedFeatures() const;
  uint64_t OfferedProtocolFeatures() const;

  // What the queues have done since the daemon started, and how many front ends it served and
  // device resets it went through, as one line of JSON (the stats socket's format, see the
  // README). Any thread may call it while the back end serves.
  std::string StatsJson() const;

 private:
  struct Vring {
    VringLayout layout;
    bool addr_set = false;
    bool started = false;  // a kick fd (or no-fd flag) arrived and GET_VRING_BASE has not
    bool enabled = false;
    // SET_VRING_ADDR's VHOST_VRING_F_LOG and log_guest_addr: where used-ring writes are logged.
    bool log_ring = false;
    uint64_t log_guest_addr = 0;
    UniqueFd kick, call, err;
    // Destroyed in reverse: the worker, then the context (it refers to the queue), the queue.
    std::unique_ptr<Virtqueue> queue;
    std::unique_ptr<QueueContext> context;
    bool serving = false;  // the device was told QueueStarted and not yet QueueStopped
    std::unique_ptr<QueueWorker> worker;
  };

  absl::StatusOr<Vring*> VringAt(uint32_t index);
  bool has_protocol(uint32_t bit) const { return acked_protocol_ & Bit(bit); }
  absl::Status MaybeStartQueue(uint32_t index);
  void StopWorker(uint32_t index);
  // Stops the worker and tells the device the queue stopped serving; returns once nothing is in
  // flight. The queue and its position stay.
  void StopServing(uint32_t index);
  void StartAllEligible();
  absl::Status ReplaceMemory(std::shared_ptr<const GuestMemory> memory);
  absl::Status NotifyConfigChange();
  // Points queue `index` at the dirty log (or none), its worker paused meanwhile: no worker
  // marks a log after it was replaced or dropped.
  void ApplyDirtyLog(uint32_t index);
  absl::StatusOr<Message> SetLogBase(Message& message);

  absl::Status SetFeatures(uint64_t features);
  absl::Status SetMemTable(Message& message);
  absl::Status AddMemReg(Message& message);
  absl::Status RemMemReg(const Message& message);
  absl::Status SetVringNum(const VringState& state);
  absl::Status SetVringAddr(const VringAddr& addr);
  absl::Status SetVringBase(const VringState& state);
  absl::StatusOr<uint32_t> GetVringBase(uint32_t index);
  absl::Status SetVringFd(FrontendRequest request, uint64_t value, Message& message);
  absl::Status SetVringEnable(const VringState& state);
  absl::StatusOr<Message> GetInflightFd(const Message& message);
  absl::Status SetInflightFd(Message& message);
  void UnmapInflight();
  Message SetDeviceStateFd(Message& message);
  uint64_t CheckDeviceState();
  absl::StatusOr<Message> GetConfig(const Message& message);
  absl::Status SetConfig(const Message& message);
  void ResetDevice();

  VirtioDevice* const device_;
  const DeviceInfo info_;
  const BackendOptions options_;

  uint64_t acked_features_ = 0;
  uint64_t acked_protocol_ = 0;
  uint8_t status_ = 0;
  std::shared_ptr<const GuestMemory> memory_;
  std::unique_ptr<WorkPool> pool_;  // see StartPool; declared before the queues that use it
  // The thread serving every queue, for a device with DeviceInfo::one_worker (else null);
  // declared before the queues' workers, which it serves.
  std::unique_ptr<WorkerGroup> worker_group_;
  std::vector<Vring> vrings_;
  // One per queue, for the back end's lifetime: the queues count into them across restarts.
  std::unique_ptr<QueueStats[]> queue_stats_;
  StatCounter connections_;  // front ends served (counted by the connection thread)
  StatCounter resets_;       // device resets: the front end's, and at each disconnect
  // The front end's inflight region (SET_INFLIGHT_FD), mapped until the connection ends; the
  // queue contexts track into it.
  struct InflightRegion {
    uint8_t* base = nullptr;
    size_t size = 0;
    uint16_t num_queues = 0;
    uint16_t queue_size = 0;
  };
  InflightRegion inflight_;
  // The front end's dirty log (SET_LOG_BASE), mapped until replaced or the connection ends; the
  // queues mark it while VHOST_F_LOG_ALL is negotiated.
  std::unique_ptr<DirtyLog> log_;
  // The device state transfer SET_DEVICE_STATE_FD started, until CHECK_DEVICE_STATE.
  std::unique_ptr<StateTransfer> transfer_;
  bool transfer_loads_ = false;
  absl::Status saved_;  // saving: whether the device gave its state

  absl::Mutex backend_channel_mutex_;
  std::unique_ptr<Channel> backend_channel_ ABSL_GUARDED_BY(backend_channel_mutex_);
};

}  // namespace vhost

#endif  // COMMON_VHOST_USER_BACKEND_H_
