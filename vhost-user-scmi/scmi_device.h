// virtio-scmi (virtio 1.2 §5.17): an SCMI platform (Arm DEN0056 3.x) for a guest agent. The
// command queue carries commands (header and parameters readable, then a writable buffer for
// the response: header, status, return values); with VIRTIO_SCMI_F_P2A_CHANNELS the event queue
// holds guest buffers the device fills with notifications and delayed responses.
//
// Protocols: Base, Power domain, System power, Performance, Clock, Sensor, Reset domain and
// Voltage, over the simulated platform (scmi_platform.h); see README.md for what each
// implements. A reply never exceeds the guest's writable buffer: multi-part replies return as
// many entries as fit (with the count of those remaining), and a fixed reply that does not fit
// is answered PROTOCOL_ERROR alone. Malformed commands get SCMI status codes: unknown protocols
// and messages NOT_SUPPORTED, a parameter block of the wrong length PROTOCOL_ERROR, ids out of
// range NOT_FOUND, bad flags or values INVALID_PARAMETERS or OUT_OF_RANGE.
#ifndef VHOST_USER_SCMI_SCMI_DEVICE_H_
#define VHOST_USER_SCMI_SCMI_DEVICE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/types/span.h"
#include "common/device/device.h"
#include "vhost-user-scmi/scmi_platform.h"
#include "vhost-user-scmi/scmi_spec.h"

namespace vhost::scmi {

using Message = std::vector<uint8_t>;

class ScmiDevice : public VirtioDevice {
 public:
  explicit ScmiDevice(std::unique_ptr<ScmiPlatform> platform);
  ~ScmiDevice() override;

  DeviceInfo Info() const override;
  absl::Status SetFeatures(uint64_t features) override;
  absl::Status QueueStarted(QueueContext& context) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  void QueueStopped(QueueContext& context) override;
  void Reset() override;

  ScmiPlatform& platform() { return *platform_; }

  // One command (header first) with `room` writable bytes for the reply; returns the reply
  // (header, status, return values; empty if `room` cannot hold a header and a status).
  // Delayed responses it causes are appended to `delayed`.
  Message HandleCommand(absl::Span<const uint8_t> request, size_t room,
                        std::vector<Message>* delayed);

  // Messages (notifications, delayed responses) waiting for event queue buffers.
  size_t pending_events();

  // At most this many wait; older ones are dropped.
  static constexpr size_t kMaxPendingEvents = 256;

 private:
  // Queues messages for the event queue and wakes it.
  void PostEvents(std::vector<Message> messages);
  void WakeEvents();
  // Event queue: notifications of what changed; returns when stepping sensors are next due.
  absl::Time CollectNotifications(std::vector<Message>* out);
  void ServeEventQueue(QueueContext& context);

  const std::unique_ptr<ScmiPlatform> platform_;
  std::atomic<bool> p2a_{false};

  std::mutex mu_;
  QueueContext* event_queue_ = nullptr;  // while started
  std::deque<Message> events_;

  std::deque<ChainToken> held_;  // event queue thread only
};

}  // namespace vhost::scmi

#endif  // VHOST_USER_SCMI_SCMI_DEVICE_H_
