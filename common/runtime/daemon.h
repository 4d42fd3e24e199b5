// The shared main() of every daemon: the back-end program conventions of vhost-user.rst
// (--socket-path, --fd, --print-capabilities), --help, --version, logging flags, listening and
// accepting front ends one at a time (a front end that goes away resets the device and the
// daemon waits for the next one), SIGTERM/SIGINT shutdown, then the seccomp sandbox. Under a
// service manager: socket activation (LISTEN_FDS, served as --fd=3) and readiness and status
// notifications (NOTIFY_SOCKET); see socket_activation.h and service_notify.h.
#ifndef COMMON_RUNTIME_DAEMON_H_
#define COMMON_RUNTIME_DAEMON_H_

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/device/device.h"
#include "common/sandbox/sandbox.h"

namespace vhost {

struct DaemonInstance {
  std::string socket_path;
  std::unique_ptr<VirtioDevice> device;
};

struct DaemonSpec {
  std::string program;       // e.g. "vhost-user-rng"
  std::string description;   // one line for --help
  std::string backend_type;  // the vhost-user.json type, e.g. "rng"
  std::vector<std::string> capability_features;
  // One-letter aliases (-b PATH) for flags, as a peer daemon's users know them.
  std::map<char, std::string> short_names;
  // String flags that may be given several times (scsi's --lun); see ParseFlags.
  std::set<std::string> repeatable_flags;
  // Builds the device from its flags. InvalidArgumentError means bad command-line input (one
  // line naming the flag, exit status 2); other errors exit with status 1.
  std::function<absl::StatusOr<std::unique_ptr<VirtioDevice>>()> create_device;
  // Instead of create_device, for daemons serving several guests (--socket-count=COUNT): builds
  // the device of socket `index`.
  std::function<absl::StatusOr<std::unique_ptr<VirtioDevice>>(int index, int count)>
      create_instance;
  // Instead of both, for daemons whose instances name their own sockets (vsock's --vm): the
  // devices and their socket paths ("" for the listener of --fd). It checks its own flags.
  std::function<absl::StatusOr<std::vector<DaemonInstance>>()> create_instances;
  SandboxPolicy sandbox;
  // Runs after the sockets listen and before the seccomp filter, single-threaded: a daemon's own
  // confinement (vhost-user-fs's namespaces). An error exits with status 1.
  std::function<absl::Status()> before_seccomp;
  // Runs once the devices exist, on every way out of RunDaemon, before they are destroyed: stops
  // what calls into them from other threads (a control socket kept beside the device).
  std::function<void()> before_devices_destroyed;
};

// Runs the daemon; returns the process exit status.
int RunDaemon(int argc, char** argv, const DaemonSpec& spec);

// The JSON that --print-capabilities prints.
std::string CapabilitiesJson(const DaemonSpec& spec);

}  // namespace vhost

#endif  // COMMON_RUNTIME_DAEMON_H_
