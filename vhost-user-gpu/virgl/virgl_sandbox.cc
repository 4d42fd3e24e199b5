#include "vhost-user-gpu/virgl/virgl_sandbox.h"

#include <sys/mman.h>
#include <sys/prctl.h>

namespace vhost::gpu {

SandboxPolicy VirglSandboxPolicy(bool render_node) {
  SandboxPolicy policy;
  // The base allows mmap and mprotect without PROT_EXEC; JIT-compiled shaders need it too.
  policy.AllowIf({"mmap", {(Arg(2) & PROT_EXEC) == PROT_EXEC}});
  policy.AllowIf({"mprotect", {(Arg(2) & PROT_EXEC) == PROT_EXEC}});
  // Mesa names its threads and asks how many CPUs there are to size its thread pools.
  policy.AllowIf({"prctl", {Arg(0) == PR_SET_NAME}});
  policy.Allow("sysinfo").Allow("sched_setaffinity");
  if (render_node) {
    // DRM's ioctls all have type 'd' (the driver-specific ones too).
    policy.AllowIf({"ioctl", {(Arg(1) & 0xff00) == 0x6400}});
  }
  return policy;
}

}  // namespace vhost::gpu
