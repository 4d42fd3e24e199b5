#include "vhost-user-blk/blk_sandbox.h"

#include <linux/fs.h>
#include <linux/io_uring.h>

namespace vhost {

SandboxPolicy BlkSandboxPolicy() {
  SandboxPolicy policy;
  policy.extra_syscalls = {"io_uring_setup", "io_uring_enter", "fallocate", "pwrite64",
                           "preadv",         "pwritev",        "fdatasync", "fsync"};
  // Registrations only as InitBlkRing makes them (eventfd, restrictions, enable): no registered
  // files, buffers or personalities.
  for (unsigned op :
       {IORING_REGISTER_EVENTFD, IORING_REGISTER_RESTRICTIONS, IORING_REGISTER_ENABLE_RINGS}) {
    policy.conditional_syscalls.push_back({"io_uring_register", {Arg(1) == op}});
  }
  policy.ioctl_requests = {BLKDISCARD, BLKZEROOUT, BLKGETSIZE64};
  return policy;
}

}  // namespace vhost
