// The seccomp additions vhost-user-gpio makes to the engine's base policy.
#ifndef VHOST_USER_GPIO_GPIO_SANDBOX_H_
#define VHOST_USER_GPIO_GPIO_SANDBOX_H_

#include "common/sandbox/sandbox.h"

namespace vhost {

SandboxPolicy GpioSandboxPolicy();

}  // namespace vhost

#endif  // VHOST_USER_GPIO_GPIO_SANDBOX_H_
