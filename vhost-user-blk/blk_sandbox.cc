#include "vhost-user-blk/blk_sandbox.h"

#include <linux/fs.h>

namespace vhost {

SandboxPolicy BlkSandboxPolicy() {
  // io_uring_enter only: every ring the daemon uses is made, restricted and enabled before the
  // filter (see BlkDevice). seccomp cannot see io_uring_setup's flags (they are behind a
  // pointer), so allowing it would let a compromised daemon make a ring without restrictions
  // and open files or sockets through it; io_uring_register has nothing left to do.
  return SandboxPolicy()
      .FileData()  // the sync queues' preadv/pwritev/fdatasync; discard and write-zeroes
      .Allow("io_uring_enter")
      .Allow("memfd_create")  // the inflight region (GET_INFLIGHT_FD), sized with fallocate
      .AllowIoctl(BLKDISCARD)
      .AllowIoctl(BLKZEROOUT)
      .AllowIoctl(BLKGETSIZE64);
}

}  // namespace vhost
