#include "vhost-user-i2c/i2c_sandbox.h"

#include "common/testing/status_matchers.h"
#include "gtest/gtest.h"

namespace vhost {
namespace {

// Every syscall once, every name known: the policy the daemon installs.
TEST(I2cSandboxPolicyTest, Builds) { EXPECT_OK(I2cSandboxPolicy().Build()); }

}  // namespace
}  // namespace vhost
