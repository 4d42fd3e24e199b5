#include "vhost-user-input/input_device.h"

#include "common/message.h"
#include "glog/logging.h"

namespace vhost {

InputDevice::InputDevice(std::unique_ptr<EventSource> source)
    : source_(std::move(source)), config_(source_->description()) {}

DeviceInfo InputDevice::Info() const {
  DeviceInfo info;
  info.virtio_id = kVirtioIdInput;
  info.num_queues = 2;
  info.max_queue_size = 1024;
  info.features = Bit(kFeatureVersion1);
  info.config_size = sizeof(virtio_input_config);
  return info;
}

absl::Status InputDevice::ReadConfig(uint32_t offset, absl::Span<uint8_t> data) {
  return config_.Read(offset, data);
}

absl::Status InputDevice::WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) {
  return config_.Write(offset, data);
}

int InputDevice::QueueEventFd(int index) {
  if (index != kEventQueue) return -1;
  source_->Started();
  return source_->buffer().fd();
}

absl::Duration InputDevice::ProcessQueue(Virtqueue& queue) {
  if (queue.index() == kEventQueue) {
    // Events left over wait for the guest's next buffers (its kick). Otherwise the buffers it
    // keeps queued for events to come are not work to spin on: wait for the next event.
    return DeliverEvents(queue) ? absl::InfiniteDuration() : kUntilDeviceEvent;
  }
  TakeStatus(queue);
  return absl::InfiniteDuration();
}

bool InputDevice::DeliverEvents(Virtqueue& queue) {
  EventBuffer& buffer = source_->buffer();
  buffer.ClearWakeup();
  virtio_input_event events[64];
  for (;;) {
    const size_t n = buffer.Peek(events, 64);
    if (n == 0) return false;
    size_t delivered = 0;
    DescriptorChain chain;
    // One event per buffer; events wait in the buffer while the guest has none queued.
    while (delivered < n && queue.Pop(&chain)) {
      const size_t written =
          CopyToSegments(chain.writable, 0, &events[delivered], sizeof(virtio_input_event));
      if (written < sizeof(virtio_input_event)) {
        LOG_EVERY_N(WARNING, 100) << "event buffer of " << chain.writable_bytes
                                  << " bytes is too short; returned empty";
        queue.Push(chain, 0);
        continue;  // the event stays for the next buffer
      }
      queue.Push(chain, written);
      ++delivered;
    }
    buffer.Consume(delivered);
    if (delivered < n) return true;  // out of guest buffers: the next kick resumes
  }
}

namespace {

// The status queue carries what Linux's input core passes back to a device: feedback (LEDs,
// sounds, key repeat settings, force feedback). Anything else (EV_KEY, EV_REL, EV_MSC, EV_SW,
// EV_PWR...) would be input injected into the host device, which with --no-grab reaches the
// host's session: never passed on.
bool IsFeedback(const InputDescription& description, const virtio_input_event& event) {
  switch (event.type) {
    case EV_LED:
    case EV_SND:
    case EV_FF:  // codes are the effects and controls (FF_GAIN) the device lists
      return description.HasCode(event.type, event.code);
    case EV_REP:
      // evdev has no code bitmap for EV_REP (EVIOCGBIT refuses it): the type is what says.
      return description.events.count(EV_REP) > 0 && event.code <= REP_MAX;
    default:
      return false;
  }
}

}  // namespace

void InputDevice::TakeStatus(Virtqueue& queue) {
  DescriptorChain chain;
  while (queue.Pop(&chain)) {
    virtio_input_event event;  // copied once out of guest memory
    if (CopyFromSegments(chain.readable, 0, &event, sizeof(event)) != sizeof(event)) {
      LOG_EVERY_N(WARNING, 100) << "status buffer of " << chain.readable_bytes
                                << " bytes is too short; ignored";
    } else if (!IsFeedback(source_->description(), event)) {
      LOG_EVERY_N(WARNING, 100) << "status event of type " << event.type << " code " << event.code
                                << " is not feedback the device takes; dropped";
    } else {
      source_->WriteStatus(event);
    }
    queue.Push(chain, 0);
  }
}

}  // namespace vhost
