// The seccomp additions vhost-user-vsock makes to the engine's base policy.
#ifndef VHOST_USER_VSOCK_VSOCK_SANDBOX_H_
#define VHOST_USER_VSOCK_VSOCK_SANDBOX_H_

#include "common/sandbox/sandbox.h"

namespace vhost {

SandboxPolicy VsockSandboxPolicy();

}  // namespace vhost

#endif  // VHOST_USER_VSOCK_VSOCK_SANDBOX_H_
