// A guest-side SCMI agent on our front end (virtio-scmi, virtio 1.2 §5.17), for tests of
// vhost-user-scmi: commands on the command queue (queue 0) and their replies, one at a time, and
// the event queue's messages (queue 1: notifications and delayed responses), whose buffers it
// keeps posted. Words on the wire are little-endian (this agent runs on little-endian hosts).
#ifndef TESTS_FRONTEND_SCMI_AGENT_H_
#define TESTS_FRONTEND_SCMI_AGENT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/frontend/daemon_fixture.h"

namespace vhost::frontend {

// The SCMI message header's fields packed (message id bits[7:0], type [9:8], protocol [17:10],
// token [27:18]).
uint32_t ScmiHeader(uint8_t protocol, uint8_t message_id, uint16_t token = 0, uint8_t type = 0);

struct ScmiReply {
  uint32_t header = 0;
  int32_t status = 0;
  std::vector<uint8_t> values;  // the return values after the status
  uint32_t len = 0;             // bytes the device wrote

  // Return value word `i` (0 if the reply is shorter).
  uint32_t Word(size_t i) const;
  // The NUL-terminated string at byte `offset` of the return values.
  std::string Name(size_t offset) const;
};

class ScmiAgent {
 public:
  // The reply buffer Linux's virtio transport gives each command: header, status, 128 bytes.
  static constexpr uint32_t kRoom = 136;

  // Connects to the session's daemon: with the event queue (VIRTIO_SCMI_F_P2A_CHANNELS)
  // negotiated if `p2a`, and `event_buffers` buffers of kRoom bytes posted on it.
  static absl::StatusOr<std::unique_ptr<ScmiAgent>> Connect(const DaemonSession& session,
                                                            bool p2a = true,
                                                            int event_buffers = 16);

  // Sends a command with `params` and `room` reply bytes; waits for the reply.
  absl::StatusOr<ScmiReply> Call(uint8_t protocol, uint8_t message_id,
                                 const std::vector<uint32_t>& params = {}, uint32_t room = kRoom);
  // The same with raw request bytes (the header included), for malformed commands.
  absl::StatusOr<ScmiReply> CallRaw(const std::vector<uint8_t>& request, uint32_t room = kRoom);
  // The next message the device put on the event queue (its buffer is posted again).
  absl::StatusOr<std::vector<uint32_t>> WaitForEvent(absl::Duration timeout);

  DeviceConnection* device() { return device_.get(); }

 private:
  ScmiAgent() = default;
  absl::Status PostEventBuffer(uint32_t slot);

  std::unique_ptr<DeviceConnection> device_;
  uint64_t request_gpa_ = 0, reply_gpa_ = 0, events_gpa_ = 0;
  uint8_t* request_ = nullptr;
  uint8_t* reply_ = nullptr;
  uint8_t* events_ = nullptr;
  uint16_t token_ = 0;
  std::vector<uint32_t> slot_of_id_;  // event queue: descriptor id -> buffer slot
};

}  // namespace vhost::frontend

#endif  // TESTS_FRONTEND_SCMI_AGENT_H_
