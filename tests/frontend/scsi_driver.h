// A guest-side virtio-scsi driver on our front end (virtio 1.2 §5.6), for tests and benchmarks of
// vhost-user-scsi: command requests (request header, data-out, response header, data-in) laid out
// in guest memory, control-queue requests (task management, asynchronous notification), event
// buffers, and ScsiDriver, which connects, posts the event buffers and runs commands one at a time.
//
// Queues: 0 control, 1 event, 2.. request. "Request queue i" below is virtqueue 2 + i.
#ifndef TESTS_FRONTEND_SCSI_DRIVER_H_
#define TESTS_FRONTEND_SCSI_DRIVER_H_

#include <linux/virtio_scsi.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/types/span.h"
#include "common/testing/driver_ring.h"
#include "tests/frontend/daemon_fixture.h"
#include "tests/frontend/frontend.h"
#include "tests/frontend/guest_ram.h"
#include "tests/frontend/queue.h"

namespace vhost::frontend {

// VIRTIO_SCSI_S_FUNCTION_COMPLETE (virtio 1.2 §5.6.6.2), which <linux/virtio_scsi.h> lacks.
inline constexpr uint8_t kScsiFunctionComplete = 0;

// The 8-byte LUN field of a request (virtio 1.2 §5.6.6.1): 1, the target, the LUN in SAM's flat
// space addressing (0x4000 | lun, big-endian), zeroes.
std::array<uint8_t, 8> ScsiLunField(uint8_t target, uint16_t lun);

// One command request in guest memory. The response header is poisoned (0xff) until the device
// writes it, so a request never answered is visible.
struct ScsiCommand {
  uint64_t req_gpa = 0;
  virtio_scsi_cmd_req* req = nullptr;
  uint64_t resp_gpa = 0;
  virtio_scsi_cmd_resp* resp = nullptr;
  uint64_t data_out_gpa = 0;
  uint8_t* data_out = nullptr;
  uint32_t data_out_len = 0;
  uint64_t data_in_gpa = 0;
  uint8_t* data_in = nullptr;
  uint32_t data_in_len = 0;
  uint64_t indirect_gpa = 0;  // room for a 4-entry indirect table
  // The header lengths AddScsiCommand places; hostile tests shrink them (0: no such descriptor).
  uint32_t req_len = sizeof(virtio_scsi_cmd_req);
  uint32_t resp_len = sizeof(virtio_scsi_cmd_resp);
};

// Allocates the parts in `ram` (data buffers 512-byte aligned). The lengths may be lowered later
// (to reuse a larger command), never raised.
absl::StatusOr<ScsiCommand> AllocateScsiCommand(GuestRam* ram, uint32_t data_out_len,
                                                uint32_t data_in_len);

// Writes the request header (the CDB zero-padded to the 32-byte field) and poisons the response.
void SetScsiCdb(ScsiCommand* command, uint8_t target, uint16_t lun, absl::Span<const uint8_t> cdb,
                uint64_t tag = 0, uint8_t task_attr = VIRTIO_SCSI_S_SIMPLE);

// Adds the command to `ring`: request header then data-out readable, response header then data-in
// writable (virtio 1.2 §5.6.6: the device-readable part first). Optionally through its indirect
// table.
absl::StatusOr<uint16_t> AddScsiCommand(testing::DriverRing* ring, const ScsiCommand& command,
                                        bool indirect = false);

// The device's answer to a command, decoded from its response header.
struct ScsiResult {
  uint32_t used_len = 0;  // what the used element says the device wrote
  uint8_t response = 0xff;
  uint8_t status = 0xff;  // SAM status
  uint16_t status_qualifier = 0;
  uint32_t resid = 0;
  std::vector<uint8_t> sense;  // sense_len bytes (at most the 96 of the field)
  std::string data_in;         // the data-in bytes transferred: data_in_len - resid of them
};
ScsiResult ReadScsiResult(const ScsiCommand& command, uint32_t used_len);

// One control-queue request (TMF or AN) and its response, the response poisoned (0xff).
struct ScsiControl {
  uint64_t req_gpa = 0;
  uint8_t* req = nullptr;
  uint32_t req_len = 0;
  uint64_t resp_gpa = 0;
  uint8_t* resp = nullptr;
  uint32_t resp_len = 0;
  const virtio_scsi_ctrl_tmf_resp& tmf_resp() const {
    return *reinterpret_cast<const virtio_scsi_ctrl_tmf_resp*>(resp);
  }
  const virtio_scsi_ctrl_an_resp& an_resp() const {
    return *reinterpret_cast<const virtio_scsi_ctrl_an_resp*>(resp);
  }
};
absl::StatusOr<ScsiControl> AllocateScsiTmf(GuestRam* ram, uint32_t subtype, uint8_t target,
                                            uint16_t lun, uint64_t tag = 0);
// `type`: VIRTIO_SCSI_T_AN_QUERY or VIRTIO_SCSI_T_AN_SUBSCRIBE.
absl::StatusOr<ScsiControl> AllocateScsiAn(GuestRam* ram, uint32_t type, uint8_t target,
                                           uint16_t lun, uint32_t events_requested);
absl::StatusOr<uint16_t> AddScsiControl(testing::DriverRing* ring, const ScsiControl& control);

class ScsiDriver {
 public:
  static constexpr uint64_t kWantedFeatures =
      Bit(kFeatureVersion1) | Bit(kFeatureEventIdx) | Bit(kFeatureIndirectDesc) |
      Bit(VIRTIO_SCSI_F_HOTPLUG) | Bit(VIRTIO_SCSI_F_CHANGE);

  struct Options {
    uint32_t request_queues = 1;
    uint32_t queue_size = 128;
    uint64_t features = kWantedFeatures;
    uint64_t ram_size = 64 << 20;
    bool inflight = false;  // DeviceOptions::inflight
    uint32_t event_buffers = 8;
    uint32_t max_data = 1 << 20;  // per request queue: the largest data-out / data-in of Run()
    bool busy_poll = false;       // Run() spins on the used ring instead of sleeping
    absl::Duration timeout = absl::Seconds(10);
  };

  // Connects, negotiates, starts every queue and posts the event buffers.
  static absl::StatusOr<std::unique_ptr<ScsiDriver>> Start(const std::string& socket,
                                                           const Options& options);

  // Runs one command on request queue `queue` and waits for its completion: `data_out` sent,
  // room for `data_in_len` bytes back. Calls on different queues may run on different threads.
  absl::StatusOr<ScsiResult> Run(uint8_t target, uint16_t lun, absl::Span<const uint8_t> cdb,
                                 absl::Span<const uint8_t> data_out = {}, uint32_t data_in_len = 0,
                                 size_t queue = 0, uint64_t tag = 0);
  // Runs a command the caller laid out (any lengths, any queue) and waits for it.
  absl::StatusOr<ScsiResult> Run(const ScsiCommand& command, size_t queue = 0);

  // A TMF on the control queue, waited for; returns the response byte.
  absl::StatusOr<uint8_t> TaskManagement(uint32_t subtype, uint8_t target, uint16_t lun,
                                         uint64_t tag = 0);
  // AN_QUERY / AN_SUBSCRIBE, waited for.
  absl::StatusOr<virtio_scsi_ctrl_an_resp> AsyncNotification(uint32_t type, uint8_t target,
                                                             uint16_t lun, uint32_t events);
  // Waits for chain `id` on `queue`: an error if another completes first.
  absl::StatusOr<uint32_t> WaitFor(FrontendQueue* queue, uint16_t id);

  // The next event the device posted (its buffer goes back to the queue), nullopt if none yet.
  absl::StatusOr<absl::optional<virtio_scsi_event>> PollEvent();
  absl::StatusOr<virtio_scsi_event> WaitForEvent(absl::Duration timeout);

  absl::StatusOr<virtio_scsi_config> Config();

  DeviceConnection* device() { return device_.get(); }
  Frontend* frontend() { return device_->frontend(); }
  GuestRam* ram() { return device_->ram(); }
  FrontendQueue* control_queue() { return device_->queue(0); }
  FrontendQueue* event_queue() { return device_->queue(1); }
  FrontendQueue* request_queue(size_t i) { return device_->queue(2 + i); }
  const Options& options() const { return options_; }
  const DeviceOptions& device_options() const { return device_options_; }

 private:
  explicit ScsiDriver(const Options& options) : options_(options) {}
  absl::Status PostEvent(uint64_t gpa, virtio_scsi_event* event);
  // Reads the event of a used buffer and posts the buffer again.
  absl::StatusOr<virtio_scsi_event> TakeEvent(const UsedElement& used);

  Options options_;
  DeviceOptions device_options_;
  std::unique_ptr<DeviceConnection> device_;
  std::vector<ScsiCommand> scratch_;  // per request queue, for Run()
  std::map<uint16_t, std::pair<uint64_t, virtio_scsi_event*>> events_;  // posted, by chain id
};

}  // namespace vhost::frontend

#endif  // TESTS_FRONTEND_SCSI_DRIVER_H_
