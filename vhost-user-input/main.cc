// vhost-user-input: a host input device, or a virtual keyboard/mouse/tablet, for a guest.
#include <linux/input.h>

#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-input/input_device.h"

DEFINE_string(evdev_path, "", "Host input device to pass to the guest (/dev/input/eventN)");
DEFINE_bool(no_grab, false, "Do not grab the host device (the host keeps receiving its events)");
DEFINE_string(virtual_device, "",
              "Instead of --evdev-path: a virtual keyboard, mouse or tablet driven by commands");
DEFINE_string(control_socket, "",
              "Virtual device: a Unix socket taking commands, one per line (see README.md)");
DEFINE_string(script, "",
              "Virtual device: a file of commands replayed once the guest's driver is ready");

namespace {

absl::StatusOr<std::unique_ptr<vhost::VirtioDevice>> CreateDevice() {
  using absl::InvalidArgumentError;
  if (FLAGS_evdev_path.empty() == FLAGS_virtual_device.empty()) {
    return InvalidArgumentError("exactly one of --evdev-path and --virtual-device is required");
  }
  absl::StatusOr<std::unique_ptr<vhost::EventSource>> source;
  if (!FLAGS_evdev_path.empty()) {
    if (!FLAGS_control_socket.empty() || !FLAGS_script.empty()) {
      return InvalidArgumentError("--control-socket and --script drive a --virtual-device only");
    }
    source = vhost::OpenEvdevSource(FLAGS_evdev_path, !FLAGS_no_grab);
  } else {
    vhost::VirtualKind kind;
    if (FLAGS_virtual_device == "keyboard") {
      kind = vhost::VirtualKind::kKeyboard;
    } else if (FLAGS_virtual_device == "mouse") {
      kind = vhost::VirtualKind::kMouse;
    } else if (FLAGS_virtual_device == "tablet") {
      kind = vhost::VirtualKind::kTablet;
    } else {
      return InvalidArgumentError("--virtual-device must be keyboard, mouse or tablet");
    }
    source = vhost::MakeVirtualSource(kind, FLAGS_control_socket, FLAGS_script);
  }
  if (!source.ok()) return source.status();
  return std::make_unique<vhost::InputDevice>(*std::move(source));
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-input";
  spec.description =
      "Serves a virtio-input device to a guest over vhost-user: a host evdev device, or a "
      "virtual keyboard, mouse or tablet driven by text commands.";
  spec.backend_type = "input";
  spec.capability_features = {"evdev-path", "no-grab"};
  spec.short_names = {{'e', "evdev_path"}, {'s', "socket_path"}, {'f', "fd"}, {'n', "no_grab"}};
  spec.create_device = CreateDevice;
  return vhost::RunDaemon(argc, argv, spec);
}
