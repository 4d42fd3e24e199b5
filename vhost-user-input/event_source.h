// Where input comes from: a host evdev device, or a virtual keyboard/mouse/tablet driven by
// commands. Sources produce into an EventBuffer from their own thread.
#ifndef VHOST_USER_INPUT_EVENT_SOURCE_H_
#define VHOST_USER_INPUT_EVENT_SOURCE_H_

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "vhost-user-input/event_buffer.h"
#include "vhost-user-input/input_description.h"

namespace vhost {

constexpr size_t kEventBufferCapacity = 4096;

class EventSource {
 public:
  virtual ~EventSource() = default;
  virtual const InputDescription& description() const = 0;
  EventBuffer& buffer() { return buffer_; }
  // The guest's driver is ready for events (its event queue started). Called on every start.
  virtual void Started() {}
  // A status event from the guest (LED, sound, force feedback), already checked against the
  // description.
  virtual void WriteStatus(const virtio_input_event& event) = 0;

 protected:
  EventBuffer buffer_{kEventBufferCapacity};
};

// A host device (/dev/input/eventN): described with the evdev ioctls, grabbed unless `grab` is
// false, read by a thread. InvalidArgumentError (naming --evdev-path) if it cannot be used.
absl::StatusOr<std::unique_ptr<EventSource>> OpenEvdevSource(const std::string& path, bool grab);

enum class VirtualKind { kKeyboard, kMouse, kTablet };

// A virtual device needing no hardware, driven by text commands (see README.md) from clients of
// a Unix socket at `control_socket` (if not empty) and from the lines of `script` (replayed once,
// when the guest's driver first becomes ready).
absl::StatusOr<std::unique_ptr<EventSource>> MakeVirtualSource(VirtualKind kind,
                                                               const std::string& control_socket,
                                                               const std::string& script);

}  // namespace vhost

#endif  // VHOST_USER_INPUT_EVENT_SOURCE_H_
