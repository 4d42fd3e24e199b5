#include "common/block/disk_sandbox.h"

#include <linux/fs.h>

namespace vhost {

SandboxPolicy& AddDiskIo(SandboxPolicy& policy) {
  // io_uring_enter only: every ring the daemon uses is made, restricted and enabled before the
  // filter (see InitDiskRing). seccomp cannot see io_uring_setup's flags (they are behind a
  // pointer), so allowing it would let a compromised daemon make a ring without restrictions
  // and open files or sockets through it; io_uring_register has nothing left to do.
  return policy
      .FileData()  // the sync queues' preadv/pwritev/fdatasync; discard and write-zeroes
      .Allow("io_uring_enter")
      .AllowIoctl(BLKDISCARD)
      .AllowIoctl(BLKZEROOUT)
      .AllowIoctl(BLKGETSIZE64);
}

}  // namespace vhost
