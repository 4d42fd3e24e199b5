// The seccomp additions vhost-user-blk makes to the common policy.
#ifndef VHOST_USER_BLK_BLK_SANDBOX_H_
#define VHOST_USER_BLK_BLK_SANDBOX_H_

#include "common/sandbox/sandbox.h"

namespace vhost {

SandboxPolicy BlkSandboxPolicy();

}  // namespace vhost

#endif  // VHOST_USER_BLK_BLK_SANDBOX_H_
