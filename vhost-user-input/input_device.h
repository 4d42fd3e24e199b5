// virtio-input (virtio 1.2 §5.8): an event queue carrying host events to the guest and a status
// queue carrying LED / sound / force-feedback writes back; config space from the source's
// description.
#ifndef VHOST_USER_INPUT_INPUT_DEVICE_H_
#define VHOST_USER_INPUT_INPUT_DEVICE_H_

#include <memory>

#include "common/device/device.h"
#include "vhost-user-input/event_source.h"
#include "vhost-user-input/input_config.h"

namespace vhost {

constexpr uint32_t kVirtioIdInput = 18;
constexpr int kEventQueue = 0;
constexpr int kStatusQueue = 1;

class InputDevice : public VirtioDevice {
 public:
  explicit InputDevice(std::unique_ptr<EventSource> source);

  DeviceInfo Info() const override;
  absl::Status ReadConfig(uint32_t offset, absl::Span<uint8_t> data) override;
  absl::Status WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) override;
  absl::Status QueueStarted(QueueContext& context) override;
  QueueResult ProcessQueue(QueueContext& context) override;
  void QueueStopped(QueueContext& context) override;

  EventSource& source() { return *source_; }

 private:
  // Returns whether events are still waiting (the guest ran out of buffers).
  bool DeliverEvents(QueueContext& context);
  void TakeStatus(QueueContext& context);

  std::unique_ptr<EventSource> source_;
  InputConfigSpace config_;
};

}  // namespace vhost

#endif  // VHOST_USER_INPUT_INPUT_DEVICE_H_
