// --vm: the VMs one vsock daemon serves, in the spirit of rust-vmm's vhost-device-vsock:
// "guest-cid=C,socket=PATH,uds-path=PATH[,groups=G1+G2]" per VM, VMs separated by ';'.
#ifndef VHOST_USER_VSOCK_VM_SPEC_H_
#define VHOST_USER_VSOCK_VM_SPEC_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vhost {

struct VmSpec {
  uint64_t guest_cid = 0;
  std::string socket_path;
  std::string uds_path;
  std::set<std::string> groups = {"default"};
};

// Checks CIDs (3 to 2^32-2, distinct) and paths (present, distinct).
absl::StatusOr<std::vector<VmSpec>> ParseVmSpecs(absl::string_view text);
absl::Status CheckVmSpecs(const std::vector<VmSpec>& vms);

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_VM_SPEC_H_
