// The seccomp additions vhost-user-scmi makes to the engine's base policy.
#ifndef VHOST_USER_SCMI_SCMI_SANDBOX_H_
#define VHOST_USER_SCMI_SCMI_SANDBOX_H_

#include "common/sandbox/sandbox.h"

namespace vhost::scmi {

SandboxPolicy ScmiSandboxPolicy();

}  // namespace vhost::scmi

#endif  // VHOST_USER_SCMI_SCMI_SANDBOX_H_
