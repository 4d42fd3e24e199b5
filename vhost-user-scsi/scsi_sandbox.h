// The seccomp additions vhost-user-scsi makes to the common policy.
#ifndef VHOST_USER_SCSI_SCSI_SANDBOX_H_
#define VHOST_USER_SCSI_SCSI_SANDBOX_H_

#include "common/sandbox/sandbox.h"

namespace vhost::scsi {

SandboxPolicy ScsiSandboxPolicy();

}  // namespace vhost::scsi

#endif  // VHOST_USER_SCSI_SCSI_SANDBOX_H_
