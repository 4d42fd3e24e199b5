// The seccomp additions every device serving Disks needs: its queues' I/O and the disks' own
// discard, write-zeroes and size calls. The device adds what else it needs.
#ifndef COMMON_BLOCK_DISK_SANDBOX_H_
#define COMMON_BLOCK_DISK_SANDBOX_H_

#include "common/sandbox/sandbox.h"

namespace vhost {

// Adds FileData, io_uring_enter and the ioctls BLKDISCARD, BLKZEROOUT, BLKGETSIZE64 to `policy`.
// Never io_uring_setup or io_uring_register: every ring is made before the filter.
SandboxPolicy& AddDiskIo(SandboxPolicy& policy);

}  // namespace vhost

#endif  // COMMON_BLOCK_DISK_SANDBOX_H_
