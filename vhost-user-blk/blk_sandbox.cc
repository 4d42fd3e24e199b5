#include "vhost-user-blk/blk_sandbox.h"

#include "common/block/disk_sandbox.h"

namespace vhost {

SandboxPolicy BlkSandboxPolicy() {
  SandboxPolicy policy;
  // The disk's I/O (io_uring_enter, never io_uring_setup: the rings are made before the filter,
  // see BlkDevice), and the inflight region (GET_INFLIGHT_FD), sized with fallocate.
  AddDiskIo(policy).Allow("memfd_create");
  return policy;
}

}  // namespace vhost
