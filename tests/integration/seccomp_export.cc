// Prints, in libseccomp's pseudo filter code (PFC), the seccomp filter each daemon's sandbox
// policy compiles to on the architecture this program is built for. qemu-user cannot load a
// guest's seccomp filter (it answers seccomp() with ENOSYS), so arm64_test.sh runs this arm64
// build under qemu instead, to check that the filters are built for AUDIT_ARCH_AARCH64 with
// aarch64's syscall numbers, from the same policies the daemons apply.
// Usage: seccomp_export  (PFC of every policy on stdout; exit 1 if a policy does not build)
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>

#include <functional>
#include <utility>
#include <vector>

#include "common/sandbox/sandbox.h"
#include "vhost-user-blk/blk_sandbox.h"
#include "vhost-user-fs/fs_sandbox.h"
#include "vhost-user-gpio/gpio_sandbox.h"
#include "vhost-user-i2c/i2c_sandbox.h"
#include "vhost-user-scmi/scmi_sandbox.h"
#include "vhost-user-scsi/scsi_sandbox.h"
#include "vhost-user-vsock/vsock_sandbox.h"

namespace vhost {
namespace {

// The rules as ApplySandbox adds them (common/sandbox/sandbox.cc), with the default action of
// --seccomp=kill.
bool Export(const char* daemon, const SandboxPolicy& policy) {
  absl::StatusOr<std::vector<SyscallRule>> rules = policy.Build();
  if (!rules.ok()) {
    fprintf(stderr, "%s: %s\n", daemon, std::string(rules.status().message()).c_str());
    return false;
  }
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
  bool ok = ctx != nullptr;
  for (size_t i = 0; ok && i < rules->size(); ++i) {
    const SyscallRule& rule = (*rules)[i];
    std::vector<scmp_arg_cmp> compare;
    for (const ArgCondition& c : rule.conditions) {
      compare.push_back(c.mask == ~uint64_t{0}
                            ? scmp_arg_cmp{c.index, SCMP_CMP_EQ, c.value, 0}
                            : scmp_arg_cmp{c.index, SCMP_CMP_MASKED_EQ, c.mask, c.value});
    }
    const uint32_t action =
        rule.refuse_errno != 0 ? SCMP_ACT_ERRNO(rule.refuse_errno) : SCMP_ACT_ALLOW;
    ok = seccomp_rule_add_array(ctx, action, seccomp_syscall_resolve_name(rule.name.c_str()),
                                compare.size(), compare.data()) == 0;
    if (!ok) fprintf(stderr, "%s: cannot add %s\n", daemon, rule.name.c_str());
  }
  printf("# daemon %s\n", daemon);
  fflush(stdout);
  ok = ok && seccomp_export_pfc(ctx, STDOUT_FILENO) == 0;
  seccomp_release(ctx);
  return ok;
}

}  // namespace
}  // namespace vhost

int main() {
  using vhost::SandboxPolicy;
  const std::vector<std::pair<const char*, std::function<SandboxPolicy()>>> policies = {
      {"vhost-user-rng", [] { return SandboxPolicy().Allow("memfd_create").Allow("fallocate"); }},
      {"vhost-user-blk", vhost::BlkSandboxPolicy},
      {"vhost-user-fs", vhost::FsSandboxPolicy},
      {"vhost-user-gpio", vhost::GpioSandboxPolicy},
      {"vhost-user-i2c", vhost::I2cSandboxPolicy},
      {"vhost-user-scmi", vhost::scmi::ScmiSandboxPolicy},
      {"vhost-user-scsi", vhost::scsi::ScsiSandboxPolicy},
      {"vhost-user-vsock", vhost::VsockSandboxPolicy},
  };
  bool ok = true;
  for (const auto& [daemon, policy] : policies) ok = vhost::Export(daemon, policy()) && ok;
  return ok ? 0 : 1;
}
