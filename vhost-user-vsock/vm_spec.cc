#include "vhost-user-vsock/vm_spec.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace vhost {
namespace {
absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("--vm: ", what));
}
}  // namespace

absl::StatusOr<std::vector<VmSpec>> ParseVmSpecs(absl::string_view text) {
  std::vector<VmSpec> vms;
  for (absl::string_view vm_text : absl::StrSplit(text, ';', absl::SkipEmpty())) {
    VmSpec vm;
    for (absl::string_view field : absl::StrSplit(vm_text, ',')) {
      std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(field, '=');
      if (kv.first == "guest-cid") {
        if (!absl::SimpleAtoi(kv.second, &vm.guest_cid)) {
          return Bad(absl::StrCat("'", kv.second, "' is not a CID"));
        }
      } else if (kv.first == "socket") {
        vm.socket_path = std::string(kv.second);
      } else if (kv.first == "uds-path") {
        vm.uds_path = std::string(kv.second);
      } else if (kv.first == "groups") {
        vm.groups.clear();
        for (absl::string_view g : absl::StrSplit(kv.second, '+', absl::SkipEmpty())) {
          vm.groups.insert(std::string(g));
        }
      } else {
        return Bad(
            absl::StrCat("unknown key '", kv.first, "' (guest-cid, socket, uds-path, groups)"));
      }
    }
    vms.push_back(std::move(vm));
  }
  if (vms.empty()) return Bad("no VM given");
  if (absl::Status s = CheckVmSpecs(vms); !s.ok()) return s;
  return vms;
}

absl::Status CheckVmSpecs(const std::vector<VmSpec>& vms) {
  std::set<uint64_t> cids;
  std::set<std::string> paths;
  for (const VmSpec& vm : vms) {
    // 0-2 are the hypervisor, local and host CIDs; 2^32-1 is VMADDR_CID_ANY.
    if (vm.guest_cid < 3 || vm.guest_cid >= 0xffffffffu) {
      return absl::InvalidArgumentError(
          absl::StrCat("--guest-cid: ", vm.guest_cid, " is not a guest CID (3 to 4294967294)"));
    }
    if (!cids.insert(vm.guest_cid).second) {
      return absl::InvalidArgumentError(absl::StrCat("--vm: CID ", vm.guest_cid, " twice"));
    }
    if (vm.uds_path.empty()) return absl::InvalidArgumentError("--uds-path is required");
    for (const std::string& path : {vm.socket_path, vm.uds_path}) {
      if (!path.empty() && !paths.insert(path).second) {
        return absl::InvalidArgumentError(absl::StrCat("--vm: path ", path, " twice"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace vhost
