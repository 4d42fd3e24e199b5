// The seccomp additions vhost-user-i2c makes to the engine's base policy.
#ifndef VHOST_USER_I2C_I2C_SANDBOX_H_
#define VHOST_USER_I2C_I2C_SANDBOX_H_

#include "common/sandbox/sandbox.h"

namespace vhost {

SandboxPolicy I2cSandboxPolicy();

}  // namespace vhost

#endif  // VHOST_USER_I2C_I2C_SANDBOX_H_
