#include "vhost-user-input/input_device.h"

#include "common/virtio/features.h"
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

absl::Status InputDevice::QueueStarted(QueueContext& context) {
  if (context.index() != kEventQueue) return absl::OkStatus();
  // Each report the source makes ready from now on wakes this queue's worker.
  source_->buffer().SetWaker(&context);
  source_->Started();
  return absl::OkStatus();
}

void InputDevice::QueueStopped(QueueContext& context) {
  // Every chain was completed in the call that took it: nothing to hand back.
  if (context.index() == kEventQueue) source_->buffer().SetWaker(nullptr);
}

QueueResult InputDevice::ProcessQueue(QueueContext& context) {
  if (context.index() == kEventQueue) {
    // Events left over wait for the guest's next buffers (its kick). Otherwise the buffers it
    // keeps queued for events to come are not work to spin on: wait for the next event (the
    // buffer wakes this worker).
    return DeliverEvents(context) ? QueueResult::Drained() : QueueResult::Blocked();
  }
  TakeStatus(context);
  return QueueResult::Drained();
}

bool InputDevice::DeliverEvents(QueueContext& context) {
  EventBuffer& buffer = source_->buffer();
  virtio_input_event events[64];
  for (;;) {
    const size_t n = buffer.Peek(events, 64);
    if (n == 0) return false;
    size_t delivered = 0;
    // One event per buffer; events wait in the buffer while the guest has none queued.
    while (delivered < n) {
      const absl::optional<ChainToken> token = context.Take();
      if (!token) break;
      const DescriptorChain& chain = context.chain(*token);
      const size_t written =
          CopyToSegments(chain.writable, 0, &events[delivered], sizeof(virtio_input_event));
      if (written < sizeof(virtio_input_event)) {
        LOG_EVERY_N(WARNING, 100) << "event buffer of " << chain.writable_bytes
                                  << " bytes is too short; returned empty";
        context.Complete(*token, 0);
        continue;  // the event stays for the next buffer
      }
      context.Complete(*token, written);
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

void InputDevice::TakeStatus(QueueContext& context) {
  while (const absl::optional<ChainToken> token = context.Take()) {
    const DescriptorChain& chain = context.chain(*token);
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
    context.Complete(*token, 0);
  }
}

}  // namespace vhost
