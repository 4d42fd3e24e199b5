#include "vhost-user-scsi/scsi_sandbox.h"

#include "common/block/disk_sandbox.h"

namespace vhost::scsi {

SandboxPolicy ScsiSandboxPolicy() {
  SandboxPolicy policy;
  // The disks' I/O on rings made before the filter (as blk), and the inflight region
  // (GET_INFLIGHT_FD), sized with fallocate.
  AddDiskIo(policy).Allow("memfd_create");
  return policy;
}

}  // namespace vhost::scsi
