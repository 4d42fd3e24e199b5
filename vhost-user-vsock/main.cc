// vhost-user-vsock: guest AF_VSOCK sockets to host Unix sockets (hybrid vsock), and between
// sibling VMs.

#include "absl/strings/str_cat.h"
#include "common/runtime/daemon.h"
#include "gflags/gflags.h"
#include "vhost-user-vsock/vm_spec.h"
#include "vhost-user-vsock/vsock_device.h"
#include "vhost-user-vsock/vsock_hub.h"
#include "vhost-user-vsock/vsock_sandbox.h"

// The common runtime's flags, which a VM of --vm replaces.
DECLARE_string(socket_path);
DECLARE_int32(fd);

DEFINE_uint64(guest_cid, 3, "The guest's context ID (3 or more)");
DEFINE_string(uds_path, "",
              "Host side: host programs connect here and write \"CONNECT <port>\\n\"; a guest "
              "connecting to host port P reaches the listener at <uds-path>_P");
DEFINE_string(vm, "",
              "Several VMs from one daemon, instead of --socket-path/--guest-cid/--uds-path: "
              "\"guest-cid=C,socket=PATH,uds-path=PATH[,groups=G1+G2]\" separated by ';'. VMs "
              "sharing a group reach each other by CID");

namespace {

vhost::VsockHub hub;  // lives as long as the devices

absl::StatusOr<std::vector<vhost::DaemonInstance>> CreateInstances() {
  std::vector<vhost::VmSpec> vms;
  if (!FLAGS_vm.empty()) {
    if (!FLAGS_socket_path.empty() || FLAGS_fd >= 0 || !FLAGS_uds_path.empty()) {
      return absl::InvalidArgumentError(
          "--vm replaces --socket-path, --fd, --guest-cid and --uds-path");
    }
    absl::StatusOr<std::vector<vhost::VmSpec>> parsed = vhost::ParseVmSpecs(FLAGS_vm);
    if (!parsed.ok()) return parsed.status();
    vms = *std::move(parsed);
    for (const vhost::VmSpec& vm : vms) {
      if (vm.socket_path.empty()) return absl::InvalidArgumentError("--vm: socket= is required");
    }
  } else {
    if (FLAGS_socket_path.empty() == (FLAGS_fd < 0)) {
      return absl::InvalidArgumentError("exactly one of --socket-path and --fd is required");
    }
    vhost::VmSpec vm;
    vm.guest_cid = FLAGS_guest_cid;
    vm.socket_path = FLAGS_fd >= 0 ? "" : FLAGS_socket_path;
    vm.uds_path = FLAGS_uds_path;
    vms.push_back(vm);
    if (absl::Status s = vhost::CheckVmSpecs(vms); !s.ok()) return s;
  }
  std::vector<vhost::DaemonInstance> instances;
  for (const vhost::VmSpec& vm : vms) {
    vhost::VsockDevice::Options options;
    options.guest_cid = vm.guest_cid;
    options.uds_path = vm.uds_path;
    options.groups = vm.groups;
    absl::StatusOr<std::unique_ptr<vhost::VsockDevice>> device =
        vhost::VsockDevice::Create(options, &hub);
    if (!device.ok()) return device.status();
    hub.Add(device->get());
    instances.push_back({vm.socket_path, *std::move(device)});
  }
  return instances;
}

}  // namespace

int main(int argc, char** argv) {
  vhost::DaemonSpec spec;
  spec.program = "vhost-user-vsock";
  spec.description =
      "Serves virtio-vsock to guests over vhost-user: guest sockets reach host Unix sockets in "
      "the hybrid vsock convention (Firecracker, Cloud Hypervisor), and sibling VMs by CID.";
  spec.backend_type = "vsock";
  spec.short_names = {{'s', "socket_path"}};
  spec.create_instances = CreateInstances;
  spec.sandbox = vhost::VsockSandboxPolicy();
  return vhost::RunDaemon(argc, argv, spec);
}
